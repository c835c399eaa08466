// Traces: a Jaeger-style search with a time × duration scatter plot, and
// (at /traces/<id>) one trace's timeline.
import { jaeger, spanIsError, type JaegerTrace } from "../api";
import { scatterChart } from "../charts";
import { h, loading, errorBox, empty } from "../dom";
import { dateTime, localInput, us, ms } from "../format";
import { navigate, type Ctx } from "../router";
import { href, param, params, seconds, setParams } from "../state";
import { traceView } from "./trace";

/** lastSearchKey stores the last search's query string for the trace page's back link. */
export const lastSearchKey = "glassmesh.traces.search";

const lookbacks = ["5m", "15m", "1h", "3h", "6h", "12h", "24h", "72h"];

/**
 * lookbackChoices is the menu, with the asked lookback in its place when
 * it is another valid one (the graph's windows: 1m, 10m, 30m, 1d...).
 */
function lookbackChoices(asked: string): string[] {
  if (asked === "custom" || lookbacks.includes(asked) || !(seconds(asked) > 0)) return lookbacks;
  return [...lookbacks, asked].sort((a, b) => seconds(a) - seconds(b));
}

/** tracesView is the Traces page: search, or one trace when the path names it. */
export function tracesView(ctx: Ctx): void {
  if (ctx.rest[0]) {
    traceView(ctx, ctx.rest[0]);
    return;
  }
  const { root, signal } = ctx;
  const f = {
    service: h("select", { name: "service", id: "tr-service", required: true }, h("option", { value: param("service") }, param("service") || "loading…")),
    operation: h("select", { name: "operation", id: "tr-operation" }, h("option", { value: "" }, "all operations")),
    tags: h("input", { name: "tags", id: "tr-tags", placeholder: "error=true http.status_code=500", value: param("tags") }),
    lookback: h(
      "select",
      { name: "lookback", id: "tr-lookback" },
      lookbackChoices(param("lookback", "1h")).map((l) => h("option", { value: l, selected: l === param("lookback", "1h") }, `last ${l}`)),
      h("option", { value: "custom", selected: param("lookback") === "custom" }, "custom range"),
    ),
    start: h("input", { name: "start", id: "tr-start", type: "datetime-local", step: 1, value: localInput(param("start")) }),
    end: h("input", { name: "end", id: "tr-end", type: "datetime-local", step: 1, value: localInput(param("end")) }),
    minDuration: h("input", { name: "minDuration", id: "tr-min", placeholder: "e.g. 5ms", value: param("minDuration"), size: 6 }),
    maxDuration: h("input", { name: "maxDuration", id: "tr-max", placeholder: "e.g. 1s", value: param("maxDuration"), size: 6 }),
    limit: h("input", { name: "limit", id: "tr-limit", type: "number", min: 1, max: 1500, value: param("limit", "20") }),
  };
  const form = h(
    "form",
    { class: "form card", id: "trace-search", "aria-label": "Find traces" },
    h("h1", {}, "Find traces"),
    h("label", {}, "Service", f.service),
    h("label", {}, "Operation", f.operation),
    h("label", {}, "Tags (key=value, space-separated)", f.tags),
    h("label", {}, "Time range", f.lookback),
    // One above the other: side by side, date-times with seconds are cut off.
    h("div", { class: "stack", id: "tr-range" }, h("label", {}, "From", f.start), h("label", {}, "To", f.end)),
    h("div", { class: "row" }, h("label", {}, "Min duration", f.minDuration), h("label", {}, "Max duration", f.maxDuration)),
    h("label", {}, "Limit", f.limit),
    h("button", { type: "submit", class: "primary", id: "tr-find" }, "Find traces"),
  );
  const results = h("section", { class: "results", id: "trace-results", "aria-live": "polite" }, empty("Pick a service and search."));
  root.append(h("div", { class: "traces-page" }, form, results));

  let search: AbortController | null = null;
  const run = async () => {
    search?.abort();
    search = new AbortController();
    const s = AbortSignal.any([signal, search.signal]);
    const q = new URLSearchParams({ service: f.service.value, limit: f.limit.value || "20" });
    if (f.lookback.value !== "custom") q.set("lookback", f.lookback.value);
    else {
      // Jaeger takes start and end in microseconds.
      const from = Date.parse(f.start.value);
      const to = f.end.value ? Date.parse(f.end.value) : Date.now();
      if (isNaN(from) || isNaN(to) || from >= to) {
        results.replaceChildren(errorBox(new Error("pick a From time before the To time")));
        return;
      }
      q.set("start", String(from * 1000));
      q.set("end", String(to * 1000));
    }
    if (f.operation.value) q.set("operation", f.operation.value);
    if (f.minDuration.value) q.set("minDuration", f.minDuration.value);
    if (f.maxDuration.value) q.set("maxDuration", f.maxDuration.value);
    try {
      const tags = parseTags(f.tags.value);
      if (Object.keys(tags).length) q.set("tags", JSON.stringify(tags));
    } catch (err) {
      results.replaceChildren(errorBox(err));
      return;
    }
    results.replaceChildren(loading("traces"));
    sessionStorage.setItem(lastSearchKey, location.search);
    try {
      const traces = await jaeger<JaegerTrace[]>(`/api/traces?${q}`, s);
      showResults(results, traces ?? []);
    } catch (err) {
      if (!s.aborted) results.replaceChildren(errorBox(err, run));
    }
  };

  form.addEventListener("submit", (e) => {
    e.preventDefault();
    setParams(
      {
        service: f.service.value,
        operation: f.operation.value,
        tags: f.tags.value.trim(),
        lookback: f.lookback.value,
        start: f.lookback.value === "custom" && f.start.value ? Date.parse(f.start.value) : null,
        end: f.lookback.value === "custom" && f.end.value ? Date.parse(f.end.value) : null,
        minDuration: f.minDuration.value,
        maxDuration: f.maxDuration.value,
        limit: f.limit.value === "20" ? null : f.limit.value,
        run: 1,
      },
      true,
    );
    run();
  });
  const showRange = () => (form.querySelector<HTMLElement>("#tr-range")!.hidden = f.lookback.value !== "custom");
  f.lookback.addEventListener("change", () => {
    if (f.lookback.value === "custom" && !f.start.value) {
      f.start.value = localInput(String(Date.now() - 3600_000));
      f.end.value = localInput(String(Date.now()));
    }
    showRange();
  });
  showRange();
  f.service.addEventListener("change", () => loadOperations(f.service.value, f.operation, "", signal));

  jaeger<string[]>("/api/services", signal)
    .then((svcs) => {
      const want = param("service");
      const list = [...(svcs ?? [])].sort();
      if (want && !list.includes(want)) list.unshift(want);
      if (list.length === 0) {
        f.service.replaceChildren(h("option", { value: "" }, "no services yet"));
        return;
      }
      f.service.replaceChildren(...list.map((s) => h("option", { value: s, selected: s === want }, s)));
      loadOperations(f.service.value, f.operation, param("operation"), signal);
      if (params().has("run")) run();
    })
    .catch((err) => {
      if (!signal.aborted) results.replaceChildren(errorBox(err));
    });
}

