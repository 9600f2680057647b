"""``ggufprof check deploy.toml``: strict validation with line numbers, estimates, and one real measured
deployment on the llama-gqa fixture."""

from __future__ import annotations

import copy
import json

import pytest
from typer.testing import CliRunner

from ggufprof.cli import app
from ggufprof.flags import parse_size
from ggufprof.results.deploy import load_deployments
from ggufprof.results.deploy_check import check_deployment, outcome
from ggufprof.results.noise import record_caveats
from ggufprof.results.schema import Record
from ggufprof.results.store import load_records
from ggufprof.errors import ExitCode, GgufprofError
from ggufprof.memory.settings import KVSettings
from ggufprof.memory.predict import predict
from ggufprof.model.model_info import load_model_info

from .conftest import fixture_path
from .edited_results import calm, set_samples

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
    ("ctx_size = 4096", 'ctx_size = "4 thousand"', 4, ["ctx_size", "a number of tokens such as 4096 or 32k", "4 thousand"]),
    ("ctx_size = 4096", "ctx_size = 4.5", 4, ["ctx_size", "expected int or str", "float"]),
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
    ("n_gpu_layers = 0", 'n_gpu_layers = "most"', 12, ["n_gpu_layers", "expected a number of layers or 'all', got 'most'"]),
    ("n_gpu_layers = 0", "n_gpu_layers = -2", 12, ["n_gpu_layers", ">= 0, or 'all'"]),
    ("n_gpu_layers = 0", 'n_gpu_layers = 0\ntensor_split = "3,x"', 13, ["tensor_split", "expected proportions"]),
    ("n_gpu_layers = 0", 'n_gpu_layers = 0\nsplit_mode = "rows"', 13, ["split_mode", "expected one of none, layer"]),
    ("n_gpu_layers = 0", 'n_gpu_layers = 0\noverride_tensor = ["exps"]', 13, ["override_tensor", "'tensor name regex=buffer type'"]),
    ("n_gpu_layers = 0", 'n_gpu_layers = 0\nrpc = "localhost"', 13, ["rpc", "expected host:port"]),
    ("n_gpu_layers = 0", "n_gpu_layers = 0\nn_cpu_moe = -1", 13, ["n_cpu_moe", "expected a number of layers >= 0"]),
    ("n_gpu_layers = 0", "n_gpu_layers = 0\ntensor_split = [3, true]", 13, ["tensor_split", "expected a list of values"]),
    ("n_gpu_layers = 0", 'n_gpu_layers = 0\nload_mode = "mapped"', 13, ["load_mode", "expected one of auto, none, mmap"]),
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


def test_placement_keys_are_llama_cpps_flags(tmp_path):
    """Every placement flag as a key, read by the CLI's own parser (llama.cpp's spellings; a list
    for its comma-separated values); threads = 0 is every CPU, as -t 0."""
    import os

    from ggufprof.memory.placement import PlacementFlags

    path = tmp_path / "deploy.toml"
    path.write_text(GOOD.replace("threads = 2", "threads = 0").replace("n_gpu_layers = 0", """n_gpu_layers = "all"
split_mode = "layer"
tensor_split = [3, 1]
main_gpu = 1
device = ["RPC0", "RPC1"]
rpc = "127.0.0.1:50052,127.0.0.1:50053"
override_tensor = ["exps=CPU", 'blk\\.0\\.=RPC0']
n_cpu_moe = 2
n_cpu_ffn = 1
load_mode = "none"
no_host = true"""))
    (dep,) = load_deployments(path, measuring=False)
    assert dep.run.placement == PlacementFlags(
        n_gpu_layers=-1, tensor_split=(3.0, 1.0), main_gpu=1, devices=("RPC0", "RPC1"),
        rpc=("127.0.0.1:50052", "127.0.0.1:50053"), overrides=(("exps", "CPU"), ("blk\\.0\\.", "RPC0")),
        n_cpu_moe=2, n_cpu_ffn=1, load_mode="none", no_host=True)
    assert dep.run.threads == os.cpu_count()


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
    (measured,) = load_records(out / "tiny")
    # the speed limits are judged only on samples compare's rule trusts (this machine may be busy)
    doubtful = sum(bool(record_caveats(measured, t)) for t in ("pp", "tg"))
    assert r.exit_code == (ExitCode.INCONCLUSIVE if doubtful else 0), r.output
    assert f"{4 - doubtful} passed, 0 failed, {doubtful} inconclusive, 0 not checked" in r.stdout
    rec = json.loads((out / "tiny" / "results.jsonl").read_text())  # measured through the sweep runner
    assert rec["status"] == "ok" and rec["check"]["kv_exact"]
    assert rec["settings"]["n_prompt"] == 32 and rec["settings"]["repetitions"] == 2
    assert len(rec["measured"]["tg"]["samples_tps"]) == 2
    # a limit the run has no reading for (VRAM without NVML, here removed from the real record) is
    # not a pass: inconclusive, exit 3 unless --allow-inconclusive
    (dep,) = load_deployments(_write(tmp_path, MEASURED.replace("MIN_TG", 'max_vram = "1 GiB"')), 2)
    measured = Record.from_dict(_calmed(measured))  # speed samples made quiet: only VRAM is in question
    measured.measured.pop("vram", None)
    rows = check_deployment(dep, measured)
    assert [(x.limit, x.verdict) for x in rows if x.verdict != "pass"] == [("max_vram", "inconclusive")]
    assert outcome(rows) == ExitCode.INCONCLUSIVE and outcome(rows, allow_inconclusive=True) == ExitCode.PASS


