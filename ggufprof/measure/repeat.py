"""How a worker times repetitions: one home for the rules the sweep and speedup workers share.

* ``more``: how many repetitions -- a fixed count, or (``AUTO``) until the 95 % confidence interval
  of the mean tokens/s is within the target (results/noise.py);
* ``machine`` / ``noise_sample``: the machine's state around one repetition (load average, this
  process's CPU use, the share of the cores other processes took), recorded beside each sample;
* ``speed_test``: a speed block of raw samples (results/schema.py ``speed_block``) with its noise.
"""

from __future__ import annotations

import os
import time

import psutil

from ..flags import AUTO
from ..results.noise import enough
from ..results.schema import speed_block

NOISE_MIN_WALL = 0.2  # seconds: below, CPU-time shares are within the kernel's 10 ms tick of zero


def speed_test(n_tokens: int, samples_s: list[float], n_seq: int = 1, noise: list[dict] | None = None) -> dict:
    """A speed block; with ``n_seq`` sequences decoded together its tokens/s is the aggregate
    (n_seq x n_tokens / s, llama-batched-bench's S_PP / S_TG) and ``tps_per_seq`` one sequence's."""
    block = speed_block(n_tokens * n_seq, samples_s, [n_tokens * n_seq / s for s in samples_s if s > 0])
    block["n_seq"] = n_seq
    block["tokens_per_seq"] = n_tokens
    block["tps_per_seq"] = block["tps_mean"] / n_seq if block["tps_mean"] else None
    block["samples_noise"] = noise or []
    return block


def more(repetitions: int, samples_s: list[float], n_tokens: int) -> bool:
    """Whether to time one more repetition: a fixed count, or (``AUTO``) until the 95 % CI of the
    mean tokens/s is within the target (results/noise.py)."""
    if repetitions != AUTO:
        return len(samples_s) < repetitions
    return not enough([n_tokens / s for s in samples_s if s > 0])


def machine() -> tuple[float, float, float]:
    """(wall, this process's CPU seconds, the machine's busy CPU seconds) now."""
    ct = psutil.cpu_times()
    busy = ct.user + ct.system + getattr(ct, "nice", 0) + getattr(ct, "irq", 0) + getattr(ct, "softirq", 0)
    return time.perf_counter(), time.process_time(), busy


def noise_sample(before: tuple[float, float, float], after: tuple[float, float, float]) -> dict:
    """The machine during one repetition: load average, our CPU use, and the share of all cores
    that other processes used (busy CPU time not ours / wall x cores)."""
    wall = max(after[0] - before[0], 1e-9)
    own = after[1] - before[1]
    freq = psutil.cpu_freq() if hasattr(psutil, "cpu_freq") else None
    sample = {"loadavg1": os.getloadavg()[0], "cpu_per_wall": None, "others_cpu_share": None,
              "freq_mhz": freq.current if freq else None}
    if wall >= NOISE_MIN_WALL:  # the kernel counts CPU time in 10 ms ticks: shorter runs say nothing
        others = max(0.0, (after[2] - before[2]) - own) / (wall * (os.cpu_count() or 1))
        sample.update(cpu_per_wall=own / wall, others_cpu_share=min(others, 1.0))
    return sample
