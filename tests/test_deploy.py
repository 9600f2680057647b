"""``ggufprof check deploy.toml``: strict validation with line numbers, estimates, and one real measured
deployment on the llama-gqa fixture."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from ggufprof.cli import app
from ggufprof.flags import parse_size
from ggufprof.results.deploy import load_deployments
from ggufprof.errors import GgufprofError
from ggufprof.memory.settings import KVSettings
from ggufprof.memory.predict import predict
from ggufprof.model.model_info import load_model_info

from .conftest import fixture_path

runner = CliRunner(mix_stderr=False)
MODEL = fixture_path("llama-gqa")

GOOD = f"""\
[[deployment]]
name = "chat"
model = "{MODEL}"
ctx_size = 4096
cache_type_k = "q8_0"
cache_type_v = "q8_0"
parallel = 2
kv_unified = false
swa_full = false
flash_attn = "auto"
threads = 2
n_gpu_layers = 0
[deployment.limits]
max_kv_bytes = "64 MiB"
"""


def check(tmp_path, text, *args):
    path = tmp_path / "deploy.toml"
    path.write_text(text)
    return runner.invoke(app, ["check", str(path), *args])


def one_line_error(r):
    assert r.exit_code == 2, r.output
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), r.stderr
    assert "Traceback" not in r.output
    return lines[0]


@pytest.mark.parametrize("old,new,line,words", [
    ("ctx_size = 4096", "ctx_sise = 4096", 4, ["ctx_sise", "unknown key", "ctx_size"]),
    (f'model = "{MODEL}"', 'model = "missing.gguf"', 3, ["model", "missing.gguf", "no such file"]),
    ('cache_type_k = "q8_0"', 'cache_type_k = "q6_k"', 5, ["cache_type_k", "q6_k"]),
    ("parallel = 2", "parallel = 0", 7, ["parallel", "between 1 and 256"]),
    ("ctx_size = 4096", 'ctx_size = "4096"', 4, ["ctx_size", "expected int", "str"]),
    ("threads = 2", "threads = 2.5", 11, ["threads", "expected int", "float"]),
    ("swa_full = false", 'swa_full = "no"', 9, ["swa_full", "expected bool"]),
    ('max_kv_bytes = "64 MiB"', 'max_kv_bytes = "64 MeB"', 14, ["limits.max_kv_bytes", "64 MeB"]),
    ('max_kv_bytes = "64 MiB"', "max_kvbytes = 1", 14, ["limits.max_kvbytes", "unknown key", "max_kv_bytes"]),
    ('cache_type_v = "q8_0"', 'cache_type_v = "q8_0"\nflash_attn = "off"', 6,
     ["cache_type_v, flash_attn", "requires flash attention"]),
    ("parallel = 2", "parallel = = 2", 7, ["invalid TOML", "line 7"]),
    ('name = "chat"', 'name = ".."', 2, ["name", "is not a name"]),
    ('name = "chat"', 'name = "a/b"', 2, ["name", "is not a name"]),
    ('name = "chat"', 'name = "a b"', 2, ["name", "is not a name"]),
    ('name = "chat"', 'name = "[/x] evil"', 2, ["name", "is not a name"]),
    ("ctx_size = 4096", "ctx_size = " + "9" * 400, 4, ["ctx_size", "4294967295"]),
    ('flash_attn = "auto"', 'flash_attn = "maybe"', 10, ["flash_attn", "expected on, off or auto"]),
])
def test_bad_file_names_key_and_line(tmp_path, old, new, line, words):
    text = GOOD.replace(old, new)
    if "flash_attn = \"off\"" in new:
        text = text.replace('flash_attn = "auto"\n', "")
    msg = one_line_error(check(tmp_path, text, "--estimate-only"))
    assert msg.startswith(f"Error: {tmp_path / 'deploy.toml'}:{line}: "), msg
    for w in words:
        assert w in msg, msg
    if "TOML" not in msg:
        assert ("deployment #1" if "not a name" in msg else "deployment 'chat'") in msg


@pytest.mark.parametrize("value", ["nan", "0", "-1", "inf"])
def test_bad_timeout_is_one_line(tmp_path, value):
    """--timeout is checked as the sweep's is (flags.parse_seconds), before anything is measured."""
    msg = one_line_error(check(tmp_path, GOOD, "--timeout", value))
    assert "--timeout must be a number of seconds > 0" in msg


