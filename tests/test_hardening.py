"""Results that survive faults and hostile input: each test is a finding of issue 13, on real sweeps.

Sweeps here are tiny (one or two configurations, 8 prompt + 2 generated tokens, 1 repetition).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tracemalloc
from pathlib import Path

import psutil
import pytest
from typer.testing import CliRunner

from ggufprof.cli import app
from ggufprof.results.store import ResultsLock, read_records

from .conftest import HANG_GUARD_S, ROOT, fixture_path, living, wait_until

runner = CliRunner(mix_stderr=False)
TINY = ["-p", "8", "-n", "2", "-r", "1", "-c", "512", "-d", "0", "-t", "2"]


def sweep(model: Path, out: Path, *args: str):
    return runner.invoke(app, ["sweep", str(model), "--out", str(out), *TINY, *args])


def one_error(r) -> str:
    assert r.exit_code == 2, r.output
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and "Traceback" not in r.output, r.stderr
    return lines[0]


@pytest.fixture(scope="module")
def other_model(tmp_path_factory) -> Path:
    """llama-gqa's shape with other weights (another sha256) and a hostile name: markup, a newline,
    an HTML tag and a terminal escape sequence."""
    sys.path.insert(0, str(ROOT / "scripts"))
    from make_fixtures import make_llama_like

    path = tmp_path_factory.mktemp("models") / "evil.gguf"
    make_llama_like(path, "llama", "evil [/x] name\n# <script>x</script> \x1b[31mred", 2, seed=99)
    return path


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("base")
    r = sweep(fixture_path("llama-gqa"), out, "-ct", "f16,q8_0")
    assert r.exit_code == 0, r.output
    return out


def test_resume_and_recheck_refuse_another_model(base_dir, other_model):
    for extra in (["--resume"], ["--recheck"]):
        msg = one_error(sweep(other_model, base_dir, "-ct", "f16,q8_0", *extra))
        assert "another model" in msg and "sha256" in msg


def test_recheck_keeps_a_backup_and_ignores_a_log_that_is_not_one(base_dir, tmp_path):
    import shutil

    out = tmp_path / "copy"
    shutil.copytree(base_dir, out)
    lines = (out / "results.jsonl").read_text().splitlines()
    d = json.loads(lines[0])
    d["measured"]["log_file"] = "/dev/zero"
    (out / "results.jsonl").write_text("\n".join([json.dumps(d)] + lines[1:]) + "\n")
    r = sweep(fixture_path("llama-gqa"), out, "-ct", "f16,q8_0", "--recheck")
    assert r.exit_code == 0, r.output
    assert "is not a log file" in r.stderr
    assert len(list(out.glob("results.jsonl.*.bak"))) == 1
    assert len(read_records(out / "results.jsonl")) == 2


def test_resume_reruns_a_torn_line_and_failed_configurations(base_dir, tmp_path):
    import shutil

    out = tmp_path / "copy"
    shutil.copytree(base_dir, out)
    first, second = (out / "results.jsonl").read_text().splitlines()
    failed = json.loads(first)
    failed.update(status="failed", reason="worker killed by SIGKILL")
    (out / "results.jsonl").write_text(json.dumps(failed) + "\n" + second[: len(second) // 2])
    r = sweep(fixture_path("llama-gqa"), out, "-ct", "f16,q8_0", "--resume", "--no-retry-failed")
    assert r.exit_code == 1 and "torn" in r.stderr  # the failed one is kept (exit 1), the torn one rerun
    recs = read_records(out / "results.jsonl")
    assert sorted(x.status for x in recs) == ["failed", "ok"]
    r = sweep(fixture_path("llama-gqa"), out, "-ct", "f16,q8_0", "--resume")
    assert r.exit_code == 0, r.output
    assert [x.status for x in read_records(out / "results.jsonl")] == ["ok", "ok"]
    assert (out / "results.csv").read_text().count("\n") == 3


def test_second_writer_refused_and_results_not_rotated(base_dir):
    before = (base_dir / "results.jsonl").read_bytes()
    with ResultsLock(base_dir):
        msg = one_error(sweep(fixture_path("llama-gqa"), base_dir, "-ct", "f16"))
    assert "another ggufprof sweep" in msg and str(os.getpid()) in msg
    assert (base_dir / "results.jsonl").read_bytes() == before


def test_backups_never_collide(base_dir, tmp_path):
    data = ROOT / "tests" / "data" / "llama-bench-llama-gqa.jsonl"
    for _ in range(3):
        assert runner.invoke(app, ["import", str(data), "--out", str(tmp_path)]).exit_code == 0
    assert len(list(tmp_path.glob("results.jsonl.*.bak"))) == 2


def test_outputs_never_overwrite_inputs(base_dir):
    before = (base_dir / "results.jsonl").read_bytes()
    for args in (["export", str(base_dir), "-o", str(base_dir / "results.jsonl")],
                 ["results", str(base_dir), "--csv", str(base_dir / "results.jsonl")]):
        assert "is an input of this command" in one_error(runner.invoke(app, args))
    assert (base_dir / "results.jsonl").read_bytes() == before


def test_unwritable_destinations_are_one_line(base_dir, tmp_path):
    (tmp_path / "file").write_text("x")
    one_error(runner.invoke(app, ["report", str(base_dir), "--out", str(tmp_path / "file" / "sub")]))
    one_error(runner.invoke(app, ["export", str(base_dir), "-o", str(tmp_path / "missing" / "x.jsonl")]))
    one_error(sweep(fixture_path("llama-gqa"), tmp_path / "file" / "out"))


def test_sigterm_keeps_results_and_leaves_no_worker(tmp_path):
    """SIGTERM is handled like Ctrl-C: what was measured stays, results.csv is written, the worker dies."""
    cmd = [sys.executable, "-m", "ggufprof", "sweep", str(fixture_path("llama-gqa")), "--out", str(tmp_path),
           "-ct", "f16,q8_0,q4_0,q5_0,q5_1,iq4_nl", "-p", "256", "-n", "64", "-r", "3", "-c", "1024", "-d", "0", "-t", "2"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    sweep_proc, results = psutil.Process(proc.pid), tmp_path / "results.jsonl"

    def later_worker() -> list[psutil.Process]:
        """A worker running after the first record was written: each configuration's worker has
        exited and been reaped before its record is appended, so this is a later configuration's."""
        if not (results.exists() and results.read_text().count("\n") >= 1):
            return []
        return sweep_proc.children(recursive=True)

    workers = wait_until(later_worker, "a worker of the second configuration")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=HANG_GUARD_S) == 130
    assert (tmp_path / "results.csv").exists()
    n = len(read_records(results))
    assert 1 <= n < 6  # the interrupted configuration has no record
    wait_until(lambda: not living(workers), "the worker to exit")


