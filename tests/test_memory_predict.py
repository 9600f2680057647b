"""llama.cpp's context and cache sizing rules, worked by hand (the real-context checks are in
test_kv_vs_llama.py)."""

import pytest

from ggufprof.errors import GgufprofError
from ggufprof.memory.settings import KVSettings
from ggufprof.memory.caches import mib_f32, mib_f64
from ggufprof.memory.predict import predict, resolved
from ggufprof.model.model_info import load_model_info

from .conftest import fixture_path
from .gguf_files import llama_like


@pytest.fixture(scope="module")
def llama():
    return load_model_info(fixture_path("llama-gqa"))


@pytest.fixture(scope="module")
def gemma():
    return load_model_info(fixture_path("gemma3-swa"))


@pytest.mark.parametrize("ctx,par,unified,expect", [
    (1000, 1, False, (1024, 1024)),      # padded to 256
    (512, 3, False, (768, 256)),         # 512 / 3 = 170 -> 256 cells per stream, 3 streams
    (512, 3, True, (512, 512)),          # unified: one stream of n_ctx cells
    (4096, 4, False, (4096, 1024)),
    (5000, 4, False, (5120, 1280)),      # 5120 / 4 = 1280, already a multiple of 256
    (0, 1, False, (4096, 4096)),         # 0: training context
])
def test_resolve_ctx(llama, ctx, par, unified, expect):
    r = resolved(llama, KVSettings(ctx_size=ctx, parallel=par, kv_unified=unified))
    assert (r.n_ctx, r.n_ctx_seq) == expect


def test_ubatch_capped_by_batch_and_unpadded_ctx(llama):
    r = resolved(llama, KVSettings(ctx_size=100, batch_size=2048, ubatch_size=512))
    assert (r.n_batch, r.n_ubatch) == (100, 100)
    r = resolved(llama, KVSettings(ctx_size=4096, batch_size=64, ubatch_size=512))
    assert (r.n_batch, r.n_ubatch) == (64, 64)


def test_plain_cache_bytes(llama):
    p = predict(llama, KVSettings(ctx_size=1000, parallel=3))
    (c,) = p.caches
    assert (c.name, c.cells, c.streams, c.layers) == ("kv", 512, 3, 4)
    assert c.k_bytes == c.v_bytes == 4 * 64 * 512 * 3 * 2
    assert p.kv_bytes == 2 * 4 * 64 * 512 * 3 * 2


@pytest.mark.parametrize("swa_full,par,unified,ub,swa_cells", [
    (True, 1, False, 512, 8192),
    (False, 1, False, 512, 768),    # pad(200 + 512, 256)
    (False, 1, False, 256, 512),    # pad(200 + 256, 256)
    (False, 4, True, 512, 1536),    # unified: pad(200 * 4 + 512, 256)
    (False, 4, False, 512, 768),    # per stream: the window of one sequence
])
def test_swa_cache_cells(gemma, swa_full, par, unified, ub, swa_cells):
    p = predict(gemma, KVSettings(ctx_size=8192 * (1 if unified else par), parallel=par, kv_unified=unified,
                                  swa_full=swa_full, ubatch_size=ub))
    full, swa = p.caches
    assert (full.name, full.layers, full.cells) == ("full", 1, 8192)
    assert (swa.name, swa.layers, swa.cells) == ("swa", 7, swa_cells)


def test_swa_cache_never_larger_than_full(gemma):
    full, swa = predict(gemma, KVSettings(ctx_size=256, swa_full=False)).caches
    assert swa.cells == full.cells == 256


def test_mib_formatting_matches_printf():
    assert mib_f32(786432) == "0.75"
    assert mib_f64(1572864) == "1.50"
    assert mib_f32(5 * 1024 * 1024 + 5243) == "5.01"


@pytest.mark.parametrize("kwargs,msg", [
    (dict(ctx_size=-1), "--ctx-size must be an integer from 0"),
    (dict(ctx_size=2**32), "--ctx-size must be an integer from 0 to 4294967295"),
    (dict(parallel=0), "--parallel must be between 1 and 256"),
    (dict(parallel=257), "--parallel must be between 1 and 256"),
    (dict(cache_type_k="q6_k"), "unsupported cache type 'q6_k'"),
    (dict(cache_type_v="q4_0", flash_attn="off"), "requires flash attention"),
    (dict(flash_attn="maybe"), "--flash-attn must be one of"),
    (dict(ubatch_size=0), "--ubatch-size must be an integer from 1"),
    (dict(ubatch_size=2**32 + 1), "--ubatch-size must be an integer from 1 to 4294967295"),
])
def test_invalid_settings(llama, kwargs, msg):
    with pytest.raises(GgufprofError, match=msg):
        predict(llama, KVSettings(**kwargs))


