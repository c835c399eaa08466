// The live-update controls of the pages that refresh by themselves (the
// graph, the canaries): an interval, pause/resume, and a status line. Both
// choices are kept in the URL (refresh, paused), so a shared or reloaded
// page refreshes as its user left it.
import { h } from "./dom";
import { time } from "./format";
import { param, setParams } from "./state";

/** refreshes are the intervals the pages offer. */
export const refreshes = ["5s", "10s", "30s", "1m"];

const pausedText = "paused: updates resume on Resume updates";

/** defaultRefresh is left out of the URL. */
const defaultRefresh = "5s";

/** LiveControls are one page's refresh select, pause button and status. */
export class LiveControls {
  /** the chosen interval, as Prometheus spells durations */
  refresh = param("refresh", defaultRefresh);
  /** whether the user paused the updates */
  paused = param("paused") === "1";
  /** the toolbar's items: the select, the button and the status */
  readonly items: HTMLElement[];
  private readonly select: HTMLSelectElement;
  private readonly button: HTMLButtonElement;
  private readonly text: HTMLElement;
  private readonly said: HTMLElement;

  /**
   * id prefixes the elements' ids (<id>-refresh, <id>-pause, <id>-live);
   * changed hears every change of the interval or of the pause.
   */
  constructor(id: string, changed: (what: "refresh" | "pause") => void) {
    const choices = refreshes.includes(this.refresh) ? refreshes : [...refreshes, this.refresh];
    this.select = h("select", { id: `${id}-refresh` }, choices.map((r) => h("option", { value: r, selected: r === this.refresh }, `every ${r}`)));
    this.button = h("button", { type: "button", id: `${id}-pause`, "aria-pressed": "false" }, "Pause updates");
    // The visible "updated" time changes every refresh: it is not a live
    // region (screen readers would hear it every 5 s); state changes are.
    this.text = h("span", { class: "live", id: `${id}-live` }, "connecting…");
    this.said = h("span", { class: "sr-only", role: "status", "aria-live": "polite" });
    this.items = [h("label", {}, "Refresh", this.select), this.button, this.text, this.said];
    this.select.addEventListener("change", () => {
      this.refresh = this.select.value;
      setParams({ refresh: this.refresh === defaultRefresh ? null : this.refresh });
      changed("refresh");
    });
    this.button.addEventListener("click", () => {
      this.paused = !this.paused;
      setParams({ paused: this.paused ? 1 : null });
      this.showPause();
      changed("pause");
    });
    this.showPause();
  }

  /** refreshMs is the interval in milliseconds. */
  get refreshMs(): number {
    const m = /^(\d+)(s|m)$/.exec(this.refresh);
    return m ? Number(m[1]) * (m[2] === "m" ? 60_000 : 1000) : 5000;
  }

  /** updated says when the page last drew fresh data. */
  updated(at: Date): void {
    if (!this.paused) this.state("live on", `live · updated ${time(at)}`);
  }

  /** state shows a state; all but the routine "updated" are also said aloud. */
  state(cls: string, text: string): void {
    this.text.className = cls;
    this.text.textContent = text;
    if (cls !== "live on") this.said.textContent = text;
  }

  /** connecting says a new connection is on its way, unless paused. */
  connecting(): void {
    if (this.paused) this.state("live paused", pausedText);
    else this.state("live", "connecting…");
  }

  /** disable turns the controls off (or on again), e.g. while the graph replays the past. */
  disable(off: boolean): void {
    this.select.disabled = off;
    this.button.disabled = off;
  }

  private showPause(): void {
    this.button.setAttribute("aria-pressed", String(this.paused));
    // "updates": the canary page has a Pause of the rollout beside it.
    this.button.textContent = this.paused ? "Resume updates" : "Pause updates";
    this.button.title = this.paused ? "Resume the live updates" : "Stop the live updates, to study what is shown";
    if (this.paused) this.state("live paused", pausedText);
    else if (this.text.classList.contains("paused")) this.state("live", "resuming…");
  }
}
