// The metrics console: PromQL with autocompletion, table and chart views,
// exemplars that open their traces; the URL holds the query.
import { getJSON, promQuery, promRange, stepFor, type PromSample } from "../api";
import { Completer } from "../autocomplete";
import { seriesName, timeChart } from "../charts";
import { h, loading, errorBox, empty } from "../dom";
import { dateTime, num } from "../format";
import type { Ctx } from "../router";
import { durations, param, seconds, setParams } from "../state";

interface Exemplar {
  seriesLabels: Record<string, string>;
  exemplars: { labels: Record<string, string>; value: string; timestamp: number }[];
}

const examples = [
  `sum by (destination_workload) (rate(istio_requests_total{reporter="source"}[1m]))`,
  `histogram_quantile(0.95, sum by (le, destination_app) (rate(istio_request_duration_milliseconds_bucket{reporter="source"}[5m])))`,
  `sum by (source_app, destination_app, grpc_response_status) (rate(istio_requests_total{reporter="source"}[5m]))`,
];

/** metricsView is the PromQL console. */
export function metricsView({ root, signal }: Ctx): void {
  const st = { q: param("q"), range: param("range", "1h"), tab: param("tab", "table") };
  const ta = h("textarea", { id: "promql", "aria-label": "PromQL expression", spellcheck: "false", rows: 3, placeholder: "PromQL, e.g. rate(istio_requests_total[1m]) — Enter runs, Shift+Enter adds a line, Ctrl+Space suggests" });
  ta.value = st.q;
  const runBtn = h("button", { type: "button", class: "primary", id: "promql-run" }, "Execute");
  const rangeSel = h("select", { id: "promql-range" }, durations.map((d) => h("option", { value: d, selected: d === st.range }, d)));
  const tabs = (["table", "chart"] as const).map((t) =>
    h("button", { type: "button", "data-tab": t, "aria-pressed": String(st.tab === t), onclick: () => setTab(t) }, t === "table" ? "Table" : "Chart"),
  );
  const status = h("span", { class: "muted", role: "status", id: "promql-status" });
  const out = h("div", { id: "promql-result" });
  root.append(
    h(
      "div",
      { class: "console" },
      h("h1", {}, "Metrics"),
      h("div", { class: "editor" }, ta),
      h("div", { class: "toolbar" }, runBtn, h("div", { class: "seg", role: "group", "aria-label": "Result view" }, tabs), h("label", {}, "Chart range", rangeSel), status),
      out,
    ),
  );
  const completer = new Completer(ta, signal);

  let running: AbortController | null = null;
  const run = async (push: boolean) => {
    const q = ta.value.trim();
    st.q = q;
    setParams({ q, range: st.range === "1h" ? null : st.range, tab: st.tab === "table" ? null : st.tab }, push);
    if (!q) {
      out.replaceChildren(exampleList());
      status.textContent = "";
      return;
    }
    running?.abort();
    running = new AbortController();
    const s = AbortSignal.any([signal, running.signal]);
    const t0 = performance.now();
    out.replaceChildren(loading(st.tab === "chart" ? `${st.range} of data` : "the result"));
    status.textContent = "running…";
    try {
      if (st.tab === "table") await table(q, s);
      else await chart(q, s);
      status.textContent = `${Math.round(performance.now() - t0)} ms`;
    } catch (err) {
      if (s.aborted) return;
      status.textContent = "failed";
      out.replaceChildren(errorBox(err, () => run(false)));
    }
  };

  const table = async (q: string, s: AbortSignal) => {
    const r = await promQuery(q, undefined, s);
    if (r.resultType === "scalar" || r.resultType === "string") {
      const [t, v] = r.result as [number, string];
      out.replaceChildren(h("table", { class: "data", id: "promql-table" }, h("tbody", {}, h("tr", {}, h("td", {}, r.resultType), h("td", { class: "num" }, v), h("td", { class: "muted" }, dateTime(new Date(t * 1000)))))));
      return;
    }
    const rows = r.result as PromSample[];
    if (rows.length === 0) {
      out.replaceChildren(empty("Empty result: no series match at this time."));
      return;
    }
    out.replaceChildren(
      h("div", { class: "muted" }, `${rows.length} series (${r.resultType})`),
      h(
        "table",
        { class: "data", id: "promql-table" },
        h("thead", {}, h("tr", {}, h("th", {}, "Series"), h("th", { class: "num" }, r.resultType === "matrix" ? "Samples" : "Value"))),
        h(
          "tbody",
          {},
          rows.map((x) =>
            h(
              "tr",
              {},
              h("td", { class: "mono" }, seriesName(x.metric)),
              h(
                "td",
                { class: "num mono" },
                x.value
                  ? num(parseFloat(x.value[1]))
                  : h(
                      "ul",
                      { class: "samples" },
                      (x.values ?? []).map(([t, v]) => h("li", {}, `${num(parseFloat(v))} @${t}`)),
                    ),
              ),
            ),
          ),
        ),
      ),
    );
  };

  const chart = async (q: string, s: AbortSignal) => {
    const dur = seconds(st.range);
    const end = Math.floor(Date.now() / 1000);
    const step = stepFor(dur);
    const [r, ex] = await Promise.all([
      promRange(q, end - dur, end, step, s),
      getJSON<{ data: Exemplar[] }>(`/api/v1/query_exemplars?${new URLSearchParams({ query: q, start: String(end - dur), end: String(end) })}`, s).catch(() => ({ data: [] as Exemplar[] })),
    ]);
    const rows = r.result as PromSample[];
    if (r.resultType !== "matrix" || rows.length === 0) {
      out.replaceChildren(empty(r.resultType === "matrix" ? "Empty result: no series in this range." : `A ${r.resultType} cannot be charted; use the table.`));
      return;
    }
    const box = h("div", { class: "card", id: "promql-chart" });
    out.replaceChildren(box, exemplars(ex.data ?? []));
    timeChart(box, rows, { width: Math.max(400, box.clientWidth - 24), height: 300, fmt: num, xRange: [end - dur, end] });
  };

  function setTab(t: "table" | "chart") {
    st.tab = t;
    for (const b of tabs) b.setAttribute("aria-pressed", String(b.dataset.tab === t));
    run(false);
  }

  function exampleList(): HTMLElement {
    return h(
      "div",
      { class: "card" },
      h("strong", {}, "Examples"),
      h(
        "ul",
        {},
        examples.map((q) =>
          h("li", {}, h("button", { type: "button", class: "linklike mono", onclick: () => ((ta.value = q), run(true)) }, q)),
        ),
      ),
    );
  }

  ta.addEventListener("keydown", (e) => {
    if (completer.key(e)) {
      e.preventDefault();
      return;
    }
    if (e.key === "Enter" && !e.shiftKey) {
      e.preventDefault();
      run(true);
    }
  });
  runBtn.addEventListener("click", () => run(true));
  rangeSel.addEventListener("change", () => {
    st.range = rangeSel.value;
    if (st.tab === "chart") run(false);
    else setParams({ range: st.range === "1h" ? null : st.range });
  });
  run(false);
  ta.focus();
}

