"""Progress on the long commands (quality, fit, speedup): drawn on stderr in a terminal, absent otherwise.

Real commands on the fixtures: once with stderr a pseudo-terminal (python's ``pty``), where the rich
display must show what runs and an ETA; once through pipes and once through typer's CliRunner, where
nothing of it may appear. And the callback itself, through the worker protocol (measure/workers.py).
"""

from __future__ import annotations

import os
import pty
import re
import subprocess
import sys

import pytest
from typer.testing import CliRunner

import ggufprof
from ggufprof.cli import app
from ggufprof.results.quality import quality_settings

from .conftest import ROOT, fixture_path

MODEL = str(fixture_path("llama-gqa"))
COMMANDS = {
    "quality": (["quality", MODEL, "-ct", "q8_0", "-c", "128", "--chunks", "8", "-t", "2"],
                ["quality", r"chunk \d of 8: 128 tokens in 2 contexts", r"\d/8 chunks", "ETA"]),
    "fit": (["fit", MODEL, "--memory", "2GiB", "-ct", "f16,q8_0"], ["fit", r"(f16/f16|q8_0/q8_0): dry run at n_ctx [\d,]+", "ETA"]),
    "speedup": (["speedup", MODEL, "-n", "16,64", "-r", "2", "-t", "2"], ["speedup", r"n=(16|64): (cached|uncached), [\d,]+ tokens evaluated", "ETA"]),
}


def _env() -> dict:
    return {**os.environ, "TERM": "xterm", "COLUMNS": "160", "PYTHONPATH": str(ROOT)}


def run_in_pty(args: list[str]) -> tuple[int, str, str]:
    """(exit code, stdout through a pipe, what was written to stderr, a pseudo-terminal)."""
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "ggufprof", *args], stdout=subprocess.PIPE, stderr=slave,
                            env=_env(), cwd=ROOT)
    os.close(slave)
    seen = b""
    while True:
        try:
            chunk = os.read(master, 1 << 16)
        except OSError:  # EIO: the child closed its end
            break
        if not chunk:
            break
        seen += chunk
    os.close(master)
    out = proc.stdout.read().decode()
    return proc.wait(), out, seen.decode("utf-8", "replace")


@pytest.mark.parametrize("command", list(COMMANDS))
def test_progress_in_a_terminal_and_none_without(command):
    args, words = COMMANDS[command]
    code, out, err = run_in_pty(args)
    assert code == 0, (out, err)
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", err)  # the terminal's escapes out
    for w in words:
        assert re.search(w, plain), (w, plain[-2000:])
    assert "ETA" not in out  # the result on stdout is what it always was
    piped = subprocess.run([sys.executable, "-m", "ggufprof", *args], capture_output=True, text=True, env=_env(),
                           cwd=ROOT)
    assert piped.returncode == 0, piped.stderr
    assert piped.stderr == "" and "ETA" not in piped.stdout
    r = CliRunner(mix_stderr=False).invoke(app, args)
    assert r.exit_code == 0 and r.stderr == "" and "ETA" not in r.stdout


def test_the_worker_tells_each_chunk():
    """The callback the library takes hears of every chunk, from the worker process, in order."""
    heard = []
    qs = quality_settings([("q8_0", "q8_0")], "128", 3, None, 2, 0)
    run = ggufprof.quality(MODEL, qs, progress=lambda *a: heard.append(a))
    assert run["n_chunks"] == 3
    assert [(d, t) for d, t, _ in heard] == [(0, 3), (1, 3), (2, 3)]
    assert heard[-1][2] == "chunk 3 of 3: 128 tokens in 2 contexts"
