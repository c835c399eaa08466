// The live service graph page: Kiali's graph over SSE (drawn by
// graphdraw.ts), its type, namespace and window selectors, a sortable table
// one click away and a side panel per node or edge.
import { getJSON, promList } from "../api";
import { h, errorBox, loading, empty, keepPlace } from "../dom";
import { readGraph, type KGraph, type Model } from "../graphmodel";
import { LiveControls } from "../live";
import { param, setParams, durations, seconds } from "../state";
import type { Ctx } from "../router";
import { sidePanel } from "./graphpanel";
import { defaultTableState, graphTables } from "./graphtable";
import { bigGraph, GraphCanvas, healthColor, healthMark } from "./graphdraw";
import { FindBar } from "./graphfindbar";
import { Replay } from "./graphreplay";
import { hide } from "../graphfind";

const graphTypes: [string, string][] = [
  ["versionedApp", "Versioned app"],
  ["app", "App"],
  ["workload", "Workload"],
  ["service", "Service"],
];

/**
 * boxChoices are the box-by menu's: Kiali's boxBy sent to the API, whose
 * boxes are drawn ("" leaves the API's default: app boxes in app graphs;
 * "none" draws no box at all).
 */
const boxChoices: [string, string][] = [
  ["", "default"],
  ["app", "app"],
  ["namespace", "namespace"],
  ["app,namespace", "app and namespace"],
  ["none", "none"],
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
    box: param("box"),
  };

  const nsSelect = h("select", { id: "graph-ns", "aria-label": "Namespace" }, h("option", { value: st.ns }, st.ns));
  const typeSelect = h(
    "select",
    { id: "graph-type" },
    graphTypes.map(([v, t]) => h("option", { value: v, selected: v === st.type }, t)),
  );
  const boxSelect = h(
    "select",
    { id: "graph-box", title: "Group nodes in boxes; namespace boxes show when the graph spans several namespaces" },
    boxChoices.map(([v, t]) => h("option", { value: v, selected: v === st.box }, t)),
  );
  const durSelect = h("select", { id: "graph-dur" }, durations.map((d) => h("option", { value: d, selected: d === st.dur }, `last ${d}`)));
  const viewButtons = (["graph", "table"] as const).map((v) =>
    h("button", { type: "button", "aria-pressed": String(st.view === v), "data-view": v, onclick: () => setView(v) }, v === "graph" ? "Graph" : "Table"),
  );
  // The stream's interval is the server's; a pause only stops drawing.
  const live = new LiveControls("graph", (what) => {
    if (what === "refresh") connect();
  });
  const replay = new Replay(() => seconds(st.dur), () => connect());
  const finder = new FindBar((what) => {
    if (what === "find") finder.showFound(cy.find(finder.find));
    else redraw();
  });
  const zoomButtons = h(
    "div",
    { class: "seg", role: "group", "aria-label": "Zoom" },
    h("button", { type: "button", id: "graph-fit", title: "Show the whole graph", onclick: () => cy.fit() }, "Fit"),
    h("button", { type: "button", title: "Zoom in", "aria-label": "Zoom in", onclick: () => cy.zoomBy(1.25) }, "+"),
    h("button", { type: "button", title: "Zoom out", "aria-label": "Zoom out", onclick: () => cy.zoomBy(0.8) }, "−"),
  );
  const toolbar = h(
    "div",
    { class: "toolbar" },
    h("label", {}, "Namespace", nsSelect),
    h("label", {}, "Graph type", typeSelect),
    h("label", {}, "Traffic window", durSelect),
    h("label", {}, "Box by", boxSelect),
    h("div", { class: "seg", role: "group", "aria-label": "Display" }, viewButtons),
    zoomButtons,
    replay.toggle,
    ...live.items,
  );

  const cyEl = h("div", { class: "cy", id: "graph-cy", role: "img", tabindex: 0, "aria-label": "Service graph (loading)", "aria-describedby": "graph-keys" });
  const focusNote = h("span", { id: "graph-focus", role: "status", "aria-live": "polite" });
  const overlay = h("div", { class: "overlay" }, loading("the graph"));
  const legend = h(
    "div",
    { class: "legend" },
    Object.entries(healthColor).map(([k, c]) => h("span", {}, h("span", { class: "dot", style: `background:${c}`, "aria-hidden": "true" }), healthMark[k] ? `${k} ${healthMark[k]}` : k)),
    h("span", {}, "shapes: ▲ service · ● workload · ▢ app · ◆ unknown caller · ⇢ root"),
    h("span", {}, "edge label: 🔒 mTLS · rps · errors · p95"),
    h("span", {}, "badges: ⇄ route (a TrafficRoute applies) · ⚑ canary (open the node for its canary)"),
    h("span", { id: "graph-keys" }, "keys: arrows move between nodes, Enter opens, Esc closes"),
    focusNote,
  );
  const canvas = h("div", { class: "graph-canvas" }, cyEl, overlay, legend);
  const tableEl = h("div", { class: "graph-table", id: "graph-table" });
  const side = h("aside", { class: "side", id: "graph-side", "aria-label": "Details", hidden: true });
  const body = h("div", { class: "graph-body" }, canvas, tableEl, side);
  root.append(h("div", { class: "graph-page" }, toolbar, h("div", { class: "toolbar find" }, finder.items), replay.bar, body));

  const cy = new GraphCanvas(cyEl);
  let model: Model | null = null;
  let es: EventSource | null = null;

  function setView(v: "graph" | "table") {
    st.view = v;
    setParams({ view: v === "graph" ? null : v });
    for (const b of viewButtons) b.setAttribute("aria-pressed", String(b.dataset.view === v));
    canvas.hidden = v !== "graph";
    tableEl.hidden = v !== "table";
    if (v === "graph") {
      cy.resize(true);
    }
    drawTable();
  }

  function select(id: string) {
    st.sel = id;
    setParams({ sel: id || null });
    cy.select(id);
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
    sidePanel(side, { node, edge, model: m, dur: st.dur, end: replay.on ? replay.end : undefined, fresh, signal, close: () => select("") });
    if (wasHidden) cy.resize();
  }

  const tableState = defaultTableState();
  function drawTable() {
    if (st.view !== "table") return;
    if (!model) {
      tableEl.replaceChildren(loading("the graph"));
      return;
    }
    const m = model;
    // A live update keeps the user's sort, focus and scroll.
    keepPlace(tableEl, () => tableEl.replaceChildren(graphTables(m, st.sel, select, tableState)));
  }

  function update(g: KGraph) {
    if (live.paused && model) return; // the user studies what is drawn
    draw(g);
  }

  function draw(g: KGraph) {
    const m = readGraph(g);
    model = m;
    cyEl.dataset.at = String(g.timestamp); // the instant drawn, for the tests
    redraw();
    overlay.replaceChildren(
      m.nodes.length === 0
        ? empty(`No traffic in namespace ${st.ns} in the last ${st.dur}.`)
        : m.nodes.length > bigGraph
          ? h("div", { class: "state" }, `${m.nodes.length} nodes: edge labels are hidden; the `, h("button", { type: "button", class: "linklike", onclick: () => setView("table") }, "table"), " lists every number.")
          : "",
    );
    if (!replay.on) live.updated(new Date(g.timestamp * 1000));
    drawTable();
    drawPanel(false);
  }

  /** redraw draws the model less what the hide expression takes out. */
  function redraw() {
    if (!model) return;
    const shown = hide(model, finder.hide);
    cy.draw(shown.model, st.sel, st.box !== "none");
    finder.showHidden(shown);
    finder.showFound(cy.find(finder.find));
  }

  let past: AbortController | null = null;
  function connect() {
    es?.close();
    es = null;
    past?.abort();
    model = null;
    cy.clear();
    overlay.replaceChildren(loading("the graph"));
    drawTable();
    const p = new URLSearchParams({ namespaces: st.ns, graphType: st.type, duration: st.dur, responseTime: "95", refresh: live.refresh });
    if (st.type === "service") p.set("injectServiceNodes", "true");
    if (st.box && st.box !== "none") p.set("boxBy", st.box);
    replay.show();
    live.disable(replay.on);
    if (replay.on) {
      loadPast(p);
      return;
    }
    es = new EventSource(`/api/graph/stream?${p}`);
    live.connecting();
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
      live.state("live off", es?.readyState === EventSource.CLOSED ? "disconnected" : "reconnecting…");
      if (es?.readyState === EventSource.CLOSED) overlay.replaceChildren(errorBox(new Error("the graph stream closed"), connect));
    });
  }

  /** loadPast draws the replayed window, read once: the past does not change. */
  async function loadPast(p: URLSearchParams) {
    p.delete("refresh");
    p.set("queryTime", String(replay.end));
    live.state("live paused", `replay: live updates stop until Back to live`);
    past = new AbortController();
    const s = AbortSignal.any([signal, past.signal]);
    try {
      const g = await getJSON<KGraph>(`/api/namespaces/graph?${p}`, s);
      if (!s.aborted) draw(g);
    } catch (err) {
      if (!s.aborted) overlay.replaceChildren(errorBox(err, connect));
    }
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
  boxSelect.addEventListener("change", () => {
    st.box = boxSelect.value;
    setParams({ box: st.box || null });
    connect();
  });
  durSelect.addEventListener("change", () => {
    st.dur = durSelect.value;
    setParams({ dur: st.dur });
    connect();
  });
  cy.onSelect(select);
  cy.onFocus = (label) => (focusNote.textContent = `· ${label}`);
  side.addEventListener("keydown", (e) => {
    if (e.key !== "Escape") return;
    // Back where the keyboard user came from: the canvas or the table.
    const fromCanvas = st.view === "graph";
    select("");
    if (fromCanvas) cyEl.focus({ preventScroll: true });
  });

  loadNamespaces(nsSelect, st.ns, signal);
  setView(st.view === "table" ? "table" : "graph");
  connect();
  return () => {
    es?.close();
    past?.abort();
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

