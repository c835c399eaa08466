// SLOs: objective, error budget left, burn rate per window, alert state and
// a chart of the SLI against the objective.
import { getJSON, HTTPError, promRange, stepFor, type PromSample } from "../api";
import { timeChart } from "../charts";
import { h, loading, errorBox, empty, keepPlace, unavailable } from "../dom";
import type { Ctx } from "../router";
import { durations, href, param, seconds, setParams } from "../state";

/** SLO is one entry of /api/slos (DESIGN.md); sli holds the error ratio (bad/total) per window. */
export interface SLO {
  namespace: string;
  name: string;
  service: string;
  indicator?: string; // availability, latency or ratio
  objective: number; // percent
  window: string;
  sli: Record<string, number> | null;
  errorBudgetRemaining: number | null; // share of the budget left, below 0 overspent, null without data
  burnRates: Record<string, number> | null;
  /** each version's own burn rate per window: what a canary's SLO gate judges */
  versionBurnRates?: Record<string, Record<string, number>> | null;
  /** the alerts' window pairs and the burn rate both must exceed */
  thresholds?: { severity: string; burnRate: number; long: string; short: string }[] | null;
  alerts: { name: string; severity: string; state: string }[] | null;
}

/** CanaryRef is what the SLO page needs of /api/canaries: which canaries an SLO gates. */
interface CanaryRef {
  namespace: string;
  name: string;
  state: string;
  decisions: { gates: { gate: string }[] | null }[] | null;
}

const byWindow = (a: string, b: string) => seconds(a) - seconds(b);

/** slosView is the SLOs page. */
export function slosView({ root, signal }: Ctx): () => void {
  let range = param("range", "6h");
  const rangeSel = h("select", { id: "slo-range" }, durations.map((d) => h("option", { value: d, selected: d === range }, d)));
  const list = h("div", { id: "slo-list" }, loading("SLOs"));
  root.append(h("div", { class: "toolbar", style: "padding-top:0" }, h("h1", { style: "margin:0" }, "SLOs"), h("label", {}, "Chart range", rangeSel)), list);
  let charted = "";
  const load = async () => {
    try {
      const [r, cs] = await Promise.all([
        getJSON<{ slos: SLO[] | null }>("/api/slos", signal),
        getJSON<{ canaries: CanaryRef[] | null }>("/api/canaries", signal).then((x) => x.canaries ?? [], () => [] as CanaryRef[]),
      ]);
      const slos = r.slos ?? [];
      if (slos.length === 0) {
        list.replaceChildren(empty("No SLOs are defined. Add kind: SLO to the mesh config."));
        return;
      }
      const key = slos.map((s) => `${s.namespace}/${s.name}`).join(",") + range;
      const charts = new Map<string, HTMLElement>();
      if (key === charted) list.querySelectorAll<HTMLElement>(".slo-chart").forEach((c) => charts.set(c.dataset.slo!, c));
      keepPlace(list, () => list.replaceChildren(...slos.map((s) => card(s, gated(s, cs), charts.get(`${s.namespace}/${s.name}`)))));
      if (key !== charted) {
        charted = key;
        for (const s of slos) drawChart(list.querySelector<HTMLElement>(`.slo-chart[data-slo="${s.namespace}/${s.name}"]`)!, s, range, signal);
      }
    } catch (err) {
      if (signal.aborted) return;
      if (err instanceof HTTPError && err.status === 404) list.replaceChildren(unavailable("SLOs", "/api/slos"));
      else list.replaceChildren(errorBox(err, load));
    }
  };
  rangeSel.addEventListener("change", () => {
    range = rangeSel.value;
    setParams({ range });
    charted = "";
    load();
  });
  load();
  const timer = setInterval(load, 10000);
  return () => clearInterval(timer);
}

/** gated lists the canaries whose gates judged s (their decisions name "slo <name>"). */
function gated(s: SLO, cs: CanaryRef[]): CanaryRef[] {
  return cs.filter((c) => c.namespace === s.namespace && (c.decisions ?? []).some((d) => (d.gates ?? []).some((g) => g.gate === `slo ${s.name}`)));
}

const burnCell = (b: number | undefined, threshold?: number) =>
  h("td", { class: "num", style: b !== undefined && b >= (threshold ?? 1) ? "color:var(--bad);font-weight:600" : "" }, b === undefined ? "–" : `${b.toFixed(2)}×`);

