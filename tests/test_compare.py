"""``ggufprof compare`` on real sweeps (the shared ``sweep_dirs`` fixture) and modified copies of them."""

from __future__ import annotations

import json
import statistics
import xml.etree.ElementTree as ET

import pytest
from typer.testing import CliRunner

from ggufprof.cli import app
from ggufprof.flags import parse_fraction
from ggufprof.results.compare import Thresholds, compare_memory, compare_speed, short_labels
from ggufprof.memory.caches import mib_f32
from ggufprof.results.store import load_records

from .edited_results import scale_tg, write_copy

runner = CliRunner(mix_stderr=False)


def run(*args):
    return runner.invoke(app, ["compare", *[str(a) for a in args]])


def steady_tg(target):
    """A change that gives configuration ``target`` a steady tg measurement: three samples within ±1 %
    of its measured mean, not flagged noisy. A baseline edited so and a copy of it at 0.8x are
    completely separated (Mann-Whitney's exact one-sided p = 1/20, Welch's far below), so their verdict
    is a regression whatever load the shared sweep was measured under."""
    def change(d):
        if d["id"] == target:
            tg = d["measured"]["tg"]
            mean = statistics.fmean(tg["samples_tps"])
            tg["samples_tps"] = [mean * 0.99, mean, mean * 1.01]
            tg["tps_mean"] = mean
            noise = {k: v for k, v in (d["check"].get("speed_noise") or {}).items() if k != "tg"}
            d["check"].update(speed_noise=noise, speed_noisy=bool(noise))
    return change


def changes(*fns):
    """The changes one after the other."""
    def change(d):
        for fn in fns:
            fn(d)
    return change


@pytest.fixture(scope="module")
def gqa(sweep_dirs):
    return sweep_dirs["llama-gqa"]


def ok_records(path):
    return [r for r in load_records(path) if r.status == "ok"]


@pytest.fixture
def steady_pair(gqa, tmp_path):
    """``make(factor, extra=None) -> (target id, baseline dir, new dir)``: the real sweep with one
    configuration's tg samples edited steady (``steady_tg``) on both sides, and the new side's tg x
    ``factor`` (then ``extra``), so that a lowered tg is a regression there by construction, not by
    how quiet the machine was."""
    target = ok_records(gqa)[0].id

    def make(factor, extra=None):
        base = write_copy(gqa, tmp_path / "base", steady_tg(target))
        lowered = changes(steady_tg(target), scale_tg(factor), *([extra] if extra else []))
        return target, base, write_copy(gqa, tmp_path / "new", lowered)
    return make


def test_run_against_itself_passes(gqa):
    r = run(gqa, gqa)
    assert r.exit_code == 0, r.output
    assert "0 regression(s)" in r.stdout


def test_tg_lowered_20_percent_fails_and_names_configurations(steady_pair):
    target, base, new = steady_pair(0.8)
    # --strict-noise: this tests the significance rules, whatever rows the fixture's ~1 ms timings flag noisy
    r = run(base, new, "--format", "json", "--strict-noise")
    assert r.exit_code == 1, r.output
    flagged = {x["id"] for x in json.loads(r.stdout)["regressions"]}
    assert target in flagged and all(x["metric"] == "tg_tps" for x in json.loads(r.stdout)["regressions"])
    # whenever the three baseline samples span less than 25 %, the lowered ones all lie below them:
    # Mann-Whitney's exact one-sided p is 1/20 = alpha, so these must be flagged whatever the noise
    separable = {rec.id for rec in ok_records(base)
                 if max(rec.measured["tg"]["samples_tps"]) < 1.25 * min(rec.measured["tg"]["samples_tps"])}
    assert target in separable and separable <= flagged
    table = run(base, new, "--strict-noise")
    assert table.exit_code == 1
    labels = short_labels([rec.id for rec in load_records(base)])
    for rid in flagged:  # the table names each flagged configuration by what distinguishes it
        assert labels[rid] in table.stdout


