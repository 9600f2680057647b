"""What a record needs to explain where it was measured (collected once per worker)."""

from __future__ import annotations

import ctypes
import os
import platform

import psutil

from .. import __version__
from ..model.gguf_reader import ggml_library


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def llama_build() -> dict:
    """Which llama.cpp build this process runs, as ggml reports it (``ggml_version``/``ggml_commit``,
    ggml/src/ggml.c) and where its libraries are: what names the two sides of an upgrade."""
    lib = ggml_library("ggml-base")
    base = ctypes.CDLL(str(lib))
    base.ggml_version.restype = base.ggml_commit.restype = ctypes.c_char_p
    return {"ggml_version": base.ggml_version().decode(), "ggml_commit": base.ggml_commit().decode(),
            "lib_dir": str(lib.parent.resolve())}


def collect(llama_cpp_module, vram_info: dict | None, vram_reason: str | None) -> dict:
    L = llama_cpp_module
    return {
        "llama_build": llama_build(),
        "ggufprof": __version__,
        "llama_cpp_python": _version("llama_cpp_python"),
        "llama_cpp_system_info": L.llama_print_system_info().decode().strip(" |"),
        "llama_cpp_lib_path": os.environ.get("LLAMA_CPP_LIB_PATH"),
        "hostname": platform.node(),
        "cpu": cpu_model(),
        "cpu_count_logical": psutil.cpu_count(logical=True),
        "cpu_count_physical": psutil.cpu_count(logical=False),
        "memory_total": psutil.virtual_memory().total,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "gpu": vram_info,
        "gpu_unavailable": vram_reason,
    }


def _version(dist: str) -> str:
    """An installed distribution's version (the bindings are imported without their package's
    ``__init__``, measure/bindings.py, so no ``__version__`` attribute is at hand)."""
    import importlib.metadata

    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"
