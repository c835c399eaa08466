// Canaries: every canary's state and weights; one canary's step timeline,
// its decisions with each gate's query, value and threshold, and the
// promote/abort/pause/resume actions (asking for the API token when needed).
import { getJSON, postJSON, HTTPError } from "../api";
import { h, loading, errorBox, empty, keepPlace, unavailable } from "../dom";
import { dateTime, num } from "../format";
import { LiveControls } from "../live";
import type { Ctx } from "../router";
import { href } from "../state";
import { sortableTable } from "../table";

interface Gate {
  gate: string;
  query: string;
  value: number | null; // null: the query returned nothing
  threshold: number;
  verdict: "pass" | "fail" | "no-data" | "error" | string;
  message?: string;
}

interface Decision {
  at: string;
  step: number;
  verdict: "advance" | "hold" | "rollback" | "promote" | string;
  weightsBefore: Record<string, number> | null;
  weightsAfter: Record<string, number> | null;
  requests: number;
  window?: string;
  gates: Gate[] | null;
  reason?: string;
  by?: string; // "controller" or "api"
}

/** Canary is one entry of /api/canaries (DESIGN.md). */
interface Canary {
  namespace: string;
  name: string;
  route?: string;
  stable?: string;
  canary?: string;
  steps?: number[] | null;
  state: "progressing" | "paused" | "succeeded" | "rolled-back" | "aborted" | string;
  step: number; // 1-based index into steps
  nextEvaluationAt?: string;
  inconclusive?: number;
  message?: string;
  weights: Record<string, number> | null;
  /** what stable and canary hold together in the rule: the steps are shares of it */
  totalWeight?: number;
  decisions: Decision[] | null;
}

/** RuleWeights is each destination's weight in a route's last rule, as served. */
type RuleWeights = Record<string, number>;

interface MeshConfig {
  resources?: {
    trafficRoutes?: { metadata: { name: string; namespace: string }; spec: { rules?: { destinations?: { subset: string; weight: number }[] }[] } }[] | null;
  };
}

/** ruleWeights indexes every route's last rule by namespace/name. */
function ruleWeights(cfg: MeshConfig): Map<string, RuleWeights> {
  const out = new Map<string, RuleWeights>();
  for (const r of cfg.resources?.trafficRoutes ?? []) {
    const last = r.spec.rules?.at(-1);
    if (!last?.destinations) continue;
    out.set(`${r.metadata.namespace}/${r.metadata.name}`, Object.fromEntries(last.destinations.map((d) => [d.subset, d.weight])));
  }
  return out;
}

/**
 * shares are every destination's share of the route's traffic (percent of
 * the rule's total): the canary's weights with the rule's other
 * destinations, which the canary leaves as they are.
 */
function shares(c: Canary, rule: RuleWeights | undefined, w = c.weights): Record<string, number> {
  const all: Record<string, number> = { ...(rule ?? {}), ...(w ?? {}) };
  const total = Object.values(all).reduce((a, b) => a + b, 0);
  if (total <= 0) return all;
  return Object.fromEntries(Object.entries(all).map(([k, v]) => [k, (100 * v) / total]));
}

/** pctOf prints a share with one decimal only when it has one. */
const pctOf = (v: number) => `${Math.round(v * 10) / 10}%`;

/** stepShare is the canary's share of the route's traffic at a step. */
function stepShare(c: Canary, rule: RuleWeights | undefined, step: number): number {
  const held = c.totalWeight ?? 100;
  const total = rule ? Object.entries(rule).reduce((a, [k, v]) => a + (k === c.stable || k === c.canary ? 0 : v), 0) + held : 100;
  return total > 0 ? (step * held) / total : step;
}

const tokenKey = "glassmesh.apiToken";
const stateClass: Record<string, string> = { progressing: "", paused: "warn", succeeded: "ok", "rolled-back": "bad", aborted: "bad" };
const verdictClass: Record<string, string> = {
  advance: "ok",
  promote: "ok",
  pass: "ok",
  hold: "warn",
  pause: "warn",
  "no-data": "warn",
  rollback: "bad",
  abort: "bad",
  fail: "bad",
  error: "bad",
};