function card(s: SLO, canaries: CanaryRef[], chart?: HTMLElement): HTMLElement {
  const page = (s.thresholds ?? []).find((t) => t.severity === "page");
  const budget = s.errorBudgetRemaining ?? NaN;
  const firing = (s.alerts ?? []).filter((a) => a.state === "firing");
  const budgetColor = isNaN(budget) ? "var(--muted)" : budget < 0.1 ? "var(--bad)" : budget < 0.5 ? "var(--warn)" : "var(--ok)";
  const windows = Object.keys({ ...(s.sli ?? {}), ...(s.burnRates ?? {}) }).sort(byWindow);
  return h(
    "article",
    { class: "card slo", "data-slo": `${s.namespace}/${s.name}` },
    h(
      "div",
      { class: "toolbar", style: "padding:0" },
      h("h2", { style: "margin:0" }, s.name),
      h("span", { class: "muted" }, `${s.namespace} · service ${s.service}${s.indicator ? ` · ${s.indicator}` : ""}`),
      h("span", {}, `objective ${s.objective}% over ${s.window}`),
      firing.length ? firing.map((a) => h("span", { class: `badge ${a.severity === "page" ? "bad" : "warn"}` }, `${a.severity} alert firing`)) : h("span", { class: "badge ok" }, "no alert firing"),
    ),
    h(
      "div",
      { class: "toolbar" },
      h("span", { class: "muted" }, "error budget left"),
      h(
        "div",
        { class: "bar-track", role: "meter", "aria-valuemin": 0, "aria-valuemax": 100, "aria-valuenow": isNaN(budget) ? null : Math.round(budget * 100), "aria-label": "error budget remaining", style: "width:260px" },
        h("div", { class: "bar-fill", style: `width:${isNaN(budget) ? 0 : Math.max(0, Math.min(100, budget * 100))}%;background:${budgetColor}` }),
      ),
      h("strong", { style: `color:${budgetColor}` }, isNaN(budget) ? "no data yet" : `${(budget * 100).toFixed(1)}%`),
    ),
    windows.length
      ? h(
          "table",
          { class: "data", style: "width:auto" },
          h("thead", {}, h("tr", {}, h("th", {}, "window"), windows.map((w) => h("th", { class: "num" }, w)))),
          h(
            "tbody",
            {},
            h("tr", {}, h("th", { scope: "row" }, "good"), windows.map((w) => h("td", { class: "num" }, s.sli?.[w] === undefined ? "–" : `${(100 - s.sli[w] * 100).toFixed(3)}%`))),
            h("tr", {}, h("th", { scope: "row" }, "errors"), windows.map((w) => h("td", { class: "num" }, s.sli?.[w] === undefined ? "–" : `${(s.sli[w] * 100).toFixed(3)}%`))),
            h(
              "tr",
              {},
              h("th", { scope: "row" }, "burn rate"),
              windows.map((w) => burnCell(s.burnRates?.[w])),
            ),
          ),
        )
      : null,
    versionTable(s, page?.burnRate),
    (s.thresholds ?? []).length
      ? h(
          "div",
          { class: "muted slo-thresholds" },
          "alerts fire when both windows burn faster than: ",
          (s.thresholds ?? []).map((t) => `${t.severity} ${t.burnRate}× over ${t.long} and ${t.short}`).join(" · "),
        )
      : null,
    (s.alerts ?? []).length
      ? h("div", { class: "muted" }, "alerts: ", (s.alerts ?? []).map((a) => `${a.name} (${a.severity}) ${a.state}`).join(" · "))
      : null,
    canaries.length
      ? h(
          "div",
          { class: "slo-canaries" },
          "gates the canaries ",
          canaries.flatMap((c, i) => [i ? ", " : "", h("a", { href: `/canaries/${c.namespace}/${c.name}` }, `${c.namespace}/${c.name}`), ` (${c.state})`]),
        )
      : null,
    chart ?? h("div", { class: "slo-chart chart", "data-slo": `${s.namespace}/${s.name}` }),
  );
}

/**
 * versionTable shows each version's own burn rate, which is what a
 * canary's SLO gate holds to the page threshold: a version can burn while
 * the service as a whole does not.
 */
function versionTable(s: SLO, pageBurn?: number): HTMLElement | null {
  const versions = Object.keys(s.versionBurnRates ?? {}).sort();
  if (versions.length === 0) return null;
  const windows = [...new Set(versions.flatMap((v) => Object.keys(s.versionBurnRates![v])))].sort(byWindow);
  return h(
    "table",
    { class: "data slo-versions", style: "width:auto" },
    h("caption", { class: "muted" }, `burn rate by version${pageBurn ? ` (a canary's gate fails above the page threshold, ${pageBurn}×)` : ""}`),
    h("thead", {}, h("tr", {}, h("th", {}, "version"), windows.map((w) => h("th", { class: "num" }, w)))),
    h(
      "tbody",
      {},
      versions.map((v) => h("tr", { "data-version": v }, h("th", { scope: "row" }, v), windows.map((w) => burnCell(s.versionBurnRates![v][w], pageBurn)))),
    ),
  );
}

function drawChart(el: HTMLElement, s: SLO, range: string, signal: AbortSignal) {
  const sel = `sloth_service="${s.service}", sloth_slo="${s.name}", namespace="${s.namespace}"`;
  const q = `100 * (1 - slo:sli_error:ratio_rate5m{${sel}})`;
  const dur = seconds(range);
  const end = Math.floor(Date.now() / 1000);
  el.replaceChildren(loading("the SLI"));
  promRange(q, end - dur, end, stepFor(dur), signal)
    .then((r) => {
      const rows = r.result as PromSample[];
      el.replaceChildren();
      if (rows.length === 0) {
        el.append(empty("No SLI samples yet (the rules write them every evaluation)."));
        return;
      }
      const obj = { metric: { __name__: `objective ${s.objective}%` }, values: (rows[0].values ?? []).map(([t]) => [t, String(s.objective)] as [number, string]) };
      timeChart(el, [{ ...rows[0], metric: { __name__: "SLI (5m)" } }, obj], { width: Math.max(400, el.clientWidth), height: 150, xRange: [end - dur, end], fmt: (v) => `${v.toFixed(2)}%`, label: (m) => m.__name__ });
      el.append(h("a", { class: "promql", href: href("/query", { q, range, tab: "chart" }) }, h("code", {}, q)));
    })
    .catch((err) => {
      if (!signal.aborted) el.replaceChildren(errorBox(err));
    });
}
