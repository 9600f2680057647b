"""Which device holds each layer's weights and KV cache, and how many bytes that puts on each.

Rules from the vendored llama.cpp (devices named by the buffer type llama.cpp logs for them:
``CUDA0``, ``RPC0[127.0.0.1:50052]``; the list is asked of llama.cpp by measure/dry_run.py):

* Devices (``llama_prepare_model_devices``, src/llama.cpp): ``-dev`` names them (``none``: no
  offload); by default RPC servers come first, then GPUs, then integrated GPUs only when there is no
  discrete GPU. ``-sm none`` keeps only device ``main_gpu`` (``-mg``; negative: none).
* ``llama_model::load_tensors`` (src/llama-model.cpp): ``i_gpu_start = max(n_layer + 1 -
  n_gpu_layers, 0)``, ``act_gpu_layers = min(n_gpu_layers, n_layer + 1)`` (0 without devices);
  layer ``il`` (0..n_layer, where ``n_layer`` is the output layer) is offloaded when ``il >=
  i_gpu_start`` and ``il - i_gpu_start < act_gpu_layers``, to device ``upper_bound(splits,
  float(il - i_gpu_start) / act_gpu_layers)``, where ``splits`` is the cumulative, normalized
  ``tensor_split`` (``-ts``) in single-precision floats -- or, all zero, the devices' free memory.
  So the output layer is the first one offloaded, and ``-ngl 10`` on 22 layers puts the output plus
  layers 13..21 on the GPU. The input layer (token embeddings) always stays on the CPU. A negative
  ``n_gpu_layers`` means all (``n_layer + 1``).
* Overrides (``-ot``, and ``--cpu-moe``/``--n-cpu-moe``/``--n-cpu-ffn``, which common/arg.cpp turns
  into ``-ot`` patterns): ``llama_model_loader::create_tensor`` (src/llama-model-loader.cpp) takes the
  first pattern that ``std::regex_search`` finds in the tensor's name; an override to ``CPU`` still
  picks among the CPU's extra buffer types (``select_weight_buft`` over ``buft_list_cpu``), any
  other buffer type is taken as it is.
* ``llama_kv_cache::llama_kv_cache`` and ``llama_memory_recurrent``: a layer's K/V (or R/S state)
  live in ``ggml_backend_dev_buffer_type(dev_layer(il))`` when ``offload_kqv``, else in host memory.
  ``n_layer`` here counts NextN/MTP layers too (``n_layer_all``).
* Extra buffer types (``make_cpu_buft_list``, src/llama-model.cpp; ``select_weight_buft``,
  src/llama-model-loader.cpp): a weight on the CPU goes to the first of the CPU's extra buffer types
  that supports its op -- on x86 with AVX2 ``CPU_REPACK`` for Q4_0/Q4_K/IQ4_NL/... matrices used in
  a MUL_MAT (ggml-cpu/repack.cpp, ``ggml_repack_get_optimal_repack_type``), never token_embd
  (GET_ROWS) -- and is copied there at load, *on top of* the mapped file. Which tensors go where
  depends on the CPU and the build, so it is asked of llama.cpp itself (measure/dry_run.py,
  ``cpu_buffer_types``) and given here as ``cpu_bufts``; ``CPU_REPACK`` allocates each tensor's
  ``ggml_nbytes`` (the repacked blocks are the same size), aligned to 32 bytes. On a CPU with AMX
  (Sapphire Rapids and later, a build with ``__AMX_INT8__``) the ``AMX`` buffer type comes first
  (ggml-cpu.cpp, ggml_backend_cpu_get_extra_buffer_types) and takes the 2-D MUL_MAT weights of
  Q4_0/Q4_1/Q8_0/Q4_K/Q5_K/Q6_K/IQ4_XS in a VNNI layout that may be larger (:func:`amx_alloc_size`).
  Other extra buffer types (KleidiAI on Arm, SpacemiT on RISC-V) are refused, not guessed.
* Buffer sizes: each tensor is padded to the buffer type's alignment (CPU 32, CUDA 128; an RPC
  buffer type asks its server, 32 for an rpc-server on a CPU), and the CUDA buffer type allocates
  quantized tensors with their last row padded to a multiple of 512 values
  (``ggml_backend_cuda_buffer_type_get_alloc_size``, MATRIX_ROW_PADDING). An RPC buffer type asks the
  server for that size (``ggml_backend_rpc_buffer_type_get_alloc_size``, ggml-rpc.cpp): a CPU server
  answers ``ggml_nbytes``. That is why llama.cpp's ``CUDA0 KV buffer size`` line can exceed the
  ``llama_kv_cache: size`` line for quantized caches.
* Load mode (``-lm``; ``llama_model_params.load_mode``, include/llama.h) and ``--no-host``
  (``no_host``). The host's buffer types, in the order ``select_weight_buft`` tries them
  (``make_cpu_buft_list``, src/llama-model.cpp): ACCEL devices', then the pinned host buffer type of
  the first offload device that has one (``ggml_backend_dev_host_buffer_type``: CUDA_Host; an RPC
  device has none) unless ``--no-host``, then the CPU's extra buffer types (CPU_REPACK) unless
  ``--no-repack``, then CPU. So with a GPU host buffer type in the list, a weight the GPU's backend
  supports goes there and *not* to CPU_REPACK (``--no-host`` gives repacking back).
  ``llama_model_loader::create_tensor`` (src/llama-model-loader.cpp) then, with mmap, replaces a
  device's host buffer type by the CPU's ("avoid using a host buffer when using mmap").
  ``llama_model_loader``'s constructor: mmap for ``auto``, ``mmap`` and ``mmap+mlock``;
  ``load_tensors`` turns ``auto`` to no mmap when a device lacks ``caps.mmap_support`` (an iGPU).
  ``load_tensors`` then makes one buffer per buffer type: with mmap, the CPU's default buffer type
  is the mapped file range ``[first, last)`` of its tensors (``CPU_Mapped``, file-backed pages, paged
  in as they are used; ``mmap+mlock`` locks them); otherwise, and for every other buffer type,
  ``ggml_backend_alloc_ctx_tensors_from_buft`` (ggml-alloc.c) allocates a real buffer holding each
  tensor at ``ggml_backend_buft_get_alloc_size`` padded to ``ggml_backend_buft_get_alignment``
  (``CPU``: ggml_nbytes, TENSOR_ALIGNMENT 32; ``CUDA_Host`` takes the CPU's alloc size and
  alignment) -- anonymous memory, read in at load and resident (``mlock`` locks it). ``dio`` only
  changes how the file is read: buffers as ``none``. Not modelled: lazy tensors
  (``TENSOR_READ_LAZY``, > 4 GiB per-layer embeddings, mapped whatever the load mode).
* ``-sm row`` (split buffer types, ``make_gpu_buft_list``) and ``-sm tensor`` (a meta device) are not
  modelled: place() refuses them rather than guess.
"""

