"""Each architecture's ``load_arch_hparams`` (src/models/<arch>.cpp), ported for what shapes memory.

One function per llama.cpp model class that has a ``load_arch_hparams``, mirroring it statement by
statement for the fields in :class:`~.hparams.HParams` (SWA type, window and layer pattern,
recurrent layers and state sizes, MLA and indexer widths, KV sharing, NextN layers); rope, norm and
expert parameters are left out. Derived classes without their own loader map to their parent's
function in ``ARCH_HPARAMS``, the table of every architecture the vendored llama.cpp builds. A key
an architecture does not read never reaches its prediction: the port never asks for it. Keys are
named by the constants of :mod:`.gguf_keys` (llama.cpp's ``LLM_KV_*`` without the prefix).
"""

from __future__ import annotations

from collections.abc import Callable

from ..errors import GgufprofError
from .gguf_keys import (
    ATTENTION_COMPRESS_RATIOS, ATTENTION_INDEXER_HEAD_COUNT, ATTENTION_INDEXER_KEY_LENGTH,
    ATTENTION_INDEXER_KPOOL, ATTENTION_INDEXER_TOP_K, ATTENTION_INDEXER_TYPES, ATTENTION_KEY_LENGTH,
    ATTENTION_KEY_LENGTH_MLA, ATTENTION_KEY_LENGTH_MLA_SWA, ATTENTION_KEY_LENGTH_SWA, ATTENTION_KV_LORA_RANK,
    ATTENTION_KV_LORA_RANK_SWA, ATTENTION_RECURRENT_LAYERS, ATTENTION_SHARED_KV_LAYERS,
    ATTENTION_SLIDING_WINDOW, ATTENTION_SLIDING_WINDOW_PATTERN, ATTENTION_VALUE_LENGTH,
    ATTENTION_VALUE_LENGTH_MLA, ATTENTION_VALUE_LENGTH_MLA_SWA, ATTENTION_VALUE_LENGTH_SWA,
    FULL_ATTENTION_INTERVAL, HRM_H_CYCLES, HRM_LAYERS_PER_STACK, HRM_L_CYCLES, HYPER_CONNECTION_COUNT,
    KDA_HEAD_DIM, LEADING_DENSE_BLOCK_COUNT, NUM_LOOPS, PLE_CONV_KERNEL, PLE_HEADS_PER_NGRAM, PLE_LAYERS,
    PLE_NGRAM_SIZE, ROPE_DIMENSION_COUNT_SWA, SHORTCONV_L_CACHE, SSM_CONV_KERNEL, SSM_GROUP_COUNT,
    SSM_INNER_SIZE, SSM_STATE_SIZE, SSM_TIME_STEP_RANK, TOKEN_SHIFT_COUNT, WKV_HEAD_SIZE,
)
from .hparams import LLAMA_MAX_LAYERS, SWA_CHUNKED, SWA_NONE, SWA_STANDARD, SWA_SYMMETRIC, HParams, Loader  # noqa: F401


# --- A --------------------------------------------------------------------------------
def load_swa_pattern(ml: Loader, hp: HParams, n: int, dense_first: bool = False) -> None:
    """``llama_model_base::load_swa_pattern`` (src/llama-model.cpp): a per-layer array wins, else
    the key's period (or ``n``) through ``set_swa_pattern``."""
    if ml.get_arr(ATTENTION_SLIDING_WINDOW_PATTERN, hp.is_swa_impl) is not None:
        return
    n = int(ml.get_key(ATTENTION_SLIDING_WINDOW_PATTERN, n))
    hp.set_swa_pattern(n, dense_first)


def _recurrent_where_no_kv_heads(hp: HParams, n_layers: int) -> None:
    """``is_recr_impl[il] = n_head_kv(il) == 0`` for the first ``n_layers`` layers: the rule of the
    hybrids whose files mark recurrent (SSM, short-conv, KDA) layers by zero KV heads."""
    for il in range(n_layers):
        hp.is_recr_impl[il] = int(hp.n_head_kv(il) == 0)


# --- key groups that several architectures read identically ------------------------------------
# Each reads its keys in llama.cpp's order, with llama.cpp's required-ness and defaults, so that a
# missing key fails with the same message as the spelled-out reads did. Where an architecture reads
# one of these groups differently (fewer keys, defaults, another order) it spells its reads out.


def read_ssm(ml: Loader, hp: HParams) -> None:
    """The SSM state sizes, all five required: conv kernel, inner size, state size, time-step rank,
    group count. As read by src/models/falcon-h1.cpp, granite-hybrid.cpp, mamba2.cpp, nemotron-h.cpp,
    plamo2.cpp, qwen35.cpp, qwen35moe.cpp, qwen3next.cpp and qwen4exp.cpp (mamba.cpp and jamba.cpp
    have no group count and spell out the first four)."""
    hp.ssm_d_conv = int(ml.get_key(SSM_CONV_KERNEL))
    hp.ssm_d_inner = int(ml.get_key(SSM_INNER_SIZE))
    hp.ssm_d_state = int(ml.get_key(SSM_STATE_SIZE))
    hp.ssm_dt_rank = int(ml.get_key(SSM_TIME_STEP_RANK))
    hp.ssm_n_group = int(ml.get_key(SSM_GROUP_COUNT))


def read_indexer(ml: Loader, hp: HParams) -> None:
    """The sparse-attention indexer's head count, key length and top-k, all three required. As read
    by src/models/deepseek32.cpp, deepseek4.cpp, dots3note.cpp, glm-dsa.cpp, glm5-next.cpp,
    minimax-m3.cpp and qwen4exp.cpp (hy-v4.cpp reads them as optional and spells them out)."""
    hp.indexer_n_head = int(ml.get_key(ATTENTION_INDEXER_HEAD_COUNT))
    hp.indexer_head_size = int(ml.get_key(ATTENTION_INDEXER_KEY_LENGTH))
    hp.indexer_top_k = int(ml.get_key(ATTENTION_INDEXER_TOP_K))


def read_deepseek_mla(ml: Loader, hp: HParams) -> None:
    """DeepSeek's MLA parameters: the KV LoRA rank (required), then the MLA key and value head sizes
    (optional, keeping their current values). As read by src/models/deepseek2.cpp, deepseek32.cpp
    and glm-dsa.cpp (dots3note.cpp and hy-v4.cpp require all three and spell them out)."""
    hp.n_lora_kv = int(ml.get_key(ATTENTION_KV_LORA_RANK))
    hp.n_embd_head_k_mla_impl = int(ml.get_key(ATTENTION_KEY_LENGTH_MLA, hp.n_embd_head_k_mla_impl))
    hp.n_embd_head_v_mla_impl = int(ml.get_key(ATTENTION_VALUE_LENGTH_MLA, hp.n_embd_head_v_mla_impl))


def read_mla_kda(ml: Loader, hp: HParams) -> None:
    """The MLA + KDA hybrids' (Kimi-Linear family) widths, all five required, in this order: MLA key
    and value head sizes, KV LoRA rank, then the KDA layers' conv kernel and head size. As read by
    src/models/bailingmoe3.cpp, glm5-next.cpp, kimi-k3.cpp and kimi-linear.cpp."""
    hp.n_embd_head_k_mla_impl = int(ml.get_key(ATTENTION_KEY_LENGTH_MLA))
    hp.n_embd_head_v_mla_impl = int(ml.get_key(ATTENTION_VALUE_LENGTH_MLA))
    hp.n_lora_kv = int(ml.get_key(ATTENTION_KV_LORA_RANK))
    hp.ssm_d_conv = int(ml.get_key(SSM_CONV_KERNEL))
    hp.n_embd_head_kda = int(ml.get_key(KDA_HEAD_DIM))


