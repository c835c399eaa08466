// Page state lives in the URL's query string, so every view is shareable.

/** param reads one query-string parameter, or def when absent. */
export function param(name: string, def = ""): string {
  return new URLSearchParams(location.search).get(name) ?? def;
}

/** params returns every query-string parameter. */
export function params(): URLSearchParams {
  return new URLSearchParams(location.search);
}

/**
 * setParams merges values into the query string (empty strings and null
 * remove a key). push adds a history entry; otherwise the entry is replaced,
 * so typing in a form does not flood the back button.
 */
export function setParams(values: Record<string, string | number | null | undefined>, push = false): void {
  const p = params();
  for (const [k, v] of Object.entries(values)) {
    if (v === null || v === undefined || v === "") p.delete(k);
    else p.set(k, String(v));
  }
  const qs = p.toString();
  const url = location.pathname + (qs ? `?${qs}` : "");
  if (url === location.pathname + location.search) return;
  if (push) history.pushState(null, "", url);
  else history.replaceState(null, "", url);
}

/** href builds an in-app link. */
export function href(path: string, values: Record<string, string | number | null | undefined> = {}): string {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(values)) {
    if (v !== null && v !== undefined && v !== "") p.set(k, String(v));
  }
  const qs = p.toString();
  return path + (qs ? `?${qs}` : "");
}

/** Durations offered by the views' time pickers, as Prometheus spells them. */
export const durations = ["1m", "5m", "10m", "30m", "1h", "3h", "6h", "12h", "1d"];

/** seconds parses a Prometheus-style duration such as 90s, 5m, 1h30m, 2d. */
export function seconds(d: string): number {
  const units: Record<string, number> = { ms: 0.001, s: 1, m: 60, h: 3600, d: 86400, w: 604800 };
  let total = 0;
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h|d|w)/g;
  let m: RegExpExecArray | null;
  let matched = "";
  while ((m = re.exec(d)) !== null) {
    total += parseFloat(m[1]) * units[m[2]];
    matched += m[0];
  }
  return matched === d && d !== "" ? total : NaN;
}
