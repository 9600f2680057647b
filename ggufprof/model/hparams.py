"""A model's hyper-parameters exactly as llama.cpp reads them, for the parts that shape its memory.

``llama_model_base::load_hparams`` (src/llama-model.cpp) reads the keys every architecture shares,
then calls the architecture's own ``load_arch_hparams`` (src/models/<arch>.cpp), which reads only
the keys that architecture uses, sets its hard-coded values (a fixed SWA pattern, gemma3n's
``n_layer_kv_from_start = 20``) and decides which layers are SWA or recurrent. This module holds
what both parts work on: :class:`HParams` and :class:`Loader`, a small copy of
``llama_model_loader``'s key access with the same semantics (``get_key``, ``get_key_or_arr``,
``get_arr``), so that the shared part (:mod:`.load`) and the per-architecture ports
(:mod:`.arch_hparams`) read line for line like their C++ originals. A key an architecture does not
read never changes its prediction: the port simply never asks for it.

Field names are llama.cpp's (``llama_hparams`` in src/llama-hparams.h); per-layer arrays have
``LLAMA_MAX_LAYERS`` entries as there, so a ``get_arr`` that fills only a prefix behaves the same.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import GgufprofError
from .gguf_reader import GgufFile, LargeArray

LLAMA_MAX_LAYERS = 512  # src/llama-hparams.h
SWA_NONE, SWA_STANDARD, SWA_CHUNKED, SWA_SYMMETRIC = "none", "standard", "chunked", "symmetric"

# Architectures whose whole stack is recurrent (llm_arch_is_recurrent, src/llama-arch.cpp).
RECURRENT_ARCHS = frozenset({"mamba", "mamba2", "rwkv6", "rwkv6qwen2", "rwkv7", "arwkv7"})

_MISSING = object()


def _zeros() -> list[int]:
    return [0] * LLAMA_MAX_LAYERS


@dataclass
class HParams:
    """The memory-relevant subset of ``llama_hparams``, with its methods (src/llama-hparams.cpp)."""

    arch: str
    n_ctx_train: int = 0
    n_embd: int = 0
    n_layer_all: int = 0
    n_layer_nextn: int = 0
    n_layer_dense_lead: int = 0
    router_layer: int = -1
    n_layer_kv_from_start: int = -1  # >= 0: only the layers below it own a KV cache
    causal_attn: bool = True

    n_head_arr: list[int] = field(default_factory=_zeros)
    n_head_kv_arr: list[int] = field(default_factory=_zeros)
    n_ff_arr: list[int] = field(default_factory=_zeros)

    # mixture of experts (parameter counts only: experts do not shape the memory)
    n_expert: int = 0
    n_expert_used_arr: list[int] = field(default_factory=_zeros)

    n_embd_head_k_full: int = 0
    n_embd_head_v_full: int = 0
    n_embd_head_k_swa: int = 0
    n_embd_head_v_swa: int = 0
    n_rot_full: int = 0
    n_rot_swa: int = 0

    # sliding-window attention
    swa_type: str = SWA_NONE
    n_swa: int = 0
    is_swa_impl: list[int] = field(default_factory=_zeros)

    # recurrent layers and their state sizes
    is_recr_impl: list[int] = field(default_factory=_zeros)
    ssm_d_conv: int = 0
    ssm_d_inner: int = 0
    ssm_d_state: int = 0
    ssm_dt_rank: int = 0
    ssm_n_group: int = 0
    wkv_head_size: int = 0
    token_shift_count: int = 2
    n_shortconv_l_cache: int = 0
    n_embd_head_kda: int = 0
    n_embd_head_la: int = 0

    # multi-head latent attention (MLA)
    n_lora_kv: int = 0
    n_embd_head_k_mla_impl: int = 0
    n_embd_head_v_mla_impl: int = 0
    n_lora_kv_swa: int = 0
    n_embd_head_k_mla_swa: int = 0
    n_embd_head_v_mla_swa: int = 0

    # sparse-attention indexers (DSA, MSA, QSA)
    indexer_n_head: int = 0
    indexer_head_size: int = 0
    indexer_top_k: int = 0
    indexer_kpool: int = 0  # > 0: the hybrid_idx indexer caches key, gate and pooled values
    is_indexer_full_impl: list[int] = field(default_factory=_zeros)

    # DeepSeek-V4 and kin
    dsv4_hc_mult: int = 0
    dsv4_compress_ratios: list[int] = field(default_factory=_zeros)

    # per-layer embeddings (PLE) history, kept in the recurrent cache
    ple_ngram_size: int = 0
    ple_conv_kernel: int = 0
    ple_n_heads: int = 0
    is_ple_impl: list[int] = field(default_factory=_zeros)

    # --- derived, as llama_hparams' methods ---------------------------------------------------

    def n_layer(self) -> int:
        """Layers of the main model: ``n_layer_all - n_layer_nextn`` (NextN/MTP layers excluded)."""
        return self.n_layer_all - self.n_layer_nextn

    def n_head(self, il: int = 0) -> int:
        return self.n_head_arr[il]

    def n_head_kv(self, il: int = 0) -> int:
        return self.n_head_kv_arr[il]

    def n_ff(self, il: int = 0) -> int:
        return self.n_ff_arr[il]

    def n_expert_used(self, il: int = 0) -> int:
        """Experts routed per token in layer ``il`` (``llama_hparams::n_expert_used``)."""
        return self.n_expert_used_arr[il]

    def is_swa(self, il: int) -> bool:
        return bool(self.is_swa_impl[il])

    def is_swa_any(self) -> bool:
        return any(self.is_swa_impl[: self.n_layer_all])

    def is_recr(self, il: int) -> bool:
        return bool(self.is_recr_impl[il])

    def is_indexer_full(self, il: int) -> bool:
        return bool(self.is_indexer_full_impl[il])

    def is_mla(self) -> bool:
        return self.n_embd_head_k_mla_impl != 0 and self.n_embd_head_v_mla_impl != 0

    def has_kv(self, il: int) -> bool:
        """Whether layer ``il`` owns a KV cache (``n_layer_kv_from_start``: gemma3n, gemma4)."""
        return self.n_layer_kv_from_start < 0 or il < self.n_layer_kv_from_start

    def n_embd_head_k(self, il: int = 0) -> int:
        return self.n_embd_head_k_swa if self.is_swa(il) else self.n_embd_head_k_full

    def n_embd_head_v(self, il: int = 0) -> int:
        return self.n_embd_head_v_swa if self.is_swa(il) else self.n_embd_head_v_full

    def n_embd_k_gqa(self, il: int = 0) -> int:
        return self.n_embd_head_k(il) * self.n_head_kv(il)

    def n_embd_v_gqa(self, il: int = 0) -> int:
        return self.n_embd_head_v(il) * self.n_head_kv(il)

    def n_embd_v_gqa_max(self) -> int:
        return max([self.n_embd_v_gqa(0)] + [self.n_embd_v_gqa(il) for il in range(self.n_layer_all)])

    def is_n_embd_v_gqa_variable(self) -> bool:
        return any(self.n_embd_v_gqa(il) != self.n_embd_v_gqa(0) for il in range(self.n_layer_all))

    def n_embd_r(self) -> int:
        """Row width of a recurrent layer's R (conv / token-shift) state (``llama_hparams::n_embd_r``)."""
        if self.wkv_head_size != 0:  # RWKV
            return self.token_shift_count * self.n_embd
        if self.n_shortconv_l_cache != 0:  # LFM2
            return self.n_embd * (self.n_shortconv_l_cache - 1)
        if self.n_embd_head_kda != 0:  # Kimi KDA
            d_inner = self.n_head() * self.n_embd_head_kda
            return 3 * (self.ssm_d_conv - 1 if self.ssm_d_conv > 0 else 3) * d_inner
        # Mamba's conv state (the first column is shifted out, so d_conv - 1 of them)
        return (self.ssm_d_conv - 1 if self.ssm_d_conv > 0 else 0) * (
            self.ssm_d_inner + 2 * self.ssm_n_group * self.ssm_d_state)

    def n_embd_s(self) -> int:
        """Row width of a recurrent layer's S (SSM / WKV) state (``llama_hparams::n_embd_s``)."""
        if self.wkv_head_size != 0:
            return self.n_embd * self.wkv_head_size
        if self.n_embd_head_kda != 0:
            return self.n_embd_head_kda * self.n_embd_head_kda * self.n_head()
        if self.n_embd_head_la != 0:  # MiniMax-Text-01 linear attention
            return self.n_embd_head_la * self.n_embd_head_la * self.n_head()
        return self.ssm_d_state * self.ssm_d_inner

    def ple_conv_state(self) -> int:
        if self.ple_n_heads == 0 or self.ple_conv_kernel == 0:
            return 0
        return (self.ple_conv_kernel - 1) * self.ple_ngram_size * self.dsv4_hc_mult * self.n_embd

    # --- setters used by the loaders ----------------------------------------------------------

    def set_swa_pattern(self, n_pattern: int, dense_first: bool = False) -> None:
        """``llama_hparams::set_swa_pattern``: with ``dense_first`` a layer is SWA unless
        ``il % n == 0``, otherwise unless it is the last of every ``n``; 0 makes every layer SWA."""
        self.is_swa_impl[: self.n_layer()] = _pattern(n_pattern, dense_first, self.n_layer())
        for il in range(self.n_layer(), self.n_layer_all):
            self.is_swa_impl[il] = 0

    def set_recr_pattern(self, n_pattern: int, dense_first: bool = False) -> None:
        self.is_recr_impl[: self.n_layer()] = _pattern(n_pattern, dense_first, self.n_layer())
        for il in range(self.n_layer(), self.n_layer_all):
            self.is_recr_impl[il] = 0


