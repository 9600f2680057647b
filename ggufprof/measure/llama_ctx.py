"""Load a model and create contexts through llama-cpp-python's low-level API, capturing the log.

The high-level ``Llama`` class cannot set ``n_seq_max`` or ``kv_unified`` (unknown keyword
arguments are silently ignored), so we fill ``llama_context_params`` ourselves. llama.cpp's log
goes to a callback that collects it, so the allocations can be read back (see log_parse).
"""

from __future__ import annotations

import ctypes
import os
from dataclasses import dataclass

import llama_cpp as L

from ..model import ggml_types
from ..model.gguf_reader import ggml_library
from ..errors import GgufprofError
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
        text = "".join(self.chunks)
        self.chunks.clear()
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
    """A ggml backend device as llama.cpp sees it (ggml-backend-reg.cpp): name ("CUDA0"), type and
    the free/total bytes that ``ggml_backend_dev_memory`` reports -- the figures llama.cpp's own
    ``--fit`` budgets against (common/fit.cpp, ``common_get_device_memory_data_impl``)."""

    name: str
    description: str
    type: str  # cpu, gpu, igpu, accel, meta
    free: int
    total: int


_DEV_TYPES = {0: "cpu", 1: "gpu", 2: "igpu", 3: "accel", 4: "meta"}  # enum ggml_backend_dev_type (ggml-backend.h)


def backend_devices() -> list[BackendDevice]:
    """Every ggml backend device of the loaded libraries. Asking a CUDA device for its memory
    creates this process's CUDA context (cudaMemGetInfo), as llama.cpp's fit does before measuring,
    so a caller can take its VRAM baseline after this call."""
    log_capture()
    ggml = ctypes.CDLL(str(ggml_library("ggml")))  # the libraries llama_cpp loaded (LLAMA_CPP_LIB_PATH or its own)
    base = ctypes.CDLL(str(ggml_library("ggml-base")))
    ggml.ggml_backend_dev_count.restype = ctypes.c_size_t
    ggml.ggml_backend_dev_get.restype = ctypes.c_void_p
    ggml.ggml_backend_dev_get.argtypes = [ctypes.c_size_t]
    for f, res in (("ggml_backend_dev_name", ctypes.c_char_p), ("ggml_backend_dev_description", ctypes.c_char_p),
                   ("ggml_backend_dev_type", ctypes.c_int)):
        getattr(base, f).restype = res
        getattr(base, f).argtypes = [ctypes.c_void_p]
    base.ggml_backend_dev_memory.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_size_t),
                                             ctypes.POINTER(ctypes.c_size_t)]
    out = []
    for i in range(ggml.ggml_backend_dev_count()):
        dev = ggml.ggml_backend_dev_get(i)
        free, total = ctypes.c_size_t(0), ctypes.c_size_t(0)
        base.ggml_backend_dev_memory(dev, ctypes.byref(free), ctypes.byref(total))
        out.append(BackendDevice(base.ggml_backend_dev_name(dev).decode(), base.ggml_backend_dev_description(dev).decode(),
                                 _DEV_TYPES.get(base.ggml_backend_dev_type(dev), "other"), free.value, total.value))
    return out


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


class _BuftOverride(ctypes.Structure):
    """``struct llama_model_tensor_buft_override`` (include/llama.h): a regex and a buffer type."""

    _fields_ = [("pattern", ctypes.c_char_p), ("buft", ctypes.c_void_p)]


def _every_tensor_on_the_cpu() -> ctypes.Array:
    """The override list ``-ot '.*=CPU'``: every weight to the CPU buffer type, which makes llama.cpp
    choose among the CPU's extra buffer types for each one (``select_weight_buft`` over
    ``buft_list_cpu``) and log its choice (src/llama-model-loader.cpp), NULL-terminated."""
    cpu = ctypes.CDLL(str(ggml_library("ggml-cpu")))
    cpu.ggml_backend_cpu_buffer_type.restype = ctypes.c_void_p
    return (_BuftOverride * 2)(_BuftOverride(b".*", cpu.ggml_backend_cpu_buffer_type()), _BuftOverride(None, None))


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
                 all_on_cpu: bool = False):
        """``dry_run``: llama.cpp's own dry run (``no_alloc``, as its --fit uses): nothing is loaded
        or allocated, yet every context created from it logs its compute buffers exactly as a real
        one does. ``load_mode`` 0 (no mmap), since mmap with no_alloc trips an assert."""
        self._log = log_capture()
        self._log.take()
        mp = L.llama_model_default_params()
        mp.n_gpu_layers = n_gpu_layers
        mp.use_extra_bufts = repack
        if dry_run:
            mp.no_alloc = True
            mp.load_mode = 0
        if all_on_cpu:  # kept on self: llama.cpp reads the list while it loads
            self._overrides = _every_tensor_on_the_cpu()
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