def read_wkv(ml: Loader, hp: HParams) -> None:
    """RWKV's state sizes: the WKV head size (required) and the token-shift count (optional). As read
    by src/models/rwkv6.cpp, rwkv6qwen2.cpp, rwkv7.cpp and arwkv7.cpp."""
    hp.wkv_head_size = int(ml.get_key(WKV_HEAD_SIZE))
    hp.token_shift_count = int(ml.get_key(TOKEN_SHIFT_COUNT, hp.token_shift_count))


def read_swa_window_and_pattern(ml: Loader, hp: HParams) -> None:
    """The sliding window (required), then the per-layer SWA array (required too: ``get_arr``'s
    ``required`` defaults to true in llama_model_loader). As read by src/models/maple.cpp,
    mimo2.cpp, spark2-5.cpp and step35.cpp (dots3note.cpp, gemma4.cpp and granite-swa.cpp read the
    two with other keys between or in the other order, and spell them out)."""
    hp.n_swa = int(ml.get_key(ATTENTION_SLIDING_WINDOW))
    ml.get_arr(ATTENTION_SLIDING_WINDOW_PATTERN, hp.is_swa_impl, required=True)


def _plain(ml: Loader, hp: HParams) -> None:
    """The architectures whose ``load_arch_hparams`` sets nothing that shapes memory (only rope,
    norm, expert or output parameters): the shared load_hparams says it all. clip never gets here
    (load_hparams returns early for it)."""


def _afmoe(ml: Loader, hp: HParams) -> None:
    """src/models/afmoe.cpp"""
    hp.n_layer_dense_lead = int(ml.get_key(LEADING_DENSE_BLOCK_COUNT, hp.n_layer_dense_lead))
    hp.n_swa = int(ml.get_key(ATTENTION_SLIDING_WINDOW, hp.n_swa))

    # Set up interleaved sliding window attention (ISWA)
    # Pattern: 3 sliding - 1 full (global_attn_every_n_layers = 4)
    if hp.n_swa > 0:
        hp.swa_type = SWA_STANDARD
        load_swa_pattern(ml, hp, 4)
    else:
        hp.swa_type = SWA_NONE


def _arwkv7(ml: Loader, hp: HParams) -> None:
    """src/models/arwkv7.cpp"""
    read_wkv(ml, hp)


def _bailingmoe(ml: Loader, hp: HParams) -> None:
    """src/models/bailingmoe.cpp"""
    hp.n_layer_dense_lead = int(ml.get_key(LEADING_DENSE_BLOCK_COUNT, hp.n_layer_dense_lead))


def _bailingmoe2(ml: Loader, hp: HParams) -> None:
    """src/models/bailingmoe2.cpp"""
    hp.n_layer_dense_lead = int(ml.get_key(LEADING_DENSE_BLOCK_COUNT, hp.n_layer_dense_lead))


def _bailingmoe3(ml: Loader, hp: HParams) -> None:
    """src/models/bailingmoe3.cpp"""
    read_mla_kda(ml, hp)
    hp.n_layer_dense_lead = int(ml.get_key(LEADING_DENSE_BLOCK_COUNT))

    # layers without KV heads are KDA (recurrent) layers
    _recurrent_where_no_kv_heads(hp, hp.n_layer())


def _cohere2(ml: Loader, hp: HParams) -> None:
    """src/models/cohere2.cpp"""
    hp.swa_type = SWA_STANDARD
    load_swa_pattern(ml, hp, 4)

    hp.n_swa = int(ml.get_key(ATTENTION_SLIDING_WINDOW))


def _cohere2moe(ml: Loader, hp: HParams) -> None:
    """src/models/cohere2moe.cpp"""
    hp.n_swa = int(ml.get_key(ATTENTION_SLIDING_WINDOW))
    hp.n_layer_dense_lead = int(ml.get_key(LEADING_DENSE_BLOCK_COUNT))

    hp.swa_type = SWA_STANDARD
    load_swa_pattern(ml, hp, 4, True)


def _deepseek(ml: Loader, hp: HParams) -> None:
    """src/models/deepseek.cpp"""
    hp.n_layer_dense_lead = int(ml.get_key(LEADING_DENSE_BLOCK_COUNT, hp.n_layer_dense_lead))


def _deepseek2(ml: Loader, hp: HParams) -> None:
    """src/models/deepseek2.cpp"""
    # (is_lite only decides whether q_lora_rank is required: not memory-relevant)
    hp.n_layer_dense_lead = int(ml.get_key(LEADING_DENSE_BLOCK_COUNT, hp.n_layer_dense_lead))
    read_deepseek_mla(ml, hp)


def _deepseek2ocr(ml: Loader, hp: HParams) -> None:
    """src/models/deepseek2ocr.cpp"""
    # similar to deepseek2, but without MLA
    hp.n_layer_dense_lead = int(ml.get_key(LEADING_DENSE_BLOCK_COUNT, hp.n_layer_dense_lead))


def _deepseek32(ml: Loader, hp: HParams) -> None:
    """src/models/deepseek32.cpp"""
    # MoE parameters
    hp.n_layer_dense_lead = int(ml.get_key(LEADING_DENSE_BLOCK_COUNT, hp.n_layer_dense_lead))

    # deepseek MLA parameters
    read_deepseek_mla(ml, hp)

    # DSA parameters
    read_indexer(ml, hp)


def _deepseek4(ml: Loader, hp: HParams) -> None:
    """src/models/deepseek4.cpp"""
    # a GGUF converted without its MTP block keeps nextn_predict_layers: drop them when the
    # NextN tensors are absent
    if hp.n_layer_nextn > 0:
        n_layer_main = hp.n_layer_all - hp.n_layer_nextn
        mtp_probe = "blk." + str(n_layer_main) + ".nextn.eh_proj.weight"
        if not ml.has_tensor(mtp_probe):
            hp.n_layer_nextn = 0

    hp.n_swa = int(ml.get_key(ATTENTION_SLIDING_WINDOW))

    read_indexer(ml, hp)

    hp.dsv4_hc_mult = int(ml.get_key(HYPER_CONNECTION_COUNT))

    n_compress_ratios = ml.get_arr_n(ATTENTION_COMPRESS_RATIOS, required=True)
    if n_compress_ratios < hp.n_layer_all:
        raise GgufprofError("DeepSeek-V4 compress_ratios is shorter than block_count")
    ml.get_arr(ATTENTION_COMPRESS_RATIOS, hp.dsv4_compress_ratios, required=True)

    hp.swa_type = SWA_STANDARD
    hp.set_swa_pattern(0)
    # tokens of an image span attend bidirectionally to the whole span, the window only applies to older tokens
    # (non_causal_type = SWA_FULL: masks only)
    for il in range(hp.n_layer(), hp.n_layer_all):
        hp.is_swa_impl[il] = 1


