"""The CLI through typer's CliRunner on the real fixtures: outputs, JSON fields, one-line errors."""

import json

import pytest
from typer.testing import CliRunner

from ggufprof.cli import app
from ggufprof.memory.settings import KVSettings
from ggufprof.memory.predict import bytes_per_token, predict
from ggufprof.model.model_info import load_model_info

from .conftest import FIXTURE_NAMES, fixture_path

runner = CliRunner(mix_stderr=False)


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_inspect_json(name):
    r = run("inspect", fixture_path(name), "--json")
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    for key in ("architecture", "n_layer", "n_embd", "n_head", "n_head_kv", "n_embd_head_k", "n_embd_head_v",
                "n_swa", "swa_layers", "n_ctx_train", "n_vocab", "n_params", "kv_bytes_per_token"):
        assert key in d
    assert len(d["n_head_kv"]) == len(d["swa_layers"]) == d["n_layer"]
    m = load_model_info(fixture_path(name))
    assert d["kv_bytes_per_token"]["q4_0"] == bytes_per_token(m, "q4_0")
    assert d["memory"] in ("kv", "iswa") and d["recurrent_bytes_per_sequence"] == 0
    assert d["n_params"] == m.n_params


def test_inspect_table_shows_layout():
    r = run("inspect", fixture_path("gemma3-swa"))
    assert r.exit_code == 0
    assert "sliding window 200 on 7 of 8 layers" in r.stdout
    rows = [[c.strip() for c in ln.strip("│").split("│")] for ln in r.stdout.splitlines() if ln.startswith("│")]
    # the layers table: runs of layers with the same shape and memory, in order (layers, ..., memory)
    assert [(row[0], row[1], row[2], row[3], row[4]) for row in rows if len(row) == 5] == [
        ("0-4", "2", "1", "64/64", "sliding window 200"), ("5", "2", "1", "64/64", "attention"),
        ("6-7", "2", "1", "64/64", "sliding window 200")]
    assert "q8_0" in r.stdout and "1,088" in r.stdout  # 8 layers x 2 x (64/32 x 34 B)


def test_estimate_json_matches_library():
    r = run("estimate", fixture_path("gemma3-swa"), "-c", 5000, "-ctk", "q8_0", "-ctv", "q4_0", "-np", 4,
            "--no-swa-full", "-ub", 256, "--json")
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    s = KVSettings(ctx_size=5000, cache_type_k="q8_0", cache_type_v="q4_0", parallel=4, swa_full=False, ubatch_size=256)
    pred = predict(load_model_info(fixture_path("gemma3-swa")), s)
    assert d["n_ctx"] == pred.n_ctx == 5120
    assert d["kv_bytes"] == pred.kv_bytes
    assert [(c["name"], c["cells"], c["streams"], c["layers"]) for c in d["caches"]] == [
        ("full", 1280, 4, 1), ("swa", 512, 4, 7)]
    assert all(c["k_bytes"] > 0 and c["v_bytes"] > 0 for c in d["caches"])


def test_estimate_long_flags_and_table():
    """Each long flag is taken: --parallel 2 --kv-unified gives one stream of 4096 cells (two streams
    of 2048 without it), --batch-size 256 caps n_ubatch (512 by default) at 256."""
    r = run("estimate", fixture_path("llama-gqa"), "--ctx-size", 4096, "--cache-type-k", "q8_0",
            "--parallel", 2, "--kv-unified", "--batch-size", 256)
    assert r.exit_code == 0, r.output
    assert "2 sequence(s), unified · n_ubatch 256" in r.stdout
    (row,) = [ln.split() for ln in r.stdout.splitlines() if ln.split()[:1] == ["kv"]]
    assert row == ["kv", "4", "4096×1", "q8_0/f16", "1.06", "MiB", "2.00", "MiB", "3.06", "MiB"]
    assert "KV cache: 3.06 MiB (3,211,264 bytes)" in r.stdout


