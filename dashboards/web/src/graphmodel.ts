// Kiali's cytoscape JSON, read into rows the graph, its table and its side
// panel share; and the PromQL behind each number.

export interface KNode {
  id: string;
  parent?: string;
  nodeType: string; // app | workload | service | unknown | box
  namespace: string;
  cluster?: string;
  workload?: string;
  app?: string;
  version?: string;
  service?: string;
  isBox?: string;
  isRoot?: boolean;
  isDead?: boolean;
  isIdle?: boolean;
  isOutside?: boolean;
  healthStatus?: string;
  traffic?: { protocol: string; rates: Record<string, string> }[];
  /** a TrafficRoute applies to this service node (the istio appender, Kiali's names) */
  hasVS?: { hostnames?: string[] };
  hasTrafficShifting?: boolean;
  hasRequestRouting?: boolean;
  /** the Canary that drives this node's traffic (glassmesh's extension) */
  canary?: CanaryRef;
}

/** CanaryRef names a canary, as the graph API's node "canary" field does. */
export interface CanaryRef {
  namespace: string;
  name: string;
  state?: string;
}

/** canaryHref is the canary's page. */
export const canaryHref = (c: CanaryRef) => `/canaries/${encodeURIComponent(c.namespace)}/${encodeURIComponent(c.name)}`;

/** nodeBadges are a node's route and canary badges as words: "route", "canary". */
export function nodeBadges(n: NodeRow): string[] {
  return [n.raw.hasVS ? "route" : "", n.raw.canary ? "canary" : ""].filter(Boolean);
}

/** badgeMark is each badge's symbol, shown with its word (never the symbol alone). */
export const badgeMark: Record<string, string> = { route: "⇄", canary: "⚑" };

/** routeText says what a node's route does, e.g. "route: traffic shifting, request routing". */
export function routeText(n: KNode): string {
  const what = [n.hasTrafficShifting ? "traffic shifting" : "", n.hasRequestRouting ? "request routing" : ""].filter(Boolean);
  return what.length ? `route: ${what.join(", ")}` : "route";
}

export interface KEdge {
  id: string;
  source: string;
  target: string;
  responseTime?: string;
  throughput?: string;
  healthStatus?: string;
  /** percent of the edge's requests over mutual TLS (securityPolicy appender) */
  isMTLS?: string;
  sourcePrincipal?: string;
  destPrincipal?: string;
  traffic?: {
    protocol: string;
    rates?: Record<string, string>;
    responses?: Record<string, { flags?: Record<string, string>; hosts?: Record<string, string> }>;
  };
}

export interface KGraph {
  timestamp: number;
  duration: number;
  graphType: string;
  elements: { nodes: { data: KNode }[] | null; edges: { data: KEdge }[] | null };
}

/** NodeRow is one drawn node with its numbers. */
export interface NodeRow {
  id: string;
  label: string;
  type: string;
  namespace: string;
  health: string;
  protocol: string;
  rpsIn: number;
  rpsOut: number;
  box: boolean;
  raw: KNode;
}

/** EdgeRow is one edge with its numbers. */
export interface EdgeRow {
  id: string;
  source: NodeRow;
  target: NodeRow;
  protocol: string;
  rps: number;
  errPct: number;
  p95: number; // ms, NaN when unknown
  health: string;
  codes: { code: string; flag: string; pct: number }[];
  /** percent of its requests over mutual TLS; NaN when unknown */
  mtls: number;
  /** percent of the source's requests (of this protocol) that take this edge */
  share: number;
  raw: KEdge;
}

export interface Model {
  nodes: NodeRow[];
  edges: EdgeRow[];
  graphType: string;
  duration: number;
}

const num = (s: string | undefined) => (s === undefined || s === "" ? NaN : parseFloat(s));

/** nodeLabel names a node as Kiali does for its type. */
export function nodeLabel(n: KNode, graphType: string): string {
  if (n.isBox) return n.app ?? n.namespace;
  switch (n.nodeType) {
    case "service":
      return n.service ?? "service";
    case "workload":
      return n.workload ?? "workload";
    case "unknown":
      return "unknown";
    default:
      return graphType === "versionedApp" && n.version ? `${n.app} ${n.version}` : (n.app ?? n.workload ?? n.id);
  }
}

/** isError tells whether a response code counts against the error rate. */
function isError(protocol: string, code: string): boolean {
  if (protocol === "grpc") return code !== "0" && code !== "-";
  if (protocol === "http") return /^[45]/.test(code) || code === "-";
  return false;
}