def _dflash(ml: Loader, hp: HParams) -> None:
    """src/models/dflash.cpp"""
    # DeepSeek-V4 DSpark backbone: stages are full DSV4 blocks, uniform sliding window (the draft KV ring)
    hp.dsv4_hc_mult = int(ml.get_key(HYPER_CONNECTION_COUNT, hp.dsv4_hc_mult))
    if hp.dsv4_hc_mult > 0:
        hp.n_swa = int(ml.get_key(ATTENTION_SLIDING_WINDOW))
        ml.get_arr(ATTENTION_COMPRESS_RATIOS, hp.dsv4_compress_ratios)

        for il in range(hp.n_layer_all):
            if hp.dsv4_compress_ratios[il] != 0:
                raise GgufprofError("DSpark DSV4 draft expects uncompressed attention on all stages")

        if not hp.n_swa > 0:  # GGML_ASSERT
            raise GgufprofError("GGML_ASSERT(hparams.n_swa > 0) failed")
        hp.swa_type = SWA_STANDARD
        hp.set_swa_pattern(0)
        for il in range(hp.n_layer_all):
            hp.is_swa_impl[il] = 1
        return

    # optional interleaved sliding-window attention with per-layer pattern array.
    found_swa = ml.has(ATTENTION_SLIDING_WINDOW)
    hp.n_swa = int(ml.get_key(ATTENTION_SLIDING_WINDOW, hp.n_swa))
    if found_swa and hp.n_swa > 0:
        hp.swa_type = SWA_STANDARD
        ml.get_arr(ATTENTION_SLIDING_WINDOW_PATTERN, hp.is_swa_impl, required=True)


def _dots1(ml: Loader, hp: HParams) -> None:
    """src/models/dots1.cpp"""
    hp.n_layer_dense_lead = int(ml.get_key(LEADING_DENSE_BLOCK_COUNT, hp.n_layer_dense_lead))


def _dots3note(ml: Loader, hp: HParams) -> None:
    """src/models/dots3note.cpp"""
    # MoE parameters
    hp.n_layer_dense_lead = int(ml.get_key(LEADING_DENSE_BLOCK_COUNT))

    # MLA parameters of the full-attention layers
    hp.n_lora_kv = int(ml.get_key(ATTENTION_KV_LORA_RANK))
    hp.n_embd_head_k_mla_impl = int(ml.get_key(ATTENTION_KEY_LENGTH_MLA))
    hp.n_embd_head_v_mla_impl = int(ml.get_key(ATTENTION_VALUE_LENGTH_MLA))

    # MLA parameters of the sliding-window layers
    hp.n_lora_kv_swa = int(ml.get_key(ATTENTION_KV_LORA_RANK_SWA))
    hp.n_embd_head_k_mla_swa = int(ml.get_key(ATTENTION_KEY_LENGTH_MLA_SWA))
    hp.n_embd_head_v_mla_swa = int(ml.get_key(ATTENTION_VALUE_LENGTH_MLA_SWA))

    hp.swa_type = SWA_STANDARD
    hp.n_swa = int(ml.get_key(ATTENTION_SLIDING_WINDOW))
    # (rope.freq_base_swa is required here too, read between these two lines in llama.cpp)
    ml.get_arr(ATTENTION_SLIDING_WINDOW_PATTERN, hp.is_swa_impl, required=True)

    # DSA parameters
    read_indexer(ml, hp)
    ml.get_arr(ATTENTION_INDEXER_TYPES, hp.is_indexer_full_impl, required=True)


def _dream(ml: Loader, hp: HParams) -> None:
    """src/models/dream.cpp"""
    # Set non-causal attention for diffusion models
    hp.causal_attn = False


def _ernie4_5(ml: Loader, hp: HParams) -> None:
    """src/models/ernie4-5.cpp"""
    if hp.arch == "ernie4_5-moe":
        hp.n_layer_dense_lead = int(ml.get_key(LEADING_DENSE_BLOCK_COUNT, hp.n_layer_dense_lead))


def _exaone_moe(ml: Loader, hp: HParams) -> None:
    """src/models/exaone-moe.cpp"""
    hp.swa_type = SWA_STANDARD
    hp.n_swa = 128
    load_swa_pattern(ml, hp, 4)

    hp.n_swa = int(ml.get_key(ATTENTION_SLIDING_WINDOW))
    hp.n_layer_dense_lead = int(ml.get_key(LEADING_DENSE_BLOCK_COUNT, hp.n_layer_dense_lead))


def _exaone4(ml: Loader, hp: HParams) -> None:
    """src/models/exaone4.cpp"""
    if hp.n_layer() == 64:  # 32B
        hp.swa_type = SWA_STANDARD
        hp.n_swa = 4096
        load_swa_pattern(ml, hp, 4)

    hp.n_swa = int(ml.get_key(ATTENTION_SLIDING_WINDOW, hp.n_swa))


def _falcon_h1(ml: Loader, hp: HParams) -> None:
    """src/models/falcon-h1.cpp"""
    # SSM parameters
    read_ssm(ml, hp)

    hp.is_recr_impl = [1] * len(hp.is_recr_impl)


def _gemma_embedding(ml: Loader, hp: HParams) -> None:
    """src/models/gemma-embedding.cpp"""
    hp.swa_type = SWA_SYMMETRIC
    load_swa_pattern(ml, hp, 6)

    hp.causal_attn = False  # embeddings do not use causal attention

    hp.n_swa = int(ml.get_key(ATTENTION_SLIDING_WINDOW))


def _gemma2(ml: Loader, hp: HParams) -> None:
    """src/models/gemma2.cpp"""
    hp.swa_type = SWA_STANDARD
    hp.n_swa = 4096  # default value of gemma 2
    load_swa_pattern(ml, hp, 2)

    hp.n_swa = int(ml.get_key(ATTENTION_SLIDING_WINDOW, hp.n_swa))


def _gemma3(ml: Loader, hp: HParams) -> None:
    """src/models/gemma3.cpp"""
    found_swa = ml.has(ATTENTION_SLIDING_WINDOW)
    hp.n_swa = int(ml.get_key(ATTENTION_SLIDING_WINDOW, hp.n_swa))
    if found_swa and hp.n_swa > 0:
        hp.swa_type = SWA_STANDARD
        load_swa_pattern(ml, hp, 6)
    else:
        hp.swa_type = SWA_NONE


def _gemma3n(ml: Loader, hp: HParams) -> None:
    """src/models/gemma3n.cpp"""
    hp.swa_type = SWA_STANDARD
    load_swa_pattern(ml, hp, 5)

    hp.n_layer_kv_from_start = 20

    hp.n_swa = int(ml.get_key(ATTENTION_SLIDING_WINDOW))


def _gemma4_assistant(ml: Loader, hp: HParams) -> None:
    """src/models/gemma4-assistant.cpp"""
    hp.swa_type = SWA_STANDARD
    ml.get_arr(ATTENTION_SLIDING_WINDOW_PATTERN, hp.is_swa_impl, required=True)

    # (attention.shared_kv_layers is read into a local that is never used)

    hp.n_swa = int(ml.get_key(ATTENTION_SLIDING_WINDOW))
    hp.n_embd_head_k_swa = int(ml.get_key(ATTENTION_KEY_LENGTH_SWA))
    hp.n_embd_head_v_swa = int(ml.get_key(ATTENTION_VALUE_LENGTH_SWA))


