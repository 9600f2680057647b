"""What a sweep shows while it runs: a progress bar with ETA and a row per finished configuration."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.text import Text

from ..results.schema import Record
from ..units import human_bytes

# (title, width); a negative width means left-aligned. Fixed widths keep rows printed one at a
# time aligned under the header.
COLUMNS = (("K/V", -9), ("ctx", 6), ("seqs", 4), ("swa", 3), ("fa", -4), ("depth", 5), ("KV pred", 10),
           ("KV check", -8), ("RSS Δctx", 9), ("pp t/s", 11), ("tg t/s", 11))


def _fmt(cells: list[str]) -> str:
    out = []
    for (_, w), cell in zip(COLUMNS, cells):
        plain = len(Text.from_markup(cell).plain)
        pad = " " * max(abs(w) - plain, 0)
        out.append(cell + pad if w < 0 else pad + cell)
    return " ".join(out)


def header_line() -> str:
    return "[bold]" + _fmt([t for t, _ in COLUMNS]) + "[/bold]"


def _tps(block: dict | None) -> str:
    if not block or block.get("tps_mean") is None:
        return "-"
    return f"{block['tps_mean']:.0f}±{block['tps_stddev']:.0f}"


def row(rec: Record) -> list[str]:
    s = rec.settings
    seqs = f"{s['parallel']}{'u' if s['kv_unified'] else ''}"
    base = [f"{s['cache_type_k']}/{s['cache_type_v']}", str(s["ctx_size"]), seqs,
            ("on" if s["swa_full"] else "off") if len(rec.predicted.get("caches", [])) > 1 else "-",
            s["flash_attn"], str(s["depth"]),
            human_bytes(rec.predicted["kv_bytes"]) if "kv_bytes" in rec.predicted else "-"]
    if rec.status != "ok":
        color = "yellow" if rec.status == "skipped" else "red"
        return base + [f"[{color}]{rec.status}: {rec.reason}[/{color}]"]
    kv = {True: "[green]exact[/green]", False: "[red]MISMATCH[/red]"}.get(rec.check.get("kv_exact"), "not predicted")
    growth = rec.check.get("rss_growth")
    rss = "-" if growth is None else human_bytes(growth)
    if rec.check.get("rss_explained") is False:
        rss = f"[red]{rss}[/red]"
    return base + [kv, rss, _tps(rec.measured.get("pp")), _tps(rec.measured.get("tg"))]


class SweepView:
    def __init__(self, console: Console, total: int):
        self.console = console
        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(), console=console,
                                 transient=True)
        self.task = self.progress.add_task("sweep", total=total)

    def __enter__(self) -> "SweepView":
        self.console.print(header_line(), soft_wrap=True)
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def started(self, settings, i: int, n: int) -> None:
        k = settings.kv
        self.progress.update(self.task, description=f"{k.cache_type_k}/{k.cache_type_v} ctx {k.ctx_size}")

    def finished(self, rec: Record, i: int, n: int) -> None:
        self.progress.console.print(_fmt(row(rec)), soft_wrap=True)
        self.progress.advance(self.task)
