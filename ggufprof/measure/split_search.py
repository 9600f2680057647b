"""``fit``'s placement search over the offload devices (one or several): how many layers they take,
the fewest MoE expert layers left on the host, and one layer split at a boundary (``-ot`` of part of
its FFN), each device within its own budget. Every case takes the same steps and the same judge
(``Judge``); what differs is who splits the offloaded layers between several devices: this search
(no ``-ts``: each device's count, written as ``-ts``) or the user (``-ts`` proportions, kept as given:
src/llama-model.cpp ``load_tensors`` splits however many layers ``-ngl`` offloads by them, so only
-ngl moves). One device (one listed, or ``-sm none``: the main device alone) takes every offloaded layer.

The order is llama.cpp's own fit (common/fit.cpp, ``common_params_fit_impl``):

* Without a -ts, devices are filled back to front: the last device takes the output layer and the
  layers before it, as many as fit its budget; then the device before it, from where the last one
  stopped, and so on (step 3, "fill the back to front with dense layers"; load_tensors gives each
  device a contiguous slice, the output layer to the last one holding layers). llama.cpp's fit writes ``tensor_split[id] =
  n_layer`` of each device (``set_ngl_tensor_split_tbo``); so does this search, and it checks that
  llama.cpp's single-precision split points give each device exactly that many layers
  (memory/placement.py ``layers_per_device``).
* For a MoE model, every expert tensor on the host first (``LAYER_FRACTION_MOE``): the fewest layers
  whose experts stay in host memory with every layer on the devices; when even all of them there is
  over, the most layers (their experts on the host), then the fewest expert layers on the host at
  that split. Which layers' experts: the first ones (``--n-cpu-moe N``) or the last ones (one -ot
  entry, as llama.cpp's fit keeps its first layers whole), one search each (``experts``; fit keeps
  the answer with more on the devices).
* Then one layer more, in part (step 4, "try to fit at least part of one more layer"): the next layer's
  attention on a device and part of its FFN elsewhere (llama.cpp's ``LAYER_FRACTION_ATTN``, ``_UP``,
  ``_GATE``), in host memory or on the next device (its ``overflow_bufts``); for a MoE model also
  the experts of the boundary layer split the same way. llama.cpp tries these for MoE models only;
  here dense models get them too. Of the candidates, the one that keeps the most bytes on the devices
  and fits is the answer, and the one just above it (over a budget) its next step.
* With several devices and the search's split, each device boundary its own part (``shift``), front
  to back: the device takes as many of the next device's layers as it holds and part of one more, the
  rest of that layer's FFN left on the next device (llama.cpp's step 4 fills front to back with
  overflow to the next device), and the climb goes on from there. The climb alone leaves one part of
  a layer in the whole answer; llama.cpp's fit leaves one per device.

Where llama.cpp's fit measures each guess with a dry-run load (``get_memory_for_layers``), this search
bounds each step with the prediction alone (everything but the compute buffers, which only add),
guesses with the compute buffers the dry run gave for what each device holds (``KnownCompute``),
and asks the dry run where the guess puts each answer (``most``) and, above the rung, only of the
steps the guess lets through and of the step right above the answer (``highest``). Every answer is
exact whatever the guess said: it fits by the dry run, and its next step is over by it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable

from ..errors import GgufprofError
from ..flags import ALL_GPU_LAYERS as ALL_LAYERS, placement_words  # -ngl all: every layer and the output
from ..memory.footprint import HOST, DeviceFootprint
from ..memory.placement import (CPU, LAYER_FRACTION_ATTN, LAYER_FRACTION_GATE, LAYER_FRACTION_MOE, LAYER_FRACTION_UP,
                                LLM_FFN_EXPS_REGEX, OffloadDevice, Placement, PlacementFlags, ffn_block_regex,
                                layer_devices, layers_per_device)

BARE, GUESS, REAL = "prediction", "guess", "dry run"  # how a placement is judged: cheapest first
FIRST, LAST = "first", "last"  # which layers' experts a MoE search leaves on the host (SplitSearch.experts)
_LAST_HEAD = r"blk\.("  # the head of the last layers' experts pattern (last_experts_override)


def last_experts_override(n_layer: int, m: int) -> tuple[str, str]:
    r"""The last ``m`` layers' expert tensors on the host, as one -ot entry (the layers as an
    alternation: ``blk\.(46|47)`` + llm_ffn_exps' pattern), what llama.cpp's own fit does with
    LAYER_FRACTION_MOE for the layers after its full ones (common/fit.cpp, step 3)."""
    return _LAST_HEAD + "|".join(str(il) for il in range(n_layer - m, n_layer)) + ")" + LLM_FFN_EXPS_REGEX, CPU


def _is_last_experts(override: tuple[str, str]) -> bool:
    return override[0].startswith(_LAST_HEAD) and override[0].endswith(LLM_FFN_EXPS_REGEX)


DENSE_FRACTIONS = (LAYER_FRACTION_GATE, LAYER_FRACTION_UP, LAYER_FRACTION_ATTN)  # least moved first
EXPERT_FRACTIONS = (LAYER_FRACTION_GATE, LAYER_FRACTION_UP, LAYER_FRACTION_MOE)


@dataclass(frozen=True)
class Judge:
    """Whether a placement keeps the offload devices within their budgets, judged three ways, cheapest
    first (``how``): BARE, the prediction alone (everything but the compute buffers, which only add:
    a lower bound, so over means over); GUESS, with the compute buffers already known (a guess, never
    an answer); REAL, with the compute buffers of llama.cpp's dry run at that placement (a load of the
    model: llama-model.cpp ``load_tensors`` places the layers, ``llama_context::sched_reserve`` sizes
    each device's compute buffer). One judge for every question the placement search asks."""

    views: dict[str, Callable[[PlacementFlags], list[DeviceFootprint]]]  # BARE, GUESS, REAL -> footprint per device
    over: Callable[[list[DeviceFootprint]], list[str]]  # the budgeted devices over their budget (host memory too)

    def fits(self, flags: PlacementFlags, how: str, *, host: bool = False) -> bool:
        """Every offload device within its budget by ``how``; ``host``: host memory too (part of a
        layer moved to the host must leave it within its budget)."""
        over = self.over(self.views[how](flags))
        return not (over if host else [d for d in over if d != HOST])

    def guessing(self) -> "Judge":
        """This judge with the guess in the dry run's place: a search that loads nothing, to tell
        whether the same search with the dry run is worth its loads (never an answer)."""
        return Judge({**self.views, REAL: self.views[GUESS]}, self.over)


