"""Results that survive faults and hostile input: each test is a finding of issue 13, on real sweeps.

Sweeps here are tiny (one or two configurations, 8 prompt + 2 generated tokens, 1 repetition).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
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


# --- issue 18: files that stay inside their directory --------------------------------------------------------

PRECIOUS = b"someone else's file\n"


@pytest.fixture
def outside(tmp_path) -> Path:
    """A file outside every results directory, that a planted link points to."""
    path = tmp_path / "outside" / "precious.txt"
    path.parent.mkdir()
    path.write_bytes(PRECIOUS)
    return path


def copy_results(base_dir: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(base_dir, dst, ignore=shutil.ignore_patterns("*.bak", ".ggufprof.lock"))
    return dst


def plant(link: Path, target: Path) -> Path:
    link.parent.mkdir(parents=True, exist_ok=True)
    link.unlink(missing_ok=True)
    link.symlink_to(target)
    return link


def refused_link(r, outside: Path, link: Path) -> None:
    """The command refused with one line naming the link; the file it points to is untouched."""
    msg = one_error(r)
    assert str(link) in msg and "symbolic link" in msg, msg
    assert outside.read_bytes() == PRECIOUS and link.is_symlink()


@pytest.mark.parametrize("name", ["results.csv", "logs/0000-{h}.log", ".ggufprof.lock", "results.jsonl"])
def test_sweep_refuses_a_planted_link_before_measuring(base_dir, tmp_path, outside, name):
    import hashlib

    from ggufprof.measure.grid import GridSpec, expand
    from ggufprof.model.model_info import load_model_info

    out = copy_results(base_dir, tmp_path / "out")
    (rs, _), *_ = expand(load_model_info(fixture_path("llama-gqa")),
                         GridSpec(cache_types=[("f16", "f16")], ctx_sizes=[512], threads=2, n_prompt=8, n_gen=2,
                                  repetitions=1, depths=[0], swa_full=[True], parallel=[1], kv_unified=[False],
                                  flash_attn=["auto"]))
    link = plant(out / name.format(h=hashlib.sha1(rs.id.encode()).hexdigest()[:8]), outside)
    before = sorted(p.name for p in out.rglob("*")) + [".ggufprof.lock"]
    for extra in ([], ["--resume"], ["--recheck"]):
        refused_link(sweep(fixture_path("llama-gqa"), out, "-ct", "f16", *extra), outside, link)
    assert sorted(p.name for p in out.rglob("*")) == sorted(set(before))  # nothing measured, moved or written


def test_a_linked_logs_directory_is_refused(base_dir, tmp_path, outside):
    out = copy_results(base_dir, tmp_path / "out")
    import shutil

    shutil.rmtree(out / "logs")
    plant(out / "logs", outside.parent)
    msg = one_error(sweep(fixture_path("llama-gqa"), out, "-ct", "f16", "--resume"))
    assert "logs" in msg and "symbolic link" in msg
    assert sorted(p.name for p in outside.parent.iterdir()) == ["precious.txt"]


def test_a_lock_file_with_another_name_is_refused(base_dir, tmp_path, outside):
    out = copy_results(base_dir, tmp_path / "out")
    os.link(outside, out / ".ggufprof.lock")  # a hard link: O_NOFOLLOW does not see it, the truncation would
    msg = one_error(sweep(fixture_path("llama-gqa"), out, "-ct", "f16", "--resume"))
    assert "hard link" in msg and outside.read_bytes() == PRECIOUS


@pytest.mark.parametrize("name", ["report.md", "report.html", "report-cache-types.png"])
def test_report_refuses_a_planted_link_and_writes_nothing(base_dir, tmp_path, outside, name):
    out = copy_results(base_dir, tmp_path / "out")
    link = plant(out / name, outside)
    refused_link(runner.invoke(app, ["report", str(out)]), outside, link)
    assert not {"report.md", "report.html"} & {p.name for p in out.iterdir()} - {name}


def test_import_refuses_a_planted_csv_and_never_replaces_a_backup(base_dir, tmp_path, outside):
    data = ROOT / "tests" / "data" / "llama-bench-llama-gqa.jsonl"
    out = copy_results(base_dir, tmp_path / "out")
    before = (out / "results.jsonl").read_bytes()
    link = plant(out / "results.csv", outside)
    refused_link(runner.invoke(app, ["import", str(data), "--out", str(out)]), outside, link)
    assert (out / "results.jsonl").read_bytes() == before
    link.unlink()
    now = int(time.time())  # every backup name of the next seconds is taken by a link
    for t in range(now, now + 30):
        plant(out / f"results.jsonl.{t}.0.bak", outside)
    r = runner.invoke(app, ["import", str(data), "--out", str(out)])
    assert r.exit_code == 0, r.output
    (bak,) = [p for p in out.glob("results.jsonl.*.bak") if not p.is_symlink()]
    assert bak.read_bytes() == before and bak.name.endswith(".1.bak") and outside.read_bytes() == PRECIOUS


@pytest.mark.parametrize("command", ["results", "export", "compare"])
def test_output_files_refuse_links_and_non_files(base_dir, tmp_path, outside, command):
    link = plant(tmp_path / "out.txt", outside)
    flag = {"results": "--csv", "export": "-o", "compare": "-o"}[command]
    args = [command, str(base_dir)] + ([str(base_dir)] if command == "compare" else [])
    refused_link(runner.invoke(app, [*args, flag, str(link)]), outside, link)
    assert "not a regular file" in one_error(runner.invoke(app, [*args, flag, "/dev/null"]))


def test_unwritable_outputs_are_one_line(base_dir, tmp_path):
    """A directory that cannot be written (/proc, even for root), a missing one: one line each, and
    nothing left behind."""
    for args in (["export", str(base_dir), "-o", "/proc/ggufprof.jsonl"],
                 ["compare", str(base_dir), str(base_dir), "-o", "/proc/ggufprof.txt"],
                 ["results", str(base_dir), "--csv", str(tmp_path / "missing" / "r.csv")],
                 ["report", str(base_dir), "--out", "/proc/ggufprof-report"]):
        one_error(runner.invoke(app, args))
    assert not list(tmp_path.rglob("*.tmp"))


def test_a_read_only_results_directory_is_one_line(base_dir, tmp_path):
    """report writes into the results directory by default: when that is read-only (chattr +i, which
    binds root too), one line and exit 2."""
    out = copy_results(base_dir, tmp_path / "ro")
    if os.geteuid() == 0:
        if subprocess.run(["chattr", "+i", str(out)], capture_output=True).returncode != 0:
            pytest.skip("chattr +i is not available here (root ignores file modes)")
    else:
        out.chmod(0o555)
    try:
        msg = one_error(runner.invoke(app, ["report", str(out)]))
        assert "report.html" in msg and ("Operation not permitted" in msg or "Permission denied" in msg)
    finally:
        subprocess.run(["chattr", "-i", str(out)], capture_output=True)
        out.chmod(0o755)


def test_a_full_disk_keeps_the_old_file(base_dir, tmp_path):
    """--output on a file system that fills up half-way: one line, and the file there before is kept
    whole (not a 0-byte file). A 64 KiB tmpfs where this machine lets us mount one."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt)], capture_output=True).returncode:
        pytest.skip("cannot mount a small tmpfs here")
    try:
        old = mnt / "export.jsonl"
        old.write_bytes(b"old export\n")
        (mnt / "filler").write_bytes(b"x" * (60 << 10))
        msg = one_error(runner.invoke(app, ["export", str(base_dir), "-o", str(old)]))
        assert "No space left" in msg and old.read_bytes() == b"old export\n"
        assert sorted(p.name for p in mnt.iterdir()) == ["export.jsonl", "filler"]
    finally:
        subprocess.run(["umount", str(mnt)], capture_output=True)


