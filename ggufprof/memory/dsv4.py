"""``llama_kv_cache_dsv4`` (src/llama-kv-cache-dsv4.cpp): DeepSeek-V4's compressed attention memory.

Built from copies of the hyper-parameters with ``n_layer_nextn = 0`` and made K-only
(``dsv4_make_k_only``: ``n_embd_head_{k,v}_mla_impl = n_embd_head_k()``), and never unified
("keep DSV4 KV/state streams per sequence even when public KV mode is unified"):

* a raw iSWA cache over all layers (every layer is SWA in deepseek4: the window ring);
* a CSA cache (layers with compress ratio 4) and an HCA cache (ratio 128), each of
  ``pad(max(1, ceil(kv_size / ratio)), 256)`` cells;
* a lightning-indexer key cache on the CSA layers: one head of ``indexer_head_size``, CSA-sized;
* three compressor states (``llama_dsv4_comp_state``), f32 ``kv`` and ``score`` tensors
  ``[n_embd_state, state_size, n_seq_max * (1 + n_rs_seq)]`` per layer: CSA (state 8, width
  ``2 * n_embd_head_k``), HCA (state 128, width ``n_embd_head_k``), indexer (state 8, width
  ``2 * indexer_head_size``). They do not grow with the context.
"""

from __future__ import annotations

import dataclasses

from ..model.hparams import LLAMA_MAX_LAYERS, HParams
from .caches import INDEXER, MLA, STATE, Cache, CacheTensor, pad
from .iswa import iswa
from .kv_cache import kv_cache

CSA_RATIO, HCA_RATIO = 4, 128


def comp_size(kv_size: int, ratio: int) -> int:
    return max(1, (kv_size + ratio - 1) // ratio)


def _k_only(hp: HParams, **changes: object) -> HParams:
    out = dataclasses.replace(hp, n_layer_nextn=0, **changes)
    out.n_embd_head_k_mla_impl = out.n_embd_head_v_mla_impl = out.n_embd_head_k(0)
    return out


def comp_state(hp: HParams, name: str, n_seq_max: int, state_size: int, n_embd_state: int, n_rs_seq: int,
               layer_filter) -> Cache:
    planes = n_seq_max * (1 + n_rs_seq)
    tensors = []
    for il in range(hp.n_layer()):
        if layer_filter(il):
            ne = (n_embd_state, state_size, planes)
            tensors += [CacheTensor(il, "k", "f32", ne), CacheTensor(il, "v", "f32", ne)]  # kv, score
    return Cache(name, STATE, state_size, n_seq_max, n_seq_max, len({t.layer for t in tensors}), "f32", "f32",
                 tuple(tensors))


def dsv4(hp: HParams, type_k: str, type_v: str, v_trans: bool, swa_full: bool, kv_size: int, n_seq_max: int,
         n_ubatch: int, n_rs_seq: int = 0) -> list[Cache]:
    raw = _k_only(hp)
    csa = lambda il: hp.dsv4_compress_ratios[il] == CSA_RATIO  # noqa: E731
    hca = lambda il: hp.dsv4_compress_ratios[il] == HCA_RATIO  # noqa: E731
    w = hp.indexer_head_size
    lid = _k_only(hp, n_head_kv_arr=[1] * LLAMA_MAX_LAYERS, n_embd_head_k_full=w, n_embd_head_v_full=w,
                  n_embd_head_k_swa=w, n_embd_head_v_swa=w)
    size_csa = pad(comp_size(kv_size, CSA_RATIO), 256)
    size_hca = pad(comp_size(kv_size, HCA_RATIO), 256)
    head_k = hp.n_embd_head_k(0)
    return iswa(raw, type_k, type_v, v_trans, swa_full, False, kv_size, n_seq_max, n_ubatch) + [
        kv_cache(raw, "csa", type_k, type_v, v_trans, False, size_csa, n_seq_max, csa, kind=MLA),
        kv_cache(raw, "hca", type_k, type_v, v_trans, False, size_hca, n_seq_max, hca, kind=MLA),
        kv_cache(lid, "indexer", type_k, type_v, v_trans, False, size_csa, n_seq_max, csa, kind=INDEXER),
        comp_state(hp, "csa_state", n_seq_max, 2 * CSA_RATIO, 2 * head_k, n_rs_seq, csa),
        comp_state(hp, "hca_state", n_seq_max, HCA_RATIO, head_k, n_rs_seq, hca),
        comp_state(hp, "indexer_state", n_seq_max, 2 * CSA_RATIO, 2 * w, n_rs_seq, csa),
    ]
