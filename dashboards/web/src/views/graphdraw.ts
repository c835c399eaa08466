// Drawing the service graph with cytoscape: elements and styles from the
// model, and a layout that runs only when the set of nodes or edges changes,
// so positions stay put while the numbers update.
import cytoscape from "cytoscape";
import dagre from "cytoscape-dagre";
import { ms, pct, rate } from "../format";
import type { Query } from "../graphfind";
import { badgeMark, nodeBadges, type EdgeRow, type Model, type NodeRow } from "../graphmodel";

cytoscape.use(dagre);

/** Above this many nodes the graph uses a cheaper layout and hides edge labels. */
export const bigGraph = 250;

/** healthColor is Kiali's health status as a colour. */
export const healthColor: Record<string, string> = { Healthy: "#16a34a", Degraded: "#d97706", Failure: "#dc2626" };

/** healthMark says the health in the label too: colour alone is not enough. */
export const healthMark: Record<string, string> = { Degraded: "⚠", Failure: "✖" };

/** GraphCanvas is one cytoscape instance in el. */
export class GraphCanvas {
  private cy: cytoscape.Core;
  private structure = "";
  private focused = ""; // the node the arrow keys are on
  private flat = false; // drawn without compound boxes
  private big = false; // drawn as a big graph

  constructor(private el: HTMLElement) {
    this.cy = cytoscape({
      container: el,
      style: cyStyle(),
      wheelSensitivity: 0.3,
      minZoom: 0.1,
      maxZoom: 3,
      boxSelectionEnabled: false,
      hideEdgesOnViewport: true, // pan and zoom stay smooth on big meshes
    });
  }

  /**
   * onSelect calls f with the tapped node or edge id, or "" for the
   * background. By keyboard (the canvas is focusable): arrow keys move
   * between nodes in reading order, Enter opens the focused one, Escape
   * clears the selection.
   */
  onSelect(f: (id: string) => void): void {
    this.cy.on("tap", "node, edge", (e) => {
      if (!e.target.data("box")) f(e.target.id());
    });
    this.cy.on("tap", (e) => {
      if (e.target === this.cy) f("");
    });
    this.el.addEventListener("keydown", (e) => {
      const step = { ArrowRight: 1, ArrowDown: 1, ArrowLeft: -1, ArrowUp: -1 }[e.key];
      if (step) {
        e.preventDefault();
        this.moveFocus(step);
      } else if (e.key === "Enter" && this.focused) {
        e.preventDefault();
        f(this.focused);
      } else if (e.key === "Escape") {
        f("");
      }
    });
  }

  /** moveFocus steps the keyboard focus by step nodes, top to bottom, left to right. */
  private moveFocus(step: number): void {
    const nodes = this.cy
      .nodes()
      .filter((n) => !n.data("box"))
      .toArray() as cytoscape.NodeSingular[];
    nodes.sort((a, b) => a.position("y") - b.position("y") || a.position("x") - b.position("x"));
    if (nodes.length === 0) return;
    const i = nodes.findIndex((n) => n.id() === this.focused);
    const next = i < 0 ? (step > 0 ? nodes[0] : nodes[nodes.length - 1]) : nodes[(i + step + nodes.length) % nodes.length];
    this.cy.nodes(".kbd").removeClass("kbd");
    next.addClass("kbd");
    this.focused = next.id();
    // Keep the focused node on screen without changing the zoom.
    const p = next.renderedPosition();
    if (p.x < 0 || p.y < 0 || p.x > this.cy.width() || p.y > this.cy.height()) this.cy.center(next);
    this.el.dataset.focused = next.data("name");
    this.onFocus?.(next.data("name"));
  }

  /** onFocus, when set, hears the label of the node the arrow keys moved to. */
  onFocus?: (label: string) => void;

