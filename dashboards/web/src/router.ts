// A small client-side router: path → view, state in the query string.

/** Ctx is what a view gets: its root element and a signal aborted when the page changes. */
export interface Ctx {
  root: HTMLElement;
  signal: AbortSignal;
  /** path segments after the view's own, e.g. the trace id of /traces/<id>. */
  rest: string[];
}

/** A View renders into ctx.root; it may return a cleanup function. */
export type View = (ctx: Ctx) => void | (() => void);

export interface Route {
  path: string; // first path segment, "" for /
  title: string;
  view: View;
  nav?: boolean;
}

let current: { abort: AbortController; cleanup?: () => void } | null = null;
let routes: Route[] = [];
let onChange: (r: Route) => void = () => {};

/** start installs the routes and renders the current URL. */
export function start(rs: Route[], main: HTMLElement, changed: (r: Route) => void): void {
  routes = rs;
  onChange = changed;
  window.addEventListener("popstate", () => render(main));
  document.addEventListener("click", (e) => {
    if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
    const a = (e.target as Element).closest?.("a");
    if (!a || a.target || a.hasAttribute("download")) return;
    const url = new URL(a.href, location.href);
    if (url.origin !== location.origin || url.pathname.startsWith("/api/") || url.pathname.startsWith("/debug/")) return;
    if (!routes.some((r) => r.path === url.pathname.split("/")[1])) return;
    e.preventDefault();
    navigate(url.pathname + url.search);
  });
  render(main);
}

/** navigate moves to an in-app URL, adding a history entry. */
export function navigate(url: string): void {
  history.pushState(null, "", url);
  const main = document.getElementById("main");
  if (main) render(main);
}

function render(main: HTMLElement): void {
  const segs = location.pathname.split("/").filter(Boolean);
  const route = routes.find((r) => r.path === (segs[0] ?? "")) ?? routes.find((r) => r.path === "*")!;
  current?.abort.abort();
  current?.cleanup?.();
  const abort = new AbortController();
  current = { abort };
  main.replaceChildren();
  document.title = `${route.title} · glassmesh`;
  onChange(route);
  const cleanup = route.view({ root: main, signal: abort.signal, rest: segs.slice(1).map(decodeURIComponent) });
  if (cleanup) current.cleanup = cleanup;
}

/**
 * lazy loads a view's module on first use, so the graph's cytoscape and the
 * charts' uPlot are fetched only by the pages that draw them.
 */
export function lazy(load: () => Promise<View>): View {
  return (ctx) => {
    let cleanup: void | (() => void);
    let done = false;
    const wait = document.createElement("div");
    wait.className = "state loading";
    wait.setAttribute("role", "status");
    wait.textContent = "Loading…";
    ctx.root.append(wait);
    load().then(
      (view) => {
        wait.remove();
        if (!ctx.signal.aborted) cleanup = view(ctx);
        if (done) cleanup?.();
      },
      (err) => {
        wait.className = "state error";
        wait.setAttribute("role", "alert");
        wait.textContent = `Could not load this page (${err instanceof Error ? err.message : err}); reload to try again.`;
      },
    );
    return () => {
      done = true;
      cleanup?.();
    };
  };
}