def test_a_kill_between_the_temporary_file_and_the_replace_keeps_the_old_file(base_dir, tmp_path):
    """store.rewrite killed (SIGKILL) at the moment it would replace results.jsonl: the old file is
    there, whole; the new one never half-exists under its name."""
    out = copy_results(base_dir, tmp_path / "out")
    before = (out / "results.jsonl").read_bytes()
    code = ("import os, signal, sys\n"
            "from pathlib import Path\n"
            "from ggufprof.results import store\n"
            "os.replace = lambda *a: os.kill(os.getpid(), signal.SIGKILL)  # dies where the rename would be\n"
            "path = Path(sys.argv[1])\n"
            "store.rewrite(path, list(store.read_lines(path))[:1])\n")
    p = subprocess.run([sys.executable, "-c", code, str(out / "results.jsonl")], cwd=ROOT, capture_output=True)
    assert p.returncode == -signal.SIGKILL, p.stderr
    assert (out / "results.jsonl").read_bytes() == before
    (tmp,) = out.glob(".results.jsonl.*.tmp")  # the new file, complete, under a name of its own
    assert tmp.read_bytes() == before.splitlines(keepends=True)[0]
    assert len(read_records(out / "results.jsonl")) == 2


def _many_lines(base_dir: Path, dst: Path, n: int) -> Path:
    """A results directory of ``n`` copies of one record: output larger than a pipe holds."""
    dst.mkdir()
    line = (base_dir / "results.jsonl").read_bytes().splitlines(keepends=True)[0]
    (dst / "results.jsonl").write_bytes(line * n)
    return dst


