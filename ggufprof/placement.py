"""Which device holds each layer's weights and KV cache, and how many bytes that puts on each.

Rules from the vendored llama.cpp (one GPU, ``LLAMA_SPLIT_MODE_LAYER``):

* ``llama_model::load_tensors`` (src/llama-model.cpp): ``i_gpu_start = max(n_layer + 1 -
  n_gpu_layers, 0)``; layer ``il`` (0..n_layer, where ``n_layer`` is the output layer) goes to the
  GPU when ``il >= i_gpu_start`` and ``il - i_gpu_start < min(n_gpu_layers, n_layer + 1)``. So the
  output layer is the first one offloaded, and ``-ngl 10`` on 22 layers puts the output plus
  layers 13..21 on the GPU. The input layer (token embeddings) always stays on the CPU. A negative
  ``n_gpu_layers`` means all (``n_layer + 1``).
* ``llama_kv_cache::llama_kv_cache``: a layer's K/V live on ``dev_layer(il)`` when ``offload_kqv``,
  else in host memory.
* Buffer sizes: each tensor is padded to the buffer type's alignment (CPU 32, CUDA 128), and the
  CUDA buffer type allocates quantized tensors with their last row padded to a multiple of 512
  values (``ggml_backend_cuda_buffer_type_get_alloc_size``, MATRIX_ROW_PADDING). That is why
  llama.cpp's ``CUDA0 KV buffer size`` line can exceed the ``llama_kv_cache: size`` line for
  quantized caches.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from . import ggml_types
from .kv_model import KVPrediction, cache_layers, pad, tensor_shapes
from .model_info import ModelInfo

CPU, GPU = "CPU", "CUDA0"
ALIGNMENT = {CPU: 32, GPU: 128}
MATRIX_ROW_PADDING = 512
_BLK = re.compile(r"^blk\.(\d+)\.")


def gpu_layers(n_layer: int, n_gpu_layers: int, has_gpu: bool = True) -> list[bool]:
    """On-GPU flag for layers 0..n_layer (the last entry is the output layer)."""
    if not has_gpu:
        return [False] * (n_layer + 1)
    ngl = n_layer + 1 if n_gpu_layers < 0 else n_gpu_layers
    start = max(n_layer + 1 - ngl, 0)
    act = min(ngl, n_layer + 1)
    return [il >= start and il - start < act for il in range(n_layer + 1)]


def alloc_size(t: ggml_types.GgmlType, ne: tuple[int, ...], device: str) -> int:
    """Bytes a tensor takes in a buffer of ``device``: ggml_backend_buft_get_alloc_size, aligned."""
    size = ggml_types.nbytes(t, ne)
    if device == GPU and t.is_quantized and ne[0] % MATRIX_ROW_PADDING:
        size += t.type_size * (MATRIX_ROW_PADDING - ne[0] % MATRIX_ROW_PADDING) // t.blck_size
    return pad(size, ALIGNMENT[device])


@dataclass
class DeviceKV:
    """One cache's share on one device."""

    cache: str
    device: str
    layers: int
    k_bytes: int
    v_bytes: int
    buffer_bytes: int  # what llama.cpp logs as "<device> KV buffer size"


@dataclass
class Placement:
    n_gpu_layers: int
    offload_kqv: bool
    on_gpu: list[bool]  # per layer, then the output layer
    kv: list[DeviceKV] = field(default_factory=list)
    weights: dict[str, int] = field(default_factory=dict)  # device -> tensor bytes
    gpu_weights_buffer: int = 0  # CUDA0 model buffer: padded as the CUDA buffer type allocates

    def kv_bytes(self, device: str) -> int:
        return sum(d.k_bytes + d.v_bytes for d in self.kv if d.device == device)

    def kv_buffer(self, device: str) -> int:
        return sum(d.buffer_bytes for d in self.kv if d.device == device)

    def to_dict(self) -> dict:
        from dataclasses import asdict

        d = asdict(self)
        d["kv_bytes_by_device"] = {dev: self.kv_bytes(dev) for dev in (CPU, GPU)}
        d["kv_buffer_by_device"] = {dev: self.kv_buffer(dev) for dev in (CPU, GPU)}
        return d


def _tensor_layer(name: str, n_layer: int) -> int:
    """The layer a weight tensor belongs to: -1 input, 0..n_layer-1 repeating, n_layer output."""
    if m := _BLK.match(name):
        return int(m.group(1))
    if name.startswith("output"):
        return n_layer
    return -1  # token_embd and anything outside the blocks: the input layer, always on the CPU


def place(model: ModelInfo, pred: KVPrediction, n_gpu_layers: int, offload_kqv: bool = True,
          has_gpu: bool = True) -> Placement:
    on_gpu = gpu_layers(model.n_layer, n_gpu_layers, has_gpu)
    p = Placement(n_gpu_layers, offload_kqv, on_gpu)
    tk = ggml_types.kv_cache_type(pred.settings.cache_type_k)
    tv = ggml_types.kv_cache_type(pred.settings.cache_type_v)
    for cache in pred.caches:
        for device in (CPU, GPU):
            mine = [il for il in cache_layers(model, cache.name) if (offload_kqv and on_gpu[il]) == (device == GPU)]
            if not mine:
                continue
            shapes = [tensor_shapes(model, il, cache.cells, cache.streams, pred.v_trans) for il in mine]
            k, v = [ne for ne, _ in shapes], [ne for _, ne in shapes]
            p.kv.append(DeviceKV(
                cache.name, device, len(mine),
                sum(ggml_types.nbytes(tk, ne) for ne in k), sum(ggml_types.nbytes(tv, ne) for ne in v),
                sum(alloc_size(tk, ne, device) for ne in k) + sum(alloc_size(tv, ne, device) for ne in v),
            ))
    names = {t.name for t in model.tensors}
    for t in model.tensors:
        il = _tensor_layer(t.name, model.n_layer)
        device = GPU if il >= 0 and on_gpu[il] else CPU
        p.weights[device] = p.weights.get(device, 0) + t.n_bytes
        if device == GPU:
            p.gpu_weights_buffer += alloc_size(ggml_types.BY_ID[t.type_id], t.shape, GPU)
    if "output.weight" not in names and on_gpu[model.n_layer]:
        # tied embeddings: llama.cpp loads token_embd a second time for the output layer (TENSOR_DUPLICATED)
        emb = next((t for t in model.tensors if t.name == "token_embd.weight"), None)
        if emb is not None:
            p.weights[GPU] = p.weights.get(GPU, 0) + emb.n_bytes
            p.gpu_weights_buffer += alloc_size(ggml_types.BY_ID[emb.type_id], emb.shape, GPU)
    return p
