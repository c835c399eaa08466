// Proxies: every connected xDS client with versions sent/ACKed per type and
// NACKs highlighted; and the mesh config that is serving, with its errors.
import { getJSON } from "../api";
import { h, loading, errorBox, empty } from "../dom";
import { ago, dateTime } from "../format";
import type { Ctx } from "../router";
import { sortableTable } from "../table";

interface TypeStatus {
  sent?: string;
  acked?: string;
  nack?: { version: string; nonce: string; error: string; at: string };
}

interface Proxy {
  id: string;
  namespace: string;
  workload: string;
  flavour: string;
  connectedAt: string;
  types: Record<string, TypeStatus>;
}

interface ConfigIssue {
  file: string;
  line: number;
  path: string;
  message: string;
}

interface SetAside {
  kind: string;
  namespace: string;
  name: string;
  origin: string;
  serving: "lastGood" | "none";
  servingOrigin?: string;
  errors: ConfigIssue[] | null;
  since: string;
}

interface MeshConfig {
  version: string;
  loadedAt: string;
  errors: ConfigIssue[] | null;
  warnings: ConfigIssue[] | null;
  resources: Record<string, unknown[] | null>;
  invalidObjects?: SetAside[] | null;
  heldFiles?: string[] | null;
}

const short: Record<string, string> = {
  "envoy.config.listener.v3.Listener": "LDS",
  "envoy.config.route.v3.RouteConfiguration": "RDS",
  "envoy.config.cluster.v3.Cluster": "CDS",
  "envoy.config.endpoint.v3.ClusterLoadAssignment": "EDS",
  "envoy.extensions.transport_sockets.tls.v3.Secret": "SDS",
};
const typeName = (url: string) => {
  const t = url.replace(/^type\.googleapis\.com\//, "");
  return short[t] ?? t.split(".").pop() ?? t;
};

/** proxiesView is the Proxies page. */
export function proxiesView({ root, signal }: Ctx): () => void {
  const proxies = h("section", { id: "proxies" }, loading("proxies"));
  const config = h("section", { id: "mesh-config" }, loading("the mesh config"));
  const refreshed = h("span", { class: "muted", role: "status" });
  root.append(
    h("div", { class: "toolbar", style: "padding-top:0" }, h("h1", { style: "margin:0" }, "Proxies"), refreshed),
    proxies,
    h("h1", { style: "margin-top:20px" }, "Mesh config"),
    config,
  );
  const load = async () => {
    const [p, c] = await Promise.allSettled([
      getJSON<{ proxies: Proxy[] | null }>("/api/xds/proxies", signal),
      getJSON<MeshConfig>("/api/mesh/config", signal),
    ]);
    if (signal.aborted) return;
    proxies.replaceChildren(p.status === "fulfilled" ? proxyTable(p.value.proxies ?? []) : errorBox(p.reason, load));
    config.replaceChildren(c.status === "fulfilled" ? configView(c.value) : errorBox(c.reason, load));
    refreshed.textContent = `refreshed ${new Date().toLocaleTimeString(undefined, { hour12: false })}, every 5 s`;
  };
  load();
  const timer = setInterval(load, 5000);
  return () => clearInterval(timer);
}

// What the user chose survives the 5 s refresh.
const ui = { sortKey: "workload", desc: false, open: new Set<string>() };

function proxyTable(list: Proxy[]): HTMLElement {
  if (list.length === 0) return empty("No proxy is connected.");
  const types = [...new Set(list.flatMap((p) => Object.keys(p.types ?? {})))].sort((a, b) => order(a) - order(b));
  const nacks = list.filter((p) => Object.values(p.types ?? {}).some((t) => t.nack));
  const cell = (p: Proxy, url: string): Node => {
    const t = p.types?.[url];
    if (!t) return h("span", { class: "muted" }, "–");
    if (t.nack) {
      return h("div", {}, h("span", { class: "badge bad" }, `NACK ${t.nack.version}`), h("div", { class: "mono", style: "color:#7f1d1d" }, t.nack.error));
    }
    if (t.sent && t.sent === t.acked) return h("span", { class: "badge ok", title: `sent and ACKed ${t.sent}` }, `✓ ${t.acked}`);
    return h("span", { class: "badge warn", title: "sent, not ACKed yet" }, `sent ${t.sent ?? "–"} / acked ${t.acked ?? "–"}`);
  };
  return h(
    "div",
    {},
    nacks.length ? h("div", { class: "state error", role: "alert" }, `${nacks.length} ${nacks.length === 1 ? "proxy" : "proxies"} rejected config (NACK): ${nacks.map((p) => p.workload || p.id).join(", ")}`) : null,
    sortableTable<Proxy>(
      list,
      [
        { key: "workload", title: "Workload", value: (p) => p.workload || p.id, render: (p) => h("span", { title: p.id }, p.workload || p.id) },
        { key: "ns", title: "Namespace", value: (p) => p.namespace },
        { key: "flavour", title: "Flavour", value: (p) => p.flavour },
        { key: "connected", title: "Connected", value: (p) => p.connectedAt, render: (p) => h("span", { title: dateTime(new Date(p.connectedAt)) }, ago(new Date(p.connectedAt))) },
        ...types.map((u) => ({ key: u, title: typeName(u), value: (p: Proxy) => (p.types?.[u]?.nack ? "0" : "1") + (p.types?.[u]?.acked ?? ""), render: (p: Proxy) => cell(p, u) })),
      ],
      { id: "proxies-table", sortKey: ui.sortKey, desc: ui.desc, onSort: (k, d) => ((ui.sortKey = k), (ui.desc = d)), rowClass: (p) => (Object.values(p.types ?? {}).some((t) => t.nack) ? "bad" : "") },
    ),
  );
}

function order(url: string): number {
  const i = ["LDS", "RDS", "CDS", "EDS", "SDS"].indexOf(typeName(url));
  return i < 0 ? 99 : i;
}

function issues(list: ConfigIssue[], kind: "error" | "warning"): HTMLElement {
  return h(
    "table",
    { class: "data", id: kind === "error" ? "config-errors" : "config-warnings" },
    h("thead", {}, h("tr", {}, h("th", {}, "Where"), h("th", {}, "Path"), h("th", {}, "Message"))),
    h(
      "tbody",
      {},
      list.map((e) => h("tr", { class: kind === "error" ? "bad" : "" }, h("td", { class: "mono" }, e.line ? `${e.file}:${e.line}` : e.file), h("td", { class: "mono" }, e.path), h("td", {}, e.message))),
    ),
  );
}

// errorSummary says what the errors hold back: only the objects they
// belong to (and the files that are not YAML), or, when the config could
// not be taken at all, everything.
function errorSummary(c: MeshConfig): string {
  const aside = c.invalidObjects ?? [];
  const held = c.heldFiles ?? [];
  if (!aside.length && !held.length) return "The newest config was rejected; the last good one keeps serving. Fix these:";
  const n = aside.length;
  return `${n} object${n === 1 ? " has" : "s have"} errors and ${n === 1 ? "is" : "are"} set aside (each serves its last good version, or nothing); everything else serves as written. Fix these:`;
}

function setAsideTable(list: SetAside[]): HTMLElement {
  return h(
    "table",
    { class: "data", id: "config-set-aside" },
    h("thead", {}, h("tr", {}, h("th", {}, "Object"), h("th", {}, "Serving"), h("th", {}, "Since"), h("th", {}, "Errors"))),
    h(
      "tbody",
      {},
      list.map((o) =>
        h(
          "tr",
          { class: "bad" },
          h("td", { class: "mono", title: o.origin }, `${o.kind} ${o.namespace}/${o.name}`),
          h("td", { title: o.servingOrigin ?? "" }, o.serving === "lastGood" ? "last good version" : "none"),
          h("td", { title: dateTime(new Date(o.since)) }, ago(new Date(o.since))),
          h("td", {}, (o.errors ?? []).map((e) => h("div", {}, `${e.path ? e.path + ": " : ""}${e.message}`))),
        ),
      ),
    ),
  );
}

function configView(c: MeshConfig): HTMLElement {
  const errors = c.errors ?? [];
  const warnings = c.warnings ?? [];
  const aside = c.invalidObjects ?? [];
  const kinds = Object.entries(c.resources ?? {});
  return h(
    "div",
    {},
    h(
      "div",
      { class: "toolbar" },
      h("span", {}, h("span", { class: "muted" }, "Serving version "), h("code", {}, c.version || "none")),
      h("span", {}, h("span", { class: "muted" }, "loaded "), c.loadedAt ? dateTime(new Date(c.loadedAt)) : "never"),
      errors.length ? h("span", { class: "badge bad" }, `${errors.length} error${errors.length === 1 ? "" : "s"}`) : h("span", { class: "badge ok" }, "no errors"),
      warnings.length ? h("span", { class: "badge warn" }, `${warnings.length} warning${warnings.length === 1 ? "" : "s"}`) : null,
    ),
    errors.length ? [h("div", { class: "state error", role: "alert" }, errorSummary(c)), issues(errors, "error")] : null,
    aside.length ? [h("h2", {}, "Set aside"), setAsideTable(aside)] : null,
    warnings.length ? [h("h2", {}, "Warnings"), issues(warnings, "warning")] : null,
    h("h2", {}, "Resources"),
    kinds.map(([k, v]) =>
      h(
        "details",
        { class: "card", open: ui.open.has(k), ontoggle: (e: Event) => ((e.target as HTMLDetailsElement).open ? ui.open.add(k) : ui.open.delete(k)) },
        h("summary", {}, h("strong", {}, k), h("span", { class: "muted" }, ` (${(v ?? []).length})`)),
        h("pre", {}, JSON.stringify(v ?? [], null, 2)),
      ),
    ),
  );
}
