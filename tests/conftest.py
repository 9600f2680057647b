"""Shared fixtures: the tiny GGUF models in fixtures/ and real llama.cpp models loaded from them."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import psutil
import pytest

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"
FIXTURE_NAMES = ["llama-gqa", "gemma3-swa", "deci-varkv"]
QUANTIZED_FIXTURES = ["llama-q4_0"]  # weights llama.cpp repacks on this CPU: tests of CPU_REPACK

# Lines a test wants in the run's closing summary (e.g. what llama.cpp itself cannot run).
REPORT_NOTES: list[str] = []


def pytest_terminal_summary(terminalreporter):
    if REPORT_NOTES:
        terminalreporter.section("ggufprof notes")
        for line in REPORT_NOTES:
            terminalreporter.write_line(line)


def fixture_path(name: str) -> Path:
    return FIXTURES / f"{name}.gguf"


T = TypeVar("T")
HANG_GUARD_S = 120.0


def wait_until(condition: Callable[[], T], what: str, timeout: float = HANG_GUARD_S) -> T:
    """Poll ``condition`` until it returns something truthy, and return that. Tests wait for the
    event itself, never for a guessed time; ``timeout`` only keeps a broken run from hanging (the
    test fails naming ``what``) and is no speed limit: a loaded machine only waits longer."""
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() > deadline:
            pytest.fail(f"still waiting for {what} after {timeout:g} s")
        time.sleep(0.01)
    return value


def living(procs: list[psutil.Process]) -> list[psutil.Process]:
    """The processes still running. A zombie (dead, not yet reaped by whoever adopted it) is not:
    it holds no memory and runs nothing."""
    alive = []
    for p in procs:
        try:
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                alive.append(p)
        except psutil.NoSuchProcess:
            pass
    return alive
def make_fixtures_module():
    """scripts/make_fixtures.py as a module (its writers: tests build variants of the fixtures)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_fixtures", ROOT / "scripts" / "make_fixtures.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="session")
def llama_models():
    """One real llama.cpp model per fixture, loaded once for the session (contexts are cheap)."""
    from ggufprof.measure.llama_ctx import LlamaModel

    models = {name: LlamaModel(fixture_path(name)) for name in FIXTURE_NAMES}
    yield models
    for m in models.values():
        m.close()


@pytest.fixture(scope="session")
def sweep_dirs(tmp_path_factory):
    """Real (small) sweeps of two fixtures, shared by the report/compare/export tests.

    {"llama-gqa": Path, "gemma3-swa": Path}: each a result directory with results.jsonl/.csv.
    llama-gqa: f16, q8_0, q4_0 x ctx 512/2048 x depth 0/256, flash attention auto (12 records).
    gemma3-swa: f16, q8_0 x ctx 1024 x swa_full on/off x parallel 2 unified on/off (8 records).
    """
    from ggufprof.measure.grid import GridSpec
    from ggufprof.measure.sweep import Sweep
    from ggufprof.model.model_info import load_model_info

    specs = {
        "llama-gqa": GridSpec(cache_types=[("f16", "f16"), ("q8_0", "q8_0"), ("q4_0", "q4_0")], ctx_sizes=[512, 2048],
                              swa_full=[True], parallel=[1], kv_unified=[False], flash_attn=["auto"],
                              depths=[0, 256], threads=2, n_prompt=64, n_gen=16, repetitions=3),
        "gemma3-swa": GridSpec(cache_types=[("f16", "f16"), ("q8_0", "q8_0")], ctx_sizes=[1024],
                               swa_full=[False, True], parallel=[2], kv_unified=[False, True], flash_attn=["auto"],
                               depths=[0], threads=2, n_prompt=64, n_gen=16, repetitions=3),
    }
    out = {}
    for name, spec in specs.items():
        d = tmp_path_factory.mktemp(f"sweep-{name}")
        Sweep(load_model_info(fixture_path(name)), spec, d).run()
        out[name] = d
    return out
