"""``ggufprof compare`` on real sweeps (the shared ``sweep_dirs`` fixture) and modified copies of them."""

from __future__ import annotations

import json
import statistics
import xml.etree.ElementTree as ET

import pytest
from typer.testing import CliRunner

from ggufprof.cli import app
from ggufprof.errors import ExitCode
from ggufprof.flags import parse_fraction
from ggufprof.results.compare import Thresholds, compare_memory, compare_speed, short_labels
from ggufprof.memory.caches import mib_f32
from ggufprof.results.noise import noise_reasons
from ggufprof.results.store import load_records

from .edited_results import calm, scale_tg, set_samples, write_copy

runner = CliRunner(mix_stderr=False)


def run(*args):
    return runner.invoke(app, ["compare", *[str(a) for a in args]])


def chain(*changes):
    def change(d):
        for c in changes:
            c(d)
    return change


@pytest.fixture(scope="module")
def gqa(sweep_dirs):
    return sweep_dirs["llama-gqa"]


@pytest.fixture(scope="module")
def quiet(gqa, tmp_path_factory):
    """The llama-gqa sweep with calm speed samples (``calm``)."""
    return write_copy(gqa, tmp_path_factory.mktemp("quiet"), calm)


def flat(text):
    """Terminal output with its line wrapping undone."""
    return " ".join(text.split())


def ok_records(path):
    return [r for r in load_records(path) if r.status == "ok"]


def test_run_against_itself_passes(quiet):
    r = run(quiet, quiet)
    assert r.exit_code == ExitCode.PASS, r.output
    assert "0 regression(s)" in r.stdout and "0 inconclusive" in flat(r.stdout) and "pass (exit 0)" in flat(r.stdout)


def test_noise_is_decided_from_the_samples(gqa):
    """The real sweep against itself: exactly the speed rows whose samples (either side: here both are
    the same) the noise rule flags are inconclusive, whatever flag the records carry; exit 3 if any."""
    d = json.loads(run(gqa, gqa, "-f", "json").stdout)
    flagged = {(rec.id, f"{test}_tps") for rec in ok_records(gqa) for test in ("pp", "tg")
               if noise_reasons(rec.measured[test])}
    assert {(x["id"], x["metric"]) for x in d["inconclusive"]} == flagged
    assert d["exit_code"] == (ExitCode.INCONCLUSIVE if flagged else ExitCode.PASS) and not d["regressions"]


def test_tg_lowered_20_percent_fails_and_names_configurations(quiet, tmp_path):
    new = write_copy(quiet, tmp_path / "new", scale_tg(0.8))
    r = run(quiet, new, "--format", "json")
    assert r.exit_code == ExitCode.FAIL, r.output
    regs = json.loads(r.stdout)["regressions"]
    assert {(x["id"], x["metric"]) for x in regs} == {(rec.id, "tg_tps") for rec in ok_records(quiet)}
    table = run(quiet, new)
    assert table.exit_code == ExitCode.FAIL
    labels = short_labels([rec.id for rec in load_records(quiet)])
    for x in regs:  # the table names each flagged configuration by what distinguishes it
        assert labels[x["id"]] in table.stdout


def test_tg_lowered_20_percent_on_noisy_samples_never_passes(gqa, tmp_path):
    """The sweep's real samples, as noisy as this machine made them: each 20 % drop is a regression or
    inconclusive, never unchanged, and whenever the three baseline samples span less than 25 % the
    lowered ones all lie below them (Mann-Whitney's exact one-sided p is 1/20 = alpha): a regression,
    whatever the noise. Exit 1 when any is a regression, 3 otherwise."""
    new = write_copy(gqa, tmp_path / "new", scale_tg(0.8))
    d = json.loads(run(gqa, new, "--format", "json").stdout)
    verdicts = {x["id"]: v for v in ("regression", "inconclusive", "unchanged")
                for x in d[{"regression": "regressions"}.get(v, v)] if x["metric"] == "tg_tps"}
    assert set(verdicts) == {rec.id for rec in ok_records(gqa)} and "unchanged" not in verdicts.values()
    separable = {rec.id for rec in ok_records(gqa)
                 if max(rec.measured["tg"]["samples_tps"]) < 1.25 * min(rec.measured["tg"]["samples_tps"])}
    assert all(verdicts[i] == "regression" for i in separable)
    assert d["exit_code"] == (ExitCode.FAIL if "regression" in verdicts.values() else ExitCode.INCONCLUSIVE)


