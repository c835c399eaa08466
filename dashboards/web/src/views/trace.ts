// One trace: header, the services it crossed, and a span timeline (Gantt)
// whose rows open the span's tags, process and events.
import { jaeger, spanIsError, HTTPError, type JaegerSpan, type JaegerTag, type JaegerTrace } from "../api";
import { h, loading, errorBox } from "../dom";
import { dateTime, us } from "../format";
import type { Ctx } from "../router";
import { href } from "../state";
import { lastSearchKey, serviceColor } from "./traces";
import { traceGraph, type TraceCall, type TraceService } from "./tracegraph";

interface Row {
  span: JaegerSpan;
  depth: number;
  service: string;
  error: boolean;
}

/** traceView renders /traces/<id>. */
export function traceView({ root, signal }: Ctx, id: string): void {
  const load = async () => {
    root.replaceChildren(loading(`trace ${id}`));
    try {
      const data = await jaeger<JaegerTrace[]>(`/api/traces/${encodeURIComponent(id)}`, signal);
      const t = data?.[0];
      if (!t || !t.spans?.length) throw new Error(`trace ${id} has no spans`);
      root.replaceChildren(render(t, signal));
    } catch (err) {
      if (signal.aborted) return;
      const msg = err instanceof HTTPError && err.status === 404 ? new Error(`Trace ${id} is not stored (it may have aged out of retention).`) : err;
      root.replaceChildren(h("p", {}, backLink()), errorBox(msg, load));
    }
  };
  load();
}

/** backLink returns to the last search, which the search page remembers. */
function backLink(): HTMLElement {
  return h("a", { href: `/traces${sessionStorage.getItem(lastSearchKey) ?? ""}` }, "← Find traces");
}

/** order walks spans depth-first from the roots, children by start time. */
function order(t: JaegerTrace): Row[] {
  const ids = new Set(t.spans.map((s) => s.spanID));
  const kids = new Map<string, JaegerSpan[]>();
  const roots: JaegerSpan[] = [];
  for (const s of t.spans) {
    const parent = (s.references ?? []).find((r) => ids.has(r.spanID) && r.spanID !== s.spanID);
    if (parent) kids.set(parent.spanID, [...(kids.get(parent.spanID) ?? []), s]);
    else roots.push(s);
  }
  const rows: Row[] = [];
  const seen = new Set<string>();
  const walk = (s: JaegerSpan, depth: number) => {
    if (seen.has(s.spanID)) return; // a reference cycle in bad data
    seen.add(s.spanID);
    rows.push({ span: s, depth, service: t.processes[s.processID]?.serviceName ?? "?", error: spanIsError(s) });
    for (const c of (kids.get(s.spanID) ?? []).sort((a, b) => a.startTime - b.startTime)) walk(c, depth + 1);
  };
  for (const r of roots.sort((a, b) => a.startTime - b.startTime)) walk(r, 0);
  return rows;
}

function render(t: JaegerTrace, signal: AbortSignal): HTMLElement {
  const rows = order(t);
  const start = Math.min(...t.spans.map((s) => s.startTime));
  const end = Math.max(...t.spans.map((s) => s.startTime + s.duration));
  const total = Math.max(1, end - start);
  const root = rows[0];
  const errors = rows.filter((r) => r.error).length;

  const { services, calls } = serviceGraph(rows);
  const ticks = [0, 0.25, 0.5, 0.75, 1].map((f) => h("span", { style: `left:${f * 100}%` }, us(total * f)));
  const gantt = h(
    "div",
    { class: "gantt", id: "trace-gantt", role: "list", "aria-label": `${rows.length} spans` },
    h("div", { class: "head", "aria-hidden": "true" }, h("div", { class: "name" }, "Service: operation"), h("div", { class: "ticks" }, ticks)),
  );
  rows.forEach((r) => gantt.append(spanRow(r, t, start, total)));
  gantt.addEventListener("keydown", (e) => {
    const cur = (e.target as HTMLElement).closest(".row") as HTMLElement | null;
    if (!cur || (e.key !== "ArrowDown" && e.key !== "ArrowUp")) return;
    e.preventDefault();
    const all = [...gantt.querySelectorAll<HTMLElement>(".row")];
    all[Math.max(0, Math.min(all.length - 1, all.indexOf(cur) + (e.key === "ArrowDown" ? 1 : -1)))]?.focus();
  });

  return h(
    "div",
    {},
    h("p", {}, backLink()),
    h("h1", { id: "trace-title" }, `${root.service}: ${root.span.operationName}`),
    h(
      "div",
      { class: "toolbar" },
      h("span", {}, h("span", { class: "muted" }, "Trace "), h("code", {}, t.traceID)),
      h("span", {}, h("span", { class: "muted" }, "Started "), dateTime(new Date(start / 1000))),
      h("span", {}, h("span", { class: "muted" }, "Duration "), us(total)),
      h("span", {}, h("span", { class: "muted" }, "Spans "), String(rows.length)),
      h("span", {}, h("span", { class: "muted" }, "Depth "), String(Math.max(...rows.map((r) => r.depth)) + 1)),
      errors ? h("span", { class: "badge bad" }, `${errors} error${errors === 1 ? "" : "s"}`) : h("span", { class: "badge ok" }, "no errors"),
    ),
    h(
      "section",
      { class: "card", id: "trace-services", "aria-labelledby": "trace-services-title" },
      h("h2", { id: "trace-services-title" }, "Services"),
      traceGraph(services, calls, serviceColor, signal),
      calls.length
        ? h(
            "div",
            {},
            calls.map((c) =>
              h("span", { class: `svc-chip${c.errors ? " bad" : ""}`, style: `border-color:${serviceColor(c.to)}` }, `${c.from} → ${c.to} ×${c.calls}${c.errors ? ` (${c.errors} failed)` : ""}`),
            ),
          )
        : h("div", { class: "muted" }, `Every span ran in ${root.service}.`),
    ),
    (t.warnings ?? []).length ? h("div", { class: "state error" }, (t.warnings ?? []).join("; ")) : null,
    gantt,
  );
}

