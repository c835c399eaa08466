// A sortable data table: header buttons sort, aria-sort tells which way.
import { h, keepPlace } from "./dom";

export interface Column<T> {
  key: string;
  title: string;
  value: (row: T) => string | number;
  render?: (row: T) => Node | string;
  num?: boolean;
}

export interface TableOpts<T> {
  caption?: string;
  sortKey?: string;
  desc?: boolean;
  rowClass?: (row: T) => string;
  onSort?: (key: string, desc: boolean) => void;
  id?: string;
}

/** sortableTable renders rows; clicking a header re-sorts in place. */
export function sortableTable<T>(rows: T[], cols: Column<T>[], o: TableOpts<T> = {}): HTMLTableElement {
  let key = o.sortKey ?? cols[0].key;
  let desc = o.desc ?? false;
  const table = h("table", { class: "data", id: o.id });
  const draw = () => keepPlace(table, drawRows);
  const drawRows = () => {
    const col = cols.find((c) => c.key === key) ?? cols[0];
    const sorted = [...rows].sort((a, b) => {
      const x = col.value(a);
      const y = col.value(b);
      const c = typeof x === "number" && typeof y === "number" ? (isNaN(x) ? -Infinity : x) - (isNaN(y) ? -Infinity : y) : String(x).localeCompare(String(y));
      return desc ? -c : c;
    });
    const head = h(
      "tr",
      {},
      cols.map((c) =>
        h(
          "th",
          { class: c.num ? "num" : "", scope: "col", "aria-sort": c.key === key ? (desc ? "descending" : "ascending") : "none" },
          h(
            "button",
            {
              type: "button",
              "data-focus": `sort:${c.key}`,
              onclick: () => {
                desc = c.key === key ? !desc : !!c.num;
                key = c.key;
                o.onSort?.(key, desc);
                draw();
              },
            },
            c.title,
            c.key === key ? (desc ? " ▼" : " ▲") : "",
          ),
        ),
      ),
    );
    const body = sorted.map((r) =>
      h(
        "tr",
        { class: o.rowClass?.(r) ?? "" },
        cols.map((c) => h("td", { class: c.num ? "num" : "" }, c.render ? c.render(r) : String(c.value(r)))),
      ),
    );
    table.replaceChildren(...(o.caption ? [h("caption", { class: "muted" }, o.caption)] : []), h("thead", {}, head), h("tbody", {}, body));
  };
  drawRows();
  return table;
}
