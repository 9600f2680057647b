"""ggufprof: what the llama.cpp KV cache costs, predicted byte-exactly and measured."""

__version__ = "0.1.0"
