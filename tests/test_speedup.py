"""``speedup``: generation with the KV cache against recomputing the prefix, in real llama.cpp runs.

Asserts on the work llama.cpp counted (tokens evaluated per step: 1 with the cache, position + 1
without), on the record and on the report that draws it -- never on wall time."""

import json

import pytest
from typer.testing import CliRunner

from ggufprof.cli import app
from ggufprof.present.report import write_report
from ggufprof.present.speedup_output import curve_positions
from ggufprof.results.speedup import SPEEDUP, SpeedupRecord, expected_work, read_speedup, work_mismatches

from .conftest import fixture_path

runner = CliRunner(mix_stderr=False)


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    """One real run on the GQA fixture: 4 and 16 tokens, 2 repetitions, into a results directory."""
    out = tmp_path_factory.mktemp("speedup")
    r = run("speedup", fixture_path("llama-gqa"), "-n", "16,4", "-r", 2, "-t", 1, "--out", out, "--json")
    assert r.exit_code == 0, r.output
    return out, json.loads(r.stdout)


def test_work_counted_by_llama_cpp(measured):
    _, d = measured
    assert [p["n"] for p in d["points"]] == [4, 16]
    for p in d["points"]:
        n = p["n"]
        assert p["cached"]["tokens_evaluated"] == [1] * n
        assert p["uncached"]["tokens_evaluated"] == list(range(1, n + 1))
        assert sum(p["uncached"]["tokens_evaluated"]) == n * (n + 1) // 2
        for mode in ("cached", "uncached"):
            block = p[mode]
            assert len(block["per_token_s"]) == n and all(t > 0 for t in block["per_token_s"])
            assert len(block["samples_s"]) == 2 and len(block["samples_noise"]) == 2  # repetitions, as the sweep's
            assert block["n_tokens"] == n and block["tps_mean"] > 0
    assert d["settings"]["n_gen"] == [4, 16] and d["settings"]["threads"] == 1 and d["settings"]["repetitions"] == 2
    assert d["settings"]["batch_size"] == 16  # a whole prefix in one llama_decode
    assert d["resolved"]["n_ctx"] == 256 and d["model"]["architecture"] == "llama" and d["model"]["sha256"]


def test_record_is_kept_and_read_back(measured):
    out, d = measured
    (rec,) = read_speedup(out)
    assert rec.to_dict() == d
    assert work_mismatches(rec.points) == []


def test_report_draws_both_curves(measured, tmp_path):
    out, _ = measured
    written = write_report([out], tmp_path)
    assert "png:speedup" in written
    html = written["html"].read_text()
    assert "Generation with and without the KV cache" in html and "position + 1 tokens per step" in html
    md = written["md"].read_text()
    assert "report-speedup.png" in md and "no sweep records here" in md


def test_report_of_a_sweep_without_speedup_says_so(tmp_path):
    from ggufprof.measure.grid import GridSpec
    from ggufprof.measure.sweep import Sweep
    from ggufprof.model.model_info import load_model_info

    spec = GridSpec(cache_types=[("f16", "f16")], ctx_sizes=[256], swa_full=[True], parallel=[1], kv_unified=[False],
                    flash_attn=["auto"], depths=[0], threads=1, n_prompt=8, n_gen=4, repetitions=1)
    Sweep(load_model_info(fixture_path("llama-gqa")), spec, tmp_path).run()
    written = write_report([tmp_path], tmp_path / "r")
    assert "png:speedup" not in written
    assert "not drawn, no speedup.jsonl" in written["md"].read_text()
    r = run("speedup", fixture_path("llama-gqa"), "-n", 3, "-r", 1, "-t", 1, "--out", tmp_path)
    assert r.exit_code == 0, r.output
    assert "3" in r.stdout and "speed-up" in r.stdout and f"{tmp_path / SPEEDUP}" in r.stdout.replace("\n", "")
    written = write_report([tmp_path], tmp_path / "r")  # the sweep's plots and the speedup plot together
    assert "png:speedup" in written and "png:cache-types" in written


def test_another_models_results_are_refused(measured):
    out, _ = measured
    r = run("speedup", fixture_path("gemma3-swa"), "-n", 2, "-r", 1, "-t", 1, "--out", out)
    assert r.exit_code == 2 and "holds results of another model" in r.stderr
    assert len(read_speedup(out)) == 1


@pytest.mark.parametrize("args,msg", [(("-n", "0"), "must be >= 1"), (("-n", "8192"), "training context 4096"),
                                      (("-r", "0"), "--repetitions")])
def test_bad_input_is_one_line(args, msg):
    r = run("speedup", fixture_path("llama-gqa"), *args)
    assert r.exit_code == 2 and r.stderr.startswith("Error: ") and msg in r.stderr, r.output
    assert len(r.stderr.strip().splitlines()) == 1


def _point(n, cached, uncached):
    block = lambda work: {"per_token_s": [0.001] * n, "tokens_evaluated": work, "samples_s": [0.01]}  # noqa: E731
    return {"n": n, "cached": block(cached), "uncached": block(uncached)}


def test_work_mismatches_name_the_step():
    assert expected_work("cached", 3) == [1, 1, 1] and expected_work("uncached", 3) == [1, 2, 3]
    assert work_mismatches([_point(3, [1, 1, 1], [1, 2, 3])]) == []
    assert work_mismatches([_point(3, [1, 1, 1], [1, 1, 1])]) == ["n=3 uncached: step 1 evaluated 1, expected 2"]
    assert work_mismatches([_point(3, [1, 2, 1], [1, 2, 3])]) == ["n=3 cached: step 1 evaluated 2, expected 1"]


def test_unreadable_lines_are_skipped_and_named(tmp_path):
    good = SpeedupRecord({"name": "m"}, {"n_gen": [3]}, [_point(3, [1, 1, 1], [1, 2, 3])])
    bad = {**good.to_dict(), "points": [_point(3, [1, 1], [1, 2, 3])]}  # one count short
    (tmp_path / SPEEDUP).write_text(json.dumps(good.to_dict()) + "\n" + json.dumps(bad) + "\n{torn")
    problems: list[str] = []
    assert [r.to_dict() for r in read_speedup(tmp_path, problems)] == [good.to_dict()]
    assert len(problems) == 2 and ":2: points n=3: cached.tokens_evaluated must hold 3 numbers" in problems[0]
    assert ":3: a torn last line" in problems[1]


def test_curve_positions():
    assert curve_positions(1024) == [0, 1, 3, 7, 15, 31, 63, 127, 255, 511, 1023]
    assert curve_positions(4) == [0, 1, 2, 3]
