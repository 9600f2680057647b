"""Load a model and create contexts through llama-cpp-python's low-level API, capturing the log.

The high-level ``Llama`` class cannot set ``n_seq_max`` or ``kv_unified`` (unknown keyword
arguments are silently ignored), so we fill ``llama_context_params`` ourselves. llama.cpp's log
goes to a callback that collects it, so the allocations can be read back (see log_parse).
"""

from __future__ import annotations

import ctypes
import os
import socket
from dataclasses import dataclass

from .bindings import L

from ..model import ggml_types
from ..model.gguf_reader import ggml_library
from ..errors import GgufprofError
from ..memory.placement import CPU, LOAD_MODES, NO_DEVICES, SPLIT_MODES, PlacementFlags
from ..memory.settings import KVSettings
from ..results.llama_log import LlamaLog, parse_log

_FLASH = {"on": L.LLAMA_FLASH_ATTN_TYPE_ENABLED, "off": L.LLAMA_FLASH_ATTN_TYPE_DISABLED,
          "auto": L.LLAMA_FLASH_ATTN_TYPE_AUTO}


class _LogCapture:
    """Collects llama.cpp/ggml log text; llama_log_set is process-wide, so there is one of these."""

    def __init__(self) -> None:
        self.chunks: list[str] = []
        self.echo = bool(os.environ.get("GGUFPROF_LLAMA_LOG"))  # debugging aid: also print it

        @L.llama_log_callback
        def _cb(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
            s = text.decode("utf-8", "replace")
            self.chunks.append(s)
            if self.echo:
                print(s, end="")

        self._cb = _cb  # keep a reference: ctypes would free the trampoline otherwise
        L.llama_log_set(self._cb, ctypes.c_void_p(0))

    def take(self) -> str:
        """What was logged since the last take; and the callback set again, for what comes next:
        importing llama-cpp-python's whole package later in the process (a notebook, a test) sets its
        own (llama_cpp/_logger.py), since measure/bindings.py loads only the bindings."""
        text = "".join(self.chunks)
        self.chunks.clear()
        L.llama_log_set(self._cb, ctypes.c_void_p(0))
        return text


_capture: _LogCapture | None = None


def log_capture() -> _LogCapture:
    global _capture
    if _capture is None:
        L.llama_backend_init()
        _capture = _LogCapture()
    return _capture


@dataclass(frozen=True)
class BackendDevice:
    """A ggml backend device as llama.cpp sees it (ggml-backend-reg.cpp): name ("CUDA0", "RPC0"), type
    and the free/total bytes that ``ggml_backend_dev_memory`` reports -- the figures llama.cpp's own
    ``--fit`` budgets against (common/fit.cpp, ``common_get_device_memory_data_impl``) and its default
    ``-ts`` splits by (load_tensors) -- with its registry's name ("RPC", "CUDA") and its default
    buffer type: the name logs and ``-ot`` use ("RPC0[127.0.0.1:50052]") and its alignment."""

    name: str
    description: str
    type: str  # cpu, gpu, igpu, accel, meta
    free: int
    total: int
    backend: str = ""
    buffer_type: str = ""
    alignment: int = 0
    host_buffer_type: str = ""  # ggml_backend_dev_host_buffer_type's name (CUDA_Host), "" when it has none (RPC)
    host_alignment: int = 0
    mmap_support: bool = True  # caps.mmap_support: without it llama.cpp's load mode auto maps nothing


_DEV_TYPES = {0: "cpu", 1: "gpu", 2: "igpu", 3: "accel", 4: "meta"}  # enum ggml_backend_dev_type (ggml-backend.h)


class _DevCaps(ctypes.Structure):
    """``struct ggml_backend_dev_caps`` (ggml-backend.h)."""

    _fields_ = [("async_", ctypes.c_bool), ("host_buffer", ctypes.c_bool), ("buffer_from_host_ptr", ctypes.c_bool),
                ("events", ctypes.c_bool), ("mmap_support", ctypes.c_bool)]


class _DevProps(ctypes.Structure):
    """``struct ggml_backend_dev_props`` (ggml-backend.h)."""

    _fields_ = [("name", ctypes.c_char_p), ("description", ctypes.c_char_p), ("memory_free", ctypes.c_size_t),
                ("memory_total", ctypes.c_size_t), ("type", ctypes.c_int), ("device_id", ctypes.c_char_p),
                ("caps", _DevCaps)]


class _Ggml:
    """ggml's device registry (libggml, libggml-base) of the libraries llama_cpp loaded
    (LLAMA_CPP_LIB_PATH or its own), with the C signatures this module calls."""

    def __init__(self) -> None:
        vp, sz, cp = ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p
        self.ggml = ctypes.CDLL(str(ggml_library("ggml")))
        self.base = ctypes.CDLL(str(ggml_library("ggml-base")))
        for lib, name, res, args in (
                (self.ggml, "ggml_backend_dev_count", sz, []), (self.ggml, "ggml_backend_dev_get", vp, [sz]),
                (self.ggml, "ggml_backend_dev_by_name", vp, [cp]), (self.ggml, "ggml_backend_reg_by_name", vp, [cp]),
                (self.ggml, "ggml_backend_register", None, [vp]),
                (self.base, "ggml_backend_dev_name", cp, [vp]), (self.base, "ggml_backend_dev_description", cp, [vp]),
                (self.base, "ggml_backend_dev_type", ctypes.c_int, [vp]),
                (self.base, "ggml_backend_dev_memory", None, [vp, ctypes.POINTER(sz), ctypes.POINTER(sz)]),
                (self.base, "ggml_backend_dev_backend_reg", vp, [vp]), (self.base, "ggml_backend_reg_name", cp, [vp]),
                (self.base, "ggml_backend_dev_buffer_type", vp, [vp]), (self.base, "ggml_backend_buft_name", cp, [vp]),
                (self.base, "ggml_backend_buft_get_alignment", sz, [vp]),
                (self.base, "ggml_backend_dev_host_buffer_type", vp, [vp]),
                (self.base, "ggml_backend_dev_get_props", None, [vp, ctypes.POINTER(_DevProps)]),
                (self.base, "ggml_backend_reg_get_proc_address", vp, [vp, cp])):
            f = getattr(lib, name)
            f.restype, f.argtypes = res, args

    def devices(self) -> list[int]:
        return [self.ggml.ggml_backend_dev_get(i) for i in range(self.ggml.ggml_backend_dev_count())]

    def buft_of(self, dev: int) -> int:
        return self.base.ggml_backend_dev_buffer_type(dev)


_ggml_handles: _Ggml | None = None


def _ggml() -> _Ggml:
    global _ggml_handles
    if _ggml_handles is None:
        log_capture()
        _ggml_handles = _Ggml()
    return _ggml_handles


RPC_CONNECT_TIMEOUT_S = 5.0
_ADD_SERVER = ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.c_char_p)  # ggml_backend_reg_t (*)(const char * endpoint)


