"""What ``ggufprof quality`` prints: a table per cache type pair, KLD by position, the recommendation.

``--json`` is the list of QualityResult dicts as the worker returned them (one per pair). Text from
files (the model's name, the text's path) goes into rich ``Text``, never markup.
"""

from __future__ import annotations

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from ..errors import GgufprofError
from .console import add_columns
from ..memory.predict import bytes_per_token
from ..model.model_info import ModelInfo
from ..results.quality import (QualityResult, QualitySettings, fmt_kld, recommendation, resolve_ctx, thresholds_text,
                               within)
from ..units import human_bytes, printable


def describe_text(qs: QualitySettings, n_ctx_train: int) -> str:
    """What a quality run evaluates, in words: chunks, their length and the text."""
    chunks = f"{qs.chunks} chunk(s)" if qs.chunks else "every chunk"
    return (f"{chunks} of {resolve_ctx(qs.ctx, n_ctx_train)} tokens of "
            + (printable(qs.text) if qs.text else "the packaged English text"))


def kv_ratios(info: ModelInfo, pairs: list[tuple[str, str]]) -> dict[tuple[str, str], float | None]:
    """Each pair's KV bytes per token against f16/f16 (None for a memory not modelled)."""
    def ratio(k: str, v: str) -> float | None:
        try:
            return bytes_per_token(info, k, v) / bytes_per_token(info, "f16", "f16")
        except (GgufprofError, ZeroDivisionError):
            return None

    return {p: ratio(*p) for p in pairs}


def text_extent(text: dict) -> str:
    """How much of the text a run read: all of it, or (with --chunks) the prefix its chunks needed."""
    tokens = f"{text.get('n_tokens', 0):,} tokens"
    if text.get("complete", True):
        return tokens
    return f"its first {human_bytes(text['bytes'])} of {human_bytes(text['file_bytes'])}, {tokens}: what the chunks need"


def kv_ratio_label(r: float | None) -> str:
    return "—" if r is None else f"{r:.3f}×"


def print_quality(console: Console, model_name: str, run: dict, kv_ratios: dict[tuple[str, str], float | None]) -> None:
    """The summary table, KLD per position bin, what was evaluated, and the recommendation line."""
    results = [QualityResult.from_dict(q) for q in run["results"]]
    t = Table(box=box.SIMPLE_HEAD, title=Text(f"{printable(model_name)}: each cache type against f16/f16"),
              title_justify="left")
    add_columns(t, ("K/V", "KV ×f16", "mean KLD", "median", "p99", "max", "top-1", "PPL", "Δppl", ""), labels=("K/V", ""))
    for q in results:
        ok = within(q)
        t.add_row(f"{q.cache_type_k}/{q.cache_type_v}", kv_ratio_label(kv_ratios.get(q.pair)),
                  f"{fmt_kld(q.kld_mean)} ± {fmt_kld(q.kld_mean_unc)}", fmt_kld(q.kld_median), fmt_kld(q.kld_p99),
                  fmt_kld(q.kld_max), f"{q.top1_agreement:.2%}", f"{q.ppl:.4f}", f"{q.delta_ppl:+.2%}", Text("within" if ok else "beyond", style="green" if ok else "yellow"))
    console.print(t)
    if results and results[0].by_position:
        b = Table(box=box.SIMPLE_HEAD, title=Text("mean KLD by position in the chunk (tokens already in the cache)"),
                  title_justify="left")
        add_columns(b, ["K/V"] + [f"{bin_.first}–{bin_.last}" for bin_ in results[0].by_position], labels=("K/V",))
        for q in results:
            b.add_row(f"{q.cache_type_k}/{q.cache_type_v}", *(fmt_kld(x.kld_mean) for x in q.by_position))
        console.print(b)
    text = run["text"]
    timings = run.get("timings", {})
    n_scored = results[0].n_scored if results else 0
    console.print(Text(
        f"text: {printable(text.get('source', '?'))} ({text_extent(text)}), {run['n_chunks']} chunk(s) of "
        f"{run['n_ctx']} tokens, {n_scored:,} positions scored (the second half of each chunk, as llama-perplexity); "
        + (f"f16/f16 PPL {results[0].ppl_base:.4f}; " if results else "") + f"{timings.get('total_s', 0):.1f} s"
        + (f", worker peak RSS {human_bytes(run['peak_rss'])}" if run.get("peak_rss") else ""), style="dim"))
    measured = [(q.pair, q.to_dict(), kv_ratios.get(q.pair)) for q in results]
    console.print(Text(recommendation(printable(model_name), measured)))
    console.print(Text(f"thresholds: {thresholds_text()} (README: quality thresholds)", style="dim"))
