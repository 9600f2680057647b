"""One ``llama_kv_cache`` (src/llama-kv-cache.cpp, its constructor).

Per layer that owns a cache (``hparams.has_kv(il)``) and passes the layer filter, a K tensor
``[n_embd_k_gqa(il), kv_size, n_stream]`` and, unless the model uses multi-head latent attention
(``hparams.is_mla()``: V is read from the same latent K rows), a V tensor of the same shape. A
transposed V (flash attention requested off) is as wide as the widest layer's V over *all* layers
([TAG_V_CACHE_VARIABLE]). Layers above ``n_layer_kv_from_start`` reuse a lower layer's cache and
own no tensors (gemma3n, gemma4). The composite memories (iSWA, DSA, MSA, hybrid) are built from
this one with their own layer filters and, for indexer caches, tweaked hyper-parameters.
"""

from __future__ import annotations

from collections.abc import Callable

from ..errors import GgufprofError
from ..model.hparams import HParams
from .caches import KV, MLA, Cache, CacheTensor

LayerFilter = Callable[[int], bool] | None


def kv_cache(hp: HParams, name: str, type_k: str, type_v: str, v_trans: bool, unified: bool,
             kv_size: int, n_seq_max: int, layer_filter: LayerFilter = None, kind: str | None = None) -> Cache:
    n_stream = 1 if unified else n_seq_max
    mla = hp.is_mla()
    v_max = hp.n_embd_v_gqa_max() if v_trans else 0
    tensors: list[CacheTensor] = []
    for il in range(hp.n_layer_all):
        if not hp.has_kv(il) or (layer_filter is not None and not layer_filter(il)):
            continue
        tensors.append(CacheTensor(il, "k", type_k, (hp.n_embd_k_gqa(il), kv_size, n_stream)))
        if not mla:
            v_width = v_max if v_trans else hp.n_embd_v_gqa(il)
            tensors.append(CacheTensor(il, "v", type_v, (v_width, kv_size, n_stream)))
    cache = Cache(name, kind or (MLA if mla else KV), kv_size, n_stream, n_seq_max,
                  len({t.layer for t in tensors}), type_k, type_v, tuple(tensors))
    if tensors and cache.bytes == 0:
        # ggml_backend_alloc_ctx_tensors_from_buft returns NULL for a context of empty tensors
        raise GgufprofError(f"llama.cpp cannot create this context: failed to allocate buffer for kv cache "
                            f"({name}: every cached layer has 0 KV heads)")
    return cache
