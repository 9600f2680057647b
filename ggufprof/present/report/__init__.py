"""``ggufprof report``: sweep results (results.jsonl) to report.html and report.md, without re-measuring.

Why a package of small modules: data.py decides the numbers once, tables.py words them, plots.py
draws them, and html.py / markdown.py only do markup, so both outputs always agree.
"""

from __future__ import annotations

from pathlib import Path

from ...results import files
from ...results.store import no_gc


def write_report(dirs: list[Path], out_dir: Path | None = None, problems: list[str] | None = None) -> dict[str, Path]:
    """Write report.html, report.md and the plots' PNGs into ``out_dir`` (default: the first directory).
    Results lines that cannot be read are skipped and described in ``problems``. Every file is
    written whole or not at all, and none through a link (results/files.py): a link at one of
    their names is refused before any is written.

    Returns {"html": ..., "md": ..., "png:<slug>": ...}. GgufprofError for a directory without
    results.jsonl or directories holding different models."""
    with no_gc():  # 100,000 records and their rows: no cycles among them to collect
        return _write(dirs, out_dir, problems)


def _write(dirs: list[Path], out_dir: Path | None, problems: list[str] | None) -> dict[str, Path]:
    from . import data as data_mod
    from .html import write_html
    from .markdown import png_path, write_markdown
    from .plots import make_plots
    from .tables import checks_table, comparison_table, environment_table, model_table, not_measured_table, \
        recommendation_table, summary_table

    dirs = [Path(d) for d in dirs]
    data = data_mod.load(dirs)
    out = files.make_dir(Path(out_dir) if out_dir is not None else dirs[0], named=True)
    tables = {"compare": [recommendation_table(data), summary_table(data), comparison_table(data)],
              "checks": checks_table(data),
              "skipped": not_measured_table(data), "env": [model_table(data), environment_table(data)]}
    plots, notes = make_plots(data)
    for path in (out / "report.html", out / "report.md", *(png_path(out / "report.md", p) for p in plots)):
        files.check_destination(path)
    paths = {"html": write_html(out / "report.html", data, tables, plots, notes)}
    md, *pngs = write_markdown(out / "report.md", data, tables, plots, notes)
    paths["md"] = md
    for p, png in zip(plots, pngs):
        paths[f"png:{p.slug}"] = png
    if problems is not None:
        problems.extend(data.problems)
    return paths
