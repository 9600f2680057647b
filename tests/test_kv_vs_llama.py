"""The KV model against real llama.cpp: every prediction equals what llama.cpp allocates and logs.

For each fixture and a grid of settings, the test creates the context through llama-cpp-python and
compares n_ctx, n_ctx_seq and, per cache, cells, layers, streams, types and the K, V, total and
CPU buffer sizes at the two decimals of MiB llama.cpp prints. No recorded numbers.
"""

from __future__ import annotations

import itertools

import pytest

from ggufprof.model import ggml_types
from ggufprof.results.checks import kv_mismatches
from ggufprof.errors import GgufprofError
from ggufprof.memory.settings import KVSettings
from ggufprof.memory.predict import predict
from ggufprof.model.model_info import load_model_info

from .conftest import FIXTURE_NAMES, fixture_path

CTX_SIZES = [256, 1000, 4096, 5000]  # 1000 and 5000 are not multiples of 256

MIXED = [("q8_0", "q4_0"), ("f16", "q8_0"), ("q4_0", "f16"), ("bf16", "q5_1")]
CACHE_PAIRS = [(t, t) for t in ggml_types.KV_CACHE_TYPES] + MIXED


def cache_type_grid():
    """Every cache type pair at every context size, other settings at the library defaults."""
    for (tk, tv), ctx in itertools.product(CACHE_PAIRS, CTX_SIZES):
        yield KVSettings(ctx_size=ctx, cache_type_k=tk, cache_type_v=tv)


def structure_grid():
    """Streams, unified cache, SWA sizing, ubatch and flash attention, for f16 and q8_0."""
    for ctx, par, uni, swa_full, ub, fa, t in itertools.product(
        CTX_SIZES, [1, 3, 4], [False, True], [False, True], [256, 512], ["auto", "off"], ["f16", "q8_0"]
    ):
        tv = "f16" if fa == "off" else t  # a quantized V cache needs flash attention
        yield KVSettings(ctx_size=ctx, cache_type_k=t, cache_type_v=tv, parallel=par, kv_unified=uni,
                         swa_full=swa_full, ubatch_size=ub, flash_attn=fa)


def edge_grid():
    yield KVSettings(ctx_size=131072, parallel=4)  # big: 128 MiB per stream-set on llama-gqa
    yield KVSettings(ctx_size=300, parallel=256, kv_unified=True, swa_full=False)
    yield KVSettings(ctx_size=100, batch_size=64, ubatch_size=512, swa_full=False)  # n_ubatch capped by n_batch
    yield KVSettings(ctx_size=0)  # 0 = the training context


GRIDS = {"cache_types": cache_type_grid, "structure": structure_grid, "edges": edge_grid}


@pytest.mark.parametrize("grid", list(GRIDS))
@pytest.mark.parametrize("fixture", FIXTURE_NAMES)
def test_prediction_equals_llama_cpp(llama_models, fixture, grid):
    info = load_model_info(fixture_path(fixture))
    lm = llama_models[fixture]
    failures, n = [], 0
    for s in GRIDS[grid]():
        pred = predict(info, s)
        created = lm.create_context(s)
        try:
            bad = kv_mismatches(pred, created.log, created.n_ctx, created.n_ctx_seq)
        finally:
            lm.free_context(created)
        assert created.log.caches, "no KV cache lines captured from llama.cpp's log"
        n += 1
        if bad:
            failures.append(f"{s}: " + "; ".join(map(str, bad)))
    assert n > 0
    assert not failures, f"{len(failures)} of {n} settings disagree:\n" + "\n".join(failures[:10])


@pytest.mark.parametrize("fixture", FIXTURE_NAMES)
def test_quantized_v_without_flash_attn_refused_by_both(llama_models, fixture):
    s = KVSettings(ctx_size=512, cache_type_k="q8_0", cache_type_v="q8_0", flash_attn="off")
    with pytest.raises(GgufprofError, match="requires flash attention"):
        predict(load_model_info(fixture_path(fixture)), s)
    with pytest.raises(GgufprofError, match="quantized V cache requires flash_attn"):
        llama_models[fixture].create_context(s)


def test_flash_attn_auto_pads_nothing_even_when_resolved(llama_models):
    """The cache is created before 'auto' is resolved: V is not transposed, so not padded."""
    info = load_model_info(fixture_path("deci-varkv"))
    auto = predict(info, KVSettings(ctx_size=1024, flash_attn="auto"))
    off = predict(info, KVSettings(ctx_size=1024, flash_attn="off"))
    assert off.caches[0].v_bytes == 4 * 128 * 1024 * 2  # every layer padded to the widest (4 heads x 32)
    assert auto.caches[0].v_bytes == (64 + 32 + 128 + 64) * 1024 * 2
    created = llama_models["deci-varkv"].create_context(KVSettings(ctx_size=1024, flash_attn="auto"))
    try:
        assert not kv_mismatches(auto, created.log)
    finally:
        llama_models["deci-varkv"].free_context(created)