/** readGraph turns Kiali JSON into rows. */
export function readGraph(g: KGraph): Model {
  const nodes = new Map<string, NodeRow>();
  for (const { data: n } of g.elements.nodes ?? []) {
    let rpsIn = 0;
    let rpsOut = 0;
    let protocol = "";
    for (const t of n.traffic ?? []) {
      protocol ||= t.protocol;
      for (const [k, v] of Object.entries(t.rates ?? {})) {
        if (/^(http|grpc|tcp)In$/.test(k)) rpsIn += num(v) || 0;
        if (/^(http|grpc|tcp)Out$/.test(k)) rpsOut += num(v) || 0;
      }
    }
    nodes.set(n.id, {
      id: n.id,
      label: nodeLabel(n, g.graphType),
      type: n.isBox ? "box" : n.nodeType,
      namespace: n.namespace,
      health: n.healthStatus ?? "",
      protocol,
      rpsIn,
      rpsOut,
      box: !!n.isBox,
      raw: n,
    });
  }
  const edges: EdgeRow[] = [];
  for (const { data: e } of g.elements.edges ?? []) {
    const source = nodes.get(e.source);
    const target = nodes.get(e.target);
    if (!source || !target) continue;
    const tr = e.traffic ?? { protocol: "" };
    const p = tr.protocol;
    const rates = tr.rates ?? {};
    const codes: EdgeRow["codes"] = [];
    let errFromCodes = 0;
    for (const [code, r] of Object.entries(tr.responses ?? {})) {
      for (const [flag, v] of Object.entries(r.flags ?? {})) {
        const pc = num(v) || 0;
        codes.push({ code, flag, pct: pc });
        if (isError(p, code)) errFromCodes += pc;
      }
    }
    codes.sort((a, b) => b.pct - a.pct);
    const errPct = num(rates[`${p}PercentErr`]);
    edges.push({
      id: e.id,
      source,
      target,
      protocol: p,
      rps: num(rates[p]) || 0,
      errPct: isNaN(errPct) ? errFromCodes : errPct,
      p95: num(e.responseTime),
      health: e.healthStatus ?? "",
      codes,
      mtls: num(e.isMTLS),
      share: num(rates[`${p}PercentReq`]),
      raw: e,
    });
  }
  return { nodes: [...nodes.values()], edges, graphType: g.graphType, duration: g.duration };
}

// ---- PromQL behind the numbers ----

type Side = "source" | "destination";

/** matchers selects a node's requests on one side of the call. */
export function matchers(n: NodeRow, side: Side, graphType: string): string[] {
  const r = n.raw;
  const q = (k: string, v: string | undefined) => `${side}_${k}="${(v ?? "").replace(/["\\]/g, "\\$&")}"`;
  switch (n.type) {
    case "unknown":
      return [q("workload", "unknown")];
    case "service": {
      // A service is only ever a destination. Outside the service graph a
      // service node stands for the calls that reached no workload (as
      // Kiali draws them), so its charts count only those.
      const m = [`destination_service_name="${r.service}"`, `destination_service_namespace="${r.namespace}"`];
      if (graphType !== "service") m.push(`destination_workload="unknown"`);
      return m;
    }
    case "workload":
      return [q("workload", r.workload), q("workload_namespace", r.namespace)];
    default: {
      const m = [q("app", r.app), q("workload_namespace", r.namespace)];
      if (graphType === "versionedApp" && r.version) m.push(q("version", r.version));
      return m;
    }
  }
}

/** errorMatcher is what counts as a failed request for a protocol. */
export function errorMatcher(protocol: string): string {
  return protocol === "grpc" ? `grpc_response_status!="0"` : `response_code=~"[45]..|0"`;
}

/** Queries are the PromQL for one node or edge's charts. */
export interface Queries {
  /** the label matchers, for exemplar look-ups */
  selector: string;
  rate: string;
  errors: string;
  latency: { p: string; q: string }[];
}

function build(sel: string[], protocol: string, win: string): Queries {
  const s = sel.join(", ");
  const total = `sum(rate(istio_requests_total{${s}}[${win}]))`;
  return {
    selector: s,
    rate: total,
    // No error series is no errors: 0 wherever there is traffic.
    errors: `100 * (sum(rate(istio_requests_total{${s}, ${errorMatcher(protocol)}}[${win}])) or 0 * ${total}) / ${total}`,
    latency: ["0.5", "0.95", "0.99"].map((p) => ({
      p: `p${Math.round(parseFloat(p) * 100)}`,
      q: `histogram_quantile(${p}, sum by (le) (rate(istio_request_duration_milliseconds_bucket{${s}}[${win}])))`,
    })),
  };
}

/**
 * edgeQueries counts each request once, as the graph does: the caller's
 * report, or the callee's when the caller is outside the mesh.
 */
export function edgeQueries(e: EdgeRow, graphType: string, win: string): Queries {
  const reporter = e.source.type === "unknown" ? `reporter="destination"` : `reporter="source"`;
  const src = e.source.type === "service" ? matchers(e.source, "destination", graphType) : matchers(e.source, "source", graphType);
  return build([reporter, ...src, ...matchers(e.target, "destination", graphType)], e.protocol, win);
}

/** nodeQueries are a node's inbound requests (its outbound when it has none, e.g. a root). */
export function nodeQueries(n: NodeRow, graphType: string, win: string): Queries {
  if (n.rpsIn === 0 && n.rpsOut > 0 && n.type !== "service") {
    return build([`reporter="source"`, ...matchers(n, "source", graphType)], n.protocol, win);
  }
  const reporter = n.type === "service" ? `reporter="source"` : `reporter="destination"`;
  return build([reporter, ...matchers(n, "destination", graphType)], n.protocol, win);
}

/** traceService is the Jaeger service name for a node (the app, as the demo and Istio name it). */
export function traceService(n: NodeRow): string {
  const r = n.raw;
  return r.app || r.service || r.workload || "";
}
