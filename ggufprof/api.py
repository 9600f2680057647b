"""The library: every ggufprof command as a function, for notebooks and scripts as for the CLI.

The CLI (cli.py) parses flags, calls one function here and prints what it returns; a notebook
calls the same functions and gets the same objects (sqlite-utils' ``Database`` under its CLI is
the model)::

    import ggufprof

    est = ggufprof.estimate("model.gguf", ctx_size=32768, cache_type_k="q8_0", cache_type_v="q8_0")
    est.prediction.kv_bytes                       # exact bytes of every cache llama.cpp creates
    est = ggufprof.estimate("model.gguf", defaults="server", total=True)
    [d.total_bytes for d in est.devices]          # the whole footprint per device
    fits = ggufprof.fit("model.gguf", memory="8 GiB").results
    summary = ggufprof.sweep("model.gguf", out="runs/a", cache_types="f16,q8_0", ctx_sizes="4096")
    df = ggufprof.load_results("runs/a")          # one row per configuration (pandas)
    cmp = ggufprof.compare("runs/a", "runs/b")    # cmp.failed: the CI gate's verdict

Sizes and flag values are taken as llama.cpp's tools write them (``"8 GiB"``, ``"32k"``) or as
numbers; every refusal is a :class:`ggufprof.errors.GgufprofError` whose message says what to do.
"""

from __future__ import annotations

import dataclasses
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .errors import GgufprofError
from .flags import DEFAULT_CACHE_TYPES, parse_cache_type_grid, parse_size
from .measure.dry_run import DryRun, cross_check, visible_gpu
from .measure.fit import Budget, FitResult, fit_all, verify
from .measure.grid import GridSpec, fill_defaults
from .measure.quality import run_quality
from .measure.sweep import Sweep, SweepSummary, measure_one
from .memory.footprint import DeviceFootprint, footprint
from .memory.placement import Placement, place
from .memory.predict import MemoryPrediction, predict
from .memory.settings import KVSettings, with_defaults
from .model.model_info import ModelInfo, load_model_info
from .results.compare import Comparison, Thresholds, compare_paths
from .results.deploy import Deployment, load_deployments
from .results.deploy_check import LimitCheck, check_deployment
from .results.quality import QualitySettings
from .results.schema import Record
from .results.store import load_dataframe, load_records


def load_model(model: str | Path | ModelInfo) -> ModelInfo:
    """A model file's header as llama.cpp reads it (hyper-parameters, tensors); only the header is read."""
    return model if isinstance(model, ModelInfo) else load_model_info(Path(model))


@dataclass
class Estimate:
    """What ``estimate`` answers: the caches llama.cpp creates and, when asked, where they go."""

    model: ModelInfo
    prediction: MemoryPrediction
    defaults: str
    placement: Placement | None = None
    devices: list[DeviceFootprint] | None = None  # the whole footprint per device (total=True)


def estimate(model: str | Path | ModelInfo, settings: KVSettings | None = None, *, defaults: str = "library",
             n_gpu_layers: int | None = None, offload_kqv: bool = True, total: bool = False,
             **given: object) -> Estimate:
    """Every cache and state llama.cpp creates for these settings, byte-exactly.

    ``settings`` or the KVSettings fields as keywords (``ctx_size``, ``cache_type_k``, ...) over the
    named ``defaults`` (library: llama_context_default_params; server: llama-server's). With
    ``n_gpu_layers``, ``offload_kqv=False`` or ``total``, where each cache and weight goes (the GPU is
    the one llama.cpp itself lists; without one every layer stays in host memory); with ``total``
    the whole footprint per device, compute buffers from llama.cpp's own dry run."""
    s = settings if settings is not None else with_defaults(defaults, **given)
    s.validate()  # settings errors first: they do not need the file
    info = load_model(model)
    pred = predict(info, s)
    est = Estimate(info, pred, defaults)
    if n_gpu_layers is not None or not offload_kqv or total:
        ngl = n_gpu_layers or 0
        est.placement = place(info, pred, ngl, offload_kqv, visible_gpu() if ngl else None)
    if total:
        with DryRun(info.path, n_gpu_layers or 0) as dry:
            result = dry.ask(s, offload_kqv)
        cross_check(pred, result)
        est.devices = footprint(info, pred, est.placement, result.compute_bytes)
    return est


@dataclass
class FitReport:
    """What ``fit`` answers: per cache type pair the largest context that fits, and how it was asked."""

    model: ModelInfo
    budget: Budget
    base: KVSettings
    n_gpu_layers: int
    gpu: str | None
    results: list[FitResult]
    verified: list[dict] | None = None  # verify=True: each answer created for real


def _size(value: str | int | None, flag: str) -> int | None:
    if value is None:
        return None
    n = parse_size(value, flag)
    if not 0 < n < 1 << 60:
        raise GgufprofError(f"{flag} must be a size above 0 such as 8GiB, got '{value}'")
    return n


