"""The whole footprint of a context, per device: weights + KV + recurrent state + compute + output.

Everything but the compute buffers is predicted here from the file (pure):

* weights: the tensor bytes each device holds (``placement.py``; on an offload device its model
  buffer as that buffer type allocates it, one entry per device: CUDA0, RPC0[host:port], ...); on the
  CPU, with mmap (llama.cpp's default load mode), they are mapped file pages (``CPU_Mapped``), resident
  as they are touched, so they are shown apart but counted: the footprint is what llama.cpp
  *allocates or maps*, the safe bound that llama.cpp's own ``--fit`` budgets against, not what
  happens to be resident; without mmap (``-lm none|mlock|dio``) they are real host buffers (``CPU``,
  a GPU's pinned ``CUDA_Host``), anonymous memory read in at load and resident from then on;
* KV caches and recurrent state: the prediction, as each device's buffer allocates it (aligned);
* output: ``llama_context::output_reserve(n_seq_max)`` at creation, ``n_vocab x n_seq_max`` float
  logits (src/llama-context.cpp), in host memory (the output device's pinned host buffer with a GPU).
  It grows to ``n_batch x n_vocab`` floats only if every token's logits are asked for.

The compute buffers come from llama.cpp's own dry run (``measure/dry_run.py``): a graph reserve
that logs each backend's compute buffer exactly as a real context does (two decimals of MiB, so
exact to 5 KiB), holding nothing. ``CUDA_Host`` compute buffers are pinned *host* memory.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from ..model.model_info import ModelInfo
from .placement import CPU, Placement, is_host_buffer
from .graph import GRAPH_RESULTS, graph_meta_bytes
from .predict import MemoryPrediction

HOST = CPU  # the device name of host memory in a footprint


@dataclass(frozen=True)
class DeviceFootprint:
    device: str  # "CPU" (host memory) or "CUDA0", ...
    weights_bytes: int
    weights_mapped: bool  # CPU weights are mmapped file pages, not allocations (the load mode maps them)
    repack_bytes: int  # host weights copied into extra buffer types (CPU_REPACK) on top of the mapping
    kv_bytes: int
    recurrent_bytes: int
    compute_bytes: int
    output_bytes: int
    # the model buffers llama.cpp logs for these weights, by buffer type (host: CPU_Mapped, or CPU and
    # CUDA_Host without mmap, and CPU_REPACK; an offload device: its own)
    weights_buffers: dict[str, int] = field(default_factory=dict)
    # host: the context's graph metadata on the heap (memory/graph.py), in no log line; 0 elsewhere
    graph_bytes: int = 0

    @property
    def total_bytes(self) -> int:
        return (self.weights_bytes + self.repack_bytes + self.kv_bytes + self.recurrent_bytes + self.compute_bytes
                + self.output_bytes + self.graph_bytes)

    def to_dict(self) -> dict:
        return {**asdict(self), "total_bytes": self.total_bytes}


def gpu_bytes(devices: list[DeviceFootprint]) -> int:
    """The footprint on the GPUs together: every device but host memory."""
    return sum(d.total_bytes for d in devices if d.device != HOST)


def output_bytes(model: ModelInfo, n_seq_max: int) -> int:
    """The output buffer ``output_reserve(n_seq_max)`` allocates at context creation (logits only:
    llama-cpp-python contexts do not ask for embeddings)."""
    return model.n_vocab * n_seq_max * 4


def compute_device(buffer_type: str) -> str:
    """The device whose memory a compute buffer type takes: CUDA_Host and CPU are host memory."""
    return HOST if is_host_buffer(buffer_type) else buffer_type


def footprint(model: ModelInfo, pred: MemoryPrediction, placement: Placement,
              compute_bytes: dict[str, int]) -> list[DeviceFootprint]:
    """Per device, from the prediction, its placement and the dry run's compute buffers (by buffer
    type name, as llama.cpp logs them); host memory also holds the context's graph metadata, every
    graph result a long-running context makes (memory/graph.py)."""
    state = {c.name for c in pred.caches if not c.grows_with_context}
    # every device llama.cpp offloads to has a row, holding something or not (llama-fit-params prints it too)
    # in llama.cpp's device order, then anything else that holds a buffer
    devices = [HOST] + [d for d in placement.offload_devices if d != HOST]
    devices += sorted(({d.device for d in placement.kv} | set(placement.weights)
                       | {compute_device(b) for b in compute_bytes}) - set(devices))
    out = []
    for dev in devices:
        shares = [d for d in placement.kv if d.device == dev]
        out.append(DeviceFootprint(
            device=dev,
            weights_bytes=placement.host_weights if dev == HOST else placement.weights_buffer.get(dev, 0),
            weights_mapped=dev == HOST and placement.mmap,
            repack_bytes=sum(placement.host_extra.values()) if dev == HOST else 0,
            kv_bytes=sum(d.buffer_bytes for d in shares if d.cache not in state),
            recurrent_bytes=sum(d.buffer_bytes for d in shares if d.cache in state),
            compute_bytes=sum(b for t, b in compute_bytes.items() if compute_device(t) == dev),
            output_bytes=output_bytes(model, pred.settings.parallel) if dev == HOST else 0,
            weights_buffers=(placement.host_model_buffers if dev == HOST
                             else {dev: placement.weights_buffer[dev]} if dev in placement.weights_buffer else {}),
            graph_bytes=GRAPH_RESULTS * graph_meta_bytes(model, pred.n_ctx, pred.n_ubatch) if dev == HOST else 0,
        ))
    return out