const weights = (w: Record<string, number> | null | undefined) =>
  Object.entries(w ?? {})
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([k, v]) => `${k} ${pctOf(v)}`)
    .join(" · ") || "–";

/** canariesView lists canaries, or shows /canaries/<namespace>/<name>. */
export function canariesView(ctx: Ctx): () => void {
  const { root, signal, rest } = ctx;
  const one = rest.length >= 2 ? { ns: rest[0], name: rest[1] } : null;
  const body = h("div", { id: "canaries" }, loading(one ? "the canary" : "canaries"));
  let timer = 0;
  const live = new LiveControls("canary", (what) => {
    if (what === "pause" && !live.paused) load();
    schedule();
  });
  if (one) root.append(h("p", {}, h("a", { href: "/canaries" }, "← All canaries")));
  root.append(h("div", { class: "page-head" }, h("h1", {}, one ? `Canary ${one.ns}/${one.name}` : "Canaries"), h("div", { class: "toolbar" }, live.items)), body);
  const note: Note = { el: null };
  const load = async () => {
    try {
      if (one) {
        const [c, rules] = await Promise.all([
          getJSON<Canary>(`/api/canaries/${encodeURIComponent(one.ns)}/${encodeURIComponent(one.name)}`, signal),
          routeRules(signal),
        ]);
        // A refresh keeps focus, scroll and the last action's message.
        keepPlace(body, () => body.replaceChildren(detail(c, rules.get(`${c.namespace}/${c.route}`), note, load)));
      } else {
        const [r, rules] = await Promise.all([getJSON<{ canaries: Canary[] | null }>("/api/canaries", signal), routeRules(signal)]);
        keepPlace(body, () => body.replaceChildren(list(r.canaries ?? [], rules)));
      }
      body.dataset.updates = String(Number(body.dataset.updates ?? 0) + 1);
      live.updated(new Date());
    } catch (err) {
      if (signal.aborted) return;
      if (err instanceof HTTPError && err.status === 404) {
        // The list's 404 means no API; a canary's 404 may mean no such canary.
        const missing = one ? await getJSON("/api/canaries", signal).then(() => true, () => false) : false;
        body.replaceChildren(missing ? errorBox(new Error(`No canary ${one!.ns}/${one!.name}.`)) : unavailable("Canaries", "/api/canaries"));
      } else body.replaceChildren(errorBox(err, load));
    }
  };
  // Paused, the page shows what it last loaded; resumed, it loads at once.
  function schedule() {
    clearInterval(timer);
    if (live.paused) return;
    timer = setInterval(() => {
      // Do not redraw under an open token prompt.
      if (!root.querySelector("dialog[open]")) load();
    }, live.refreshMs);
  }
  load();
  schedule();
  return () => clearInterval(timer);
}

/** routeRules reads the served routes' last rules; without them the canary's own weights show. */
async function routeRules(signal: AbortSignal): Promise<Map<string, RuleWeights>> {
  return getJSON<MeshConfig>("/api/mesh/config", signal).then(ruleWeights, () => new Map());
}

function list(cs: Canary[], rules: Map<string, RuleWeights>): HTMLElement {
  if (cs.length === 0) return empty("No canaries. Add kind: Canary to the mesh config.");
  return sortableTable<Canary>(
    cs,
    [
      { key: "name", title: "Canary", value: (c) => `${c.namespace}/${c.name}`, render: (c) => h("a", { href: `/canaries/${c.namespace}/${c.name}` }, `${c.namespace}/${c.name}`) },
      { key: "state", title: "State", value: (c) => c.state, render: (c) => h("span", { class: `badge ${stateClass[c.state] ?? ""}` }, c.state) },
      { key: "step", title: "Step", value: (c) => c.step, render: (c) => (c.steps?.length ? `${c.step} of ${c.steps.length}` : String(c.step)), num: true },
      { key: "weights", title: "Traffic", value: (c) => weights(shares(c, rules.get(`${c.namespace}/${c.route}`))) },
      {
        key: "last",
        title: "Last decision",
        value: (c) => c.decisions?.at(-1)?.at ?? "",
        render: (c) => {
          const d = latest(c);
          return d ? h("span", {}, h("span", { class: `badge ${verdictClass[d.verdict] ?? ""}` }, d.verdict), ` ${dateTime(new Date(d.at))}`) : "–";
        },
      },
    ],
    { id: "canaries-table", rowClass: (c) => (c.state === "rolled-back" || c.state === "aborted" ? "bad" : "") },
  );
}

