"""``ggufprof quality`` and ``sweep --quality`` on the fixtures, in real llama.cpp (no mocks).

The fixtures have random weights, so their next-token distributions are close to uniform (PPL ~380
over 384 tokens): KL divergences are small (1e-7 for q8_0, 1e-4 for q4_0) but not zero, and the most
likely token is a near-tie that a quantized cache flips easily. That is enough for the properties
that must hold on any model: f16 against f16 is exactly 0 with 100 % top-1 (the same logits
decoded in two contexts), and q4_0 > q8_0 > 0.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from ggufprof.cli import app
from ggufprof.present.report import write_report
from ggufprof.results.store import load_records

from .conftest import ROOT, fixture_path

runner = CliRunner(mix_stderr=False)
PAIRS = "f16,q8_0,q4_0,q8_0:q4_0"


def quality(*args):
    return runner.invoke(app, ["quality", *[str(a) for a in args]])


@pytest.fixture(scope="module")
def measured():
    """--json of every fixture: {name: {(k, v): result}}."""
    out = {}
    for name in ("llama-gqa", "gemma3-swa", "deci-varkv"):
        r = quality(fixture_path(name), "-ct", PAIRS, "--quality-ctx", 256, "--chunks", 3, "-t", 2, "--json")
        assert r.exit_code == 0, r.output
        out[name] = {(q["cache_type_k"], q["cache_type_v"]): q for q in json.loads(r.stdout)}
    return out


@pytest.mark.parametrize("name", ["llama-gqa", "gemma3-swa", "deci-varkv"])
def test_f16_against_f16_is_exactly_zero(measured, name):
    q = measured[name][("f16", "f16")]
    assert q["kld_mean"] == 0.0 and q["kld_max"] == 0.0 and q["kld_min"] == 0.0 and q["kld_p99"] == 0.0
    assert q["top1_agreement"] == 1.0
    assert q["ppl"] == q["ppl_base"] and q["delta_ppl"] == 0.0


@pytest.mark.parametrize("name", ["llama-gqa", "gemma3-swa", "deci-varkv"])
def test_q4_0_loses_more_than_q8_0(measured, name):
    m = measured[name]
    q8, q4 = m[("q8_0", "q8_0")], m[("q4_0", "q4_0")]
    assert q4["kld_mean"] > q8["kld_mean"] > 0
    assert q4["kld_p99"] > q8["kld_p99"] and q4["top1_agreement"] < 1.0
    assert 0 < m[("q8_0", "q4_0")]["kld_mean"]


def test_json_fields_and_counts(measured):
    m = measured["llama-gqa"]
    assert list(m) == [("f16", "f16"), ("q8_0", "q8_0"), ("q4_0", "q4_0"), ("q8_0", "q4_0")]
    for q in m.values():
        for key in ("cache_type_k", "cache_type_v", "kld_mean", "kld_median", "kld_p99", "kld_max",
                    "top1_agreement", "ppl", "ppl_base", "delta_ppl", "by_position", "text"):
            assert key in q
        assert 0 <= q["top1_agreement"] <= 1
        assert q["n_ctx"] == 256 and q["n_chunks"] == 3 and q["n_scored"] == 3 * (256 - 1 - 128)
        assert sum(b["n"] for b in q["by_position"]) == q["n_scored"]
        assert q["by_position"][0]["first"] == 128 and q["by_position"][-1]["last"] == 254
        t = q["text"]
        assert t["source"].startswith("packaged") and t["n_tokens_used"] == 3 * 256 <= t["n_tokens"] < 30_000
        assert not t["complete"] and t["bytes"] < t["file_bytes"]  # --chunks 3: only the prefix they need
    assert len({q["ppl_base"] for q in m.values()}) == 1  # one baseline for every pair


def test_table_and_recommendation():
    r = quality(fixture_path("gemma3-swa"), "-ct", "f16,q4_0", "-c", 256, "--chunks", 2, "-t", 2)
    assert r.exit_code == 0, r.output
    out = r.stdout
    assert "q4_0/q4_0" in out and "mean KLD" in out and "top-1" in out
    assert "tiny gemma3 iSWA: within mean KLD ≤ 0.001 and top-1 ≥ 99%: f16/f16" in out.replace("\n", " ")
    assert "by position" in out


def test_text_file_and_chunk_cap(tmp_path):
    text = tmp_path / "t.txt"
    text.write_text("the cache holds keys and values for every token " * 15, encoding="utf-8")
    r = quality(fixture_path("llama-gqa"), "-ct", "q8_0", "--text", text, "-c", 128, "--chunks", 99, "-t", 2, "--json")
    assert r.exit_code == 0, r.output
    (q,) = json.loads(r.stdout)
    assert q["text"]["source"] == str(text)
    assert q["n_chunks"] == q["text"]["n_tokens"] // 128  # --chunks beyond the text: all it holds


@pytest.mark.parametrize("args,msg", [
    (["-c", "8192"], "beyond the model's training context (4096)"),
    (["-c", "8"], "--quality-ctx must be >= 16"),
    (["--chunks", "0"], "--chunks must be >= 1"),
    (["-ct", "q4_0", "-fa", "off"], "requires flash attention"),
    (["-ct", "q6_k"], "unsupported cache type 'q6_k'"),
    (["--text", "{tmp}/absent.txt"], "No such file"),
    (["--text", "{tmp}/latin1.txt"], "not UTF-8"),
    (["--text", "{tmp}/short.txt", "-c", "256"], "needs at least 512"),
])
def test_bad_input_one_line_exit_2(tmp_path, args, msg):
    (tmp_path / "latin1.txt").write_bytes("caf\xe9 " .encode("latin-1") * 100)
    (tmp_path / "short.txt").write_text("a few words only", encoding="utf-8")
    r = quality(fixture_path("llama-gqa"), "-t", 2, *[a.format(tmp=tmp_path) for a in args])
    assert r.exit_code == 2, r.output
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and msg in lines[0], r.stderr
    assert "Traceback" not in r.output


@pytest.mark.parametrize("kind", ["fifo", "directory", "/dev/zero"])
def test_text_that_is_not_a_regular_file_is_refused_at_once(tmp_path, kind):
    """A FIFO (nothing writing to it), a directory or a device: one Error line, exit 2, before any
    model is loaded; never a read that blocks or does not end. Run as a process with a deadline, so
    a regression fails instead of hanging the suite."""
    import os

    path = {"fifo": tmp_path / "fifo", "directory": tmp_path, "/dev/zero": "/dev/zero"}[kind]
    if kind == "fifo":
        os.mkfifo(path)
    out = subprocess.run([sys.executable, "-m", "ggufprof", "quality", str(fixture_path("llama-gqa")), "--text",
                          str(path), "-t", "2", "--timeout", "5"], capture_output=True, text=True, cwd=ROOT,
                         timeout=120)
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 2 and len(lines) == 1 and lines[0].startswith(f"Error: --text {path}: "), out.stderr
    assert {"fifo": "a FIFO", "directory": "a directory", "/dev/zero": "a device"}[kind] in lines[0]
    assert "must be a regular file" in lines[0] and not out.stdout


def test_text_over_the_size_limit_is_refused(tmp_path):
    from ggufprof.results.quality import MAX_TEXT_BYTES

    big = tmp_path / "big.txt"
    with open(big, "wb") as f:
        f.truncate(MAX_TEXT_BYTES + 1)  # sparse: no disk used
    r = quality(fixture_path("llama-gqa"), "--text", big, "-t", 2)
    assert r.exit_code == 2 and "over the 256 MiB limit" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_a_long_text_costs_what_its_chunks_need(tmp_path):
    """--chunks 1 of a 48 MB text reads and tokenizes a prefix of a few KB (the counters in the
    result), and the worker's peak RSS is that of the same run over a short text (before: the whole
    text was tokenized, 1.68 GiB of peak RSS for 50 MB)."""
    line = "the cache holds keys and values for every token of the window\n"
    short, long_ = tmp_path / "short.txt", tmp_path / "long.txt"
    short.write_text(line * 12, encoding="utf-8")  # read whole: shorter than the first prefix
    long_.write_text(line * (48_000_000 // len(line)), encoding="utf-8")
    runs = {}
    for name, path in (("short", short), ("long", long_)):
        r = quality(fixture_path("llama-gqa"), "-ct", "f16", "--text", path, "-c", 64, "--chunks", 1, "-t", 2, "--json")
        assert r.exit_code == 0, r.output
        (runs[name],) = json.loads(r.stdout)
    t = runs["long"]["text"]
    assert t["file_bytes"] > 47_000_000 and not t["complete"] and t["bytes"] < 4096
    assert 128 <= t["n_tokens"] < 2048 and t["n_tokens_used"] == 64  # two chunks' worth are required, one used
    assert runs["short"]["text"]["complete"] and runs["short"]["text"]["bytes"] == short.stat().st_size
    assert runs["long"]["run"]["peak_rss"] - runs["short"]["run"]["peak_rss"] < 16 << 20
    assert runs["long"]["kld_mean"] == runs["short"]["kld_mean"] == 0  # same first 64 tokens, f16 against f16


def test_measurement_runs_in_a_worker_process():
    """The CLI process never loads llama.cpp: the quality worker does."""
    code = ("import sys; from typer.testing import CliRunner; from ggufprof.cli import app; "
            f"r = CliRunner().invoke(app, ['quality', {str(fixture_path('llama-gqa'))!r}, '-ct', 'q8_0', '-c', '64', "
            "'--chunks', '2', '-t', '2', '--json']); assert r.exit_code == 0, r.output; "
            "print('llama_cpp' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip().splitlines()[-1] == "False"


@pytest.fixture(scope="module")
def quality_sweep(tmp_path_factory):
    d = tmp_path_factory.mktemp("sweep-quality")
    r = runner.invoke(app, ["sweep", str(fixture_path("llama-gqa")), "--out", str(d), "-ct", "f16,q8_0,q4_0",
                            "-c", "512,1024", "-d", "0", "-p", "16", "-n", "4", "-r", "2", "-t", "2", "--quality",
                            "--quality-ctx", "128", "--chunks", "2"])
    assert r.exit_code == 0, r.output
    return d


def test_sweep_records_carry_quality(quality_sweep):
    recs = load_records(quality_sweep)
    assert len(recs) == 6 and all(r.status == "ok" for r in recs)
    by = {(r.settings["cache_type_k"], r.settings["ctx_size"]): r.quality for r in recs}
    assert by[("f16", 512)]["kld_mean"] == 0.0
    assert by[("q4_0", 512)]["kld_mean"] > by[("q8_0", 512)]["kld_mean"] > 0
    assert by[("q8_0", 512)] == by[("q8_0", 1024)]  # one measurement per cache type, not per context size
    assert all(r.schema_version == 2 for r in recs)
    assert (quality_sweep / "logs" / "quality-00.log").stat().st_size > 0


def test_sweep_quality_flags_need_quality(tmp_path):
    r = runner.invoke(app, ["sweep", str(fixture_path("llama-gqa")), "--out", str(tmp_path / "o"), "--chunks", "2"])
    assert r.exit_code == 2 and "add --quality" in r.stderr


def test_report_shows_quality_and_cache_type_chart(quality_sweep, tmp_path):
    paths = write_report([quality_sweep], tmp_path)
    assert "png:cache-types" in paths
    html = paths["html"].read_text(encoding="utf-8")
    assert "<th>KLD</th>" in html and "<th>top-1</th>" in html and "<th>Δppl</th>" in html
    assert "Recommendation" in html and "Within mean KLD ≤ 0.001 and top-1 ≥ 99%" in html
    md = paths["md"].read_text(encoding="utf-8")
    assert "| KLD | top-1 | Δppl |" in md and "report-cache-types.png" in md


def test_cache_type_chart_without_quality(sweep_dirs, tmp_path):
    """A sweep over one depth and one context size still gets its chart by cache type."""
    paths = write_report([sweep_dirs["gemma3-swa"]], tmp_path)
    assert "png:cache-types" in paths
    html = paths["html"].read_text(encoding="utf-8")
    assert "no quality measured" in html and "<th>KLD</th>" not in html


def _copy(src, dst, change):
    dst.mkdir()
    lines = [json.loads(ln) for ln in (src / "results.jsonl").read_text().splitlines()]
    for d in lines:
        change(d)
    (dst / "results.jsonl").write_text("".join(json.dumps(d) + "\n" for d in lines))
    return dst


def test_compare_flags_a_kld_increase(quality_sweep, tmp_path):
    def worse(d):
        if d["settings"]["cache_type_k"] == "q4_0":
            d["quality"]["kld_mean"] += 0.01

    new = _copy(quality_sweep, tmp_path / "new", worse)
    r = runner.invoke(app, ["compare", str(quality_sweep), str(new), "--max-tps-drop", "1000%", "-f", "json"])
    assert r.exit_code == 1, r.output
    regs = json.loads(r.stdout)["regressions"]
    assert {x["metric"] for x in regs} == {"kld_mean"} and len(regs) == 2
    r = runner.invoke(app, ["compare", str(quality_sweep), str(new), "--max-tps-drop", "1000%",
                            "--max-kld-increase", "0.02", "--allow-noisy"])
    assert r.exit_code == 0, r.output


def test_v1_records_still_load_report_and_compare(sweep_dirs, tmp_path):
    def v1(d):
        d["schema_version"] = 1
        d.pop("quality", None)

    old = _copy(sweep_dirs["llama-gqa"], tmp_path / "v1", v1)
    assert '"schema_version": 1' in (old / "results.jsonl").read_text()
    recs = load_records(old)
    assert len(recs) == 12 and all(r.quality is None and r.schema_version == 2 for r in recs)
    assert write_report([old], tmp_path / "report")["html"].exists()
    r = runner.invoke(app, ["compare", str(old), str(sweep_dirs["llama-gqa"]), "--max-tps-drop", "1000%",
                            "--allow-noisy"])
    assert r.exit_code == 0, r.output


def test_check_max_kld(tmp_path):
    toml = tmp_path / "deploy.toml"
    toml.write_text(f"""\