@dataclass(frozen=True)
class Held:
    """What one device holds at a placement, as far as its compute buffer goes: llama.cpp's scheduler
    gives a device the graph nodes whose weights (and KV) it holds (ggml-backend.cpp,
    ``ggml_backend_sched_split_graph``) and reserves its buffer for them (``sched_reserve``,
    src/llama-context.cpp), so a placement that gives a device the same layers and weights gives it,
    as a rule, the same compute buffer; ``pipelined``: every layer on several devices without -ot,
    where llama_context turns pipeline parallelism on (more copies of the graph's inputs: larger
    buffers, the same layers)."""

    layers: frozenset[int]  # layers 0..n_layer (the output layer) whose attention and KV it holds
    weights: int  # the weight bytes it holds (part of a layer moved by -ot changes them)
    pipelined: bool

    @classmethod
    def of(cls, placement: Placement, flags: PlacementFlags, device: str) -> "Held":
        """The device's share of ``placement`` (at ``flags``); the pipeline condition is
        llama_context's (n_devices > 1, every layer offloaded, -sm layer, KV offloaded, no override)."""
        pipelined = (len(placement.offload_devices) > 1 and all(placement.on_gpu) and flags.split_mode == "layer"
                     and placement.offload_kqv and not flags.all_overrides())
        weights = placement.host_weights if device == HOST else placement.weights_buffer.get(device, 0)
        return cls(frozenset(i for i, d in enumerate(placement.layer_device) if d == device), weights, pipelined)


