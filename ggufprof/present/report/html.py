"""report.html: one self-contained page (inline style, images as data: URIs, no network at all).

Why self-contained: a report gets mailed, attached to an issue or opened from a cluster's scratch
disk; it must render the same with no network and no neighbouring files. Every piece of text
from the records goes through html.escape.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable, Iterator
from html import escape
from pathlib import Path

from ...results import files
from .data import ReportData
from .plots import Plot
from .tables import Table

STYLE = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1f2328;
       margin: 0 auto; padding: 20px 28px 40px; max-width: 1500px; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 18px; margin: 28px 0 8px; padding-bottom: 4px; border-bottom: 1px solid #d0d7de; }
h3 { font-size: 15px; margin: 18px 0 6px; }
.meta { color: #59636e; margin: 2px 0; }
.counts span { display: inline-block; padding: 1px 8px; border-radius: 10px; margin-right: 6px; font-weight: 600; }
.ok { background: #dafbe1; color: #116329; } .skipped { background: #fff8c5; color: #7d4e00; }
.failed { background: #ffebe9; color: #a40e26; }
nav a { margin-right: 14px; color: #0969da; text-decoration: none; }
.note { color: #59636e; margin: 4px 0 8px; max-width: 1100px; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; font-size: 13px; margin: 4px 0 12px; }
th, td { padding: 3px 9px; border-bottom: 1px solid #e5e8eb; text-align: left; vertical-align: top; }
th { background: #f6f8fa; position: sticky; top: 0; white-space: nowrap; }
td:first-child { white-space: nowrap; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tbody tr:nth-child(even) { background: #fafbfc; }
tr.group td { border-top: 2px solid #d0d7de; }
code, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 12px; }
.plots { display: grid; grid-template-columns: repeat(auto-fit, minmax(540px, 1fr)); gap: 18px;
         grid-auto-flow: row dense; align-items: start; }
figure.wide { grid-column: 1 / -1; }
figure.wide img { width: auto; max-width: 100%; }
figure { margin: 0; border: 1px solid #d0d7de; border-radius: 6px; padding: 10px; }
figure img { width: 100%; height: auto; display: block; }
figcaption { color: #59636e; font-size: 13px; margin-top: 6px; }
figcaption b { color: #1f2328; }
ul.notes { color: #59636e; }
"""

SECTIONS = (("compare", "Comparison by cache type"), ("plots", "Plots"), ("checks", "Checks (measurement vs model)"),
            ("skipped", "Skipped and failed"), ("env", "Environment"))


_SPECIAL = re.compile(r"[&<>\"']")  # what html.escape replaces


def _cell(text: str) -> str:
    """A table cell escaped (most cells are numbers: looked at, not rebuilt)."""
    return escape(text) if _SPECIAL.search(text) else text


def table_html(t: Table, heading: bool = True) -> Iterator[str]:
    """The table as pieces of HTML, one per row (a table can have 100,000 rows: never one string)."""
    if heading:
        yield f"<h3>{escape(t.title)}</h3>\n"
    if t.note:
        yield f'<p class="note">{escape(t.note)}</p>\n'
    if not t.rows:
        return
    num = t.numeric or [False] * len(t.headers)
    head = "".join(f"<th>{escape(h)}</th>" for h in t.headers)
    head = f"<thead><tr>{head}</tr></thead>" if any(t.headers) else ""
    yield f'<div class="scroll"><table>{head}<tbody>\n'
    for n, row in enumerate(t.rows):
        cls = ' class="group"' if n and n < len(t.starts) and t.starts[n] else ""
        cells = "".join(f'<td class="num">{_cell(c)}</td>' if n else f"<td>{_cell(c)}</td>"
                        for c, n in zip(row, num))
        yield f"<tr{cls}>{cells}</tr>\n"
    yield "</tbody></table></div>\n"


def figure_html(p: Plot) -> str:
    b64 = base64.b64encode(p.png).decode("ascii")
    wide = ' class="wide"' if p.wide else ""
    return (f'<figure{wide}><img src="data:image/png;base64,{b64}" alt="{escape(p.title)}">'
            f"<figcaption><b>{escape(p.title)}.</b> {escape(p.caption)}</figcaption></figure>")


def header_html(data: ReportData) -> str:
    m = data.model
    name = m.get("name") or "unknown model"
    sha = str(m.get("sha256") or "")[:12]
    counts = "".join(f'<span class="{s}">{data.count(s)} {s}</span>' for s in ("ok", "skipped", "failed"))
    nav = "".join(f'<a href="#{a}">{escape(t)}</a>' for a, t in SECTIONS)
    return (f"<h1>KV cache report: {escape(name)}</h1>"
            f'<p class="meta">{escape(str(m.get("architecture", "")))} · <span class="mono">'
            f'{escape(Path(str(m.get("path", ""))).name)}</span> · sha256 <span class="mono">{escape(sha)}</span></p>'
            f'<p class="meta">hosts: {escape(", ".join(data.hosts))} · {len(data.items)} configurations</p>'
            f'<p class="counts">{counts}</p><nav>{nav}</nav>')


def page(data: ReportData, tables: dict[str, Table | list[Table]], plots: list[Plot], notes: list[str]) -> Iterator[str]:
    """The page in pieces, in order (``tables`` keyed by section: compare, checks, skipped, env)."""
    def section(anchor: str, inner: Iterable[str]) -> Iterator[str]:
        yield f'<section id="{anchor}"><h2>{escape(dict(SECTIONS)[anchor])}</h2>\n'
        yield from inner
        yield "</section>\n"

    def tabs(key: str) -> Iterator[str]:
        for t in tables[key] if isinstance(tables[key], list) else [tables[key]]:
            yield from table_html(t)

    figs = f'<div class="plots">{"".join(figure_html(p) for p in plots)}</div>' if plots else ""
    note_list = ("<ul class=\"notes\">" + "".join(f"<li>{escape(n)}</li>" for n in notes) + "</ul>") if notes else ""
    title = escape(f"ggufprof report: {data.model.get('name', '')}")
    yield (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
           f'<meta name="viewport" content="width=device-width, initial-scale=1"><link rel="icon" href="data:,">'
           f"<title>{title}</title><style>{STYLE}</style></head>\n<body>\n")
    yield header_html(data) + "\n"
    yield from section("compare", tabs("compare"))
    yield from section("plots", [(figs + note_list) or '<p class="note">No plots.</p>'])
    for anchor in ("checks", "skipped", "env"):
        yield from section(anchor, tabs(anchor))
    yield "</body></html>\n"


def write_html(path: Path, data: ReportData, tables: dict, plots: list[Plot], notes: list[str]) -> Path:
    """report.html, written piece by piece into the file that replaces it (results/files.py)."""
    with files.replacing(path) as f:
        f.writelines(page(data, tables, plots, notes))
    return path
