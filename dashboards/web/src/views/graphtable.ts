// The text alternative to the graph: sortable tables of edges and nodes.
import { h } from "../dom";
import { ms, pct, rate } from "../format";
import { badgeMark, nodeBadges, routeText, type EdgeRow, type Model, type NodeRow } from "../graphmodel";
import { canaryLink } from "./graphpanel";
import { sortableTable } from "../table";

/** nodeBadgeCell shows a node's route badge and its canary badge, a link to the canary's page. */
function nodeBadgeCell(n: NodeRow): HTMLElement {
  const r = n.raw;
  return h(
    "span",
    { class: "node-badges", "data-node": n.id, "data-badges": nodeBadges(n).join("+") },
    r.hasVS ? h("span", { class: "badge route", title: routeText(r) }, `${badgeMark.route} route`) : null,
    r.hasVS && r.canary ? " " : null,
    r.canary ? canaryLink(r.canary, undefined, `canary:${n.id}`) : null,
  );
}

const badge = (s: string) => h("span", { class: `badge health-${s}` }, s || "–");

/** TableSort is a table's sort, kept across the live updates. */
export interface TableSort {
  key: string;
  desc: boolean;
}

/** GraphTableState is what the user chose in the tables, kept across updates. */
export interface GraphTableState {
  edges: TableSort;
  nodes: TableSort;
}

export const defaultTableState = (): GraphTableState => ({ edges: { key: "rps", desc: true }, nodes: { key: "label", desc: false } });

/** graphTables lists edges then nodes; a name button opens the side panel. */
export function graphTables(m: Model, sel: string, select: (id: string) => void, st: GraphTableState = defaultTableState()): HTMLElement {
  const pick = (id: string, label: string) =>
    h("button", { type: "button", class: "linklike", "aria-pressed": String(id === sel), "data-focus": `pick:${id}`, onclick: () => select(id) }, label);
  const edges = sortableTable<EdgeRow>(
    m.edges,
    [
      { key: "source", title: "From", value: (e) => e.source.label, render: (e) => pick(e.id, e.source.label) },
      { key: "target", title: "To", value: (e) => e.target.label },
      { key: "protocol", title: "Protocol", value: (e) => e.protocol },
      { key: "rps", title: "Requests/s", value: (e) => e.rps, render: (e) => rate(e.rps), num: true },
      { key: "share", title: "Share", value: (e) => e.share, render: (e) => (isFinite(e.share) ? pct(e.share) : "–"), num: true },
      { key: "err", title: "Errors", value: (e) => e.errPct, render: (e) => pct(e.errPct), num: true },
      { key: "p95", title: "p95", value: (e) => e.p95, render: (e) => ms(e.p95), num: true },
      { key: "mtls", title: "mTLS", value: (e) => e.mtls, render: (e) => (isFinite(e.mtls) ? (e.mtls >= 100 ? "🔒 100%" : pct(e.mtls)) : "–"), num: true },
      { key: "health", title: "Health", value: (e) => e.health, render: (e) => badge(e.health) },
    ],
    {
      id: "edges-table",
      sortKey: st.edges.key,
      desc: st.edges.desc,
      onSort: (key, desc) => (st.edges = { key, desc }),
      rowClass: (e) => (e.health === "Failure" ? "bad" : ""),
    },
  );
  const nodes = sortableTable<NodeRow>(
    m.nodes.filter((n) => !n.box),
    [
      { key: "label", title: "Node", value: (n) => n.label, render: (n) => pick(n.id, n.label) },
      { key: "type", title: "Type", value: (n) => n.type },
      { key: "ns", title: "Namespace", value: (n) => n.namespace },
      { key: "in", title: "In (rps)", value: (n) => n.rpsIn, render: (n) => rate(n.rpsIn), num: true },
      { key: "out", title: "Out (rps)", value: (n) => n.rpsOut, render: (n) => rate(n.rpsOut), num: true },
      { key: "health", title: "Health", value: (n) => n.health, render: (n) => badge(n.health) },
      { key: "badges", title: "Route / canary", value: (n) => nodeBadges(n).join(" "), render: (n) => nodeBadgeCell(n) },
    ],
    { id: "nodes-table", sortKey: st.nodes.key, desc: st.nodes.desc, onSort: (key, desc) => (st.nodes = { key, desc }) },
  );
  return h("div", {}, h("h2", {}, `Edges (${m.edges.length})`), edges, h("h2", {}, `Nodes (${nodes.tBodies[0]?.rows.length ?? 0})`), nodes);
}
