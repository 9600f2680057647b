"""Check deployments against their limits: predicted (``--estimate-only``) or measured.

Pure: the measurement is a record made by the sweep machinery (``measure.sweep.measure_one``, which the
library's ``check`` calls), so a deployment is measured exactly as a sweep configuration is: its own
worker process, the same records in ``OUT/<name>/results.jsonl``, the same failure handling.

What each limit is compared with, and why:

* ``max_kv_bytes``: the KV bytes, predicted byte-exactly (``memory.predict``). When measured, the
  prediction is used if llama.cpp's log agreed with it (``check.kv_exact``); otherwise the logged
  MiB (two decimals) are used, and the row says so.
* ``max_rss``: the worker's peak RSS over the run. It includes the Python interpreter and
  llama-cpp-python (~50 MiB), so it is an upper bound for a lean server process.
* ``max_vram``: the worker's GPU memory after the run (NVML has no per-process peak); not checked
  where there is no NVML reading.
* ``min_pp_tps`` / ``min_tg_tps``: the mean tokens/s over the repetitions, judged only when the
  samples can be trusted by the rule ``compare`` uses (results/noise.py ``caveats``: at least two
  repetitions, no spread over 10 %, no other process taking over 25 % of the CPU); otherwise the
  row is *inconclusive*, as ``compare`` calls the same data: a noisy mean below the limit may be the
  machine's fault, one above it may hide a slow build.
* ``max_kld``: the mean KL divergence of the deployment's cache types against f16/f16 (the
  record's quality block, measured first by the same sweep, results/quality.py), over
  ``quality_text`` in chunks of ``quality_ctx`` tokens; a quality run that failed fails it.

A deployment whose run did not complete (failed or skipped) fails, whatever its limits: its ``run``
row fails, and so does every measured limit (the deployment does not work as stated); a predicted
``max_kv_bytes`` is still shown, but it cannot make a crashed deployment pass.

The outcome (:func:`outcome`, errors.ExitCode): FAIL when a row fails; INCONCLUSIVE when a measured
run left a limit without a reading (``max_vram`` without NVML, a speed block missing, a noisy speed) and
``allow_inconclusive`` is not given: a limit that could not be checked is not a pass; PASS
otherwise. With ``--estimate-only`` the measured limits are "not checked" by request and do not count.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ExitCode
from .deploy import Deployment
from .llama_log import logged_mib, mib_bytes
from .noise import record_caveats
from ..memory.predict import predict
from .schema import Record

ESTIMATE_ONLY = "estimate only"
RUN = "run"  # the row of a measured deployment whose run did not complete
SPEED_LIMITS = ("min_pp_tps", "min_tg_tps")  # judged only on a measurement results/noise.py trusts
REASON_MAX = 300  # characters of a failed run's reason carried into a row


@dataclass
class LimitCheck:
    deployment: str
    limit: str
    allowed: float | int
    value: float | int | None
    verdict: str  # "pass", "fail", "inconclusive" (measured, but no reading) or "not checked" (estimate only)
    note: str = ""


def _measured_kv(rec: Record) -> tuple[int | None, str]:
    if rec.check.get("kv_exact"):
        return rec.predicted.get("kv_bytes"), "predicted = llama.cpp's log"
    mib = logged_mib(rec.measured.get("kv", {}).get("caches"))
    return (None if mib is None else mib_bytes(mib)), "llama.cpp's log (disagrees with the prediction)"


def _vram_after_run(measured: dict) -> int | None:
    """The process's GPU memory after the run (NVML has no per-process peak); records before
    schema 2 called it ``peak_process``."""
    v = measured.get("vram") or {}
    return v.get("after_run_process", v.get("peak_process"))


def check_deployment(dep: Deployment, rec: Record | None) -> list[LimitCheck]:
    """One row per limit; ``rec`` None means estimate only."""
    rows: list[LimitCheck] = []
    lim = dep.limits

    def add(limit: str, allowed, value, note: str = "", unchecked: str | None = None) -> None:
        if unchecked is not None:
            verdict = "not checked" if unchecked == ESTIMATE_ONLY else "inconclusive"
            rows.append(LimitCheck(dep.name, limit, allowed, value, verdict, unchecked))
            return
        ok = value <= allowed if limit.startswith("max_") else value >= allowed
        rows.append(LimitCheck(dep.name, limit, allowed, value, "pass" if ok else "fail", note))

    if rec is not None and rec.status != "ok":
        reason = str(rec.reason or "")
        reason = reason if len(reason) <= REASON_MAX else reason[:REASON_MAX] + "…"
        rows.append(LimitCheck(dep.name, RUN, "ok", rec.status, "fail", f"the run did not complete: {reason}"))
    if lim.max_kv_bytes is not None:
        if rec is None or rec.status != "ok":
            note = "predicted" + (f" (the run {rec.status})" if rec is not None else "")
            add("max_kv_bytes", lim.max_kv_bytes, predict(dep.info, dep.run.kv).kv_bytes, note)
        else:
            add("max_kv_bytes", lim.max_kv_bytes, *_measured_kv(rec))
    m = rec.measured if rec is not None else {}
    measured = {
        "max_rss": lambda: ((m.get("rss") or {}).get("peak"), "peak RSS, Python included"),
        "max_vram": lambda: (_vram_after_run(m), "GPU memory after the run"),
        "min_pp_tps": lambda: ((m.get("pp") or {}).get("tps_mean"), f"mean of {dep.run.repetitions} runs"),
        "min_tg_tps": lambda: ((m.get("tg") or {}).get("tps_mean"), f"mean of {dep.run.repetitions} runs"),
    }
    for limit, get in measured.items():
        allowed = getattr(lim, limit)
        if allowed is None:
            continue
        if rec is None:
            add(limit, allowed, None, unchecked=ESTIMATE_ONLY)
        elif rec.status != "ok":
            rows.append(LimitCheck(dep.name, limit, allowed, None, "fail", f"not measured: the run {rec.status}"))
        else:
            value, note = get()
            doubts = record_caveats(rec, limit[4:6]) if limit in SPEED_LIMITS else []
            if value is not None and doubts:  # compare's rule: a noisy mean neither passes nor fails
                add(limit, allowed, value, unchecked=f"noisy measurement ({', '.join(doubts)}): neither pass nor "
                                                    "fail; measure again on a quiet machine, or with more repetitions")
            elif value is None:
                why = (rec.env.get("gpu_unavailable") or "no reading") if limit == "max_vram" else "no reading"
                add(limit, allowed, None, unchecked=f"not measured ({why})")
            else:
                add(limit, allowed, value, note)
    if lim.max_kld is not None:
        q = rec.quality if rec is not None else None
        if rec is None:
            add("max_kld", lim.max_kld, None, unchecked=ESTIMATE_ONLY)
        elif rec.status != "ok":
            rows.append(LimitCheck(dep.name, "max_kld", lim.max_kld, None, "fail", f"not measured: the run {rec.status}"))
        elif isinstance(q, dict) and "kld_mean" in q:
            add("max_kld", lim.max_kld, q["kld_mean"],
                f"mean KLD vs f16/f16, top-1 {q['top1_agreement']:.1%}, {q['n_chunks']} x {q['n_ctx']} tokens")
        else:
            why = q["error"] if isinstance(q, dict) and "error" in q else "no quality block in the record"
            rows.append(LimitCheck(dep.name, "max_kld", lim.max_kld, None, "fail", f"quality not measured: {why}"))
    return rows


def outcome(rows: list[LimitCheck], allow_inconclusive: bool = False) -> ExitCode:
    """The verdict of ``check`` over every deployment's rows (see the module's docstring)."""
    if any(r.verdict == "fail" for r in rows):
        return ExitCode.FAIL
    if not allow_inconclusive and any(r.verdict == "inconclusive" for r in rows):
        return ExitCode.INCONCLUSIVE
    return ExitCode.PASS
