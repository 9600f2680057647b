"""A model's hyper-parameters as llama.cpp derives them from GGUF metadata (``load_hparams``).

Defaults follow ``llama_model_base::load_hparams`` in ``src/llama-model.cpp``: ``head_count_kv``
defaults to ``head_count`` and may be a per-layer array; key/value head sizes default to
``n_embd / n_head``; SWA layers may have their own head sizes (``key_length_swa``).
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from . import ggml_types
from .architectures import ARCHITECTURES, NO_CACHE, swa_layers
from .errors import GgufprofError
from .gguf_reader import GgufFile, LargeArray, TensorInfo, read_gguf


@dataclass(frozen=True)
class ModelInfo:
    path: Path
    architecture: str
    name: str
    n_layer: int
    n_embd: int
    n_head: list[int]
    n_head_kv: list[int]
    n_embd_head_k: int  # full-attention layers
    n_embd_head_v: int
    n_embd_head_k_swa: int
    n_embd_head_v_swa: int
    n_swa: int  # sliding window in tokens, 0 if none
    swa_layers: list[bool]
    n_ctx_train: int
    n_vocab: int
    n_params: int
    weight_bytes: int
    file_size: int
    tensor_types: dict[str, int] = field(default_factory=dict)  # ggml type name -> tensor count
    tensors: tuple[TensorInfo, ...] = ()
    kv_unsupported: str | None = None  # why the KV model refuses this model, None when modelled

    def head_k(self, il: int) -> int:
        return self.n_embd_head_k_swa if self.swa_layers[il] else self.n_embd_head_k

    def head_v(self, il: int) -> int:
        return self.n_embd_head_v_swa if self.swa_layers[il] else self.n_embd_head_v

    def n_embd_k_gqa(self, il: int) -> int:
        """Width of one cached K row of layer ``il`` (llama_hparams::n_embd_k_gqa)."""
        return self.head_k(il) * self.n_head_kv[il]

    def n_embd_v_gqa(self, il: int) -> int:
        return self.head_v(il) * self.n_head_kv[il]

    @property
    def has_swa(self) -> bool:
        return any(self.swa_layers)

    def kv_bytes_per_token(self, type_k: str, type_v: str | None = None) -> int:
        """Bytes one cached token costs across all layers (no SWA cap, no padding)."""
        tk = ggml_types.kv_cache_type(type_k)
        tv = ggml_types.kv_cache_type(type_v or type_k)
        return sum(
            ggml_types.nbytes(tk, (self.n_embd_k_gqa(il),)) + ggml_types.nbytes(tv, (self.n_embd_v_gqa(il),))
            for il in range(self.n_layer)
        )

    def to_dict(self) -> dict:
        return {
            "path": str(self.path),
            "architecture": self.architecture,
            "name": self.name,
            "n_layer": self.n_layer,
            "n_embd": self.n_embd,
            "n_head": self.n_head,
            "n_head_kv": self.n_head_kv,
            "n_embd_head_k": self.n_embd_head_k,
            "n_embd_head_v": self.n_embd_head_v,
            "n_embd_head_k_swa": self.n_embd_head_k_swa,
            "n_embd_head_v_swa": self.n_embd_head_v_swa,
            "n_swa": self.n_swa,
            "swa_layers": self.swa_layers,
            "n_ctx_train": self.n_ctx_train,
            "n_vocab": self.n_vocab,
            "n_params": self.n_params,
            "weight_bytes": self.weight_bytes,
            "file_size": self.file_size,
            "tensor_types": self.tensor_types,
            "kv_unsupported": self.kv_unsupported,
        }


def _per_layer(value: object, n_layer: int, key: str) -> list[int]:
    """``get_key_or_arr``: a scalar applies to every layer, an array gives one value per layer."""
    if isinstance(value, LargeArray):
        raise GgufprofError(f"{key}: array of {value.n} is longer than the {n_layer} layers")
    if isinstance(value, list):
        if len(value) != n_layer:
            raise GgufprofError(f"{key}: {len(value)} values for {n_layer} layers")
        return [int(v) for v in value]
    return [int(value)] * n_layer


def _require(kv: dict, key: str, path: Path) -> object:
    if key not in kv:
        raise GgufprofError(f"{path}: GGUF metadata lacks '{key}', which llama.cpp requires")
    return kv[key]


def model_info_from_gguf(gf: GgufFile) -> ModelInfo:
    kv, p = gf.kv, gf.path
    arch = str(_require(kv, "general.architecture", p))

    def k(name: str, default: object = None) -> object:
        return kv.get(f"{arch}.{name}", default)

    n_layer = int(_require(kv, f"{arch}.block_count", p))
    n_embd = int(_require(kv, f"{arch}.embedding_length", p))
    n_head = _per_layer(k("attention.head_count", 0), n_layer, "attention.head_count")
    n_head_kv = _per_layer(k("attention.head_count_kv", n_head), n_layer, "attention.head_count_kv")
    head0 = n_embd // n_head[0] if n_head[0] > 0 else 0
    head_k = int(k("attention.key_length", head0))
    head_v = int(k("attention.value_length", head0))

    rule = ARCHITECTURES.get(arch)
    window = k("attention.sliding_window")
    n_swa, swa = 0, [False] * n_layer
    if rule is not None:
        on = {
            "never": False,
            "always": True,
            "if_window": window is not None and int(window) > 0,
            "unless_zero": not (window is not None and int(window) == 0),
        }[rule.swa]
        if on:
            n_swa = rule.fixed_n_swa or int(window if window is not None else rule.default_n_swa)
            swa = swa_layers(rule, n_layer, n_swa, k("attention.sliding_window_pattern"))

    tokens = kv.get("tokenizer.ggml.tokens")
    n_vocab = len(tokens) if tokens is not None else int(k("vocab_size", 0))

    unsupported = None
    if arch in NO_CACHE:
        unsupported = f"{arch} runs without a KV cache in llama.cpp (encoder or diffusion model)"
    elif rule is None:
        unsupported = f"KV cache not modelled yet for architecture '{arch}'"
    elif int(k("nextn_predict_layers", 0) or 0) > 0:
        unsupported = f"KV cache not modelled yet for {arch} with next-token-prediction (MTP) layers"
    elif k("attention.kv_lora_rank") is not None:
        unsupported = f"KV cache not modelled yet for {arch} with multi-head latent attention (MLA)"

    types = Counter(ggml_types.type_name(t.type_id) for t in gf.tensors)
    return ModelInfo(
        path=p,
        architecture=arch,
        name=str(kv.get("general.name", p.stem)),
        n_layer=n_layer,
        n_embd=n_embd,
        n_head=n_head,
        n_head_kv=n_head_kv,
        n_embd_head_k=head_k,
        n_embd_head_v=head_v,
        n_embd_head_k_swa=int(k("attention.key_length_swa", head_k)),
        n_embd_head_v_swa=int(k("attention.value_length_swa", head_v)),
        n_swa=n_swa,
        swa_layers=swa,
        n_ctx_train=int(k("context_length", 0)),
        n_vocab=n_vocab,
        n_params=sum(t.n_elements for t in gf.tensors),
        weight_bytes=sum(t.n_bytes for t in gf.tensors),
        file_size=gf.file_size,
        tensor_types=dict(types.most_common()),
        tensors=gf.tensors,
        kv_unsupported=unsupported,
    )


def load_model_info(path: str | os.PathLike) -> ModelInfo:
    """Read ``path`` and derive its hyper-parameters; GgufprofError on anything unusable."""
    return model_info_from_gguf(read_gguf(path))
