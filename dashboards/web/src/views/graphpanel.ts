// The graph's side panel: a node's or edge's numbers, its top response codes,
// charts of rate, errors and latency over the traffic window, the PromQL
// behind each, and links to the matching traces.
import { getJSON, promRange, stepFor, type PromSample } from "../api";
import { timeChart, type Mark } from "../charts";
import { h, loading, errorBox, empty } from "../dom";
import { ms, pct, rate, time } from "../format";
import {
  badgeMark,
  canaryHref,
  edgeQueries,
  nodeQueries,
  routeText,
  traceService,
  type CanaryRef,
  type EdgeRow,
  type Model,
  type NodeRow,
  type Queries,
} from "../graphmodel";
import { href, seconds } from "../state";

export interface PanelOpts {
  node?: NodeRow;
  edge?: EdgeRow;
  model: Model;
  dur: string;
  /** the window's end in unix seconds when replaying the past; now otherwise */
  end?: number;
  fresh: boolean;
  signal: AbortSignal;
  close: () => void;
}

/** sidePanel fills el; with fresh=false it only refreshes the numbers, keeping the charts. */
export function sidePanel(el: HTMLElement, o: PanelOpts): void {
  const facts = o.edge ? edgeFacts(o.edge) : nodeFacts(o.node!);
  const live = el.querySelector(".panel-facts");
  if (!o.fresh && live) {
    live.replaceChildren(...facts);
    return;
  }
  const title = o.edge ? `${o.edge.source.label} → ${o.edge.target.label}` : o.node!.label;
  const kind = o.edge ? `${o.edge.protocol} edge` : `${o.node!.type} node`;
  const dur = seconds(o.dur);
  const step = stepFor(dur);
  const win = `${Math.max(60, step * 4)}s`;
  const q = o.edge ? edgeQueries(o.edge, o.model.graphType, win) : nodeQueries(o.node!, o.model.graphType, win);
  const closeBtn = h("button", { type: "button", class: "close", "aria-label": "Close details", onclick: o.close }, "✕");
  // Focus goes to the title, not the close button: the Enter that opened
  // the panel must not also press it. Escape closes (graph.ts).
  const heading = h("h2", { id: "panel-title", tabindex: -1 }, title);
  el.replaceChildren(
    closeBtn,
    heading,
    h("div", { class: "muted" }, kind),
    h("div", { class: "panel-facts" }, facts),
    traceLinks(o),
    charts(q, o.dur, dur, step, o.end, o.signal),
  );
  heading.focus({ preventScroll: true });
}

function nodeFacts(n: NodeRow): Node[] {
  const r = n.raw;
  const rows: [string, string | Node][] = [
    ["namespace", n.namespace],
    ["health", n.health || "–"],
    ["inbound", `${rate(n.rpsIn)} rps`],
    ["outbound", `${rate(n.rpsOut)} rps`],
  ];
  if (r.app) rows.push(["app", r.app]);
  if (r.version) rows.push(["version", r.version]);
  if (r.workload) rows.push(["workload", r.workload]);
  if (r.service) rows.push(["service", r.service]);
  if (r.isRoot) rows.push(["root", "yes: it only calls others"]);
  if (r.hasVS) rows.push(["route", h("span", { id: "panel-route" }, `${badgeMark.route} ${routeText(r)}${r.hasVS.hostnames?.length ? ` (${r.hasVS.hostnames.join(", ")})` : ""}`)]);
  if (r.canary) rows.push(["canary", canaryLink(r.canary, "panel-canary")]);
  return [kv(rows)];
}

/** canaryLink is a canary badge that opens the canary's page. */
export function canaryLink(c: CanaryRef, id?: string, focus?: string): HTMLElement {
  return h(
    "a",
    { class: "badge canary", id, href: canaryHref(c), "data-focus": focus, title: `Canary ${c.namespace}/${c.name}: open its page` },
    `${badgeMark.canary} canary ${c.namespace}/${c.name}${c.state ? ` · ${c.state}` : ""}`,
  );
}

function edgeFacts(e: EdgeRow): Node[] {
  const out: Node[] = [
    kv([
      ["health", e.health || "–"],
      ["requests", `${rate(e.rps)} rps`],
      ["share", isFinite(e.share) ? `${pct(e.share)} of ${e.source.label}'s ${e.protocol} requests` : "–"],
      ["errors", pct(e.errPct)],
      ["p95 latency", isFinite(e.p95) ? ms(e.p95) : "–"],
      ["mutual TLS", isFinite(e.mtls) ? `${pct(e.mtls)} of requests` : "–"],
      ["source principal", e.raw.sourcePrincipal || "–"],
      ["destination principal", e.raw.destPrincipal || "–"],
    ]),
  ];
  if (e.codes.length) {
    out.push(
      h("h3", {}, "Responses"),
      h(
        "table",
        { class: "data" },
        h("thead", {}, h("tr", {}, h("th", {}, e.protocol === "grpc" ? "gRPC status" : "code"), h("th", {}, "flags"), h("th", { class: "num" }, "share"))),
        h(
          "tbody",
          {},
          e.codes.slice(0, 8).map((c) => h("tr", { class: c.code !== "0" && !/^[23]/.test(c.code) ? "bad" : "" }, h("td", {}, c.code), h("td", {}, c.flag), h("td", { class: "num" }, `${c.pct.toFixed(1)}%`))),
        ),
      ),
    );
  }
  return out;
}