from __future__ import annotations

import bisect
import re
import struct
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

from ..errors import GgufprofError
from .caches import Cache, pad
from ..model import ggml_types

if TYPE_CHECKING:  # annotations only: the worker processes import this module, and not the GGUF reader
    from .predict import MemoryPrediction
    from ..model.model_info import ModelInfo

CPU = "CPU"  # host memory, as llama.cpp names its buffers
REPACK = "CPU_REPACK"  # ggml_backend_cpu_repack_buffer_type: its tensors take ggml_nbytes, 32-byte aligned
AMX = "AMX"  # ggml_backend_amx_buffer_type (ggml-cpu/amx): amx_alloc_size, 32-byte aligned
EXTRA_BUFTS = (AMX, REPACK)  # the CPU's extra buffer types ggufprof sizes, in ggml's order
# ggml-cpu/amx/mmq.cpp get_row_size: bytes added per block of a row packed for AMX (the s8s8
# compensation of Q8_0, the K-quants' unpacked scales and mins, IQ4_XS's scales); qtype_has_amx_kernels
AMX_EXTRA_PER_BLOCK = {"q4_0": 0, "q4_1": 0, "q8_0": 4, "q4_K": 4, "q5_K": 4, "q6_K": 0, "iq4_xs": 2}
HOST_ALIGNMENT, GPU_ALIGNMENT = 32, 128  # ggml_backend_cpu / ggml_backend_cuda buffer type alignment
MATRIX_ROW_PADDING = 512
_BLK = re.compile(r"^blk\.(\d+)\.")
# enum llama_load_mode (include/llama.h) from 0, -lm's spellings (common/arg.cpp); "auto" is -1
LOAD_MODES = ("none", "mmap", "mlock", "mmap+mlock", "dio")
MMAP_LOAD_MODES = ("mmap", "mmap+mlock")  # llama_model_loader: use_mmap (and for auto, unless a device lacks it)
MAPPED = "CPU_Mapped"  # the name of a buffer made from the mapped file (ggml_backend_cpu_buffer_from_ptr)
SPLIT_MODES = ("none", "layer", "row", "tensor")  # enum llama_split_mode (include/llama.h), -sm's spellings
NO_DEVICES = "none"  # -dev none: offload nothing (common/arg.cpp, parse_device_list)

# common/common.h: the -ot patterns behind --cpu-moe, --n-cpu-moe N and --n-cpu-ffn N (llm_ffn_exps_cpu_override,
# llm_add_n_cpu_ffn_overrides: "blk\\.%d" + the regex, layers 0..N-1, each to the CPU buffer type)
LLM_FFN_EXPS_REGEX = r"\.ffn_(up|down|gate|gate_up)_(ch|)exps"
LLM_FFN_DENSE_REGEX = r"\.ffn_(up|down|gate)\."


