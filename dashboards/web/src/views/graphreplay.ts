// Replay, as Kiali has it: the graph of a past window read from the stored
// metrics (the graph API's queryTime) in place of the live stream, stepped
// window by window. The window's start is kept in the URL (replay=<unix s>).
import { h } from "../dom";
import { dateTime, localInput, time } from "../format";
import { param, setParams } from "../state";

/** Replay is the graph page's replay switch and its bar of controls. */
export class Replay {
  /** the replayed window's start in unix seconds; 0 while live */
  start = Math.max(0, Math.floor(Number(param("replay")) || 0));
  /** the button that enters and leaves replay */
  readonly toggle: HTMLButtonElement;
  /** the controls shown while replaying */
  readonly bar: HTMLElement;
  private readonly input: HTMLInputElement;
  private readonly back: HTMLButtonElement;
  private readonly next: HTMLButtonElement;
  private readonly label: HTMLElement;

  /** window gives the traffic window in seconds; changed hears every move. */
  constructor(
    private readonly windowSec: () => number,
    private readonly changed: () => void,
  ) {
    this.toggle = h("button", { type: "button", id: "graph-replay", "aria-pressed": "false", onclick: () => this.set(this.on ? 0 : this.defaultStart()) }, "Replay");
    this.input = h("input", { type: "datetime-local", id: "graph-replay-start", step: 1, "aria-label": "Replay from" });
    this.input.addEventListener("change", () => {
      const t = Date.parse(this.input.value);
      if (isFinite(t)) this.set(t / 1000);
    });
    this.back = h("button", { type: "button", id: "graph-replay-back", title: "The window before", onclick: () => this.set(this.start - this.windowSec()) }, "◀ earlier");
    this.next = h("button", { type: "button", id: "graph-replay-next", title: "The window after", onclick: () => this.set(this.start + this.windowSec()) }, "later ▶");
    this.label = h("strong", { id: "graph-replay-time", role: "status", "aria-live": "polite" });
    this.bar = h("div", { class: "toolbar replay", id: "graph-replay-bar", hidden: true }, h("label", {}, "Replay from", this.input), this.back, this.next, this.label);
    this.show();
  }

  /** on tells whether the graph shows a past window. */
  get on(): boolean {
    return this.start > 0;
  }

  /** end is the replayed window's end: the graph API's queryTime. */
  get end(): number {
    return this.start + this.windowSec();
  }

  /** show brings the controls up to date (the window may have changed). */
  show(): void {
    this.toggle.setAttribute("aria-pressed", String(this.on));
    this.toggle.textContent = this.on ? "Back to live" : "Replay";
    this.bar.hidden = !this.on;
    if (!this.on) return;
    this.input.value = localInput(String(this.start * 1000));
    this.next.disabled = this.end + this.windowSec() > Date.now() / 1000;
    this.label.textContent = `replaying ${dateTime(new Date(this.start * 1000))} – ${time(new Date(this.end * 1000))}`;
  }

  /** defaultStart is the window that ended a window ago, on a whole minute. */
  private defaultStart(): number {
    const w = this.windowSec();
    return Math.floor((Date.now() / 1000 - 2 * w) / 60) * 60;
  }

  /** set replays the window from start (unix seconds), or goes live with 0; never into the future. */
  private set(start: number): void {
    if (start > 0) start = Math.floor(Math.min(start, Date.now() / 1000 - this.windowSec()));
    this.start = Math.max(0, start);
    setParams({ replay: this.start || null });
    this.show();
    this.changed();
  }
}