/**
 * serviceGraph is the trace's services (span and error counts) and its
 * parent service → child service calls; a span calling within its own
 * service adds no edge.
 */
function serviceGraph(rows: Row[]): { services: TraceService[]; calls: TraceCall[] } {
  const byID = new Map(rows.map((r) => [r.span.spanID, r]));
  const services = new Map<string, TraceService>();
  const calls = new Map<string, TraceCall>();
  for (const r of rows) {
    const s = services.get(r.service) ?? { name: r.service, spans: 0, errors: 0, root: false };
    services.set(r.service, s);
    s.spans++;
    if (r.error) s.errors++;
    if (r.depth === 0) s.root = true;
    const parent = (r.span.references ?? []).map((x) => byID.get(x.spanID)).find(Boolean);
    if (!parent || parent.service === r.service) continue;
    const k = `${parent.service}\n${r.service}`;
    const c = calls.get(k) ?? { from: parent.service, to: r.service, calls: 0, errors: 0 };
    calls.set(k, c);
    c.calls++;
    if (r.error) c.errors++;
  }
  return { services: [...services.values()], calls: [...calls.values()] };
}

function spanRow(r: Row, t: JaegerTrace, start: number, total: number): HTMLElement {
  const s = r.span;
  const left = ((s.startTime - start) / total) * 100;
  const width = Math.max(0.2, (s.duration / total) * 100);
  const c = serviceColor(r.service);
  const label = `${r.service}: ${s.operationName}`;
  const row = h(
    "div",
    { class: "row", role: "listitem", tabindex: 0, "aria-expanded": "false", "data-span-id": s.spanID, "aria-label": `${label}, ${us(s.duration)}${r.error ? ", error" : ""}` },
    h(
      "div",
      { class: "name", style: `padding-left:${6 + r.depth * 14}px`, title: label },
      r.error ? h("span", { class: "errmark", title: "error" }, "!") : null,
      h("span", { class: "dot", style: `background:${c}` }),
      h("strong", {}, r.service),
      " ",
      s.operationName,
    ),
    h(
      "div",
      { class: "bar-cell" },
      h("div", { class: "bar", style: `left:${left}%;width:${width}%;background:${r.error ? "#dc2626" : c}` }),
      h("span", { class: "bar-label", style: left + width > 80 ? `right:${100 - left + 0.5}%` : `left:${left + width + 0.5}%` }, us(s.duration)),
    ),
  );
  let detail: HTMLElement | null = null;
  const toggle = () => {
    if (detail) {
      detail.remove();
      detail = null;
      row.classList.remove("selected");
      row.setAttribute("aria-expanded", "false");
      return;
    }
    detail = spanDetail(r, t, start);
    row.append(detail);
    row.classList.add("selected");
    row.setAttribute("aria-expanded", "true");
  };
  row.addEventListener("click", (e) => {
    if (detail && detail.contains(e.target as Node)) return;
    toggle();
  });
  row.addEventListener("keydown", (e) => {
    if ((e.key === "Enter" || e.key === " ") && e.target === row) {
      e.preventDefault();
      toggle();
    }
  });
  return row;
}

function tagTable(tags: JaegerTag[] | null | undefined): HTMLElement {
  if (!tags?.length) return h("div", { class: "muted" }, "none");
  return h(
    "table",
    { class: "data" },
    h("tbody", {}, tags.map((t) => h("tr", { class: t.key === "error" ? "bad" : "" }, h("td", { class: "mono" }, t.key), h("td", { class: "mono" }, String(t.value))))),
  );
}

function spanDetail(r: Row, t: JaegerTrace, start: number): HTMLElement {
  const s = r.span;
  const proc = t.processes[s.processID];
  return h(
    "div",
    { class: "detail" },
    h(
      "dl",
      { class: "kv" },
      h("dt", {}, "span"),
      h("dd", { class: "mono" }, s.spanID),
      h("dt", {}, "starts at"),
      h("dd", {}, `+${us(s.startTime - start)}`),
      h("dt", {}, "duration"),
      h("dd", {}, us(s.duration)),
      h("dt", {}, "references"),
      h("dd", { class: "mono" }, (s.references ?? []).map((x) => `${x.refType} ${x.spanID}`).join(", ") || "root"),
    ),
    h("h3", {}, "Tags"),
    tagTable(s.tags),
    h("h3", {}, `Process: ${proc?.serviceName ?? "?"}`),
    tagTable(proc?.tags),
    (s.logs ?? []).length
      ? [
          h("h3", {}, `Events (${s.logs!.length})`),
          ...s.logs!.map((l) => h("div", {}, h("div", { class: "muted" }, `+${us(l.timestamp - start)}`), tagTable(l.fields))),
        ]
      : null,
    h("p", {}, h("a", { href: href("/traces", { service: r.service, operation: s.operationName, lookback: "1h", run: 1 }) }, `Other traces of ${r.service}: ${s.operationName}`)),
  );
}
