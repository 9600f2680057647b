"""The GGUF metadata keys the hyper-parameter loaders read, one named constant each.

Names and values are llama.cpp's ``LLM_KV_NAMES`` (src/llama-arch.cpp) with the ``LLM_KV_``
prefix dropped from the name and the ``%s.`` architecture prefix dropped from the value, so that
``ml.get_key(ATTENTION_SLIDING_WINDOW)`` reads like llama.cpp's
``ml.get_key(LLM_KV_ATTENTION_SLIDING_WINDOW, ...)``. :class:`~.hparams.Loader` puts the
``<arch>.`` prefix back; a key that llama.cpp spells without one (``general.*``) keeps its full
name here. Like gguf-py's ``constants.py`` (``Keys``), this is the one place the strings are spelled.
Only keys that something in this package reads are listed.
"""

from __future__ import annotations

# --- general (global: no architecture prefix) ------------------------------------------------
GENERAL_ARCHITECTURE = "general.architecture"

# --- LLM: sizes and layer counts ---------------------------------------------------------------
CONTEXT_LENGTH = "context_length"
EMBEDDING_LENGTH = "embedding_length"
FEATURES_LENGTH = "features_length"  # wavtokenizer-dec's n_embd
BLOCK_COUNT = "block_count"
EXPERT_COUNT = "expert_count"  # MoE: experts per layer (LLM_KV_EXPERT_COUNT)
EXPERT_USED_COUNT = "expert_used_count"  # MoE: experts each token uses, one value or per layer
LEADING_DENSE_BLOCK_COUNT = "leading_dense_block_count"
FEED_FORWARD_LENGTH = "feed_forward_length"
TOKEN_SHIFT_COUNT = "token_shift_count"  # RWKV
NEXTN_PREDICT_LAYERS = "nextn_predict_layers"
FULL_ATTENTION_INTERVAL = "full_attention_interval"
NUM_LOOPS = "num_loops"  # nanbeige
HRM_LAYERS_PER_STACK = "hrm.layers_per_stack"
HRM_H_CYCLES = "hrm.h_cycles"
HRM_L_CYCLES = "hrm.l_cycles"

# --- attention ---------------------------------------------------------------------------------
ATTENTION_HEAD_COUNT = "attention.head_count"
ATTENTION_HEAD_COUNT_KV = "attention.head_count_kv"
ATTENTION_KEY_LENGTH = "attention.key_length"
ATTENTION_VALUE_LENGTH = "attention.value_length"
ATTENTION_CAUSAL = "attention.causal"
ATTENTION_SHARED_KV_LAYERS = "attention.shared_kv_layers"
ATTENTION_RECURRENT_LAYERS = "attention.recurrent_layers"
ATTENTION_COMPRESS_RATIOS = "attention.compress_ratios"  # DeepSeek-V4 and kin

# sliding-window attention
ATTENTION_SLIDING_WINDOW = "attention.sliding_window"
ATTENTION_SLIDING_WINDOW_PATTERN = "attention.sliding_window_pattern"
ATTENTION_KEY_LENGTH_SWA = "attention.key_length_swa"
ATTENTION_VALUE_LENGTH_SWA = "attention.value_length_swa"

# multi-head latent attention (MLA), and its sliding-window variant
ATTENTION_KV_LORA_RANK = "attention.kv_lora_rank"
ATTENTION_KEY_LENGTH_MLA = "attention.key_length_mla"
ATTENTION_VALUE_LENGTH_MLA = "attention.value_length_mla"
ATTENTION_KV_LORA_RANK_SWA = "attention.kv_lora_rank_swa"
ATTENTION_KEY_LENGTH_MLA_SWA = "attention.key_length_mla_swa"
ATTENTION_VALUE_LENGTH_MLA_SWA = "attention.value_length_mla_swa"

# sparse-attention indexers (DSA, MSA, QSA)
ATTENTION_INDEXER_HEAD_COUNT = "attention.indexer.head_count"
ATTENTION_INDEXER_KEY_LENGTH = "attention.indexer.key_length"
ATTENTION_INDEXER_TOP_K = "attention.indexer.top_k"
ATTENTION_INDEXER_TYPES = "attention.indexer.types"
ATTENTION_INDEXER_KPOOL = "attention.indexer.kpool"

# --- hyper-connections and per-layer n-gram embeddings (PLE) ----------------------------------
HYPER_CONNECTION_COUNT = "hyper_connection.count"
PLE_LAYERS = "ple.layers"
PLE_NGRAM_SIZE = "ple.ngram_size"
PLE_HEADS_PER_NGRAM = "ple.heads_per_ngram"
PLE_CONV_KERNEL = "ple.conv_kernel"

# --- rope --------------------------------------------------------------------------------------
ROPE_DIMENSION_COUNT = "rope.dimension_count"
ROPE_DIMENSION_COUNT_SWA = "rope.dimension_count_swa"

# --- recurrent state sizes: SSM (Mamba and hybrids), KDA, RWKV, short convolution (LFM2) -------
SSM_CONV_KERNEL = "ssm.conv_kernel"
SSM_INNER_SIZE = "ssm.inner_size"
SSM_STATE_SIZE = "ssm.state_size"
SSM_TIME_STEP_RANK = "ssm.time_step_rank"
SSM_GROUP_COUNT = "ssm.group_count"
KDA_HEAD_DIM = "kda.head_dim"
WKV_HEAD_SIZE = "wkv.head_size"
SHORTCONV_L_CACHE = "shortconv.l_cache"