def test_tg_lowered_1_percent_is_within_noise(quiet, tmp_path):
    new = write_copy(quiet, tmp_path / "new", scale_tg(0.99))
    r = run(quiet, new, "--format", "json")
    assert r.exit_code == ExitCode.PASS, r.output
    assert json.loads(r.stdout)["regressions"] == []


def test_kv_raised_by_one_block_fails(quiet, tmp_path):
    gqa = quiet
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


def test_configurations_on_one_side_are_listed(quiet, tmp_path):
    gqa = quiet
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
    else:  # every context size moved, so the configurations stay distinct and match none of the baseline's
        def elsewhere(d):
            d["settings"]["ctx_size"] += 12345
        new = write_copy(gqa, tmp_path / "new", elsewhere)
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


def test_different_model_refused_unless_forced(quiet, tmp_path):
    gqa = quiet
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


def test_every_format_parses(quiet, tmp_path):
    gqa = quiet
    new = write_copy(gqa, tmp_path / "new", scale_tg(0.5))
    d = json.loads(run(gqa, new, "-f", "json").stdout)
    assert set(d) >= {"regressions", "improvements", "unchanged", "inconclusive", "missing", "only_baseline",
                      "only_new", "status", "exit_code"}
    n_ok = len(ok_records(gqa))
    assert len(d["regressions"]) + len(d["improvements"]) + len(d["unchanged"]) == n_ok * 6
    suite = ET.fromstring(run(gqa, new, "-f", "junit").stdout)
    assert suite.tag == "testsuite" and int(suite.get("tests")) == n_ok * 6
    failures = suite.findall("testcase/failure")
    assert int(suite.get("failures")) == len(failures) == len(d["regressions"]) > 0
    md = run(gqa, new, "-f", "md").stdout
    assert "| configuration | metric |" in md and ":x: regression" in md
    out = tmp_path / "report.xml"
    r = run(gqa, new, "-f", "junit", "--output", out)
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

    def speed(base, new):
        return compare_speed("c", "tg_tps", {"samples_tps": base}, {"samples_tps": new}, th)
    base = [100.0, 101.0, 99.0]
    assert speed(base, [80.0, 81.0, 79.0]).verdict == "regression"
    assert speed(base, [99.0, 100.0, 98.0]).verdict == "unchanged"  # effect < 5 %
    assert speed(base, [120.0, 121.0, 119.0]).verdict == "improvement"
    # a 30 % drop inside wild noise is not significant, and not "unchanged" either: it cannot be judged
    wild = speed([50.0, 150.0, 100.0], [40.0, 110.0, 60.0])
    assert wild.verdict == "inconclusive" and "spread" in wild.note
    one = speed([100.0], [10.0])
    assert one.verdict == "inconclusive" and "fewer than 2" in one.note
    # spreads of 9 % (not noisy) and a 7.7 % drop that the samples cannot confirm: not a pass
    big = speed([100.0, 109.0, 91.0], [92.0, 101.0, 84.0])
    assert big.verdict == "inconclusive" and "do not confirm" in big.note


def quiet_new(quiet, tmp_path, *changes):
    return write_copy(quiet, tmp_path / "new", chain(*changes))


def first_ok(quiet):
    return ok_records(quiet)[0].id


def test_an_ok_record_without_its_kv_is_skipped_and_its_configuration_lost(quiet, tmp_path):
    """measured.kv null in an ok record is not a record a reader can use (schema.validate): a warning
    names the line, and the configuration counts as lost, so the gate fails."""
    target = first_ok(quiet)

    def lose(d):
        if d["id"] == target:
            d["measured"]["kv"] = None
    new = write_copy(quiet, tmp_path / "new", lose)
    r = run(quiet, new, "-f", "json")
    assert r.exit_code == ExitCode.FAIL, r.output
    assert "measured.kv: null" in r.stderr or "measured.kv: missing in an ok record" in r.stderr, r.stderr
    d = json.loads(r.stdout)
    assert [x["id"] for x in d["lost"]] == [target] and d["status"] == "fail"
    assert run(quiet, new, "--allow-missing").exit_code == ExitCode.PASS