def test_a_deployment_whose_run_did_not_complete_fails(tmp_path):
    """Its only limit is a predicted one, and the prediction is within it: a crashed (here timed out)
    run still fails the deployment, with the reason (it passed, exit 0)."""
    toml = MEASURED.replace('max_rss = "4 GiB"\nmin_pp_tps = 1\nMIN_TG\n', "")
    assert "max_rss" not in toml and "max_kv_bytes" in toml
    r = check(tmp_path, toml, "--timeout", "0.001")
    assert r.exit_code == ExitCode.FAIL, r.output
    rows = {ln.split()[0]: ln for ln in r.stdout.splitlines() if ln.strip().startswith(("run", "max_kv_bytes"))}
    assert "fail" in rows["run"] and "failed" in rows["run"] and "did not complete" in rows["run"]
    assert "pass" in rows["max_kv_bytes"] and "predicted (the run failed)" in rows["max_kv_bytes"]
    assert "1 passed, 1 failed" in r.stdout


def _calmed(rec: Record) -> dict:
    d = copy.deepcopy(rec.to_dict())
    calm(d)
    return d


def test_measured_deployment_fails_impossible_speed(tmp_path):
    out = tmp_path / "out"
    r = check(tmp_path, MEASURED.replace("MIN_TG", "min_tg_tps = 1e12"), "--out", out)
    (measured,) = load_records(out / "tiny")
    row = next(ln for ln in r.stdout.splitlines() if "min_tg_tps" in ln)
    if record_caveats(measured, "tg"):  # a noisy mean is judged as compare judges it: neither way
        assert "inconclusive" in row and "noisy" in r.stdout
    else:
        assert r.exit_code == 1, r.output
        assert "fail" in row
    assert "≥ 1,000,000,000,000.0 t/s" in row


