"""What ``speedup`` prints: per n the totals with and without the KV cache and the speed-up, then the
time per token against its position for the largest n (the two curves, sampled)."""

from __future__ import annotations

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from ..results.speedup import SpeedupRecord, mean_total_s, speedup


def curve_positions(n: int, k: int = 9) -> list[int]:
    """About ``k`` positions from the first to the last, denser at the start (0, 1, 3, 7, ... n-1)."""
    out = {0, n - 1}
    p = 1
    while p < n - 1:
        out.add(p)
        p = 2 * p + 1
    if len(out) < k:  # fill evenly when n is small enough for the doubling to give few points
        out |= {round(i * (n - 1) / (k - 1)) for i in range(k)}
    return sorted(out)


def _ms(s: float) -> str:
    return f"{s * 1e3:.2f}"


def print_speedup(rec: SpeedupRecord, c: Console) -> None:
    s = rec.settings
    c.print(Text.assemble((rec.model.get("name") or "?", "bold"),
                          f"  ({rec.model.get('architecture')}) · {s.get('threads')} threads · "
                          f"{s.get('repetitions') or 'auto'} repetition(s) · f16 KV cache · n_ubatch "
                          f"{rec.resolved.get('n_ubatch')}"))
    t = Table(box=box.SIMPLE_HEAD, pad_edge=False, title="Generation with the KV cache against recomputing the "
              "prefix for every token", title_justify="left")
    for col in ("n", "with cache", "ms/token", "tokens eval.", "without", "ms/token", "tokens eval.", "speed-up"):
        t.add_column(col, justify="right", no_wrap=True)
    for p in rec.points:
        cached, uncached = p["cached"], p["uncached"]
        t.add_row(str(p["n"]), f"{mean_total_s(p, 'cached'):.3f} s",
                  f"{_ms(cached['per_token_s'][0])}→{_ms(cached['per_token_s'][-1])}",
                  f"{sum(cached['tokens_evaluated']):,}", f"{mean_total_s(p, 'uncached'):.3f} s",
                  f"{_ms(uncached['per_token_s'][0])}→{_ms(uncached['per_token_s'][-1])}",
                  f"{sum(uncached['tokens_evaluated']):,}", f"{speedup(p):.1f}×")
    c.print(t)
    last = rec.points[-1]
    t = Table(box=box.SIMPLE_HEAD, pad_edge=False, title=f"Time per token against its position (n = {last['n']}, "
              "mean over the repetitions)", title_justify="left")
    for col in ("position", "with cache (ms)", "without (ms)", "tokens evaluated without"):
        t.add_column(col, justify="right", no_wrap=True)
    for i in curve_positions(last["n"]):
        t.add_row(str(i), _ms(last["cached"]["per_token_s"][i]), _ms(last["uncached"]["per_token_s"][i]),
                  str(last["uncached"]["tokens_evaluated"][i]))
    c.print(t)
    c.print(Text("Tokens evaluated are llama.cpp's own counts (llama_perf_context): 1 per step with the cache, "
                 "position + 1 without. Speed-up: mean total time without / with, over the repetitions.", style="dim"))
