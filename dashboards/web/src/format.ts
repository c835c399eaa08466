// Number, time and duration formatting shared by the views.

/** rate formats a per-second rate. */
export function rate(v: number): string {
  if (!isFinite(v)) return "–";
  if (v === 0) return "0";
  if (v < 0.01) return v.toExponential(1);
  if (v < 10) return v.toFixed(2);
  if (v < 1000) return v.toFixed(1);
  return `${(v / 1000).toFixed(1)}k`;
}

/** pct formats a percentage given as 0–100. */
export function pct(v: number): string {
  if (!isFinite(v)) return "–";
  if (v === 0) return "0%";
  if (v < 0.1) return "<0.1%";
  return `${v < 10 ? v.toFixed(1) : v.toFixed(0)}%`;
}

/** ms formats milliseconds. */
export function ms(v: number): string {
  if (!isFinite(v)) return "–";
  if (v < 1) return `${(v * 1000).toFixed(0)}µs`;
  if (v < 1000) return `${v < 10 ? v.toFixed(1) : v.toFixed(0)}ms`;
  if (v < 60000) return `${(v / 1000).toFixed(2)}s`;
  return `${(v / 60000).toFixed(1)}min`;
}

/** us formats microseconds (Jaeger's unit). */
export function us(v: number): string {
  return ms(v / 1000);
}

/** time formats a date as local time with seconds. */
export function time(d: Date): string {
  return d.toLocaleTimeString(undefined, { hour12: false });
}

/** dateTime formats a date with its day. */
export function dateTime(d: Date): string {
  return `${d.toLocaleDateString()} ${time(d)}`;
}

/** localInput formats epoch milliseconds (as a string) for a datetime-local input. */
export function localInput(msStr: string): string {
  const t = Number(msStr);
  if (!msStr || !isFinite(t)) return "";
  const d = new Date(t - new Date(t).getTimezoneOffset() * 60000);
  return d.toISOString().slice(0, 19);
}

/** num formats any sample value compactly. */
export function num(v: number): string {
  if (!isFinite(v)) return String(v);
  const a = Math.abs(v);
  if (a !== 0 && (a < 0.001 || a >= 1e6)) return v.toExponential(3);
  return String(Math.round(v * 1e4) / 1e4);
}

/** ago formats how long ago a date was. */
export function ago(d: Date): string {
  const s = Math.round((Date.now() - d.getTime()) / 1000);
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.round(s / 60)}m ago`;
  if (s < 86400) return `${Math.round(s / 3600)}h ago`;
  return `${Math.round(s / 86400)}d ago`;
}