def test_speed_limits_on_noisy_or_single_samples_are_inconclusive(tmp_path):
    """check judges a speed limit by compare's rule (results/noise.py): on a real record made quiet
    the limits pass and fail by value; the same record with a 42 % spread, another process taking
    the CPU, or one repetition leaves them inconclusive (exit 3), the value still shown."""
    out = tmp_path / "out"
    toml = MEASURED.replace("MIN_TG", "min_tg_tps = 0.001").replace("min_pp_tps = 1", "min_pp_tps = 1e12")
    check(tmp_path, toml, "--out", out)
    (measured,) = load_records(out / "tiny")
    (dep,) = load_deployments(_write(tmp_path, toml), 2)
    quiet = _calmed(measured)

    def speed_rows(d: dict) -> dict:
        return {x.limit: x for x in check_deployment(dep, Record.from_dict(d)) if x.limit.endswith("_tps")}

    rows = speed_rows(quiet)
    assert (rows["min_pp_tps"].verdict, rows["min_tg_tps"].verdict) == ("fail", "pass")
    for edit, words in ((lambda b: set_samples(b, [b["tps_mean"] * 0.7, b["tps_mean"] * 1.3]), "spread 42% > 10%"),  # stdev/mean of (0.7, 1.3)
                        (lambda b: b["samples_noise"][0].update(others_cpu_share=0.6), "other processes used 60%"),
                        (lambda b: set_samples(b, b["samples_tps"][:1]), "1 sample(s), fewer than 2")):
        d = copy.deepcopy(quiet)
        for t in ("pp", "tg"):
            edit(d["measured"][t])
        rows = speed_rows(d)
        for limit in ("min_pp_tps", "min_tg_tps"):
            assert rows[limit].verdict == "inconclusive" and words in rows[limit].note, rows[limit]
            assert rows[limit].value == d["measured"][limit[4:6]]["tps_mean"]
        assert outcome(list(rows.values())) == ExitCode.INCONCLUSIVE


def test_small_speed_limits_keep_their_digits():
    """min_tg_tps = 0.001 reads "≥ 0.001 t/s", not "≥ 0.0 t/s"."""
    from ggufprof.present.deploy_output import _fmt

    assert _fmt("min_tg_tps", 0.001) == "0.001 t/s"
    assert _fmt("min_tg_tps", 0.25) == "0.25 t/s"
    assert _fmt("min_pp_tps", 1234.56) == "1,234.6 t/s"
    assert _fmt("min_pp_tps", 12.0) == "12.0 t/s"


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


def test_names_are_unique_and_write_inside_out(tmp_path, monkeypatch):
    """A name with a dot is a directory name like any other: its measurement lands in OUT/<name>/ and
    nothing is written outside OUT (names that would leave it are refused, test_bad_file_names_...)."""
    twice = GOOD + GOOD
    assert "used twice" in one_line_error(check(tmp_path, twice))
    work, out = tmp_path / "work", tmp_path / "work" / "out"
    work.mkdir()
    monkeypatch.chdir(work)
    r = check(work, MEASURED.replace('"tiny"', '"tiny.v2"').replace("MIN_TG", "").replace("min_pp_tps = 1\n", ""), "--out", str(out))
    assert r.exit_code == 0, r.output
    rec = json.loads((out / "tiny.v2" / "results.jsonl").read_text())
    assert rec["status"] == "ok"
    written = {p for p in work.rglob("*") if p.is_file()} - {work / "deploy.toml"}
    assert written and all(out / "tiny.v2" in p.parents for p in written), sorted(written)


def _write(tmp_path, text):
    path = tmp_path / "deploy.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("profile,expected", [(None, (False, 1, False)), ("tools", (False, 1, False)),
                                              ("server", (False, 4, True)), ("library", (True, 1, False))])
def test_defaults_profile_of_a_deployment(tmp_path, profile, expected):
    """``defaults`` chooses the profile of the keys not given, as the CLI's --defaults does: the tools'
    (common/common.h) unless said otherwise; ctx_size takes "8k" as -c does."""
    text = (f'[[deployment]]\nname = "g"\nmodel = "{fixture_path("gemma3-swa")}"\nctx_size = "8k"\n'
            + (f'defaults = "{profile}"\n' if profile else ""))
    (dep,) = load_deployments(_write(tmp_path, text), 2)
    kv = dep.run.kv
    assert kv.ctx_size == 8192 and (kv.swa_full, kv.parallel, kv.kv_unified) == expected
    tools_kv = predict(dep.info, KVSettings(ctx_size=8192, swa_full=False)).kv_bytes
    # swa_full on (library) keeps a full SWA cache, 4 unified slots (server) a window 4 times wider
    assert (predict(dep.info, kv).kv_bytes > tools_kv) == (profile in ("server", "library"))


def test_unknown_defaults_profile_names_the_line(tmp_path):
    msg = one_line_error(check(tmp_path, GOOD.replace('name = "chat"\n', 'name = "chat"\ndefaults = "cli"\n'), "--estimate-only"))
    assert ":3:" in msg and "defaults" in msg and "tools, server, library" in msg
