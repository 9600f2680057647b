"""Parameters by component (model/params.py): exact counts from tensor shapes, on the fixtures and on
llama.cpp's architecture suite, beside the closed form and its reasons."""

import json

import gguf
import numpy as np
import pytest
from typer.testing import CliRunner

from ggufprof.cli import app
from ggufprof.errors import GgufprofError
from ggufprof.model.model_info import load_model_info
from ggufprof.model.params import params_by_component
from ggufprof.units import b_params

from .archs_suite import suite_dir, suite_models
from .conftest import FIXTURE_NAMES, fixture_path

runner = CliRunner(mix_stderr=False)


def _suite(name: str):
    path = suite_dir() / f"{name}.gguf"
    if not path.exists():
        pytest.skip(f"llama.cpp's architecture suite is not built here ({path}): make archs")
    return load_model_info(path)


def _loadable(paths):
    for p in paths:
        try:
            yield p, load_model_info(p)
        except GgufprofError:  # wavtokenizer-dec: a key llama.cpp itself requires is missing
            continue


def test_components_sum_to_n_params_on_every_suite_model_and_fixture():
    models = list(_loadable(suite_models() + [fixture_path(n) for n in FIXTURE_NAMES]))
    if len(models) < 10:
        pytest.skip("llama.cpp's architecture suite is not built here (make archs)")
    for path, info in models:
        p = params_by_component(info)
        assert sum(c.params for c in p.components) == p.total == info.n_params, path.name
        assert sum(c.tensors for c in p.components) == len(info.tensors), path.name  # each tensor counted once
        assert sum(c.bytes for c in p.components) == info.weight_bytes, path.name
        assert p.active is not None and p.active <= p.total, path.name
        for c in p.components:
            assert (c.params == c.closed_form) == (not c.reasons), (path.name, c.key)  # a difference has its reason
        other = p.get("other")
        # what no component claims is small: quantization scales, rope factors, hyper-connections
        assert other is None or other.params < 0.1 * p.total, (path.name, other)


def test_gqa_fixture_counts_by_hand():
    info = load_model_info(fixture_path("llama-gqa"))  # 4 layers, n_embd 128, 4 heads / 2 KV heads of 32, n_ff 128
    p = params_by_component(info)
    L, H, V, F = 4, 128, 384, 128
    assert p.get("embedding").params == p.get("output").params == V * H
    assert p.get("attn_q").params == p.get("attn_o").params == L * H * H
    assert p.get("attn_k").params == p.get("attn_v").params == L * H * 2 * 32
    assert p.get("ffn").params == L * 3 * H * F
    assert p.get("norm").params == L * 2 * H + H
    assert p.get("other") is None and p.get("bias") is None and not p.tied_output and not p.moe
    k = p.get("attn_k")
    assert k.closed_form == L * H * H and k.difference == -L * H * 64
    assert k.reasons == ("n_head_kv 2 × head_dim 32 = 64, not n_embd 128 (GQA)",)
    assert p.closed_form_total == 2 * V * H + L * (4 * H * H + 3 * H * F)
    assert p.active == p.total == info.n_params


def test_per_layer_kv_heads_and_head_sizes():
    p = params_by_component(load_model_info(fixture_path("deci-varkv")))  # KV heads [2, 1, 4, 2] x 32
    assert p.get("attn_k").params == 128 * 32 * (2 + 1 + 4 + 2)
    assert any("KV heads per layer [2, 1, 4, 2]" in r for r in p.get("attn_k").reasons)
    g = params_by_component(load_model_info(fixture_path("gemma3-swa")))  # 2 heads of 64 on n_embd 64
    assert g.get("attn_q").params == 8 * 64 * 128
    assert g.get("attn_q").reasons == ("n_head 2 × head_dim 64 = 128, not n_embd 64",)


@pytest.mark.parametrize("name", ["gemma-dense", "gemma2-dense", "cohere2-dense"])
def test_tied_output_on_suite_models(name):
    info = _suite(name)
    p = params_by_component(info)
    assert not any(t.name == "output.weight" for t in info.tensors)
    assert p.tied_output and p.get("output").params == 0
    assert p.get("output").closed_form == info.n_vocab * info.n_embd
    assert p.get("output").reasons[0].startswith("tied: no output.weight")


def test_untied_fixture_and_tied_fixture():
    assert not params_by_component(load_model_info(fixture_path("llama-gqa"))).tied_output
    assert params_by_component(load_model_info(fixture_path("gemma3-swa"))).tied_output


