"""The sweep grid: which configurations to run, and which to skip with a reason (pure).

Axes follow llama.cpp's own flags. Expansion rules a user would expect: ``swa_full`` varies only on
models with SWA layers, ``kv_unified`` only when more than one sequence shares the context.
Configurations llama.cpp refuses (a quantized V cache with flash attention off) are kept as
skipped records with llama.cpp's reason, so a report shows what was not measured and why.
"""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass, field

from ..errors import GgufprofError
from ..memory.settings import CTX_PAD, UINT32_MAX, KVSettings
from ..flags import AUTO
from ..memory.placement import PlacementFlags
from ..memory.predict import bytes_per_token
from ..results.run_settings import RunSettings, skip_reason
from ..model.model_info import ModelInfo


@dataclass
class GridSpec:
    """The axes of a sweep; an empty ``ctx_sizes`` or ``depths`` takes the default grid (fill_defaults)."""

    cache_types: list[tuple[str, str]]
    ctx_sizes: list[int]
    swa_full: list[bool]
    parallel: list[int]
    kv_unified: list[bool]
    flash_attn: list[str]
    depths: list[int]
    threads: int
    n_prompt: int = RunSettings.n_prompt
    n_gen: int = RunSettings.n_gen
    repetitions: int = RunSettings.repetitions
    batch_size: int = KVSettings.batch_size
    ubatch_size: int = KVSettings.ubatch_size
    n_gpu_layers: list[int] = field(default_factory=lambda: [0])
    offload_kqv: list[bool] = field(default_factory=lambda: [True])
    # every other placement flag (-sm -ts -mg -dev --rpc -ot -cmoe -ncmoe -ncffn --no-repack), the same in
    # every configuration; its n_gpu_layers is replaced by each value of the n_gpu_layers axis
    placement: PlacementFlags = field(default_factory=PlacementFlags)

    @classmethod
    def single(cls, rs: RunSettings) -> "GridSpec":
        """The grid of one configuration (a deployment check, a fit answer's verification)."""
        kv = rs.kv
        return cls([(kv.cache_type_k, kv.cache_type_v)], [kv.ctx_size], [kv.swa_full], [kv.parallel], [kv.kv_unified],
                   [kv.flash_attn], [rs.depth], rs.threads, rs.n_prompt, rs.n_gen, rs.repetitions, kv.batch_size,
                   kv.ubatch_size, [rs.n_gpu_layers], [rs.offload_kqv], rs.placement)

    def validate(self) -> None:
        """Values llama.cpp refuses whatever the model are refused up front (one error, exit 2),
        never swept as a grid of skipped records; each value through KVSettings, the one home of
        those rules."""
        for ctx in self.ctx_sizes:
            KVSettings(ctx_size=ctx).validate()
        for par in self.parallel:
            KVSettings(parallel=par).validate()
        KVSettings(batch_size=self.batch_size, ubatch_size=self.ubatch_size).validate()
        for fa in self.flash_attn:
            KVSettings(flash_attn=fa).validate()
        for tk, tv in self.cache_types:
            KVSettings(cache_type_k=tk, cache_type_v=tv, flash_attn="on").validate()
        for flag, values, lo in (("--depth", self.depths, 0), ("--n-prompt", [self.n_prompt], 0),
                                 ("--n-gen", [self.n_gen], 0), ("--repetitions", [self.repetitions], AUTO),
                                 ("--threads", [self.threads], 1), ("--n-gpu-layers", self.n_gpu_layers, -1)):
            for v in values:
                if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= UINT32_MAX:
                    raise GgufprofError(f"{flag} must be an integer from {lo} to {UINT32_MAX}, got {v!r}")


DEFAULT_CTX_MAX = 32768


def default_points(model: ModelInfo, n_tokens: int, mem_budget: int) -> tuple[list[int], list[int]]:
    """The default grid's context size and depths: where speed and memory differ.

    Memory depends on the context size, but the prediction covers every size exactly without a run
    (``estimate``); speed depends on how full the cache is (the depth), not on the size allocated. So
    one context -- min(n_ctx_train, 32768, what fits in ``mem_budget`` bytes of f16 KV) -- and two
    depths: 0 and a deep point, half of that context (where quantized K/V costs show, llama.cpp
    #21385), leaving room for the ``n_tokens`` timed after it."""
    limit = min(model.n_ctx_train or DEFAULT_CTX_MAX, DEFAULT_CTX_MAX)
    try:
        per_token = bytes_per_token(model, "f16")
    except GgufprofError:  # a memory we do not model: no estimate to cap the size with
        per_token = 0
    if per_token:
        limit = min(limit, int(mem_budget // per_token))
    ctx = max(limit // CTX_PAD * CTX_PAD, CTX_PAD, -(-n_tokens // CTX_PAD) * CTX_PAD)
    return [ctx], default_depths(ctx, n_tokens)


def default_depths(ctx_seq: int, n_tokens: int) -> list[int]:
    """Depth 0 and a deep point: half of one sequence's cells, in 256-cell steps, leaving room for
    the ``n_tokens`` timed after it (only 0 when there is no such room)."""
    deep = min(ctx_seq // 2, ctx_seq - n_tokens) // CTX_PAD * CTX_PAD
    return [0, deep] if deep > 0 else [0]


def fill_defaults(model: ModelInfo, spec: GridSpec, mem_budget: int | None = None) -> None:
    """The default grid where ``spec`` leaves an axis empty: one context size and its depths
    (``default_points``) within ``mem_budget`` bytes (default: half the memory available now).
    Given depths are kept; default depths that would not fit one sequence's cells are dropped."""
    if spec.ctx_sizes and spec.depths:
        return
    n_timed = max(spec.n_prompt, spec.n_gen)
    if mem_budget is None:
        import psutil

        mem_budget = psutil.virtual_memory().available // 2
    ctx_d, _ = default_points(model, n_timed + (max(spec.depths) if spec.depths else 0), mem_budget)
    spec.ctx_sizes = spec.ctx_sizes or ctx_d
    if not spec.depths:  # half the context actually swept (the smallest one, per sequence)
        spec.depths = default_depths(min(spec.ctx_sizes) // max(spec.parallel), n_timed)


def expand(model: ModelInfo, spec: GridSpec) -> list[tuple[RunSettings, str | None]]:
    """Every configuration of the grid, each with a skip reason or None, in the order they run.

    The cache type is the innermost axis: consecutive configurations differ only in their cache
    types, round-robin, so a slow period of the machine (another job, thermal throttling) lands on
    every cache type alike instead of making one of them look slow."""
    out = []
    swa_values = spec.swa_full if model.has_swa else [True]
    for ctx, swa, par, fa, depth, ngl, okqv in itertools.product(
        spec.ctx_sizes, swa_values, spec.parallel, spec.flash_attn, spec.depths, spec.n_gpu_layers, spec.offload_kqv,
    ):
        for uni in (spec.kv_unified if par > 1 else [False]):
            for tk, tv in spec.cache_types:
                kv = KVSettings(ctx, tk, tv, par, uni, swa, spec.batch_size, spec.ubatch_size, fa)
                rs = RunSettings(kv, spec.threads, spec.n_prompt, spec.n_gen, depth, spec.repetitions, okqv,
                                 dataclasses.replace(spec.placement, n_gpu_layers=ngl))
                out.append((rs, skip_reason(model, rs)))
    return out