def add_rpc_servers(endpoints: tuple[str, ...] | list[str]) -> None:
    """``--rpc`` as common/arg.cpp's add_rpc_devices does it: each server's devices registered through
    the RPC backend's ``ggml_backend_rpc_add_server`` (ggml-rpc.cpp, by proc address). A server
    already added is not added twice (ggml keeps one registry per endpoint)."""
    if not endpoints:
        return
    g = _ggml()
    reg = g.ggml.ggml_backend_reg_by_name(b"RPC")
    if not reg:
        raise GgufprofError("--rpc: this llama.cpp build has no RPC backend (built without -DGGML_RPC=ON; "
                            "llama-cpp-python's wheel is one): run with --llama-lib DIR, the shared libraries of a "
                            "build that has it (scripts/build_llama_tools.sh ggml-rpc-server builds one; DIR is its build/bin)")
    fn = g.base.ggml_backend_reg_get_proc_address(reg, b"ggml_backend_rpc_add_server")
    if not fn:
        raise GgufprofError("--rpc: this llama.cpp's RPC backend has no ggml_backend_rpc_add_server")
    add = _ADD_SERVER(fn)
    known = {g.base.ggml_backend_dev_description(d).decode() for d in g.devices()}  # an RPC device's description is its endpoint
    for ep in endpoints:
        if ep in known:
            continue
        host, _, port = ep.rpartition(":")
        try:  # ggml-rpc aborts the process when it cannot connect: ask first
            socket.create_connection((host, int(port)), timeout=RPC_CONNECT_TIMEOUT_S).close()
        except (OSError, ValueError):
            raise GgufprofError(f"--rpc {ep}: no rpc-server answers there (start one: ggml-rpc-server -H {host} -p {port})") from None
        server = add(ep.encode())
        if not server:
            raise GgufprofError(f"--rpc {ep}: no rpc-server answered there (or it has no device)")
        g.ggml.ggml_backend_register(server)


