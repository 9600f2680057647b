"""Shared fixtures: the tiny GGUF models in fixtures/ and real llama.cpp models loaded from them."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"
FIXTURE_NAMES = ["llama-gqa", "gemma3-swa", "deci-varkv"]


def fixture_path(name: str) -> Path:
    return FIXTURES / f"{name}.gguf"


@pytest.fixture(scope="session")
def llama_models():
    """One real llama.cpp model per fixture, loaded once for the session (contexts are cheap)."""
    from ggufprof.measure.llama_ctx import LlamaModel

    models = {name: LlamaModel(fixture_path(name)) for name in FIXTURE_NAMES}
    yield models
    for m in models.values():
        m.close()