_PART1: dict[str, Callable[[Loader, HParams], None]] = {
    "afmoe": _afmoe,
    "apertus": _plain,
    "arcee": _plain,
    "arctic": _plain,
    "arwkv7": _arwkv7,
    "baichuan": _plain,
    "bailingmoe": _bailingmoe,
    "bailingmoe2": _bailingmoe2,
    "bailingmoe3": _bailingmoe3,
    "bert": _plain,
    "bitnet": _plain,
    "bloom": _plain,
    "chameleon": _plain,
    "chatglm": _plain,
    "clip": _plain,
    "codeshell": _plain,
    "cogvlm": _plain,
    "cohere2": _cohere2,
    "cohere2moe": _cohere2moe,
    "command-r": _plain,
    "dbrx": _plain,
    "deci": _plain,
    "deepseek": _deepseek,
    "deepseek2": _deepseek2,
    "mistral4": _deepseek2,
    "deepseek2-ocr": _deepseek2ocr,
    "deepseek32": _deepseek32,
    "deepseek4": _deepseek4,
    "dflash": _dflash,
    "dots1": _dots1,
    "dots3note": _dots3note,
    "dream": _dream,
    "eagle3": _plain,
    "ernie4_5": _ernie4_5,
    "ernie4_5-moe": _ernie4_5,
    "paddleocr": _ernie4_5,
    "eurobert": _plain,
    "exaone-moe": _exaone_moe,
    "exaone": _plain,
    "exaone4": _exaone4,
    "falcon-h1": _falcon_h1,
    "falcon": _plain,
    "gemma-embedding": _gemma_embedding,
    "gemma": _plain,
    "gemma2": _gemma2,
    "gemma3": _gemma3,
    "gemma3n": _gemma3n,
    "gemma4-assistant": _gemma4_assistant,
}


# --- B --------------------------------------------------------------------------------


def _i32(x: int) -> int:
    """C++ conversion of an unsigned 32-bit result to ``int32_t`` (two's complement wrap)."""
    x &= 0xFFFFFFFF
    return x - (1 << 32) if x >= (1 << 31) else x


def _gemma4(ml: Loader, hp: HParams) -> None:
    """src/models/gemma4.cpp"""
    hp.swa_type = SWA_STANDARD
    ml.get_arr(ATTENTION_SLIDING_WINDOW_PATTERN, hp.is_swa_impl, required=True)

    n_kv_shared_layers = int(ml.get_key(ATTENTION_SHARED_KV_LAYERS, 0))

    # uint32 n_layer_all - (int32_t) n_kv_shared_layers, stored in an int32_t
    hp.n_layer_kv_from_start = _i32(hp.n_layer_all - n_kv_shared_layers)

    hp.n_swa = int(ml.get_key(ATTENTION_SLIDING_WINDOW))
    hp.n_embd_head_k_swa = int(ml.get_key(ATTENTION_KEY_LENGTH_SWA))
    hp.n_embd_head_v_swa = int(ml.get_key(ATTENTION_VALUE_LENGTH_SWA))


# https://huggingface.co/zai-org/GLM-5.2/blob/main/config.json#L26
# (src/models/glm-dsa.cpp: 1, 1, then 19 x {1, 0, 0, 0}; the rest of the LLAMA_MAX_LAYERS array is 0)
GLM_5_2_DEFAULT_INDEXER_TYPES = ([1, 1] + [1, 0, 0, 0] * 19)
GLM_5_2_DEFAULT_INDEXER_TYPES += [0] * (LLAMA_MAX_LAYERS - len(GLM_5_2_DEFAULT_INDEXER_TYPES))


def _glm_dsa(ml: Loader, hp: HParams) -> None:
    """src/models/glm-dsa.cpp"""
    # MoE parameters
    hp.n_layer_dense_lead = int(ml.get_key(LEADING_DENSE_BLOCK_COUNT, hp.n_layer_dense_lead))

    # deepseek MLA parameters
    read_deepseek_mla(ml, hp)

    # DSA parameters
    read_indexer(ml, hp)

    # BC for GLM 5, 5.1 (full indexers) without indexer_types metadata
    is_pre_5_2 = hp.n_ctx_train < 1048576
    if is_pre_5_2:
        hp.is_indexer_full_impl = [1] * len(hp.is_indexer_full_impl)
    else:
        hp.is_indexer_full_impl = list(GLM_5_2_DEFAULT_INDEXER_TYPES)
    ml.get_key_or_arr(ATTENTION_INDEXER_TYPES, hp.is_indexer_full_impl, hp.n_layer())


def _glm4_moe(ml: Loader, hp: HParams) -> None:
    """src/models/glm4-moe.cpp"""
    # MoE parameters
    hp.n_layer_dense_lead = int(ml.get_key(LEADING_DENSE_BLOCK_COUNT, hp.n_layer_dense_lead))


def _glm5_next(ml: Loader, hp: HParams) -> None:
    """src/models/glm5-next.cpp"""
    read_mla_kda(ml, hp)

    # the MLA cache holds the compressed latent
    hp.n_embd_head_v_full = hp.n_lora_kv

    _recurrent_where_no_kv_heads(hp, hp.n_layer_all)

    hp.n_layer_dense_lead = int(ml.get_key(LEADING_DENSE_BLOCK_COUNT, hp.n_layer_dense_lead))

    # DSA indexer with k-pool compression
    read_indexer(ml, hp)
    # indexer_kpool is not an HParams field yet: llama_memory_hybrid_idx sizes the indexer cache
    # rows as indexer_head_size * (indexer_kpool > 0 ? 3 : 1) (src/llama-memory-hybrid-idx.cpp)
    hp.indexer_kpool = int(ml.get_key(ATTENTION_INDEXER_KPOOL))
    if not (hp.indexer_kpool > 1 and hp.indexer_top_k % hp.indexer_kpool == 0):
        raise GgufprofError(
            "GGML_ASSERT(hparams.indexer_kpool > 1 && hparams.indexer_top_k % hparams.indexer_kpool == 0) failed "
            f"(glm5-next: indexer.kpool = {hp.indexer_kpool}, indexer.top_k = {hp.indexer_top_k})")
    hp.is_indexer_full_impl = [1] * len(hp.is_indexer_full_impl)
    ml.get_key_or_arr(ATTENTION_INDEXER_TYPES, hp.is_indexer_full_impl, hp.n_layer())

    # mHC
    hp.dsv4_hc_mult = int(ml.get_key(HYPER_CONNECTION_COUNT))
    if hp.dsv4_hc_mult != 4:
        raise GgufprofError(
            f'GGML_ASSERT(hparams.dsv4_hc_mult == 4 && "mHC with hc_mult != 4 is not supported") failed '
            f"(glm5-next: hyper_connection.count = {hp.dsv4_hc_mult})")


def _granite_hybrid(ml: Loader, hp: HParams) -> None:
    """src/models/granite-hybrid.cpp"""
    read_ssm(ml, hp)

    # A layer is recurrent IFF the n_head_kv value is set to 0
    _recurrent_where_no_kv_heads(hp, hp.n_layer())


def _granite_swa(ml: Loader, hp: HParams) -> None:
    """src/models/granite-swa.cpp"""
    # iSWA configuration
    ml.get_arr(ATTENTION_SLIDING_WINDOW_PATTERN, hp.is_swa_impl, required=True)
    hp.n_swa = int(ml.get_key(ATTENTION_SLIDING_WINDOW))
    hp.swa_type = SWA_STANDARD