def backend_devices(rpc: tuple[str, ...] | list[str] = ()) -> list[BackendDevice]:
    """Every ggml backend device of the loaded libraries, after adding the ``rpc`` servers. Asking a
    CUDA device for its memory creates this process's CUDA context (cudaMemGetInfo), as llama.cpp's
    fit does before measuring, so a caller can take its VRAM baseline after this call."""
    add_rpc_servers(rpc)
    g = _ggml()
    out = []
    for dev in g.devices():
        free, total = ctypes.c_size_t(0), ctypes.c_size_t(0)
        g.base.ggml_backend_dev_memory(dev, ctypes.byref(free), ctypes.byref(total))
        reg = g.base.ggml_backend_dev_backend_reg(dev)
        buft, host = g.buft_of(dev), g.base.ggml_backend_dev_host_buffer_type(dev)
        props = _DevProps()
        g.base.ggml_backend_dev_get_props(dev, ctypes.byref(props))
        out.append(BackendDevice(g.base.ggml_backend_dev_name(dev).decode(), g.base.ggml_backend_dev_description(dev).decode(),
                                 _DEV_TYPES.get(g.base.ggml_backend_dev_type(dev), "other"), free.value, total.value,
                                 g.base.ggml_backend_reg_name(reg).decode() if reg else "",
                                 g.base.ggml_backend_buft_name(buft).decode() if buft else "",
                                 g.base.ggml_backend_buft_get_alignment(buft) if buft else 0,
                                 g.base.ggml_backend_buft_name(host).decode() if host else "",
                                 g.base.ggml_backend_buft_get_alignment(host) if host else 0,
                                 bool(props.caps.mmap_support)))
    return out


def warm_up() -> None:
    """Load llama.cpp's backends and create each device's context now (a GPU backend's
    initialisation is most of a dry run's first second on a CUDA host): a probe worker does it
    before its first request, while its caller is still reading the model's header."""
    backend_devices(())


class _BuftOverride(ctypes.Structure):
    """``struct llama_model_tensor_buft_override`` (include/llama.h): a regex and a buffer type."""

    _fields_ = [("pattern", ctypes.c_char_p), ("buft", ctypes.c_void_p)]


def _buffer_types_by_name() -> dict[str, int]:
    """Buffer types as ``-ot`` names them: each device's default buffer type by its name
    (common/arg.cpp, parse_tensor_buffer_overrides)."""
    g = _ggml()
    return {g.base.ggml_backend_buft_name(b).decode(): b for b in map(g.buft_of, g.devices()) if b}


