"""Which device holds each layer's weights and KV cache, and how many bytes that puts on each.

Rules from the vendored llama.cpp (one GPU, ``LLAMA_SPLIT_MODE_LAYER``; the GPU is named as llama.cpp
names it, e.g. ``CUDA0``, by whoever asked llama.cpp's device list or read a run's log):

* ``llama_model::load_tensors`` (src/llama-model.cpp): ``i_gpu_start = max(n_layer + 1 -
  n_gpu_layers, 0)``; layer ``il`` (0..n_layer, where ``n_layer`` is the output layer) goes to the
  GPU when ``il >= i_gpu_start`` and ``il - i_gpu_start < min(n_gpu_layers, n_layer + 1)``. So the
  output layer is the first one offloaded, and ``-ngl 10`` on 22 layers puts the output plus
  layers 13..21 on the GPU. The input layer (token embeddings) always stays on the CPU. A negative
  ``n_gpu_layers`` means all (``n_layer + 1``).
* ``llama_kv_cache::llama_kv_cache`` and ``llama_memory_recurrent``: a layer's K/V (or R/S state)
  live on ``dev_layer(il)`` when ``offload_kqv``, else in host memory. ``n_layer`` here counts
  NextN/MTP layers too (``n_layer_all``).
* Extra buffer types (``make_cpu_buft_list``, src/llama-model.cpp; ``select_weight_buft``,
  src/llama-model-loader.cpp): a weight on the CPU goes to the first of the CPU's extra buffer types
  that supports its op -- on x86 with AVX2 ``CPU_REPACK`` for Q4_0/Q4_K/IQ4_NL/... matrices used in
  a MUL_MAT (ggml-cpu/repack.cpp, ``ggml_repack_get_optimal_repack_type``), never token_embd
  (GET_ROWS) -- and is copied there at load, *on top of* the mapped file. Which tensors go where
  depends on the CPU and the build, so it is asked of llama.cpp itself (measure/dry_run.py,
  ``cpu_buffer_types``) and given here as ``cpu_bufts``; ``CPU_REPACK`` allocates each tensor's
  ``ggml_nbytes`` (the repacked blocks are the same size), aligned to 32 bytes.
* Buffer sizes: each tensor is padded to the buffer type's alignment (CPU 32, CUDA 128), and the
  CUDA buffer type allocates quantized tensors with their last row padded to a multiple of 512
  values (``ggml_backend_cuda_buffer_type_get_alloc_size``, MATRIX_ROW_PADDING). That is why
  llama.cpp's ``CUDA0 KV buffer size`` line can exceed the ``llama_kv_cache: size`` line for
  quantized caches.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..errors import GgufprofError
from .caches import Cache, pad
from .predict import MemoryPrediction
from ..model import ggml_types
from ..model.model_info import ModelInfo

CPU = "CPU"  # host memory, as llama.cpp names its buffers
REPACK = "CPU_REPACK"  # ggml_backend_cpu_repack_buffer_type: its tensors take ggml_nbytes, 32-byte aligned
HOST_ALIGNMENT, GPU_ALIGNMENT = 32, 128  # ggml_backend_cpu / ggml_backend_cuda buffer type alignment
MATRIX_ROW_PADDING = 512
_BLK = re.compile(r"^blk\.(\d+)\.")


def is_host_buffer(buffer_type: str) -> bool:
    """Whether a buffer type llama.cpp logs is host memory: CPU, CPU_Mapped, CPU_REPACK, and the
    pinned host buffers of a GPU backend (CUDA_Host, ...)."""
    return buffer_type.startswith(CPU) or buffer_type.endswith("_Host")


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
    on_gpu = device != CPU
    if on_gpu and t.is_quantized and ne[0] % MATRIX_ROW_PADDING:
        size += t.type_size * (MATRIX_ROW_PADDING - ne[0] % MATRIX_ROW_PADDING) // t.blck_size
    return pad(size, GPU_ALIGNMENT if on_gpu else HOST_ALIGNMENT)


@dataclass
class DeviceKV:
    """One cache's share on one device (a recurrent state's too: K and V stand for R and S+P)."""

    cache: str
    device: str
    layers: int
    k_bytes: int
    v_bytes: int
    buffer_bytes: int  # what llama.cpp logs as "<device> KV buffer size" (or "RS buffer size")


@dataclass
class Placement:
    n_gpu_layers: int
    offload_kqv: bool
    on_gpu: list[bool]  # per layer, then the output layer
    gpu: str | None = None  # the GPU's name (CUDA0, Vulkan0, ...); None: llama.cpp has none here
    kv: list[DeviceKV] = field(default_factory=list)
    weights: dict[str, int] = field(default_factory=dict)  # device -> tensor bytes
    gpu_weights_buffer: int = 0  # the GPU's model buffer: padded as the CUDA buffer type allocates
    host_extra: dict[str, int] = field(default_factory=dict)  # extra host buffer type -> bytes (CPU_REPACK)

    @property
    def devices(self) -> list[str]:
        return [CPU] + ([self.gpu] if self.gpu else [])

    def kv_bytes(self, device: str) -> int:
        return sum(d.k_bytes + d.v_bytes for d in self.kv if d.device == device)

    def kv_buffer(self, device: str) -> int:
        return sum(d.buffer_bytes for d in self.kv if d.device == device)

    def to_dict(self) -> dict:
        from dataclasses import asdict

        d = asdict(self)
        d["kv_bytes_by_device"] = {dev: self.kv_bytes(dev) for dev in self.devices}
        d["kv_buffer_by_device"] = {dev: self.kv_buffer(dev) for dev in self.devices}
        return d


def _tensor_layer(name: str, n_layer: int) -> int:
    """The layer a weight tensor belongs to: -1 input, 0..n_layer-1 repeating, n_layer output."""
    if m := _BLK.match(name):
        return int(m.group(1))
    if name.startswith("output"):
        return n_layer
    return -1  # token_embd and anything outside the blocks: the input layer, always on the CPU


def cache_on_device(cache: Cache, device: str, on_gpu: list[bool], offload_kqv: bool) -> DeviceKV | None:
    """The part of ``cache`` whose layers live on ``device``, None when it has none there."""
    mine = [t for t in cache.tensors if (offload_kqv and on_gpu[t.layer]) == (device != CPU)]
    if not mine:
        return None
    return DeviceKV(
        cache.name, device, len({t.layer for t in mine}),
        sum(t.nbytes for t in mine if t.role in ("k", "r")),
        sum(t.nbytes for t in mine if t.role not in ("k", "r")),
        sum(alloc_size(ggml_types.BY_NAME[t.type], t.ne, device) for t in mine),
    )


def place(model: ModelInfo, pred: MemoryPrediction, n_gpu_layers: int, offload_kqv: bool = True,
          gpu: str | None = None, cpu_bufts: dict[str, str] | None = None) -> Placement:
    """Where llama.cpp puts each layer's weights and caches with ``-ngl n_gpu_layers`` on the GPU
    named ``gpu`` (None: llama.cpp has no GPU here, and every layer stays in host memory).
    ``cpu_bufts``: the buffer type llama.cpp gives each weight on the CPU (tensor name -> CPU,
    CPU_REPACK, ...); None or empty: no extra buffer types (``--no-repack``)."""
    n_layer = model.hparams.n_layer_all
    on_gpu = gpu_layers(n_layer, n_gpu_layers, gpu is not None)
    p = Placement(n_gpu_layers, offload_kqv, on_gpu, gpu)
    for cache in pred.caches:
        for device in p.devices:
            if (share := cache_on_device(cache, device, on_gpu, offload_kqv)) is not None:
                p.kv.append(share)
    names = {t.name for t in model.tensors}
    for t in model.tensors:
        il = _tensor_layer(t.name, n_layer)
        device = gpu if il >= 0 and on_gpu[il] else CPU
        p.weights[device] = p.weights.get(device, 0) + t.n_bytes
        extra = (cpu_bufts or {}).get(t.name, CPU) if device == CPU else CPU
        if extra.endswith("_Host"):  # a GPU's pinned host buffer type: with mmap (llama.cpp's default) the
            extra = CPU  # weight stays in the mapping (llama-model-loader.cpp: "avoid using a host buffer when using mmap")
        if extra != CPU:
            if extra != REPACK:  # AMX, KleidiAI, ...: their own layouts, not modelled
                raise GgufprofError(f"llama.cpp puts {t.name} in a {extra} buffer, whose size ggufprof does not "
                                    "model: use --no-repack to leave extra buffer types off")
            p.host_extra[extra] = p.host_extra.get(extra, 0) + pad(t.n_bytes, HOST_ALIGNMENT)
        if device != CPU:
            p.gpu_weights_buffer += alloc_size(ggml_types.BY_ID[t.type_id], t.shape, device)
    if "output.weight" not in names and on_gpu[n_layer]:
        # tied embeddings: llama.cpp loads token_embd a second time for the output layer (TENSOR_DUPLICATED)
        emb = next((t for t in model.tensors if t.name == "token_embd.weight"), None)
        if emb is not None:
            p.weights[gpu] = p.weights.get(gpu, 0) + emb.n_bytes
            p.gpu_weights_buffer += alloc_size(ggml_types.BY_ID[emb.type_id], emb.shape, gpu)
    return p