function kv(rows: [string, string | Node][]): HTMLElement {
  return h("dl", { class: "kv" }, rows.flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
}

function traceLinks(o: PanelOpts): HTMLElement {
  const target = o.edge ? o.edge.target : o.node!;
  const svc = traceService(target);
  if (!svc || target.type === "unknown") return h("p", {}, "");
  // A replayed window searches the same past range.
  const range = o.end ? { lookback: "custom", start: (o.end - seconds(o.dur)) * 1000, end: o.end * 1000 } : { lookback: o.dur };
  const what = o.edge ? "this edge's callee" : svc;
  return h(
    "p",
    {},
    h("a", { href: href("/traces", { service: svc, ...range, run: 1 }), id: "panel-traces" }, `Traces of ${what}`),
    " · ",
    h("a", { href: href("/traces", { service: svc, ...range, tags: "error=true", run: 1 }) }, "failed ones"),
  );
}

function charts(q: Queries, durName: string, dur: number, step: number, at: number | undefined, signal: AbortSignal): HTMLElement {
  const box = h("div", {});
  const end = at ?? Math.floor(Date.now() / 1000);
  const start = end - dur;
  const width = 390;
  // The slowest sampled requests: listed, and drawn on the latency chart.
  const ex = exemplars(q.selector, start, end, signal);
  const one = (title: string, queries: { name: string; q: string }[], fmt: (v: number) => string, marks?: Promise<Mark[]>) => {
    const chart = h("div", { class: "chart" }, loading(title.toLowerCase()));
    box.append(
      h("h3", {}, title),
      chart,
      ...queries.map((x) => h("a", { class: "promql", href: href("/query", { q: x.q, range: durName, tab: "chart" }), title: "Open in the metrics console" }, h("code", {}, x.q))),
    );
    Promise.all([Promise.all(queries.map((x) => promRange(x.q, start, end, step, signal))), marks?.catch(() => []) ?? []])
      .then(([rs, marks]) => {
        const matrix: PromSample[] = rs.flatMap((r, i) => (r.result as PromSample[]).map((s) => ({ ...s, metric: { __name__: queries[i].name } })));
        chart.replaceChildren();
        // The first series' latest point, for the browser tests: it must
        // be the number the graph shows for the same window.
        const last = matrix[0]?.values?.at(-1);
        if (last) Object.assign(chart.dataset, { lastAt: String(last[0]), last: last[1] });
        if (matrix.length === 0) chart.append(empty("No data in this window."));
        else timeChart(chart, matrix, { width, height: 130, fmt, xRange: [start, end], label: (m) => m.__name__, marks });
      })
      .catch((err) => {
        if (!signal.aborted) chart.replaceChildren(errorBox(err));
      });
  };
  one("Request rate", [{ name: "rps", q: q.rate }], (v) => `${rate(v)}/s`);
  one("Error rate", [{ name: "errors %", q: q.errors }], (v) => pct(v));
  one(
    "Latency",
    q.latency.map((l) => ({ name: l.p, q: l.q })),
    ms,
    ex.then((list) => list.map((e) => ({ t: e.timestamp, y: parseFloat(e.value), href: `/traces/${e.labels.trace_id}`, label: `trace ${e.labels.trace_id.slice(0, 16)}: ${ms(parseFloat(e.value))}` }))),
  );
  box.append(h("h3", {}, "Slowest sampled requests"), slowest(ex, signal));
  return box;
}

interface ExemplarSeries {
  exemplars: Exemplar[];
}

interface Exemplar {
  labels: Record<string, string>;
  value: string;
  timestamp: number;
}

/**
 * exemplars fetches the selector's latency exemplars that carry a trace id:
 * the slowest few, one per trace.
 */
async function exemplars(selector: string, start: number, end: number, signal: AbortSignal): Promise<Exemplar[]> {
  // Exemplars may sit on either side's report (proxyless apps attach them
  // to the callee's), so look at both.
  const sel = selector
    .split(", ")
    .filter((m) => !m.startsWith("reporter="))
    .join(", ");
  const p = new URLSearchParams({ query: `istio_request_duration_milliseconds_bucket{${sel}}`, start: String(start), end: String(end) });
  const r = await getJSON<{ data: ExemplarSeries[] | null }>(`/api/v1/query_exemplars?${p}`, signal);
  const seen = new Set<string>();
  return (r.data ?? [])
    .flatMap((s) => s.exemplars)
    .filter((e) => e.labels.trace_id && !seen.has(e.labels.trace_id) && seen.add(e.labels.trace_id))
    .sort((a, b) => parseFloat(b.value) - parseFloat(a.value))
    .slice(0, 5);
}

/** slowest lists the exemplars, linked to their traces. */
function slowest(ex: Promise<Exemplar[]>, signal: AbortSignal): HTMLElement {
  const el = h("div", { id: "panel-exemplars" }, loading("exemplars"));
  ex.then((list) => {
    el.replaceChildren(
      list.length === 0
        ? empty("No exemplars in this window.")
        : h(
            "ul",
            {},
            list.map((e) =>
              h("li", {}, h("a", { href: `/traces/${e.labels.trace_id}`, class: "mono" }, e.labels.trace_id.slice(0, 16)), ` ${ms(parseFloat(e.value))} at ${time(new Date(e.timestamp * 1000))}`),
            ),
          ),
    );
  }).catch((err) => {
    if (!signal.aborted) el.replaceChildren(errorBox(err));
  });
  return el;
}