def _override_array(overrides: list[tuple[str, str]]) -> ctypes.Array:
    """The NULL-terminated override list of ``overrides`` (regex, buffer type name)."""
    bufts = _buffer_types_by_name()
    items = []
    for pattern, name in overrides:
        if name not in bufts:
            raise GgufprofError(f"--override-tensor {pattern}={name}: unknown buffer type {name} (llama.cpp has "
                                f"{', '.join(sorted(bufts))})")
        items.append(_BuftOverride(pattern.encode(), bufts[name]))
    return (_BuftOverride * (len(items) + 1))(*items, _BuftOverride(None, None))


def _device_array(names: tuple[str, ...]) -> ctypes.Array:
    """``llama_model_params.devices``: the named devices, NULL-terminated (``none``: only the NULL,
    no offload), as common/arg.cpp's parse_device_list builds it."""
    g = _ggml()
    devs = []
    for name in ([] if names == (NO_DEVICES,) else names):
        dev = g.ggml.ggml_backend_dev_by_name(name.encode())
        if not dev or _DEV_TYPES.get(g.base.ggml_backend_dev_type(dev)) == "cpu":
            raise GgufprofError(f"--device: invalid device {name}")
        devs.append(dev)
    return (ctypes.c_void_p * (len(devs) + 1))(*devs, None)


def _last_error(text: str) -> str:
    """The line of llama.cpp's log that says why: its "error loading model: ..." or "failed to
    initialize the context: ..." reason when there is one, else the last error-ish line."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    for marker in ("error loading model:", "failed to initialize the context:"):
        for ln in reversed(lines):
            if marker in ln:
                return ln
    errs = [ln for ln in lines if "error" in ln.lower() or "failed" in ln.lower() or "requires" in ln]
    return (errs or lines or ["no reason logged"])[-1]


def context_params(s: KVSettings, n_threads: int | None = None, offload_kqv: bool = True) -> L.llama_context_params:
    p = L.llama_context_default_params()
    p.n_ctx = s.ctx_size
    p.n_batch = s.batch_size
    p.n_ubatch = s.ubatch_size
    p.n_seq_max = s.parallel
    p.type_k = ggml_types.kv_cache_type(s.cache_type_k).id
    p.type_v = ggml_types.kv_cache_type(s.cache_type_v).id
    p.flash_attn_type = _FLASH[s.flash_attn]
    p.swa_full = s.swa_full
    p.kv_unified = s.kv_unified
    p.offload_kqv = offload_kqv
    p.no_perf = True
    if n_threads:
        p.n_threads = p.n_threads_batch = n_threads
    return p


def decode(ctx, batch, what: str = "llama_decode") -> None:
    """``llama_decode``, its non-zero return an error (1: no KV slot for the batch, < 0: a failure)."""
    rc = L.llama_decode(ctx, batch)
    if rc != 0:
        raise GgufprofError(f"{what} returned {rc}")


def bos_token(model) -> int | None:
    """The BOS token when the vocabulary adds one (``llama_vocab_get_add_bos``), as llama-bench and
    llama-perplexity put it first; None otherwise."""
    vocab = L.llama_model_get_vocab(model)
    return L.llama_vocab_bos(vocab) if L.llama_vocab_get_add_bos(vocab) else None


class ContextRefused(GgufprofError):
    """llama.cpp refused the model or the context (NULL returned); ``log_text`` keeps what it logged
    while refusing, so the refusal's log is stored like any other."""

    def __init__(self, message: str, log_text: str):
        super().__init__(message)
        self.log_text = log_text


@dataclass
class CreatedContext:
    ctx: object  # llama_context_p
    n_ctx: int
    n_ctx_seq: int
    n_seq_max: int
    log: LlamaLog
    log_text: str


