"""The graph metadata of a llama.cpp context (memory/graph.py) against ggml's own sizes, and the RSS
it makes resident at context creation on the architectures whose graphs are large."""

from __future__ import annotations

import ctypes

import pytest

from ggufprof.memory.graph import GGML_TENSOR_OVERHEAD, graph_max_nodes, graph_meta_bytes, graph_overhead
from ggufprof.model.gguf_reader import ggml_library
from ggufprof.model.model_info import load_model_info

from .archs_suite import suite_dir
from .conftest import fixture_path


@pytest.fixture(scope="module")
def ggml():
    lib = ctypes.CDLL(str(ggml_library("ggml-base")))
    lib.ggml_tensor_overhead.restype = ctypes.c_size_t
    lib.ggml_graph_overhead_custom.restype = ctypes.c_size_t
    lib.ggml_graph_overhead_custom.argtypes = [ctypes.c_size_t, ctypes.c_bool]
    return lib


def test_sizes_are_ggmls_own(ggml):
    assert GGML_TENSOR_OVERHEAD == ggml.ggml_tensor_overhead()
    for n in (1, 1000, 1024, 2048, 2328, 10240, 20480, 40960, 65536, 123457, 1 << 20):
        assert graph_overhead(n) == ggml.ggml_graph_overhead_custom(n, False), n


def test_max_nodes_follow_llama_context():
    """graph_max_nodes (src/llama-context.cpp): 8 per tensor (>= 1024) for a plain model, 40 per token
    of the reserve batch (>= 32 per tensor) for Qwen3.5, 80 per token for HRM."""
    plain = load_model_info(fixture_path("llama-gqa"))
    assert graph_max_nodes(plain, 512) == max(1024, 8 * len(plain.tensors)) == 1024
    hybrid = load_model_info(suite_dir() / "qwen35-dense.gguf")
    assert graph_max_nodes(hybrid, 256) == max(256 * 40, 32 * len(hybrid.tensors))
    hrm = load_model_info(suite_dir() / "hrm_text-dense.gguf")
    assert graph_max_nodes(hrm, 256) == max(256 * 80, 64 * len(hrm.tensors))
    assert graph_meta_bytes(hybrid, 256, 512) > 4 << 20 > graph_meta_bytes(plain, 4096, 512)
