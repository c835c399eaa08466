// Kiali's find/hide expressions for the graph: `rps > 1`, `errors > 0`,
// `mtls < 100`, `name = reviews`, `!healthy`, joined with and/or (and binds
// first), negated with ! or not, grouped with parentheses. An expression
// is about nodes or about edges, by its fields; plain text finds nodes
// whose name holds it.
import type { EdgeRow, Model, NodeRow } from "./graphmodel";

/** Query is a parsed expression. */
export interface Query {
  target: "node" | "edge";
  test: (x: NodeRow | EdgeRow) => boolean;
}

type Num = (x: never) => number;
type Str = (x: never) => string[];

const nodeNums: Record<string, Num> = {
  in: (n: NodeRow) => n.rpsIn,
  out: (n: NodeRow) => n.rpsOut,
};
const nodeStrs: Record<string, Str> = {
  name: (n: NodeRow) => [n.label, n.raw.app, n.raw.service, n.raw.workload].filter((s): s is string => !!s),
  app: (n: NodeRow) => [n.raw.app ?? ""],
  version: (n: NodeRow) => [n.raw.version ?? ""],
  workload: (n: NodeRow) => [n.raw.workload ?? ""],
  service: (n: NodeRow) => [n.raw.service ?? ""],
  namespace: (n: NodeRow) => [n.namespace],
  ns: (n: NodeRow) => [n.namespace],
  type: (n: NodeRow) => [n.type],
  health: (n: NodeRow) => [n.health],
};
const nodeFlags: Record<string, (n: NodeRow) => boolean> = {
  healthy: (n) => n.health === "Healthy",
  degraded: (n) => n.health === "Degraded",
  failure: (n) => n.health === "Failure",
  root: (n) => !!n.raw.isRoot,
  idle: (n) => !!n.raw.isIdle,
  dead: (n) => !!n.raw.isDead,
  outside: (n) => !!n.raw.isOutside,
};
const edgeNums: Record<string, Num> = {
  rps: (e: EdgeRow) => e.rps,
  errors: (e: EdgeRow) => e.errPct,
  p95: (e: EdgeRow) => e.p95,
  mtls: (e: EdgeRow) => e.mtls,
  share: (e: EdgeRow) => e.share,
};
const edgeStrs: Record<string, Str> = {
  protocol: (e: EdgeRow) => [e.protocol],
  from: (e: EdgeRow) => [e.source.label],
  to: (e: EdgeRow) => [e.target.label],
};
const edgeFlags: Record<string, (e: EdgeRow) => boolean> = {
  // a bare `mtls`: every request over mutual TLS
  mtls: (e) => e.mtls >= 100,
  healthy: (e) => e.health === "Healthy",
  degraded: (e) => e.health === "Degraded",
  failure: (e) => e.health === "Failure",
};

/** help lists the language, for the inputs' titles. */
export const findHelp =
  "Plain text finds nodes by name. Expressions: node fields name, app, version, workload, service, namespace, type, health (= != *= ^= $=), " +
  "in, out (rps; = != < <= > >=); flags healthy, degraded, failure, root, idle, dead, outside. " +
  "Edge fields rps, errors (%), p95 (ms), mtls (%), share (%); protocol, from, to; flag mtls. " +
  "Join with and/or, negate with ! or not, group with ( ). E.g. rps > 1 and errors > 0; name = reviews; !healthy";

const strOps = ["=", "!=", "*=", "^=", "$="];
const numOps = ["=", "!=", "<", "<=", ">", ">="];

type Tok = { kind: "word" | "str" | "op" | "(" | ")" | "!" | "and" | "or"; text: string; at: number };

