"""llama.cpp's own architecture suite as an oracle: one tiny model per architecture, real contexts.

``scripts/archs_suite.sh`` builds ``test-llama-archs`` from the vendored llama.cpp (outside the
repo, cached) and writes its models (``<arch>-dense.gguf`` / ``<arch>-moe.gguf``) into
``GGUFPROF_ARCHS_DIR`` (default ``~/.cache/ggufprof/archs-<version>``). Each model's contexts are
created by ``python -m ggufprof.measure.probe_worker`` in a process of its own, so an abort inside
llama.cpp costs that model's remaining settings, never the test run.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path

from ggufprof.measure.workers import Worker
from ggufprof.memory.settings import KVSettings

ROOT = Path(__file__).resolve().parent.parent


def pinned_version() -> str:
    text = (ROOT / "pyproject.toml").read_text()
    return text.split('"llama-cpp-python==', 1)[1].split('"', 1)[0]


def suite_dir() -> Path:
    return Path(os.environ.get("GGUFPROF_ARCHS_DIR") or Path.home() / ".cache" / "ggufprof" / f"archs-{pinned_version()}")


def llama_tools_dir() -> Path:
    """Where scripts/build_llama_tools.sh unpacks the vendored llama.cpp (``src/``) and builds its tools
    (``build/bin/``; make archs builds llama-fit-params)."""
    return Path(os.environ.get("LLAMA_TOOLS_DIR") or Path.home() / ".cache" / "ggufprof" / f"llama-tools-{pinned_version()}")


def llama_tools_bin() -> Path:
    return llama_tools_dir() / "build" / "bin"


def llama_script(name: str) -> Path:
    """One of the vendored llama.cpp's ``scripts/`` (e.g. compare-llama-bench.py)."""
    return llama_tools_dir() / "src" / "scripts" / name


def suite_models() -> list[Path]:
    return sorted(suite_dir().glob("*.gguf"))


def suite_arch(model: Path) -> str:
    """The architecture a suite model is named for (``<arch>-dense.gguf`` / ``<arch>-moe.gguf``)."""
    return model.stem.rsplit("-", 1)[0]


# The suite's models that llama.cpp itself cannot load, with its reason (after "error loading
# model: "), as the pinned llama.cpp reports them. test_archs_suite.py fails on any change: a model
# that starts failing is a regression to look at, one that starts loading needs its prediction checked.
LLAMA_CPP_CANNOT_LOAD = {
    "eurobert": "check_tensor_dims: tensor 'token_embd.weight' not found",
    "modern-bert": "check_tensor_dims: tensor 'token_embd.weight' not found",
    "neo-bert": "check_tensor_dims: tensor 'token_embd.weight' not found",
    "wavtokenizer-dec": "error loading model hyperparameters: key not found in model: wavtokenizer-dec.features_length",
}


def load_reason(load_error: str) -> str:
    """llama.cpp's reason in a probe's ``load_error`` (what follows its "error loading model: ")."""
    return load_error.split("error loading model: ", 1)[-1]


def settings_grid() -> list[KVSettings]:
    """Structure (sequences, unified, swa_full, flash attention) x a rotation of cache types and
    sizes that are not multiples of 256; then every cache type once, a mixed K:V pair and bf16."""
    grid: list[KVSettings] = []
    types = [("f16", "f16"), ("q8_0", "q8_0"), ("q8_0", "q4_0"), ("bf16", "bf16"), ("f16", "q8_0"), ("q4_0", "f16")]
    sizes = [1000, 300, 2100]
    i = 0
    for par in (1, 3):
        for uni in ((False, True) if par > 1 else (False,)):
            for swa_full in (False, True):
                for fa in ("on", "off"):
                    tk, tv = types[i % len(types)]
                    if fa == "off" and tv not in ("f16", "bf16", "f32"):
                        tv = "f16"  # a quantized V cache needs flash attention
                    grid.append(KVSettings(ctx_size=sizes[i % len(sizes)], cache_type_k=tk, cache_type_v=tv,
                                           parallel=par, kv_unified=uni, swa_full=swa_full, flash_attn=fa))
                    i += 1
    for tk, tv in types + [("q4_1", "q4_1"), ("iq4_nl", "iq4_nl"), ("q5_0", "q5_1"), ("f32", "f32")]:
        grid.append(KVSettings(ctx_size=700, cache_type_k=tk, cache_type_v=tv, flash_attn="auto", swa_full=False))
    # SWA cache sizing: the window (n_ctx_train / 8 = 32 in the suite) times the sequences of a
    # unified cache must cross a 256-cell step against n_ubatch to be seen at all
    grid.append(KVSettings(ctx_size=4000, parallel=8, kv_unified=True, swa_full=False, ubatch_size=200))
    grid.append(KVSettings(ctx_size=3000, parallel=5, kv_unified=False, swa_full=False, ubatch_size=100, flash_attn="off"))
    grid.append(KVSettings(ctx_size=0, parallel=2, kv_unified=True, swa_full=False, ubatch_size=64))
    return grid


def _abort_reason(output: str, failure: str) -> str:
    """llama.cpp's own last words (GGML_ASSERT / abort message), else how the worker died."""
    for ln in reversed(output.splitlines()):
        if "GGML_ASSERT" in ln or "GGML_ABORT" in ln or "error" in ln.lower() or "terminate" in ln:
            return ln.strip()[-300:]
    return failure


def probe(model: Path, settings: list[KVSettings], timeout: float = 300) -> dict:
    """Every setting's context on one model, through the probe worker (the one worker protocol):
    {"load_error"} or {"results": [...]}, one result per setting.

    A setting that kills the worker (an abort inside llama.cpp) gets ``crashed`` with llama.cpp's
    message, and a new worker goes on with the next one."""
    results: list[dict] = []
    while len(results) < len(settings):
        with Worker("probe_worker") as w:
            loaded = w.ask({"op": "load", "model": str(model)}, timeout)
            if not loaded.ok:
                raise RuntimeError(f"probe of {model.name} failed to start: {loaded.failure}")
            if "load_error" in loaded.result:
                return {"load_error": loaded.result["load_error"]}
            for s in settings[len(results):]:
                reply = w.ask({"op": "context", "settings": asdict(s)}, timeout)
                if reply.ok:
                    results.append({"settings": asdict(s), **reply.result})
                    continue
                results.append({"settings": asdict(s), "ok": False, "crashed": True, "log": "",
                                "error": f"llama.cpp aborted: {_abort_reason(w.output(), reply.failure)}"})
                break
    return {"results": results}


def probe_all(models: list[Path], settings: list[KVSettings], workers: int = 2) -> dict[Path, dict]:
    with ThreadPoolExecutor(workers) as pool:
        return dict(zip(models, pool.map(lambda m: probe(m, settings), models)))
