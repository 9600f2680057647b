"""``llama_model_base::load_hparams`` (src/llama-model.cpp): the keys every architecture shares, then
the architecture's own ``load_arch_hparams`` from the table in :mod:`.arch_hparams`.

A module of its own so that imports run one way: :mod:`.hparams` (HParams, Loader) <-
:mod:`.arch_hparams` (the per-architecture ports) <- this dispatcher, which needs both.
"""

from __future__ import annotations

from ..errors import GgufprofError
from ..units import printable
from .arch_hparams import ARCH_HPARAMS
from .gguf_keys import (
    ATTENTION_CAUSAL, ATTENTION_HEAD_COUNT, ATTENTION_HEAD_COUNT_KV, ATTENTION_KEY_LENGTH,
    ATTENTION_KEY_LENGTH_SWA, ATTENTION_VALUE_LENGTH, ATTENTION_VALUE_LENGTH_SWA, BLOCK_COUNT, CONTEXT_LENGTH,
    EMBEDDING_LENGTH, EXPERT_COUNT, EXPERT_USED_COUNT, FEATURES_LENGTH, FEED_FORWARD_LENGTH, GENERAL_ARCHITECTURE, NEXTN_PREDICT_LAYERS,
    ROPE_DIMENSION_COUNT, ROPE_DIMENSION_COUNT_SWA,
)
from .gguf_reader import GgufFile
from .hparams import LLAMA_MAX_LAYERS, RECURRENT_ARCHS, HParams, Loader


def _u32(value: object, key: str) -> int:
    """A key llama.cpp reads as uint32_t: an integer in range, else a one-line error."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise GgufprofError(f"key {key}: expected an unsigned integer, got {value!r}")
    if not 0 <= value < 2**32:
        raise GgufprofError(f"key {key}: {value} is out of range for llama.cpp's uint32")
    return value


def load_hparams(gf: GgufFile) -> HParams:
    """``llama_model_base::load_hparams`` then the architecture's ``load_arch_hparams``."""
    arch_value = gf.kv.get(GENERAL_ARCHITECTURE)
    if arch_value is None:
        raise GgufprofError(f"{gf.path}: GGUF metadata lacks 'general.architecture', which llama.cpp requires")
    arch = str(arch_value)
    if arch not in ARCH_HPARAMS:
        raise GgufprofError(
            f"{gf.path}: unknown model architecture '{printable(arch, 60)}': llama.cpp (as vendored by the pinned "
            "llama-cpp-python) cannot load it")
    ml = Loader(gf, arch)
    hp = HParams(arch)
    if arch == "clip":
        return hp

    hp.n_ctx_train = _u32(ml.get_key(CONTEXT_LENGTH), ml.key(CONTEXT_LENGTH))
    hp.n_embd = _u32(ml.get_key(EMBEDDING_LENGTH), ml.key(EMBEDDING_LENGTH))
    hp.causal_attn = bool(ml.get_key(ATTENTION_CAUSAL, True))
    hp.n_layer_all = _u32(ml.get_key(BLOCK_COUNT), ml.key(BLOCK_COUNT))
    if not 0 < hp.n_layer_all <= LLAMA_MAX_LAYERS:  # GGML_ASSERT in load_hparams
        raise GgufprofError(
            f"{gf.path}: {ml.key(BLOCK_COUNT)} is {hp.n_layer_all}; llama.cpp accepts 1 to {LLAMA_MAX_LAYERS} layers")
    hp.n_layer_nextn = _u32(ml.get_key(NEXTN_PREDICT_LAYERS, 0), ml.key(NEXTN_PREDICT_LAYERS))
    if hp.n_layer_nextn > hp.n_layer_all:
        raise GgufprofError(f"{gf.path}: nextn_predict_layers ({hp.n_layer_nextn}) exceeds block_count ({hp.n_layer_all})")

    if arch == "wavtokenizer-dec":
        hp.n_embd = _u32(ml.get_key(FEATURES_LENGTH), ml.key(FEATURES_LENGTH))

    # MoE (llama_model_base::load_hparams): the parameter counts of inspect need total and active experts
    hp.n_expert = _u32(ml.get_key(EXPERT_COUNT, 0), ml.key(EXPERT_COUNT))
    ml.get_key_or_arr(EXPERT_USED_COUNT, hp.n_expert_used_arr, hp.n_layer_all)
    if arch in ("hunyuan_vl", "hunyuan-dense") and hp.n_expert <= 1:
        hp.n_expert, hp.n_expert_used_arr = 0, [0] * LLAMA_MAX_LAYERS

    hp.is_recr_impl = [int(arch in RECURRENT_ARCHS)] * LLAMA_MAX_LAYERS
    ml.get_key_or_arr(FEED_FORWARD_LENGTH, hp.n_ff_arr, hp.n_layer_all)
    ml.get_key_or_arr(ATTENTION_HEAD_COUNT, hp.n_head_arr, hp.n_layer_all)
    hp.n_head_kv_arr = list(hp.n_head_arr)  # n_head_kv is optional, defaults to n_head
    ml.get_key_or_arr(ATTENTION_HEAD_COUNT_KV, hp.n_head_kv_arr, hp.n_layer_all)

    if hp.n_head() > 0:
        head = hp.n_embd // hp.n_head()
        hp.n_embd_head_k_full = int(ml.get_key(ATTENTION_KEY_LENGTH, head))
        hp.n_embd_head_v_full = int(ml.get_key(ATTENTION_VALUE_LENGTH, head))
        hp.n_rot_full = int(ml.get_key(ROPE_DIMENSION_COUNT, hp.n_embd_head_k_full))
        if arch in ("llama", "deci", "falcon", "llama-embed") and hp.n_rot_full != hp.n_embd_head_k_full:
            raise GgufprofError(f"{gf.path}: invalid n_rot: {hp.n_rot_full}, expected {hp.n_embd_head_k_full}")
    hp.n_embd_head_k_swa = int(ml.get_key(ATTENTION_KEY_LENGTH_SWA, hp.n_embd_head_k_full))
    hp.n_embd_head_v_swa = int(ml.get_key(ATTENTION_VALUE_LENGTH_SWA, hp.n_embd_head_v_full))
    hp.n_rot_swa = int(ml.get_key(ROPE_DIMENSION_COUNT_SWA, hp.n_rot_full))

    ARCH_HPARAMS[arch](ml, hp)
    return hp
