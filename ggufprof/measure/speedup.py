"""The parent side of ``ggufprof speedup``: run the speedup worker, make its record, keep it.

The caller never loads the model (measure/workers.py); the worker times both modes and counts the
tokens llama.cpp evaluated (measure/speedup_worker.py). Here the record gets the model block the
sweep's records carry (so ``report`` can put both side by side and refuses to mix models), the work
counts are checked against 1 / position + 1 (results/speedup.py), and with ``out_dir`` the record
is appended to ``out_dir/speedup.jsonl`` under the directory's results lock.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from ..errors import GgufprofError
from ..model.model_info import ModelInfo
from ..results.speedup import SpeedupRecord, append_speedup, read_speedup, work_mismatches
from ..results.store import RESULTS, ResultsLock, check_same_model, read_records
from .sweep import model_block
from .workers import Progress, run_once

MODULE = "speedup_worker"


class SpeedupFailed(GgufprofError):
    """The worker crashed, was killed or timed out, or llama.cpp did other work than asked."""


def run_speedup(model: ModelInfo, n_gen: list[int], threads: int, repetitions: int, *, repack: bool = True,
                timeout: float | None = None, out_dir: Path | None = None, seed: int = 1234,
                progress: Progress | None = None) -> SpeedupRecord:
    """Time ``n`` generated tokens with and without the KV cache for each n of ``n_gen``; ``progress``
    hears of each timed run (tokens evaluated so far, of the plan's total)."""
    n_gen = sorted(set(n_gen))
    if not n_gen or n_gen[0] < 1:
        raise GgufprofError(f"-n: numbers of generated tokens must be >= 1, got {n_gen}")
    if model.n_ctx_train and n_gen[-1] > model.n_ctx_train:
        raise GgufprofError(f"-n {n_gen[-1]} exceeds the model's training context {model.n_ctx_train}")
    if out_dir is not None:
        _prepare(out_dir)
    started = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    reply = run_once(MODULE, {"model_path": str(model.path), "n_gen": n_gen, "threads": threads,
                              "repetitions": repetitions, "repack": repack, "seed": seed}, timeout, sigill_hint=repack,
                     on_progress=progress)
    if not reply.ok:
        raise (GgufprofError if reply.refused else SpeedupFailed)(f"the speedup worker failed: {reply.failure}")
    r = reply.result
    settings = {**r["settings"], "n_gen": n_gen, "threads": threads, "repetitions": repetitions, "repack": repack,
                "seed": seed}
    rec = SpeedupRecord(model_block(model), settings, r["points"], r["resolved"], r["env"], started)
    if bad := work_mismatches(rec.points):
        raise SpeedupFailed("llama.cpp evaluated other tokens than asked: " + "; ".join(bad[:3]))
    if out_dir is not None:
        with ResultsLock(out_dir):
            _same_model(out_dir, rec)
            append_speedup(out_dir, rec)
    return rec


def _prepare(out_dir: Path) -> None:
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise GgufprofError(f"{out_dir}: cannot create the results directory: {e.strerror}") from None


def _same_model(out_dir: Path, rec: SpeedupRecord) -> None:
    """A results directory holds one model: refuse to add this one beside another's records."""
    sha = rec.model.get("sha256")
    if not sha:
        return
    existing: list = read_speedup(out_dir, [])
    if (out_dir / RESULTS).is_file():
        existing += read_records(out_dir / RESULTS, [])
    check_same_model(existing, sha, Path(rec.model["path"]), out_dir)