def test_help_states_the_defaults_profiles():
    r = run("estimate", "--help")
    assert r.exit_code == 0
    assert "common/common.h" in r.stdout and "llama_context_default_params" in r.stdout


@pytest.mark.parametrize("args,msg", [
    (["inspect", "{tmp}/absent.gguf"], "no such file"),
    (["inspect", "{tmp}/text.gguf"], "not a GGUF file"),
    (["inspect", "{tmp}/cut.gguf"], "truncated"),
    (["estimate", "{llama}", "-ctk", "q6_k"], "unsupported cache type 'q6_k'"),
    (["estimate", "{llama}", "-c", "-4096"], "--ctx-size: expected a number of tokens"),
    (["estimate", "{llama}", "-c", "1e20"], "--ctx-size: expected a number of tokens"),
    (["estimate", "{llama}", "-c", "4294967296"], "--ctx-size must be an integer from 0 to 4294967295"),
    (["estimate", "{llama}", "-ub", "4294967297"], "--ubatch-size must be an integer from 1 to 4294967295"),
    (["estimate", "{llama}", "-np", "0"], "--parallel must be between 1 and 256"),
    (["estimate", "{llama}", "-ctv", "q8_0", "-fa", "off"], "requires flash attention"),
    (["estimate", "{tmp}/absent.gguf"], "no such file"),
])
def test_bad_input_one_line_exit_2(tmp_path, args, msg):
    (tmp_path / "text.gguf").write_text("just some text\n")
    (tmp_path / "cut.gguf").write_bytes(fixture_path("llama-gqa").read_bytes()[:2000])
    subst = {"tmp": str(tmp_path), "llama": str(fixture_path("llama-gqa"))}
    r = runner.invoke(app, [a.format(**subst) for a in args])
    assert r.exit_code == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and msg in lines[0], r.stderr
    assert "Traceback" not in r.output