class KnownCompute:
    """The compute buffers llama.cpp's dry run gave, per device and by what the device held (at one
    set of settings): GUESS's compute buffer for a device at a placement not asked yet. It is the one
    of the nearest holding with the same pipelining, among the device's own and -- for an offload
    device -- the other offload devices' (the same layers make the same graph on devices of one
    kind): the same holding first, then holding the output layer or not as it does, the most layers
    in common, the fewest apart, the device's own, the largest buffer. None for a device that holds
    nothing, or when nothing like it was asked (the prediction alone: a guess too low costs one load,
    which then teaches the next guess). A guess only steers the search: every answer and its next
    step are asked of the dry run."""

    def __init__(self, n_layer: int) -> None:
        self.output = n_layer  # the output layer's index in Held.layers
        self._seen: dict[str, dict[Held, int]] = {}

    def learn(self, device: str, held: Held, compute_bytes: int) -> None:
        self._seen.setdefault(device, {})[held] = compute_bytes

    def guess(self, device: str, held: Held) -> int:
        if not held.layers and not held.weights:
            return 0
        out = self.output in held.layers
        alike = [(h == held, (self.output in h.layers) == out, len(h.layers & held.layers), -len(h.layers ^ held.layers),
                  dev == device, b)
                 for dev, seen in self._seen.items() if dev == device or HOST not in (dev, device)
                 for h, b in seen.items() if h.pipelined == held.pipelined and h.layers]
        return max(alike)[-1] if alike else 0


@dataclass(frozen=True)
class SplitAnswer:
    """The placement found and its next step (more on the devices, over a budget by the dry run)."""

    flags: PlacementFlags
    next: PlacementFlags | None  # None: nothing is left on the host (every layer and expert on the devices)
    searched: str  # what was searched: "n_gpu_layers,tensor_split", with ",n_cpu_moe", ",override_tensor"
    next_step: str  # the next step in llama.cpp's flags


def last_true(lo: int, hi: int, test: Callable[[int], bool]) -> int:
    """The largest x in [lo, hi] with ``test(x)`` (true up to some x, false beyond); lo - 1 if none.
    A binary search, for cheap tests (the prediction alone); fit.py's searches use it too."""
    if hi < lo or not test(lo):
        return lo - 1
    a, b = lo, hi + 1
    while b - a > 1:
        mid = (a + b) // 2
        a, b = (mid, b) if test(mid) else (a, mid)
    return a


def most(lo: int, hi: int, ok: Callable[[int, str], bool]) -> int:
    """The largest x in [lo, hi] with ``ok(x, REAL)`` (true up to some x), lo - 1 if none, asking the
    dry run about as few x as the guess allows: bounded by the prediction (``ok(x, BARE)``, a lower
    bound of each footprint, so over means over), then, between the largest x known to fit and the
    smallest known over, the dry run is asked about the x the guess (``ok(x, GUESS)``, which learns
    from every load) puts last -- two loads when it is right, the answer and its next step, which the
    answer needs anyway; after two guesses in a row the dry run contradicted, the middle (a binary
    search, so that a poor guess costs a few loads more, not a linear walk)."""
    upper = last_true(lo, hi, lambda x: ok(x, BARE))
    a, b = lo - 1, upper + 1  # a fits (lo - 1: none known yet); b is over (upper + 1: by the prediction)
    misses = 0
    while b - a > 1:
        if misses >= 2:
            x = (a + b) // 2
        else:
            x = min(max(last_true(a + 1, b - 1, lambda y: ok(y, GUESS)), a + 1), b - 1)
        guessed = ok(x, GUESS)
        if ok(x, REAL):
            a = x
        else:
            b = x
        misses = 0 if (a == x) == guessed else misses + 1
    return a