@pytest.mark.parametrize("how", ["no_tg_samples"])
def test_a_lost_metric_fails(quiet, tmp_path, how):
    """A metric compared in the baseline must be compared in the new results: a tg block without
    samples fails the gate (it was only listed before)."""
    target = first_ok(quiet)

    def lose(d):
        if d["id"] == target:
            if how == "kv_null":
                d["measured"]["kv"] = None
            else:
                set_samples(d["measured"]["tg"], [])
    new = write_copy(quiet, tmp_path / "new", lose)
    r = run(quiet, new, "-f", "json")
    assert r.exit_code == ExitCode.FAIL, r.output
    d = json.loads(r.stdout)
    metric = "kv_logged" if how == "kv_null" else "tg_tps"
    assert [(x["id"], x["metric"]) for x in d["missing"]] == [(target, metric)]
    assert d["status"] == "fail" and "1 metric(s) compared in the baseline are missing" in d["gate_failures"][0]
    junit = ET.fromstring(run(quiet, new, "-f", "junit").stdout)
    assert [f.get("type") for f in junit.iter("failure")] == ["missing"]
    assert "metrics missing in the new results" in run(quiet, new).stdout
    assert run(quiet, new, "--allow-missing").exit_code == ExitCode.PASS
    # the other way round, a metric only the new results have is listed, not a failure
    assert run(new, quiet).exit_code == ExitCode.PASS


def test_one_repetition_is_inconclusive_not_a_pass(quiet, tmp_path):
    """-r 1 on both sides and tokens/s down 90 %: nothing can be judged with one sample; exit 3, and
    --allow-noisy accepts it while still reporting it."""
    def one_rep(factor):
        def change(d):
            for test in ("pp", "tg"):
                block = d["measured"][test]
                set_samples(block, [block["samples_tps"][0] * factor])
        return change
    base = write_copy(quiet, tmp_path / "base", one_rep(1.0))
    new = write_copy(quiet, tmp_path / "new", one_rep(0.1))
    r = run(base, new, "-f", "json")
    assert r.exit_code == ExitCode.INCONCLUSIVE, r.output
    d = json.loads(r.stdout)
    n_ok = len(ok_records(quiet))
    assert len(d["inconclusive"]) == 2 * n_ok and d["status"] == "inconclusive" and not d["regressions"]
    assert all("1 sample(s), fewer than 2" in x["note"] for x in d["inconclusive"])
    accepted = run(base, new, "-f", "json", "--allow-noisy")
    assert accepted.exit_code == ExitCode.PASS
    assert len(json.loads(accepted.stdout)["inconclusive"]) == 2 * n_ok


def test_noise_never_hides_a_significant_regression(quiet, tmp_path):
    """tg halved (p far below alpha) on a shared runner: the new side's samples say other processes
    used 90 % of the CPU, and its stored flag says noisy. A regression all the same (it was 'noisy',
    exit 0): on a machine where everything is noisy the speed gate must still be able to fail."""
    def shared_runner(d):
        tg = d["measured"]["tg"]
        tg["samples_noise"] = [{**s, "others_cpu_share": 0.9} for s in tg["samples_noise"]]
        d["check"].update(speed_noisy=True, speed_noise={"tg": ["other processes used 90% of the CPU"]})
    new = quiet_new(quiet, tmp_path, scale_tg(0.5), shared_runner)
    r = run(quiet, new, "-f", "json")
    assert r.exit_code == ExitCode.FAIL, r.output
    regs = json.loads(r.stdout)["regressions"]
    assert len(regs) == len(ok_records(quiet)) and all(x["metric"] == "tg_tps" for x in regs)
    assert all(x["p_welch"] < 0.01 and "other processes used 90%" in x["note"] for x in regs)
    assert run(quiet, new, "--allow-noisy").exit_code == ExitCode.FAIL


