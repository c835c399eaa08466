// Time-series and scatter charts on uPlot.
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import type { PromSample } from "./api";

const palette = ["#2563eb", "#dc2626", "#16a34a", "#d97706", "#7c3aed", "#0891b2", "#db2777", "#65a30d", "#9333ea", "#ea580c"];

/** color picks a stable palette colour for index i. */
export function color(i: number): string {
  return palette[i % palette.length];
}

export interface ChartOpts {
  width: number;
  height?: number;
  /** formats a y value for the axis and legend */
  fmt?: (v: number) => string;
  /** names a series from its labels */
  label?: (m: Record<string, string>) => string;
  /** at most this many series are drawn (the legend says how many were left out) */
  maxSeries?: number;
  /** the time range shown (unix seconds), so a series with few samples is not stretched */
  xRange?: [number, number];
  /** points drawn over the lines as links, such as exemplars opening their traces */
  marks?: Mark[];
}

/** Mark is one linked point on a time chart. */
export interface Mark {
  t: number; // unix seconds
  y: number;
  href: string;
  label: string;
}

/** seriesName is Prometheus's own notation: name{k="v", ...}. */
export function seriesName(m: Record<string, string>): string {
  const { __name__, ...rest } = m;
  const labels = Object.entries(rest)
    .map(([k, v]) => `${k}="${v}"`)
    .join(", ");
  return `${__name__ ?? ""}{${labels}}`;
}

/**
 * timeChart draws a Prometheus matrix result into el. Series are aligned on
 * the union of their timestamps (a range query's are on one step grid).
 */
export function timeChart(el: HTMLElement, matrix: PromSample[], o: ChartOpts): uPlot {
  const max = o.maxSeries ?? 40;
  const shown = matrix.slice(0, max);
  const ts = new Set<number>();
  for (const s of shown) for (const [t] of s.values ?? []) ts.add(t);
  const xs = [...ts].sort((a, b) => a - b);
  const at = new Map(xs.map((t, i) => [t, i]));
  const data: (number | null)[][] = [xs];
  for (const s of shown) {
    const ys: (number | null)[] = new Array(xs.length).fill(null);
    for (const [t, v] of s.values ?? []) {
      const f = parseFloat(v);
      ys[at.get(t)!] = isFinite(f) ? f : null;
    }
    data.push(ys);
  }
  const fmt = o.fmt ?? ((v: number) => String(v));
  const name = o.label ?? seriesName;
  const marks = o.marks ?? [];
  // Links, not canvas dots: they can be clicked, focused and tested.
  const links = marks.map((m) => Object.assign(document.createElement("a"), { className: "mark", href: m.href, title: m.label, ariaLabel: m.label }));
  const scales: uPlot.Scales = { x: o.xRange ? { time: true, range: () => o.xRange! } : { time: true } };
  if (marks.length) {
    // The y axis reaches the marks too: an exemplar is often above p99.
    const lo = Math.min(...marks.map((m) => m.y));
    const hi = Math.max(...marks.map((m) => m.y));
    scales.y = { range: (_u, min, max) => uPlot.rangeNum(Math.min(min ?? lo, lo), Math.max(max ?? hi, hi), 0.1, true) };
  }
  const opts: uPlot.Options = {
    width: o.width,
    height: o.height ?? 160,
    legend: { show: true, live: true },
    cursor: { drag: { x: true, y: false } },
    scales,
    hooks: marks.length ? { draw: [(u) => placeMarks(u, marks, links)] } : {},
    axes: [timeAxis, valueAxis(fmt)],
    series: [
      {},
      ...shown.map((s, i) => ({
        label: name(s.metric) || "value",
        stroke: color(i),
        width: 1.5,
        spanGaps: false,
        value: (_u: uPlot, v: number | null) => (v == null ? "–" : fmt(v)),
      })),
    ],
  };
  const u = new uPlot(opts, data as uPlot.AlignedData, el);
  u.over.append(...links);
  placeMarks(u, marks, links);
  if (matrix.length > max) {
    el.append(Object.assign(document.createElement("div"), { className: "muted", textContent: `${matrix.length - max} more series not drawn` }));
  }
  return u;
}

