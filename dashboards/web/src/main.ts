import "./style.css";
import { h } from "./dom";
import { lazy, start, type Route } from "./router";
import { proxiesView } from "./views/proxies";
import { canariesView } from "./views/canaries";

// Pages that draw graphs or charts load their libraries on first use.
const graphView = lazy(() => import("./views/graph").then((m) => m.graphView));
const tracesView = lazy(() => import("./views/traces").then((m) => m.tracesView));
const metricsView = lazy(() => import("./views/metrics").then((m) => m.metricsView));
const slosView = lazy(() => import("./views/slos").then((m) => m.slosView));

const routes: Route[] = [
  { path: "graph", title: "Graph", view: graphView, nav: true },
  { path: "traces", title: "Traces", view: tracesView, nav: true },
  { path: "query", title: "Metrics", view: metricsView, nav: true },
  { path: "slos", title: "SLOs", view: slosView, nav: true },
  { path: "canaries", title: "Canaries", view: canariesView, nav: true },
  { path: "proxies", title: "Proxies", view: proxiesView, nav: true },
  { path: "", title: "Graph", view: graphView },
  { path: "*", title: "Not found", view: ({ root }) => root.append(h("div", { class: "state error" }, "No such page. ", h("a", { href: "/graph" }, "Open the graph"))) },
];

const links = routes
  .filter((r) => r.nav)
  .map((r) => h("a", { href: `/${r.path}`, "data-route": r.path }, r.title));

const main = h("main", { id: "main", tabindex: "-1" });
document.getElementById("app")!.replaceChildren(
  h(
    "header",
    { class: "top" },
    h("a", { class: "brand", href: "/graph", "aria-label": "glassmesh home" }, h("span", { class: "logo", "aria-hidden": "true" }), "glassmesh"),
    h("nav", { "aria-label": "Views" }, links),
  ),
  main,
);

start(routes, main, (r) => {
  const active = r.path === "" ? "graph" : r.path;
  for (const a of links) {
    if (a.dataset.route === active) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
});
