"""Sparse-attention caches: an attention (usually MLA) cache plus an indexer key cache.

The indexer cache is a ``llama_kv_cache`` built from a copy of the hyper-parameters, "hand-tweaked"
so that it holds one key head of the indexer's width per layer (llama.cpp PR 21149):

* ``llama_kv_cache_dsa`` (src/llama-kv-cache-dsa.cpp; deepseek32, glm-dsa, hy-v4): every layer
  gets ``n_head_kv = 1`` and ``n_embd_head_k_full = indexer_head_size``; the rest is copied, so an
  MLA model's indexer cache is K-only too.
* ``llama_kv_cache_msa`` (src/llama-kv-cache-msa.cpp; minimax-m3): the same tweak, on a model
  without MLA, so its indexer cache has V tensors as well.
* ``llama_memory_hybrid_idx`` (src/llama-memory-hybrid-idx.cpp; glm5-next, qwen4exp): key width
  ``indexer_head_size * (indexer_kpool > 0 ? 3 : 1)`` (key, gate and pooled values), and MLA forced
  on (``n_embd_head_{k,v}_mla_impl = indexer_head_size``) so no V is cached.
* ``llama_kv_cache_dsa_iswa`` (src/llama-kv-cache-dsa-iswa.cpp; dots3note): a DSA cache for the
  full-attention layers and a plain SWA cache, sized as iSWA's.
"""

from __future__ import annotations

import dataclasses

from ..model.hparams import LLAMA_MAX_LAYERS, HParams
from .caches import INDEXER, Cache, SWA
from .iswa import chain, swa_cells
from .kv_cache import LayerFilter, kv_cache


def _indexer_hparams(hp: HParams, key_width: int, force_mla: bool) -> HParams:
    idx = dataclasses.replace(hp, n_head_kv_arr=[1] * LLAMA_MAX_LAYERS, n_embd_head_k_full=key_width)
    if force_mla:
        idx.n_embd_head_k_mla_impl = idx.n_embd_head_v_mla_impl = hp.indexer_head_size
    return idx


def indexer_cache(hp: HParams, type_k: str, type_v: str, v_trans: bool, unified: bool, kv_size: int,
                  n_seq_max: int, layer_filter: LayerFilter, hybrid: bool = False) -> Cache:
    """The indexer key cache of a DSA/MSA (``hybrid`` False) or hybrid_idx (True) memory."""
    if hybrid:
        width = hp.indexer_head_size * (3 if hp.indexer_kpool > 0 else 1)
        idx = _indexer_hparams(hp, width, force_mla=True)
    else:
        idx = _indexer_hparams(hp, hp.indexer_head_size, force_mla=False)
    return kv_cache(idx, "indexer", type_k, type_v, v_trans, unified, kv_size, n_seq_max, layer_filter, kind=INDEXER)


def dsa(hp: HParams, type_k: str, type_v: str, v_trans: bool, unified: bool, kv_size: int, n_seq_max: int,
        filter_main: LayerFilter, filter_idx: LayerFilter, name: str = "kv") -> list[Cache]:
    """``llama_kv_cache_dsa`` and ``llama_kv_cache_msa``: main cache, then the indexer cache."""
    return [
        kv_cache(hp, name, type_k, type_v, v_trans, unified, kv_size, n_seq_max, filter_main),
        indexer_cache(hp, type_k, type_v, v_trans, unified, kv_size, n_seq_max, filter_idx),
    ]


def dsa_iswa(hp: HParams, type_k: str, type_v: str, v_trans: bool, swa_full: bool, unified: bool,
             kv_size: int, n_seq_max: int, n_ubatch: int, filter_mla: LayerFilter,
             filter_idx: LayerFilter) -> list[Cache]:
    size_swa = swa_cells(hp, kv_size, n_seq_max, n_ubatch, unified, swa_full)
    return dsa(hp, type_k, type_v, v_trans, unified, kv_size, n_seq_max,
               chain(filter_mla, lambda il: not hp.is_swa(il)), filter_idx, name="full") + [
        kv_cache(hp, "swa", type_k, type_v, v_trans, unified, size_swa, n_seq_max,
                 chain(filter_mla, hp.is_swa), kind=SWA),
    ]