def test_worker_dies_when_the_sweep_is_killed(tmp_path):
    """SIGKILL gives the sweep no chance to clean up: its worker dies all the same (PR_SET_PDEATHSIG)."""
    cmd = [sys.executable, "-m", "ggufprof", "sweep", str(fixture_path("llama-gqa")), "--out", str(tmp_path),
           "-ct", "f16", "-p", "2048", "-n", "512", "-r", "5", "-c", "4096", "-d", "0", "-t", "1"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    workers = wait_until(lambda: psutil.Process(proc.pid).children(recursive=True), "the sweep's worker")
    proc.kill()
    proc.wait()
    wait_until(lambda: not living(workers), "the orphaned worker to exit")


def test_huge_block_count_is_refused_from_the_header_alone(tmp_path):
    """50 million layers declared in a header of under 400 bytes: refused from the key itself, before
    anything is built per layer -- the Python heap grows by less than one byte per declared layer (one
    list entry per layer would be 8 bytes each, 400 MB)."""
    from .gguf_files import write_header_only

    path = write_header_only(tmp_path / "m.gguf", "llama", block_count=50_000_000, embedding_length=64,
                             context_length=128, attention__head_count=2)
    assert path.stat().st_size < 400
    tracemalloc.start()
    try:
        msg = one_error(runner.invoke(app, ["estimate", str(path)]))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert "block_count is 50000000" in msg and "1 to 512 layers" in msg
    assert peak < 50_000_000, f"{peak:,} bytes allocated to refuse it"


@pytest.mark.parametrize("value", ["12", 0.5, 0])
def test_block_count_of_the_wrong_type(tmp_path, value):
    from .gguf_files import write_header_only

    path = write_header_only(tmp_path / "m.gguf", "llama", block_count=value, embedding_length=64,
                             context_length=128, attention__head_count=2)
    one_error(runner.invoke(app, ["inspect", str(path)]))


def test_hostile_model_name_is_shown_as_text(other_model, tmp_path):
    for args in (["inspect", str(other_model)], ["estimate", str(other_model)]):
        r = runner.invoke(app, args)
        assert r.exit_code == 0, r.output
        assert "evil [/x] name" in r.stdout and "\x1b[31m" not in r.stdout
    out = tmp_path / "out [/b]"
    r = sweep(other_model, out, "-ct", "f16")
    assert r.exit_code == 0, r.output
    assert "evil [/x] name" in r.stdout
    r = runner.invoke(app, ["report", str(out), "--out", str(tmp_path / "rep")])
    assert r.exit_code == 0, r.output
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "<script>" not in md and "&lt;script&gt;" in md
    assert "\n# <" not in md and not any(ln.startswith("# <") or ln.startswith("# &lt;") for ln in md.splitlines())
    html = (tmp_path / "rep" / "report.html").read_text()
    assert "<script>x</script>" not in html


def test_dollar_in_a_host_label_is_not_mathtext(base_dir, tmp_path):
    import shutil

    for host in ("a$b", "c$d$e"):
        d = tmp_path / host
        shutil.copytree(base_dir, d)
        text = (d / "results.jsonl").read_text().replace('"hostname": "', f'"hostname": "{host}')
        (d / "results.jsonl").write_text(text)
    r = runner.invoke(app, ["report", str(tmp_path / "a$b"), str(tmp_path / "c$d$e"), "--out", str(tmp_path / "r")])
    assert r.exit_code == 0, r.output


def test_help_renders_brackets_and_plain_metavars():
    r = runner.invoke(app, ["check", "--help"])
    assert "[[deployment]]" in r.stdout and "[deployment.limits]" in r.stdout
    usage = runner.invoke(app, ["estimate", "--help"]).stdout
    assert "MODEL.gguf" in usage and "{model}" not in usage and "<bool>" not in usage
    assert "``" not in runner.invoke(app, ["results", "--help"]).stdout