def _granite_switch(ml: Loader, hp: HParams) -> None:
    """src/models/granite-switch.cpp"""
    # extra single-head attention layer at the END (index n_real) holds the router
    # K/V. reusing n_layer_nextn keeps n_layer() == n_real, so the regular layers
    # keep their indices and the KV cache shift/defrag skips the router layer.
    # n_layer_nextn is repurposed here (no MTP): it leaks as 1 into the
    # llama_model_n_layer_nextn() getter and a re-saved nextn_predict_layers
    n_real = hp.n_layer()
    if n_real >= LLAMA_MAX_LAYERS:
        raise GgufprofError(f"graniteswitch: block count {n_real} exceeds LLAMA_MAX_LAYERS")
    hp.router_layer = n_real
    hp.n_layer_all = n_real + 1
    hp.n_layer_nextn = 1

    hp.n_head_arr[n_real] = 1
    hp.n_head_kv_arr[n_real] = 1
    hp.n_ff_arr[n_real] = 0


def _hrm_text(ml: Loader, hp: HParams) -> None:
    """src/models/hrm-text.cpp"""
    n_hrm_layers_per_stack = int(ml.get_key(HRM_LAYERS_PER_STACK))
    n_hrm_h_cycles = int(ml.get_key(HRM_H_CYCLES))
    n_hrm_l_cycles = int(ml.get_key(HRM_L_CYCLES))

    if not n_hrm_layers_per_stack > 0:
        raise GgufprofError("GGML_ASSERT(hparams.n_hrm_layers_per_stack > 0) failed")
    if not n_hrm_h_cycles > 0:
        raise GgufprofError("GGML_ASSERT(hparams.n_hrm_h_cycles > 0) failed")
    if not n_hrm_l_cycles > 0:
        raise GgufprofError("GGML_ASSERT(hparams.n_hrm_l_cycles > 0) failed")

    # the GGUF block count is the expanded cache-slot count
    n_slot = (n_hrm_layers_per_stack * n_hrm_h_cycles * (n_hrm_l_cycles + 1)) & 0xFFFFFFFF
    if hp.n_layer() != n_slot:
        raise GgufprofError(
            f"GGML_ASSERT(hparams.n_layer() == n_slot) failed (hrm_text: n_layer = {hp.n_layer()}, "
            f"layers_per_stack * h_cycles * (l_cycles + 1) = {n_slot})")


def _hy_v4(ml: Loader, hp: HParams) -> None:
    """src/models/hy-v4.cpp"""
    hp.n_layer_dense_lead = int(ml.get_key(LEADING_DENSE_BLOCK_COUNT, hp.n_layer_dense_lead))
    hp.n_lora_kv = int(ml.get_key(ATTENTION_KV_LORA_RANK))
    hp.n_embd_head_k_mla_impl = int(ml.get_key(ATTENTION_KEY_LENGTH_MLA))
    hp.n_embd_head_v_mla_impl = int(ml.get_key(ATTENTION_VALUE_LENGTH_MLA))

    hp.dsv4_hc_mult = int(ml.get_key(HYPER_CONNECTION_COUNT))

    # DSA is absent on the all-full_attention checkpoints, so indexer_top_k stays 0 there
    hp.indexer_n_head = int(ml.get_key(ATTENTION_INDEXER_HEAD_COUNT, hp.indexer_n_head))
    hp.indexer_head_size = int(ml.get_key(ATTENTION_INDEXER_KEY_LENGTH, hp.indexer_head_size))
    hp.indexer_top_k = int(ml.get_key(ATTENTION_INDEXER_TOP_K, hp.indexer_top_k))

    if hp.indexer_top_k > 0:
        n_rot = hp.n_rot_swa if hp.is_swa(0) else hp.n_rot_full  # hparams.n_rot()
        if hp.indexer_n_head == 0 or hp.indexer_head_size <= n_rot:
            raise GgufprofError("hy_v4: bad indexer head count / key length")

        ml.get_key_or_arr(ATTENTION_INDEXER_TYPES, hp.is_indexer_full_impl, hp.n_layer())
        if not hp.is_indexer_full(0):
            raise GgufprofError("hy_v4: layer 0 must own an indexer, nothing precedes it to share")

    if not hp.is_mla():
        raise GgufprofError("GGML_ASSERT(hparams.is_mla()) failed (hy_v4)")


def _jamba(ml: Loader, hp: HParams) -> None:
    """src/models/jamba.cpp"""
    hp.ssm_d_conv = int(ml.get_key(SSM_CONV_KERNEL))
    hp.ssm_d_inner = int(ml.get_key(SSM_INNER_SIZE))
    hp.ssm_d_state = int(ml.get_key(SSM_STATE_SIZE))
    hp.ssm_dt_rank = int(ml.get_key(SSM_TIME_STEP_RANK))

    _recurrent_where_no_kv_heads(hp, hp.n_layer())


def _kimi_k3(ml: Loader, hp: HParams) -> None:
    """src/models/kimi-k3.cpp"""
    read_mla_kda(ml, hp)

    # the MLA cache holds the compressed latent
    # set it here too, as older GGUFs have no value_length key
    hp.n_embd_head_v_full = hp.n_lora_kv

    # n_head_kv == 0 marks a KDA (recurrent) layer, as in kimi-linear
    _recurrent_where_no_kv_heads(hp, hp.n_layer())

    hp.n_layer_dense_lead = int(ml.get_key(LEADING_DENSE_BLOCK_COUNT, hp.n_layer_dense_lead))


def _kimi_linear(ml: Loader, hp: HParams) -> None:
    """src/models/kimi-linear.cpp"""
    read_mla_kda(ml, hp)

    # Mark KDA layers as recurrent using n_head_kv pattern (like Jamba)
    # Set n_head_kv = 0 for KDA layers (recurrent), n_head_kv = n_head for MLA layers (attention)
    _recurrent_where_no_kv_heads(hp, hp.n_layer())

    hp.n_layer_dense_lead = int(ml.get_key(LEADING_DENSE_BLOCK_COUNT, hp.n_layer_dense_lead))


def _laguna(ml: Loader, hp: HParams) -> None:
    """src/models/laguna.cpp"""
    hp.n_layer_dense_lead = int(ml.get_key(LEADING_DENSE_BLOCK_COUNT))

    # Sliding-window attention is OPTIONAL. XS.2 is hybrid (full / SWA / SWA /
    # SWA repeating, period 4 starting with full); M.1 has no sliding window
    # (all layers full attention). When sliding_window is absent or zero we
    # leave swa_type = NONE and skip the SWA-specific per-layer-type RoPE.
    hp.n_swa = 0
    hp.n_swa = int(ml.get_key(ATTENTION_SLIDING_WINDOW, hp.n_swa))
    if hp.n_swa > 0:
        hp.swa_type = SWA_STANDARD

        load_swa_pattern(ml, hp, 4, dense_first=True)  # XS.2: FULL at il%4==0

        hp.n_rot_swa = int(ml.get_key(ROPE_DIMENSION_COUNT_SWA, hp.n_rot_swa))


def _lfm2(ml: Loader, hp: HParams) -> None:
    """src/models/lfm2.cpp"""
    hp.n_shortconv_l_cache = int(ml.get_key(SHORTCONV_L_CACHE))

    _recurrent_where_no_kv_heads(hp, hp.n_layer())

    hp.n_layer_dense_lead = hp.n_layer()

    is_swa = ml.has(ATTENTION_SLIDING_WINDOW)
    hp.n_swa = int(ml.get_key(ATTENTION_SLIDING_WINDOW, hp.n_swa))
    if is_swa and hp.n_swa > 0:
        hp.swa_type = SWA_STANDARD
        for il in range(hp.n_layer()):
            hp.is_swa_impl[il] = int(not hp.is_recr_impl[il])


