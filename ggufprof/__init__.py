"""ggufprof: what the llama.cpp KV cache costs, predicted byte-exactly and measured.

The library's functions are ``ggufprof.estimate``, ``explain``, ``fit``, ``sweep``, ``quality``,
``speedup``, ``load_results``, ``records``, ``compare`` and ``check`` (ggufprof/api.py, the functions the CLI
calls). They are loaded on first use, so that importing one module of the package (a worker, the
CLI's ``--help``) does not import them all.
"""

__version__ = "0.1.0"

_API = ("load_model", "estimate", "explain", "fit", "sweep", "quality", "speedup", "load_results", "records", "compare",
        "check", "download", "use_llama_lib")
__all__ = ["__version__", *_API]


def __getattr__(name: str):
    if name in _API:
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'ggufprof' has no attribute {name!r}")
