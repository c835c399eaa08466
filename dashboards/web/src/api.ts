// Typed access to glassmesh's HTTP APIs, all same-origin.

/** HTTPError is a non-2xx answer; message carries the server's explanation. */
export class HTTPError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/** getJSON fetches url and decodes JSON, turning API error bodies into messages. */
export async function getJSON<T>(url: string, signal?: AbortSignal): Promise<T> {
  const resp = await fetch(url, { signal, headers: { Accept: "application/json" } });
  return decode<T>(resp, url);
}

/** postJSON posts to url with an optional bearer token. */
export async function postJSON<T>(url: string, token?: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = { Accept: "application/json" };
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const resp = await fetch(url, { method: "POST", headers, body: body === undefined ? undefined : JSON.stringify(body) });
  return decode<T>(resp, url);
}

async function decode<T>(resp: Response, url: string): Promise<T> {
  const text = await resp.text();
  if (!resp.ok) {
    throw new HTTPError(resp.status, `${resp.status} ${resp.statusText} from ${url.split("?")[0]}${explain(text)}`);
  }
  try {
    return JSON.parse(text) as T;
  } catch {
    throw new HTTPError(resp.status, `${url.split("?")[0]} did not answer JSON`);
  }
}

// explain pulls the message out of Prometheus ({error}), Jaeger ({errors:[{msg}]})
// and plain-text error bodies.
function explain(body: string): string {
  if (!body) return "";
  try {
    const j = JSON.parse(body);
    if (typeof j.error === "string") return `: ${j.error}`;
    if (Array.isArray(j.errors) && j.errors[0]?.msg) return `: ${j.errors[0].msg}`;
    if (typeof j.message === "string") return `: ${j.message}`;
  } catch {
    /* not JSON */
  }
  return `: ${body.trim().slice(0, 300)}`;
}

// ---- Prometheus ----

export interface PromSample {
  metric: Record<string, string>;
  value?: [number, string];
  values?: [number, string][];
}

export interface PromResult {
  resultType: "vector" | "matrix" | "scalar" | "string";
  result: PromSample[] | [number, string];
}

interface PromEnvelope<T> {
  status: string;
  data: T;
  error?: string;
  warnings?: string[];
}

/** promQuery runs an instant query. */
export async function promQuery(query: string, time?: number, signal?: AbortSignal): Promise<PromResult> {
  const p = new URLSearchParams({ query });
  if (time) p.set("time", String(time));
  return (await getJSON<PromEnvelope<PromResult>>(`/api/v1/query?${p}`, signal)).data;
}

/** promRange runs a range query over [start, end] (unix seconds). */
export async function promRange(query: string, start: number, end: number, step: number, signal?: AbortSignal): Promise<PromResult> {
  const p = new URLSearchParams({ query, start: String(start), end: String(end), step: String(step) });
  return (await getJSON<PromEnvelope<PromResult>>(`/api/v1/query_range?${p}`, signal)).data;
}

/** promList answers /api/v1/labels, /label/x/values and similar list endpoints. */
export async function promList(path: string, signal?: AbortSignal): Promise<string[]> {
  return (await getJSON<PromEnvelope<string[]>>(path, signal)).data ?? [];
}

/** stepFor picks a range-query step giving about 240 points. */
export function stepFor(seconds: number): number {
  return Math.max(1, Math.round(seconds / 240));
}

// ---- Jaeger ----

export interface JaegerTag {
  key: string;
  type: string;
  value: unknown;
}

export interface JaegerSpan {
  traceID: string;
  spanID: string;
  operationName: string;
  references: { refType: string; traceID: string; spanID: string }[] | null;
  startTime: number; // µs
  duration: number; // µs
  tags: JaegerTag[] | null;
  logs: { timestamp: number; fields: JaegerTag[] }[] | null;
  processID: string;
  warnings: string[] | null;
}

export interface JaegerTrace {
  traceID: string;
  spans: JaegerSpan[];
  processes: Record<string, { serviceName: string; tags: JaegerTag[] | null }>;
  warnings: string[] | null;
}

interface JaegerEnvelope<T> {
  data: T;
  errors: { code: number; msg: string }[] | null;
}

export async function jaeger<T>(path: string, signal?: AbortSignal): Promise<T> {
  return (await getJSON<JaegerEnvelope<T>>(path, signal)).data;
}

/** spanIsError follows Jaeger: an error=true tag (OTel status ERROR maps to it). */
export function spanIsError(s: JaegerSpan): boolean {
  return (s.tags ?? []).some((t) => (t.key === "error" && (t.value === true || t.value === "true")) || (t.key === "otel.status_code" && t.value === "ERROR"));
}
