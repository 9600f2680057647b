"""report.md: the same tables as GitHub Markdown, plots as PNG files beside it (relative links).

Why a second format: Markdown diffs well, pastes into issues and pull requests, and renders on
GitHub; the PNGs sit next to the file so the links work wherever the directory is copied.
"""

from __future__ import annotations

from pathlib import Path

from .data import ReportData
from .plots import Plot
from .tables import Table


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


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
        f"# KV cache report: {m.get('name') or 'unknown model'}", "",
        f"{m.get('architecture', '')} · `{Path(str(m.get('path', ''))).name}` · sha256 `{sha}`  ",
        f"hosts: {', '.join(data.hosts)} · {len(data.items)} configurations: {data.count('ok')} ok, "
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