def _lfm2moe(ml: Loader, hp: HParams) -> None:
    """src/models/lfm2moe.cpp"""
    hp.n_shortconv_l_cache = int(ml.get_key(SHORTCONV_L_CACHE))
    hp.n_layer_dense_lead = int(ml.get_key(LEADING_DENSE_BLOCK_COUNT, hp.n_layer_dense_lead))

    _recurrent_where_no_kv_heads(hp, hp.n_layer())


def _llada_moe(ml: Loader, hp: HParams) -> None:
    """src/models/llada-moe.cpp"""
    # diffusion language model uses non-causal attention
    hp.causal_attn = False


def _llada(ml: Loader, hp: HParams) -> None:
    """src/models/llada.cpp"""
    # Set non-causal attention for diffusion models
    hp.causal_attn = False


def _llama4(ml: Loader, hp: HParams) -> None:
    """src/models/llama4.cpp"""
    found_swa = ml.has(ATTENTION_SLIDING_WINDOW)
    hp.n_swa = int(ml.get_key(ATTENTION_SLIDING_WINDOW, hp.n_swa))
    if found_swa and hp.n_swa == 0:
        hp.swa_type = SWA_NONE
    else:
        hp.swa_type = SWA_CHUNKED
        hp.n_swa = 8192  # hard-coded: overrides any non-zero sliding_window from the GGUF

        load_swa_pattern(ml, hp, 4)  # pattern: 3 chunked - 1 full


def _mamba(ml: Loader, hp: HParams) -> None:
    """src/models/mamba.cpp"""
    hp.ssm_d_conv = int(ml.get_key(SSM_CONV_KERNEL))
    hp.ssm_d_inner = int(ml.get_key(SSM_INNER_SIZE))
    hp.ssm_d_state = int(ml.get_key(SSM_STATE_SIZE))
    hp.ssm_dt_rank = int(ml.get_key(SSM_TIME_STEP_RANK))


def _mamba2(ml: Loader, hp: HParams) -> None:
    """src/models/mamba2.cpp"""
    read_ssm(ml, hp)


def _maple(ml: Loader, hp: HParams) -> None:
    """src/models/maple.cpp"""
    hp.swa_type = SWA_STANDARD

    read_swa_window_and_pattern(ml, hp)


def _mellum(ml: Loader, hp: HParams) -> None:
    """src/models/mellum.cpp"""
    hp.n_swa = int(ml.get_key(ATTENTION_SLIDING_WINDOW, hp.n_swa))

    if hp.n_swa > 0:
        hp.swa_type = SWA_STANDARD

        load_swa_pattern(ml, hp, 4)
    else:
        hp.swa_type = SWA_NONE


_PART2: dict[str, Callable[[Loader, HParams], None]] = {
    "gemma4": _gemma4,
    "glm-dsa": _glm_dsa,
    "glm4moe": _glm4_moe,
    "glm4": _plain,
    "glm5-next": _glm5_next,
    "gpt2": _plain,
    "gptneox": _plain,
    "granitehybrid": _granite_hybrid,
    "granitemoe": _plain,
    "granite_swa": _granite_swa,
    "graniteswitch": _granite_switch,
    "granite": _plain,
    "grok": _plain,
    "grovemoe": _plain,
    "hrm_text": _hrm_text,
    "hunyuan-moe": _plain,
    "hunyuan-dense": _plain,  # llama_model_hunyuan_dense derives from llama_model_hunyuan_vl
    "hunyuan_vl": _plain,
    "hy_v3": _plain,
    "hy_v4": _hy_v4,
    "internlm2": _plain,
    "jais": _plain,
    "jais2": _plain,
    "jamba": _jamba,
    "jina-bert-v2": _plain,
    "jina-bert-v3": _plain,
    "kimi-k3": _kimi_k3,
    "kimi-linear": _kimi_linear,
    "laguna": _laguna,
    "lfm2": _lfm2,
    "lfm2moe": _lfm2moe,
    "llada-moe": _llada_moe,
    "llada": _llada,
    "llama": _plain,
    "llama-embed": _plain,  # llama_model_llama_embed derives from llama_model_llama
    "llama4": _llama4,
    "maincoder": _plain,
    "mamba": _mamba,
    "mamba2": _mamba2,
    "maple": _maple,
    "mellum": _mellum,
}


# --- C --------------------------------------------------------------------------------
LLAMA_MAX_PLE_NGRAM = 8  # src/llama-hparams.h (qwen4exp)
LLAMA_MAX_PLE_HEADS = 64  # src/llama-hparams.h (qwen4exp)


def _recr_every(hp: HParams, full_attn_interval: int) -> None:
    """``is_recr_impl[i] = (i < n_layer()) && ((i + 1) % full_attn_interval != 0)`` for every layer.

    A zero interval divides by zero in llama.cpp (the process dies), so it is an error here."""
    for i in range(hp.n_layer_all):
        if i < hp.n_layer() and full_attn_interval == 0:
            raise GgufprofError(
                "full_attention_interval is 0: llama.cpp divides by it and crashes while loading this model")
        hp.is_recr_impl[i] = int(i < hp.n_layer() and (i + 1) % full_attn_interval != 0)


def _mimo2(ml: Loader, hp: HParams) -> None:
    """src/models/mimo2.cpp"""
    hp.swa_type = SWA_STANDARD

    read_swa_window_and_pattern(ml, hp)


def _minicpm3(ml: Loader, hp: HParams) -> None:
    """src/models/minicpm3.cpp"""
    hp.n_lora_kv = int(ml.get_key(ATTENTION_KV_LORA_RANK))


def _minimax_01(ml: Loader, hp: HParams) -> None:
    """src/models/minimax-01.cpp"""
    # we use n_embd_head_la to set recurrent memory n_embd_s
    hp.n_embd_head_la = hp.n_embd_head_k_full

    # Mark recurrent layers (lightning attention layers).
    if not ml.get_key_or_arr(ATTENTION_RECURRENT_LAYERS, hp.is_recr_impl, hp.n_layer_all, False):
        full_attn_interval = int(ml.get_key(FULL_ATTENTION_INTERVAL, 8))
        _recr_every(hp, full_attn_interval)


def _minimax_m3(ml: Loader, hp: HParams) -> None:
    """src/models/minimax-m3.cpp"""
    # create_memory: sparse (MSA) layers carry an indexer key cache, but leading dense layers do not
    hp.n_layer_dense_lead = int(ml.get_key(LEADING_DENSE_BLOCK_COUNT, hp.n_layer_dense_lead))
    read_indexer(ml, hp)


def _modern_bert(ml: Loader, hp: HParams) -> None:
    """src/models/modern-bert.cpp"""
    found_swa = ml.has(ATTENTION_SLIDING_WINDOW)
    hp.n_swa = int(ml.get_key(ATTENTION_SLIDING_WINDOW, hp.n_swa))
    if found_swa and hp.n_swa > 0:
        hp.swa_type = SWA_SYMMETRIC
        load_swa_pattern(ml, hp, 3, True)
    else:
        hp.swa_type = SWA_NONE


