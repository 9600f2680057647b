"""The sweep grid: which configurations to run, and which to skip with a reason (pure).

Axes follow llama.cpp's own flags. Expansion rules a user would expect: ``swa_full`` varies only on
models with SWA layers, ``kv_unified`` only when more than one sequence shares the context.
Configurations llama.cpp refuses (a quantized V cache with flash attention off) are kept as
skipped records with llama.cpp's reason, so a report shows what was not measured and why.
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass, field

from ..errors import GgufprofError
from ..memory.settings import UINT32_MAX, KVSettings
from ..results.noise import AUTO
from ..memory.predict import bytes_per_token, resolved, validate
from ..model.model_info import ModelInfo


@dataclass(frozen=True)
class RunSettings:
    """One configuration: the cache settings plus how it is exercised."""

    kv: KVSettings
    threads: int
    n_prompt: int = 512
    n_gen: int = 128
    depth: int = 0
    repetitions: int = 3
    n_gpu_layers: int = 0
    offload_kqv: bool = True
    repack: bool = True  # llama_model_params.use_extra_bufts: repacked CPU weights (AMX, ...)

    @property
    def id(self) -> str:
        k = self.kv
        return (f"ctk={k.cache_type_k},ctv={k.cache_type_v},c={k.ctx_size},np={k.parallel},"
                f"kvu={int(k.kv_unified)},swa_full={int(k.swa_full)},fa={k.flash_attn},b={k.batch_size},"
                f"ub={k.ubatch_size},t={self.threads},ngl={self.n_gpu_layers},nkvo={int(not self.offload_kqv)},"
                f"pp={self.n_prompt},tg={self.n_gen},d={self.depth},"
                f"r={'auto' if self.repetitions == AUTO else self.repetitions}"
                + ("" if self.repack else ",repack=0"))

    def to_dict(self) -> dict:
        d = asdict(self)
        kv = d.pop("kv")
        return {**kv, **d}

    @classmethod
    def from_dict(cls, d: dict) -> "RunSettings":
        kv_fields = set(KVSettings.__dataclass_fields__)
        kv = KVSettings(**{k: v for k, v in d.items() if k in kv_fields})
        return cls(kv=kv, **{k: v for k, v in d.items() if k not in kv_fields})


@dataclass
class GridSpec:
    cache_types: list[tuple[str, str]]
    ctx_sizes: list[int]
    swa_full: list[bool]
    parallel: list[int]
    kv_unified: list[bool]
    flash_attn: list[str]
    depths: list[int]
    threads: int
    n_prompt: int = 512
    n_gen: int = 128
    repetitions: int = 3
    batch_size: int = 2048
    ubatch_size: int = 512
    n_gpu_layers: list[int] = field(default_factory=lambda: [0])
    offload_kqv: list[bool] = field(default_factory=lambda: [True])
    repack: bool = True

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
        limit = min(limit, mem_budget // per_token)
    ctx = max(limit // 256 * 256, 256, -(-n_tokens // 256) * 256)
    deep = min(ctx // 2, ctx - n_tokens) // 256 * 256
    return [ctx], ([0, deep] if deep > 0 else [0])


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
                rs = RunSettings(kv, spec.threads, spec.n_prompt, spec.n_gen, depth, spec.repetitions, ngl, okqv,
                                 spec.repack)
                out.append((rs, skip_reason(model, rs)))
    return out


def skip_reason(model: ModelInfo, rs: RunSettings) -> str | None:
    """Why llama.cpp would refuse this configuration (a memory we cannot predict is still run)."""
    try:
        validate(model, rs.kv)
    except GgufprofError as e:
        return str(e)
    n_ctx_seq = resolved(model, rs.kv).n_ctx_seq
    need = rs.depth + max(rs.n_prompt, rs.n_gen)
    if need > n_ctx_seq:
        return (f"depth {rs.depth} + max(n_prompt {rs.n_prompt}, n_gen {rs.n_gen}) = {need} tokens do not fit "
                f"in one sequence's {n_ctx_seq} cells")
    return None