def test_missing_required_key_and_top_level_key(tmp_path):
    msg = one_line_error(check(tmp_path, GOOD.replace("ctx_size = 4096\n", ""), "--estimate-only"))
    assert ":1: deployment 'chat': ctx_size: missing" in msg
    msg = one_line_error(check(tmp_path, "version = 1\n" + GOOD, "--estimate-only"))
    assert ":1: unknown top-level key 'version'" in msg
    msg = one_line_error(check(tmp_path, GOOD + GOOD, "--estimate-only"))
    assert ":16: deployment 'chat': name: 'chat' is used twice: names must be unique" in msg


def test_relative_model_path_is_relative_to_the_file(tmp_path):
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "m.gguf").write_bytes(MODEL.read_bytes())
    path = tmp_path / "deploy.toml"
    path.write_text(GOOD.replace(str(MODEL), "models/m.gguf"))
    (dep,) = load_deployments(path)
    assert dep.model == tmp_path / "models" / "m.gguf"
    assert dep.run.kv == KVSettings(4096, "q8_0", "q8_0", 2, False, False, 2048, 512, "auto")


def test_estimate_only_pass_and_fail(tmp_path):
    kv = predict(load_model_info(MODEL), KVSettings(4096, "q8_0", "q8_0", 2, False, False)).kv_bytes
    r = check(tmp_path, GOOD + 'max_rss = "2 GiB"\nmin_tg_tps = 20\n', "--estimate-only")
    assert r.exit_code == 0, r.output
    assert "max_kv_bytes" in r.stdout and "pass" in r.stdout
    assert r.stdout.count("estimate only") == 2 and "2 not checked" in r.stdout
    r = check(tmp_path, GOOD.replace('"64 MiB"', str(kv - 1)), "--estimate-only")
    assert r.exit_code == 1, r.output
    assert "fail" in r.stdout
    assert check(tmp_path, GOOD.replace('"64 MiB"', str(kv)), "--estimate-only").exit_code == 0


MEASURED = f"""\
[[deployment]]
name = "tiny"
model = "{MODEL}"
ctx_size = 512
cache_type_k = "q8_0"
cache_type_v = "q8_0"
threads = 2
n_prompt = 32
n_gen = 8
repetitions = 2
[deployment.limits]
max_kv_bytes = "1 MiB"
max_rss = "4 GiB"
min_pp_tps = 1
MIN_TG
"""


def test_measured_deployment_passes_generous_limits(tmp_path):
    out = tmp_path / "out"
    r = check(tmp_path, MEASURED.replace("MIN_TG", "min_tg_tps = 1"), "--out", out)
    assert r.exit_code == 0, r.output
    assert "4 passed, 0 failed, 0 not checked" in r.stdout
    rec = json.loads((out / "tiny" / "results.jsonl").read_text())  # measured through the sweep runner
    assert rec["status"] == "ok" and rec["check"]["kv_exact"]
    assert rec["settings"]["n_prompt"] == 32 and rec["settings"]["repetitions"] == 2
    assert len(rec["measured"]["tg"]["samples_tps"]) == 2


def test_measured_deployment_fails_impossible_speed(tmp_path):
    r = check(tmp_path, MEASURED.replace("MIN_TG", "min_tg_tps = 1e12"))
    assert r.exit_code == 1, r.output
    row = next(ln for ln in r.stdout.splitlines() if "min_tg_tps" in ln)
    assert "fail" in row


def test_parse_size():
    assert parse_size("64 MiB", "x") == 64 << 20
    assert parse_size("1.5GiB", "x") == 3 << 29
    assert parse_size("512 KB", "x") == 512_000
    assert parse_size(1234, "x") == 1234
    for bad in ("64 MeB", "-1 MiB", "", True, 1.5):
        with pytest.raises(GgufprofError):
            parse_size(bad, "x")


def test_flash_attn_spellings_and_non_utf8(tmp_path):
    deps = load_deployments(_write(tmp_path, GOOD.replace('flash_attn = "auto"', "flash_attn = true")), 2)
    assert deps[0].run.kv.flash_attn == "on"
    (tmp_path / "bin.toml").write_bytes(b"[[deployment]]\nname = \"\xff\xfe\"\n")
    assert "not UTF-8" in one_line_error(runner.invoke(app, ["check", str(tmp_path / "bin.toml")]))


def test_names_are_unique_and_write_inside_out(tmp_path):
    twice = GOOD + GOOD
    assert "used twice" in one_line_error(check(tmp_path, twice))
    r = check(tmp_path, GOOD.replace('"chat"', '"chat.v2"'), "--estimate-only", "--out", str(tmp_path / "out"))
    assert r.exit_code == 0, r.output


def _write(tmp_path, text):
    path = tmp_path / "deploy.toml"
    path.write_text(text)
    return path
