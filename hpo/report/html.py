"""HTML building blocks: escaping, sortable tables, figures, the page shell with plotly.js
inlined once (no CDN, no server: the file opens from disk)."""

from __future__ import annotations

import html
import math
from typing import Any

import pandas as pd

from hpo.report.values import show

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0 auto;max-width:1200px;
 padding:0 24px 60px;color:#222}
h1{margin:24px 0 4px} h2{margin-top:36px;border-bottom:1px solid #ddd;padding-bottom:4px}
.desc{color:#555;margin:0 0 12px} .kv{display:grid;grid-template-columns:max-content auto;gap:2px 16px}
.kv div:nth-child(odd){color:#666} pre{background:#f6f8fa;padding:12px;border-radius:6px;overflow:auto}
table.data{border-collapse:collapse;font-size:13px;margin:8px 0}
table.data th,table.data td{border:1px solid #ddd;padding:3px 8px;text-align:right;white-space:nowrap}
table.data th{background:#f0f0f0;cursor:pointer;user-select:none}
table.data th.sorted-asc::after{content:" \\25B2"} table.data th.sorted-desc::after{content:" \\25BC"}
table.data tr.best td{background:#fff6cc;font-weight:600}
.warn{background:#fff4e5;border-left:4px solid #f0a020;padding:6px 12px;margin:6px 0}
.note{color:#666;font-size:13px} .scroll{overflow-x:auto}
table.data td:first-child,table.data th:first-child{position:sticky;left:0;z-index:1}
table.data td:first-child{background:#fff} table.data tr.best td:first-child{background:#fff6cc}
"""

SORT_JS = """
document.querySelectorAll('table.sortable').forEach(function(table){
  table.querySelectorAll('th').forEach(function(th, col){
    th.addEventListener('click', function(){
      var body = table.tBodies[0], rows = Array.from(body.rows);
      var asc = !th.classList.contains('sorted-asc');
      table.querySelectorAll('th').forEach(function(h){h.classList.remove('sorted-asc','sorted-desc')});
      th.classList.add(asc ? 'sorted-asc' : 'sorted-desc');
      rows.sort(function(a, b){
        var x = a.cells[col].dataset.v, y = b.cells[col].dataset.v;
        var nx = parseFloat(x), ny = parseFloat(y);
        var c = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : String(x).localeCompare(String(y));
        return asc ? c : -c;
      });
      rows.forEach(function(r){ body.appendChild(r); });
    });
  });
});
"""


def esc(x: Any) -> str:
    return html.escape(str(x), quote=True)


def fmt(v: Any) -> str:
    """A table cell: empty for a missing value, else as `show` writes every number in the report."""
    return "" if v is None or (isinstance(v, float) and math.isnan(v)) else show(v)


def table(df: pd.DataFrame, sortable: bool = True, highlight: int | None = None,
          table_id: str | None = None) -> str:
    """An HTML table with every cell escaped; cells carry data-v for numeric sorting."""
    cls = "data sortable" if sortable else "data"
    tid = f' id="{esc(table_id)}"' if table_id else ""
    head = "".join(f"<th>{esc(c)}</th>" for c in df.columns)
    rows = []
    for i, row in enumerate(df.itertuples(index=False)):
        tr = ' class="best"' if highlight is not None and i == highlight else ""
        cells = "".join(f'<td data-v="{esc(_sort_value(v))}">{esc(fmt(v))}</td>' for v in row)
        rows.append(f"<tr{tr}>{cells}</tr>")
    return (f'<div class="scroll"><table class="{cls}"{tid}><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table></div>")


def _sort_value(v: Any) -> Any:
    if isinstance(v, float) and math.isnan(v):
        return ""
    return v


def figure(fig: Any, div_id: str) -> str:
    return fig.to_html(full_html=False, include_plotlyjs=False, div_id=div_id,
                       config={"displaylogo": False, "responsive": True})


def page(title: str, body: str) -> str:
    from plotly.offline import get_plotlyjs

    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<meta name='viewport' content='width=device-width, initial-scale=1'><title>{esc(title)}</title>"
        f"<style>{CSS}</style><script type='text/javascript'>{get_plotlyjs()}</script></head>"
        f"<body>{body}<script>{SORT_JS}</script></body></html>\n"
    )


def kv(pairs: list[tuple[str, Any]]) -> str:
    cells = "".join(f"<div>{esc(k)}</div><div>{esc(v)}</div>" for k, v in pairs)
    return f'<div class="kv">{cells}</div>'