# common/fit.cpp (common_params_fit_impl, get_overflow_pattern): the parts of one layer's FFN that
# llama.cpp's fit moves off a device at a boundary, after "blk\\.N" -- the layer's attention stays
LAYER_FRACTION_ATTN = r"\.ffn_(gate|up|gate_up|down).*"  # the whole FFN moves (router and shared experts too)
LAYER_FRACTION_UP = r"\.ffn_(gate|gate_up|down).*"  # ffn_up stays with the attention
LAYER_FRACTION_GATE = r"\.ffn_down.*"  # ffn_up and ffn_gate stay
LAYER_FRACTION_MOE = LLM_FFN_EXPS_REGEX  # every MoE expert tensor moves; the dense parts stay


def ffn_block_regex(il: int, ffn_regex: str) -> str:
    """``llm_ffn_block_regex`` (common/common.h): layer ``il``'s FFN tensors."""
    return rf"blk\.{il}{ffn_regex}"


@dataclass(frozen=True)
class PlacementFlags:
    """Every llama.cpp flag that decides where weights and caches go, as one serialisable record
    (sent to the worker processes that load llama.cpp, measure/workers.py). Names and meanings are
    common/arg.cpp's: ``-ngl``, ``-sm``, ``-ts``, ``-mg``, ``-dev``, ``--rpc``, ``-ot``, ``-cmoe``,
    ``-ncmoe``, ``-ncffn``, ``--no-repack``, ``-lm``, ``--no-host``. Parsed from the command line by flags.py."""

    n_gpu_layers: int = 0  # -ngl; negative: every layer and the output layer
    split_mode: str = "layer"  # -sm: none | layer (row and tensor are refused by place())
    tensor_split: tuple[float, ...] = ()  # -ts; empty or all zero: by each device's free memory
    main_gpu: int = 0  # -mg: the one device with -sm none
    devices: tuple[str, ...] = ()  # -dev: device names (RPC0, CUDA0, ...); ("none",): no offload; (): llama.cpp's choice
    rpc: tuple[str, ...] = ()  # --rpc: host:port of each rpc-server, added as devices before anything is listed
    overrides: tuple[tuple[str, str], ...] = ()  # -ot: (regex, buffer type name), in the order given
    cpu_moe: bool = False  # -cmoe: every layer's expert tensors on the CPU
    n_cpu_moe: int = 0  # -ncmoe N: the first N layers' expert tensors on the CPU
    n_cpu_ffn: int = 0  # -ncffn N: the first N layers' dense FFN tensors on the CPU
    repack: bool = True  # --no-repack: no extra CPU buffer types (llama_model_params.use_extra_bufts)
    load_mode: str = "auto"  # -lm: auto | none | mmap | mlock | mmap+mlock | dio (LOAD_MODES)
    no_host: bool = False  # --no-host: no GPU host buffer type for host weights (llama_model_params.no_host)

    def all_overrides(self) -> list[tuple[str, str]]:
        """The override list llama.cpp gets, first match wins: ``-ot`` entries, then ``--cpu-moe``,
        ``--n-cpu-moe``, ``--n-cpu-ffn`` expanded as common/arg.cpp does (it appends each in the order
        the flags come on its command line; ggufprof's order is this one, so give llama.cpp the flags
        in this order to get the same placement when patterns overlap)."""
        out = list(self.overrides)
        if self.cpu_moe:
            out.append((LLM_FFN_EXPS_REGEX, CPU))
        out += [(ffn_block_regex(i, LLM_FFN_EXPS_REGEX), CPU) for i in range(self.n_cpu_moe)]
        out += [(ffn_block_regex(i, LLM_FFN_DENSE_REGEX), CPU) for i in range(self.n_cpu_ffn)]
        return out

    def uses_mmap(self, devices: list["OffloadDevice"]) -> bool:
        """Whether the weights are mapped: ``llama_model_loader``'s constructor sets ``use_mmap`` for
        auto, mmap and mmap+mlock; ``llama_model::load_tensors`` drops it for ``auto`` when one of the
        model's ``devices`` lacks ``caps.mmap_support`` (src/llama-model.cpp)."""
        if self.load_mode == "auto":
            return all(d.mmap_support for d in devices)
        return self.load_mode in MMAP_LOAD_MODES

    def cpu_buft_key(self) -> "PlacementFlags":
        """Only what decides the host's buffer type list (make_cpu_buft_list: the model's devices,
        --no-host, --no-repack): the placement the buffer types of host weights are asked at
        (measure/dry_run.py ``cpu_buffer_types``)."""
        return PlacementFlags(split_mode=self.split_mode, main_gpu=self.main_gpu, devices=self.devices,
                              rpc=self.rpc, repack=self.repack, no_host=self.no_host)

    @property
    def offloads(self) -> bool:
        """Whether anything may leave host memory (else no device list is needed)."""
        return bool(self.n_gpu_layers) or any(b != CPU for _, b in self.overrides)

    def to_dict(self) -> dict:
        """As JSON holds it (lists, not tuples): the same in a worker request and a record's settings."""
        d = asdict(self)
        for k in ("tensor_split", "devices", "rpc"):
            d[k] = list(d[k])
        d["overrides"] = [list(o) for o in self.overrides]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "PlacementFlags":
        d = dict(d)
        d["tensor_split"] = tuple(d.get("tensor_split", ()))
        d["devices"] = tuple(d.get("devices", ()))
        d["rpc"] = tuple(d.get("rpc", ()))
        d["overrides"] = tuple(tuple(o) for o in d.get("overrides", ()))
        return cls(**d)