def _muse_glimmer(ml: Loader, hp: HParams) -> None:
    """src/models/muse-glimmer.cpp"""
    hp.n_swa = int(ml.get_key(ATTENTION_SLIDING_WINDOW))

    hp.swa_type = SWA_STANDARD
    load_swa_pattern(ml, hp, 4)


def _nanbeige(ml: Loader, hp: HParams) -> None:
    """src/models/nanbeige.cpp"""
    max_layers = len(hp.n_head_arr)  # LLAMA_MAX_LAYERS

    n_loops_u = int(ml.get_key(NUM_LOOPS, 1))
    if not n_loops_u >= 1:
        raise GgufprofError("GGML_ASSERT(n_loops_u >= 1) failed (nanbeige num_loops)")

    n_layer_phys = hp.n_layer()

    # Bound-check before casting: signed int mul can overflow and bypass the guard.
    if not n_layer_phys * n_loops_u <= max_layers:
        raise GgufprofError(
            "GGML_ASSERT((size_t) n_layer_phys * (size_t) n_loops_u <= (size_t) LLAMA_MAX_LAYERS) failed "
            f"({n_layer_phys} layers x {n_loops_u} loops > {max_layers})")
    n_loops = n_loops_u

    # Expand logical layer count before load_tensors() allocates layers / KV.
    if n_loops > 1:
        for j in range(1, n_loops):
            for i in range(n_layer_phys):
                dst = i + j * n_layer_phys
                hp.n_head_arr[dst] = hp.n_head_arr[i]
                hp.n_head_kv_arr[dst] = hp.n_head_kv_arr[i]
                hp.n_ff_arr[dst] = hp.n_ff_arr[i]
                hp.is_swa_impl[dst] = hp.is_swa_impl[i]
                hp.is_recr_impl[dst] = hp.is_recr_impl[i]
        hp.n_layer_all = n_layer_phys * n_loops


def _nemotron_h(ml: Loader, hp: HParams) -> None:
    """src/models/nemotron-h.cpp"""
    read_ssm(ml, hp)

    # A layer is recurrent IFF the n_head_kv value is set to 0 and
    # the n_ff value is set to 0. Appended MTP blocks are dense (non-recurrent)
    for i in range(hp.n_layer_all):
        hp.is_recr_impl[i] = int(i < hp.n_layer() and hp.n_head_kv(i) == 0 and hp.n_ff(i) == 0)


def _olmo2(ml: Loader, hp: HParams) -> None:
    """src/models/olmo2.cpp"""
    found_swa = ml.has(ATTENTION_SLIDING_WINDOW)
    hp.n_swa = int(ml.get_key(ATTENTION_SLIDING_WINDOW, hp.n_swa))
    if found_swa and hp.n_swa > 0:
        hp.swa_type = SWA_STANDARD
        load_swa_pattern(ml, hp, 4)
    else:
        hp.swa_type = SWA_NONE


def _openai_moe(ml: Loader, hp: HParams) -> None:
    """src/models/openai-moe.cpp"""
    hp.n_swa = int(ml.get_key(ATTENTION_SLIDING_WINDOW))

    hp.swa_type = SWA_STANDARD
    load_swa_pattern(ml, hp, 2)


def _phi3(ml: Loader, hp: HParams) -> None:
    """src/models/phi3.cpp"""
    found_swa = ml.has(ATTENTION_SLIDING_WINDOW)
    hp.n_swa = int(ml.get_key(ATTENTION_SLIDING_WINDOW, hp.n_swa))

    if found_swa and hp.n_swa > 0:
        # "Phi SWA is currently disabled - results might be suboptimal for some models"
        # TODO: fix conversion scripts to correctly populate `n_swa` and `n_swa_pattern`
        hp.swa_type = SWA_NONE

        hp.n_swa = 0
        hp.set_swa_pattern(1)


def _plamo2(ml: Loader, hp: HParams) -> None:
    """src/models/plamo2.cpp"""
    # Load Mamba SSM parameters
    read_ssm(ml, hp)

    # Load attention parameters (read again, even when n_head() == 0 left them at 0;
    # the *_swa copies made by load_hparams are not refreshed)
    hp.n_embd_head_k_full = int(ml.get_key(ATTENTION_KEY_LENGTH, hp.n_embd_head_k_full))
    hp.n_embd_head_v_full = int(ml.get_key(ATTENTION_VALUE_LENGTH, hp.n_embd_head_v_full))

    _recurrent_where_no_kv_heads(hp, hp.n_layer())


def _plamo3(ml: Loader, hp: HParams) -> None:
    """src/models/plamo3.cpp"""
    found_swa = ml.has(ATTENTION_SLIDING_WINDOW)
    hp.n_swa = int(ml.get_key(ATTENTION_SLIDING_WINDOW, hp.n_swa))
    if found_swa and hp.n_swa > 0:
        hp.swa_type = SWA_STANDARD
        load_swa_pattern(ml, hp, 8)
    else:
        hp.swa_type = SWA_NONE


def _plm(ml: Loader, hp: HParams) -> None:
    """src/models/plm.cpp"""
    hp.n_lora_kv = int(ml.get_key(ATTENTION_KV_LORA_RANK))


def _qwen35(ml: Loader, hp: HParams) -> None:
    """src/models/qwen35.cpp, qwen35moe.cpp and qwen3next.cpp read the same memory keys: the gated
    delta net's state sizes, then which layers are linear attention (recurrent)."""
    read_ssm(ml, hp)

    # Mark recurrent layers (linear attention layers). MTP layers are dense
    # attention-only and must be flagged non-recurrent.
    if not ml.get_key_or_arr(ATTENTION_RECURRENT_LAYERS, hp.is_recr_impl, hp.n_layer_all, False):
        full_attn_interval = int(ml.get_key(FULL_ATTENTION_INTERVAL, 4))
        _recr_every(hp, full_attn_interval)


def _qwen4exp_require_nonzero(ml: Loader, name: str, value: int) -> None:
    """``qwen4exp_require_nonzero``: bad metadata must be catchable: GGML_ASSERT aborts the whole process."""
    if value == 0:
        raise GgufprofError(f"{ml.key(name)} must be greater than zero, got {value}")


