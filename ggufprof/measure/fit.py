"""``ggufprof fit``: per cache type, the largest context -- or the most layers on the offload devices
-- whose whole footprint fits every device's memory budget.

Two searches, both exact (the answer fits; the next step is over, by llama.cpp's own dry run):

* **The context** at a placement the user fixes (``-ngl``, ``-ncmoe``, ``-cmoe``, ``-ot``, or no
  offload device at all): in the steps llama.cpp pads to (256 cells per stream), a binary search,
  since the footprint (memory/footprint.py: weights, KV, recurrent state, compute, output) grows
  with the context.
* **The placement** for a context (``-c N``, or the training context) that does not fit with every
  layer offloaded, when the placement is left to fit and an offload device is budgeted: one search
  for one device or several, whoever splits the layers (measure/split_search.py), in the order of
  llama.cpp's own fit (common/fit.cpp, ``common_params_fit_impl``): for a MoE model first the fewest
  layers whose expert tensors stay in host memory (the first layers', ``--n-cpu-moe N``, or the last
  layers', as llama.cpp's fit chooses: both searched, the one with more on the devices kept; it moves
  MoE tensors, ``LAYER_FRACTION_MOE``, before whole layers), then the most layers on the devices (``-ngl N``) and
  at that -ngl again the fewest expert layers on the host, then part of one more layer (``-ot`` of
  part of its FFN or experts to the host or the next device). The layers' split between several
  devices is the search's (no ``-ts``: each device's count, written as ``-ts``, filled back to front
  as llama.cpp's fit fills them) or the user's (``-ts`` proportions, kept as given: llama.cpp splits
  however many layers -ngl offloads by them, so a device can lose a layer as -ngl grows); ``-sm
  none`` offloads to the main device alone. Host memory moves the other way (fewer layers, more on
  the host): it is checked at the answer, where it holds the least it can for the devices' budgets.
  Every answer is exact whatever the search assumed: it fits, and its next step is over. Without a
  search (the context fits with every layer offloaded), llama.cpp's default split over several
  devices by free memory is written as the layer counts it gives, so that the command reproduces it
  on any machine.

Each step asks llama.cpp's dry run for the compute buffers (a context: ms, nothing allocated) and
checks its KV sizes against the prediction. A placement needs the model loaded with it (a dry-run
load: ~0.3 s for a 30B MoE's header, ~5x its context): before asking the dry run anything, the
prediction alone (everything but the compute buffers, which only add) bounds each search, and the
dry run is asked where the guess puts the answer -- the prediction plus the compute buffers the
dry run already gave for what each device holds (split_search.KnownCompute) -- so that a count
costs about two questions when the guess is right, the answer and its next step. Every (placement,
settings) answer is kept, so the next step and the other cache types reuse them, and the dry run's
worker keeps the models it loaded, so a placement asked again at another cache type or -ub costs a
context, not a load.

When the compute buffer is what stops the answer (a 262k-token vocabulary at n_ubatch 512), the
same search at ``-ub`` 256, 128 and 64 gives an alternative answer, reported beside the user's
(never instead of it: n_ubatch changes prompt speed).

Where a context search stops (``ceiling``): the training context; when the model states none
(n_ctx_train 0), a search ceiling of SEARCH_CEILING tokens per sequence; and never past llama.cpp's
uint32 n_ctx. The budget is checked against *allocated* bytes (weights counted in full, mmapped or
not), the safe bound llama.cpp's own ``--fit`` uses; what is actually resident is measured by
``--verify``.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..errors import GgufprofError
from ..flags import ALL_GPU_LAYERS as ALL_LAYERS, DEFAULT_FIT_MARGIN
from ..memory.footprint import HOST, DeviceFootprint, footprint, gpu_bytes
from ..memory.placement import (LLM_FFN_EXPS_REGEX, OffloadDevice, Placement, PlacementFlags, layers_per_device,
                                place)
from ..memory.predict import MemoryPrediction, predict
from ..memory.settings import CTX_PAD, UINT32_MAX, KVSettings
from ..model.model_info import ModelInfo
from ..results.run_settings import RunSettings
from .dry_run import DryRun, cross_check
from .split_search import (BARE, FIRST, GUESS, LAST, REAL, Held, Judge, KnownCompute, SplitAnswer, SplitSearch,
                           last_true)
from .sweep import default_threads, measure_one
from .workers import Progress

STEP = CTX_PAD  # cells: llama.cpp pads n_ctx (and each stream) to 256
UBATCH_ALTERNATIVES = (256, 128, 64)  # tried when the compute buffer stops the answer


@dataclass(frozen=True)
class Budget:
    """Memory per device, each minus ``margin``: ``host`` for host memory, ``vram`` for every offload
    device, ``per_device`` for the ones named (``--vram A,B`` or ``free``, resolved on llama.cpp's
    device list by buffer type name: CUDA0, RPC0[127.0.0.1:50052])."""

    host: int | None = None  # bytes of host memory, or None (not budgeted)
    vram: int | None = None  # bytes per offload device, or None
    margin: int = DEFAULT_FIT_MARGIN
    per_device: tuple[tuple[str, int], ...] = ()

    def of(self, device: str) -> int | None:
        """The budget of one device: host memory for the CPU, its own or the common one for any other."""
        if device == HOST:
            return self.host
        return dict(self.per_device).get(device, self.vram)

    @property
    def offload(self) -> bool:
        """Whether any offload device is budgeted."""
        return self.vram is not None or bool(self.per_device)

    def over(self, devices: list[DeviceFootprint]) -> list[str]:
        """The devices whose total exceeds its budget minus the margin."""
        return [d.device for d in devices
                if self.of(d.device) is not None and d.total_bytes > self.of(d.device) - self.margin]

    def headroom(self, devices: list[DeviceFootprint]) -> int | None:
        """Bytes left beyond the margin on the tightest budgeted device (budget - margin - total):
        what a larger context could still use; negative when over."""
        rooms = [self.of(d.device) - self.margin - d.total_bytes for d in devices if self.of(d.device) is not None]
        return min(rooms) if rooms else None

    def to_dict(self) -> dict:
        return {"host": self.host, "vram": self.vram, "margin": self.margin, "per_device": dict(self.per_device)}


@dataclass
class FitResult:
    cache_type_k: str
    cache_type_v: str
    ctx_size: int  # n_ctx to pass to llama.cpp; 0 when nothing fits
    n_ctx_seq: int = 0
    prediction: MemoryPrediction | None = None
    devices: list[DeviceFootprint] = field(default_factory=list)
    headroom: int | None = None
    next_total: dict[str, int] = field(default_factory=dict)  # the next step, per device: over budget
    capped_by: str | None = None  # CAP_TRAIN, CAP_SEARCH or CAP_UINT32: what stopped it, not memory
    note: str = ""
    limited_by: dict = field(default_factory=dict)  # what stops the next step: device and its largest part
    smallest_budget: dict[str, int] = field(default_factory=dict)  # nothing fits: the budget 256 cells need
    settings: KVSettings | None = None  # the answer's settings (ctx_size and cache types filled in)
    placement: PlacementFlags | None = None  # the answer's placement flags
    # what was searched: "context", or placement flags joined by ",": n_gpu_layers, n_cpu_moe, tensor_split,
    # override_tensor (the last two with several devices: the split and a layer in part)
    searched: str = "context"
    # the step that is over, in llama.cpp's flags: "-c 4352", "-ngl 13", "-ncmoe 2", "-ngl 4 -ts 1,3"
    next_step: str = ""
    alternative: "FitResult | None" = None  # the same search at a smaller -ub, when the compute buffer stops it

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
            "searched": self.searched, "next_step": self.next_step,
            "placement": _lists(self.placement.to_dict()) if self.placement else None,
            "ubatch_size": self.settings.ubatch_size if self.settings else None,
        }


def _lists(value: object) -> object:
    """Tuples as lists, as JSON has them (so that to_dict equals its JSON read back)."""
    if isinstance(value, dict):
        return {k: _lists(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_lists(v) for v in value]
    return value


SEARCH_CEILING = 1 << 20  # tokens per sequence searched up to when the model states no training context
# What stopped a search before memory did (FitResult.capped_by), and its words for the footnote.
CAP_TRAIN, CAP_SEARCH, CAP_UINT32 = "n_ctx_train", "search ceiling", "uint32 n_ctx"
CAP_ALL = "every layer offloaded"  # the placement search: the context fits with nothing left on the host
CAP_WORDS = {
    CAP_TRAIN: "the training context (n_ctx_train)",
    CAP_SEARCH: f"the search ceiling, {SEARCH_CEILING:,} tokens per sequence (the model states no training context)",
    CAP_UINT32: "llama.cpp's largest context (n_ctx is a uint32, padded to 256)",
    CAP_ALL: "the context asked for (-c) fits with every layer offloaded",
}


def has_experts(model: ModelInfo) -> bool:
    """Whether the model has MoE expert tensors that --n-cpu-moe moves (common/common.h's
    LLM_FFN_EXPS_REGEX after ``blk.N``)."""
    pattern = re.compile(r"^blk\.\d+" + LLM_FFN_EXPS_REGEX)
    return any(pattern.search(t.name) for t in model.tensors)


class Fitter:
    """The search for one model, budget and settings; one dry-run worker answers every step.

    The dry run is only asked about contexts the budget could hold: before it is asked anything,
    the upper end of the search is bounded by the prediction alone (weights, KV, recurrent state
    and output buffer, everything but the compute buffers, which only add), so a model whose
    stated training context is 2^31 tokens is searched up to what its KV allows in the budget, not
    from 2^31 down. The one exception is the step right above the answer (``next_total``)."""

    def __init__(self, model: ModelInfo, base: KVSettings, budget: Budget, flags: PlacementFlags | None = None,
                 offload_kqv: bool = True, *, search_placement: bool = False, ctx_size: int | None = None):
        """``flags``: the placement (every flag the user gave); ``search_placement``: -ngl (and for MoE
        models -ncmoe) are left to the search, for the context ``ctx_size`` (None: the training
        context; with a context that fits every layer offloaded, the context is searched there)."""
        self.model, self.base, self.budget = model, base, budget
        self.flags = flags or PlacementFlags()
        self.offload_kqv, self.search_placement, self.ctx_size = offload_kqv, search_placement, ctx_size
        self.streams = 1 if base.kv_unified else base.parallel
        self.n_layer = model.hparams.n_layer_all
        self.dry = DryRun(model.path, placement=self.flags, whole_map=True)
        try:
            self.devices: list[OffloadDevice] = self.dry.offload_devices()
            self.cpu_bufts = self.dry.cpu_buffer_types()
        except GgufprofError:
            self.close()
            raise
        if not self.devices and self.flags.n_gpu_layers:
            # no offload device: every layer stays on the host whatever -ngl says (load_tensors'
            # act_gpu_layers is 0), so the model loaded is this placement too; answers say -ngl 0
            self.flags = self.dry.placement = dataclasses.replace(self.flags, n_gpu_layers=0)
        self._memo: dict[tuple, tuple[MemoryPrediction, Placement, list[DeviceFootprint]]] = {}
        self._predicted: dict[KVSettings, MemoryPrediction] = {}  # bare()'s predictions, one per settings
        self._bare: dict[tuple, tuple[Placement, list[DeviceFootprint]]] = {}  # bare()'s answers, by (settings, flags)
        self._known: dict[KVSettings, KnownCompute] = {}  # the dry run's compute buffers, per settings: the guess
        # told of each configuration asked of the dry run (a progress display)
        self.on_step: Callable[[KVSettings, PlacementFlags], None] | None = None

    def close(self) -> None:
        self.dry.close()

    @property
    def loads(self) -> int:
        """Dry-run loads of the model so far (one per placement asked about)."""
        return self.dry.loads

    def bare(self, s: KVSettings, flags: PlacementFlags) -> list[DeviceFootprint]:
        """The footprint without compute buffers: the prediction alone (pure Python, no llama.cpp)."""
        return self._placed_bare(s, flags)[1]

    def _placed_bare(self, s: KVSettings, flags: PlacementFlags) -> tuple[Placement, list[DeviceFootprint]]:
        if (key := (s, flags)) not in self._bare:
            pred = self._prediction(s)
            placement = self._place(pred, flags)
            self._bare[key] = placement, footprint(self.model, pred, placement, {})
        return self._bare[key]

    def _prediction(self, s: KVSettings) -> MemoryPrediction:
        """``predict`` of ``s``, once per settings (the search asks the same settings at many placements)."""
        if (pred := self._predicted.get(s)) is None:
            pred = self._predicted[s] = predict(self.model, s)
        return pred

    def guess(self, s: KVSettings, flags: PlacementFlags) -> list[DeviceFootprint]:
        """The footprint with each device's compute buffer guessed from the dry runs already asked at
        ``s`` (split_search.KnownCompute, by what the device holds), not asked of llama.cpp."""
        placement, devs = self._placed_bare(s, flags)
        known = self._known.get(s) or KnownCompute(self.n_layer)
        return [dataclasses.replace(d, compute_bytes=known.guess(d.device, Held.of(placement, flags, d.device)))
                for d in devs]

    def _place(self, pred: MemoryPrediction, flags: PlacementFlags) -> Placement:
        return place(self.model, pred, offload_kqv=self.offload_kqv, cpu_bufts=self.cpu_bufts, flags=flags,
                     devices=self.devices)

    def total(self, s: KVSettings, flags: PlacementFlags | None = None) -> tuple[MemoryPrediction, list[DeviceFootprint]]:
        """The whole footprint of ``s`` at ``flags`` (default: the fitter's), its compute buffers from
        the dry run with the model loaded at that placement."""
        flags = flags or self.flags
        key = (s, flags)
        if key not in self._memo:
            if self.on_step is not None:
                self.on_step(s, flags)
            try:
                pred = self._prediction(s)
                self.dry.load(flags)
                dry = self.dry.ask(s, self.offload_kqv)
                cross_check(pred, dry)
            except GgufprofError as e:
                raise GgufprofError(f"fit tried n_ctx {s.ctx_size:,} ({s.cache_type_k}/{s.cache_type_v}, "
                                    f"{s.parallel} sequence(s)): {e}") from None
            placement = self._placed_bare(s, flags)[0]
            devs = footprint(self.model, pred, placement, dry.compute_bytes)
            self._memo[key] = (pred, placement, devs)
            known = self._known.setdefault(s, KnownCompute(self.n_layer))
            for d in devs:
                known.learn(d.device, Held.of(placement, flags, d.device), d.compute_bytes)
        pred, _, devs = self._memo[key]
        return pred, devs

    def settings(self, k: int, tk: str, tv: str, base: KVSettings | None = None) -> KVSettings:
        """k steps of STEP cells per stream."""
        return dataclasses.replace(base or self.base, ctx_size=k * STEP * self.streams, cache_type_k=tk,
                                   cache_type_v=tv)

    # --- the answer per cache type ------------------------------------------------------------------

    def solve(self, tk: str, tv: str) -> FitResult:
        """The answer for one cache type pair, and, when its compute buffer is what stops it, the same
        search at a smaller -ub as ``alternative``."""
        r = self._solve(tk, tv, self.base)
        if r.limited_by.get("by") == "compute buffer":
            best = None
            for ub in (u for u in UBATCH_ALTERNATIVES if u < self.base.ubatch_size):
                alt = self._solve(tk, tv, dataclasses.replace(self.base, ubatch_size=ub,
                                                              batch_size=max(self.base.batch_size, ub)))
                if _better(alt, best or r):
                    best = alt
            r.alternative = best
        return r

    def _solve(self, tk: str, tv: str, base: KVSettings) -> FitResult:
        if not (self.search_placement and self.budget.offload and self.devices):
            return self.fit(tk, tv, base=base)
        full = dataclasses.replace(self.flags, n_gpu_layers=ALL_LAYERS)
        if not any(self.flags.tensor_split) and len(self.devices) > 1:
            full = self._pinned(full)
        k_max, cap = ceiling(self.model, self.streams)
        target = (dataclasses.replace(base, ctx_size=self.ctx_size, cache_type_k=tk, cache_type_v=tv)
                  if self.ctx_size else self.settings(k_max, tk, tv, base))
        try:
            _, devs = self.total(target, full)
        except GgufprofError as e:
            return FitResult(tk, tv, 0, note=str(e), placement=full)
        if not self.budget.over(devs):
            if self.ctx_size:  # the context asked for, with every layer offloaded
                return self._answer(target, full, "n_gpu_layers", devs, limited_by={"by": CAP_ALL}, capped_by=CAP_ALL)
            return self.fit(tk, tv, full, base)  # the training context fits: as today, capped by it
        try:
            return self.fit_placement(target, full)
        except GgufprofError as e:
            return FitResult(tk, tv, 0, note=str(e), placement=full)

    def judge(self, s: KVSettings) -> Judge:
        """Placements at ``s`` judged against the budget (split_search.Judge): the prediction alone, the
        guess (``guess``), the dry run (``total``)."""
        return Judge({BARE: lambda f: self.bare(s, f), GUESS: lambda f: self.guess(s, f),
                      REAL: lambda f: self.total(s, f)[1]}, self.budget.over)

    def _answer(self, s: KVSettings, flags: PlacementFlags, searched: str, devs: list[DeviceFootprint], *,
                limited_by: dict, next_step: str = "", next_total: dict | None = None,
                capped_by: str | None = None) -> FitResult:
        pred, _ = self.total(s, flags)
        return FitResult(s.cache_type_k, s.cache_type_v, s.ctx_size, pred.n_ctx_seq, pred, devs,
                         self.budget.headroom(devs), next_total or {}, capped_by, limited_by=limited_by, settings=s,
                         placement=flags, searched=searched, next_step=next_step)

    def _pinned(self, flags: PlacementFlags) -> PlacementFlags:
        """``flags`` with llama.cpp's default split (by free memory) written as the layer counts it
        gives each device, so that the answer's command reproduces it on any machine."""
        counts = layers_per_device(self.n_layer, flags, self.devices)
        return dataclasses.replace(flags, tensor_split=tuple(float(c) for c in counts)) if any(counts) else flags

    def fit_placement(self, s: KVSettings, full: PlacementFlags) -> FitResult:
        """The placement search at the context of ``s`` (which does not fit at ``full``), one for every
        case (measure/split_search.py): for a MoE model the fewest expert layers on the host, else the
        most layers on the devices (split by the search, or by the user's -ts), then part of one more
        layer. The devices' budgets decide the search (more on the host only helps them); host memory
        is checked at the answer, where it holds the least it can for the devices' budgets."""
        user_moe = self.flags.cpu_moe or self.flags.n_cpu_moe
        at = dataclasses.replace(full, tensor_split=self.flags.tensor_split)  # the user's -ts, or none: the search's
        moe = has_experts(self.model) and not user_moe
        search, found = self._best_split(at, moe, self.judge(s))
        if found is None:
            nothing = dataclasses.replace(at, n_gpu_layers=0)
            _, devs = self.total(s, nothing)
            return FitResult(s.cache_type_k, s.cache_type_v, 0, devices=devs, headroom=self.budget.headroom(devs),
                             placement=nothing, searched=",".join(search.searched_base()),
                             limited_by=limit(devs, self.budget),
                             note=f"nothing fits at n_ctx {s.ctx_size:,}: not even the output layer alone fits on "
                                  "the devices (give a smaller -c)")
        if found.next is None:  # every layer on the devices at this context, split as found
            if self.ctx_size:
                _, devs = self.total(s, found.flags)
                return self._answer(s, found.flags, found.searched, devs, limited_by={"by": CAP_ALL},
                                    capped_by=CAP_ALL)
            return self.fit(s.cache_type_k, s.cache_type_v, found.flags, s)
        return self._placed(s, found.flags, found.next, found.searched, found.next_step)

    def _best_split(self, at: PlacementFlags, moe: bool, judge: Judge) -> tuple[SplitSearch, SplitAnswer | None]:
        """The split search; for a MoE model twice, with the last layers' experts on the host
        (llama.cpp's fit's choice) and with the first ones' (-ncmoe), and the answer that keeps more
        on the devices (the first ones' at a tie: -ncmoe is the shorter command). Each answer includes
        its partial layer per device boundary (``SplitSearch.shift``, several devices only): the room
        a boundary's part makes on the next device takes expert layers back there only where those
        are on the host, so which end wins is known after it (three rpc-servers, 30B shape: the first
        layers' climb was higher, the last layers' answer 380 MiB more). With several devices that
        costs tens of loads a search, so the second is first searched on the guess alone
        (``Judge.guessing``) and loaded only if the guess does not put it below the first's answer."""
        best: tuple[SplitSearch, SplitAnswer | None] | None = None

        def standing(search: SplitSearch, found: SplitAnswer | None) -> tuple:
            return (found is not None, search.order(found.flags) if found else (0, 0), search.experts == FIRST)

        for experts in (LAST, FIRST) if moe else (FIRST,):
            if best is not None and len(self.devices) > 1:
                screen = SplitSearch(self.n_layer, self.devices, at, moe=moe, judge=judge.guessing(), experts=experts)
                if standing(screen, screen.solve()) < standing(*best):
                    continue
            search = SplitSearch(self.n_layer, self.devices, at, moe=moe, judge=judge, experts=experts)
            found = search.solve()
            if best is None or standing(search, found) > standing(*best):
                best = search, found
        return best

    def _placed(self, s: KVSettings, flags: PlacementFlags, nxt: PlacementFlags, searched: str,
                next_words: str) -> FitResult:
        """The answer of a placement search: its footprint, the next step's (over budget), and host
        memory checked."""
        _, devs = self.total(s, flags)
        _, nxt_devs = self.total(s, nxt)
        r = self._answer(s, flags, searched, devs, limited_by=limit(nxt_devs, self.budget), next_step=next_words,
                         next_total={d.device: d.total_bytes for d in nxt_devs})
        if HOST in self.budget.over(devs):
            r.ctx_size, r.note = 0, (f"nothing fits at n_ctx {s.ctx_size:,}: with the most layers the devices take "
                                     f"(-ngl {flags.n_gpu_layers}, -ncmoe {flags.n_cpu_moe}) host memory is over its "
                                     "budget, and "
                                     "fewer layers on the devices only add to it")
            r.limited_by = limit(devs, self.budget)
            r.smallest_budget = {d.device: d.total_bytes + self.budget.margin for d in devs
                                 if self.budget.of(d.device) is not None}
        return r

    def fit(self, tk: str, tv: str, flags: PlacementFlags | None = None, base: KVSettings | None = None) -> FitResult:
        """The largest context at a fixed placement (``flags``, default the fitter's)."""
        flags = flags or self.flags
        k_max, cap = ceiling(self.model, self.streams)
        ok: dict[int, tuple] = {}
        steps = lambda k: self.settings(k, tk, tv, base)  # noqa: E731

        def fits(k: int) -> bool:
            pred, devs = self.total(steps(k), flags)
            if self.budget.over(devs):
                return False
            ok[k] = (pred, devs)
            return True

        try:
            bound = last_true(1, k_max, lambda k: not self.budget.over(self.bare(steps(k), flags)))
            if bound <= 0 or not fits(1):
                _, devs = self.total(steps(1), flags)
                return FitResult(tk, tv, 0, devices=devs, headroom=self.budget.headroom(devs),
                                 note="nothing fits: the smallest context (256 cells per sequence) is over budget",
                                 limited_by=limit(devs, self.budget), placement=flags,
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
            result = FitResult(tk, tv, steps(lo).ctx_size, pred.n_ctx_seq, pred, devs,
                               self.budget.headroom(devs), capped_by=cap if lo == k_max else None,
                               settings=steps(lo), placement=flags)
            if lo < k_max:
                _, nxt = self.total(steps(lo + 1), flags)
                result.next_total = {d.device: d.total_bytes for d in nxt}
                result.limited_by = limit(nxt, self.budget)
                result.next_step = f"-c {steps(lo + 1).ctx_size}"
            else:
                result.limited_by = {"by": cap}
            return result
        except GgufprofError as e:
            return FitResult(tk, tv, 0, note=str(e), placement=flags)


def rank(r: FitResult) -> tuple:
    """How much an answer gives, for comparing answers: fitting at all, then more context, then more
    layers on the devices, then fewer expert layers on the host, then more weight and cache bytes on
    the devices (part of a layer moved by -ot)."""
    p = r.placement or PlacementFlags()
    on_devices = sum(d.weights_bytes + d.kv_bytes + d.recurrent_bytes for d in r.devices if d.device != HOST)
    return (r.ctx_size > 0, r.ctx_size, 1 << 30 if p.n_gpu_layers < 0 else p.n_gpu_layers, -p.n_cpu_moe, on_devices)


def _better(a: FitResult, b: FitResult) -> bool:
    return rank(a) > rank(b)


def ceiling(model: ModelInfo, streams: int) -> tuple[int, str]:
    """The largest number of STEP-cell steps per stream a search may try, and what sets it: the
    training context, the search ceiling when the model states none (n_ctx_train 0), or llama.cpp's
    uint32 n_ctx (padded to 256, so at most UINT32_MAX - 256 before padding), whichever is lowest."""
    train = model.n_ctx_train
    k, cap = (max(1, train // STEP), CAP_TRAIN) if train else (SEARCH_CEILING // STEP, CAP_SEARCH)
    k_uint = (UINT32_MAX - CTX_PAD) // (STEP * streams)
    return (k_uint, CAP_UINT32) if k_uint < k else (k, cap)


def memory_bound(model: ModelInfo, budget: Budget, k_max: int, settings, flags: PlacementFlags | None = None,
                 offload_kqv: bool = True, devices: list[OffloadDevice] | None = None,
                 cpu_bufts: dict[str, str] | None = None) -> int:
    """The largest k <= ``k_max`` whose footprint without compute buffers (weights, KV, recurrent
    state, output; exact from the prediction) fits the budget minus the margin on every budgeted
    device; 0 when even k = 1 does not. The compute buffers only add to it, so no larger context can
    fit: the search never needs to ask the dry run beyond it. ``settings(k)`` gives k's KVSettings.
    A binary search over the prediction alone (pure Python, no llama.cpp)."""
    def under(k: int) -> bool:
        pred = predict(model, settings(k))
        p = place(model, pred, offload_kqv=offload_kqv, cpu_bufts=cpu_bufts, flags=flags or PlacementFlags(),
                  devices=devices or [])
        return not budget.over(footprint(model, pred, p, {}))

    return max(0, last_true(1, k_max, under))


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
    return {"device": dev.device, "by": part, "bytes": getattr(dev, attr), "total_bytes": dev.total_bytes,
            "over_bytes": dev.total_bytes - (budget.of(dev.device) - budget.margin)}


def solve_all(fitter: Fitter, pairs: list[tuple[str, str]], progress: Progress | None = None) -> list[FitResult]:
    """Each pair's answer in turn (one dry-run worker for all); ``progress`` hears of every
    configuration the dry run is asked about (pairs done so far, of all, and what is asked now)."""
    if progress is not None:
        progress(0, len(pairs), "starting llama.cpp's dry run (loading the model's metadata)")
    out = []
    for i, (tk, tv) in enumerate(pairs):
        if progress is not None:
            fitter.on_step = lambda s, f, i=i: progress(i, len(pairs), f"{s.cache_type_k}/{s.cache_type_v}: dry run "
                                                                     f"at n_ctx {s.ctx_size:,}, -ngl {f.n_gpu_layers}"
                                                                     + (f" -ncmoe {f.n_cpu_moe}" if f.n_cpu_moe else ""))
        out.append(fitter.solve(tk, tv))
    return out


def fit_all(model: ModelInfo, pairs: list[tuple[str, str]], base: KVSettings, budget: Budget,
            flags: PlacementFlags | None = None, offload_kqv: bool = True, *, search_placement: bool = False,
            ctx_size: int | None = None, progress: Progress | None = None) -> list[FitResult]:
    """Every pair's answer (api.fit uses the Fitter itself, to resolve per-device budgets on its
    device list and count its loads)."""
    if budget.host is None and not budget.offload:
        raise GgufprofError("give a budget: --memory SIZE (host) and/or --vram SIZE (per offload device)")
    fitter = Fitter(model, base, budget, flags, offload_kqv, search_placement=search_placement, ctx_size=ctx_size)
    try:
        return solve_all(fitter, pairs, progress)
    finally:
        fitter.close()


def _measured_here(flags: PlacementFlags, r: FitResult) -> bool:
    """An answer whose memory one process's measured growth judges (a one-configuration sweep: RSS, and
    VRAM from NVML): no rpc-server (its memory is another process's) and at most one offload device
    (the VRAM growth is one figure per process). -ot, -ncmoe and -cmoe on one GPU are measured so too:
    the logged buffers would only repeat the prediction, the GPU's runtime allocations (cuBLAS
    workspace, the CUDA backend's pools) are in no buffer. Anything else is verified by the buffers a
    real load logs per device."""
    return not flags.rpc and sum(1 for d in r.devices if d.device != HOST) <= 1


def verify(model: ModelInfo, results: list[FitResult], budget: Budget, offload_kqv: bool, work_dir: Path,
           progress: Progress | None = None) -> list[dict]:
    """Each answer created for real. On the host and at most one local offload device (``_measured_here``):
    a one-configuration sweep (a batch of n_ubatch tokens decoded), measured RSS / VRAM growth beside
    the predicted total; it fits when the worker ran and its peak RSS (Python and llama.cpp code
    included) stays within the host budget, and its VRAM growth after the decode within the GPU
    budget. Several devices or RPC servers: the model loaded for real with the placement and the
    context created, every buffer llama.cpp logs summed per device (model, KV/RS, compute, output); it
    fits when each budgeted device's logged total is within its budget minus the margin."""
    out = []
    for i, r in enumerate(results):
        if r.ctx_size == 0 or r.settings is None:
            out.append({"fits": None, "note": "nothing to verify"})
            continue
        flags = r.placement or PlacementFlags()
        if progress is not None:
            progress(i, len(results), f"--verify {r.cache_type_k}/{r.cache_type_v}: n_ctx {r.ctx_size:,} created "
                                      "for real")
        if not _measured_here(flags, r):
            out.append(verify_logged(model, r, budget, offload_kqv))
            continue
        rs = RunSettings(r.settings, default_threads(), n_prompt=min(r.settings.ubatch_size, r.n_ctx_seq), n_gen=4,
                         repetitions=1, offload_kqv=offload_kqv, placement=flags)
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
            gpu_fits = all(budget.of(d.device) is None or entry["vram_growth"] <= budget.of(d.device)
                           for d in r.devices if d.device != HOST)
        entry["fits"] = (rec.status == "ok" and gpu_fits
                         and (budget.host is None or (rss.get("peak") or 0) <= budget.host))
        out.append(entry)
    return out


def logged_per_device(log) -> dict[str, int]:
    """Every buffer a real load and context logged (results/llama_log.py's LlamaLog), summed per
    device: model buffers (CPU_Mapped and CPU_REPACK are host memory), KV and recurrent buffers,
    compute and output buffers; host buffer types (CPU, CUDA_Host) under CPU."""
    from ..memory.footprint import compute_device
    from ..results.llama_log import mib_bytes

    out: dict[str, int] = {}
    lines = [*log.model_buffers_mib.items(), *log.compute_buffers_mib.items(), *log.output_buffers_mib.items(),
             *(kv for c in log.caches for kv in c.buffers_mib.items())]
    for buft, mib in lines:
        dev = compute_device(buft)
        out[dev] = out.get(dev, 0) + mib_bytes(mib)
    return out


def verify_logged(model: ModelInfo, r: FitResult, budget: Budget, offload_kqv: bool) -> dict:
    """One answer loaded for real at its placement (the probe worker: weights on the RPC servers or
    GPUs, a context of its settings created and freed), its logged buffers per device beside the
    predicted totals."""
    from dataclasses import asdict

    from ..results.llama_log import parse_log
    from .workers import Worker

    with Worker("probe_worker") as w:
        loaded = w.ask({"op": "load", "model": str(model.path), "placement": r.placement.to_dict()}, timeout=600)
        if not loaded.ok or "load_error" in (loaded.result or {}):
            return {"status": "failed", "fits": False, "reason": loaded.failure or loaded.result["load_error"]}
        ctx = w.ask({"op": "context", "settings": asdict(r.settings), "offload_kqv": offload_kqv}, timeout=600)
    if not ctx.ok or not ctx.result["ok"]:
        return {"status": "failed", "fits": False, "reason": ctx.failure or ctx.result["error"]}
    logged = logged_per_device(parse_log(loaded.result["log"] + "\n" + ctx.result["log"]))
    limits = {dev: budget.of(dev) - budget.margin for dev in logged if budget.of(dev) is not None}
    return {"status": "ok", "reason": None, "how": "real load, logged buffers per device",
            "logged_bytes": logged, "predicted_bytes": {d.device: d.total_bytes for d in r.devices},
            "limit_bytes": limits, "fits": all(logged[dev] <= lim for dev, lim in limits.items())}