@dataclass(frozen=True)
class OffloadDevice:
    """A device llama.cpp can offload to, as its device list reports it (measure/llama_ctx.py):
    ``name`` as -dev takes it (RPC0, CUDA0), ``buffer_type`` its default buffer type's name, as the
    log and -ot name it (``RPC0[127.0.0.1:50052]``, ``CUDA0``), ``backend`` its registry (RPC, CUDA)."""

    name: str
    buffer_type: str = ""
    type: str = "gpu"  # gpu | igpu (enum ggml_backend_dev_type)
    backend: str = ""
    free: int = 0
    alignment: int = GPU_ALIGNMENT
    host_buffer_type: str = ""  # ggml_backend_dev_host_buffer_type's name (CUDA_Host); "": none (RPC)
    host_alignment: int = HOST_ALIGNMENT  # its ggml_backend_buft_get_alignment
    mmap_support: bool = True  # caps.mmap_support (ggml_backend_dev_get_props)

    @property
    def buft(self) -> str:
        return self.buffer_type or self.name

    @property
    def pads_rows(self) -> bool:
        """Whether its buffer type pads quantized rows to MATRIX_ROW_PADDING (CUDA's does; an RPC
        server on a CPU answers plain ggml_nbytes)."""
        return self.backend != "RPC"

    @classmethod
    def from_backend(cls, d: dict) -> "OffloadDevice":
        """From one entry of measure/llama_ctx.backend_devices (as a dict)."""
        return cls(d["name"], d.get("buffer_type") or d["name"], d.get("type", "gpu"), d.get("backend", ""),
                   d.get("free", 0), d.get("alignment") or GPU_ALIGNMENT, d.get("host_buffer_type") or "",
                   d.get("host_alignment") or HOST_ALIGNMENT, d.get("mmap_support", True))


def select_devices(backend: list[dict], flags: PlacementFlags) -> list[OffloadDevice]:
    """The devices a model offloads to, in order (``llama_prepare_model_devices``, src/llama.cpp):
    ``-dev`` as given (a CPU device is refused, as common/arg.cpp's parse_device_list does); else RPC
    servers first, then GPUs, then integrated GPUs only without a discrete GPU. ``-sm none`` keeps
    device ``main_gpu`` alone (negative: none)."""
    by_name = {d["name"]: d for d in backend}
    if flags.devices == (NO_DEVICES,):
        devs: list[dict] = []
    elif flags.devices:
        bad = [n for n in flags.devices if n not in by_name or by_name[n].get("type") == "cpu"]
        if bad:
            offer = [d["name"] for d in backend if d.get("type") != "cpu"]
            raise GgufprofError(f"--device: invalid device {bad[0]} (llama.cpp has {', '.join(offer) or 'no offload device'}"
                                f"{'' if offer else '; with --rpc HOST:PORT an rpc-server is one'})")
        devs = [by_name[n] for n in flags.devices]
    else:
        rpc = [d for d in backend if d.get("type") == "gpu" and d.get("backend") == "RPC"]
        gpus = [d for d in backend if d.get("type") == "gpu" and d.get("backend") != "RPC"]
        igpus = [d for d in backend if d.get("type") == "igpu"]
        devs = rpc + gpus + ([] if gpus else igpus[:1])  # several igpus of one backend are rare: the first
    if flags.split_mode == "none" and devs:
        if flags.main_gpu < 0:
            devs = []
        elif flags.main_gpu >= len(devs):
            raise GgufprofError(f"--main-gpu {flags.main_gpu}: llama.cpp has {len(devs)} device(s) to offload to "
                                "(invalid value for main_gpu)")
        else:
            devs = [devs[flags.main_gpu]]
    return [OffloadDevice.from_backend(d) for d in devs]


def f32(x: float) -> float:
    """``x`` rounded to single precision, as a C ``float`` holds it. A sum or quotient of two floats
    computed in double precision and then rounded this way is exactly the single-precision result
    (double has more than 2 x 24 + 2 bits), so llama.cpp's float arithmetic is reproduced without
    numpy: the worker processes import this module before llama_cpp, and on a CUDA build numpy loaded
    before llama.cpp's libraries made llama_model_load_from_file segfault (measured on an H200)."""
    return struct.unpack("f", struct.pack("f", x))[0]