/** placeMarks moves each mark's link to its point; ones outside the plot are hidden. */
function placeMarks(u: uPlot, marks: Mark[], links: HTMLAnchorElement[]): void {
  links.forEach((a, i) => {
    const m = marks[i];
    const x = u.valToPos(m.t, "x");
    const y = u.valToPos(m.y, "y");
    const inside = x >= 0 && y >= 0 && x <= u.over.clientWidth && y <= u.over.clientHeight;
    a.hidden = !inside;
    a.style.left = `${x}px`;
    a.style.top = `${y}px`;
  });
}

export interface Point {
  t: number; // unix seconds
  y: number;
  error: boolean;
  id: string;
}

const pad2 = (n: number) => String(n).padStart(2, "0");

/**
 * timeAxis labels times in 24-hour form, as the rest of the UI writes them:
 * HH:MM, with seconds when a tick falls inside a minute, and the date when
 * the range spans days (uPlot's default writes ":30" or "1:05pm").
 */
const timeAxis: uPlot.Axis = {
  size: 28,
  values: (u, splits) => {
    const span = (u.scales.x.max ?? 0) - (u.scales.x.min ?? 0);
    const secs = splits.some((t) => t % 60 !== 0);
    return splits.map((t) => {
      const d = new Date(t * 1000);
      const hm = `${pad2(d.getHours())}:${pad2(d.getMinutes())}${secs ? `:${pad2(d.getSeconds())}` : ""}`;
      return span > 86400 ? `${pad2(d.getMonth() + 1)}-${pad2(d.getDate())} ${hm}` : hm;
    });
  },
};

/** valueAxis is as wide as its longest label, so none is clipped. */
function valueAxis(fmt: (v: number) => string): uPlot.Axis {
  return {
    values: (_u, vals) => vals.map((v) => (v == null ? "" : fmt(v))),
    size: (_u, values) => Math.max(40, 14 + 7 * Math.max(0, ...(values ?? []).map((v) => String(v).length))),
  };
}

/**
 * scatterChart draws points (time × value), errors in red; clicking a point
 * calls onPick with its id.
 */
export function scatterChart(el: HTMLElement, points: Point[], o: ChartOpts & { onPick: (id: string) => void }): uPlot {
  const sorted = [...points].sort((a, b) => a.t - b.t);
  const xs = sorted.map((p) => p.t);
  const ok = sorted.map((p) => (p.error ? null : p.y));
  const bad = sorted.map((p) => (p.error ? p.y : null));
  const fmt = o.fmt ?? ((v: number) => String(v));
  const pts = (fill: string) => ({ show: true, size: 8, fill, stroke: fill });
  const u = new uPlot(
    {
      width: o.width,
      height: o.height ?? 180,
      scales: { x: { time: true } },
      cursor: { focus: { prox: 16 }, points: { size: 10 } },
      axes: [timeAxis, valueAxis(fmt)],
      series: [
        {},
        { label: "traces", stroke: "#2563eb", paths: () => null, points: pts("#2563eb"), value: (_u, v) => (v == null ? "–" : fmt(v)) },
        { label: "with errors", stroke: "#dc2626", paths: () => null, points: pts("#dc2626"), value: (_u, v) => (v == null ? "–" : fmt(v)) },
      ],
    },
    [xs, ok, bad] as uPlot.AlignedData,
    el,
  );
  u.over.addEventListener("click", () => {
    const i = u.cursor.idx;
    if (i != null && i >= 0 && sorted[i]) o.onPick(sorted[i].id);
  });
  u.over.style.cursor = "pointer";
  return u;
}
