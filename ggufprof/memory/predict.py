"""Predict every cache and state llama.cpp allocates for a model and a set of context settings.

Pure Python, byte-exact against the vendored llama.cpp: ``resolve`` (settings.py) gives the sizes
llama_context computes, ``llama_init_from_model``'s checks refuse what llama.cpp refuses (below),
and ``create_memory`` (create.py) builds the caches with the architecture's own rules.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import GgufprofError
from ..model import ggml_types
from ..model.model_info import ModelInfo
from .caches import Cache
from .create import create_memory, memory_kind
from .dsv4 import HCA_RATIO
from .settings import CTX_PAD, KVSettings, Resolved, resolve


@dataclass(frozen=True)
class MemoryPrediction:
    settings: KVSettings
    n_ctx: int  # what llama_n_ctx() reports
    n_ctx_seq: int
    n_batch: int
    n_ubatch: int
    v_trans: bool
    kind: str  # the memory class create_memory picks: kv, iswa, recurrent, hybrid, dsa, ...
    caches: list[Cache] = field(default_factory=list)

    @property
    def kv_bytes(self) -> int:
        """Attention caches (KV, SWA, MLA, indexer): what grows with the context."""
        return sum(c.bytes for c in self.caches if c.grows_with_context)

    @property
    def recurrent_bytes(self) -> int:
        return sum(c.bytes for c in self.caches if not c.grows_with_context)

    @property
    def total_bytes(self) -> int:
        return sum(c.bytes for c in self.caches)

    def to_dict(self) -> dict:
        return {
            "settings": vars(self.settings).copy(), "n_ctx": self.n_ctx, "n_ctx_seq": self.n_ctx_seq,
            "n_batch": self.n_batch, "n_ubatch": self.n_ubatch, "v_trans": self.v_trans, "memory": self.kind,
            "caches": [c.to_dict() for c in self.caches], "kv_bytes": self.kv_bytes,
            "recurrent_bytes": self.recurrent_bytes, "total_bytes": self.total_bytes,
        }


def effective_flash_attn(model: ModelInfo, s: KVSettings) -> str:
    """``llama_init_from_model`` forces flash attention off for grok."""
    return "off" if model.architecture == "grok" else s.flash_attn


def validate(model: ModelInfo, s: KVSettings) -> None:
    """Raise GgufprofError for what ``llama_init_from_model`` (src/llama-context.cpp) refuses."""
    s.validate()
    hp = model.hparams
    if s.ctx_size == 0 and hp.n_ctx_train == 0:
        raise GgufprofError("--ctx-size 0 asks for the training context, but the model does not state one")
    fa = effective_flash_attn(model, s)
    tk, tv = ggml_types.kv_cache_type(s.cache_type_k), ggml_types.kv_cache_type(s.cache_type_v)
    if fa != s.flash_attn and tv.is_quantized:
        raise GgufprofError(f"llama.cpp forces flash attention off for {model.architecture}, and a quantized "
                            f"V cache ({tv.name}) requires it: use a float V cache (f16, bf16, f32)")
    if (hp.is_mla() or model.architecture == "deepseek4") and tk.name != tv.name:
        raise GgufprofError(f"{model.architecture} with latent attention does not support different K ({tk.name}) "
                            f"and V ({tv.name}) cache types")
    if fa != "off":
        for label, t, head in (("K", tk, hp.n_embd_head_k), ("V", tv, hp.n_embd_head_v)):
            if t.is_quantized:
                bad = sorted({head(il) for il in range(hp.n_layer()) if head(il) % t.blck_size})
                if bad:
                    raise GgufprofError(f"{label} cache type {t.name} needs a head size divisible by "
                                        f"{t.blck_size}; this model has {bad[0]}")


def resolved(model: ModelInfo, s: KVSettings) -> Resolved:
    return resolve(s, model.hparams.n_ctx_train, model.hparams.causal_attn)


def predict(model: ModelInfo, s: KVSettings) -> MemoryPrediction:
    """The caches llama.cpp will create for ``model`` with settings ``s`` (validated first)."""
    validate(model, s)
    r = resolved(model, s)
    fa = effective_flash_attn(model, s)
    tk = ggml_types.kv_cache_type(s.cache_type_k).name
    tv = ggml_types.kv_cache_type(s.cache_type_v).name
    caches = create_memory(model.hparams, tk, tv, flash_attn=fa != "off", swa_full=s.swa_full,
                           unified=s.kv_unified, n_ctx_seq=r.n_ctx_seq, n_seq_max=s.parallel, n_ubatch=r.n_ubatch)
    return MemoryPrediction(s, r.n_ctx, r.n_ctx_seq, r.n_batch, r.n_ubatch, fa == "off",
                            memory_kind(model.hparams), caches)


# Every cache's size is linear in the context between multiples of this many cells: caches are
# padded to 256 cells, and the coarsest one (DeepSeek-V4's HCA cache, llama-kv-cache-dsv4.cpp) holds
# one cell per 128 tokens, padded to 256 -- so it steps every 128 x 256 tokens.
SLOPE_CELLS = CTX_PAD * HCA_RATIO


def context_bytes(model: ModelInfo, type_k: str, type_v: str, n_ctx_seq: int) -> int:
    """Bytes of every cache that grows with the context, for one sequence of ``n_ctx_seq`` cells:
    sliding-window layers keep every cell (swa_full, no window cap) and V is not transposed.
    Recurrent and compressor state is left out (it does not grow, see ``recurrent_bytes_per_sequence``)."""
    tk = ggml_types.kv_cache_type(type_k).name
    tv = ggml_types.kv_cache_type(type_v).name
    caches = create_memory(model.hparams, tk, tv, flash_attn=True, swa_full=True, unified=True,
                           n_ctx_seq=n_ctx_seq, n_seq_max=1, n_ubatch=1)
    return sum(c.bytes for c in caches if c.grows_with_context)


def bytes_per_token(model: ModelInfo, type_k: str, type_v: str | None = None) -> int | float:
    """Bytes the caches grow by per token of context: the slope of ``context_bytes`` between
    SLOPE_CELLS and twice that, where every cache's padding is a whole number of steps.

    One cell of each cache is not that: DeepSeek-V4's compressed caches hold one cell per 4 or 128
    tokens and are padded to 256 cells, so a single cell of context allocates 256 of theirs. The
    slope is exact for them (e.g. 609 B per f16 token on the suite's deepseek4, where one cell
    gives 131,584) and equals one cell's bytes for every other cache. SWA caches count in full, as
    with swa_full on; with it off llama.cpp caps them at the window (``estimate`` gives that size).
    An int when whole; a compressed cache's share can be a fraction (q8_0 on DeepSeek-V4)."""
    tv = type_v or type_k
    grown = context_bytes(model, type_k, tv, 2 * SLOPE_CELLS) - context_bytes(model, type_k, tv, SLOPE_CELLS)
    whole, rest = divmod(grown, SLOPE_CELLS)
    return whole if rest == 0 else grown / SLOPE_CELLS


def recurrent_bytes_per_sequence(model: ModelInfo) -> int:
    """The recurrent state one sequence holds, whatever the context size (0 without one)."""
    caches = create_memory(model.hparams, "f16", "f16", flash_attn=True, swa_full=True, unified=True,
                           n_ctx_seq=256, n_seq_max=1, n_ubatch=1)
    return sum(c.bytes for c in caches if not c.grows_with_context)
