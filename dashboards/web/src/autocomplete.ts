// PromQL autocompletion for a textarea: metric names, functions, label
// names (inside {} and after by/without) and label values (after label=").
import { promList } from "./api";
import { h } from "./dom";

const functions = [
  "abs", "absent", "absent_over_time", "avg", "avg_over_time", "bottomk", "ceil", "changes", "clamp", "clamp_max", "clamp_min",
  "count", "count_over_time", "count_values", "day_of_month", "day_of_week", "delta", "deriv", "exp", "floor", "group",
  "histogram_avg", "histogram_count", "histogram_fraction", "histogram_quantile", "histogram_sum", "holt_winters", "hour",
  "idelta", "increase", "irate", "label_join", "label_replace", "last_over_time", "ln", "log10", "log2", "max",
  "max_over_time", "min", "min_over_time", "minute", "month", "predict_linear", "present_over_time", "quantile",
  "quantile_over_time", "rate", "resets", "round", "scalar", "sgn", "sort", "sort_desc", "sqrt", "stddev",
  "stddev_over_time", "stdvar", "sum", "sum_over_time", "time", "timestamp", "topk", "vector", "year",
];

interface Item {
  text: string;
  kind: string;
}

/** Completer attaches a suggestion list to a textarea. */
export class Completer {
  private list: HTMLUListElement;
  private items: Item[] = [];
  private active = -1;
  private metrics: string[] = [];
  private labels: string[] = [];
  private values = new Map<string, Promise<string[]>>();
  private replaceFrom = 0;

  constructor(
    private ta: HTMLTextAreaElement,
    signal: AbortSignal,
  ) {
    this.list = h("ul", { class: "suggest", role: "listbox", id: "promql-suggest", hidden: true });
    ta.setAttribute("role", "combobox");
    ta.setAttribute("aria-autocomplete", "list");
    ta.setAttribute("aria-controls", "promql-suggest");
    ta.setAttribute("aria-expanded", "false");
    ta.after(this.list);
    promList("/api/v1/label/__name__/values", signal).then((m) => (this.metrics = m), () => {});
    promList("/api/v1/labels", signal).then((l) => (this.labels = l.filter((x) => x !== "__name__")), () => {});
    ta.addEventListener("input", () => this.update());
    ta.addEventListener("blur", () => setTimeout(() => this.close(), 150));
    this.list.addEventListener("mousedown", (e) => {
      const li = (e.target as Element).closest("li");
      if (!li) return;
      e.preventDefault();
      this.accept(Number(li.dataset.i));
    });
  }

  /** open tells whether suggestions are showing. */
  get open(): boolean {
    return !this.list.hidden;
  }

  /** key handles navigation keys; it returns true when it used the key. */
  key(e: KeyboardEvent): boolean {
    if (!this.open) {
      if (e.key === " " && e.ctrlKey) {
        this.update(true);
        return true;
      }
      return false;
    }
    switch (e.key) {
      case "ArrowDown":
        this.move(1);
        return true;
      case "ArrowUp":
        this.move(-1);
        return true;
      case "Enter":
      case "Tab":
        if (this.active < 0) return false;
        this.accept(this.active);
        return true;
      case "Escape":
        this.close();
        return true;
    }
    return false;
  }

  close(): void {
    this.list.hidden = true;
    this.ta.setAttribute("aria-expanded", "false");
    this.ta.removeAttribute("aria-activedescendant");
    this.active = -1;
  }

  private move(d: number) {
    this.active = (this.active + d + this.items.length) % this.items.length;
    this.draw();
  }

  private async update(force = false) {
    const pos = this.ta.selectionStart ?? 0;
    const before = this.ta.value.slice(0, pos);
    const word = /[a-zA-Z_:][a-zA-Z0-9_:]*$/.exec(before)?.[0] ?? "";
    let cands: Item[] = [];
    const valueCtx = /([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"([^"]*)$/.exec(before);
    const open = before.lastIndexOf("{") > before.lastIndexOf("}");
    const grouping = /\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*$/.test(before);
    if (valueCtx) {
      const [, label, , prefix] = valueCtx;
      this.replaceFrom = pos - prefix.length;
      const vals = await this.labelValues(label);
      cands = vals.filter((v) => v.startsWith(prefix) && v !== prefix).map((v) => ({ text: v, kind: label }));
    } else if (open || grouping) {
      this.replaceFrom = pos - word.length;
      cands = this.labels.filter((l) => l.startsWith(word) && l !== word).map((l) => ({ text: l, kind: "label" }));
    } else {
      if (!word && !force) return this.close();
      this.replaceFrom = pos - word.length;
      const lw = word.toLowerCase();
      cands = [
        ...functions.filter((f) => f.startsWith(lw) && f !== word).map((f) => ({ text: f, kind: "function" })),
        ...this.metrics.filter((m) => m.includes(word) && m !== word).map((m) => ({ text: m, kind: "metric" })),
      ];
    }
    this.items = cands.slice(0, 50);
    if (this.items.length === 0) return this.close();
    this.active = 0;
    this.draw();
  }

  private labelValues(label: string): Promise<string[]> {
    let p = this.values.get(label);
    if (!p) {
      p = promList(`/api/v1/label/${encodeURIComponent(label)}/values`).catch(() => []);
      this.values.set(label, p);
    }
    return p;
  }

  private draw() {
    this.list.replaceChildren(
      ...this.items.map((it, i) =>
        h("li", { id: `sg-${i}`, role: "option", "data-i": i, "aria-selected": String(i === this.active) }, it.text, h("span", { class: "kind" }, it.kind)),
      ),
    );
    this.list.hidden = false;
    this.ta.setAttribute("aria-expanded", "true");
    this.ta.setAttribute("aria-activedescendant", `sg-${this.active}`);
    this.list.querySelector(`[aria-selected="true"]`)?.scrollIntoView({ block: "nearest" });
  }

  private accept(i: number) {
    const it = this.items[i];
    if (!it) return;
    const pos = this.ta.selectionStart ?? 0;
    const v = this.ta.value;
    const insert = it.kind === "function" ? `${it.text}(` : it.text;
    this.ta.value = v.slice(0, this.replaceFrom) + insert + v.slice(pos);
    const at = this.replaceFrom + insert.length;
    this.ta.setSelectionRange(at, at);
    this.close();
    this.ta.focus();
  }
}
