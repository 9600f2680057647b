"""The context settings that shape memory, with llama.cpp's library defaults, and how llama.cpp
resolves them (``llama_context::llama_context`` in src/llama-context.cpp).

* ``n_ctx`` 0 means the training context.
* With causal attention ``n_batch = min(n_ctx, n_batch)``; ``n_ubatch = min(n_batch, n_ubatch or
  n_batch)``; both on the *unpadded* ``n_ctx``, which is then padded to a multiple of 256.
* Without a unified cache each of the ``n_seq_max`` streams gets ``pad(n_ctx / n_seq_max, 256)``
  cells and ``n_ctx`` becomes streams x cells.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from ..errors import GgufprofError
from ..model import ggml_types
from .caches import pad

CTX_PAD = 256  # GGML_PAD(cparams.n_ctx, 256)
LLAMA_MAX_SEQ = 256  # src/llama-cparams.h
UINT32_MAX = 2**32 - 1
FLASH_ATTN = ("on", "off", "auto")


@dataclass(frozen=True)
class KVSettings:
    """Context parameters that shape the memory; defaults are llama_context_default_params()."""

    ctx_size: int = 512  # 0 = the model's training context
    cache_type_k: str = "f16"
    cache_type_v: str = "f16"
    parallel: int = 1  # n_seq_max
    kv_unified: bool = False
    swa_full: bool = True  # the library default; llama-cli/llama-server default to false
    batch_size: int = 2048
    ubatch_size: int = 512
    flash_attn: str = "auto"

    def validate(self) -> None:
        """Raise GgufprofError for settings llama.cpp refuses whatever the model, with its reason."""
        for flag, value, lo in (("--ctx-size", self.ctx_size, 0), ("--batch-size", self.batch_size, 1),
                                ("--ubatch-size", self.ubatch_size, 1)):
            if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= UINT32_MAX:
                raise GgufprofError(f"{flag} must be an integer from {lo} to {UINT32_MAX} (llama.cpp's uint32), got {value!r}")
        if self.ctx_size > UINT32_MAX - CTX_PAD:
            raise GgufprofError(f"--ctx-size {self.ctx_size} overflows llama.cpp's padded uint32 n_ctx")
        if not 1 <= self.parallel <= LLAMA_MAX_SEQ:
            raise GgufprofError(f"--parallel must be between 1 and {LLAMA_MAX_SEQ}, got {self.parallel}")
        if self.flash_attn not in FLASH_ATTN:
            raise GgufprofError(f"--flash-attn must be one of on, off, auto, got '{self.flash_attn}'")
        try:
            ggml_types.kv_cache_type(self.cache_type_k)
            tv = ggml_types.kv_cache_type(self.cache_type_v)
        except ValueError as e:
            raise GgufprofError(str(e)) from None
        if tv.is_quantized and self.flash_attn == "off":
            raise GgufprofError(
                f"a quantized V cache ({tv.name}) requires flash attention: use --flash-attn on or auto, "
                "or a float V cache (f16, bf16, f32)"
            )


# Which defaults apply when a flag is not given: a profile, named in every output.
# * tools (the default): llama.cpp's tools -- llama-cli, llama-bench, llama-perplexity, llama-fit-params --
#   start from common_params (common/common.h): n_ctx 0 (the training context), n_batch 2048,
#   n_ubatch 512, 1 sequence, swa_full false, kv_unified false, flash attention auto.
# * server: llama-server as people deploy it: -np auto becomes 4 slots sharing one unified cache
#   (tools/server/server.cpp: "n_parallel is set to auto, using n_parallel = 4 and kv_unified = true"),
#   the rest as the tools'.
# * library: llama_context_default_params (src/llama-context.cpp), what llama-cpp-python's Llama and
#   other bindings get: n_ctx 512, swa_full true.
DEFAULT_PROFILE = "tools"
DEFAULTS = {
    "tools": KVSettings(ctx_size=0, swa_full=False),
    "server": KVSettings(ctx_size=0, parallel=4, kv_unified=True, swa_full=False),
    "library": KVSettings(),
}
DEFAULTS_NOTE = {
    "tools": "llama.cpp tools' defaults (common/common.h, as llama-cli and llama-bench: n_ctx = training context, "
             "1 sequence, swa_full off; --defaults server or library for the others)",
    "server": "llama-server defaults (n_ctx = training context, 4 slots in a unified cache, swa_full off)",
    "library": "llama.cpp library defaults (llama_context_default_params, as llama-cpp-python: n_ctx 512, "
               "1 sequence, swa_full on)",
}
PROFILES = tuple(DEFAULTS)


def check_profile(name: str) -> str:
    if name not in DEFAULTS:
        raise GgufprofError(f"--defaults must be one of {', '.join(PROFILES)}, got '{name}'")
    return name


def with_defaults(name: str, **given: object) -> KVSettings:
    """KVSettings from the flags a user gave (None = not given) over the named profile's defaults."""
    return dataclasses.replace(DEFAULTS[check_profile(name)], **{k: v for k, v in given.items() if v is not None})


def differing(s: KVSettings, profile: str) -> dict[str, object]:
    """The settings of ``s`` that differ from the profile's defaults (what a user changed)."""
    base = DEFAULTS[check_profile(profile)]
    return {f: getattr(s, f) for f in KVSettings.__dataclass_fields__ if getattr(s, f) != getattr(base, f)}


@dataclass(frozen=True)
class Resolved:
    """What llama.cpp makes of the settings: ``llama_n_ctx`` and friends, and the two numbers on the
    way there (what was asked for, and its padding before the split into streams)."""

    n_ctx: int
    n_ctx_seq: int
    n_batch: int
    n_ubatch: int
    n_ctx_requested: int = 0  # ctx_size, or n_ctx_train for 0
    n_ctx_padded: int = 0  # pad(n_ctx_requested, 256), before the split among the sequences


def resolve(s: KVSettings, n_ctx_train: int, causal_attn: bool = True) -> Resolved:
    requested = s.ctx_size or n_ctx_train
    n_batch = min(requested, s.batch_size) if causal_attn else s.batch_size
    n_ubatch = min(n_batch, s.ubatch_size or n_batch)
    n_ctx = pad(requested, CTX_PAD)
    if s.kv_unified:
        return Resolved(n_ctx, n_ctx, n_batch, n_ubatch, requested, n_ctx)
    n_ctx_seq = pad(n_ctx // s.parallel, CTX_PAD)
    return Resolved(n_ctx_seq * s.parallel, n_ctx_seq, n_batch, n_ubatch, requested, n_ctx)
