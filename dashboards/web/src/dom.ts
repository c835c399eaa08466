// Small DOM helpers: the UI is plain TypeScript, no framework.

type Child = Node | string | number | null | undefined | false;
type Attrs = Record<string, string | number | boolean | null | undefined | EventListener>;

/** h creates an element: attributes starting with "on" become listeners. */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Attrs = {},
  ...children: (Child | Child[])[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") {
      el.addEventListener(k.slice(2), v as EventListener);
    } else if (v === true) {
      el.setAttribute(k, "");
    } else {
      el.setAttribute(k, String(v));
    }
  }
  append(el, children);
  return el;
}

/** append adds children, skipping empty ones. */
export function append(el: Element, children: (Child | Child[])[]): void {
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : String(c));
  }
}

/**
 * keepPlace runs redraw, which replaces what container holds, and gives the
 * user their place back: focus returns to the element with the same
 * data-focus key, and the window's and container's scroll stay.
 */
export function keepPlace(container: HTMLElement, redraw: () => void): void {
  const active = document.activeElement instanceof HTMLElement ? document.activeElement : null;
  const key = active && container.contains(active) ? active.dataset.focus : undefined;
  const [x, y, top] = [window.scrollX, window.scrollY, container.scrollTop];
  redraw();
  if (key) container.querySelector<HTMLElement>(`[data-focus="${CSS.escape(key)}"]`)?.focus({ preventScroll: true });
  container.scrollTop = top;
  window.scrollTo(x, y);
}

/** clear removes every child of el. */
export function clear(el: Element): void {
  el.replaceChildren();
}

/** loading is the visible placeholder while a request runs. */
export function loading(what: string): HTMLElement {
  return h("div", { class: "state loading", role: "status" }, h("span", { class: "spinner", "aria-hidden": "true" }), `Loading ${what}…`);
}

/** errorBox shows a failed request, with a retry button when given. */
export function errorBox(err: unknown, retry?: () => void): HTMLElement {
  return h(
    "div",
    { class: "state error", role: "alert" },
    h("strong", {}, "Error: "),
    errorText(err),
    retry ? h("button", { type: "button", onclick: () => retry() }, "Retry") : null,
  );
}

/** empty shows that a request succeeded with nothing to show. */
export function empty(msg: string): HTMLElement {
  return h("div", { class: "state empty" }, msg);
}

/** unavailable is the state of a view whose API this server does not have. */
export function unavailable(what: string, path: string): HTMLElement {
  return h(
    "div",
    { class: "state unavailable", role: "status" },
    h("strong", {}, `${what} are not available on this server`),
    h("p", {}, "The API ", h("code", {}, path), " answered 404: this glassmesh does not serve it yet."),
  );
}

export function errorText(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}
