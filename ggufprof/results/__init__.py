"""Results and gates: the versioned record schema, loading results, the checks of a measurement
against the prediction, comparisons, deployment limits and llama-bench interop (pure: no llama_cpp, no rich).

``ggufprof.results.load_dataframe(DIR)`` and ``load_records`` are resolved on first use (PEP 562), so
that a worker process importing one module of this package (llama_log) does not import the record
store and its schema: a worker's start-up is part of every ``estimate --total``.
"""

from __future__ import annotations

__all__ = ["load_dataframe", "load_records"]


def __getattr__(name: str) -> object:
    if name in __all__:
        from . import store

        return getattr(store, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
