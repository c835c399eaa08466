// The live service graph: Kiali's graph over SSE, drawn with cytoscape
// (dagre layout, re-run only when the set of nodes or edges changes, so
// positions stay put while the numbers update), with a sortable table one
// click away and a side panel per node or edge.
import cytoscape from "cytoscape";
import dagre from "cytoscape-dagre";
import { promList } from "../api";
import { h, errorBox, loading, empty } from "../dom";
import { pct, rate, ms, time } from "../format";
import { readGraph, type KGraph, type Model, type EdgeRow, type NodeRow } from "../graphmodel";
import { param, setParams, durations } from "../state";
import type { Ctx } from "../router";
import { sidePanel } from "./graphpanel";
import { graphTables } from "./graphtable";

cytoscape.use(dagre);

/** Above this many nodes the graph uses a cheaper layout and hides edge labels. */
const bigGraph = 250;

const healthColor: Record<string, string> = { Healthy: "#16a34a", Degraded: "#d97706", Failure: "#dc2626" };
const graphTypes: [string, string][] = [
  ["versionedApp", "Versioned app"],
  ["app", "App"],
  ["workload", "Workload"],
  ["service", "Service"],
];

/** graphView is the Graph page. */
export function graphView(ctx: Ctx): () => void {
  const { root, signal } = ctx;
  root.classList.add("full");
  const st = {
    ns: param("ns", "default"),
    type: param("type", "versionedApp"),
    dur: param("dur", "10m"),
    view: param("view", "graph"),
    sel: param("sel"),
  };

  const nsSelect = h("select", { id: "graph-ns", "aria-label": "Namespace" }, h("option", { value: st.ns }, st.ns));
  const typeSelect = h(
    "select",
    { id: "graph-type" },
    graphTypes.map(([v, t]) => h("option", { value: v, selected: v === st.type }, t)),
  );
  const durSelect = h("select", { id: "graph-dur" }, durations.map((d) => h("option", { value: d, selected: d === st.dur }, `last ${d}`)));
  const viewButtons = (["graph", "table"] as const).map((v) =>
    h("button", { type: "button", "aria-pressed": String(st.view === v), "data-view": v, onclick: () => setView(v) }, v === "graph" ? "Graph" : "Table"),
  );
  const live = h("span", { class: "live", role: "status", "aria-live": "polite" }, "connecting…");
  const toolbar = h(
    "div",
    { class: "toolbar" },
    h("label", {}, "Namespace", nsSelect),
    h("label", {}, "Graph type", typeSelect),
    h("label", {}, "Traffic window", durSelect),
    h("div", { class: "seg", role: "group", "aria-label": "Display" }, viewButtons),
    live,
  );

  const cyEl = h("div", { class: "cy", id: "graph-cy", role: "img", "aria-label": "Service graph (loading)" });
  const overlay = h("div", { class: "overlay" }, loading("the graph"));
  const legend = h(
    "div",
    { class: "legend", "aria-hidden": "true" },
    Object.entries(healthColor).map(([k, c]) => h("span", {}, h("span", { class: "dot", style: `background:${c}` }), k)),
    h("span", {}, "edge label: rps · errors · p95"),
  );
  const canvas = h("div", { class: "graph-canvas" }, cyEl, overlay, legend);
  const tableEl = h("div", { class: "graph-table", id: "graph-table" });
  const side = h("aside", { class: "side", id: "graph-side", "aria-label": "Details", hidden: true });
  const body = h("div", { class: "graph-body" }, canvas, tableEl, side);
  root.append(h("div", { class: "graph-page" }, toolbar, body));

  const cy = cytoscape({
    container: cyEl,
    style: cyStyle(),
    wheelSensitivity: 0.3,
    minZoom: 0.1,
    maxZoom: 3,
    boxSelectionEnabled: false,
    hideEdgesOnViewport: true, // pan and zoom stay smooth on big meshes
  });
  let model: Model | null = null;
  let structure = "";
  let es: EventSource | null = null;

  function setView(v: "graph" | "table") {
    st.view = v;
    setParams({ view: v === "graph" ? null : v });
    for (const b of viewButtons) b.setAttribute("aria-pressed", String(b.dataset.view === v));
    canvas.hidden = v !== "graph";
    tableEl.hidden = v !== "table";
    if (v === "graph") {
      cy.resize();
      cy.fit(undefined, 30);
    }
    drawTable();
  }

  function select(id: string) {
    st.sel = id;
    setParams({ sel: id || null });
    cy.elements().unselect();
    if (id) cy.getElementById(id).select();
    drawPanel(true);
  }

  function drawPanel(fresh: boolean) {
    const m = model;
    const node = m?.nodes.find((n) => n.id === st.sel);
    const edge = m?.edges.find((e) => e.id === st.sel);
    if (!m || (!node && !edge)) {
      side.hidden = true;
      side.replaceChildren();
      cy.resize();
      return;
    }
    const wasHidden = side.hidden;
    side.hidden = false;
    sidePanel(side, { node, edge, model: m, dur: st.dur, fresh, signal, close: () => select("") });
    if (wasHidden) cy.resize();
  }

  function drawTable() {
    if (st.view !== "table") return;
    if (!model) {
      tableEl.replaceChildren(loading("the graph"));
      return;
    }
    tableEl.replaceChildren(graphTables(model, st.sel, select));
  }

  function update(g: KGraph) {
    const m = readGraph(g);
    model = m;
    const els = elements(m);
    const key = els
      .map((e) => `${e.data.id}>${e.data.parent ?? ""}`)
      .sort()
      .join(",");
    const ids = new Set(els.map((e) => e.data.id));
    cy.batch(() => {
      cy.elements().forEach((el) => {
        if (!ids.has(el.id())) cy.remove(el);
      });
      for (const e of els) {
        const el = cy.getElementById(e.data.id!);
        if (el.nonempty()) el.data(e.data);
        else cy.add(e);
      }
    });
    if (key !== structure) {
      structure = key;
      const big = m.nodes.length > bigGraph;
      // Dagre reads best but is quadratic-ish; large meshes get the linear
      // breadth-first layering, without edge labels until zoomed in.
      cy.style().selector("edge").style("label", big ? "" : "data(label)").update();
      cy.layout(
        big
          ? ({ name: "breadthfirst", directed: true, spacingFactor: 0.9, padding: 30, fit: true, animate: false } as cytoscape.LayoutOptions)
          : ({ name: "dagre", rankDir: "LR", nodeSep: 30, rankSep: 110, padding: 30, fit: true, animate: false } as cytoscape.LayoutOptions),
      ).run();
    }
    if (st.sel) cy.getElementById(st.sel).select();
    const names = m.nodes.filter((n) => !n.box).map((n) => n.label);
    cyEl.dataset.nodes = names.sort().join(",");
    cyEl.dataset.edges = String(m.edges.length);
    cyEl.dataset.updates = String(Number(cyEl.dataset.updates ?? 0) + 1);
    cyEl.setAttribute("aria-label", `Service graph: ${names.length} nodes, ${m.edges.length} edges. The table view lists them.`);
    overlay.replaceChildren(
      m.nodes.length === 0
        ? empty(`No traffic in namespace ${st.ns} in the last ${st.dur}.`)
        : m.nodes.length > bigGraph
          ? h("div", { class: "state" }, `${m.nodes.length} nodes: edge labels are hidden; the `, h("button", { type: "button", class: "linklike", onclick: () => setView("table") }, "table"), " lists every number.")
          : "",
    );
    live.className = "live on";
    live.textContent = `live · updated ${time(new Date(g.timestamp * 1000))}`;
    drawTable();
    drawPanel(false);
  }

  function connect() {
    es?.close();
    model = null;
    structure = "";
    cy.elements().remove();
    overlay.replaceChildren(loading("the graph"));
    drawTable();
    const p = new URLSearchParams({ namespaces: st.ns, graphType: st.type, duration: st.dur, responseTime: "95", refresh: "5s" });
    if (st.type === "service") p.set("injectServiceNodes", "true");
    es = new EventSource(`/api/graph/stream?${p}`);
    live.className = "live";
    live.textContent = "connecting…";
    es.addEventListener("graph", (e) => {
      try {
        update(JSON.parse((e as MessageEvent).data));
      } catch (err) {
        overlay.replaceChildren(errorBox(err));
      }
    });
    es.addEventListener("error", (e) => {
      const msg = (e as MessageEvent).data;
      if (msg) {
        // The server's own `event: error`: the query failed.
        overlay.replaceChildren(errorBox(new Error(String(msg)), connect));
        return;
      }
      live.className = "live off";
      live.textContent = es?.readyState === EventSource.CLOSED ? "disconnected" : "reconnecting…";
      if (es?.readyState === EventSource.CLOSED) overlay.replaceChildren(errorBox(new Error("the graph stream closed"), connect));
    });
  }

  nsSelect.addEventListener("change", () => {
    st.ns = nsSelect.value;
    setParams({ ns: st.ns });
    connect();
  });
  typeSelect.addEventListener("change", () => {
    st.type = typeSelect.value;
    setParams({ type: st.type, sel: null });
    st.sel = "";
    connect();
  });
  durSelect.addEventListener("change", () => {
    st.dur = durSelect.value;
    setParams({ dur: st.dur });
    connect();
  });
  cy.on("tap", "node, edge", (e) => {
    if (e.target.data("box")) return;
    select(e.target.id());
  });
  cy.on("tap", (e) => {
    if (e.target === cy) select("");
  });

  loadNamespaces(nsSelect, st.ns, signal);
  setView(st.view === "table" ? "table" : "graph");
  connect();
  return () => {
    es?.close();
    cy.destroy();
    root.classList.remove("full");
  };
}