def test_noisy_samples_are_inconclusive_in_every_format(quiet, tmp_path):
    """tg samples spread by 30 % around an unchanged mean: neither a regression nor a pass. Exit 3 and its
    own status in the table, Markdown, JSON and JUnit; --allow-noisy exits 0 and still reports it."""
    target = first_ok(quiet)

    def spread(d):
        if d["id"] == target:
            m = d["measured"]["tg"]["tps_mean"]
            set_samples(d["measured"]["tg"], [m * 0.7, m, m * 1.3])
    new = quiet_new(quiet, tmp_path, spread)
    table = run(quiet, new)
    assert table.exit_code == ExitCode.INCONCLUSIVE, table.output
    assert "INCONCLUSIVE: 1 comparison(s)" in flat(table.stdout) and "new: spread 30% > 10%" in flat(table.stdout)
    d = json.loads(run(quiet, new, "-f", "json").stdout)
    assert [(x["id"], x["metric"]) for x in d["inconclusive"]] == [(target, "tg_tps")]
    assert (d["status"], d["exit_code"], d["failed"]) == ("inconclusive", 3, False)
    junit = ET.fromstring(run(quiet, new, "-f", "junit").stdout)
    assert junit.get("errors") == "1" and junit.get("failures") == "0"
    assert [e.get("type") for e in junit.iter("error")] == ["inconclusive"]
    md = run(quiet, new, "-f", "md")
    assert md.exit_code == ExitCode.INCONCLUSIVE and ":grey_question: inconclusive" in md.stdout
    accepted = run(quiet, new, "-f", "junit", "--allow-noisy")
    assert accepted.exit_code == ExitCode.PASS
    skipped = [s.get("message") for s in ET.fromstring(accepted.stdout).iter("skipped")]
    assert any(m.startswith("inconclusive (accepted by --allow-noisy)") for m in skipped)
    # the baseline's samples count alike: the same spread there, none in the new results
    assert run(new, quiet).exit_code == ExitCode.INCONCLUSIVE


def test_strict_noise_is_the_default_now(quiet, tmp_path):
    """Old CI files keep working: --strict-noise is accepted, says it is the default, and judges as before
    the flag (a significant change fails; what noise leaves undecided is inconclusive)."""
    new = quiet_new(quiet, tmp_path, scale_tg(0.5))
    r = run(quiet, new, "--strict-noise")
    assert r.exit_code == ExitCode.FAIL and "--strict-noise is the default now" in r.stderr
    both = run(quiet, new, "--strict-noise", "--allow-noisy")
    assert both.exit_code == ExitCode.BAD_INPUT and "contradict" in both.stderr


@pytest.mark.parametrize("side", ["new", "baseline"])
def test_duplicate_configurations_are_an_error(quiet, tmp_path, side):
    """Two runs concatenated, a regressed one then a clean one: the last record used to win, which turned
    every regression into a pass. Now one Error line naming the configurations, exit 2."""
    regressed = quiet_new(quiet, tmp_path, scale_tg(0.5))
    both = tmp_path / "both"
    both.mkdir()
    (both / "results.jsonl").write_text((regressed / "results.jsonl").read_text()
                                        + (quiet / "results.jsonl").read_text())
    r = run(quiet, both) if side == "new" else run(both, quiet)
    err = r.stderr.strip().splitlines()
    assert r.exit_code == ExitCode.BAD_INPUT and len(err) == 1 and err[0].startswith("Error: "), r.output
    n = len(load_records(quiet))
    assert f"{n} configuration(s) appear more than once" in err[0] and str(both) in err[0]
    assert f"{load_records(quiet)[0].id} (2 records)" in err[0]