[[deployment]]
name = "q4"
model = "{fixture_path('llama-gqa')}"
ctx_size = 512
cache_type_k = "q4_0"
cache_type_v = "q4_0"
threads = 2
n_prompt = 16
n_gen = 4
repetitions = 2
quality_ctx = 128
quality_chunks = 2
[deployment.limits]
max_kld = 0.00001
""")
    r = runner.invoke(app, ["check", str(toml)])
    assert r.exit_code == 1, r.output
    assert "max_kld" in r.stdout and "fail" in r.stdout and "mean KLD vs f16/f16" in r.stdout
    toml.write_text(toml.read_text().replace("max_kld = 0.00001", "max_kld = 0.1"))
    r = runner.invoke(app, ["check", str(toml)])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["check", str(toml), "--estimate-only"])
    assert r.exit_code == 0 and "not checked" in r.stdout
    toml.write_text(toml.read_text().replace("max_kld = 0.1", "max_kld = -1"))
    r = runner.invoke(app, ["check", str(toml)])
    assert r.exit_code == 2 and "limits.max_kld: expected a mean KL divergence" in r.stderr
    toml.write_text(toml.read_text().replace("max_kld = -1\n", "max_rss = '1 GiB'\n"))
    r = runner.invoke(app, ["check", str(toml)])
    assert r.exit_code == 2 and "quality_ctx: only used to measure limits.max_kld" in r.stderr


def test_a_failed_quality_measurement_is_reported_not_hidden(quality_sweep, tmp_path):
    def failed(d):
        if d["settings"]["cache_type_k"] == "q4_0":
            d["quality"] = {"error": "the quality worker failed: worker killed by SIGKILL"}

    new = _copy(quality_sweep, tmp_path / "failed", failed)
    html = write_report([new], tmp_path / "rep")["html"].read_text(encoding="utf-8")
    assert "The quality measurement failed for some configurations" in html
    r = runner.invoke(app, ["compare", str(quality_sweep), str(new), "--max-tps-drop", "1000%", "-f", "json"])
    rows = [x for x in json.loads(r.stdout)["missing"] if x.get("metric") == "kld_mean"]
    assert len(rows) == 2 and "SIGKILL" in rows[0]["note"]


@pytest.mark.parametrize("how", ["error", "absent", "other_chunks"])
def test_a_lost_quality_block_fails_the_gate(quality_sweep, tmp_path, how):
    """Quality measured in the baseline must be compared in the new results: a block that is an error
    (the worker was killed), absent, or measured over other chunks (KLD 0.5 against 0.004 is not a
    comparison) fails the gate (it was listed as not compared, exit 0); --allow-missing accepts it."""
    def lose(d):
        if d["settings"]["cache_type_k"] != "q8_0":
            return
        if how == "error":
            d["quality"] = {"error": "the quality worker failed: worker killed by SIGKILL"}
        elif how == "absent":
            d["quality"] = None
        else:
            d["quality"].update(n_chunks=d["quality"]["n_chunks"] + 1, kld_mean=0.5)

    new = _copy(quality_sweep, tmp_path / "new", lose)
    args = ["compare", str(quality_sweep), str(new), "--max-tps-drop", "1000%", "--allow-noisy"]
    r = runner.invoke(app, args + ["-f", "json"])
    assert r.exit_code == 1, r.output
    d = json.loads(r.stdout)
    q8 = {rec.id for rec in load_records(quality_sweep) if rec.settings["cache_type_k"] == "q8_0"}
    assert {x["id"] for x in d["missing"]} == q8 and {x["metric"] for x in d["missing"]} == {"kld_mean"}
    assert not d["regressions"] and "metric(s) compared in the baseline are missing" in d["gate_failures"][0]
    assert runner.invoke(app, args + ["--allow-missing"]).exit_code == 0


def test_sweep_quality_failure_exits_1_and_says_why(tmp_path):
    """A quality run that fails (here a text too short for two chunks, found only once the model has
    tokenized it) exits 1 with one line per failed group (flash attention on and off are two quality
    runs), instead of exit 0 with the error hidden in the records."""
    text = tmp_path / "short.txt"
    text.write_text("A text far too short for two chunks of 128 tokens.")
    r = runner.invoke(app, ["sweep", str(fixture_path("llama-gqa")), "--out", str(tmp_path / "o"), "-ct", "f16",
                            "-c", "512", "-d", "0", "-fa", "on,off", "-p", "16", "-n", "4", "-r", "2", "-t", "2", "--quality",
                            "--quality-ctx", "128", "--text", str(text)])
    assert r.exit_code == 1, r.output
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("quality not measured for f16/f16")]
    assert len(lines) == 2, r.stderr
    assert "flash attention on" in lines[0] and "flash attention off" in lines[1]
    assert all("needs at least 256" in ln for ln in lines)
    recs = load_records(tmp_path / "o")
    assert len(recs) == 2 and all(rec.status == "ok" and "error" in rec.quality for rec in recs)