def split_points(devices: list[OffloadDevice], tensor_split: tuple[float, ...]) -> list[float]:
    """``splits`` of load_tensors: cumulative ``tensor_split`` (or free memory when every value is 0),
    normalized, in single precision as llama.cpp computes it."""
    n = len(devices)
    ts = [float(x) for x in tensor_split[:n]] + [0.0] * max(0, n - len(tensor_split))
    raw = [f32(x) for x in ts] if any(ts) else [f32(d.free) for d in devices]
    if not any(raw):  # no free memory known (a device named only): one device takes everything anyway
        raw = [1.0] * n
    out, total = [], 0.0
    for x in raw:
        total = f32(total + x)
        out.append(total)
    return [f32(x / total) for x in out]


def layer_devices(n_layer: int, flags: PlacementFlags, devices: list[OffloadDevice]) -> list[OffloadDevice | None]:
    """The device of layers 0..n_layer (the last entry is the output layer), None for the CPU."""
    if flags.split_mode in ("row", "tensor"):
        raise GgufprofError(f"--split-mode {flags.split_mode}: its split buffer types (rows of each matrix across "
                            "devices) are not modelled by ggufprof; use -sm layer or -sm none")
    ngl = n_layer + 1 if flags.n_gpu_layers < 0 else flags.n_gpu_layers
    start = max(n_layer + 1 - ngl, 0)
    act = min(ngl, n_layer + 1) if devices else 0
    splits = split_points(devices, flags.tensor_split) if act else []
    out: list[OffloadDevice | None] = []
    for il in range(n_layer + 1):
        if il < start or il - start >= act:
            out.append(None)
            continue
        x = f32(f32(il - start) / f32(act))  # std::upper_bound over the float split points
        out.append(devices[min(bisect.bisect_right(splits, x), len(devices) - 1)])
    return out


def layers_per_device(n_layer: int, flags: PlacementFlags, devices: list[OffloadDevice]) -> tuple[int, ...]:
    """How many of layers 0..n_layer (the output layer included) each device holds, in device order:
    layer_devices counted, so a ``-ts`` of layer counts is checked against llama.cpp's float split
    points rather than assumed to be exact."""
    per_layer = layer_devices(n_layer, flags, devices)
    return tuple(sum(d is dev for d in per_layer) for dev in devices)


def is_host_buffer(buffer_type: str) -> bool:
    """Whether a buffer type llama.cpp logs is host memory: CPU, CPU_Mapped, the CPU's extra buffer
    types (CPU_REPACK, AMX), and the pinned host buffers of a GPU backend (CUDA_Host, ...)."""
    return buffer_type.startswith(CPU) or buffer_type.endswith("_Host") or buffer_type in EXTRA_BUFTS


def is_rpc_buffer(buffer_type: str) -> bool:
    """Whether a buffer type llama.cpp logs is an rpc-server's: ggml-rpc.cpp names it
    ``RPC<device>[<endpoint>]`` (ggml_backend_rpc_buffer_type), its memory the server's process's."""
    return buffer_type.startswith("RPC") and buffer_type.endswith("]")


def gpu_layers(n_layer: int, n_gpu_layers: int, has_gpu: bool = True) -> list[bool]:
    """On-GPU flag for layers 0..n_layer (the last entry is the output layer), one GPU."""
    devs = [OffloadDevice("GPU")] if has_gpu else []
    return [d is not None for d in layer_devices(n_layer, PlacementFlags(n_gpu_layers=n_gpu_layers), devs)]


def alloc_size(t: ggml_types.GgmlType, ne: tuple[int, ...], device: str | OffloadDevice) -> int:
    """Bytes a tensor takes in a buffer of ``device``: ggml_backend_buft_get_alloc_size, aligned.
    A name stands for the CPU (``CPU``) or a CUDA-like GPU."""
    if isinstance(device, str):
        device = None if device == CPU else OffloadDevice(device)
    size = ggml_types.nbytes(t, ne)
    if device is not None and device.pads_rows and t.is_quantized and ne[0] % MATRIX_ROW_PADDING:
        size += t.type_size * (MATRIX_ROW_PADDING - ne[0] % MATRIX_ROW_PADDING) // t.blck_size
    return pad(size, HOST_ALIGNMENT if device is None else device.alignment)