function latest(c: Canary): Decision | undefined {
  return [...(c.decisions ?? [])].sort((a, b) => Date.parse(b.at) - Date.parse(a.at))[0];
}

/** Note is the last action's outcome, shown until the next action. */
interface Note {
  el: HTMLElement | null;
}

function detail(c: Canary, rule: RuleWeights | undefined, note: Note, reload: () => void): HTMLElement {
  const steps = c.steps ?? [];
  const decisions = [...(c.decisions ?? [])].sort((a, b) => Date.parse(b.at) - Date.parse(a.at));
  const done = c.state === "succeeded" || c.state === "rolled-back" || c.state === "aborted";
  const msg = note.el ?? h("span", { role: "status", class: "muted" });
  const action = (name: string, label: string, cls = "", confirmText = "") =>
    h(
      "button",
      {
        type: "button",
        class: cls,
        "data-action": name,
        "data-focus": `action:${name}`,
        disabled: done || (name === "pause" && c.state === "paused") || (name === "resume" && c.state !== "paused"),
        onclick: async () => {
          if (confirmText && !confirm(confirmText)) return;
          const shown = note.el ?? msg;
          const status = h("span", { role: "status", class: "muted" }, `${label}…`);
          shown.replaceWith(status);
          note.el = status;
          try {
            await act(c, name);
            status.textContent = `${label}: done`;
            reload();
          } catch (err) {
            note.el = errorBox(err);
            status.replaceWith(note.el);
          }
        },
      },
      label,
    );
  return h(
    "div",
    {},
    h(
      "div",
      { class: "toolbar" },
      h("span", { class: `badge ${stateClass[c.state] ?? ""}`, id: "canary-state" }, c.state),
      h("span", {}, h("span", { class: "muted" }, "step "), steps.length ? `${c.step} of ${steps.length}` : String(c.step)),
      c.stable && c.canary ? h("span", {}, h("span", { class: "muted" }, "stable "), c.stable, h("span", { class: "muted" }, " canary "), c.canary) : null,
      h("span", { id: "canary-weights", title: "every destination of the route's last rule, as served: its share of the traffic" }, h("span", { class: "muted" }, "traffic "), weights(shares(c, rule))),
      action("promote", "Promote", "primary", `Promote ${c.namespace}/${c.name}: send 100% to the canary and end the rollout?`),
      action("abort", "Abort", "danger", `Abort ${c.namespace}/${c.name}: send 100% back to stable?`),
      action("pause", "Pause"),
      action("resume", "Resume"),
      msg,
    ),
    steps.length
      ? h(
          "div",
          { class: "timeline", "aria-label": "Steps" },
          steps.map((w, i) =>
            h(
              "span",
              {
                class: `step ${i + 1 < c.step || (i + 1 === c.step && c.state === "succeeded") ? "done" : i + 1 === c.step ? (done ? "failed" : "current") : ""}`,
                title: `step ${i + 1}: ${w}% of what ${c.stable ?? "stable"} and ${c.canary ?? "canary"} hold together, ${pctOf(stepShare(c, rule, w))} of the route's traffic`,
              },
              pctOf(stepShare(c, rule, w)),
            ),
          ),
        )
      : null,
    c.message ? h("p", { id: "canary-message" }, c.message) : null,
    !done && c.nextEvaluationAt ? h("p", { class: "muted" }, `next evaluation ${dateTime(new Date(c.nextEvaluationAt))}`, c.inconclusive ? ` · ${c.inconclusive} inconclusive interval(s) in a row` : "") : null,
    h("h2", {}, `Decisions (${decisions.length})`),
    decisions.length === 0 ? empty("No decision yet: the first comes after one interval.") : decisions.map((d) => decisionCard(d, c, rule)),
  );
}