function tokenize(src: string): Tok[] {
  const out: Tok[] = [];
  const re = /\s*(?:(&&|\|\|)|(!=|<=|>=|==|\*=|\^=|\$=|=|<|>)|(!)|([()])|"([^"]*)"|'([^']*)'|([^\s()!=<>"'&|*^$]+))/y;
  let i = 0;
  while (i < src.length) {
    if (/^\s*$/.test(src.slice(i))) break;
    re.lastIndex = i;
    const m = re.exec(src);
    if (!m) throw new Error(`cannot read "${src.slice(i).trim()}"`);
    const at = i + m[0].length - m[0].trimStart().length;
    if (m[1]) out.push({ kind: m[1] === "&&" ? "and" : "or", text: m[1], at });
    else if (m[2]) out.push({ kind: "op", text: m[2] === "==" ? "=" : m[2], at });
    else if (m[3]) out.push({ kind: "!", text: "!", at });
    else if (m[4]) out.push({ kind: m[4] as "(" | ")", text: m[4], at });
    else if (m[5] !== undefined || m[6] !== undefined) out.push({ kind: "str", text: m[5] ?? m[6], at });
    else {
      const w = m[7].toLowerCase();
      out.push({ kind: w === "and" ? "and" : w === "or" ? "or" : w === "not" ? "!" : "word", text: m[7], at });
    }
    i = re.lastIndex;
  }
  return out;
}

type Pred = (x: never) => boolean;

/**
 * parseFind reads an expression; "" is null (nothing to find). Errors say
 * what is wrong in words a user can act on.
 */
export function parseFind(src: string): Query | null {
  const text = src.trim();
  if (!text) return null;
  const toks = tokenize(text);
  const first = toks[0].text.toLowerCase();
  const known = (w: string) => w in nodeNums || w in nodeStrs || w in nodeFlags || w in edgeNums || w in edgeStrs || w in edgeFlags;
  // Plain text, as find always took: nodes whose name holds it.
  if (toks.every((t) => t.kind === "word") && !known(first)) {
    const want = text.toLowerCase();
    return { target: "node", test: (x) => (x as NodeRow).label.toLowerCase().includes(want) };
  }
  let target: "node" | "edge" | "" = "";
  const aim = (t: "node" | "edge", field: string) => {
    if (target && target !== t) throw new Error(`${field} is an ${t} field: an expression is about nodes or about edges, not both`);
    target = t;
  };
  let pos = 0;
  const peek = () => toks[pos];
  const need = (what: string) => {
    const t = toks[pos++];
    if (!t) throw new Error(`${what} is missing at the end`);
    return t;
  };
  const or = (): Pred => {
    let p = and();
    while (peek()?.kind === "or") {
      pos++;
      const [a, b] = [p, and()];
      p = (x) => a(x) || b(x);
    }
    return p;
  };
  const and = (): Pred => {
    let p = unary();
    while (peek()?.kind === "and") {
      pos++;
      const [a, b] = [p, unary()];
      p = (x) => a(x) && b(x);
    }
    return p;
  };
  const unary = (): Pred => {
    const t = need("a condition");
    if (t.kind === "!") {
      const p = unary();
      return (x) => !p(x);
    }
    if (t.kind === "(") {
      const p = or();
      if (need("a closing )").kind !== ")") throw new Error(`a closing ) is missing before "${toks[pos - 1].text}"`);
      return p;
    }
    if (t.kind !== "word") throw new Error(`a field is missing before "${t.text}"`);
    return condition(t.text.toLowerCase());
  };
  const condition = (field: string): Pred => {
    const op = peek()?.kind === "op" ? toks[pos++].text : "";
    if (!op) {
      const flag = nodeFlags[field] ?? edgeFlags[field];
      if (!flag) {
        if (known(field)) throw new Error(`${field} needs a comparison, e.g. ${field in edgeNums || field in nodeNums ? `${field} > 1` : `${field} = x`}`);
        throw new Error(`unknown field "${field}"; see the field list (hover the input)`);
      }
      // A flag both kinds have (healthy...) follows the expression's kind.
      const both = field in nodeFlags && field in edgeFlags;
      if (!both) aim(field in nodeFlags ? "node" : "edge", field);
      return (x) => ("source" in (x as object) ? (edgeFlags[field]?.(x) ?? false) : (nodeFlags[field]?.(x) ?? false));
    }
    const v = need(`a value after ${field} ${op}`);
    if (v.kind !== "word" && v.kind !== "str") throw new Error(`a value is missing after ${field} ${op}`);
    const num = nodeNums[field] ?? edgeNums[field];
    if (num) {
      aim(field in nodeNums ? "node" : "edge", field);
      if (!numOps.includes(op)) throw new Error(`${field} is a number: compare it with ${numOps.join(" ")}`);
      const want = Number(v.text.replace(/%$/, ""));
      if (v.kind === "str" || v.text === "" || !isFinite(want)) throw new Error(`${field} is a number; "${v.text}" is not`);
      return (x) => compareNum(num(x), op, want);
    }
    const str = nodeStrs[field] ?? edgeStrs[field];
    if (!str) throw new Error(`unknown field "${field}"; see the field list (hover the input)`);
    aim(field in nodeStrs ? "node" : "edge", field);
    if (!strOps.includes(op)) throw new Error(`${field} is text: compare it with ${strOps.join(" ")}`);
    const want = v.text.toLowerCase();
    return (x) => compareStr(str(x), op, want);
  };
  const pred = or();
  if (pos < toks.length) throw new Error(`"${toks[pos].text}" is not expected here: join conditions with and / or`);
  const t: "node" | "edge" = target || "node";
  return { target: t, test: pred as (x: NodeRow | EdgeRow) => boolean };
}