/** loadNamespaces fills the selector from the namespaces that have request metrics. */
async function loadNamespaces(sel: HTMLSelectElement, current: string, signal: AbortSignal) {
  try {
    const [a, b] = await Promise.all([
      promList("/api/v1/label/destination_workload_namespace/values", signal),
      promList("/api/v1/label/source_workload_namespace/values", signal),
    ]);
    const all = [...new Set([...a, ...b, current])].filter((n) => n && n !== "unknown").sort();
    const opts = all.map((n) => h("option", { value: n, selected: n === current }, n));
    if (all.length > 1) {
      const joined = all.join(",");
      opts.push(h("option", { value: joined, selected: joined === current }, "all namespaces"));
    }
    sel.replaceChildren(...opts);
  } catch {
    /* keep the current namespace only; the graph shows its own errors */
  }
}

function edgeLabel(e: EdgeRow): string {
  const parts = [`${rate(e.rps)} rps`];
  if (e.protocol !== "tcp") parts.push(pct(e.errPct));
  if (isFinite(e.p95)) parts.push(ms(e.p95));
  return parts.join(" · ");
}

function nodeShape(n: NodeRow): string {
  switch (n.type) {
    case "service":
      return "triangle";
    case "workload":
      return "ellipse";
    case "unknown":
      return "diamond";
    default:
      return "round-rectangle";
  }
}