def amx_alloc_size(t: ggml_types.GgmlType, ne: tuple[int, ...]) -> int:
    """Bytes of a weight in llama.cpp's AMX buffer (ggml-cpu/amx/mmq.cpp,
    ggml_backend_amx_get_alloc_size): ``ne[1]`` rows of ``ne[0] / block`` blocks, each block its
    type's size plus what get_row_size adds for the VNNI layout; types without AMX kernels (F16)
    are not packed (ggml_nbytes). Not yet padded to the buffer's alignment."""
    extra = AMX_EXTRA_PER_BLOCK.get(t.name)
    if extra is None:
        return ggml_types.nbytes(t, ne)
    return ne[1] * (ne[0] // t.blck_size) * (t.type_size + extra)


def extra_alloc_size(buft: str, t: ggml_types.GgmlType, ne: tuple[int, ...]) -> int:
    """Bytes of a weight in one of the CPU's extra buffer types, padded to its alignment
    (TENSOR_ALIGNMENT 32 for both): CPU_REPACK keeps ggml_nbytes, AMX packs (:func:`amx_alloc_size`)."""
    if buft == REPACK:
        return pad(ggml_types.nbytes(t, ne), HOST_ALIGNMENT)
    if buft == AMX:
        return pad(amx_alloc_size(t, ne), HOST_ALIGNMENT)
    raise GgufprofError(f"llama.cpp puts weights in a {buft} buffer, whose size ggufprof does not model: "
                        "use --no-repack to leave extra buffer types off")


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
    on_gpu: list[bool]  # per layer, then the output layer: offloaded to some device
    gpu: str | None = None  # the first offload device's buffer type (CUDA0, RPC0[host:port]); None: none
    kv: list[DeviceKV] = field(default_factory=list)
    weights: dict[str, int] = field(default_factory=dict)  # device (buffer type) -> tensor bytes
    weights_buffer: dict[str, int] = field(default_factory=dict)  # offload device -> its model buffer, as allocated
    host_extra: dict[str, int] = field(default_factory=dict)  # extra host buffer type -> bytes (CPU_REPACK, AMX)
    host_mapped: int = 0  # the CPU_Mapped buffer: the file range from the first to the last weight mapped on the CPU
    mmap: bool = True  # host weights are mapped file pages (the load mode resolved); else host_buffers hold them
    host_buffers: dict[str, int] = field(default_factory=dict)  # without mmap: CPU, CUDA_Host -> bytes allocated
    layer_device: list[str] = field(default_factory=list)  # per layer, then the output layer: CPU or a device
    offload_devices: list[str] = field(default_factory=list)  # the devices llama.cpp offloads to, in its order
    flags: dict = field(default_factory=dict)  # the PlacementFlags this placement answers

    @property
    def devices(self) -> list[str]:
        return [CPU] + (self.offload_devices or ([self.gpu] if self.gpu else []))

    @property
    def host_weights(self) -> int:
        """Host memory the weights take: with mmap the tensor bytes in the mapping (file pages, counted
        in full), without it the real buffers allocated (CPU, CUDA_Host); CPU_REPACK apart (host_extra)."""
        return self.weights.get(CPU, 0) if self.mmap else sum(self.host_buffers.values())

    @property
    def host_model_buffers(self) -> dict[str, int]:
        """Every host ``model buffer size`` line llama.cpp logs, by buffer type, as predicted: the
        mapping (CPU_Mapped) or the real buffers, and the extra buffer types."""
        own = ({MAPPED: self.host_mapped} if self.host_mapped else {}) if self.mmap else dict(self.host_buffers)
        return {**own, **self.host_extra}

    @property
    def gpu_weights_buffer(self) -> int:
        """The offload devices' model buffers together (one GPU: its model buffer)."""
        return sum(self.weights_buffer.values())

    def kv_bytes(self, device: str) -> int:
        return sum(d.k_bytes + d.v_bytes for d in self.kv if d.device == device)

    def kv_buffer(self, device: str) -> int:
        return sum(d.buffer_bytes for d in self.kv if d.device == device)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["gpu_weights_buffer"] = self.gpu_weights_buffer
        d["kv_bytes_by_device"] = {dev: self.kv_bytes(dev) for dev in self.devices}
        d["kv_buffer_by_device"] = {dev: self.kv_buffer(dev) for dev in self.devices}
        return d


# Tensors outside "blk.N." whose LLM_TENSOR_INFOS entry (src/llama-arch.cpp) is LLM_TENSOR_LAYER_REPEATING:
# created with layer 0 ("do the norms on the first layer"), so they live on layer 0's device.
# (rope_freqs & co. are TENSOR_DUPLICATED for the other layers: a layer on another device gets its own copy,
# which is not counted here -- a few hundred bytes.)
_FIRST_LAYER = ("token_embd_norm.", "rope_freqs.", "rope_factors_long.", "rope_factors_short.",
                "per_layer_model_proj.", "per_layer_proj_norm.", "conv1d.", "posnet.", "convnext.", "hrm.z_l_init",
                "nextn.pre_projection.")
# ... and LLM_TENSOR_LAYER_OUTPUT: the output layer's device
_OUTPUT_LAYER = ("output", "cls.", "cls", "dense_2.", "dense_3.", "dec.output_norm.", "enc.output_norm.", "altup_proj.",
                 "altup_unembd_proj.", "nextn.post_projection.", "fc.", "d2t", "markov_w1.", "markov_w2.", "conf_proj.",
                 "selector_")


_LFM2_OUTPUT_NORM = ("lfm2", "lfm2moe")  # src/models/lfm2*.cpp: token_embd_norm is LLM_TENSOR_OUTPUT_NORM_LFM2 (output)


def _tensor_layer(name: str, n_layer: int, arch: str = "") -> int:
    """The layer a weight tensor belongs to: -1 input, 0..n_layer-1 repeating, n_layer output
    (llm_tensor_info_for's layer, src/llama-arch.cpp, read from the name)."""
    if m := _BLK.match(name):
        return int(m.group(1))
    if name.startswith(_OUTPUT_LAYER) or (arch in _LFM2_OUTPUT_NORM and name.startswith("token_embd_norm.")):
        return n_layer
    if name.startswith(_FIRST_LAYER):
        return 0
    return -1  # token_embd and the other LLM_TENSOR_LAYER_INPUT tensors: the input layer, always on the CPU


def cache_on_device(cache: Cache, device: str, layer_device: list[str], offload_kqv: bool) -> DeviceKV | None:
    """The part of ``cache`` whose layers live on ``device`` (a buffer type name; CPU: host memory),
    None when it has none there."""
    return _cache_share(cache, device, layer_device, offload_kqv, None)


def _cache_share(cache: Cache, device: str, layer_device: list[str], offload_kqv: bool,
                 dev: OffloadDevice | None) -> DeviceKV | None:
    mine = [t for t in cache.tensors if (layer_device[t.layer] if offload_kqv else CPU) == device]
    if not mine:
        return None
    return DeviceKV(
        cache.name, device, len({t.layer for t in mine}),
        sum(t.nbytes for t in mine if t.role in ("k", "r")),
        sum(t.nbytes for t in mine if t.role not in ("k", "r")),
        sum(alloc_size(ggml_types.BY_NAME[t.type], t.ne, dev if dev is not None else device) for t in mine),
    )


_REGEX_OPERATORS = set(".^$*+?{}[]()|\\")


def _literal_head(pattern: str) -> str:
    """Text every match of ``pattern`` starts with: its characters up to the first regex operator
    (``\\.`` read as a dot), "" when a ``|`` outside parentheses offers another start."""
    depth, i = 0, 0
    while i < len(pattern):  # a | at depth 0: the pattern has alternatives from its start
        c = pattern[i]
        if c == "\\":
            i += 2
            continue
        if c == "[":  # a class: skip to its end (a ] first, or after ^, is one of its characters)
            i += 1 + (pattern[i + 1:i + 2] == "^")
            i += pattern[i:i + 1] == "]"
            while i < len(pattern) and pattern[i] != "]":
                i += 2 if pattern[i] == "\\" else 1
        depth += (c == "(") - (c == ")")
        if c == "|" and depth == 0:
            return ""
        i += 1
    head, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and i + 1 < len(pattern) and not pattern[i + 1].isalnum():
            head.append(pattern[i + 1])
            i += 2
        elif c in _REGEX_OPERATORS:
            break
        else:
            head.append(c)
            i += 1
    if i < len(pattern) and pattern[i] in "*?{":  # the last character may repeat zero times
        head = head[:-1]
    return "".join(head)


@dataclass(frozen=True)
class _Override:
    """One -ot entry, compiled once for every tensor of a placement: the patterns -ncmoe writes
    (``blk\\.N\\.ffn_...``, one per layer) are searched only in names that hold their literal head."""

    head: str
    pattern: re.Pattern
    buft: str

    @classmethod
    def of(cls, pattern: str, buft: str) -> "_Override":
        return cls(_literal_head(pattern), re.compile(pattern), buft)


def _override(name: str, overrides: list[_Override]) -> str | None:
    """The buffer type of the first override whose pattern ``std::regex_search`` finds in ``name``
    (create_tensor, src/llama-model-loader.cpp; Python's re.search is the same for these patterns)."""
    for o in overrides:
        if o.head in name and o.pattern.search(name):
            return o.buft
    return None


def place(model: ModelInfo, pred: MemoryPrediction, n_gpu_layers: int = 0, offload_kqv: bool = True,
          gpu: str | None = None, cpu_bufts: dict[str, str] | None = None, *,
          flags: PlacementFlags | None = None, devices: list[OffloadDevice] | None = None) -> Placement:
    """Where llama.cpp puts each layer's weights and caches.

    ``flags`` and ``devices`` (measure/dry_run.offload_devices: llama.cpp's own list, selected by
    select_devices): every placement flag on an ordered device list. Without them, ``-ngl
    n_gpu_layers`` on the one GPU named ``gpu`` (None: no GPU, every layer stays in host memory).
    ``cpu_bufts``: the buffer type llama.cpp gives each weight on the CPU (tensor name -> CPU,
    CPU_REPACK, CUDA_Host, ...: ``select_weight_buft`` over ``make_cpu_buft_list``'s list, asked at
    ``flags.cpu_buft_key()``); None or empty: each weight in the CPU's own buffer type. With mmap
    (``flags.uses_mmap``) a host buffer type (CUDA_Host) becomes CPU and the CPU's weights are the
    mapped range (``host_mapped``); without it each buffer type is a real buffer (``host_buffers``)."""
    if flags is None:
        flags = PlacementFlags(n_gpu_layers=n_gpu_layers)
    if devices is None:
        devices = [OffloadDevice(gpu)] if gpu else []
    n_layer = model.hparams.n_layer_all
    per_layer = layer_devices(n_layer, flags, devices)
    by_buft = {d.buft: d for d in devices}
    layer_device = [CPU if d is None else d.buft for d in per_layer]
    mmap = flags.uses_mmap(devices)
    p = Placement(flags.n_gpu_layers, offload_kqv, [d is not None for d in per_layer],
                  devices[0].buft if devices else None, layer_device=layer_device,
                  offload_devices=[d.buft for d in devices], flags=flags.to_dict(), mmap=mmap)
    # a device's pinned host buffer type (CUDA_Host) as cpu_bufts names it: its alignment, when the device is listed
    host_align = {d.host_buffer_type: d.host_alignment for d in devices if d.host_buffer_type}
    for cache in pred.caches:
        for device in p.devices:
            if (share := _cache_share(cache, device, layer_device, offload_kqv, by_buft.get(device))) is not None:
                p.kv.append(share)
    overrides = flags.all_overrides()
    unknown = sorted({b for _, b in overrides if b != CPU and b not in by_buft})
    if unknown:
        raise GgufprofError(f"--override-tensor: unknown buffer type {unknown[0]} (llama.cpp has "
                            f"{', '.join([CPU] + list(by_buft))})")
    compiled = [_Override.of(pattern, buft) for pattern, buft in overrides]
    tensors = list(model.tensors)
    if "output.weight" not in {t.name for t in tensors}:
        # tied embeddings: llama.cpp loads token_embd a second time for the output layer (TENSOR_DUPLICATED),
        # under the name token_embd.weight (what -ot patterns see)
        emb = next((t for t in tensors if t.name == "token_embd.weight"), None)
        if emb is not None and layer_device[n_layer] != CPU:
            tensors.append(emb)
    mapped: list[tuple[int, int, int]] = []  # (shard, offset, end) of each weight left in the CPU's mapping
    for i, t in enumerate(tensors):
        il = n_layer if i >= len(model.tensors) else _tensor_layer(t.name, n_layer, model.architecture)
        device = layer_device[il] if il >= 0 else CPU
        if (forced := _override(t.name, compiled)) is not None:
            device = forced
        p.weights[device] = p.weights.get(device, 0) + t.n_bytes
        if device == CPU:
            buft = (cpu_bufts or {}).get(t.name, CPU)
            is_host_buft = buft.endswith("_Host")
            if is_host_buft and mmap:  # create_tensor: "avoid using a host buffer when using mmap" -> the CPU's
                buft = CPU
            if buft == CPU and mmap:
                mapped.append((t.shard, t.offset, t.offset + t.n_bytes))
            elif buft == CPU or is_host_buft:
                # ggml_backend_alloc_ctx_tensors_from_buft: alloc size (the CPU's: ggml_nbytes) padded
                # to the buffer type's alignment (CPU: TENSOR_ALIGNMENT; CUDA_Host takes the CPU's)
                align = host_align.get(buft, HOST_ALIGNMENT)  # CUDA_Host: the CPU's get_alignment
                p.host_buffers[buft] = p.host_buffers.get(buft, 0) + pad(t.n_bytes, align)
            else:  # an extra buffer type: CPU_REPACK, AMX
                p.host_extra[buft] = (p.host_extra.get(buft, 0)
                                      + extra_alloc_size(buft, ggml_types.BY_ID[t.type_id], t.shape))
        else:
            p.weights_buffer[device] = (p.weights_buffer.get(device, 0)
                                        + alloc_size(ggml_types.BY_ID[t.type_id], t.shape, by_buft[device]))
    # llama_model::load_tensors maps [first, last) of the file for the CPU's tensors (get_mapping_range,
    # src/llama-model-loader.cpp): tensors placed elsewhere but lying in between are in the range too
    # one mapping per file of a split model (load_tensors: get_mapping_range per file index)
    p.host_mapped = sum(max(e for f, _, e in mapped if f == shard) - min(o for f, o, _ in mapped if f == shard)
                        for shard in {f for f, _, _ in mapped})
    return p