function compareNum(v: number, op: string, want: number): boolean {
  if (isNaN(v)) return op === "!=";
  switch (op) {
    case "=":
      return v === want;
    case "!=":
      return v !== want;
    case "<":
      return v < want;
    case "<=":
      return v <= want;
    case ">":
      return v > want;
    default:
      return v >= want;
  }
}

function compareStr(vs: string[], op: string, want: string): boolean {
  const low = vs.map((v) => v.toLowerCase());
  switch (op) {
    case "=":
      return low.includes(want);
    case "!=":
      return !low.includes(want);
    case "*=":
      return low.some((v) => v.includes(want));
    case "^=":
      return low.some((v) => v.startsWith(want));
    default:
      return low.some((v) => v.endsWith(want));
  }
}

/** Hidden is a model with what a hide expression removes taken out. */
export interface Hidden {
  model: Model;
  nodes: number;
  edges: number;
}

/**
 * hide removes the nodes or edges q matches, the edges of removed nodes,
 * and the nodes that this leaves without any edge; boxes left empty go too.
 */
export function hide(m: Model, q: Query | null): Hidden {
  if (!q) return { model: m, nodes: 0, edges: 0 };
  const gone = new Set(q.target === "node" ? m.nodes.filter((n) => !n.box && q.test(n)).map((n) => n.id) : []);
  const edges = m.edges.filter((e) => !gone.has(e.source.id) && !gone.has(e.target.id) && !(q.target === "edge" && q.test(e)));
  const linked = new Set(edges.flatMap((e) => [e.source.id, e.target.id]));
  const hadEdges = new Set(m.edges.flatMap((e) => [e.source.id, e.target.id]));
  for (const n of m.nodes) if (!n.box && hadEdges.has(n.id) && !linked.has(n.id)) gone.add(n.id);
  let nodes = m.nodes.filter((n) => !gone.has(n.id));
  // Boxes without members, inner boxes first.
  for (let changed = true; changed; ) {
    const parents = new Set(nodes.map((n) => n.raw.parent));
    const kept = nodes.filter((n) => !n.box || parents.has(n.id));
    changed = kept.length !== nodes.length;
    nodes = kept;
  }
  const shown = nodes.filter((n) => !n.box).length;
  const all = m.nodes.filter((n) => !n.box).length;
  return { model: { ...m, nodes, edges }, nodes: all - shown, edges: m.edges.length - edges.length };
}