function elements(m: Model): cytoscape.ElementDefinition[] {
  const nodes = [...m.nodes]
    .sort((a, b) => a.label.localeCompare(b.label))
    .map((n) => ({
      group: "nodes" as const,
      data: {
        id: n.id,
        parent: n.raw.parent,
        label: n.box ? n.label : n.label + (n.raw.isRoot ? " ⇢" : ""),
        color: healthColor[n.health] ?? "#94a3b8",
        shape: nodeShape(n),
        box: n.box,
      },
      classes: n.box ? "box" : "",
    }));
  const edges = [...m.edges]
    .sort((a, b) => (a.source.label + a.target.label).localeCompare(b.source.label + b.target.label))
    .map((e) => ({
      group: "edges" as const,
      data: {
        id: e.id,
        source: e.source.id,
        target: e.target.id,
        label: edgeLabel(e),
        color: healthColor[e.health] ?? "#94a3b8",
        width: Math.min(6, 1.5 + Math.log10(1 + e.rps * 10)),
      },
    }));
  return [...nodes, ...edges];
}

function cyStyle(): cytoscape.StylesheetJson {
  return [
    {
      selector: "node",
      style: {
        label: "data(label)",
        shape: "data(shape)" as unknown as cytoscape.Css.NodeShape,
        "background-color": "#ffffff",
        "border-width": 3,
        "border-color": "data(color)",
        width: 34,
        height: 34,
        "font-size": 12,
        "text-valign": "bottom",
        "text-margin-y": 4,
        color: "#1f2933",
        "text-background-color": "#ffffff",
        "text-background-opacity": 0.8,
        "text-background-padding": "1px",
      },
    },
    {
      selector: "node.box",
      style: {
        shape: "round-rectangle",
        "background-color": "#f1f5f9",
        "border-width": 1,
        "border-style": "dashed",
        "border-color": "#94a3b8",
        "text-valign": "top",
        "text-margin-y": -4,
        padding: "14px",
        "font-weight": "bold",
      },
    },
    {
      selector: "edge",
      style: {
        width: "data(width)",
        "line-color": "data(color)",
        "target-arrow-color": "data(color)",
        "target-arrow-shape": "triangle",
        "curve-style": "bezier",
        label: "data(label)",
        "font-size": 10,
        color: "#374151",
        "text-background-color": "#ffffff",
        "text-background-opacity": 0.85,
        "text-background-padding": "2px",
        "text-rotation": "autorotate",
      },
    },
    { selector: ":selected", style: { "overlay-color": "#2563eb", "overlay-opacity": 0.18, "overlay-padding": 6 } },
  ];
}