class SplitSearch:
    """The search at one context over ``devices`` (one or more), for the placement flags ``at`` (the
    user's, -ngl left to the search), each placement judged by ``judge``.

    Who splits the offloaded layers between several devices: the search (``at`` without a -ts: each
    device's layer count, written as -ts, filled back to front as common/fit.cpp does), or the user
    (``at.tensor_split``: proportions, by which llama.cpp splits however many layers -ngl offloads --
    src/llama-model.cpp ``load_tensors``, ``splits``; the search then moves -ngl alone and the answer
    keeps that -ts). One device (one listed, or ``-sm none``: llama.cpp keeps the main GPU alone,
    ``llama_prepare_model_devices`` in src/llama.cpp) takes every offloaded layer either way.

    The rung (whole layers and whole expert layers: ``rung``) is counted by the dry run, each count
    from the guess (``most``); above it (``climb``) the dry run is asked of the steps the guess lets
    through, from the top, and of the step right above the one that fits, whatever the guess said."""

    def __init__(self, n_layer: int, devices: list[OffloadDevice], at: PlacementFlags, *, moe: bool, judge: Judge,
                 experts: str = FIRST):
        """``experts``: which layers' experts a MoE search moves to the host -- FIRST, the first m
        (``-ncmoe m``, the flag users type), or LAST, the last m (one -ot entry), as llama.cpp's fit
        keeps its first layers whole. They are different bytes where a release quantizes some layers'
        experts more finely (Q4_K_M's Q6_K ffn_down_exps in the first and last eighth and every third
        layer), so ``fit`` asks both and keeps what holds more on the devices."""
        self.n, self.devices, self.at, self.moe, self.judge = n_layer, devices, at, moe, judge
        self.experts = experts
        self.user_split = len(devices) > 1 and any(at.tensor_split)  # the user's -ts: only -ngl moves

    # --- judging one placement ----------------------------------------------------------------------

    def fits(self, flags: PlacementFlags, how: str) -> bool:
        return self.judge.fits(flags, how)

    def on_devices(self, flags: PlacementFlags) -> int:
        """Bytes the prediction puts on the offload devices (weights, KV, recurrent state)."""
        return sum(d.total_bytes for d in self.judge.views[BARE](flags) if d.device != HOST)

    def order(self, flags: PlacementFlags) -> tuple[int, int]:
        """How far up the search a placement is: the bytes it keeps on the offload devices, then, at
        the same bytes, a layer whole above the same layer with part of its FFN on the next device (a
        move between devices keeps the bytes there), so that the step above an answer is never a tie."""
        return self.on_devices(flags), -self.parts(flags)

    def parts(self, flags: PlacementFlags) -> int:
        """The -ot entries of ``flags`` that move part of a layer (the steps' own): not the user's, nor
        the last layers' experts (a whole step of the LAST search)."""
        return sum(1 for o in flags.overrides if o not in self.at.overrides and not _is_last_experts(o))

    # --- placements ---------------------------------------------------------------------------------

    def ngl(self, at: PlacementFlags, x: int) -> PlacementFlags:
        """``at`` with ``x`` layers offloaded (-ngl all for every layer and the output), split as ``at``
        says (the user's -ts, or one device)."""
        return dataclasses.replace(at, n_gpu_layers=ALL_LAYERS if x >= self.n + 1 else x)

    def split(self, at: PlacementFlags, counts: list[int] | tuple[int, ...]) -> PlacementFlags:
        """``at`` with ``counts[d]`` layers on device d (-ngl their sum, -ts the counts), checked
        against load_tensors' split points (layers_per_device)."""
        n = sum(counts)
        several = n and len(self.devices) > 1  # one device takes every offloaded layer: no -ts to write
        ngl = ALL_LAYERS if n == self.n + 1 and not several else n  # every layer on one device: -ngl all
        ts = tuple(float(c) for c in counts) if several else () if len(self.devices) > 1 else at.tensor_split
        flags = dataclasses.replace(at, n_gpu_layers=ngl, tensor_split=ts)
        if (got := layers_per_device(self.n, flags, self.devices)) != tuple(counts):
            raise GgufprofError(f"-ts {','.join(map(str, counts))}: llama.cpp's split points give "
                                f"{','.join(map(str, got))} layers per device")
        return flags

    def counts(self, flags: PlacementFlags) -> tuple[int, ...]:
        return layers_per_device(self.n, flags, self.devices)

    def searched_base(self) -> list[str]:
        """What every answer searched: the layers, and with several devices and no -ts their split."""
        return ["n_gpu_layers"] + (["tensor_split"] if len(self.devices) > 1 and not self.user_split else [])

    def moe_at(self, m: int) -> PlacementFlags:
        return self.with_moe(self.at, m)

    def with_moe(self, flags: PlacementFlags, m: int) -> PlacementFlags:
        """``flags`` with ``m`` layers' experts on the host: the first m (-ncmoe), or the last m."""
        if self.experts == FIRST:
            return dataclasses.replace(flags, n_cpu_moe=m)
        kept = tuple(o for o in flags.overrides if not _is_last_experts(o))
        return dataclasses.replace(flags, overrides=kept + ((last_experts_override(self.n, m),) if m else ()))

    def moe_count(self, flags: PlacementFlags) -> int:
        """How many layers' experts ``flags`` leaves on the host (``with_moe``'s m)."""
        if self.experts == FIRST:
            return flags.n_cpu_moe
        last = next((o for o in flags.overrides if _is_last_experts(o)), None)
        return 0 if last is None else last[0][len(_LAST_HEAD):].split(")")[0].count("|") + 1

    def fill(self, at: PlacementFlags, how: str, last: int | None = None, every: bool = False) -> tuple[int, ...]:
        """Layers per device, back to front, each device taking the most that keep every offload
        device within budget by ``how`` (common/fit.cpp step 3); ``last``: the last device's count
        fixed (the one that holds the output layer); ``every``: only whether every layer fits matters,
        so the first device is asked of all the layers left alone (none when they do not fit)."""
        nd = len(self.devices)
        counts = [0] * nd
        left = self.n + 1
        if last is not None:
            counts[-1], left = last, left - last
        for d in reversed(range(nd - (last is not None))):
            def ok(k: int, judge: str = how, d: int = d) -> bool:
                trial = list(counts)
                trial[d] = k
                return not any(trial) or self.fits(self.split(at, trial), judge)  # none: the devices hold nothing

            if every and d == 0:
                counts[d] = left if ok(left, BARE) and ok(left, how) else 0
            else:
                counts[d] = max(most(0, left, lambda k, how: ok(k, how)) if how == REAL else last_true(0, left, ok), 0)
            left -= counts[d]
            if not left:
                break
        return tuple(counts)

    def best_fill(self, at: PlacementFlags) -> tuple[int, ...]:
        """``fill``, and fill again with fewer layers on the last device: the output layer's device
        also holds the logits' compute buffer, so a device before it may take more layers than the
        ones the last device gives up. The most layers, then the most weight and cache bytes on the
        devices, then the most bytes there with the compute buffers (gemma3-swa on two 7 MiB devices:
        2 + 1 layers put the same layers there as 0 + 3, and more of the graph); a count whose fill by
        the prediction alone (a bound) cannot beat the best is not asked of the dry run."""
        def score(counts: tuple[int, ...], how: str = REAL) -> tuple[int, int, int]:
            flags = self.split(at, counts)
            devices = (sum(d.total_bytes for d in self.judge.views[REAL](flags) if d.device != HOST) if how == REAL
                       else 1 << 62)  # compute buffers unknown: the bound does not decide a tie
            return sum(counts), self.on_devices(flags), devices

        best = self.fill(at, REAL)
        for k in range(best[-1] - 1, -1, -1):
            if score(self.fill(at, BARE, last=k), BARE) <= score(best):
                continue
            if score(counts := self.fill(at, REAL, last=k)) > score(best):
                best = counts
        return best

    def every_layer(self, at: PlacementFlags, how: str) -> PlacementFlags | None:
        """Every layer on the devices at ``at`` (its experts as ``at`` says) within the budgets by
        ``how``, split by the search or the user; None when no split of them fits."""
        if self.user_split:
            return self.ngl(at, self.n + 1) if self.fits(self.ngl(at, self.n + 1), how) else None
        counts = self.fill(at, how, every=True)
        return self.split(at, counts) if sum(counts) == self.n + 1 else None

    def most_layers(self, at: PlacementFlags) -> PlacementFlags:
        """The most layers on the devices within the budgets by the dry run (``best_fill``, or -ngl with
        the user's -ts); no layer at all when not even one fits."""
        if self.user_split:  # -ngl 0 fits without asking: the devices hold nothing
            return self.ngl(at, max(most(1, self.n + 1, lambda x, how: self.fits(self.ngl(at, x), how)), 0))
        return self.split(at, self.best_fill(at))

    def _targets(self, d: int) -> list[str]:
        """Where part of a layer on device d may go: host memory, or the next device (llama.cpp's
        ``overflow_bufts``)."""
        return [CPU] + ([self.devices[d + 1].buft] if d + 1 < len(self.devices) else [])

    def _wholes(self, rung: PlacementFlags, counts: tuple[int, ...]) -> list[PlacementFlags]:
        """``rung`` with one more whole layer on the devices: with the search's split, on a device that
        can take it without moving the others (the first holding layers, or one before it; with none
        yet, any: the output layer); with the user's, -ngl one more (llama.cpp's split points then
        place it, and may move others)."""
        if self.user_split:
            return [self.ngl(rung, sum(counts) + 1)]
        first = next((d for d, c in enumerate(counts) if c), len(counts) - 1)
        out = []
        for d in range(first + 1):
            trial = list(counts)
            trial[d] += 1
            out.append(self.split(rung, trial))
        return out

    def steps(self, rung: PlacementFlags) -> list[PlacementFlags]:
        """The placements one step above ``rung``: the next layer whole on the devices (``_wholes``) or
        in part (its attention there, part of its FFN in host memory or on the next device); for a MoE
        model with some offloaded layers' experts on the host, the last of those layers' experts back
        on the devices, whole or in part. A part is below its whole (``order``), so the highest step
        is a whole one: an answer in part always has a step above it."""
        out: list[PlacementFlags] = []
        counts = self.counts(rung)
        start = self.n + 1 - sum(counts)
        if start > 0:
            il = start - 1  # the layer before the first offloaded one (the output layer first: no FFN)
            for whole in self._wholes(rung, counts):
                out.append(whole)
                if il < self.n:
                    d = _device_of(self.n, whole, self.devices, il)
                    for fraction in DENSE_FRACTIONS + ((LAYER_FRACTION_MOE,) if self.moe else ()):
                        # a part of the layer, less than it whole: an -ot to the next device placed before
                        # -ncmoe's patterns would also take the experts -ncmoe keeps on the host
                        out += [f for t in self._targets(d)
                                if self.order(f := _moved(whole, il, fraction, t)) < self.order(whole)]
        m = self.moe_count(rung)
        if self.moe and sum(counts) and (m > start if self.experts == FIRST else m > 0):
            il = m - 1 if self.experts == FIRST else self.n - m  # the layer whose experts come back next
            back = self.with_moe(rung, m - 1)
            d = _device_of(self.n, back, self.devices, il)
            out.append(back)
            for fraction in EXPERT_FRACTIONS:
                out += [_moved(back, il, fraction, t) for t in self._targets(d)
                        if not (fraction == LAYER_FRACTION_MOE and t == CPU)]  # that one is -ncmoe m
        return list(dict.fromkeys(out))

    # --- the search ---------------------------------------------------------------------------------

    def rung(self) -> PlacementFlags:
        """The whole layers and expert layers, in llama.cpp's fit order, each count by the dry run
        (``most``: the prediction's bound, the guess, then the dry run from it): for a MoE model the
        fewest expert layers on the host with every layer on the devices; else the most layers (for a
        MoE model with every expert on the host), and the fewest expert layers on the host there."""
        n = self.n
        if self.moe:
            x = most(0, n, lambda x, how: self.every_layer(self.moe_at(n - x), how) is not None)
            if x >= 0:
                return self.every_layer(self.moe_at(n - x), REAL)
        rung = self.most_layers(self.moe_at(n) if self.moe else self.at)
        if self.moe and sum(self.counts(rung)):  # the layers on the devices may take some of their experts back
            x = most(0, n, lambda x, how: self.fits(self.with_moe(rung, n - x), how))
            rung = self.with_moe(rung, n - max(x, 0))
        return rung

    def highest(self, above: list[PlacementFlags]) -> int:
        """The index of the highest of ``above`` (in ``order``) that fits by the dry run with host
        memory within its budget too (a part of a layer moved to the host must leave it within), -1
        for none, the one after it over: the dry run is asked, from the top, of each the guess lets
        through, then of the step above the one found, whatever the guess said of it."""
        i = next((i for i in reversed(range(len(above)))
                  if self.judge.fits(above[i], BARE, host=True) and self.judge.fits(above[i], GUESS, host=True)
                  and self.judge.fits(above[i], REAL, host=True)), -1)
        while i + 1 < len(above) and self.judge.fits(above[i + 1], BARE, host=True) \
                and self.judge.fits(above[i + 1], REAL, host=True):
            i += 1
        return i

    def climb(self, rung: PlacementFlags) -> tuple[PlacementFlags, PlacementFlags | None, PlacementFlags]:
        """From a rung that fits, one step at a time: the highest step above it that fits; a whole one
        (a layer or an expert layer, the rung's own parts kept) is the next rung, climbed from again;
        part of a layer, or none, is the answer. Returns the answer, the step above it (over a budget
        by the dry run; None when nothing is left on the host) and the last rung (whole steps only)."""
        while True:
            above = sorted((f for f in self.steps(rung) if self.order(f) > self.order(rung)), key=self.order)
            i = self.highest(above)
            if i >= 0 and self.parts(above[i]) <= self.parts(rung):
                rung = above[i]
                continue
            return (above[i] if i >= 0 else rung), (above[i + 1] if i + 1 < len(above) else None), rung

    def shift(self, answer: PlacementFlags, nxt: PlacementFlags | None,
              rung: PlacementFlags) -> tuple[PlacementFlags, PlacementFlags | None]:
        """Each device boundary, front to back, moved forward and climbed from again (llama.cpp's
        fit, step 4, "filling them front-to-back with overflow to next device"): device d takes as many
        whole layers of device d+1's as its budget holds, then the attention (and up to the gate) of
        the next one, whose rest of the FFN stays on d+1 (``overflow_bufts[id]`` is the next device's
        buffer type). The same bytes on the devices, moved forward: the room it makes on d+1 may
        take an expert layer, or part of one, back there, or more of d+2's layers at the next
        boundary. The climb leaves one part of a layer in an answer; this gives each device its own
        (Qwen3-30B-A3B's shape on 6 + 4 GiB: llama.cpp moves layer 16's attention to the first
        device, which lets the second keep layer 23 nearly whole). Each boundary moves from the last
        rung (``climb``'s whole steps), the part with the first fraction the dry run lets fit, most
        moved first, and is gone on from where the climb from it keeps at least as many bytes on the
        devices (the room a boundary makes may only pay at the next one). The answer is the highest
        (``order``) of those and the climb's own."""
        if self.user_split or len(self.devices) < 2:
            return answer, nxt
        best = answer, nxt
        for d in range(len(self.devices) - 1):
            climbs = [self.climb(moved) for moved in self._forward(rung, d)]
            if climbs and self.on_devices((found := max(climbs, key=lambda c: self.order(c[0])))[0]) \
                    >= self.on_devices(answer):  # gone on from, even at a tie
                answer, nxt, rung = found
                best = max(best, (answer, nxt), key=lambda a: self.order(a[0]))
        return best

    def _forward(self, rung: PlacementFlags, d: int) -> list[PlacementFlags]:
        """``rung`` with device d+1's first layers moved to device d: as many whole as fit by the dry
        run (``most``: k), then part of the next (``DENSE_FRACTIONS``, the first that fits, its rest
        on d+1), and the same with k - 1 whole (a part where the last whole layer was can leave more
        room to climb with: qwen3moe on 16 + 24 MiB); k whole alone when no part fits after them.
        Device d+1 keeps a layer (the last device: the output layer and one more)."""
        counts = list(self.counts(rung))
        first = self.n + 1 - sum(counts) + sum(counts[:d + 1])  # device d+1's first layer

        def take(k: int) -> PlacementFlags | None:
            c = list(counts)
            c[d], c[d + 1] = c[d] + k, c[d + 1] - k
            try:
                return self.split(rung, c)
            except GgufprofError:  # llama.cpp's split points cannot give these counts: no such step
                return None

        def part(k: int) -> PlacementFlags | None:  # k whole, then part of the next layer
            base = take(k + 1)
            parts = [] if base is None else [_moved(base, first + k, fraction, self.devices[d + 1].buft)
                                             for fraction in DENSE_FRACTIONS]
            return next((f for f in parts if all(self.judge.fits(f, how, host=True) for how in (BARE, GUESS, REAL))),
                        None)

        most_whole = min(counts[d + 1], self.n - first) - 1  # leave d+1 a layer to split (not the output)
        if most_whole < 0:
            return []
        k = max(most(0, most_whole, lambda k, how: (f := take(k)) is not None and self.fits(f, how)), 0)
        out = [f for f in (part(k), part(k - 1) if k else None) if f is not None]
        return out or ([f] if k and (f := take(k)) is not None else [])

    def climbed(self) -> tuple[PlacementFlags, PlacementFlags | None, PlacementFlags]:
        """The rung, then the steps above it (``climb``): the answer before ``shift``."""
        return self.climb(self.rung())

    def solve(self, climbed: tuple[PlacementFlags, PlacementFlags | None, PlacementFlags] | None = None
              ) -> SplitAnswer | None:
        """The placement that keeps the most on the devices within every budget (``climbed``, or the
        one given, then a part of a layer at each device boundary: ``shift``), None when not even the
        output layer fits."""
        answer, nxt = self.shift(*(climbed or self.climbed()))
        counts = self.counts(answer)
        if not sum(counts):
            return None
        searched = self.searched_base()
        if self.moe:
            if sum(counts) == self.n + 1:  # every layer is on the devices: only the experts moved
                searched.remove("n_gpu_layers")
            searched.append("n_cpu_moe" if self.experts == FIRST else "override_tensor")
        if len(answer.overrides) > len(self.at.overrides) and "override_tensor" not in searched:
            searched.append("override_tensor")
        return SplitAnswer(answer, nxt, ",".join(searched), placement_words(nxt, self.at) if nxt is not None else "")

def _moved(flags: PlacementFlags, il: int, fraction: str, buft: str) -> PlacementFlags:
    """``flags`` with part of layer ``il``'s FFN (``fraction``) overridden to ``buft``, after the -ot
    entries already there (llama.cpp takes the first pattern that matches)."""
    return dataclasses.replace(flags, overrides=flags.overrides + ((ffn_block_regex(il, fraction), buft),))


def _device_of(n_layer: int, flags: PlacementFlags, devices: list[OffloadDevice], il: int) -> int:
    """The index of the device that holds layer ``il`` at ``flags`` (layer_devices)."""
    dev = layer_devices(n_layer, flags, devices)[il]
    if dev is None:
        raise GgufprofError(f"layer {il} is not offloaded at -ngl {flags.n_gpu_layers}")
    return next(i for i, d in enumerate(devices) if d is dev)