async function loadOperations(service: string, sel: HTMLSelectElement, want: string, signal: AbortSignal) {
  sel.replaceChildren(h("option", { value: "" }, "all operations"));
  if (!service) return;
  try {
    const ops = await jaeger<string[]>(`/api/services/${encodeURIComponent(service)}/operations`, signal);
    sel.append(...(ops ?? []).sort().map((o) => h("option", { value: o, selected: o === want }, o)));
  } catch {
    /* operations are optional; the search still works */
  }
}

/** parseTags reads `k=v k2="v 2"` into Jaeger's tags object. */
export function parseTags(s: string): Record<string, string> {
  const out: Record<string, string> = {};
  const re = /\s*([^=\s]+)=(?:"([^"]*)"|(\S*))/y;
  let rest = s.trim();
  while (rest) {
    re.lastIndex = 0;
    const m = re.exec(rest);
    if (!m) throw new Error(`tags: cannot read "${rest}"; write key=value pairs separated by spaces`);
    out[m[1]] = m[2] ?? m[3];
    rest = rest.slice(re.lastIndex).trim();
  }
  return out;
}

interface Summary {
  t: JaegerTrace;
  rootService: string;
  rootOp: string;
  start: number; // µs
  duration: number; // µs
  errors: number;
  services: Map<string, number>;
  /** spans whose parent is not (yet) in the trace: its root, span count and duration may change */
  orphans: number;
}

function summarize(t: JaegerTrace): Summary {
  const ids = new Set(t.spans.map((s) => s.spanID));
  const root = t.spans.find((s) => !(s.references ?? []).some((r) => ids.has(r.spanID))) ?? t.spans[0];
  const start = Math.min(...t.spans.map((s) => s.startTime));
  const end = Math.max(...t.spans.map((s) => s.startTime + s.duration));
  const services = new Map<string, number>();
  for (const s of t.spans) {
    const n = t.processes[s.processID]?.serviceName ?? "?";
    services.set(n, (services.get(n) ?? 0) + 1);
  }
  const orphans = t.spans.filter((s) => (s.references ?? []).some((r) => r.refType === "CHILD_OF" && !ids.has(r.spanID))).length;
  return {
    t,
    orphans,
    rootService: t.processes[root?.processID]?.serviceName ?? "?",
    rootOp: root?.operationName ?? "?",
    start,
    duration: end - start,
    errors: t.spans.filter(spanIsError).length,
    services,
  };
}

