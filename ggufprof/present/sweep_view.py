"""What a sweep shows while it runs: a progress bar with ETA and a row per finished configuration."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.text import Text

from ..results.checks import failed_checks
from ..results.noise import caveats, has_spread, is_auto, record_caveats
from ..results.quality import fmt_kld
from ..results.schema import Record
from ..units import human_bytes, mean_spread, printable

# (title, width); a negative width means left-aligned. Fixed widths keep rows printed one at a
# time aligned under the header.
COLUMNS = (("K/V", -9), ("ctx", 6), ("seqs", 4), ("swa", 3), ("fa", -4), ("depth", 5), ("KV pred", 10),
           ("KV check", -8), ("RSS Δctx", 9), ("pp t/s", 14), ("tg t/s", 14))


Cell = str | Text  # plain strings are data, never markup


def _fmt(cells: list[Cell]) -> Text:
    out = Text()
    for n, ((_, w), cell) in enumerate(zip(COLUMNS, cells)):
        cell = cell if isinstance(cell, Text) else Text(cell)
        pad = " " * max(abs(w) - cell.cell_len, 0)
        out.append_text(Text(" ") if n else Text())
        out.append_text(Text.assemble(cell, pad) if w < 0 else Text.assemble(pad, cell))
    return out


def header_line() -> Text:
    line = _fmt([t for t, _ in COLUMNS])
    line.stylize("bold")
    return line


LEGEND = ("seqs: parallel sequences, u: in one unified cache · t/s: mean±stddev over the repetitions (n/a: one "
          "repetition, no spread), ×n: the aggregate of n sequences decoded together · ~: not to be trusted (spread "
          "over 10 %, the CPU taken by other processes, or fewer than 2 repetitions: compare's rule)")


def _tps(block: dict | None, noisy: bool = False) -> Text:
    """Mean ± stddev tokens/s; the aggregate of n_seq sequences decoded together shows as "×n";
    a measurement results/noise.py does not trust is marked "~" in yellow; one repetition has no
    spread ("n/a", never "±0")."""
    if not block or block.get("tps_mean") is None:
        return Text("-")
    n_seq = block.get("n_seq") or 1
    sd = block.get("tps_stddev") if has_spread(block) else None
    text = f"{'~' if noisy else ''}{mean_spread(block['tps_mean'], sd, '.0f', sep='±')}" + (f"×{n_seq}" if n_seq > 1 else "")
    return Text(text, style="yellow" if noisy else "")


def row(rec: Record) -> list[Cell]:
    s = rec.settings
    seqs = f"{s['parallel']}{'u' if s['kv_unified'] else ''}"
    base = [f"{s['cache_type_k']}/{s['cache_type_v']}", str(s["ctx_size"]), seqs,
            ("on" if s["swa_full"] else "off") if len(rec.predicted.get("caches", [])) > 1 else "-",
            s["flash_attn"], str(s["depth"]),
            human_bytes(rec.predicted["kv_bytes"]) if "kv_bytes" in rec.predicted else "-"]
    if rec.status != "ok":
        reason = str(rec.reason or "")
        return base + [Text(f"{rec.status}: {reason[:500]}", style="yellow" if rec.status == "skipped" else "red")]
    failed = failed_checks(rec.check)
    if failed:  # the one predicate the summary counts: a row never reads "exact" when a check failed
        kv = Text("MISMATCH" if "kv_exact" in failed else "exact*", style="red")
    elif rec.check.get("kv_exact") is None:
        kv = Text("no model", style="yellow")
    else:
        kv = Text("exact", style="green")
    growth = rec.check.get("rss_growth")
    rss = Text("-" if growth is None else human_bytes(growth), style="red" if "rss_explained" in failed else "")
    return base + [kv, rss] + [_tps(rec.measured.get(t), bool(record_caveats(rec, t))) for t in ("pp", "tg")]


class SweepView:
    def __init__(self, console: Console, total: int | None = None):
        """``total`` None: learnt from the first configuration started (the plan's length)."""
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
        self.console.print(Text(LEGEND, style="dim"))

    def started(self, settings, i: int, n: int) -> None:
        k = settings.kv
        self.progress.update(self.task, total=n, description=f"{k.cache_type_k}/{k.cache_type_v} ctx {k.ctx_size}")

    def finished(self, rec: Record, i: int, n: int) -> None:
        self.progress.console.print(_fmt(row(rec)), soft_wrap=True)
        self.progress.advance(self.task)


# What ``ggufprof results`` shows of the DataFrame (results.store.load_dataframe), and how.
RESULT_COLUMNS = {
    "status": "status", "settings.cache_type_k": "K", "settings.cache_type_v": "V", "settings.ctx_size": "ctx",
    "settings.parallel": "np", "settings.kv_unified": "unified", "settings.swa_full": "swa_full",
    "settings.flash_attn": "fa", "settings.depth": "depth", "predicted.kv_bytes": "KV bytes",
    "check.kv_exact": "KV exact", "measured.pp.tps_mean": "pp t/s", "measured.tg.tps_mean": "tg t/s",
    "quality.kld_mean": "KLD", "quality.top1_agreement": "top-1",
}


# read beside RESULT_COLUMNS, not shown: what results/noise.py judges a speed by
NOISE_COLUMNS = ("settings.repetitions", *(f"measured.{t}.{k}" for t in ("pp", "tg")
                                           for k in ("samples_tps", "samples_noise")))
RESULTS_LEGEND = ("~: a speed not to be trusted, by the rule compare uses (spread over 10 %, the CPU taken by "
                  "other processes, or fewer than 2 repetitions)")


def _doubts(df, test: str) -> list[bool]:
    """Per row, whether its ``test`` speed is not to be trusted (results/noise.py, from the samples)."""
    def col(name: str) -> list:
        return df[name].tolist() if name in df.columns else [None] * len(df)

    blocks = zip(col(f"measured.{test}.tps_mean"), col(f"measured.{test}.samples_tps"),
                 col(f"measured.{test}.samples_noise"), col("settings.repetitions"))
    return [mean is not None and mean == mean
            and bool(caveats({"samples_tps": xs if isinstance(xs, list) else [],
                              "samples_noise": noise if isinstance(noise, list) else []},
                             is_auto({"repetitions": reps})))
            for mean, xs, noise, reps in blocks]


def results_text(df) -> str:
    """The summary table of ``ggufprof results``: one row per record, the columns above that exist,
    each right-aligned; a speed results/noise.py does not trust is marked "~" and a legend says so.
    Text from the records (cache type names, status) is shown as text: no terminal escapes.
    Formatted here, not by DataFrame.to_string (~20x slower over 100,000 rows)."""
    columns = [c for c in RESULT_COLUMNS if c in df.columns]
    marks = {f"measured.{t}.tps_mean": _doubts(df, t) for t in ("pp", "tg")}
    cells = []
    for c in columns:
        col = [_cell(RESULT_COLUMNS[c], v) for v in df[c].tolist()]
        if c in marks:
            col = [("~" if doubt else "") + text for text, doubt in zip(col, marks[c])]
        cells.append([RESULT_COLUMNS[c]] + col)
    widths = [max(map(len, col)) for col in cells]
    table = "\n".join(" ".join(col[i].rjust(w) for col, w in zip(cells, widths)) for i in range(len(df) + 1))
    return table + ("\n" + RESULTS_LEGEND if any(any(m) for m in marks.values()) else "")


def _cell(title: str, v: object) -> str:
    if v is None or v != v:  # None, NaN: not in this record
        return "-"
    if isinstance(v, str):
        return printable(v, 40)
    if isinstance(v, float):
        return fmt_kld(v) if title == "KLD" else f"{v:.1%}" if title == "top-1" else f"{v:.1f}"
    return str(v)