def test_an_old_baseline_still_matches(quiet, tmp_path):
    """A version-1 baseline, written before ``repack`` and the placement flags were settings (and before
    quality blocks), matches today's records: a setting an old record lacks takes its default (repack
    on, llama.cpp's default placement), so adding a setting to the schema does not turn every old
    baseline into 'only in the baseline'."""
    placement = ("repack", "split_mode", "tensor_split", "main_gpu", "devices", "rpc", "overrides", "cpu_moe",
                 "n_cpu_moe", "n_cpu_ffn")

    def version_1(d):
        d["schema_version"] = 1
        d.pop("quality", None)
        assert [d["settings"].pop(k) for k in placement] == [True, "layer", [], 0, [], [], [], False, 0, 0]
    old = write_copy(quiet, tmp_path / "v1", version_1)
    assert all(not set(placement) & set(json.loads(ln)["settings"])
               for ln in (old / "results.jsonl").read_text().splitlines())
    r = run(old, quiet, "-f", "json")
    assert r.exit_code == ExitCode.PASS, r.output
    d = json.loads(r.stdout)
    assert d["matched"] == len(ok_records(quiet)) and not d["only_baseline"] and not d["only_new"]
    # a record that says repack off, or another placement, is another configuration, old or new
    for change in ({"repack": False}, {"n_cpu_moe": 1}, {"rpc": ["127.0.0.1:50052"]}):
        other = write_copy(quiet, tmp_path / "other", lambda d: d["settings"].update(change))
        assert json.loads(run(old, other, "-f", "json", "--allow-missing").stdout)["matched"] == 0, change


def test_record_text_is_escaped_in_markdown_terminal_and_junit(quiet, tmp_path):
    """A failure reason and a setting are data: backticks, |, newlines and terminal escape sequences
    come out inert in Markdown, printable in the table, and well-formed in JUnit XML."""
    target = first_ok(quiet)
    evil = "boom `code` | cell\n# heading \x1b[2J\x1b[31mred"

    def hostile(d):
        if d["id"] == target:
            d.update(status="failed", reason=evil)
    new = write_copy(quiet, tmp_path / "new", hostile)
    lines = (new / "results.jsonl").read_text().splitlines()
    extra = json.loads(lines[0])
    extra["settings"]["cache_type_k"] = "f16\x1b]0;owned\x07"
    (new / "results.jsonl").write_text("\n".join(lines + [json.dumps(extra)]) + "\n")
    md = run(quiet, new, "-f", "md").stdout
    assert "\x1b" not in md and "\x07" not in md
    assert "boom \\`code\\` \\| cell # heading" in md  # one line, nothing opens a code span or a cell
    assert not any(ln.startswith("# heading") for ln in md.splitlines())
    table = run(quiet, new)
    assert table.exit_code == ExitCode.FAIL and "\x1b" not in table.stdout and "\x07" not in table.stdout
    assert "boom `code` | cell?# heading ?[2J?[31mred" in flat(table.stdout)
    junit = run(quiet, new, "-f", "junit").stdout
    assert "\x1b" not in junit and ET.fromstring(junit).get("failures") == "1"


def test_the_table_shows_the_worst_configurations_and_counts_the_rest():
    """A gate over many configurations: the table prints TABLE_CONFIGURATIONS of them, worst first,
    and one line counts the others by verdict (the verdict itself covers all)."""
    import io

    from rich.console import Console

    from ggufprof.present.compare_output import TABLE_CONFIGURATIONS, print_table
    from ggufprof.results.compare import Comparison, MetricResult

    n = TABLE_CONFIGURATIONS + 7
    cmp = Comparison("b", "n", Thresholds(), matched=n)
    cmp.results = [MetricResult(f"c={i},t=1", "kv_predicted", "unchanged" if i else "regression", 100, 100 + (i == 0),
                                0.0) for i in range(n)]
    cmp.results += [MetricResult(f"c={i},t=1", "tg_tps", "inconclusive", 10.0, 9.0, -0.1, note="noisy")
                    for i in range(n)]
    buf = io.StringIO()
    print_table(cmp, Console(file=buf, width=120, no_color=True))
    text = buf.getvalue()
    assert text.index("c=0") < text.index("c=1\n")  # the regression first
    assert text.count("[1] noisy") == 1 and f"[{TABLE_CONFIGURATIONS}] noisy" in text
    assert f"... 7 more configuration(s) not shown (7 inconclusive)" in text
