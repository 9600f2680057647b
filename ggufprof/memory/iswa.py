"""``llama_kv_cache_iswa`` (src/llama-kv-cache-iswa.cpp): a full-attention and a sliding-window cache.

The non-SWA cache holds the full ``kv_size`` cells; the SWA cache holds
``pad(min(kv_size, n_swa * (unified ? n_seq_max : 1) + n_ubatch), 256)`` cells ("always padded to
256 for performance", llama.cpp issue 17037), or ``kv_size`` with ``swa_full``.
``llama_kv_cache_dsa_iswa`` sizes its SWA cache the same way (see sparse.py).
"""

from __future__ import annotations

from ..model.hparams import HParams
from .caches import SWA, Cache, pad
from .kv_cache import LayerFilter, kv_cache

SWA_PAD = 256


def swa_window_cells(hp: HParams, n_seq_max: int, n_ubatch: int, unified: bool) -> int:
    """What one SWA stream must hold before the cap and padding: the window of every sequence it
    serves (all of them when unified) plus one ubatch."""
    return hp.n_swa * (n_seq_max if unified else 1) + n_ubatch


def swa_cells(hp: HParams, kv_size: int, n_seq_max: int, n_ubatch: int, unified: bool, swa_full: bool) -> int:
    if swa_full:
        return kv_size
    return pad(min(kv_size, swa_window_cells(hp, n_seq_max, n_ubatch, unified)), SWA_PAD)


def chain(layer_filter: LayerFilter, extra) -> LayerFilter:
    """A filter that also requires ``extra(il)``, as the composites chain theirs."""
    return lambda il: (layer_filter is None or layer_filter(il)) and extra(il)


def iswa(hp: HParams, type_k: str, type_v: str, v_trans: bool, swa_full: bool, unified: bool,
         kv_size: int, n_seq_max: int, n_ubatch: int, layer_filter: LayerFilter = None) -> list[Cache]:
    size_swa = swa_cells(hp, kv_size, n_seq_max, n_ubatch, unified, swa_full)
    return [
        kv_cache(hp, "full", type_k, type_v, v_trans, unified, kv_size, n_seq_max,
                 chain(layer_filter, lambda il: not hp.is_swa(il))),
        kv_cache(hp, "swa", type_k, type_v, v_trans, unified, size_swa, n_seq_max,
                 chain(layer_filter, hp.is_swa), kind=SWA),
    ]
