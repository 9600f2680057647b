"""Results and gates: the versioned record schema, loading results, the checks of a measurement
against the prediction, comparisons, deployment limits and llama-bench interop (pure: no llama_cpp, no rich)."""

from .store import load_dataframe, load_records  # noqa: F401  -- ggufprof.results.load_dataframe(DIR)
