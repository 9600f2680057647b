"""report.html: one self-contained page (inline style, images as data: URIs, no network at all).

Why self-contained: a report gets mailed, attached to an issue or opened from a cluster's scratch
disk; it must render the same with no network and no neighbouring files. Every piece of text
from the records goes through html.escape.
"""

from __future__ import annotations

import base64
from html import escape
from pathlib import Path

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


def table_html(t: Table, heading: bool = True) -> str:
    parts = [f"<h3>{escape(t.title)}</h3>"] if heading else []
    if t.note:
        parts.append(f'<p class="note">{escape(t.note)}</p>')
    if not t.rows:
        return "\n".join(parts)
    num = t.numeric or [False] * len(t.headers)
    head = "".join(f"<th>{escape(h)}</th>" for h in t.headers)
    head = f"<thead><tr>{head}</tr></thead>" if any(t.headers) else ""
    body = []
    for n, row in enumerate(t.rows):
        cls = ' class="group"' if n and n < len(t.starts) and t.starts[n] else ""
        cells = "".join(f'<td class="num">{escape(c)}</td>' if n else f"<td>{escape(c)}</td>"
                        for c, n in zip(row, num))
        body.append(f"<tr{cls}>{cells}</tr>")
    parts.append(f'<div class="scroll"><table>{head}<tbody>'
                 + "\n".join(body) + "</tbody></table></div>")
    return "\n".join(parts)


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


def render(data: ReportData, tables: dict[str, Table | list[Table]], plots: list[Plot], notes: list[str]) -> str:
    """The page as a string (``tables`` keyed by section: compare, checks, skipped, env)."""
    def section(anchor: str, inner: str) -> str:
        title = dict(SECTIONS)[anchor]
        return f'<section id="{anchor}"><h2>{escape(title)}</h2>\n{inner}\n</section>'

    def tabs(key: str) -> str:
        ts = tables[key] if isinstance(tables[key], list) else [tables[key]]
        return "\n".join(table_html(t) for t in ts)

    figs = f'<div class="plots">{"".join(figure_html(p) for p in plots)}</div>' if plots else ""
    note_list = ("<ul class=\"notes\">" + "".join(f"<li>{escape(n)}</li>" for n in notes) + "</ul>") if notes else ""
    body = "\n".join([
        header_html(data),
        section("compare", tabs("compare")),
        section("plots", (figs + note_list) or '<p class="note">No plots.</p>'),
        section("checks", tabs("checks")),
        section("skipped", tabs("skipped")),
        section("env", tabs("env")),
    ])
    title = escape(f"ggufprof report: {data.model.get('name', '')}")
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1"><link rel="icon" href="data:,">'
            f"<title>{title}</title><style>{STYLE}</style></head>\n<body>\n{body}\n</body></html>\n")


def write_html(path: Path, data: ReportData, tables: dict, plots: list[Plot], notes: list[str]) -> Path:
    path.write_text(render(data, tables, plots, notes), encoding="utf-8")
    return path