def _shell(cmd: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(["bash", "-c", f"set -o pipefail; {cmd}"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)


def test_a_reader_that_stops_reading_changes_no_exit_code(base_dir, tmp_path):
    """| head -1: the command's own exit code (pipefail), no traceback, nothing on stderr; a gate's
    verdict (compare exit 1) survives the broken pipe too."""
    many = _many_lines(base_dir, tmp_path / "many", 3000)
    py = f"{sys.executable} -m ggufprof"
    for cmd in (f"{py} results {many} | head -1", f"{py} export {many} | head -1"):
        p = _shell(cmd)
        assert p.returncode == 0 and p.stderr == "" and len(p.stdout.splitlines()) == 1, (cmd, p.stderr)
    new = copy_results(base_dir, tmp_path / "new")
    lines = (new / "results.jsonl").read_text().splitlines()
    d = json.loads(lines[0])
    d["predicted"]["kv_bytes"] += 34  # one q8_0 block more: a regression
    (new / "results.jsonl").write_text("\n".join([json.dumps(d)] + lines[1:]) + "\n")
    p = _shell(f"{py} compare {base_dir} {new} --format md | head -1")
    assert p.returncode == 1 and "Traceback" not in p.stderr and "Exception ignored" not in p.stderr, p.stderr


def test_closed_or_full_standard_output_is_one_line(base_dir):
    py = f"{sys.executable} -m ggufprof"
    for cmd in (f"{py} results {base_dir} >&-", f"{py} results {base_dir} > /dev/full",
                f"{py} export {base_dir} > /dev/full"):
        p = _shell(cmd)
        lines = p.stderr.strip().splitlines()
        assert p.returncode == 2 and len(lines) == 1 and lines[0].startswith("Error: "), (cmd, p.stderr)
        assert "standard output" in lines[0]


def test_results_say_which_lines_they_skip_and_show_no_escapes(base_dir, tmp_path):
    out = copy_results(base_dir, tmp_path / "out")
    first, second = (out / "results.jsonl").read_text().splitlines()
    d = json.loads(first)
    d["settings"]["cache_type_k"] = "\x1b[2Jq8_0"
    (out / "results.jsonl").write_text(json.dumps(d) + "\n" + second[:100])
    r = runner.invoke(app, ["results", str(out)])
    assert r.exit_code == 0, r.output
    assert "\x1b" not in r.stdout and "?[2Jq8_0" in r.stdout
    assert f"{out / 'results.jsonl'}:2: a torn last line" in r.stderr


def test_resume_and_recheck_keep_lines_they_cannot_read(base_dir, tmp_path):
    """A record of a newer schema and a torn line are kept, byte for byte, by the rewrites of
    --recheck and --resume (which reruns a failed configuration), and each says so."""
    out = copy_results(base_dir, tmp_path / "out")
    first, second = (out / "results.jsonl").read_text().splitlines()
    newer = json.dumps({**json.loads(second), "schema_version": 3, "something_new": {"x": 1}})
    failed = json.loads(first)
    failed.update(status="failed", reason="worker killed by SIGKILL")
    (out / "results.jsonl").write_text("\n".join([json.dumps(failed), newer, second[:80]]))
    r = sweep(fixture_path("llama-gqa"), out, "-ct", "f16,q8_0", "--recheck")
    assert r.exit_code == 0, r.output
    assert "newer ggufprof" in r.stderr and "2 line(s) this ggufprof cannot read were kept" in r.stderr
    lines = (out / "results.jsonl").read_text().splitlines()
    assert lines[1:] == [newer, second[:80]]
    r = sweep(fixture_path("llama-gqa"), out, "-ct", "f16,q8_0", "--resume")
    assert r.exit_code == 0, r.output
    assert "kept as they are" in r.stderr
    lines = (out / "results.jsonl").read_text().splitlines()
    assert lines[:2] == [newer, second[:80]] and len(lines) == 4  # + the rerun f16 and q8_0 measured again
    assert sorted(x.status for x in read_records(out / "results.jsonl")) == ["ok", "ok"]


def test_import_refuses_a_newer_export_and_wrong_types(base_dir, tmp_path):
    export = tmp_path / "e.jsonl"
    assert runner.invoke(app, ["export", str(base_dir), "-o", str(export)]).exit_code == 0
    good = [json.loads(x) for x in export.read_text().splitlines()]

    def bad(change) -> str:
        lines = json.loads(json.dumps(good))
        change(lines[1])
        path = tmp_path / "bad.jsonl"
        path.write_text("".join(json.dumps(x) + "\n" for x in lines))
        msg = one_error(runner.invoke(app, ["import", str(path), "--out", str(tmp_path / "imp")]))
        assert "test 2" in msg and not (tmp_path / "imp" / "results.jsonl").exists()
        return msg

    assert "settings.kv_cache_dtype" in bad(lambda x: x["ggufprof"]["settings"].update(kv_cache_dtype="q8"))
    assert "samples_ns[0]" in bad(lambda x: x.update(samples_ns=["12"]))
    assert "n_prompt" in bad(lambda x: x.update(n_prompt="512"))
    assert "samples_ts[1]" in bad(lambda x: x["samples_ts"].append(0))
    assert "test_time" in bad(lambda x: x.update(test_time="yesterday"))
    (tmp_path / "latin1.jsonl").write_bytes(b'{"x": "\xe9"}\n')
    one_error(runner.invoke(app, ["import", str(tmp_path / "latin1.jsonl"), "--out", str(tmp_path / "imp")]))
