"""Hyper-parameters derived from GGUF metadata, as llama.cpp's load_hparams derives them."""

import pytest

from ggufprof.architectures import ARCHITECTURES, swa_layers
from ggufprof.errors import GgufprofError
from ggufprof.model.model_info import load_model_info

from .conftest import fixture_path
from .gguf_files import llama_like


def test_llama_gqa_fixture():
    m = load_model_info(fixture_path("llama-gqa"))
    assert (m.architecture, m.n_layer, m.n_embd) == ("llama", 4, 128)
    assert m.n_head == [4] * 4 and m.n_head_kv == [2] * 4
    assert (m.n_embd_head_k, m.n_embd_head_v) == (32, 32)  # n_embd / n_head
    assert m.n_swa == 0 and m.swa_layers == [False] * 4
    assert (m.n_ctx_train, m.n_vocab) == (4096, 384)
    # embeddings + output (384x128 each), 4 layers of q,k,v,o and 3 ffn matrices, norms
    per_layer = 128 * 128 + 2 * (64 * 128) + 128 * 128 + 3 * (128 * 128) + 2 * 128
    assert m.n_params == 2 * 384 * 128 + 128 + 4 * per_layer
    # per token: 4 layers x (K 64 + V 64) x 2 bytes
    assert m.kv_bytes_per_token("f16") == 4 * 128 * 2
    assert m.kv_bytes_per_token("q8_0") == 4 * 2 * (2 * 34)  # 64 values = 2 blocks of 34 B
    assert m.kv_unsupported is None


def test_gemma3_fixture_swa_layout():
    m = load_model_info(fixture_path("gemma3-swa"))
    assert m.n_swa == 200
    # gemma3: load_swa_pattern(ml, 6): every 6th layer (il % 6 == 5) is full attention
    assert m.swa_layers == [True] * 5 + [False] + [True] * 2
    assert (m.n_embd_head_k, m.n_embd_head_v) == (64, 64)  # key_length, not n_embd / n_head = 32


def test_deci_per_layer_kv_heads():
    m = load_model_info(fixture_path("deci-varkv"))
    assert m.n_head_kv == [2, 1, 4, 2]
    assert [m.n_embd_k_gqa(il) for il in range(4)] == [64, 32, 128, 64]


def test_swa_pattern_rules():
    g3 = ARCHITECTURES["gemma3"]
    assert swa_layers(g3, 7, 512, None) == [True] * 5 + [False, True]
    assert swa_layers(g3, 4, 512, 2) == [True, False, True, False]  # pattern key overrides 6
    assert swa_layers(g3, 3, 512, [0, 1, 1]) == [False, True, True]  # per-layer bool array
    assert swa_layers(g3, 3, 512, 0) == [True] * 3  # n_pattern 0: every layer SWA
    dense_first = ARCHITECTURES["cohere2"].__class__(swa="always", swa_pattern=4, dense_first=True)
    assert swa_layers(dense_first, 5, 512, None) == [False, True, True, True, False]


def test_gemma3_without_window_is_plain(tmp_path):
    m = load_model_info(llama_like(tmp_path / "g.gguf", arch="gemma3"))
    assert m.n_swa == 0 and not m.has_swa


def test_gemma2_default_window(tmp_path):
    m = load_model_info(llama_like(tmp_path / "g.gguf", arch="gemma2"))
    assert m.n_swa == 4096 and m.swa_layers == [True, False, True, False]


def test_swa_head_sizes(tmp_path):
    m = load_model_info(llama_like(tmp_path / "g.gguf", arch="gemma3", attention__sliding_window=128,
                                   attention__key_length=128, attention__value_length=128,
                                   attention__key_length_swa=64, attention__value_length_swa=64,
                                   n_layer=6))
    assert [m.n_embd_k_gqa(il) for il in range(6)] == [128] * 5 + [256]


def test_unknown_architecture_is_named(tmp_path):
    m = load_model_info(llama_like(tmp_path / "m.gguf", arch="mamba"))
    assert m.kv_unsupported == "KV cache not modelled yet for architecture 'mamba'"


def test_mla_is_refused(tmp_path):
    m = load_model_info(llama_like(tmp_path / "m.gguf", arch="llama", attention__kv_lora_rank=512))
    assert "multi-head latent attention" in m.kv_unsupported


def test_encoder_has_no_cache(tmp_path):
    m = load_model_info(llama_like(tmp_path / "m.gguf", arch="bert"))
    assert "without a KV cache" in m.kv_unsupported


def test_missing_required_key(tmp_path):
    from .gguf_files import write_header_only

    p = write_header_only(tmp_path / "m.gguf", "llama", embedding_length=128)
    with pytest.raises(GgufprofError, match="lacks 'llama.block_count'"):
        load_model_info(p)


def test_head_count_kv_array_of_wrong_length(tmp_path):
    p = llama_like(tmp_path / "m.gguf", attention__head_count_kv=[2, 2])
    with pytest.raises(GgufprofError, match="2 values for 4 layers"):
        load_model_info(p)