function decisionCard(d: Decision, c: Canary, rule: RuleWeights | undefined): HTMLElement {
  return h(
    "div",
    { class: `card decision ${d.verdict}` },
    h(
      "div",
      { class: "toolbar", style: "padding:0" },
      h("span", { class: `badge ${verdictClass[d.verdict] ?? ""}` }, d.verdict),
      h("span", {}, dateTime(new Date(d.at))),
      h("span", { class: "muted" }, `step ${d.step}`),
      h("span", {}, `${weights(shares(c, rule, d.weightsBefore))} → ${weights(shares(c, rule, d.weightsAfter))}`),
      h("span", { class: "muted" }, `${Math.round(d.requests)} requests${d.window ? ` in ${d.window}` : ""}`),
      d.by ? h("span", { class: "muted" }, `by ${d.by}`) : null,
    ),
    d.reason ? h("div", {}, d.reason) : null,
    (d.gates ?? []).length
      ? h(
          "table",
          { class: "data" },
          h("thead", {}, h("tr", {}, h("th", {}, "Gate"), h("th", {}, "Query"), h("th", { class: "num" }, "Value"), h("th", { class: "num" }, "Threshold"), h("th", {}, "Verdict"))),
          h(
            "tbody",
            {},
            (d.gates ?? []).map((g) =>
              h(
                "tr",
                { class: g.verdict === "fail" || g.verdict === "error" ? "bad" : "" },
                h("td", {}, g.gate),
                h("td", {}, h("a", { class: "mono", href: href("/query", { q: g.query, tab: "chart", range: "1h" }) }, g.query)),
                h("td", { class: "num" }, g.value === null || g.value === undefined ? "no data" : num(g.value)),
                h("td", { class: "num" }, num(g.threshold)),
                h("td", {}, h("span", { class: `badge ${verdictClass[g.verdict] ?? ""}` }, g.verdict), g.message ? h("div", { class: "muted" }, g.message) : null),
              ),
            ),
          ),
        )
      : null,
  );
}

/** act posts an action, asking for the API token when the server wants one. */
async function act(c: Canary, name: string): Promise<void> {
  const url = `/api/canaries/${encodeURIComponent(c.namespace)}/${encodeURIComponent(c.name)}/${name}`;
  let token = sessionStorage.getItem(tokenKey) ?? undefined;
  for (let tries = 0; ; tries++) {
    try {
      await postJSON(url, token);
      return;
    } catch (err) {
      if (!(err instanceof HTTPError) || (err.status !== 401 && err.status !== 403) || tries >= 2) throw err;
      token = await askToken(tries > 0 || !!token);
      if (!token) throw new Error("cancelled: the API needs a token (--api-token-file)");
      sessionStorage.setItem(tokenKey, token);
    }
  }
}

function askToken(wrong: boolean): Promise<string | undefined> {
  return new Promise((resolve) => {
    const input = h("input", { type: "password", id: "api-token", autocomplete: "off", required: true, style: "width:100%" });
    const dlg = h(
      "dialog",
      { "aria-labelledby": "token-title" },
      h(
        "form",
        { method: "dialog", class: "form" },
        h("strong", { id: "token-title" }, "API token"),
        h("p", { class: "muted" }, wrong ? "The server refused that token. " : "", "This action needs the bearer token from glassmesh's --api-token-file. It is kept for this tab only."),
        input,
        h("div", { class: "row" }, h("button", { type: "submit", class: "primary", value: "ok" }, "Send"), h("button", { type: "button", onclick: () => dlg.close("") }, "Cancel")),
      ),
    );
    dlg.addEventListener("close", () => {
      dlg.remove();
      resolve(dlg.returnValue === "ok" ? input.value.trim() || undefined : undefined);
    });
    document.body.append(dlg);
    dlg.showModal();
    input.focus();
  });
}
