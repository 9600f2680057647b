"""``ggufprof fit``: the largest context per cache type whose whole footprint fits a memory budget.

For each cache type pair the context is searched in the steps llama.cpp pads to (256 cells per
stream): the footprint (memory/footprint.py: weights, KV, recurrent state, compute, output) grows
with the context, so a binary search finds the largest size whose predicted total, on every
budgeted device, is within the budget minus the margin. Each step asks llama.cpp's dry run for the
compute buffers (~3 ms, nothing allocated) and checks the dry run's KV sizes against the prediction.

Where the search stops (``ceiling``): the training context; when the model states none
(n_ctx_train 0), a search ceiling of SEARCH_CEILING tokens per sequence; and never past llama.cpp's
uint32 n_ctx. Before the dry run is asked anything, the prediction alone bounds the search
(``memory_bound``: the footprint without compute buffers must fit), so the dry run is never asked
about a context the budget cannot hold (a stated training context of 2^31 tokens included).

The budget is checked against *allocated* bytes (weights counted in full, mmapped or not), the safe
bound llama.cpp's own ``--fit`` uses; what is actually resident is measured by ``--verify``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..errors import GgufprofError
from ..flags import DEFAULT_FIT_MARGIN
from ..memory.footprint import HOST, DeviceFootprint, footprint, gpu_bytes
from ..memory.placement import place
from ..memory.predict import MemoryPrediction, predict
from ..memory.settings import CTX_PAD, UINT32_MAX, KVSettings
from ..model.model_info import ModelInfo
from ..results.run_settings import RunSettings
from .dry_run import DryRun, cross_check
from .sweep import default_threads, measure_one
from .workers import Progress

STEP = CTX_PAD  # cells: llama.cpp pads n_ctx (and each stream) to 256


@dataclass(frozen=True)
class Budget:
    host: int | None = None  # bytes of host memory, or None (not budgeted)
    vram: int | None = None  # bytes per GPU, or None
    margin: int = DEFAULT_FIT_MARGIN

    def of(self, device: str) -> int | None:
        """The budget of one device: host memory for the CPU, the per-GPU budget for any other."""
        return self.host if device == HOST else self.vram

    def over(self, devices: list[DeviceFootprint]) -> list[str]:
        """The devices whose total exceeds its budget minus the margin."""
        return [d.device for d in devices
                if self.of(d.device) is not None and d.total_bytes > self.of(d.device) - self.margin]

    def headroom(self, devices: list[DeviceFootprint]) -> int | None:
        """Bytes left beyond the margin on the tightest budgeted device (budget - margin - total):
        what a larger context could still use; negative when over."""
        rooms = [self.of(d.device) - self.margin - d.total_bytes for d in devices if self.of(d.device) is not None]
        return min(rooms) if rooms else None


@dataclass
class FitResult:
    cache_type_k: str
    cache_type_v: str
    ctx_size: int  # n_ctx to pass to llama.cpp; 0 when nothing fits
    n_ctx_seq: int = 0
    prediction: MemoryPrediction | None = None
    devices: list[DeviceFootprint] = field(default_factory=list)
    headroom: int | None = None
    next_total: dict[str, int] = field(default_factory=dict)  # the next 256-cell step, per device: over budget
    capped_by: str | None = None  # CAP_TRAIN, CAP_SEARCH or CAP_UINT32: what stopped it, not memory
    note: str = ""
    limited_by: dict = field(default_factory=dict)  # what stops the next step: device and its largest part
    smallest_budget: dict[str, int] = field(default_factory=dict)  # nothing fits: the budget 256 cells need
    settings: KVSettings | None = None  # the answer's settings (ctx_size and cache types filled in)

    @property
    def capped(self) -> bool:
        return self.capped_by is not None

    @property
    def total_bytes(self) -> int:
        return sum(d.total_bytes for d in self.devices)

    def device(self, name: str) -> DeviceFootprint | None:
        return next((d for d in self.devices if d.device == name), None)

    def to_dict(self) -> dict:
        p = self.prediction
        return {
            "cache_type_k": self.cache_type_k, "cache_type_v": self.cache_type_v, "ctx_size": self.ctx_size,
            "n_ctx_seq": self.n_ctx_seq, "kv_bytes": p.kv_bytes if p else 0,
            "recurrent_bytes": p.recurrent_bytes if p else 0,
            "compute_bytes": sum(d.compute_bytes for d in self.devices), "total_bytes": self.total_bytes,
            "headroom_bytes": self.headroom, "capped_by_n_ctx_train": self.capped_by == CAP_TRAIN,
            "capped_by": self.capped_by,
            "next_step_total_bytes": self.next_total, "devices": [d.to_dict() for d in self.devices],
            "limited_by": self.limited_by, "smallest_budget_bytes": self.smallest_budget, "note": self.note,
        }


SEARCH_CEILING = 1 << 20  # tokens per sequence searched up to when the model states no training context
# What stopped a search before memory did (FitResult.capped_by), and its words for the footnote.
CAP_TRAIN, CAP_SEARCH, CAP_UINT32 = "n_ctx_train", "search ceiling", "uint32 n_ctx"
CAP_WORDS = {
    CAP_TRAIN: "the training context (n_ctx_train)",
    CAP_SEARCH: f"the search ceiling, {SEARCH_CEILING:,} tokens per sequence (the model states no training context)",
    CAP_UINT32: "llama.cpp's largest context (n_ctx is a uint32, padded to 256)",
}


class Fitter:
    """The search for one model, budget and settings; one dry-run worker answers every step.

    The dry run is only asked about contexts the budget could hold: before it is asked anything,
    the upper end of the search is bounded by the prediction alone (weights, KV, recurrent state
    and output buffer, everything but the compute buffers, which only add), so a model whose
    stated training context is 2^31 tokens is searched up to what its KV allows in the budget, not
    from 2^31 down. The one exception is the step right above the answer (``next_total``)."""

    def __init__(self, model: ModelInfo, base: KVSettings, budget: Budget, n_gpu_layers: int = 0,
                 offload_kqv: bool = True, gpu: str | None = None, repack: bool = True):
        """``gpu``: the GPU llama.cpp offloads to (measure.dry_run.visible_gpu), None without one;
        ``repack``: llama.cpp's extra CPU buffer types on (its default), their weights counted."""
        self.model, self.base, self.budget = model, base, budget
        self.ngl, self.offload_kqv, self.gpu = n_gpu_layers, offload_kqv, gpu
        self.streams = 1 if base.kv_unified else base.parallel
        self.dry = DryRun(model.path, n_gpu_layers if gpu else 0, repack)
        self.cpu_bufts = self.dry.cpu_buffer_types()
        self.on_step: Callable[[KVSettings], None] | None = None  # told of each context asked of the dry run

    def close(self) -> None:
        self.dry.close()

    def total(self, s: KVSettings) -> tuple[MemoryPrediction, list[DeviceFootprint]]:
        """The whole footprint of ``s``, its compute buffers from the dry run."""
        if self.on_step is not None:
            self.on_step(s)
        try:
            pred = predict(self.model, s)
            dry = self.dry.ask(s, self.offload_kqv)
            cross_check(pred, dry)
        except GgufprofError as e:
            raise GgufprofError(f"fit tried n_ctx {s.ctx_size:,} ({s.cache_type_k}/{s.cache_type_v}, "
                                f"{s.parallel} sequence(s)): {e}") from None
        placement = place(self.model, pred, self.ngl, self.offload_kqv, self.gpu, self.cpu_bufts)
        return pred, footprint(self.model, pred, placement, dry.compute_bytes)

    def settings(self, k: int, tk: str, tv: str) -> KVSettings:
        """k steps of STEP cells per stream."""
        return dataclasses.replace(self.base, ctx_size=k * STEP * self.streams, cache_type_k=tk, cache_type_v=tv)

    def fit(self, tk: str, tv: str) -> FitResult:
        k_max, cap = ceiling(self.model, self.streams)
        ok: dict[int, tuple] = {}

        def fits(k: int) -> bool:
            pred, devs = self.total(self.settings(k, tk, tv))
            if self.budget.over(devs):
                return False
            ok[k] = (pred, devs)
            return True

        try:
            bound = memory_bound(self.model, self.budget, k_max, lambda k: self.settings(k, tk, tv), self.ngl,
                                 self.offload_kqv, self.gpu, self.cpu_bufts)
            if bound == 0 or not fits(1):
                _, devs = self.total(self.settings(1, tk, tv))
                return FitResult(tk, tv, 0, devices=devs, headroom=self.budget.headroom(devs),
                                 note="nothing fits: the smallest context (256 cells per sequence) is over budget",
                                 limited_by=limit(devs, self.budget),
                                 smallest_budget={d.device: d.total_bytes + self.budget.margin for d in devs
                                                  if self.budget.of(d.device) is not None})
            # invariant: lo fits; hi does not (by the dry run, or by the prediction alone) or is past the ceiling
            lo, hi = 1, bound + 1
            if bound > 1:  # the top first: when memory does not bind, one question settles it
                lo, hi = (bound, hi) if fits(bound) else (lo, bound)
            while hi - lo > 1:
                mid = (lo + hi) // 2
                if fits(mid):
                    lo = mid
                else:
                    hi = mid
            pred, devs = ok[lo]
            result = FitResult(tk, tv, self.settings(lo, tk, tv).ctx_size, pred.n_ctx_seq, pred, devs,
                               self.budget.headroom(devs), capped_by=cap if lo == k_max else None,
                               settings=self.settings(lo, tk, tv))
            if lo < k_max:
                _, nxt = self.total(self.settings(lo + 1, tk, tv))
                result.next_total = {d.device: d.total_bytes for d in nxt}
                result.limited_by = limit(nxt, self.budget)
            else:
                result.limited_by = {"by": cap}
            return result
        except GgufprofError as e:
            return FitResult(tk, tv, 0, note=str(e))


