"""The HTML report: one self-contained file (figures inlined as PNG data, no external script or style) with the
Markdown report's settings and tables, every table sortable by clicking a column header, and the long table of
all points."""

from __future__ import annotations

import base64
import csv
import html
import io
import re
from typing import Any

from .report import TITLES, Grid, cell, csv_text, grids, header, sections, stochastic_text, unmeasured

SORTING = """
document.querySelectorAll('table.sortable th').forEach((th, column) => th.addEventListener('click', () => {
  const body = th.closest('table').tBodies[0], rows = Array.from(body.rows);
  const up = th.dataset.order !== 'up'; th.dataset.order = up ? 'up' : 'down';
  const key = r => { const c = r.cells[column]; const v = c.dataset.value ?? c.textContent.trim();
                     const n = parseFloat(v); return v === '' ? null : isNaN(n) ? v : n; };
  rows.sort((a, b) => { const x = key(a), y = key(b);
    if (x === null) return 1; if (y === null) return -1;
    return (typeof x === typeof y ? (x < y ? -1 : x > y ? 1 : 0) : typeof x === 'number' ? -1 : 1) * (up ? 1 : -1); });
  rows.forEach(r => body.appendChild(r));
}));
"""
STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; max-width: 1400px; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.2em 0.6em; text-align: right; }
th { background: #f0f0f0; cursor: pointer; } td:first-child, th:first-child { text-align: left; }
td.best { font-weight: bold; background: #eaf5ea; } img { max-width: 100%; }
code { background: #f4f4f4; padding: 0 0.2em; }
"""


def inline(text: str) -> str:
    """One line of the Markdown report's prose as HTML: escaped, `code` and **bold** kept."""
    escaped = html.escape(text)
    return re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", re.sub(r"`(.+?)`", r"<code>\1</code>", escaped))


def html_table(columns: list[str], body: list[list[tuple[str, str, str]]]) -> str:
    """A sortable table; each cell is (text, sort value, css class)."""
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    lines = ["".join(f'<td data-value="{html.escape(v)}" class="{k}">{inline(t)}</td>' for t, v, k in row)
             for row in body]
    return (f'<table class="sortable"><thead><tr>{head}</tr></thead><tbody>'
            + "".join(f"<tr>{line}</tr>" for line in lines) + "</tbody></table>")


def grid_table(grid: Grid, notes: list[tuple[str, int]]) -> str:
    body = []
    for name in grid.samplers:
        cells = [(name, name, ""), (stochastic_text(name), stochastic_text(name), "")]
        for nfe in grid.nfes:
            text = cell(grid, name, nfe, notes)
            row = grid.cells.get((name, nfe))
            v = row["metrics"].get(grid.metric) if row and row["status"] == "ok" else None
            cells.append((text.strip("*"), "" if v is None else repr(v), "best" if text.startswith("**") else ""))
        body.append(cells)
    return html_table(["sampler", "stochastic", *map(str, grid.nfes)], body)


def points_table(rows: list[dict[str, Any]]) -> str:
    reader = csv.reader(io.StringIO(csv_text(rows)))
    columns = next(reader)
    return html_table(columns, [[(v, v, "") for v in line] for line in reader])


def render(rows: list[dict[str, Any]], results: str, command: str, images: dict[str, bytes]) -> str:
    """The whole report as one HTML document; ``images`` are PNG bytes by caption."""
    parts = [f"<h1>Results: {html.escape(results)}</h1>",
             f"<p>Regenerate this report: <code>{html.escape(command)}</code>. Click a column header to sort.</p>"]
    for caption, png in images.items():
        data = base64.b64encode(png).decode()
        parts.append(f"<figure><img alt=\"{html.escape(caption)}\" src=\"data:image/png;base64,{data}\">"
                     f"<figcaption>{html.escape(caption)}</figcaption></figure>")
    for section in sections(rows):
        notes = list(unmeasured(section))
        parts.append(f"<h2>{html.escape(section.settings['checkpoint'])}</h2><ul>")
        parts += [f"<li>{inline(line.strip()[2:])}</li>" for line in header(section, results)]
        parts.append("</ul>")
        for grid in grids(section):
            parts.append(f"<h3>{TITLES.get(grid.metric, grid.metric)}, {html.escape(grid.schedule)} schedule</h3>")
            parts.append(grid_table(grid, notes))
        if notes:
            reasons = unmeasured(section)
            parts.append("<ol>" + "".join(f"<li>{html.escape(name)} at NFE {nfe}: {html.escape(reason)}</li>"
                                          for (name, nfe), reason in reasons.items()) + "</ol>")
    parts += ["<h2>All points</h2>", points_table(rows)]
    return ("<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>" + html.escape(results) + "</title><style>"
            + STYLE + "</style></head><body>" + "\n".join(parts) + "<script>" + SORTING + "</script></body></html>\n")