def test_tg_lowered_1_percent_is_within_noise(gqa, tmp_path):
    new = write_copy(gqa, tmp_path / "new", scale_tg(0.99))
    r = run(gqa, new, "--format", "json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["regressions"] == []


def test_kv_raised_by_one_block_fails(gqa, tmp_path):
    target = next(r.id for r in ok_records(gqa) if r.settings["cache_type_k"] == "q8_0")

    def one_more_block(d):
        if d["id"] == target:
            d["predicted"]["kv_bytes"] += 34  # one q8_0 block: 32 values in 34 bytes
            cache = d["measured"]["kv"]["caches"][0]
            cache["total_mib"] = mib_f32(d["predicted"]["kv_bytes"])
    new = write_copy(gqa, tmp_path / "new", one_more_block)
    r = run(gqa, new, "--format", "json")
    assert r.exit_code == 1, r.output
    regs = json.loads(r.stdout)["regressions"]
    kv = [x for x in regs if x["metric"] == "kv_predicted"]
    assert len(kv) == 1 and kv[0]["id"] == target and kv[0]["new"] - kv[0]["baseline"] == 34
    # a 1 % KV threshold would hide it: the default is 0 on purpose
    assert run(gqa, new, "--max-kv-increase", "1%", "--format", "json").exit_code == 0


def test_configurations_on_one_side_are_listed(gqa, tmp_path):
    ids = [r.id for r in load_records(gqa)]
    base = write_copy(gqa, tmp_path / "base", keep=set(ids[:-1]))
    new = write_copy(gqa, tmp_path / "new", keep=set(ids[1:]))
    r = run(base, new, "--format", "json")
    assert r.exit_code == 1, r.output  # ids[0] was ok in the baseline and is gone: the gate fails
    d = json.loads(r.stdout)
    assert [x["id"] for x in d["only_baseline"]] == [ids[0]]
    assert [x["id"] for x in d["only_new"]] == [ids[-1]]
    assert [x["id"] for x in d["lost"]] == [ids[0]] and d["failed"]
    assert d["matched"] == len(ids) - 2
    table = run(base, new)
    assert "only in the baseline" in table.stdout and "only in the new results" in table.stdout
    assert "FAILED" in table.stdout
    assert run(base, new, "--allow-missing").exit_code == 0


def test_failed_and_skipped_records_are_listed(gqa, tmp_path):
    target = ok_records(gqa)[0].id

    def fail(d):
        if d["id"] == target:
            d.update(status="failed", reason="worker killed by SIGKILL")
    new = write_copy(gqa, tmp_path / "new", fail)
    r = run(gqa, new, "--format", "json")
    assert r.exit_code == 1
    d = json.loads(r.stdout)
    assert [(x["id"], x["new_status"]) for x in d["not_compared"]] == [(target, "failed")]
    assert "SIGKILL" in d["not_compared"][0]["reason"]


@pytest.mark.parametrize("how", ["all_failed", "empty", "no_match"])
def test_gate_cannot_pass_by_accident(gqa, tmp_path, how):
    """Every configuration failed (--timeout 0), nothing measured, or grids that do not overlap:
    exit 1 and a JUnit failure, never a green build (--allow-missing relaxes it)."""
    if how == "all_failed":
        new = write_copy(gqa, tmp_path / "new", lambda d: d.update(status="failed", reason="timed out after 0 s"))
    elif how == "empty":
        new = write_copy(gqa, tmp_path / "new", keep=set())
    else:
        new = write_copy(gqa, tmp_path / "new", lambda d: d.update(id=d["id"] + ",other",
                                                                  settings={**d["settings"], "ctx_size": 12345}))
    r = run(gqa, new)
    assert r.exit_code == 1, r.output
    junit = run(gqa, new, "--format", "junit").stdout
    assert 'failures="0"' not in junit and "<failure" in junit
    assert run(gqa, new, "--allow-missing").exit_code == 0


def test_markup_and_huge_reasons_are_data(gqa, tmp_path):
    target = ok_records(gqa)[0].id

    def fail(d):
        if d["id"] == target:
            d.update(status="failed", reason="[/bold] evil [red" + "x" * (16 << 20))
    new = write_copy(gqa, tmp_path / "ne[/b]w", fail)
    r = run(gqa, new)
    assert r.exit_code == 1 and "Traceback" not in r.output
    assert "[/bold] evil" in r.stdout and len(r.stdout) < 100_000


def test_unreadable_lines_are_reported_and_ignored(gqa, tmp_path):
    """A torn last line (full disk), JSON that is not a record, wrong types, NaN samples: each is one
    warning; the configurations they held count as lost, so the gate fails."""
    new = write_copy(gqa, tmp_path / "new")
    lines = (new / "results.jsonl").read_text().splitlines()
    bad = json.loads(lines[1])
    bad["settings"] = "x"
    nan = lines[2].replace('"samples_tps": [', '"samples_tps": [NaN, ', 1)
    (new / "results.jsonl").write_text("\n".join([lines[0], json.dumps(bad), nan, "[]", "42", "null"] + lines[3:-1]
                                                 + [lines[-1][: len(lines[-1]) // 2]]))
    r = run(gqa, new)
    assert r.exit_code == 1 and "Traceback" not in r.output
    warnings = [ln for ln in r.stderr.splitlines() if ln.startswith("warning: ")]
    assert len(warnings) == 6 and "torn" in warnings[-1]
    assert runner.invoke(app, ["report", str(new), "--out", str(tmp_path / "rep")]).exit_code == 0


def test_different_model_refused_unless_forced(gqa, tmp_path):
    def other_model(d):
        d["model"]["sha256"] = "0" * 64
    new = write_copy(gqa, tmp_path / "new", other_model)
    r = run(gqa, new)
    assert r.exit_code == 2
    err = r.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("Error: ") and "sha256" in err[0] and "--force" in err[0]
    assert run(gqa, new, "--force").exit_code == 0


def test_different_host_refused(gqa, tmp_path):
    def other_host(d):
        if d["env"]:
            d["env"]["hostname"] = "elsewhere"
    r = run(gqa, write_copy(gqa, tmp_path / "new", other_host))
    assert r.exit_code == 2 and "elsewhere" in r.stderr and "hostname" in r.stderr


def test_every_format_parses(steady_pair, tmp_path):
    target, base, new = steady_pair(0.5)
    d = json.loads(run(base, new, "-f", "json").stdout)
    assert set(d) >= {"regressions", "improvements", "unchanged", "only_baseline", "only_new"}
    assert (target, "tg_tps") in [(x["id"], x["metric"]) for x in d["regressions"]]
    n_ok = len(ok_records(base))
    assert len(d["regressions"]) + len(d["improvements"]) + len(d["unchanged"]) + len(d["noisy"]) == n_ok * 6
    suite = ET.fromstring(run(base, new, "-f", "junit").stdout)
    assert suite.tag == "testsuite" and int(suite.get("tests")) == n_ok * 6
    failures = suite.findall("testcase/failure")
    assert int(suite.get("failures")) == len(failures) == len(d["regressions"]) > 0
    md = run(base, new, "-f", "md").stdout
    assert "| configuration | metric |" in md and ":x: regression" in md
    out = tmp_path / "report.xml"
    r = run(base, new, "-f", "junit", "--output", out)
    assert r.exit_code == 1 and r.stdout == "" and ET.parse(out).getroot().tag == "testsuite"


def test_bad_input_exits_2(gqa, tmp_path):
    assert run(gqa, tmp_path / "nothing").exit_code == 2
    assert run(gqa, gqa, "--format", "xml").exit_code == 2
    assert run(gqa, gqa, "--max-tps-drop", "five").exit_code == 2


def test_thresholds_and_rules():
    assert parse_fraction("1%", "x") == pytest.approx(0.01) and parse_fraction("0.01", "x") == 0.01
    assert compare_memory("c", "kv_predicted", 10**9, 10**9 + 34, 0.0).verdict == "regression"
    assert compare_memory("c", "kv_predicted", 10**9, 10**9 - 34, 0.0).verdict == "improvement"
    assert compare_memory("c", "rss_peak", 100 << 20, (101 << 20), 0.01, 1 << 20).verdict == "unchanged"
    assert compare_memory("c", "rss_peak", 100 << 20, (103 << 20), 0.01, 1 << 20).verdict == "regression"
    th = Thresholds()
    base = [100.0, 101.0, 99.0]
    assert compare_speed("c", "tg_tps", base, [80.0, 81.0, 79.0], th).verdict == "regression"
    assert compare_speed("c", "tg_tps", base, [99.0, 100.0, 98.0], th).verdict == "unchanged"  # effect < 5 %
    assert compare_speed("c", "tg_tps", base, [120.0, 121.0, 119.0], th).verdict == "improvement"
    # a 30 % drop inside wild noise is not significant
    assert compare_speed("c", "tg_tps", [50.0, 150.0, 100.0], [40.0, 110.0, 60.0], th).verdict == "unchanged"
    assert compare_speed("c", "tg_tps", [100.0], [50.0], th).verdict == "not_compared"


def test_noisy_rows_are_reported_not_judged(steady_pair):
    """A 20 % drop on a measurement flagged noisy is 'noisy', not a regression, unless --strict-noise."""
    target, base, plain = steady_pair(0.8)
    d = json.loads(run(base, plain, "--format", "json").stdout)
    assert (target, "tg_tps") in [(x["id"], x["metric"]) for x in d["regressions"]]  # unflagged: judged

    def flag_noisy(d):
        if d["id"] == target:
            d["check"]["speed_noise"] = {"tg": ["spread 35% > 10%"]}
            d["check"]["speed_noisy"] = True
    _, base, new = steady_pair(0.8, flag_noisy)
    d = json.loads(run(base, new, "--format", "json").stdout)
    assert (target, "tg_tps") in [(x["id"], x["metric"]) for x in d["noisy"]]
    assert (target, "tg_tps") not in [(x["id"], x["metric"]) for x in d["regressions"]]
    strict = json.loads(run(base, new, "--format", "json", "--strict-noise").stdout)
    assert (target, "tg_tps") in [(x["id"], x["metric"]) for x in strict["regressions"]] and not strict["noisy"]