/**
 * servicePalette holds the services' colours: none of the health colours
 * (red, amber, green), so a service never reads as a failure.
 */
const servicePalette = ["#2563eb", "#7c3aed", "#0891b2", "#db2777", "#4f46e5", "#0d9488", "#9333ea", "#64748b", "#0369a1", "#86198f", "#1e40af", "#0e7490"];
const serviceSlots = new Map<string, number>();

/**
 * serviceColor gives each service name one colour across the traces views:
 * its hash picks a slot, and a slot another service already has passes to
 * the next free one, so services seen together differ (up to the palette's
 * size).
 */
export function serviceColor(name: string): string {
  let slot = serviceSlots.get(name);
  if (slot === undefined) {
    let x = 0;
    for (const c of name) x = (x * 31 + c.charCodeAt(0)) >>> 0;
    const taken = new Set(serviceSlots.values());
    slot = x % servicePalette.length;
    for (let i = 0; i < servicePalette.length && taken.has(slot); i++) slot = (slot + 1) % servicePalette.length;
    serviceSlots.set(name, slot);
  }
  return servicePalette[slot];
}

function showResults(el: HTMLElement, traces: JaegerTrace[]) {
  if (traces.length === 0) {
    el.replaceChildren(empty("No traces match. Widen the lookback or drop a filter."));
    return;
  }
  const rows = traces.filter((t) => t.spans?.length).map(summarize);
  let order = param("sort", "recent");
  const chart = h("div", { class: "card", id: "trace-scatter" });
  const list = h("div", { id: "trace-list" });
  const sortSel = h(
    "select",
    { "aria-label": "Sort traces" },
    [
      ["recent", "Most recent"],
      ["longest", "Longest first"],
      ["shortest", "Shortest first"],
      ["spans", "Most spans"],
      ["errors", "Most errors"],
    ].map(([v, t]) => h("option", { value: v, selected: v === order }, t)),
  );
  const drawList = () => {
    const by: Record<string, (a: Summary, b: Summary) => number> = {
      recent: (a, b) => b.start - a.start,
      longest: (a, b) => b.duration - a.duration,
      shortest: (a, b) => a.duration - b.duration,
      spans: (a, b) => b.t.spans.length - a.t.spans.length,
      errors: (a, b) => b.errors - a.errors,
    };
    list.replaceChildren(...[...rows].sort(by[order] ?? by.recent).map(traceItem));
  };
  sortSel.addEventListener("change", () => {
    order = sortSel.value;
    setParams({ sort: order === "recent" ? null : order });
    drawList();
  });
  el.replaceChildren(
    h("div", { class: "toolbar" }, h("strong", { id: "trace-count" }, `${rows.length} trace${rows.length === 1 ? "" : "s"}`), h("label", {}, "Sort", sortSel)),
    chart,
    list,
  );
  drawList();
  scatterChart(
    chart,
    rows.map((r) => ({ t: r.start / 1e6, y: r.duration / 1000, error: r.errors > 0, id: r.t.traceID })),
    { width: Math.max(300, chart.clientWidth - 24), height: 170, fmt: ms, onPick: (id) => navigate(`/traces/${id}`) },
  );
}

function traceItem(r: Summary): HTMLElement {
  return h(
    "a",
    { class: "trace-item", href: href(`/traces/${r.t.traceID}`), "data-trace-id": r.t.traceID, "data-incomplete": r.orphans ? "true" : "false" },
    h(
      "div",
      { class: "toolbar", style: "padding:0" },
      h("span", { class: "title" }, `${r.rootService}: ${r.rootOp}`),
      h("span", { class: "muted mono" }, r.t.traceID.slice(0, 12)),
      h("span", { style: "margin-left:auto" }, us(r.duration)),
    ),
    h(
      "div",
      {},
      `${r.t.spans.length} spans`,
      r.errors ? h("span", { class: "err" }, ` · ${r.errors} error${r.errors === 1 ? "" : "s"}`) : "",
      r.orphans
        ? h(
            "span",
            { class: "warn incomplete", title: "Some spans' parents have not arrived (yet): the root, span count and duration shown may change." },
            ` · incomplete: ${r.orphans} span${r.orphans === 1 ? "'s parent" : "s' parents"} missing`,
          )
        : "",
      h("span", { class: "muted" }, ` · ${dateTime(new Date(r.start / 1000))}`),
    ),
    h(
      "div",
      {},
      [...r.services].map(([s, n]) => h("span", { class: "svc-chip", style: `border-color:${serviceColor(s)}` }, `${s} (${n})`)),
    ),
  );
}