def test_quantized_k_needs_block_aligned_heads_with_flash_attn(tmp_path):
    m = load_model_info(llama_like(tmp_path / "m.gguf", attention__key_length=40, attention__value_length=40))
    with pytest.raises(GgufprofError, match="head size divisible by 32; this model has 40"):
        predict(m, KVSettings(cache_type_k="q8_0"))
    predict(m, KVSettings(cache_type_k="f16"))  # float caches have no block constraint


def test_mla_cache_is_k_only_and_one_type(tmp_path):
    """deepseek2: one latent K row of kv_lora_rank + n_rot per layer and token, no V."""
    m = load_model_info(llama_like(tmp_path / "d.gguf", arch="deepseek2", attention__head_count=1,
                                   attention__head_count_kv=1, attention__key_length=576, attention__value_length=512,
                                   attention__kv_lora_rank=512, attention__key_length_mla=192,
                                   attention__value_length_mla=128, rope__dimension_count=64,
                                   attention__layer_norm_rms_epsilon=1e-5, attention__q_lora_rank=64,
                                   expert_feed_forward_length=64, expert_shared_count=1))
    (c,) = predict(m, KVSettings(ctx_size=1024)).caches
    assert (c.kind, c.v_bytes, c.k_bytes) == ("mla", 0, 4 * 576 * 1024 * 2)
    with pytest.raises(GgufprofError, match="different K \\(q8_0\\) and V \\(f16\\)"):
        predict(m, KVSettings(cache_type_k="q8_0", cache_type_v="f16"))


def test_grok_forces_flash_attention_off(tmp_path):
    m = load_model_info(llama_like(tmp_path / "g.gguf", arch="grok"))
    assert predict(m, KVSettings(flash_attn="auto")).v_trans
    with pytest.raises(GgufprofError, match="forces flash attention off for grok"):
        predict(m, KVSettings(cache_type_v="q8_0"))


def test_bytes_per_token_is_the_growth_of_every_suite_model():
    """Bytes per token is how much llama.cpp's caches grow per token: on every model of llama.cpp's
    architecture suite, (predict(2N) - predict(N)) / N for N a multiple of the coarsest padding
    (128 x 256 tokens, DeepSeek-V4's HCA cache), f16, swa_full on so that sliding-window caches grow
    with the context rather than stopping at the window. Recurrent and compressor state is the same
    at both sizes, so the whole prediction's difference is the growing caches'."""
    from ggufprof.memory.predict import SLOPE_CELLS, bytes_per_token, context_bytes

    from .archs_suite import LLAMA_CPP_CANNOT_LOAD, suite_arch, suite_dir, suite_models

    models = suite_models()
    if not models:
        pytest.fail(f"no models in {suite_dir()}: run scripts/archs_suite.sh (make archs) first")
    n, checked, growing = SLOPE_CELLS, 0, 0
    assert n % 256 == 0 and n % (128 * 256) == 0
    for path in models:
        try:
            info = load_model_info(path)
        except GgufprofError:  # a key llama.cpp requires is missing: llama.cpp cannot load it either
            assert suite_arch(path) in LLAMA_CPP_CANNOT_LOAD, path.name
            continue
        try:
            small, large = (predict(info, KVSettings(ctx_size=c, swa_full=True)) for c in (n, 2 * n))
        except GgufprofError:  # a memory not modelled (gemma4-assistant): no per-token figure either
            with pytest.raises(GgufprofError):
                bytes_per_token(info, "f16")
            continue
        assert large.recurrent_bytes == small.recurrent_bytes, path.name
        slope = (large.total_bytes - small.total_bytes) / n
        assert bytes_per_token(info, "f16") == slope, path.name
        assert context_bytes(info, "f16", "f16", n) == small.kv_bytes, path.name
        checked += 1
        growing += slope > 0
    assert checked >= len(models) - 2 and growing >= 120  # all but what cannot load or is not modelled
    dsv4 = load_model_info(suite_dir() / "deepseek4-moe.gguf")
    # one cell would be 131,584 B: the compressed caches' 256-cell padding, not growth
    assert bytes_per_token(dsv4, "f16") == 609 and bytes_per_token(dsv4, "q8_0") == 323.53125
