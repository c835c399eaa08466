// The service graph of one trace: the services its spans ran in, and an
// edge from each parent span's service to its child's with the number of
// calls and how many failed. Drawn with cytoscape (loaded on first use);
// the chips under it say the same in text.
import type cytoscape from "cytoscape";
import { h } from "../dom";

/** TraceCall is one parent service → child service pair of a trace. */
export interface TraceCall {
  from: string;
  to: string;
  calls: number;
  errors: number;
}

/** TraceService is one service of a trace. */
export interface TraceService {
  name: string;
  spans: number;
  errors: number;
  root: boolean;
}

/** traceGraph draws services and calls into a new element; it stops when signal aborts. */
export function traceGraph(services: TraceService[], calls: TraceCall[], color: (svc: string) => string, signal: AbortSignal): HTMLElement {
  const failed = services.filter((s) => s.errors > 0).map((s) => s.name);
  const el = h("div", {
    class: "trace-graph",
    id: "trace-graph",
    role: "img",
    "aria-label": `Service graph of this trace: ${services.length} services, ${calls.length} calls between them${failed.length ? `; errors in ${failed.join(", ")}` : ""}.`,
  });
  import("cytoscape")
    .then(({ default: cy }) => {
      if (signal.aborted) return;
      const c = draw(cy, el, services, calls, color);
      signal.addEventListener("abort", () => c.destroy());
    })
    .catch((err) => {
      el.replaceChildren(h("div", { class: "state error" }, `The graph could not be drawn: ${err}`));
    });
  return el;
}

function draw(
  cy: typeof cytoscape,
  el: HTMLElement,
  services: TraceService[],
  calls: TraceCall[],
  color: (svc: string) => string,
): cytoscape.Core {
  const id = (s: string) => `s:${s}`;
  const c = cy({
    container: el,
    elements: [
      ...services.map((s) => ({
        group: "nodes" as const,
        data: {
          id: id(s.name),
          label: `${s.name}${s.errors ? ` (${s.errors} err)` : ""}`,
          color: s.errors ? "#dc2626" : color(s.name),
        },
        classes: s.errors ? "bad" : "",
      })),
      ...calls.map((e) => ({
        group: "edges" as const,
        data: {
          id: `${id(e.from)}>${id(e.to)}`,
          source: id(e.from),
          target: id(e.to),
          label: `×${e.calls}${e.errors ? ` · ${e.errors} err` : ""}`,
        },
        classes: e.errors ? "bad" : "",
      })),
    ],
    style: [
      {
        selector: "node",
        style: {
          label: "data(label)",
          "background-color": "#ffffff",
          "border-width": 3,
          "border-color": "data(color)",
          width: 22,
          height: 22,
          "font-size": 11,
          "text-valign": "bottom",
          "text-margin-y": 3,
        },
      },
      { selector: "node.bad", style: { "border-width": 4, color: "#b91c1c", "font-weight": "bold" } },
      {
        selector: "edge",
        style: {
          width: 1.5,
          "line-color": "#94a3b8",
          "target-arrow-color": "#94a3b8",
          "target-arrow-shape": "triangle",
          "curve-style": "bezier",
          label: "data(label)",
          "font-size": 10,
          "text-background-color": "#ffffff",
          "text-background-opacity": 0.85,
          "text-background-padding": "1px",
        },
      },
      { selector: "edge.bad", style: { "line-color": "#dc2626", "target-arrow-color": "#dc2626", color: "#b91c1c" } },
    ],
    layout: {
      name: "breadthfirst",
      directed: true,
      roots: services
        .filter((s) => s.root)
        .map((s) => "#" + cssEscape(id(s.name)))
        .join(", ") || undefined,
      spacingFactor: 1.1,
      padding: 16,
      animate: false,
      // Left to right: calls read like the timeline, and the wide, low box
      // fits. Laid out top-down in the box turned on its side, then turned.
      boundingBox: { x1: 0, y1: 0, w: el.clientHeight || 220, h: el.clientWidth || 800 },
      transform: (_n: cytoscape.NodeSingular, p: cytoscape.Position) => ({ x: p.y, y: p.x }),
    } as cytoscape.LayoutOptions,
    minZoom: 0.3,
    maxZoom: 2,
    userZoomingEnabled: false, // the page scrolls over it
    boxSelectionEnabled: false,
    autoungrabify: true,
  });
  // What the canvas shows, for the browser tests.
  el.dataset.nodes = services
    .map((s) => s.name)
    .sort()
    .join(",");
  el.dataset.edges = String(calls.length);
  return c;
}

function cssEscape(s: string): string {
  return typeof CSS !== "undefined" && CSS.escape ? CSS.escape(s) : s.replace(/[^\w-]/g, "\\$&");
}
