"""Read a GGUF file's header, key/values and tensor table, never its tensor data.

The ``gguf`` package's ``GGUFReader`` builds numpy views of every field up front, about 25 s for a
262k-token vocabulary. ggml's own C reader (``gguf_init_from_file`` with ``no_alloc``), exported by
the ``libggml-base`` that llama-cpp-python ships, parses the same header in tens of milliseconds.
We call it through ctypes and copy out only what we need: scalars, small numeric arrays (per-layer
hyper-parameters) and, for large arrays such as the vocabulary, just their length.

This module locates the library without importing ``llama_cpp`` (importing it pulls in the whole
binding), so the core stays free of llama_cpp and typer.
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
import struct
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..errors import GgufprofError

GGUF_MAGIC = b"GGUF"
SMALL_ARRAY_MAX = 4096  # numeric arrays up to this length are copied; longer ones keep only their length

# enum gguf_type (ggml/include/gguf.h)
_U8, _I8, _U16, _I16, _U32, _I32, _F32, _BOOL, _STR, _ARR, _U64, _I64, _F64 = range(13)
_SIZE = {_U8: 1, _I8: 1, _U16: 2, _I16: 2, _U32: 4, _I32: 4, _F32: 4, _BOOL: 1, _U64: 8, _I64: 8, _F64: 8}
GGUF_DEFAULT_ALIGNMENT = 32  # ggml/include/gguf.h
_CTYPE = {
    _U8: ctypes.c_uint8, _I8: ctypes.c_int8, _U16: ctypes.c_uint16, _I16: ctypes.c_int16,
    _U32: ctypes.c_uint32, _I32: ctypes.c_int32, _F32: ctypes.c_float, _BOOL: ctypes.c_bool,
    _U64: ctypes.c_uint64, _I64: ctypes.c_int64, _F64: ctypes.c_double,
}


@dataclass(frozen=True)
class LargeArray:
    """A GGUF array we did not copy: its element type name and length (e.g. the token list)."""

    type: str
    n: int

    def __len__(self) -> int:
        return self.n


@dataclass(frozen=True)
class TensorInfo:
    name: str
    shape: tuple[int, ...]  # ggml order: shape[0] is the row length
    type_id: int
    n_bytes: int
    offset: int  # relative to the start of the data section
    shard: int = 0  # the file of a split model that holds it (0: the first, or the only one)

    @property
    def n_elements(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n


@dataclass(frozen=True)
class GgufFile:
    path: Path
    version: int
    kv: dict[str, object]
    tensors: tuple[TensorInfo, ...]
    data_offset: int
    file_size: int


def header_size(need: Callable[[int], bytes | bytearray]) -> int:
    """How many bytes a GGUF file's header takes -- where its tensor data starts -- read from a prefix
    that ``need(n)`` grows to at least ``n`` bytes (a remote file's range reads).

    The walk follows ggml's own parser (ggml/src/gguf.cpp, ``gguf_init_from_file_impl``): magic,
    version, tensor and key/value counts; each key/value (key string, type, value: a scalar, a string
    or an array of either); each tensor info (name, dimensions, type, offset); then, when there are
    tensors, padding to ``general.alignment`` (default 32). It only skips over the bytes; the header is
    read afterwards by ggml's parser from exactly these bytes, which checks everything else."""
    pos = 0

    def take(st: struct.Struct) -> tuple:
        nonlocal pos
        values = st.unpack_from(need(pos + st.size), pos)
        pos += st.size
        return values

    def skip_strings(n: int) -> bytes:
        """Skip n strings (uint64 length + bytes); the last one's bytes when short (keys are looked at)."""
        nonlocal pos
        for _ in range(n):
            (length,) = _Q.unpack_from(need(pos + 8), pos)
            pos += 8 + length
        return bytes(need(pos)[pos - length:pos]) if n and length <= 64 else b""

    magic, version, n_tensors, n_kv = take(struct.Struct("<4sIQQ"))
    if magic != GGUF_MAGIC:
        raise GgufprofError(f"not a GGUF file (starts with {magic!r}, expected b'GGUF')")
    if version < 2:
        raise GgufprofError(f"GGUF version {version} is not supported (llama.cpp reads version 2 and later)")
    alignment = GGUF_DEFAULT_ALIGNMENT
    for _ in range(n_kv):
        key = skip_strings(1)
        (t,) = take(_I)
        if t == _ARR:
            at, n = take(_IQ)
            if at == _STR:
                skip_strings(n)
            elif at in _SIZE:
                pos += n * _SIZE[at]
            else:
                raise GgufprofError(f"unreadable GGUF header: key {key!r} is an array of type {at}")
        elif t == _STR:
            skip_strings(1)
        elif t == _U32 and key == b"general.alignment":
            (alignment,) = take(_I)
        elif t in _SIZE:
            pos += _SIZE[t]
        else:
            raise GgufprofError(f"unreadable GGUF header: key {key!r} has type {t}")
    for _ in range(n_tensors):
        skip_strings(1)
        (n_dims,) = take(_I)
        pos += 8 * n_dims + 4 + 8  # ne[n_dims] (int64), type (int32), offset (uint64)
    need(pos)
    if n_tensors and alignment > 0 and alignment & (alignment - 1) == 0:
        pos += -pos % alignment
    return pos


_Q, _I, _IQ = struct.Struct("<Q"), struct.Struct("<I"), struct.Struct("<IQ")


class _InitParams(ctypes.Structure):
    _fields_ = [("no_alloc", ctypes.c_bool), ("ctx", ctypes.c_void_p)]


_LOG_CB = ctypes.CFUNCTYPE(None, ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p)
_lib: ctypes.CDLL | None = None
_log_lines: list[str] = []


def _lib_file(stem: str) -> str:
    """A ggml library's file name on this platform: ``ggml-base`` -> ``libggml-base.so``."""
    if sys.platform == "darwin":
        return f"lib{stem}.dylib"
    if sys.platform == "win32":
        return f"{stem}.dll"
    return f"lib{stem}.so"


def ggml_library(stem: str) -> Path:
    """Where one of llama.cpp's libraries is (``ggml-base``, ``ggml``): the one place that finds them,
    as llama_cpp itself does -- ``LLAMA_CPP_LIB_PATH`` first, then the package's own ``lib``."""
    dirs: list[Path] = []
    if os.environ.get("LLAMA_CPP_LIB_PATH"):  # the same override llama_cpp itself honours
        dirs.append(Path(os.environ["LLAMA_CPP_LIB_PATH"]))
    spec = importlib.util.find_spec("llama_cpp")  # locates the package without executing it
    if spec and spec.submodule_search_locations:
        dirs.extend(Path(p) / "lib" for p in spec.submodule_search_locations)
    for d in dirs:
        if (d / _lib_file(stem)).exists():
            return d / _lib_file(stem)
    raise GgufprofError(
        f"cannot find llama.cpp's {_lib_file(stem)} from llama-cpp-python: "
        "install the project (make install) or set LLAMA_CPP_LIB_PATH to llama.cpp's lib folder"
    )



def _load_lib() -> ctypes.CDLL:
    global _lib
    if _lib is not None:
        return _lib
    lib = ctypes.CDLL(str(ggml_library("ggml-base")))
    vp, i64, sz, cp = ctypes.c_void_p, ctypes.c_int64, ctypes.c_size_t, ctypes.c_char_p
    sigs = {
        "gguf_init_from_file": ([cp, _InitParams], vp),
        "gguf_free": ([vp], None),
        "gguf_get_version": ([vp], ctypes.c_uint32),
        "gguf_get_data_offset": ([vp], sz),
        "gguf_get_n_kv": ([vp], i64),
        "gguf_get_key": ([vp, i64], cp),
        "gguf_get_kv_type": ([vp, i64], ctypes.c_int),
        "gguf_get_arr_type": ([vp, i64], ctypes.c_int),
        "gguf_get_val_str": ([vp, i64], cp),
        "gguf_get_val_data": ([vp, i64], vp),
        "gguf_get_arr_n": ([vp, i64], sz),
        "gguf_get_arr_data": ([vp, i64], vp),
        "gguf_get_arr_str": ([vp, i64, sz], cp),
        "gguf_get_n_tensors": ([vp], i64),
        "gguf_get_tensor_name": ([vp, i64], cp),
        "gguf_get_tensor_ne": ([vp, i64], ctypes.POINTER(ctypes.c_int64)),
        "gguf_get_tensor_type": ([vp, i64], ctypes.c_int),
        "gguf_get_tensor_size": ([vp, i64], sz),
        "gguf_get_tensor_offset": ([vp, i64], sz),
        "gguf_type_name": ([ctypes.c_int], cp),
        "ggml_log_set": ([_LOG_CB, vp], None),
    }
    for name, (args, res) in sigs.items():
        fn = getattr(lib, name)
        fn.argtypes, fn.restype = args, res
    _lib = lib
    return lib


@_LOG_CB
def _collect_log(level: int, text: bytes, user_data: int) -> None:
    _log_lines.append(text.decode("utf-8", "replace"))


def _read_value(lib: ctypes.CDLL, ctx: int, i: int) -> object:
    t = lib.gguf_get_kv_type(ctx, i)
    if t == _STR:
        return lib.gguf_get_val_str(ctx, i).decode("utf-8", "replace")
    if t != _ARR:
        return ctypes.cast(lib.gguf_get_val_data(ctx, i), ctypes.POINTER(_CTYPE[t]))[0]
    at = lib.gguf_get_arr_type(ctx, i)
    n = lib.gguf_get_arr_n(ctx, i)
    if at == _STR or at == _ARR or n > SMALL_ARRAY_MAX:
        return LargeArray(lib.gguf_type_name(at).decode(), n)
    arr = ctypes.cast(lib.gguf_get_arr_data(ctx, i), ctypes.POINTER(_CTYPE[at] * n))[0]
    return list(arr)


def read_gguf(path: str | os.PathLike) -> GgufFile:
    """Parse the GGUF header at ``path``; raise GgufprofError with a one-line reason on bad input."""
    p = Path(path)
    if not p.exists():
        raise GgufprofError(f"{p}: no such file")
    if not p.is_file():
        raise GgufprofError(f"{p}: not a file")
    with open(p, "rb") as f:
        magic = f.read(4)
    if magic != GGUF_MAGIC:
        raise GgufprofError(f"{p}: not a GGUF file (starts with {magic!r}, expected b'GGUF')")

    lib = _load_lib()
    _log_lines.clear()
    lib.ggml_log_set(_collect_log, None)  # keep ggml's own complaints off the user's terminal
    try:
        ctx = lib.gguf_init_from_file(str(p).encode(), _InitParams(True, None))
    finally:
        lib.ggml_log_set(ctypes.cast(None, _LOG_CB), None)
    file_size = p.stat().st_size
    if not ctx:
        why = next((ln.strip() for ln in reversed(_log_lines) if ln.strip()), "unreadable header")
        raise GgufprofError(f"{p}: truncated or corrupt GGUF header ({why})")
    try:
        kv = {
            lib.gguf_get_key(ctx, i).decode("utf-8", "replace"): _read_value(lib, ctx, i)
            for i in range(lib.gguf_get_n_kv(ctx))
        }
        tensors = []
        for i in range(lib.gguf_get_n_tensors(ctx)):
            ne = lib.gguf_get_tensor_ne(ctx, i)
            shape = [ne[d] for d in range(4)]
            while len(shape) > 1 and shape[-1] == 1:
                shape.pop()
            tensors.append(TensorInfo(
                name=lib.gguf_get_tensor_name(ctx, i).decode("utf-8", "replace"),
                shape=tuple(shape),
                type_id=lib.gguf_get_tensor_type(ctx, i),
                n_bytes=lib.gguf_get_tensor_size(ctx, i),
                offset=lib.gguf_get_tensor_offset(ctx, i),
            ))
        gf = GgufFile(p, lib.gguf_get_version(ctx), kv, tuple(tensors), lib.gguf_get_data_offset(ctx), file_size)
    finally:
        lib.gguf_free(ctx)

    data_end = gf.data_offset + max((t.offset + t.n_bytes for t in gf.tensors), default=0)
    if data_end > file_size:
        raise GgufprofError(
            f"{p}: truncated GGUF: the tensor data needs {data_end} bytes, the file has {file_size}"
        )
    return gf
