"""Predict the KV cache llama.cpp allocates for a model and a set of context parameters.

Pure Python, byte-exact against the vendored llama.cpp. The rules, with where they live:

* ``llama_context::llama_context`` (src/llama-context.cpp): ``n_ctx`` 0 means the training
  context; ``n_batch = min(n_ctx, n_batch)`` and ``n_ubatch = min(n_batch, n_ubatch)`` are taken
  *before* ``n_ctx`` is padded to a multiple of 256. Without a unified cache each of the
  ``n_seq_max`` streams gets ``pad(n_ctx / n_seq_max, 256)`` cells and ``n_ctx`` becomes
  streams x cells.
* ``llama_model::create_memory`` (src/llama-model.cpp): one ``llama_kv_cache`` for plain models,
  a ``llama_kv_cache_iswa`` (a full-attention cache plus a SWA cache) when any layer is SWA.
* ``llama_kv_cache_iswa`` (src/llama-kv-cache-iswa.cpp): the SWA cache holds
  ``pad(min(n_ctx_seq, n_swa * (unified ? n_seq_max : 1) + n_ubatch), 256)`` cells, or the full
  ``n_ctx_seq`` with ``swa_full``.
* ``llama_kv_cache::llama_kv_cache`` (src/llama-kv-cache.cpp): per layer a K tensor
  ``[n_embd_k_gqa(il), kv_size, n_stream]`` and a V tensor of the same shape, except that a
  transposed V (flash attention *requested off*) is padded to the widest layer's
  ``n_embd_v_gqa``. The memory is created before ``flash_attn = auto`` is resolved, so ``auto``
  counts as on here.
* ``ggml_nbytes`` for the bytes of each tensor; ``ggml_backend_alloc_ctx_tensors_from_buft``
  pads each tensor to the buffer's alignment (32 bytes on the CPU) for the logged buffer size.
"""

from __future__ import annotations

import struct
from dataclasses import asdict, dataclass, field

from . import ggml_types
from .errors import GgufprofError
from .model_info import ModelInfo

CTX_PAD = 256  # GGML_PAD(cparams.n_ctx, 256) and the SWA cache's padding
LLAMA_MAX_SEQ = 256  # src/llama-cparams.h
CPU_ALIGNMENT = 32  # TENSOR_ALIGNMENT, the CPU buffer type's alignment
FLASH_ATTN = ("on", "off", "auto")


def pad(x: int, n: int) -> int:
    return (x + n - 1) // n * n


@dataclass(frozen=True)
class KVSettings:
    """Context parameters that shape the cache; defaults are llama_context_default_params()."""

    ctx_size: int = 512  # 0 = the model's training context
    cache_type_k: str = "f16"
    cache_type_v: str = "f16"
    parallel: int = 1  # n_seq_max
    kv_unified: bool = False
    swa_full: bool = True  # the library default; llama-cli/llama-server default to false
    batch_size: int = 2048
    ubatch_size: int = 512
    flash_attn: str = "auto"

    def validate(self, model: ModelInfo | None = None) -> None:
        """Raise GgufprofError for settings llama.cpp refuses, with the reason llama.cpp gives."""
        if self.ctx_size < 0:
            raise GgufprofError(f"--ctx-size must be >= 0 (0 = the model's training context), got {self.ctx_size}")
        if not 1 <= self.parallel <= LLAMA_MAX_SEQ:
            raise GgufprofError(f"--parallel must be between 1 and {LLAMA_MAX_SEQ}, got {self.parallel}")
        if self.batch_size < 1 or self.ubatch_size < 1:
            raise GgufprofError("--batch-size and --ubatch-size must be >= 1")
        if self.flash_attn not in FLASH_ATTN:
            raise GgufprofError(f"--flash-attn must be one of on, off, auto, got '{self.flash_attn}'")
        try:
            tk = ggml_types.kv_cache_type(self.cache_type_k)
            tv = ggml_types.kv_cache_type(self.cache_type_v)
        except ValueError as e:
            raise GgufprofError(str(e)) from None
        if tv.is_quantized and self.flash_attn == "off":
            raise GgufprofError(
                f"a quantized V cache ({tv.name}) requires flash attention: use --flash-attn on or auto, "
                "or a float V cache (f16, bf16, f32)"
            )
        if model is None:
            return
        if model.kv_unsupported:
            raise GgufprofError(model.kv_unsupported)
        if self.ctx_size == 0 and model.n_ctx_train == 0:
            raise GgufprofError("--ctx-size 0 asks for the training context, but the model does not state one")
        if self.flash_attn != "off":  # llama_init_from_model's block-size checks
            for label, t, head in (("K", tk, model.head_k), ("V", tv, model.head_v)):
                if t.is_quantized:
                    bad = sorted({head(il) for il in range(model.n_layer) if head(il) % t.blck_size})
                    if bad:
                        raise GgufprofError(
                            f"{label} cache type {t.name} needs a head size divisible by {t.blck_size}; "
                            f"this model has {bad[0]}"
                        )


