"""Hyper-parameters as llama.cpp reads them (load_hparams + the architecture's load_arch_hparams)."""

import pytest

from ggufprof.errors import GgufprofError
from ggufprof.memory.predict import bytes_per_token, predict, recurrent_bytes_per_sequence
from ggufprof.memory.settings import KVSettings
from ggufprof.memory.create import layer_memories
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
    assert bytes_per_token(m, "f16") == 4 * 128 * 2
    assert bytes_per_token(m, "q8_0") == 4 * 2 * (2 * 34)  # 64 values = 2 blocks of 34 B
    assert layer_memories(m.hparams) == ["attention"] * 4


def test_gemma3_fixture_swa_layout():
    m = load_model_info(fixture_path("gemma3-swa"))
    assert m.n_swa == 200
    # gemma3: load_swa_pattern(ml, 6): every 6th layer (il % 6 == 5) is full attention
    assert m.swa_layers == [True] * 5 + [False] + [True] * 2
    assert layer_memories(m.hparams) == ["sliding window"] * 5 + ["attention"] + ["sliding window"] * 2
    assert (m.n_embd_head_k, m.n_embd_head_v) == (64, 64)  # key_length, not n_embd / n_head = 32


def test_deci_per_layer_kv_heads():
    m = load_model_info(fixture_path("deci-varkv"))
    assert m.n_head_kv == [2, 1, 4, 2]
    assert [m.n_embd_k_gqa(il) for il in range(4)] == [64, 32, 128, 64]


@pytest.mark.parametrize("extra,expect", [
    ({}, [True] * 5 + [False, True]),                                     # gemma3's own period 6
    ({"attention__sliding_window_pattern": 2}, [True, False] * 3 + [True]),  # the key's period wins
    ({"attention__sliding_window_pattern": [False, True] * 3 + [True]}, [False, True] * 3 + [True]),  # per layer
    ({"attention__sliding_window_pattern": 0}, [True] * 7),              # period 0: every layer SWA
])
def test_gemma3_swa_pattern(tmp_path, extra, expect):
    m = load_model_info(llama_like(tmp_path / "g.gguf", arch="gemma3", n_layer=7, attention__sliding_window=512, **extra))
    assert m.swa_layers == expect


def test_cohere2moe_pattern_is_dense_first(tmp_path):
    m = load_model_info(llama_like(tmp_path / "c.gguf", arch="cohere2", n_layer=5, attention__sliding_window=64))
    assert m.swa_layers == [True, True, True, False, True]  # cohere2: load_swa_pattern(ml, 4)


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


def test_keys_an_architecture_does_not_read_change_nothing(tmp_path):
    """llama reads no kv_lora_rank, ssm.* or indexer keys: their presence must not change anything."""
    plain = load_model_info(llama_like(tmp_path / "a.gguf"))
    noisy = load_model_info(llama_like(tmp_path / "b.gguf", attention__kv_lora_rank=512, attention__key_length_mla=192,
                                       attention__value_length_mla=128, ssm__state_size=16, ssm__conv_kernel=4,
                                       attention__indexer__key_length=128, attention__sliding_window=64))
    s = KVSettings(ctx_size=1000)
    assert predict(noisy, s).to_dict() == predict(plain, s).to_dict()
    assert layer_memories(noisy.hparams) == ["attention"] * 4


def test_gemma3n_shares_kv_above_layer_20(tmp_path):
    m = load_model_info(llama_like(tmp_path / "g.gguf", arch="gemma3n", n_layer=22, attention__sliding_window=64))
    mem = layer_memories(m.hparams)
    assert mem[20:] == ["shared", "shared"] and "shared" not in mem[:20]


def test_mamba_is_recurrent_state_per_sequence(tmp_path):
    m = load_model_info(llama_like(tmp_path / "m.gguf", arch="mamba", attention__head_count=0,
                                   attention__head_count_kv=0, ssm__conv_kernel=4, ssm__inner_size=256,
                                   ssm__state_size=16, ssm__time_step_rank=8))
    assert layer_memories(m.hparams) == ["recurrent"] * 4
    # per layer: R (d_conv - 1) x d_inner f32, S d_state x d_inner f32
    per_seq = 4 * (3 * 256 + 16 * 256) * 4
    assert recurrent_bytes_per_sequence(m) == per_seq and bytes_per_token(m, "f16") == 0
    one, three = predict(m, KVSettings(ctx_size=512)), predict(m, KVSettings(ctx_size=8192, parallel=3))
    assert (one.kind, one.recurrent_bytes, three.recurrent_bytes) == ("recurrent", per_seq, 3 * per_seq)


def test_encoder_has_no_memory(tmp_path):
    m = load_model_info(llama_like(tmp_path / "m.gguf", arch="bert"))
    p = predict(m, KVSettings(ctx_size=512))
    assert (p.kind, p.caches, p.total_bytes) == ("none", [], 0)


def test_unknown_architecture_is_refused_by_name(tmp_path):
    with pytest.raises(GgufprofError, match="unknown model architecture 'no-such-arch'"):
        load_model_info(llama_like(tmp_path / "m.gguf", arch="no-such-arch"))


def test_missing_required_key(tmp_path):
    from .gguf_files import write_header_only

    p = write_header_only(tmp_path / "m.gguf", "llama", embedding_length=128, context_length=2048)
    with pytest.raises(GgufprofError, match="key not found in model: llama.block_count"):
        load_model_info(p)


def test_head_count_kv_array_of_wrong_length(tmp_path):
    p = llama_like(tmp_path / "m.gguf", attention__head_count_kv=[2, 2])
    with pytest.raises(GgufprofError, match="wrong array length; expected 4, got 2"):
        load_model_info(p)


@pytest.mark.parametrize("blocks", [0, 513])
def test_block_count_out_of_llama_range(tmp_path, blocks):
    with pytest.raises(GgufprofError, match="accepts 1 to 512 layers"):
        load_model_info(llama_like(tmp_path / "m.gguf", n_layer=blocks))
