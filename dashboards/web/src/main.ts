import "./style.css";
import { h } from "./dom";
import { start, type Route } from "./router";
import { graphView } from "./views/graph";
import { tracesView } from "./views/traces";
import { metricsView } from "./views/metrics";
import { proxiesView } from "./views/proxies";
import { slosView } from "./views/slos";
import { canariesView } from "./views/canaries";

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