  /**
   * draw shows m: elements are added, removed or updated in place. Without
   * boxes (or when big) the nodes are drawn flat, out of their boxes.
   */
  draw(m: Model, selected: string, boxes = true): void {
    const cy = this.cy;
    const start = performance.now();
    // Big graphs are drawn flat: compound boxes cost the layout and the
    // renderer more than the thousands of nodes in them.
    const big = m.nodes.length > bigGraph;
    const flat = big || !boxes;
    if (flat !== this.flat || big !== this.big) {
      cy.elements().remove(); // a node's parent cannot change in place
      this.flat = flat;
      this.big = big;
      // Restyled while empty, which is cheap. Big graphs: no edge labels,
      // straight edges, and no text until zoomed in far enough to read it.
      cy.style()
        .selector("edge")
        .style({ label: big ? "" : "data(label)", "curve-style": big ? "straight" : "bezier" })
        .selector("node")
        .style("min-zoomed-font-size", big ? 9 : 0)
        .update();
    }
    const els = elements(m, flat);
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
    if (key !== this.structure) {
      this.structure = key;
      // Dagre reads best but grows much faster than linearly; large meshes
      // get the breadth-first layering. (Most of its ~1.3 s at 1,000 nodes
      // is not the algorithm: a preset layout took as long.)
      this.el.dataset.layout = big ? "breadthfirst" : "dagre";
      this.el.dataset.drawStartAt = start.toFixed(0);
      // When the browser has painted the new structure, for the render
      // benchmark: milliseconds since the page's navigation started.
      const drawn = m.nodes.filter((n) => !n.box).length;
      cy.one("render", () => {
        this.el.dataset.drawnNodes = String(drawn);
        this.el.dataset.drawnAt = performance.now().toFixed(0);
      });
      const t0 = performance.now();
      cy.layout(
        big
          ? ({ name: "breadthfirst", directed: true, spacingFactor: 0.9, padding: 30, fit: true, animate: false } as cytoscape.LayoutOptions)
          : ({ name: "dagre", rankDir: "LR", nodeSep: 30, rankSep: 110, padding: 30, fit: true, animate: false } as cytoscape.LayoutOptions),
      ).run();
      this.el.dataset.layoutMs = (performance.now() - t0).toFixed(0);
    }
    this.rows = new Map<string, NodeRow | EdgeRow>([...m.nodes.map((n) => [n.id, n] as const), ...m.edges.map((e) => [e.id, e] as const)]);
    this.select(selected);
    // What the canvas shows, for screen readers and the browser tests.
    const names = m.nodes.filter((n) => !n.box).map((n) => n.label);
    this.el.dataset.nodes = names.sort().join(",");
    this.el.dataset.edges = String(m.edges.length);
    // The route and canary badges drawn, as id=route+canary.
    this.el.dataset.badges = m.nodes
      .filter((n) => !n.box && nodeBadges(n).length)
      .map((n) => `${n.id}=${nodeBadges(n).join("+")}`)
      .sort()
      .join(",");
    // Each drawn box as kind:name=members, e.g. app:reviews=3.
    this.el.dataset.boxes = cy
      .nodes(".box")
      .map((b) => `${b.data("kind")}:${b.data("name")}=${b.children().length}`)
      .sort()
      .join(",");
    this.el.dataset.updates = String(Number(this.el.dataset.updates ?? 0) + 1);
    this.applyFind();
    this.el.setAttribute("aria-label", `Service graph: ${names.length} nodes, ${m.edges.length} edges. The table view lists them.`);
  }

  private query: Query | null = null;
  private rows = new Map<string, NodeRow | EdgeRow>();

  /**
   * find marks the nodes or edges q matches and dims the rest, across
   * updates; null shows all. It returns how many matched.
   */
  find(q: Query | null): number {
    this.query = q;
    return this.applyFind();
  }

