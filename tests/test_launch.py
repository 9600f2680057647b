"""The entry point's head start: llama.cpp's probe worker started from the raw arguments, and
taken by the command only when it runs the build the command would start one on."""

from __future__ import annotations

import subprocess
import sys

import pytest

from ggufprof.launch import head_start
from ggufprof.measure import workers
from ggufprof.measure.workers import LIB_ENV, PROBE, llama_lib_path, prestart, take, use_llama_lib

from .archs_suite import llama_tools_bin
from .conftest import ROOT, fixture_path


@pytest.mark.parametrize("argv,expected", [
    (["estimate", "m.gguf", "--total"], (1, None)),
    (["estimate", "m.gguf", "--total", "-ngl", "12", "-ncmoe", "4"], (1, None)),  # one placement: one worker
    (["estimate", "m.gguf", "-c", "4096", "-ngl", "3"], (0, None)),  # no dry run without --total
    (["fit", "m.gguf", "--vram", "4GiB"], (2, None)),  # a search also asks the host's buffer types
    (["fit", "m.gguf", "--llama-lib", "/a", "--llama-lib=/b"], (2, "/b")),  # the last one, as the parser takes it
    (["fit", "m.gguf", "--llama-lib", "/a"], (2, "/a")),
    (["fit", "m.gguf", "--help"], (0, None)),
    (["sweep", "m.gguf", "--total"], (0, None)),  # runs its own workers
    ([], (0, None)),
])
def test_head_start_reads_the_arguments(argv, expected):
    assert head_start(argv) == expected


def test_the_early_worker_is_taken_only_on_the_build_the_command_runs(monkeypatch):
    """Started on --llama-lib's build before the CLI applies it: taken once it is applied (same
    process); started on the wheel's libraries: not taken by a command on another build."""
    tools = llama_tools_bin()
    if not (tools / "libllama.so").exists():
        pytest.fail(f"{tools}/libllama.so is missing: run make archs (scripts/build_llama_tools.sh) first")
    monkeypatch.delenv(LIB_ENV, raising=False)
    prestart(PROBE, llama_lib_path(tools))
    (early,) = workers._started[PROBE]
    assert early.env[LIB_ENV] == str(tools.resolve())
    use_llama_lib(tools)  # what the CLI does with --llama-lib
    w = take(PROBE)
    assert w is early
    w.close(kill=True)

    monkeypatch.delenv(LIB_ENV)
    prestart(PROBE)  # on the wheel's libraries
    (early,) = workers._started[PROBE]
    use_llama_lib(tools)
    w = take(PROBE)
    assert w is not early and early.proc.wait(timeout=10) == -9  # a new worker; the early one killed (SIGKILL)
    w.close(kill=True)


def test_the_command_answers_the_same_with_its_head_start():
    """``python -m ggufprof`` (the entry point, head start and all) prints what the CLI prints."""
    args = ["estimate", str(fixture_path("llama-gqa")), "-c", "512", "--total", "--json"]
    fast = subprocess.run([sys.executable, "-m", "ggufprof", *args], capture_output=True, text=True, cwd=ROOT)
    plain = subprocess.run([sys.executable, "-c", "from ggufprof.cli import main; main()", *args],
                           capture_output=True, text=True, cwd=ROOT)
    assert fast.returncode == plain.returncode == 0, fast.stderr + plain.stderr
    assert fast.stdout == plain.stdout and '"devices"' in fast.stdout