def _qwen4exp(ml: Loader, hp: HParams) -> None:
    """src/models/qwen4exp.cpp"""
    read_ssm(ml, hp)
    _qwen4exp_require_nonzero(ml, SSM_CONV_KERNEL, hp.ssm_d_conv)
    _qwen4exp_require_nonzero(ml, SSM_INNER_SIZE, hp.ssm_d_inner)
    _qwen4exp_require_nonzero(ml, SSM_STATE_SIZE, hp.ssm_d_state)
    _qwen4exp_require_nonzero(ml, SSM_TIME_STEP_RANK, hp.ssm_dt_rank)
    _qwen4exp_require_nonzero(ml, SSM_GROUP_COUNT, hp.ssm_n_group)

    # HC (the PLE conv history is (ple_conv_kernel - 1) * ple_ngram_size * dsv4_hc_mult * n_embd wide)
    hp.dsv4_hc_mult = int(ml.get_key(HYPER_CONNECTION_COUNT))
    # a count of 1 has nothing to mix: transformers, vLLM and SGLang all raise on hc_count <= 1
    if hp.dsv4_hc_mult <= 1:
        raise GgufprofError(f"{ml.key(HYPER_CONNECTION_COUNT)} must be greater than one, got {hp.dsv4_hc_mult}")

    read_indexer(ml, hp)
    _qwen4exp_require_nonzero(ml, ATTENTION_INDEXER_HEAD_COUNT, hp.indexer_n_head)
    _qwen4exp_require_nonzero(ml, ATTENTION_INDEXER_KEY_LENGTH, hp.indexer_head_size)
    _qwen4exp_require_nonzero(ml, ATTENTION_INDEXER_TOP_K, hp.indexer_top_k)
    ml.get_key_or_arr(ATTENTION_COMPRESS_RATIOS, hp.dsv4_compress_ratios, hp.n_layer_all, False)

    # PLE n-gram hash embeddings; if the key group is absent every field stays zero
    hp.is_ple_impl[:] = [0] * len(hp.is_ple_impl)
    hp.ple_n_heads = 0

    n_ple = ml.get_arr_n(PLE_LAYERS) or 0
    if n_ple > 0:
        ple_layers = ml.get_arr(PLE_LAYERS, required=True)
        if n_ple != 1:
            # hparams holds one set of hash constants, so several PLE modules cannot be represented
            raise GgufprofError(
                f"{ml.key(PLE_LAYERS)} lists {n_ple} layers, but only one PLE layer is supported")
        for il in ple_layers:
            if il >= hp.n_layer_all:
                raise GgufprofError(f"PLE layer {il} is out of range")
            hp.is_ple_impl[il] = 1

        hp.ple_ngram_size = int(ml.get_key(PLE_NGRAM_SIZE))
        ple_heads_per_ngram = int(ml.get_key(PLE_HEADS_PER_NGRAM))
        hp.ple_conv_kernel = int(ml.get_key(PLE_CONV_KERNEL))
        _qwen4exp_require_nonzero(ml, PLE_CONV_KERNEL, hp.ple_conv_kernel)

        # uint32_t arithmetic
        hp.ple_n_heads = ((hp.ple_ngram_size - 1) * ple_heads_per_ngram) & 0xFFFFFFFF
        if hp.ple_ngram_size < 2 or hp.ple_ngram_size > LLAMA_MAX_PLE_NGRAM:
            raise GgufprofError(f"PLE n-gram size {hp.ple_ngram_size} is out of range")
        if hp.ple_n_heads == 0 or hp.ple_n_heads > LLAMA_MAX_PLE_HEADS:
            raise GgufprofError(f"PLE head count {hp.ple_n_heads} is out of range")

    # linear attention everywhere except every full_attention_interval-th layer
    if not ml.get_key_or_arr(ATTENTION_RECURRENT_LAYERS, hp.is_recr_impl, hp.n_layer_all, False):
        full_attn_interval = int(ml.get_key(FULL_ATTENTION_INTERVAL, 4))
        _qwen4exp_require_nonzero(ml, FULL_ATTENTION_INTERVAL, full_attn_interval)
        _recr_every(hp, full_attn_interval)

    # the PLE conv history is a row of the recurrent cache, which linear layers alone have
    for i in range(hp.n_layer_all):
        if hp.is_ple_impl[i] and not hp.is_recr_impl[i]:
            raise GgufprofError(f"PLE layer {i} is not a linear attention layer")


def _rnd1(ml: Loader, hp: HParams) -> None:
    """src/models/rnd1.cpp"""
    # Set non-causal attention for diffusion models
    hp.causal_attn = False


def _rwkv6(ml: Loader, hp: HParams) -> None:
    """src/models/rwkv6.cpp"""
    read_wkv(ml, hp)


def _rwkv6qwen2(ml: Loader, hp: HParams) -> None:
    """src/models/rwkv6qwen2.cpp"""
    read_wkv(ml, hp)


def _rwkv7(ml: Loader, hp: HParams) -> None:
    """src/models/rwkv7.cpp"""
    read_wkv(ml, hp)


def _smallthinker(ml: Loader, hp: HParams) -> None:
    """src/models/smallthinker.cpp"""
    found_swa = ml.has(ATTENTION_SLIDING_WINDOW)
    hp.n_swa = int(ml.get_key(ATTENTION_SLIDING_WINDOW, hp.n_swa))

    if found_swa and hp.n_swa > 0:
        hp.swa_type = SWA_STANDARD
        hp.n_swa = 4096  # hard-coded: the file's window only switches SWA on
        load_swa_pattern(ml, hp, 4, True)
    else:
        hp.swa_type = SWA_NONE


def _spark2_5(ml: Loader, hp: HParams) -> None:
    """src/models/spark2-5.cpp"""
    hp.swa_type = SWA_STANDARD
    read_swa_window_and_pattern(ml, hp)


def _step35(ml: Loader, hp: HParams) -> None:
    """src/models/step35.cpp"""
    hp.swa_type = SWA_STANDARD

    # full_attention layer only use half of the RoPE dimensions
    hp.n_rot_full = hp.n_rot_full // 2

    read_swa_window_and_pattern(ml, hp)


_PART3: dict[str, Callable[[Loader, HParams], None]] = {
    "mimo2": _mimo2,
    "minicpm": _plain,
    "minicpm3": _minicpm3,
    "minimax-01": _minimax_01,
    "minimax-m2": _plain,
    "minimax-m3": _minimax_m3,
    "mistral3": _plain,
    "modern-bert": _modern_bert,
    "mpt": _plain,
    "muse-glimmer": _muse_glimmer,
    "nanbeige": _nanbeige,
    "nemotron_h": _nemotron_h,
    "nemotron_h_moe": _nemotron_h,  # llama_model_nemotron_h_moe uses llama_model_nemotron_h's
    "nemotron": _plain,
    "neo-bert": _plain,
    "nomic-bert-moe": _plain,
    "nomic-bert": _plain,
    "olmo": _plain,
    "olmo2": _olmo2,
    "olmoe": _plain,
    "gpt-oss": _openai_moe,
    "openelm": _plain,
    "orion": _plain,
    "pangu-embedded": _plain,
    "phi2": _plain,
    "phi3": _phi3,
    "phimoe": _plain,
    "plamo": _plain,
    "plamo2": _plamo2,
    "plamo3": _plamo3,
    "plm": _plm,
    "pockettts": _plain,
    "qwen": _plain,
    "qwen2": _plain,
    "qwen2moe": _plain,
    "qwen2vl": _plain,
    "qwen3": _plain,
    "qwen35": _qwen35,
    "qwen35moe": _qwen35,
    "qwen3moe": _plain,
    "qwen3next": _qwen35,
    "qwen3vl": _plain,
    "qwen3tts": _plain,  # llama_model_qwen3tts uses llama_model_qwen3vl's
    "qwen3vlmoe": _plain,
    "qwen4exp": _qwen4exp,
    "refact": _plain,
    "rnd1": _rnd1,
    "rwkv6": _rwkv6,
    "rwkv6qwen2": _rwkv6qwen2,
    "rwkv7": _rwkv7,
    "seed_oss": _plain,
    "smallthinker": _smallthinker,
    "smollm3": _plain,
    "spark2_5": _spark2_5,
    "stablelm": _plain,
    "starcoder": _plain,
    "starcoder2": _plain,
    "step35": _step35,
    "t5": _plain,
    "t5encoder": _plain,
    "talkie": _plain,
    "wavtokenizer-dec": _plain,
    "xverse": _plain,
}


# The table: every architecture name of src/llama-arch.cpp that llama.cpp can build a model for.
ARCH_HPARAMS: dict[str, Callable[[Loader, HParams], None]] = {**_PART1, **_PART2, **_PART3}