  private applyFind(): number {
    const cy = this.cy;
    cy.elements().removeClass("found dimmed");
    const q = this.query;
    if (!q) {
      delete this.el.dataset.found;
      return 0;
    }
    const matches = (el: { id(): string }) => {
      const row = this.rows.get(el.id());
      return !!row && q.test(row);
    };
    let found: cytoscape.CollectionReturnValue;
    if (q.target === "node") {
      found = cy.nodes().filter((n) => !n.hasClass("box") && matches(n));
      cy.nodes().not(found).not(".box").addClass("dimmed");
    } else {
      found = cy.edges().filter((e) => matches(e));
      cy.edges().not(found).addClass("dimmed");
      cy.nodes().not(".box").not(found.connectedNodes()).addClass("dimmed");
    }
    found.addClass("found");
    if (q.target === "node") cy.edges().filter((e) => !e.source().hasClass("found") && !e.target().hasClass("found")).addClass("dimmed");
    this.el.dataset.found = String(found.length);
    this.el.dataset.foundKind = q.target;
    return found.length;
  }

  /** zoomBy zooms around the canvas's centre. */
  zoomBy(factor: number): void {
    this.cy.zoom({ level: this.cy.zoom() * factor, renderedPosition: { x: this.cy.width() / 2, y: this.cy.height() / 2 } });
  }

  /** fit shows the whole graph. */
  fit(): void {
    this.cy.fit(undefined, 30);
  }

  /** select highlights one element ("" for none). */
  select(id: string): void {
    this.cy.elements().unselect();
    if (id) this.cy.getElementById(id).select();
  }

  /** clear removes everything, so the next draw lays out afresh. */
  clear(): void {
    this.cy.elements().remove();
    this.structure = "";
    this.focused = "";
  }

  /** resize follows a change of the container's size. */
  resize(fit = false): void {
    this.cy.resize();
    if (fit) this.cy.fit(undefined, 30);
  }

  destroy(): void {
    this.cy.destroy();
  }
}

function edgeLabel(e: EdgeRow): string {
  // Kiali's security view: a lock on mutual-TLS edges, the share when partial.
  const parts = [`${e.mtls >= 100 ? "🔒 " : e.mtls > 0 ? `mTLS ${Math.round(e.mtls)}% · ` : ""}${rate(e.rps)} rps`];
  if (e.protocol !== "tcp") parts.push(pct(e.errPct));
  if (isFinite(e.p95)) parts.push(ms(e.p95));
  return parts.join(" · ");
}

/** badgeLine is the second label line of a node with badges, e.g. "⇄ route ⚑ canary". */
function badgeLine(n: NodeRow): string {
  const b = nodeBadges(n);
  return b.length ? "\n" + b.map((x) => `${badgeMark[x]} ${x}`).join(" ") : "";
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

function elements(m: Model, flat: boolean): cytoscape.ElementDefinition[] {
  const nodes = m.nodes
    .filter((n) => !(flat && n.box))
    .sort((a, b) => a.label.localeCompare(b.label))
    .map((n) => ({
      group: "nodes" as const,
      data: {
        id: n.id,
        parent: flat ? undefined : n.raw.parent,
        name: n.label,
        label: n.box ? n.label : n.label + (n.raw.isRoot ? " ⇢" : "") + (healthMark[n.health] ? ` ${healthMark[n.health]}` : "") + badgeLine(n),
        color: healthColor[n.health] ?? "#94a3b8",
        shape: nodeShape(n),
        box: n.box,
        kind: n.raw.isBox,
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
        "text-wrap": "wrap",
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
    { selector: "node.kbd", style: { "underlay-color": "#2563eb", "underlay-opacity": 0.35, "underlay-padding": 8 } as cytoscape.Css.Node },
    { selector: "node.found", style: { "underlay-color": "#f59e0b", "underlay-opacity": 0.45, "underlay-padding": 10 } as cytoscape.Css.Node },
    { selector: "edge.found", style: { "underlay-color": "#f59e0b", "underlay-opacity": 0.45, "underlay-padding": 6 } as cytoscape.Css.Edge },
    { selector: ".dimmed", style: { opacity: 0.25 } },
  ];
}
