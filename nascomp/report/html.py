"""Page assembly: one self-contained HTML document (inline CSS and script, no network, no external file).

Fragments are plain strings of HTML. Text from run files is always escaped here (`esc`); only fragments built
by this package (`Html`) pass through as they are. Tables get ``class="sortable"``: the inline script sorts
them when a header is clicked (numbers by value, text alphabetically, empty cells last).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from html import escape
from typing import Any

__all__ = ["Html", "esc", "Column", "Section", "table", "key_values", "notes", "cards", "code", "details", "figure", "page"]


class Html(str):
    """A fragment of markup built by this package: inserted without escaping."""


def esc(value: Any) -> Html:
    return value if isinstance(value, Html) else Html(escape("" if value is None else str(value)))


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    fmt: Callable[[Any], Any] | None = None  # cell text (or Html) from the value; default str
    numeric: bool = False  # right-aligned, sorted by value
    tip: str = ""  # header tooltip
    wrap: bool = False  # long text: may wrap (other cells keep to one line)


@dataclass(frozen=True)
class Section:
    id: str
    title: str
    body: Html


def _sort_key(value: Any, numeric: bool) -> str:
    if value is None or value == "":
        return ""
    if numeric:
        try:
            return repr(float(value))
        except (TypeError, ValueError):
            return ""
    return str(value)


def table(
    columns: Sequence[Column],
    rows: Iterable[Mapping[str, Any]],
    *,
    highlight: Callable[[Mapping], bool] | None = None,
    caption: str = "",
    scroll: bool = False,
    name: str = "",
) -> Html:
    """A sortable table; ``highlight`` marks rows (e.g. the chosen candidate); ``scroll`` caps its height."""
    head = "".join(
        f'<th scope="col" data-type="{"number" if c.numeric else "text"}"'
        + (f' title="{escape(c.tip)}"' if c.tip else "")
        + f">{esc(c.label)}</th>"
        for c in columns
    )
    body = []
    for i, row in enumerate(rows):
        cells = []
        for c in columns:
            value = row.get(c.key)
            shown = "–" if value is None else c.fmt(value) if c.fmt else value
            cls = ' class="num"' if c.numeric else ' class="wrap"' if c.wrap else ""
            cells.append(f'<td{cls} data-sort="{escape(_sort_key(value, c.numeric))}">{esc(shown)}</td>')
        mark = ' class="chosen"' if highlight is not None and highlight(row) else ""
        body.append(f'<tr data-index="{i}"{mark}>' + "".join(cells) + "</tr>")
    cap = f"<caption>{esc(caption)}</caption>" if caption else ""
    data_name = f' data-name="{escape(name)}"' if name else ""
    out = f'<table class="sortable"{data_name}>{cap}<thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'
    return Html(f'<div class="table-wrap{" scroll" if scroll else ""}">{out}</div>')


def key_values(pairs: Iterable[tuple[str, Any]]) -> Html:
    """A two-column list of facts; pairs whose value is None are left out."""
    items = "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in pairs if v is not None)
    return Html(f'<dl class="facts">{items}</dl>')


def notes(items: Sequence[Any], kind: str = "warn") -> Html:
    """A box of notes: ``warn`` (amber), ``info`` (blue) or ``missing`` (grey)."""
    lis = "".join(f"<li>{esc(i)}</li>" for i in items)
    return Html(f'<div class="notes {kind}"><ul>{lis}</ul></div>')


def cards(items: Sequence[tuple[str, Any, Any]]) -> Html:
    """Headline numbers: (label, value, detail) each."""
    out = "".join(
        f'<div class="card"><div class="card-label">{esc(label)}</div><div class="card-value">{esc(value)}</div>'
        f'<div class="card-detail">{esc(detail)}</div></div>'
        for label, value, detail in items
    )
    return Html(f'<div class="cards">{out}</div>')


def code(text: str) -> Html:
    return Html(f"<pre><code>{esc(text)}</code></pre>")


def details(summary: str, body: Html) -> Html:
    return Html(f"<details><summary>{esc(summary)}</summary>{body}</details>")


def figure(svg: str, caption: str = "") -> Html:
    cap = f"<figcaption>{esc(caption)}</figcaption>" if caption else ""
    return Html(f'<figure class="plot">{svg}{cap}</figure>')


def page(title: str, subtitle: str, sections: Sequence[Section], footer: str) -> str:
    nav = "".join(f'<a href="#{escape(s.id)}">{esc(s.title)}</a>' for s in sections)
    body = "".join(f'<section id="{escape(s.id)}"><h2>{esc(s.title)}</h2>{s.body}</section>' for s in sections)
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{_CSS}</style></head><body>"
        f'<header><div class="wrap"><h1>{esc(title)}</h1><p class="subtitle">{esc(subtitle)}</p><nav>{nav}</nav></div></header>'
        f'<main class="wrap">{body}</main><footer class="wrap">{esc(footer)}</footer>'
        f"<script>{_SCRIPT}</script></body></html>\n"
    )


_CSS = """
:root{--ink:#0f172a;--muted:#64748b;--line:#e2e8f0;--bg:#f8fafc;--card:#fff;--accent:#2563eb;--warn:#b45309}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--ink);
  font:14px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
.wrap{max-width:1180px;margin:0 auto;padding:0 24px}
header{background:#0f172a;color:#f8fafc;padding:22px 0 0}
header h1{margin:0;font-size:22px;font-weight:650;letter-spacing:-.01em}
.subtitle{margin:4px 0 14px;color:#cbd5e1}
nav{display:flex;flex-wrap:wrap;gap:2px}
nav a{color:#cbd5e1;text-decoration:none;padding:7px 10px 9px;border-bottom:2px solid transparent;font-size:13px}
nav a:hover{color:#fff;border-bottom-color:#60a5fa}
section{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:18px 22px;margin:18px 0}
h2{font-size:16px;margin:0 0 12px;font-weight:650}
h3{font-size:14px;margin:18px 0 8px;font-weight:600}
p{margin:6px 0}
.muted{color:var(--muted)}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(160px,1fr));gap:10px;margin-bottom:8px}
.card{border:1px solid var(--line);border-radius:8px;padding:12px 14px;background:#fbfdff}
.card-label{color:var(--muted);font-size:12px;text-transform:uppercase;letter-spacing:.04em}
.card-value{font-size:20px;font-weight:650;margin:2px 0;font-variant-numeric:tabular-nums}
.card-detail{color:var(--muted);font-size:12.5px}
dl.facts{display:grid;grid-template-columns:max-content 1fr;gap:4px 18px;margin:0}
dl.facts dt{color:var(--muted)}
dl.facts dd{margin:0;font-variant-numeric:tabular-nums;overflow-wrap:anywhere}
pre{background:#f1f5f9;border-radius:6px;padding:10px 12px;overflow-x:auto;margin:6px 0}
code{font:12.5px/1.45 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
.table-wrap{overflow-x:auto;margin:8px 0}
.table-wrap.scroll{max-height:460px;overflow-y:auto;border:1px solid var(--line);border-radius:6px}
table{border-collapse:collapse;width:100%;font-size:13px}
caption{text-align:left;color:var(--muted);padding:4px 0 6px;caption-side:top}
th,td{padding:6px 10px;border-bottom:1px solid var(--line);text-align:left;vertical-align:top;white-space:nowrap}
td.wrap{white-space:normal;min-width:16em}
td.num{text-align:right;font-variant-numeric:tabular-nums}
thead th{position:sticky;top:0;background:#f1f5f9;font-weight:600;cursor:pointer;user-select:none}
thead th[data-type=number]{text-align:right}
thead th:hover{background:#e2e8f0}
thead th::after{content:"\\2195";color:#94a3b8;margin-left:5px;font-size:11px}
thead th[aria-sort=ascending]::after{content:"\\25B2";color:var(--accent)}
thead th[aria-sort=descending]::after{content:"\\25BC";color:var(--accent)}
tbody tr:nth-child(even){background:#fafcff}
tbody tr:hover{background:#eef4ff}
tbody tr.chosen,tbody tr.chosen:hover{background:#fef9c3}
tr.chosen td:first-child{box-shadow:inset 3px 0 0 #ca8a04}
figure.plot{margin:10px 0}
figure.plot figcaption{color:var(--muted);font-size:12.5px;margin-top:4px}
.grid2{display:grid;grid-template-columns:repeat(auto-fit,minmax(460px,1fr));gap:18px}
.grid3{display:grid;grid-template-columns:repeat(auto-fit,minmax(300px,1fr));gap:16px}
svg.chart{width:100%;height:auto;display:block;font-family:inherit}
svg.chart .tick{font-size:11px;fill:#64748b}
svg.chart .axis-label{font-size:12px;fill:#334155}
svg.chart .legend,svg.chart .row-label{font-size:12px;fill:#1e293b}
svg.chart .note{font-size:11px}
svg.chart .mark:hover{stroke:#0f172a;stroke-width:2}
.notes{border-radius:6px;padding:8px 14px;margin:8px 0}
.notes ul{margin:0;padding-left:18px}
.notes li{margin:3px 0}
.notes.warn{background:#fffbeb;border:1px solid #fcd34d}
.notes.info{background:#eff6ff;border:1px solid #bfdbfe}
.notes.missing{background:#f8fafc;border:1px dashed #cbd5e1;color:#475569}
details{margin:8px 0}
summary{cursor:pointer;color:var(--accent)}
.verdict{font-weight:600}
footer{color:var(--muted);font-size:12px;padding:4px 24px 28px}
"""

# Sorts a table by the clicked header: ascending first, then descending; empty cells stay last; ties keep page order.
_SCRIPT = """
(function () {
  "use strict";
  function empty(cell) { return cell.dataset.sort === ""; }
  function compare(a, b, numeric) {
    if (numeric) { return parseFloat(a.dataset.sort) - parseFloat(b.dataset.sort); }
    return a.dataset.sort.localeCompare(b.dataset.sort, undefined, {numeric: true, sensitivity: "base"});
  }
  function sortBy(table, header, index) {
    var direction = header.getAttribute("aria-sort") === "ascending" ? "descending" : "ascending";
    var sign = direction === "ascending" ? 1 : -1;
    var numeric = header.dataset.type === "number";
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (h) { h.removeAttribute("aria-sort"); });
    header.setAttribute("aria-sort", direction);
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (r, s) {
      var a = r.cells[index], b = s.cells[index];
      if (empty(a) || empty(b)) { return (empty(a) - empty(b)) || (r.dataset.index - s.dataset.index); }
      return sign * compare(a, b, numeric) || (r.dataset.index - s.dataset.index);
    });
    rows.forEach(function (row) { body.appendChild(row); });
  }
  Array.prototype.forEach.call(document.querySelectorAll("table.sortable"), function (table) {
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (header, index) {
      header.tabIndex = 0;
      header.addEventListener("click", function () { sortBy(table, header, index); });
      header.addEventListener("keydown", function (event) {
        if (event.key === "Enter" || event.key === " ") { event.preventDefault(); sortBy(table, header, index); }
      });
    });
  });
})();
"""
