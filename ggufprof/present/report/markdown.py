"""report.md: the same tables as GitHub Markdown, plots as PNG files beside it (relative links).

Why a second format: Markdown diffs well, pastes into issues and pull requests, and renders on
GitHub; the PNGs sit next to the file so the links work wherever the directory is copied.
"""

from __future__ import annotations

import html
import re
from pathlib import Path

from ...units import printable
from .data import ReportData
from .plots import Plot
from .tables import Table


_MD_SPECIAL = re.compile(r"([\\`*\[\]|])")  # intraword _ and # mid-line are inert on GitHub


def md_text(text: object) -> str:
    """Text from results or a model file, inert in Markdown: HTML escaped, line breaks (which could
    start a heading) flattened, other control characters (terminal escape sequences) made visible
    as '?' (units.printable), and the characters that make links, emphasis, code or table cells
    backslash-escaped."""
    s = html.escape(str(text), quote=False)
    s = printable(re.sub(r"\s*[\r\n]+\s*", " ", s), None)
    return _MD_SPECIAL.sub(r"\\\1", s)


def _cell(text: str) -> str:
    return md_text(text)


def table_md(t: Table, level: str = "###") -> str:
    parts = [f"{level} {t.title}", ""]
    if t.note:
        parts += [t.note, ""]
    if t.rows:
        num = t.numeric or [False] * len(t.headers)
        parts.append("| " + " | ".join(_cell(h) or " " for h in t.headers) + " |")
        parts.append("|" + "|".join("---:" if n else "---" for n in num) + "|")
        parts += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in t.rows]
        parts.append("")
    return "\n".join(parts)


def header_md(data: ReportData) -> str:
    m = data.model
    sha = str(m.get("sha256") or "")[:12]
    return "\n".join([
        f"# KV cache report: {md_text(m.get('name') or 'unknown model')}", "",
        f"{md_text(m.get('architecture', ''))} · {md_text(Path(str(m.get('path', ''))).name)} · sha256 `{md_text(sha)}`  ",
        f"hosts: {md_text(', '.join(data.hosts))} · {len(data.items)} configurations: {data.count('ok')} ok, "
        f"{data.count('skipped')} skipped, {data.count('failed')} failed", ""])


def write_markdown(path: Path, data: ReportData, tables: dict, plots: list[Plot], notes: list[str]) -> list[Path]:
    """Write ``path`` and one PNG per plot beside it; return every file written."""
    written = []
    images = []
    for p in plots:
        png = path.with_name(f"{path.stem}-{p.slug}.png")
        png.write_bytes(p.png)
        written.append(png)
        images += [f"![{p.title}]({png.name})", "", f"**{p.title}.** {p.caption}", ""]
    images += [f"- {n}" for n in notes] + ([""] if notes else [])

    def tabs(key: str) -> list[str]:
        ts = tables[key] if isinstance(tables[key], list) else [tables[key]]
        return [table_md(t) for t in ts]

    text = "\n".join([header_md(data),
                      "## Comparison by cache type", "", *tabs("compare"),
                      "## Plots", "", *images,
                      "## Checks (measurement vs model)", "", *tabs("checks"),
                      "## Skipped and failed", "", *tabs("skipped"),
                      "## Environment", "", *tabs("env")])
    path.write_text(text.rstrip() + "\n", encoding="utf-8")
    return [path, *written]