@dataclass(frozen=True)
class CachePrediction:
    """One ``llama_kv_cache`` as llama.cpp creates it."""

    name: str  # "kv" for a plain model; "full" and "swa" for the two caches of an iSWA model
    cells: int  # per stream (kv_size)
    streams: int
    layers: int
    type_k: str
    type_v: str
    k_bytes: int
    v_bytes: int
    buffer_bytes: int  # the backend buffer on the CPU: each tensor padded to 32 bytes

    @property
    def bytes(self) -> int:
        return self.k_bytes + self.v_bytes


@dataclass(frozen=True)
class KVPrediction:
    settings: KVSettings
    n_ctx: int  # what llama_n_ctx() reports
    n_ctx_seq: int
    n_batch: int
    n_ubatch: int
    v_trans: bool
    caches: list[CachePrediction] = field(default_factory=list)

    @property
    def kv_bytes(self) -> int:
        return sum(c.bytes for c in self.caches)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["kv_bytes"] = self.kv_bytes
        for c, cd in zip(self.caches, d["caches"]):
            cd["bytes"] = c.bytes
        return d


def resolve_ctx(model: ModelInfo, s: KVSettings) -> tuple[int, int, int, int]:
    """(n_ctx, n_ctx_seq, n_batch, n_ubatch) as llama_context's constructor computes them."""
    n_ctx = s.ctx_size or model.n_ctx_train
    n_batch = min(n_ctx, s.batch_size)  # causal attention: batch limited by the unpadded n_ctx
    n_ubatch = min(n_batch, s.ubatch_size)
    n_ctx = pad(n_ctx, CTX_PAD)
    if s.kv_unified:
        return n_ctx, n_ctx, n_batch, n_ubatch
    n_ctx_seq = pad(n_ctx // s.parallel, CTX_PAD)
    return n_ctx_seq * s.parallel, n_ctx_seq, n_batch, n_ubatch


def cache_layers(model: ModelInfo, cache: str) -> list[int]:
    """The layers a cache holds: all for "kv", the full-attention or the SWA layers otherwise."""
    return [il for il in range(model.n_layer) if cache == "kv" or (cache == "swa") == model.swa_layers[il]]


def tensor_shapes(model: ModelInfo, il: int, cells: int, streams: int, v_trans: bool) -> tuple[tuple, tuple]:
    """ggml shapes of layer ``il``'s K and V tensors. A transposed V (flash attention off) is as
    wide as the widest layer's V ([TAG_V_CACHE_VARIABLE] in llama-kv-cache.cpp)."""
    v_width = max(model.n_embd_v_gqa(j) for j in range(model.n_layer)) if v_trans else model.n_embd_v_gqa(il)
    return (model.n_embd_k_gqa(il), cells, streams), (v_width, cells, streams)


def _cache(model: ModelInfo, name: str, layers: list[int], cells: int, streams: int,
           s: KVSettings, v_trans: bool) -> CachePrediction:
    tk = ggml_types.kv_cache_type(s.cache_type_k)
    tv = ggml_types.kv_cache_type(s.cache_type_v)
    k_sizes, v_sizes = [], []
    for il in layers:
        k_ne, v_ne = tensor_shapes(model, il, cells, streams, v_trans)
        k_sizes.append(ggml_types.nbytes(tk, k_ne))
        v_sizes.append(ggml_types.nbytes(tv, v_ne))
    buffer = sum(pad(b, CPU_ALIGNMENT) for b in k_sizes + v_sizes)
    return CachePrediction(name, cells, streams, len(layers), tk.name, tv.name, sum(k_sizes), sum(v_sizes), buffer)


def predict(model: ModelInfo, s: KVSettings) -> KVPrediction:
    """The caches llama.cpp will create for ``model`` with settings ``s`` (validated first)."""
    s.validate(model)
    n_ctx, n_ctx_seq, n_batch, n_ubatch = resolve_ctx(model, s)
    streams = 1 if s.kv_unified else s.parallel
    v_trans = s.flash_attn == "off"
    if not model.has_swa:
        caches = [_cache(model, "kv", cache_layers(model, "kv"), n_ctx_seq, streams, s, v_trans)]
    else:
        swa_cells = n_ctx_seq if s.swa_full else pad(
            min(n_ctx_seq, model.n_swa * (s.parallel if s.kv_unified else 1) + n_ubatch), CTX_PAD)
        caches = [
            _cache(model, "full", cache_layers(model, "full"), n_ctx_seq, streams, s, v_trans),
            _cache(model, "swa", cache_layers(model, "swa"), swa_cells, streams, s, v_trans),
        ]
    return KVPrediction(s, n_ctx, n_ctx_seq, n_batch, n_ubatch, v_trans, caches)


def mib_f32(nbytes: int) -> str:
    """Bytes as llama.cpp prints the ``size =`` line: ``(float)bytes / (1024.0f*1024.0f)``, %.2f."""
    f = struct.unpack("f", struct.pack("f", float(nbytes)))[0]
    q = struct.unpack("f", struct.pack("f", f / 1048576.0))[0]
    return f"{q:.2f}"


def mib_f64(nbytes: int) -> str:
    """Bytes as llama.cpp prints buffer sizes: ``size / 1024.0 / 1024.0`` in double, %.2f."""
    return f"{nbytes / 1024.0 / 1024.0:.2f}"