def _pattern(n: int, dense_first: bool, n_layer: int) -> list[int]:
    if dense_first:
        return [int(n == 0 or il % n != 0) for il in range(n_layer)]
    return [int(n == 0 or il % n < n - 1) for il in range(n_layer)]


class Loader:
    """``llama_model_loader``'s key access over a parsed GGUF header.

    Key names are llama.cpp's ``LLM_KV_NAMES`` (src/llama-arch.cpp) without the ``%s.`` prefix, as
    spelled once in :mod:`.gguf_keys`: ``get_key(ATTENTION_SLIDING_WINDOW)`` reads
    ``<arch>.attention.sliding_window``; names that start with ``general.`` or ``tokenizer.`` are
    global, as there. A missing required key raises the error llama.cpp throws ("key not found in
    model: ...").
    """

    def __init__(self, gf: GgufFile, arch: str):
        self.gf = gf
        self.arch = arch
        self._tensor_names = frozenset(t.name for t in gf.tensors)

    def key(self, name: str) -> str:
        return name if name.startswith(("general.", "tokenizer.", "split.")) else f"{self.arch}.{name}"

    def has(self, name: str) -> bool:
        return self.key(name) in self.gf.kv

    def get_key(self, name: str, default: object = _MISSING, required: bool | None = None) -> object:
        """The key's scalar value; ``default`` when absent (a key with no default is required).

        ``get_key`` on an array is an error in llama.cpp ("wrong type"), so it is here."""
        full = self.key(name)
        if full not in self.gf.kv:
            if required or (required is None and default is _MISSING):
                raise GgufprofError(f"{self.gf.path}: key not found in model: {full} (llama.cpp requires it for {self.arch})")
            return None if default is _MISSING else default
        value = self.gf.kv[full]
        if isinstance(value, (list, LargeArray)):
            raise GgufprofError(f"{self.gf.path}: key {full} has wrong type: an array where llama.cpp reads one value")
        return _scalar(value, full, self.gf.path)

    def get_arr(self, name: str, out: list | None = None, required: bool = False) -> list | None:
        """``get_arr`` into a fixed-size array: copies the array's values into the front of ``out``
        (the rest keeps its values, as with llama.cpp's ``std::array``); returns the values or None."""
        full = self.key(name)
        value = self.gf.kv.get(full)
        if not isinstance(value, list):
            if required or isinstance(value, LargeArray):
                raise GgufprofError(f"{self.gf.path}: array key not found in model: {full}")
            return None
        values = [_scalar(v, full, self.gf.path) for v in value]
        values = [int(v) if isinstance(v, bool) else v for v in values]
        if out is not None:
            if len(values) > len(out):
                raise GgufprofError(f"{self.gf.path}: array length {len(values)} for key {full} exceeds max {len(out)}")
            out[: len(values)] = values
        return values

    def get_arr_n(self, name: str, required: bool = False) -> int | None:
        value = self.gf.kv.get(self.key(name))
        if not isinstance(value, (list, LargeArray)):
            if required:
                raise GgufprofError(f"{self.gf.path}: array key not found in model: {self.key(name)}")
            return None
        return len(value)

    def get_key_or_arr(self, name: str, out: list, n: int, required: bool = False) -> bool:
        """``get_key_or_arr``: an array of exactly ``n`` values, or one value repeated ``n`` times,
        written into the front of ``out``; False (``out`` untouched) when the key is absent."""
        full = self.key(name)
        if full not in self.gf.kv:
            if required:
                raise GgufprofError(f"{self.gf.path}: key not found in model: {full}")
            return False
        value = self.gf.kv[full]
        if isinstance(value, LargeArray) or (isinstance(value, list) and len(value) != n):
            got = len(value)
            raise GgufprofError(f"{self.gf.path}: key {full} has wrong array length; expected {n}, got {got}")
        if isinstance(value, list):
            self.get_arr(name, out)
        else:
            out[:n] = [_scalar(value, full, self.gf.path)] * n
        return True

    def has_tensor(self, name: str) -> bool:
        return name in self._tensor_names


def _scalar(value: object, key: str, path: Path) -> object:
    if isinstance(value, float) and not math.isfinite(value):
        return value
    if isinstance(value, (bool, int, float, str)):
        return value
    raise GgufprofError(f"{path}: key {key} has a value llama.cpp cannot read as a number")
