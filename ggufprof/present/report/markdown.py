"""report.md: the same tables as GitHub Markdown, plots as PNG files beside it (relative links).

Why a second format: Markdown diffs well, pastes into issues and pull requests, and renders on
GitHub; the PNGs sit next to the file so the links work wherever the directory is copied.
"""

from __future__ import annotations

import html
import itertools
import re
from collections.abc import Iterator
from pathlib import Path

from ...results import files
from ...units import printable
from .data import ReportData
from .plots import Plot
from .tables import Table


_MD_SPECIAL = re.compile(r"([\\`*\[\]|])")  # intraword _ and # mid-line are inert on GitHub
_INERT = re.compile(r"[^\\`*\[\]|&<>\x00-\x1f\x7f-\x9f]*")  # text that md_text leaves as it is (most cells: numbers)


def md_text(text: object) -> str:
    """Text from results or a model file, inert in Markdown: HTML escaped, line breaks (which could
    start a heading) flattened, other control characters (terminal escape sequences) made visible
    as '?' (units.printable), and the characters that make links, emphasis, code or table cells
    backslash-escaped."""
    s = str(text)
    if _INERT.fullmatch(s):
        return s
    s = html.escape(s, quote=False)
    s = printable(re.sub(r"\s*[\r\n]+\s*", " ", s), None)
    return _MD_SPECIAL.sub(r"\\\1", s)


def _cell(text: str) -> str:
    return md_text(text)


def table_md(t: Table, level: str = "###") -> Iterator[str]:
    """The table's lines (a table can have 100,000 rows: never one string)."""
    yield from (f"{level} {t.title}", "")
    if t.note:
        yield from (t.note, "")
    if t.rows:
        num = t.numeric or [False] * len(t.headers)
        yield "| " + " | ".join(_cell(h) or " " for h in t.headers) + " |"
        yield "|" + "|".join("---:" if n else "---" for n in num) + "|"
        for row in t.rows:
            yield "| " + " | ".join(_cell(c) for c in row) + " |"
        yield ""


def header_md(data: ReportData) -> str:
    m = data.model
    sha = str(m.get("sha256") or "")[:12]
    return "\n".join([
        f"# KV cache report: {md_text(m.get('name') or 'unknown model')}", "",
        f"{md_text(m.get('architecture', ''))} · {md_text(Path(str(m.get('path', ''))).name)} · sha256 `{md_text(sha)}`  ",
        f"hosts: {md_text(', '.join(data.hosts))} · {len(data.items)} configurations: {data.count('ok')} ok, "
        f"{data.count('skipped')} skipped, {data.count('failed')} failed", ""])


def png_path(md: Path, plot: Plot) -> Path:
    """Where a plot's PNG goes: beside the Markdown file, named after it (report-<slug>.png)."""
    return md.with_name(f"{md.stem}-{plot.slug}.png")


def write_markdown(path: Path, data: ReportData, tables: dict, plots: list[Plot], notes: list[str]) -> list[Path]:
    """Write ``path`` and one PNG per plot beside it; return every file written."""
    written = []
    images = []
    for p in plots:
        png = files.write_file(png_path(path, p), p.png)
        written.append(png)
        images += [f"![{p.title}]({png.name})", "", f"**{p.title}.** {p.caption}", ""]
    images += [f"- {n}" for n in notes] + ([""] if notes else [])

    def tabs(key: str) -> Iterator[str]:
        for t in tables[key] if isinstance(tables[key], list) else [tables[key]]:
            yield from table_md(t)

    lines = itertools.chain([header_md(data), "## Comparison by cache type", ""], tabs("compare"),
                            ["## Plots", "", *images, "## Checks (measurement vs model)", ""], tabs("checks"),
                            ["## Skipped and failed", ""], tabs("skipped"), ["## Environment", ""], tabs("env"))
    with files.replacing(path) as f:
        blank = 0  # blank lines are written when a line follows them: the file ends in one newline
        for line in lines:
            if not line:
                blank += 1
                continue
            f.write("\n" * blank + line + "\n")
            blank = 0
    return [path, *written]
