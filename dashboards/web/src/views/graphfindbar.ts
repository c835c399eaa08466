// The graph's find and hide inputs: Kiali's expressions (graphfind.ts),
// kept in the URL (find, hide), with what they match or hide said in words
// and a wrong expression explained next to its input.
import { h } from "../dom";
import { findHelp, parseFind, type Hidden, type Query } from "../graphfind";
import { param, setParams } from "../state";

/** FindBar holds the page's find and hide expressions. */
export class FindBar {
  /** what to mark (null: nothing) */
  find: Query | null = null;
  /** what to take out of the drawing (null: nothing) */
  hide: Query | null = null;
  /** the toolbar's items */
  readonly items: HTMLElement[];
  private readonly findInput: HTMLInputElement;
  private readonly hideInput: HTMLInputElement;
  private readonly found: HTMLElement;
  private readonly hidden: HTMLElement;
  private readonly error: HTMLElement;

  /** changed hears each new find or hide expression that parsed. */
  constructor(changed: (what: "find" | "hide") => void) {
    const input = (id: string, what: string) =>
      h("input", { type: "search", id, placeholder: `${what}: name, rps > 1, !healthy`, "aria-label": `${what} nodes or edges`, title: findHelp, size: 30, value: param(what) });
    this.findInput = input("graph-find", "find");
    this.hideInput = input("graph-hide", "hide");
    this.found = h("span", { class: "muted", id: "graph-found", role: "status", "aria-live": "polite" });
    this.hidden = h("span", { class: "muted", id: "graph-hidden", role: "status", "aria-live": "polite" });
    this.error = h("span", { class: "find-error", id: "graph-find-error", role: "alert" });
    this.items = [this.findInput, this.found, this.hideInput, this.hidden, this.error];
    for (const [what, el] of [["find", this.findInput], ["hide", this.hideInput]] as const) {
      el.addEventListener("input", () => {
        setParams({ [what]: el.value.trim() || null });
        if (this.read(what)) changed(what);
      });
    }
    this.read("find");
    this.read("hide");
  }

  /** read parses one input; a wrong expression is shown and keeps the last good one. */
  private read(what: "find" | "hide"): boolean {
    const el = what === "find" ? this.findInput : this.hideInput;
    try {
      this[what] = parseFind(el.value);
      el.removeAttribute("aria-invalid");
      if (!this.findInput.hasAttribute("aria-invalid") && !this.hideInput.hasAttribute("aria-invalid")) this.error.textContent = "";
      return true;
    } catch (err) {
      el.setAttribute("aria-invalid", "true");
      this.error.textContent = `${what}: ${(err as Error).message}`;
      return false;
    }
  }

  /** showFound says how many nodes or edges the find expression marks. */
  showFound(n: number): void {
    this.found.textContent = this.find ? `${n} ${this.find.target}${n === 1 ? "" : "s"} found` : "";
  }

  /** showHidden says what the hide expression took out. */
  showHidden(x: Hidden): void {
    const part = (n: number, what: string) => `${n} ${what}${n === 1 ? "" : "s"}`;
    this.hidden.textContent = this.hide ? `${part(x.nodes, "node")} and ${part(x.edges, "edge")} hidden` : "";
  }
}