def test_ctx_size_0_is_the_training_context():
    r = run("estimate", fixture_path("llama-gqa"), "-c", "0", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["n_ctx"] == 4096  # the fixture's n_ctx_train


@pytest.mark.parametrize("arch_file,kind", [("qwen35-dense.gguf", "hybrid"), ("mamba2-dense.gguf", "recurrent"),
                                            ("deepseek2-moe.gguf", "mla"), ("deepseek4-moe.gguf", "dsv4")])
def test_estimate_lists_every_cache_with_its_kind(arch_file, kind):
    """The suite's hybrid, recurrent, MLA and DSV4 models: every cache and state in --json, with its kind."""
    from .archs_suite import suite_dir

    path = suite_dir() / arch_file
    if not path.exists():
        pytest.fail(f"{path} missing: run scripts/archs_suite.sh (make archs)")
    d = json.loads(run("estimate", path, "-c", "4096", "-np", "2", "--json").stdout)
    kinds = {c["kind"] for c in d["caches"]}
    if kind == "hybrid":
        assert kinds == {"kv", "recurrent"} and d["recurrent_bytes"] > 0
    elif kind == "recurrent":
        assert kinds == {"recurrent"} and d["kv_bytes"] == 0
    elif kind == "mla":  # deepseek2: one plain llama_kv_cache holding MLA's latent K rows, no V
        assert d["memory"] == "kv" and kinds == {"mla"} and all(c["v_bytes"] == 0 for c in d["caches"])
    else:
        assert d["memory"] == "dsv4" and {"swa", "mla", "indexer", "state"} <= kinds
    assert d["total_bytes"] == d["kv_bytes"] + d["recurrent_bytes"] == sum(c["bytes"] for c in d["caches"])


@pytest.mark.parametrize("profile,n_ctx,swa_cells", [(None, 8192, 768), ("tools", 8192, 768), ("server", 8192, 1536),
                                                     ("library", 512, 512)])
def test_defaults_profiles(profile, n_ctx, swa_cells):
    """Unset flags take llama.cpp's tools' defaults (common/common.h: the training context, swa_full
    off), llama-server's (4 unified slots: the window x 4 + a batch) or the library's (n_ctx 512,
    swa_full on); the output names the profile."""
    args = ["--defaults", profile] if profile else []
    d = json.loads(run("estimate", fixture_path("gemma3-swa"), *args, "--json").stdout)
    assert d["n_ctx"] == n_ctx and d["defaults"] == (profile or "tools")
    assert {c["name"]: c["cells"] for c in d["caches"]}["swa"] == swa_cells
    text = run("estimate", fixture_path("gemma3-swa"), *args).stdout
    assert {"tools": "common/common.h", "server": "llama-server", "library": "llama_context_default_params"}[
        profile or "tools"] in text


def test_unknown_defaults_profile_is_one_error():
    r = run("estimate", fixture_path("gemma3-swa"), "--defaults", "cli")
    assert r.exit_code == 2 and "tools, server, library" in r.stderr


def test_ngl_without_a_gpu_is_one_rule_said_in_the_output():
    """-ngl where llama.cpp lists no GPU: every layer stays in host memory (as llama.cpp does), and
    the output says so; with a GPU, the layers go to it. The same rule in estimate and fit."""
    from ggufprof.measure.dry_run import visible_gpu

    gpu = visible_gpu()
    d = json.loads(run("estimate", fixture_path("llama-gqa"), "-c", "4096", "-ngl", "99", "--json").stdout)
    assert d["placement"]["gpu"] == gpu
    devices = set(d["placement"]["kv_bytes_by_device"])
    assert devices == ({"CPU"} if gpu is None else {"CPU", gpu})
    for args in (["estimate", fixture_path("llama-gqa"), "-ngl", "99"],
                 ["fit", fixture_path("llama-gqa"), "-ngl", "99", "--memory", "1.1GiB"]):
        assert ("-ngl is ignored" in run(*args).stdout) == (gpu is None)


def test_load_mode_shows_the_host_buffer_llama_cpp_makes():
    """estimate --total: the default load mode (auto = mmap) maps the host weights (CPU_Mapped: the file
    range, which spans the repacked Q4_0 matrices too); -lm none (and older llama.cpp's --no-mmap) makes
    a real CPU buffer of the weights not repacked (0.03 MiB as llama.cpp logs it, test_placement_rpc.py)."""
    tables, notes = {}, {}
    for args in ([], ["-lm", "none"], ["--no-mmap"]):
        r = run("estimate", fixture_path("llama-q4_0"), "-c", 1024, "--total", *args)
        assert r.exit_code == 0, r.output
        tables[" ".join(args)] = next(ln for ln in r.stdout.splitlines() if ln.strip().startswith("CPU "))
        notes[" ".join(args)] = " ".join(r.stdout.split())
    assert "274.50 KiB" in tables[""] and "CPU weights are mmapped file pages (CPU_Mapped)" in notes[""]
    assert "31.50 KiB" in tables["-lm none"] and "CPU weights are real host buffers" in notes["-lm none"]
    assert "CPU_Mapped" not in notes["-lm none"]
    assert tables["--no-mmap"] == tables["-lm none"]
    d = json.loads(run("estimate", fixture_path("llama-q4_0"), "-c", 1024, "--total", "-lm", "none", "--json").stdout)
    assert d["total"]["CPU"]["weights_buffers"] == {"CPU": 32256, "CPU_REPACK": 248832}
    assert d["total"]["CPU"]["weights_mapped"] is False and d["placement"]["mmap"] is False


def test_fit_command_carries_the_load_mode():
    r = run("fit", fixture_path("llama-q4_0"), "--memory", "1.1GiB", "-ct", "f16", "-lm", "none")
    assert r.exit_code == 0, r.output
    assert "run it: llama-server -m " in r.stdout and " -ngl 0 -lm none --fit off" in r.stdout, r.stdout
    r = run("fit", fixture_path("llama-q4_0"), "--memory", "1.1GiB", "-ct", "f16")
    assert r.exit_code == 0 and " -lm " not in r.stdout, r.stdout