def fit(model: str | Path | ModelInfo, *, memory: str | int | None = None, vram: str | int | None = None,
        margin: str | int = Budget.margin, cache_types: str | list[tuple[str, str]] = DEFAULT_CACHE_TYPES,
        settings: KVSettings | None = None, defaults: str = "library", n_gpu_layers: int | None = None,
        offload_kqv: bool = True, verify_answers: bool = False, **given: object) -> FitReport:
    """The largest context per cache type pair whose whole footprint fits ``memory`` (host) and/or
    ``vram`` (per GPU) minus ``margin``; ``n_gpu_layers`` defaults to all when llama.cpp has a GPU.
    ``verify_answers`` creates each answer for real and measures it."""
    budget = Budget(_size(memory, "--memory"), _size(vram, "--vram"), _size(margin, "--margin"))
    base = settings if settings is not None else with_defaults(defaults, **given)
    base.validate()
    pairs = parse_cache_type_grid(cache_types, None, None) if isinstance(cache_types, str) else list(cache_types)
    info = load_model(model)
    gpu = visible_gpu()
    if budget.vram is not None and gpu is None:
        raise GgufprofError("--vram: no GPU is visible to llama.cpp here (a CPU-only build or no device); use --memory")
    ngl = n_gpu_layers if n_gpu_layers is not None else (-1 if gpu else 0)
    report = FitReport(info, budget, base, ngl, gpu, fit_all(info, pairs, base, budget, ngl, offload_kqv, gpu))
    if verify_answers:
        with tempfile.TemporaryDirectory(prefix="ggufprof-fit-") as tmp:
            report.verified = verify(info, report.results, base, budget, ngl, offload_kqv, Path(tmp))
    return report


def sweep(model: str | Path | ModelInfo, spec: GridSpec, out: str | Path, *, timeout: float = 600,
          resume: bool = False, retry_failed: bool = True, quality: QualitySettings | None = None,
          on_start: Callable | None = None, on_record: Callable | None = None,
          problems: list[str] | None = None) -> SweepSummary:
    """Measure every configuration of ``spec`` in real llama.cpp runs (one worker process each),
    appending records to ``out/results.jsonl``. Axes left empty get the default grid
    (measure.grid.fill_defaults). Unreadable lines of earlier results are added to ``problems``."""
    info = load_model(model)
    spec.validate()
    fill_defaults(info, spec)
    runner = Sweep(info, spec, Path(out), timeout=timeout, resume=resume, retry_failed=retry_failed, quality=quality,
                   on_start=on_start, on_record=on_record)
    try:
        return runner.run()
    finally:
        if problems is not None:
            problems += runner.problems


def quality(model: str | Path, settings: QualitySettings, timeout: float | None = None) -> dict:
    """Each cache type's quality against f16/f16 on one text, as llama-perplexity --kl-divergence
    measures it: {"results": [one dict per pair], "text", "n_ctx", "n_chunks", "timings", "env"}."""
    return run_quality(Path(model), settings, timeout)


def load_results(*paths: str | Path, columns: list[str] | None = None, problems: list[str] | None = None):
    """Sweep results as a pandas DataFrame, one row per configuration (nested fields dotted);
    ``columns``: only these (what ``ggufprof results`` shows). Unreadable lines go to ``problems``."""
    return load_dataframe(*(Path(p) for p in paths), columns=columns, problems=problems)


def records(path: str | Path, problems: list[str] | None = None) -> list[Record]:
    """The records of one results directory (or results.jsonl); unreadable lines go to ``problems``."""
    return load_records(Path(path), problems if problems is not None else [])


def compare(baseline: str | Path, new: str | Path, thresholds: Thresholds | None = None, *, force: bool = False,
            allow_missing: bool = False, problems: list[str] | None = None) -> Comparison:
    """The CI gate: every configuration and metric of ``new`` against ``baseline``; ``.failed``."""
    return compare_paths(Path(baseline), Path(new), thresholds or Thresholds(), force=force,
                         allow_missing=allow_missing, problems=problems if problems is not None else [])


@dataclass
class DeploymentRun:
    deployment: Deployment
    record: Record | None  # None: estimate only
    checks: list[LimitCheck] = field(default_factory=list)


def check(deploy_file: str | Path, *, estimate_only: bool = False, out: str | Path | None = None,
          timeout: float = 600, threads: int | None = None,
          on_deployment: Callable[[Deployment], None] | None = None) -> list[DeploymentRun]:
    """Each deployment of a TOML file against its limits: predicted (``estimate_only``) or measured
    as a one-configuration sweep into ``out/<name>/`` (a temporary directory without ``out``)."""
    from .measure.sweep import default_threads

    deployments = load_deployments(Path(deploy_file), threads or default_threads(), measuring=not estimate_only)
    runs = []
    with tempfile.TemporaryDirectory(prefix="ggufprof-check-") as tmp:
        base = Path(out) if out is not None else Path(tmp)
        for dep in deployments:
            if on_deployment is not None:
                on_deployment(dep)
            # OUT/<name>: names are validated as safe directory names when the file is loaded (deploy.NAME)
            rec = None if estimate_only else measure_one(dep.info, dep.run, base / dep.name, timeout, dep.quality)
            runs.append(DeploymentRun(dep, rec, check_deployment(dep, rec)))
    return runs


def replace(settings: KVSettings, **changes: object) -> KVSettings:
    """KVSettings with some fields changed (dataclasses.replace, re-exported for notebooks)."""
    return dataclasses.replace(settings, **changes)
