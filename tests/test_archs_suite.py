"""Every architecture llama.cpp runs, against llama.cpp itself.

* The table of architectures (``ARCH_HPARAMS``) has a rule for every architecture of the vendored
  ``src/llama-arch.cpp``: a new llama.cpp architecture is a test failure, not a silent refusal.
* For every model of llama.cpp's own architecture suite (``scripts/archs_suite.sh``), real contexts
  over a grid of settings: every cache and state llama.cpp logs (KV, SWA, MLA, indexer, recurrent,
  DSV4 compressed caches and compressor state) equals the prediction at its printed precision, and
  both refuse the same settings. Architectures llama.cpp cannot load or run are listed with
  llama.cpp's own error in the summary at the end of the run, never skipped silently.
"""

from __future__ import annotations

import re

import pytest

from ggufprof.results.checks import kv_mismatches
from ggufprof.errors import GgufprofError
from ggufprof.results.llama_log import parse_log
from ggufprof.memory import create
from ggufprof.memory.predict import predict
from ggufprof.memory.settings import KVSettings
from ggufprof.model.arch_hparams import ARCH_HPARAMS
from ggufprof.model.hparams import RECURRENT_ARCHS
from ggufprof.model.model_info import load_model_info

from .archs_suite import LLAMA_CPP_CANNOT_LOAD, load_reason, probe_all, settings_grid, suite_arch, suite_dir, \
    suite_models
from .conftest import REPORT_NOTES

# In llama-arch.cpp's name table but without a model class in llama-model.cpp (cannot be loaded).
NO_MODEL_CLASS = {"gptj", "(unknown)"}


def vendored_arch_names() -> list[str]:
    src = suite_dir().parent / f"llama-tools-{suite_dir().name.split('-', 1)[1]}" / "src" / "src" / "llama-arch.cpp"
    if not src.exists():
        pytest.fail(f"{src} is missing: run scripts/archs_suite.sh (make archs) first")
    return re.findall(r'\{\s*LLM_ARCH_\w+,\s*"([^"]+)"\s*\}', src.read_text())


def test_every_vendored_architecture_has_a_rule():
    names = set(vendored_arch_names())
    assert len(names) > 100
    missing = sorted(names - set(ARCH_HPARAMS) - NO_MODEL_CLASS)
    assert not missing, f"architectures of the vendored llama.cpp without a hyper-parameter rule: {missing}"
    stale = sorted(set(ARCH_HPARAMS) - names)
    assert not stale, f"rules for architectures llama.cpp no longer has: {stale}"


def test_memory_tables_name_real_architectures():
    for table in (create.NO_MEMORY, create.HYBRID_ARCHS, set(create.UNMODELLED), create.NEEDS_TARGET, RECURRENT_ARCHS):
        assert set(table) <= set(ARCH_HPARAMS), sorted(set(table) - set(ARCH_HPARAMS))


@pytest.fixture(scope="module")
def suite_results():
    models = suite_models()
    if not models:
        pytest.fail(f"no models in {suite_dir()}: run scripts/archs_suite.sh (make archs) first")
    return probe_all(models, settings_grid())


def test_suite_covers_the_architectures(suite_results):
    archs = {load_model_info(m).architecture for m in suite_results if "load_error" not in suite_results[m]}
    assert len(archs) >= 120, f"only {len(archs)} architectures in the suite"


def test_every_suite_model_is_exact(suite_results):
    exact, crashes, load_errors, failures, contexts = [], [], {}, [], 0
    for path, r in sorted(suite_results.items()):
        if "load_error" in r:
            load_errors[suite_arch(path)] = load_reason(r["load_error"])
            continue
        info = load_model_info(path)
        bad = []
        for out in r["results"]:
            s = KVSettings(**out["settings"])
            try:
                pred, refused = predict(info, s), None
            except GgufprofError as e:
                pred, refused = None, str(e)
            if out.get("crashed"):
                crashes.append(f"{path.name} {s}: {out['error']}")
            elif not out["ok"]:
                if pred is not None:
                    bad.append(f"{s}: llama.cpp refused ({out['error']}), we predicted")
            elif pred is None:
                bad.append(f"{s}: llama.cpp created it, we refused: {refused}")
            else:
                contexts += 1
                log = parse_log(out["log"])
                if mism := kv_mismatches(pred, log, out["n_ctx"], out["n_ctx_seq"]):
                    bad.append(f"{s}: " + "; ".join(map(str, mism[:4])))
        (failures if bad else exact).append((path.name, bad))
    REPORT_NOTES.append(f"architecture suite: {len(exact)} of {len(suite_results)} models exact over "
                        f"{contexts} real contexts ({len(settings_grid())} settings each)")
    REPORT_NOTES.extend(f"llama.cpp cannot load {arch}: {why}" for arch, why in load_errors.items())
    REPORT_NOTES.extend(f"llama.cpp aborts on {c}" for c in crashes)
    assert load_errors == LLAMA_CPP_CANNOT_LOAD, "the models llama.cpp cannot load changed (tests/archs_suite.py pins them)"
    assert contexts > 1000
    assert not failures, "\n".join(f"{name}: {bad[0]} (+{len(bad) - 1} more)" for name, bad in failures)


def test_every_suite_model_s_resident_memory_is_explained(tmp_path):
    """One real run of every suite model llama.cpp loads (a sweep configuration: load, context, a
    decode, RSS sampled throughout): RSS growth at context creation is the host KV and state plus
    the reserve graph's metadata (memory/graph.py: several MiB for the hybrid and linear-attention
    architectures, which llama.cpp sizes by the batch), and RSS after the decode stays within the
    predicted host footprint. Runs llama.cpp itself cannot make are listed, not judged."""
    from ggufprof.measure.grid import GridSpec
    from ggufprof.measure.sweep import Sweep
    from ggufprof.memory.placement import PlacementFlags

    spec = GridSpec(cache_types=[("f16", "f16")], ctx_sizes=[256], swa_full=[False], parallel=[1], kv_unified=[False],
                    flash_attn=["auto"], depths=[0], threads=2, n_prompt=16, n_gen=2, repetitions=1,
                    placement=PlacementFlags(repack=False))  # the suite's weights are not repacked: no dry run needed
    judged, not_run, failures = 0, [], []
    for path in suite_models():
        if suite_arch(path) in LLAMA_CPP_CANNOT_LOAD:
            continue
        (rec,) = Sweep(load_model_info(path), spec, tmp_path / path.stem).run().records
        if rec.status != "ok":
            not_run.append(f"{path.stem}: {rec.status} ({(rec.reason or '')[:80]})")
            continue
        c = rec.check
        if c.get("kv_exact") is None:  # a memory ggufprof does not model: measured, nothing to judge against
            not_run.append(f"{path.stem}: {c.get('prediction')}")
            continue
        judged += 1
        if c.get("rss_explained") is False or c.get("total_within_prediction") is False:
            failures.append(f"{path.stem}: RSS at context {c.get('rss_growth')} vs {c.get('rss_expected')}, after the "
                            f"decode {c.get('rss_growth_after_warmup')} vs {c.get('total_host_predicted')}")
    REPORT_NOTES.append(f"architecture suite: resident memory explained on {judged - len(failures)} of {judged} models "
                        f"run once each" + (f"; not judged: {'; '.join(not_run)}" if not_run else ""))
    assert judged >= 100
    assert not failures, "\n".join(failures)
