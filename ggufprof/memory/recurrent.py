"""``llama_memory_recurrent`` (src/llama-memory-recurrent.cpp): fixed-size state per sequence.

For each recurrent layer (of ``n_layer()``, passing the filter) an R tensor (convolution /
token-shift state) ``[n_embd_r, mem_size * (1 + n_rs_seq)]`` and an S tensor (SSM / WKV state)
``[n_embd_s, ...]``, both f32, plus a P tensor for the per-layer-embedding history where the model
has one. ``mem_size`` is ``max(1, n_seq_max)`` (``create_memory``): one row per sequence, whatever
the context size. The widths per architecture are ``llama_hparams::n_embd_r`` / ``n_embd_s``.
llama.cpp logs the buffer as ``RS buffer size`` and prints ``n_layer()`` as the layer count.
"""

from __future__ import annotations

from ..errors import GgufprofError
from ..model.hparams import HParams
from .caches import RECURRENT, Cache, CacheTensor
from .kv_cache import LayerFilter

STATE_TYPE = "f32"  # GGML_TYPE_F32 for R and S in every create_memory call


def recurrent(hp: HParams, n_seq_max: int, n_rs_seq: int = 0, layer_filter: LayerFilter = None) -> Cache:
    mem_size = max(1, n_seq_max)
    rows = mem_size * (1 + n_rs_seq)
    tensors: list[CacheTensor] = []
    for il in range(hp.n_layer()):
        if layer_filter is not None and not layer_filter(il):
            continue
        tensors.append(CacheTensor(il, "r", STATE_TYPE, (hp.n_embd_r(), rows)))
        tensors.append(CacheTensor(il, "s", STATE_TYPE, (hp.n_embd_s(), rows)))
        if hp.ple_conv_state() > 0 and hp.is_ple_impl[il]:
            tensors.append(CacheTensor(il, "p", STATE_TYPE, (hp.ple_conv_state(), rows)))
    cache = Cache("recurrent", RECURRENT, mem_size, 1, n_seq_max, hp.n_layer(), STATE_TYPE, STATE_TYPE, tuple(tensors))
    if tensors and cache.bytes == 0:
        raise GgufprofError("llama.cpp cannot create this context: failed to allocate buffer for rs cache "
                            "(the recurrent state of every layer is empty)")
    return cache