def ceiling(model: ModelInfo, streams: int) -> tuple[int, str]:
    """The largest number of STEP-cell steps per stream a search may try, and what sets it: the
    training context, the search ceiling when the model states none (n_ctx_train 0), or llama.cpp's
    uint32 n_ctx (padded to 256, so at most UINT32_MAX - 256 before padding), whichever is lowest."""
    train = model.n_ctx_train
    k, cap = (max(1, train // STEP), CAP_TRAIN) if train else (SEARCH_CEILING // STEP, CAP_SEARCH)
    k_uint = (UINT32_MAX - CTX_PAD) // (STEP * streams)
    return (k_uint, CAP_UINT32) if k_uint < k else (k, cap)


def memory_bound(model: ModelInfo, budget: Budget, k_max: int, settings, n_gpu_layers: int = 0,
                 offload_kqv: bool = True, gpu: str | None = None, cpu_bufts: dict[str, str] | None = None) -> int:
    """The largest k <= ``k_max`` whose footprint without compute buffers (weights, KV, recurrent
    state, output; exact from the prediction) fits the budget minus the margin on every budgeted
    device; 0 when even k = 1 does not. The compute buffers only add to it, so no larger context can
    fit: the search never needs to ask the dry run beyond it. ``settings(k)`` gives k's KVSettings.
    A binary search over the prediction alone (pure Python, no llama.cpp)."""
    def under(k: int) -> bool:
        pred = predict(model, settings(k))
        devs = footprint(model, pred, place(model, pred, n_gpu_layers, offload_kqv, gpu, cpu_bufts), {})
        return not budget.over(devs)

    if not under(1):
        return 0
    lo, hi = 1, k_max + 1  # lo is under the budget, hi is not (k_max + 1: beyond the ceiling)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if under(mid) else (lo, mid)
    return lo


PARTS = {"weights": "weights_bytes", "KV cache": "kv_bytes", "recurrent state": "recurrent_bytes",
         "compute buffer": "compute_bytes", "output buffer": "output_bytes"}


def limit(devices: list[DeviceFootprint], budget: Budget) -> dict:
    """What stops a context from growing: the first device over its budget minus the margin, and the
    largest part of its footprint there (a compute buffer that dwarfs the KV cache is shrunk with a
    smaller -ub; weights, with fewer layers on that device)."""
    over = budget.over(devices)
    if not over:
        return {}
    dev = next(d for d in devices if d.device == over[0])
    part, attr = max(PARTS.items(), key=lambda kv: getattr(dev, kv[1]))
    return {"device": dev.device, "by": part, "bytes": getattr(dev, attr), "total_bytes": dev.total_bytes}


def fit_all(model: ModelInfo, pairs: list[tuple[str, str]], base: KVSettings, budget: Budget, n_gpu_layers: int = 0,
            offload_kqv: bool = True, gpu: str | None = None, repack: bool = True,
            progress: Progress | None = None) -> list[FitResult]:
    """Each pair's search in turn (one dry-run worker for all); ``progress`` hears of every context the
    dry run is asked about (pairs searched so far, of all, and what is asked now)."""
    if budget.host is None and budget.vram is None:
        raise GgufprofError("give a budget: --memory SIZE (host) and/or --vram SIZE (per GPU)")
    if progress is not None:
        progress(0, len(pairs), "starting llama.cpp's dry run (loading the model's metadata)")
    fitter = Fitter(model, base, budget, n_gpu_layers, offload_kqv, gpu, repack)
    try:
        out = []
        for i, (tk, tv) in enumerate(pairs):
            if progress is not None:
                fitter.on_step = lambda s, i=i: progress(i, len(pairs), f"{s.cache_type_k}/{s.cache_type_v}: "
                                                                        f"dry run at n_ctx {s.ctx_size:,}")
            out.append(fitter.fit(tk, tv))
        return out
    finally:
        fitter.close()


def verify(model: ModelInfo, results: list[FitResult], base: KVSettings, budget: Budget, n_gpu_layers: int,
           offload_kqv: bool, work_dir: Path, repack: bool = True, progress: Progress | None = None) -> list[dict]:
    """Each answer created for real (a one-configuration sweep: a batch of n_ubatch tokens decoded):
    measured RSS / VRAM growth beside the predicted total. It fits when the worker ran and its peak
    RSS (Python and llama.cpp code included) stays within the host budget, and its VRAM growth after
    the decode within the GPU budget."""
    out = []
    for i, r in enumerate(results):
        if r.ctx_size == 0:
            out.append({"fits": None, "note": "nothing to verify"})
            continue
        kv = dataclasses.replace(base, ctx_size=r.ctx_size, cache_type_k=r.cache_type_k, cache_type_v=r.cache_type_v)
        if progress is not None:
            progress(i, len(results), f"--verify {r.cache_type_k}/{r.cache_type_v}: n_ctx {r.ctx_size:,} created "
                                      "and a batch decoded for real")
        rs = RunSettings(kv, default_threads(), n_prompt=min(kv.ubatch_size, r.n_ctx_seq), n_gen=4, repetitions=1,
                         n_gpu_layers=n_gpu_layers, offload_kqv=offload_kqv, repack=repack)
        rec = measure_one(model, rs, work_dir / str(i))
        host = r.device(HOST)
        rss = rec.measured.get("rss") or {}
        entry = {"status": rec.status, "reason": rec.reason, "predicted_host_bytes": host.total_bytes if host else None,
                 "rss_growth_after_warmup": (rss.get("after_warmup") or 0) - (rss.get("baseline") or 0) if rss else None,
                 "rss_peak_growth": (rss.get("peak") or 0) - (rss.get("baseline") or 0) if rss else None}
        v = rec.measured.get("vram") or {}
        gpu_fits = True
        if v.get("after_warmup_process") is not None and v.get("after_init_process") is not None:
            # from the CUDA context on (llama.cpp's free memory is measured after creating it):
            # allocations + the first decode's cuBLAS workspace and pools, which the margin covers
            entry.update(predicted_gpu_bytes=gpu_bytes(r.devices),
                         vram_growth_at_context=v["after_context_process"] - v["after_init_process"],
                         vram_growth=v["after_warmup_process"] - v["after_init_process"])
            gpu_fits = budget.vram is None or entry["vram_growth"] <= budget.vram
        entry["fits"] = (rec.status == "ok" and gpu_fits
                         and (budget.host is None or (rss.get("peak") or 0) <= budget.host))
        out.append(entry)
    return out