function exemplars(list: Exemplar[]): HTMLElement {
  const all = list.flatMap((s) => s.exemplars.map((e) => ({ ...e, series: s.seriesLabels })));
  // Newest first across every series (the API lists them per series).
  const withTrace = all
    .filter((e) => e.labels.trace_id || e.labels.traceID || e.labels.traceId)
    .sort((a, b) => b.timestamp - a.timestamp)
    .slice(0, 20);
  if (withTrace.length === 0) return h("div", {});
  return h(
    "div",
    { class: "card", id: "promql-exemplars" },
    h("strong", {}, `Exemplars (${withTrace.length} newest)`),
    h(
      "table",
      { class: "data" },
      h("thead", {}, h("tr", {}, h("th", {}, "Time"), h("th", { class: "num" }, "Value"), h("th", {}, "Series"), h("th", {}, "Trace"))),
      h(
        "tbody",
        {},
        withTrace.map((e) => {
          const id = e.labels.trace_id || e.labels.traceID || e.labels.traceId;
          return h(
            "tr",
            {},
            h("td", {}, dateTime(new Date(e.timestamp * 1000))),
            h("td", { class: "num" }, num(parseFloat(e.value))),
            h("td", { class: "mono" }, seriesName(e.series)),
            h("td", {}, h("a", { href: `/traces/${id}`, class: "mono" }, id.slice(0, 16))),
          );
        }),
      ),
    ),
  );
}
