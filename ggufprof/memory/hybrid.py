"""Hybrid memories: attention layers in a KV cache, recurrent layers in recurrent state.

* ``llama_memory_hybrid`` (src/llama-memory-hybrid.cpp): one ``llama_kv_cache`` for the layers
  ``filter_attn`` keeps (default: not recurrent) and one ``llama_memory_recurrent`` for those
  ``filter_recr`` keeps (default: recurrent), created in that order.
* ``llama_memory_hybrid_iswa`` (src/llama-memory-hybrid-iswa.cpp): the attention part is an iSWA
  pair instead.
* ``llama_memory_hybrid_idx`` (src/llama-memory-hybrid-idx.cpp): a hybrid plus, when the model has
  an indexer filter, an indexer key cache (see sparse.py).

Which layer is which is the architecture's rule, set in create_memory (see create.py): falcon-h1
runs attention *and* a recurrent block in every layer; nemotron-h keeps attention where a layer is
neither recurrent nor an MLP (``n_ff(il) == 0``); qwen3next/qwen35/minimax-01 skip NextN layers.
"""

from __future__ import annotations

from ..model.hparams import HParams
from .caches import Cache
from .iswa import iswa
from .kv_cache import LayerFilter, kv_cache
from .recurrent import recurrent
from .sparse import indexer_cache


def hybrid(hp: HParams, type_k: str, type_v: str, v_trans: bool, unified: bool, kv_size: int,
           n_seq_max: int, n_rs_seq: int, filter_attn: LayerFilter, filter_recr: LayerFilter,
           filter_idx: LayerFilter = None, with_indexer: bool = False) -> list[Cache]:
    attn = filter_attn or (lambda il: not hp.is_recr(il))
    recr = filter_recr or hp.is_recr
    out = [kv_cache(hp, "kv", type_k, type_v, v_trans, unified, kv_size, n_seq_max, attn),
           recurrent(hp, n_seq_max, n_rs_seq, recr)]
    if with_indexer and filter_idx is not None:
        out.append(indexer_cache(hp, type_k, type_v, v_trans, unified, kv_size, n_seq_max, filter_idx, hybrid=True))
    return out


def hybrid_iswa(hp: HParams, type_k: str, type_v: str, v_trans: bool, swa_full: bool, unified: bool,
                kv_size: int, n_seq_max: int, n_ubatch: int, n_rs_seq: int,
                filter_attn: LayerFilter, filter_recr: LayerFilter) -> list[Cache]:
    attn = filter_attn or (lambda il: not hp.is_recr(il))
    recr = filter_recr or hp.is_recr
    return iswa(hp, type_k, type_v, v_trans, swa_full, unified, kv_size, n_seq_max, n_ubatch, attn) + [
        recurrent(hp, n_seq_max, n_rs_seq, recr)]
