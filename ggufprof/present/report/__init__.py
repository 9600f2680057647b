"""``ggufprof report``: sweep results (results.jsonl) to report.html and report.md, without re-measuring.

Why a package of small modules: data.py decides the numbers once, tables.py words them, plots.py
draws them, and html.py / markdown.py only do markup, so both outputs always agree.
"""

from __future__ import annotations

from pathlib import Path

from ...errors import GgufprofError


def write_report(dirs: list[Path], out_dir: Path | None = None, problems: list[str] | None = None) -> dict[str, Path]:
    """Write report.html, report.md and the plots' PNGs into ``out_dir`` (default: the first directory).
    Results lines that cannot be read are ignored and described in ``problems``.

    Returns {"html": ..., "md": ..., "png:<slug>": ...}. GgufprofError for a directory without
    results.jsonl or directories holding different models."""
    from . import data as data_mod
    from .html import write_html
    from .markdown import write_markdown
    from .plots import make_plots
    from .tables import checks_table, comparison_table, environment_table, model_table, not_measured_table, \
        recommendation_table, summary_table

    dirs = [Path(d) for d in dirs]
    data = data_mod.load(dirs)
    out = Path(out_dir) if out_dir is not None else dirs[0]
    if out.exists() and not out.is_dir():
        raise GgufprofError(f"{out}: not a directory")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise GgufprofError(f"{out}: cannot create the report directory: {e.strerror}") from None
    tables = {"compare": [recommendation_table(data), summary_table(data), comparison_table(data)],
              "checks": checks_table(data),
              "skipped": not_measured_table(data), "env": [model_table(data), environment_table(data)]}
    plots, notes = make_plots(data)
    paths = {"html": write_html(out / "report.html", data, tables, plots, notes)}
    md, *pngs = write_markdown(out / "report.md", data, tables, plots, notes)
    paths["md"] = md
    for p, png in zip(plots, pngs):
        paths[f"png:{p.slug}"] = png
    if problems is not None:
        problems.extend(data.problems)
    return paths
