"""The graph metadata a llama.cpp context keeps on the heap: memory in no log line, resident at once.

Each ``llm_graph_result`` (src/llama-graph.cpp) holds ``buf_compute_meta``, a ``std::vector<uint8_t>``
of ``ggml_tensor_overhead() * max_nodes + ggml_graph_overhead_custom(max_nodes, false)`` bytes, zeroed
when it is sized (so every page is touched), in which each graph's tensors and node lists are
built. ``llama_context::sched_reserve`` creates one for the reserve graphs at context creation;
``get_gf_res_prev`` creates up to two more at the first decodes (one for a batch with outputs, one
without). ``max_nodes`` is ``llama_context::graph_max_nodes`` (src/llama-context.cpp): 8 nodes per
model tensor (at least 1024) for most architectures, but 40 per token of the reserve batch (at least
32 per tensor) for the hybrid and linear-attention ones (Qwen3-Next, Qwen3.5, Kimi-Linear,
DeepSeek-V4, MiniMax, ...) and more for a few others: there it is several MiB -- what made the RSS
check at context creation fail on those suite models (5 MiB of growth for 0.4 MiB of KV).

The ggml sizes are this ggml's (``ggml_tensor_overhead()`` 368, ``sizeof(struct ggml_cgraph)`` 96);
tests/test_graph.py holds them against the library's own ``ggml_tensor_overhead`` and
``ggml_graph_overhead_custom``.
"""

from __future__ import annotations

from ..model.model_info import ModelInfo

GGML_OBJECT_SIZE = 32  # sizeof(struct ggml_object)
GGML_TENSOR_OVERHEAD = 368  # ggml_tensor_overhead(): GGML_OBJECT_SIZE + sizeof(struct ggml_tensor)
GGML_CGRAPH_SIZE = 96  # sizeof(struct ggml_cgraph)
GGML_MEM_ALIGN = 16
POINTER = 8
# ggml_hash_size: the smallest of these primes >= the size asked (ggml.c)
_HASH_PRIMES = (2, 3, 5, 11, 17, 37, 67, 131, 257, 521, 1031, 2053, 4099, 8209, 16411, 32771, 65537, 131101, 262147,
                524309, 1048583, 2097169, 4194319, 8388617, 16777259, 33554467, 67108879, 134217757, 268435459,
                536870923, 1073741827, 2147483659)
# graph_max_nodes: (nodes per token of the reserve batch, nodes per model tensor) by architecture
_PER_TOKEN = {
    **dict.fromkeys(("kimi-k3", "glm5-next"), (160, 64)),
    "hrm_text": (80, 64),  # the 128-slot looped graph
    **dict.fromkeys(("qwen3next", "kimi-linear", "bailingmoe3", "qwen35", "qwen35moe", "qwen4exp", "deepseek4",
                     "nanbeige", "minimax-01", "minimax-m3", "hy_v4"), (40, 32)),
}
GRAPH_RESULTS_AT_CREATION = 1  # sched_reserve's gf_res_reserve
GRAPH_RESULTS = 3  # and get_gf_res_prev's two (batches with and without outputs), made by the first decodes


def _pad(n: int, align: int) -> int:
    return (n + align - 1) // align * align


def hash_size(min_size: int) -> int:
    """ggml_hash_size (ggml.c)."""
    return next((p for p in _HASH_PRIMES if p >= min_size), min_size | 1)


def graph_overhead(size: int) -> int:
    """ggml_graph_overhead_custom(size, grads=false) (ggml.c: ggml_graph_nbytes, aligned as it
    lays out the graph's nodes, leafs, use counts, hash keys and visited bitset)."""
    h = hash_size(size * 2)
    n = GGML_CGRAPH_SIZE
    n = _pad(n, POINTER) + 2 * size * POINTER  # nodes, leafs
    n = _pad(n, 4) + h * 4  # use_counts
    n = _pad(n, POINTER) + h * POINTER  # hash keys
    n = _pad(n, 4) + (h + 31) // 32 * 4  # ggml_bitset_size(h) uint32s
    return GGML_OBJECT_SIZE + _pad(n, GGML_MEM_ALIGN)


def graph_max_nodes(model: ModelInfo, n_tokens: int) -> int:
    """llama_context::graph_max_nodes for a reserve batch of ``n_tokens`` (min(n_ctx, n_ubatch)), no
    LoRA and no backend samplers. ``n_tensors`` is the file's tensor count: llama_model::n_tensors
    counts those created, one more for a tied output's second token_embd, fewer for unused ones
    (a tensor is 8 to 64 nodes, 3 to 24 KiB here)."""
    n_tensors = len(model.tensors)
    hp = model.hparams
    if model.architecture == "dflash":
        if getattr(hp, "dsv4_hc_mult", 0) > 0:
            return max(n_tokens * 40, 32 * n_tensors)
        if getattr(hp, "dflash_selector_rank", 0) > 0:
            return max(1024, 12 * n_tensors)
    if model.architecture in _PER_TOKEN:
        per_token, per_tensor = _PER_TOKEN[model.architecture]
        return max(n_tokens * per_token, per_tensor * n_tensors)
    return max(1024, 8 * n_tensors)


def graph_meta_bytes(model: ModelInfo, n_ctx: int, n_ubatch: int) -> int:
    """One llm_graph_result's buf_compute_meta for this context (every byte of it resident)."""
    max_nodes = graph_max_nodes(model, min(n_ctx, n_ubatch))
    return GGML_TENSOR_OVERHEAD * max_nodes + graph_overhead(max_nodes)