class LlamaModel:
    """A loaded model; ``create_context`` may be called many times, ``close`` frees it."""

    def __init__(self, path: str | os.PathLike, n_gpu_layers: int = 0, repack: bool = True, dry_run: bool = False,
                 all_on_cpu: bool = False, placement: PlacementFlags | None = None):
        """``dry_run``: llama.cpp's own dry run (``no_alloc``, as its --fit uses): nothing is loaded
        or allocated, yet every context created from it logs its compute buffers exactly as a real
        one does. It loads with ``load_mode`` 0 (none) whatever ``placement.load_mode`` says: mmap
        with no_alloc trips an assert (``GGML_ASSERT(!ml.no_alloc)`` in load_tensors' mmap branch) and
        mlock would lock dummy buffers. The compute buffers stay right: a load mode changes which
        host buffer holds a weight (CPU_Mapped, CPU, CUDA_Host), never which backend computes with it
        (all are host buffers the CPU backend computes with: a discrete GPU's backend does not take
        CUDA_Host buffers, ggml_backend_cuda_device_supports_buft), and ``no_host``, which does change the buffer
        types, is passed as given. A real load takes ``placement.load_mode`` (LOAD_MODES, -1 auto).
        ``placement``: every placement flag (it replaces ``n_gpu_layers`` and ``repack``), filled into
        llama_model_params as common/common.cpp's common_model_params_to_llama does; the ctypes arrays
        are kept on self, since llama.cpp reads them while it loads."""
        self._log = log_capture()
        flags = placement if placement is not None else PlacementFlags(n_gpu_layers=n_gpu_layers, repack=repack)
        if flags.split_mode not in SPLIT_MODES:
            raise GgufprofError(f"--split-mode: expected one of {', '.join(SPLIT_MODES)}, got {flags.split_mode!r}")
        add_rpc_servers(flags.rpc)
        self._log.take()
        mp = L.llama_model_default_params()
        mp.n_gpu_layers = flags.n_gpu_layers
        mp.use_extra_bufts = flags.repack
        mp.no_host = flags.no_host
        mp.load_mode = -1 if flags.load_mode == "auto" else LOAD_MODES.index(flags.load_mode)  # enum llama_load_mode
        mp.split_mode = SPLIT_MODES.index(flags.split_mode)
        mp.main_gpu = flags.main_gpu
        if flags.devices:
            self._devices = _device_array(flags.devices)
            mp.devices = ctypes.cast(self._devices, ctypes.c_void_p)
        if flags.tensor_split:
            n = L.llama_max_devices()
            if len(flags.tensor_split) > n:
                raise GgufprofError(f"--tensor-split: {len(flags.tensor_split)} values, this llama.cpp takes at most {n}")
            self._tensor_split = (ctypes.c_float * n)(*flags.tensor_split)
            mp.tensor_split = self._tensor_split
        if dry_run:
            mp.no_alloc = True
            mp.load_mode = 0
        overrides = [(".*", CPU)] if all_on_cpu else flags.all_overrides()
        if overrides:
            self._overrides = _override_array(overrides)
            mp.tensor_buft_overrides = ctypes.cast(self._overrides, ctypes.c_void_p)
        self.model = L.llama_model_load_from_file(str(path).encode(), mp)
        self.load_log_text = self._log.take()
        if not self.model:
            raise ContextRefused(f"llama.cpp could not load {path}: {_last_error(self.load_log_text)}", self.load_log_text)
        self.load_log = parse_log(self.load_log_text)

    def create_context(self, s: KVSettings, n_threads: int | None = None, offload_kqv: bool = True) -> CreatedContext:
        self._log.take()
        ctx = L.llama_init_from_model(self.model, context_params(s, n_threads, offload_kqv))
        text = self._log.take()
        if not ctx:
            raise ContextRefused(f"llama.cpp refused the context: {_last_error(text)}", text)
        return CreatedContext(ctx, L.llama_n_ctx(ctx), L.llama_n_ctx_seq(ctx), L.llama_n_seq_max(ctx),
                              parse_log(text), text)

    @staticmethod
    def free_context(c: CreatedContext) -> None:
        if c.ctx:
            L.llama_free(c.ctx)
            c.ctx = None

    def close(self) -> None:
        if self.model:
            L.llama_model_free(self.model)
            self.model = None

    def __enter__(self) -> "LlamaModel":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