def test_biases_on_suite_models():
    p = params_by_component(_suite("qwen2-dense"))  # Q, K, V biases of 256 in 2 layers, and output.bias of n_vocab 128
    assert p.get("bias").params == 2 * 3 * 256 + 128
    assert p.get("bias").reasons == ("not in the closed form",)
    g = params_by_component(_suite("gpt2-dense"))  # fused QKV, learned positions, no gate
    assert g.get("attn_qkv").params == 2 * 256 * 3 * 256 and g.get("attn_q").params == 0
    assert g.get("attn_q").reasons == ("fused: in attn_qkv",)
    assert g.get("bias").params > 0 and "also position_embd" in g.get("embedding").reasons
    assert "not gated: no ffn_gate (2 matrices, not 3)" in g.get("ffn").reasons


def test_moe_suite_model_total_and_active():
    info = _suite("qwen3moe-moe")  # 2 layers, 2 experts of width 384 on n_embd 256, both routed per token
    p = params_by_component(info)
    assert p.moe and info.hparams.n_expert == 2 and info.hparams.n_expert_used(0) == 2
    assert p.get("ffn_experts").params == 2 * 3 * 256 * 384 * 2
    assert p.get("ffn").params == 0 and p.get("ffn_router").params == 2 * 256 * 2
    assert p.active == p.total  # every expert runs


def test_mla_suite_model():
    p = params_by_component(_suite("deepseek2-moe"))
    assert p.get("attn_k").params == p.get("attn_v").params == 0
    assert p.get("attn_kv").params > 0 and p.get("attn_k").reasons[0].startswith("MLA: projected from the latent")
    assert p.get("ffn_shared").params > 0


def _write_moe(path, n_expert: int, n_used: int):
    """A header with real tensor shapes (zeros) of a 2-layer qwen3moe: n_embd 16, experts of width 8."""
    w = gguf.GGUFWriter(str(path), "qwen3moe")
    for key, value in (("block_count", 2), ("context_length", 256), ("embedding_length", 16),
                       ("feed_forward_length", 8), ("attention.head_count", 2), ("attention.head_count_kv", 2),
                       ("expert_count", n_expert), ("expert_used_count", n_used)):
        w.add_uint32(f"qwen3moe.{key}", value)
    w.add_token_list([f"t{i}" for i in range(32)])
    shapes = {"token_embd.weight": (32, 16), "output_norm.weight": (16,), "output.weight": (32, 16)}
    for il in range(2):
        shapes |= {f"blk.{il}.attn_norm.weight": (16,), f"blk.{il}.attn_q.weight": (16, 16),
                   f"blk.{il}.attn_k.weight": (16, 16), f"blk.{il}.attn_v.weight": (16, 16),
                   f"blk.{il}.attn_output.weight": (16, 16), f"blk.{il}.ffn_norm.weight": (16,),
                   f"blk.{il}.ffn_gate_inp.weight": (n_expert, 16),
                   f"blk.{il}.ffn_gate_exps.weight": (n_expert, 8, 16), f"blk.{il}.ffn_up_exps.weight": (n_expert, 8, 16),
                   f"blk.{il}.ffn_down_exps.weight": (n_expert, 16, 8)}
    for name, shape in shapes.items():  # numpy shape: ggml's ne reversed
        w.add_tensor(name, np.zeros(shape, dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def test_moe_active_share_of_experts(tmp_path):
    info = load_model_info(_write_moe(tmp_path / "moe.gguf", n_expert=8, n_used=2))
    p = params_by_component(info)
    experts = 2 * 3 * 16 * 8 * 8
    assert p.get("ffn_experts").params == experts and p.total == info.n_params
    assert p.active == p.total - experts + experts * 2 // 8
    assert p.active_note.startswith("2 of 8 experts run per token")
    r = runner.invoke(app, ["inspect", str(tmp_path / "moe.gguf")])
    assert r.exit_code == 0, r.output
    assert f"active per token: {p.active:,} params" in r.stdout


def test_inspect_json_and_table_name_their_units():
    r = runner.invoke(app, ["inspect", str(fixture_path("llama-gqa")), "--json"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)["params_by_component"]
    assert sum(c["params"] for c in d["components"]) == d["total"] == load_model_info(fixture_path("llama-gqa")).n_params
    k = next(c for c in d["components"] if c["component"] == "attn_k")
    assert (k["params"], k["closed_form"], k["difference"]) == (32768, 65536, -32768) and "GQA" in k["reasons"][0]
    assert d["tied_output"] is False and d["active_per_token"] == d["total"]
    r = runner.invoke(app, ["inspect", str(fixture_path("gemma3-swa"))])
    assert "420,928 params (0.000421 B params" in r.stdout
    assert "Parameters by component" in r.stdout and "tied: no output.weight" in r.stdout


def test_b_params_is_ten_to_the_ninth():
    assert b_params(134_515_008) == "0.135 B params"
    assert b_params(7_241_732_096) == "7.24 B params"
    assert b_params(2**30) == "1.07 B params"  # 2^30 parameters are 1.07 billion, not "1 B"
