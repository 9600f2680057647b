"""``explain``: the KV arithmetic as a view of the prediction, ending in estimate's figure for every
suite model, and the common formulas: equal where their assumptions hold, apart where they break."""

import importlib.util
import json
import re

import pytest
from typer.testing import CliRunner

from ggufprof import api
from ggufprof.cli import app
from ggufprof.errors import GgufprofError
from ggufprof.memory.explain import explain
from ggufprof.memory.settings import KVSettings
from ggufprof.model.model_info import load_model_info

from .archs_suite import suite_models
from .conftest import FIXTURE_NAMES, ROOT, fixture_path

runner = CliRunner(mix_stderr=False)
UNNAMED = "the caches differ from this formula in a way not named here"

SETTINGS = [
    KVSettings(),  # the library defaults
    KVSettings(ctx_size=5000, parallel=4, swa_full=False, cache_type_k="q8_0", cache_type_v="q8_0"),
    KVSettings(ctx_size=1000, parallel=3, kv_unified=True, flash_attn="off"),
    KVSettings(ctx_size=300, cache_type_k="q4_0", cache_type_v="f16", ubatch_size=64, swa_full=False),
]


@pytest.fixture(scope="module")
def mha(tmp_path_factory):
    """A tiny plain multi-head model (4 heads, 4 KV heads of 32 = n_embd 128, no SWA), written with
    make_fixtures' own llama writer."""
    spec = importlib.util.spec_from_file_location("make_fixtures", ROOT / "scripts" / "make_fixtures.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    path = tmp_path_factory.mktemp("mha") / "llama-mha.gguf"
    mod.make_llama_like(path, "llama", "tiny llama MHA", 4, seed=4)
    info = load_model_info(path)
    assert info.n_head_kv == info.n_head == [4] * 4 and info.n_embd_head_k * 4 == info.n_embd and not info.has_swa
    return info


def _models():
    out = []
    for p in suite_models() + [fixture_path(n) for n in FIXTURE_NAMES]:
        try:
            out.append(load_model_info(p))
        except GgufprofError:  # wavtokenizer-dec: llama.cpp itself cannot load it
            continue
    return out


def test_final_figure_is_estimates_for_every_suite_model():
    models = _models()
    if len(models) < 10:
        pytest.skip("llama.cpp's architecture suite is not built here (make archs)")
    checked = refused = 0
    for info in models:
        for s in SETTINGS:
            try:
                est = api.estimate(info, s).prediction
            except GgufprofError as e:  # refused by predict: explain refuses it the same way
                with pytest.raises(GgufprofError, match="^" + re.escape(str(e)) + "$"):
                    explain(info, s)
                refused += 1
                continue
            e = explain(info, s)
            where = (info.path.name, s)
            assert e.total_bytes == est.kv_bytes + est.recurrent_bytes, where
            assert (e.kv_bytes, e.recurrent_bytes) == (est.kv_bytes, est.recurrent_bytes), where
            assert sum(st.product for st in e.steps) == e.total_bytes, where  # the arithmetic, not only the tensors
            assert sum(len(st.layers) for st in e.steps) == sum(c.layers for c in est.caches), where
            for f in e.formulas:
                assert UNNAMED not in f.broken, (where, f)
                assert f.bytes is None or (f.bytes == f.exact) == (not f.broken), (where, f)
            checked += 1
    assert checked > 400 and refused < checked / 10


def test_formulas_agree_on_a_plain_mha_model(mha):
    e = explain(mha, KVSettings(ctx_size=1024))
    a, b, c, d = e.formulas
    assert e.kv_bytes == 2 * 4 * 128 * 1024 * 2
    assert a.bytes == b.bytes == e.kv_bytes and a.broken == b.broken == ()
    assert c.bytes is None and d.bytes is None  # f16, one sequence


def test_formulas_break_where_they_should(mha):
    q8 = explain(mha, KVSettings(ctx_size=1024, cache_type_k="q8_0", cache_type_v="q8_0"))
    a, b, c, _ = q8.formulas
    assert q8.kv_bytes == 2 * 4 * 1024 * (128 // 32 * 34)
    assert b.bytes == q8.kv_bytes  # (b) counts the type's real bytes per value
    assert a.bytes == 2 * q8.kv_bytes * 32 // 34 and any("34 B" in r and "not 2 B" in r for r in a.broken)
    assert c.bytes == q8.kv_bytes * 32 // 34 and c.ratio == pytest.approx(32 / 34)
    assert c.broken == ("q8_0: 32 values in 34 B (1.0625 B per value), not 1: each block carries its scale",)

    padded = explain(mha, KVSettings(ctx_size=1000))  # 1000 is padded to 1024
    assert padded.formulas[0].bytes == padded.kv_bytes * 1000 // 1024
    assert padded.formulas[0].broken == ("the context is padded to a multiple of 256: 1024 cells, not 1000",)

    gqa = explain(load_model_info(fixture_path("llama-gqa")), KVSettings(ctx_size=1024))  # 2 of 4 heads
    a, b, _, _ = gqa.formulas
    assert a.ratio == 2 and b.bytes == gqa.kv_bytes
    assert a.broken == ("K/V rows are not hidden_size 128 wide: K n_head_kv 2 × head_dim 32 = 64; "
                        "V n_head_kv 2 × head_dim_v 32 = 64",)

    varkv = explain(load_model_info(fixture_path("deci-varkv")), KVSettings(ctx_size=1024))  # KV heads [2, 1, 4, 2]
    b = varkv.formulas[1]
    assert b.bytes == 2 * 4 * 2 * 32 * 1024 * 2 != varkv.kv_bytes
    assert b.broken[0].startswith("K/V rows are not 2 × 32 = 64 wide on every layer")

    swa = explain(load_model_info(fixture_path("gemma3-swa")), KVSettings(ctx_size=8192, swa_full=False))
    b = swa.formulas[1]
    assert b.bytes == 2 * 8 * 64 * 8192 * 2 and swa.kv_bytes == 8192 * 256 + 7 * 768 * 256
    assert b.broken == ("7 sliding-window layers keep 768 cells per stream, not 8192: min(n_ctx_seq 8192, n_swa 200 "
                        "+ n_ubatch 512 = 712) = 712, padded to 256: 768",)

    seqs = explain(load_model_info(fixture_path("gemma3-swa")), KVSettings(ctx_size=4096, parallel=4, swa_full=False))
    d = seqs.formulas[3]
    assert d.bytes == api.estimate(fixture_path("gemma3-swa"), ctx_size=4096, parallel=4, swa_full=False,
                                   kv_unified=True).prediction.kv_bytes != seqs.kv_bytes
    assert "swa: 4 stream(s) × 768 cells here, 1 × 1536 with kv_unified on" in d.broken


def test_steps_of_the_swa_fixture():
    e = explain(load_model_info(fixture_path("gemma3-swa")),
                KVSettings(ctx_size=5000, parallel=4, swa_full=False, cache_type_k="q8_0", cache_type_v="q8_0"))
    full, swa = e.steps
    assert (full.cache, full.layers, full.cells, full.streams) == ("full", (5,), 1280, 4)
    assert (swa.cache, swa.layers, swa.cells, swa.streams) == ("swa", (0, 1, 2, 3, 4, 6, 7), 768, 4)
    k = swa.rows[0]
    assert (k.role, k.width, k.type, k.bytes) == ("K", 64, "q8_0", 68) and k.width_note == "n_head_kv 1 × head_dim 64"
    assert swa.product == 7 * 768 * 4 * 136
    assert e.context_note == "-c 5000 → padded to 256: 5120 → ÷ 4 sequences = 1280 cells per stream, 4 streams (n_ctx 5120)"


def test_recurrent_and_memoryless_models_explain_themselves():
    models = {m.architecture: m for m in _models()}
    if "mamba" not in models:
        pytest.skip("llama.cpp's architecture suite is not built here (make archs)")
    e = explain(models["mamba"], KVSettings())
    assert e.kv_bytes == 0 and e.recurrent_bytes > 0 and e.formulas == ()
    assert [r.role for r in e.steps[0].rows] == ["R", "S"] and "one per sequence" in e.steps[0].cells_note
    assert "no formula in the context size" in e.notes[0]
    none = explain(models["dream"], KVSettings())
    assert none.steps == () and none.total_bytes == 0 and "no KV cache" in none.notes[0]
    hybrid = explain(models["qwen35"], KVSettings(ctx_size=4096, parallel=2))
    assert hybrid.recurrent_bytes > 0 and len(hybrid.formulas) == 4
    assert "1 of 2 layers keep a KV cache" in hybrid.formulas[0].broken
    mla = explain(models["deepseek2"], KVSettings(ctx_size=4096))
    assert [r.role for r in mla.steps[0].rows] == ["K"] and mla.steps[0].rows[0].width_note.startswith("MLA latent")


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_cli_takes_estimates_flags_and_gives_the_same_figure():
    flags = ("-c", 5000, "-ctk", "q8_0", "-ctv", "q4_0", "-np", 4, "--no-swa-full", "-ub", 256)
    est = json.loads(run("estimate", fixture_path("gemma3-swa"), *flags, "--json").stdout)
    r = run("explain", fixture_path("gemma3-swa"), *flags, "--json")
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    assert d["kv_bytes"] == est["kv_bytes"] and d["recurrent_bytes"] == est["recurrent_bytes"] == 0
    assert sum(s["bytes"] for s in d["steps"]) == est["kv_bytes"]
    assert [f["key"] for f in d["formulas"]] == ["a", "b", "c", "d"] and d["defaults"] == "tools"
    assert d["steps"][1]["rows"][1] == {"role": "V", "width": 64, "width_note": "n_head_kv 1 × head_dim_v 64",
                                        "type": "q4_0", "block_size": 32, "bytes_per_block": 18, "row_bytes": 36}
    server = json.loads(run("explain", fixture_path("gemma3-swa"), "--defaults", "server", "--json").stdout)
    est = json.loads(run("estimate", fixture_path("gemma3-swa"), "--defaults", "server", "--json").stdout)
    assert server["kv_bytes"] == est["kv_bytes"] and server["settings"]["kv_unified"] is True


def test_explain_and_estimate_share_their_options():
    import typer.main

    cmd = typer.main.get_command(app)
    est, exp = cmd.commands["estimate"], cmd.commands["explain"]
    shared = {p.name: (p.opts, p.secondary_opts, p.default, p.help) for p in est.params}
    for p in exp.params:
        assert shared.get(p.name) == (p.opts, p.secondary_opts, p.default, p.help), p.name


@pytest.mark.parametrize("path,args", [(fixture_path("gemma3-swa"), ("-c", 5000, "-np", 4, "--no-swa-full")),
                                       (fixture_path("deci-varkv"), ("-c", 3000, "-ct", "q4_0", "-fa", "on")),
                                       (fixture_path("llama-gqa"), ("-np", 3, "-kvu", "-fa", "off"))])
def test_text_fits_80_columns(path, args):
    r = run("explain", path, *args)
    assert r.exit_code == 0, r.output
    lines = r.stdout.splitlines()
    assert max(len(x) for x in lines) <= 80
    text = " ".join(r.stdout.split())
    assert "as `estimate` says" in text and "(a) hidden_size-based" in text


def test_cli_refuses_bad_input_in_one_line(tmp_path):
    r = run("explain", fixture_path("llama-gqa"), "-ct", "q6_k")
    assert r.exit_code == 2 and r.stderr.startswith("Error: ") and len(r.stderr.strip().splitlines()) == 1
    r = run("explain", tmp_path / "missing.gguf")
    assert r.exit_code == 2 and r.stderr.startswith("Error: ")
    r = run("explain", fixture_path("llama-gqa"), "-ctv", "q8_0", "-fa", "off")
    assert r.exit_code == 2 and "requires flash attention" in r.stderr
