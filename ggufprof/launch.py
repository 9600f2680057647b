"""The ``ggufprof`` command's entry point: llama.cpp's probe worker started from the raw arguments,
then the command line.

Importing the command line (typer, click, rich, the library) takes ~0.15 s before a command runs;
``estimate --total`` and ``fit`` then wait for llama.cpp's dry run in a worker process whose own
start (Python, llama.cpp's libraries, a GPU backend's initialisation: most of a second on a CUDA
host) comes first. Started here, from a look at the arguments, the worker starts while those
imports run (scripts/bench_estimate_speed.py measures the whole command).

The look is a head start only, never a decision: the command prestarts and takes its worker as it
would without it (measure/workers.py: ``take`` hands over the early worker only if it runs in the
environment a new one would get, ``--llama-lib`` applied), and an early worker nobody takes is
killed at exit. So a wrong guess costs a process, never a wrong answer; with ``--help`` or a
``--llama-lib`` that names no build there is no head start, and the command says what is wrong.
"""

from __future__ import annotations

import sys
from pathlib import Path

from .measure.workers import SEARCH_PROBES

# command -> (the flag that makes it ask the probe, None: always; how many probe workers it uses)
PROBING = {"estimate": ("--total", 1), "fit": (None, SEARCH_PROBES)}
LLAMA_LIB = "--llama-lib"


def head_start(argv: list[str]) -> tuple[int, str | None]:
    """How many probe workers these arguments (without the program name) will use (0: the command
    asks no dry run), and the ``--llama-lib`` they give (its last value, as the option parser takes it)."""
    if not argv or argv[0] not in PROBING or any(a in ("--help", "-h") for a in argv):
        return 0, None
    flag, count = PROBING[argv[0]]
    lib = None
    for i, a in enumerate(argv):
        if a == LLAMA_LIB and i + 1 < len(argv):
            lib = argv[i + 1]
        elif a.startswith(LLAMA_LIB + "="):
            lib = a.split("=", 1)[1]
    return (count if flag is None or flag in argv[1:] else 0), lib


def main() -> None:
    count, lib = head_start(sys.argv[1:])
    if count:
        from .errors import GgufprofError
        from .measure.workers import PROBE, llama_lib_path, prestart

        try:
            prestart(PROBE, None if lib is None else llama_lib_path(Path(lib)), count)
        except GgufprofError:
            pass  # no build there: the command itself says so
    from .cli import main as cli_main

    cli_main()
