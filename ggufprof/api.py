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
    cmp = ggufprof.compare("runs/a", "runs/b")    # cmp.status: pass, fail or inconclusive

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
from .flags import ALL_GPU_LAYERS, DEFAULT_CACHE_TYPES, command_line, parse_cache_type_grid, parse_count, parse_size
from .measure.dry_run import DryRun, check_devices, cross_check, offload_devices
from .measure.fit import Budget, FitResult, Fitter, rank, solve_all, verify
from .measure.grid import GridSpec, fill_defaults
from .measure.quality import run_quality
from .measure.speedup import run_speedup
from .measure.workers import PROBE, SEARCH_PROBES, prestart, use_llama_lib  # noqa: F401 (use_llama_lib: the library's)
from .measure.workers import Progress as WorkProgress
from .measure.sweep import Sweep, SweepSummary, measure_one, sha256_file
from .memory.explain import Explanation, explain as explain_prediction
from .memory.footprint import DeviceFootprint, footprint
from .memory.placement import Placement, PlacementFlags, place
from .memory.predict import MemoryPrediction, predict
from .memory.settings import DEFAULT_PROFILE, KVSettings, with_defaults
from .model.model_info import ModelInfo, load_model_info
from .model.remote import HfRepo, Progress, resolve_model
from .results.compare import Comparison, Thresholds, compare_paths
from .results.deploy import Deployment, load_deployments
from .results.deploy_check import LimitCheck, check_deployment
from .results.fit_speed import SpeedRatio, matching_records, speed_settings, tg_ratio
from .results.quality import QualitySettings
from .results.run_settings import RunSettings
from .results.schema import Record
from .results.speedup import SpeedupRecord
from .results.store import load_dataframe, load_records


Model = str | Path | HfRepo | ModelInfo  # a file, an http(s):// URL, a repository (-hf) or a model already read


def load_model(model: Model, *, whole: bool = False, progress: Progress | None = None) -> ModelInfo:
    """A model's header as llama.cpp reads it (hyper-parameters, tensors); only the header is read.

    ``model`` may be a URL (the first shard of a split model) or ``HfRepo("user/repo", "Q4_K_M")``
    (llama.cpp's ``-hf``): then only the header is fetched, with range requests, unless ``whole``
    (what runs the weights needs), which downloads the model into llama.cpp's cache
    (model/remote.py), reporting to ``progress``."""
    if isinstance(model, ModelInfo):
        if not (whole and model.origin and model.origin.header_only):
            return model
        model = model.origin.ref  # read from its header only: now the whole file is needed
    path, origin = resolve_model(model, whole=whole, progress=progress)
    return dataclasses.replace(load_model_info(path), origin=origin)


@dataclass
class Estimate:
    """What ``estimate`` answers: the caches llama.cpp creates and, when asked, where they go."""

    model: ModelInfo
    prediction: MemoryPrediction
    defaults: str
    placement: Placement | None = None
    devices: list[DeviceFootprint] | None = None  # the whole footprint per device (total=True)


def estimate(model: Model, settings: KVSettings | None = None, *, defaults: str = DEFAULT_PROFILE,
             n_gpu_layers: int | None = None, offload_kqv: bool = True, total: bool = False, repack: bool = True,
             placement: PlacementFlags | None = None, **given: object) -> Estimate:
    """Every cache and state llama.cpp creates for these settings, byte-exactly.

    ``settings`` or the KVSettings fields as keywords (``ctx_size``, ``cache_type_k``, ...) over the
    named ``defaults`` (library: llama_context_default_params; server: llama-server's). With
    ``n_gpu_layers``, ``offload_kqv=False`` or ``total``, where each cache and weight goes (the GPU is
    the one llama.cpp itself lists; without one every layer stays in host memory; with ``total`` and
    no ``n_gpu_layers``, every layer: llama.cpp's default, common/common.h n_gpu_layers -1); with ``total``
    the whole footprint per device, compute buffers from llama.cpp's own dry run, weights that
    llama.cpp repacks for this CPU counted on top of the mapped file (``repack=False``: --no-repack).
    ``placement``: every placement flag (-ngl, -sm, -ts, -mg, -dev, --rpc, -ot, --n-cpu-moe, ...;
    it replaces ``n_gpu_layers`` and ``repack``) on the devices llama.cpp lists, RPC servers included."""
    s = settings if settings is not None else with_defaults(defaults, **given)
    s.validate()  # settings errors first: they do not need the file
    if total:  # the dry run's worker starts first: llama.cpp's start-up runs while the header is read
        prestart(PROBE)
    info = load_model(model)
    pred = predict(info, s)
    est = Estimate(info, pred, defaults)
    if placement is not None:
        flags = placement
    else:  # the whole footprint at llama.cpp's default -ngl (every layer on the devices it lists)
        ngl = n_gpu_layers if n_gpu_layers is not None else ALL_GPU_LAYERS if total else 0
        flags = PlacementFlags(n_gpu_layers=ngl, repack=repack)
    if total:
        with DryRun(info.path, placement=flags) as dry:
            devices = dry.offload_devices()
            result = dry.ask(s, offload_kqv)
            cpu_bufts = dry.host_buffer_types()
        cross_check(pred, result)
        est.placement = place(info, pred, offload_kqv=offload_kqv, cpu_bufts=cpu_bufts, flags=flags, devices=devices)
        est.devices = footprint(info, pred, est.placement, result.compute_bytes)
    elif placement is not None or n_gpu_layers is not None or not offload_kqv:
        est.placement = place(info, pred, offload_kqv=offload_kqv, flags=flags, devices=offload_devices(flags))
    return est


@dataclass
class Explained:
    """What ``explain`` answers: the model and the KV arithmetic of its prediction."""

    model: ModelInfo
    explanation: Explanation


def explain(model: Model, settings: KVSettings | None = None, *, defaults: str = DEFAULT_PROFILE,
            **given: object) -> Explained:
    """The KV cache of ``estimate`` for the same settings, step by step (per group of alike layers:
    row widths, cells, streams, bytes per row of the cache type), ending in estimate's total, and the
    common formulas beside it with what breaks each on this model (memory/explain.py)."""
    s = settings if settings is not None else with_defaults(defaults, **given)
    s.validate()
    info = load_model(model)
    return Explained(info, explain_prediction(info, s))


@dataclass
class FitReport:
    """What ``fit`` answers: per cache type pair the largest context (or the placement) that fits, and
    how it was asked."""

    model: ModelInfo
    budget: Budget
    base: KVSettings
    n_gpu_layers: int
    gpu: str | None  # the first offload device (buffer type name), None without one
    results: list[FitResult]
    profile: str = DEFAULT_PROFILE
    offload_kqv: bool = True
    repack: bool = True
    verified: list[dict] | None = None  # verify=True: each answer created for real
    speed: SpeedRatio | None = None  # results_dir: the best pair's generation speed against f16/f16
    speed_source: Path | None = None  # the results directory the speed comes from
    speed_settings: dict = field(default_factory=dict)  # the settings its records had to match
    placement: PlacementFlags | None = None  # the flags given (the answers' own are in each result)
    devices: list[str] = field(default_factory=list)  # the offload devices, in llama.cpp's order
    search: str = "context"  # "context" (the placement is fixed) or "placement" (-ngl/-ncmoe searched)
    dry_run_loads: int = 0  # dry-run loads of the model the searches took

    @property
    def best(self) -> FitResult | None:
        """The cache type pair with the most context (None when nothing fits)."""
        best = max(self.results, key=rank, default=None)
        return best if best is not None and best.ctx_size else None

    def commands(self, r: FitResult) -> dict[str, str]:
        """The answer as llama.cpp command lines (llama-server, llama-cli, llama-bench), exactly its
        settings and placement."""
        if not r.ctx_size or r.settings is None:
            return {}
        flags = r.placement or PlacementFlags(n_gpu_layers=self.n_gpu_layers, repack=self.repack)
        return {tool: command_line(tool, model_flags(self.model), r.settings, flags, self.offload_kqv)
                for tool in ("llama-server", "llama-cli", "llama-bench")}

    def to_json(self) -> list[dict]:
        """One object per cache type pair, as ``fit --json`` prints it; the pair with the most context
        carries ``tg_speed_vs_f16`` when a results directory was given; ``alternative``: the same
        search at a smaller -ub when the compute buffer stops the answer."""
        sp = self.speed
        # ratio None: every configuration it would rest on is noisy or has fewer than 2 samples ("doubtful")
        speed = {"tg_speed_vs_f16": sp and {"ratio": sp.ratio, "configurations": sp.n_pairs,
                                            "doubtful": sp.n_doubtful, "doubts": list(sp.doubts),
                                            "results": str(self.speed_source)}} if self.speed_source else {}

        def one(r: FitResult) -> dict:
            alt = r.alternative
            return {**r.to_dict(), "defaults": self.profile, "command": self.commands(r),
                    "alternative": alt and {**alt.to_dict(), "command": self.commands(alt)}}

        return [{**one(r), "budget": self.budget.to_dict(), "search": self.search, "dry_run_loads": self.dry_run_loads,
                 **({"verify": self.verified[i]} if self.verified else {}), **(speed if r is self.best else {})}
                for i, r in enumerate(self.results)]


def model_flags(info: ModelInfo) -> list[str]:
    """How llama.cpp's tools are told the model: -m PATH, -mu URL, or -hf USER/REPO[:QUANT] (--hf-file)."""
    origin = info.origin
    if origin is None:
        return ["-m", str(info.path)]
    if isinstance(origin.ref, HfRepo):
        ref = origin.ref
        return ["-hf", ref.repo + (f":{ref.tag}" if ref.tag else "")] + (["-hff", ref.file] if ref.file else [])
    return ["-mu", origin.url]


def _size(value: str | int | None, flag: str, minimum: int = 1) -> int | None:
    """A budget: a number with a unit (8GiB, 8G, 16 GB, 512 MiB); a bare number is refused, since
    nobody budgets bytes and llama.cpp's own sizes (--fit-target) count MiB: which one was meant
    cannot be told."""
    if value is None:
        return None
    if isinstance(value, str) and value.strip().replace(".", "", 1).isdigit():
        raise GgufprofError(f"{flag} {value}: give a unit, such as {value}GiB or {value}MiB")
    n = parse_size(value, flag)
    if not minimum <= n < 1 << 60:
        raise GgufprofError(f"{flag} must be a size of at least {minimum} bytes such as 8GiB, got '{value}'")
    return n


FREE = "free"  # --vram free: what llama.cpp reports as free on each device


def _vram(value: str | int | list | tuple | None) -> tuple[int | None, tuple[int, ...] | str]:
    """--vram: one size for every offload device, ``SIZE,SIZE,...`` one per device in llama.cpp's
    device order, or ``free`` (each device's free memory as llama.cpp reports it). Returns the
    common budget and the per-device list (or FREE)."""
    if value is None:
        return None, ()
    if isinstance(value, str) and value.strip().lower() == FREE:
        return None, FREE
    items = [v for v in value.split(",") if v.strip()] if isinstance(value, str) else list(
        value if isinstance(value, (list, tuple)) else [value])
    sizes = tuple(_size(v.strip() if isinstance(v, str) else v, "--vram") for v in items)
    if not sizes:
        raise GgufprofError(f"--vram: expected a size, a size per device (8GiB,4GiB) or free, got '{value}'")
    return (sizes[0], ()) if len(sizes) == 1 else (None, sizes)


def _per_device(each: tuple[int, ...] | str, devices: list) -> tuple[tuple[str, int], ...]:
    """--vram A,B or free on the offload devices llama.cpp lists (measure/dry_run.offload_devices)."""
    if not each:
        return ()
    if each == FREE:
        return tuple((d.buft, d.free) for d in devices)
    if len(each) != len(devices):
        raise GgufprofError(f"--vram: {len(each)} sizes for {len(devices)} offload device(s) "
                            f"({', '.join(d.buft for d in devices) or 'none'}), in llama.cpp's device order")
    return tuple((d.buft, n) for d, n in zip(devices, each))


def fit(model: Model, *, memory: str | int | None = None, vram: str | int | list | None = None,
        margin: str | int = Budget.margin, cache_types: str | list[tuple[str, str]] = DEFAULT_CACHE_TYPES,
        settings: KVSettings | None = None, defaults: str = DEFAULT_PROFILE, n_gpu_layers: int | None = None,
        offload_kqv: bool = True, repack: bool = True, placement: PlacementFlags | None = None,
        ctx_size: int | str | None = None, verify_answers: bool = False, results_dir: str | Path | None = None,
        problems: list[str] | None = None, progress: WorkProgress | None = None, **given: object) -> FitReport:
    """Per cache type pair, what fits ``memory`` (host) and ``vram`` (every offload device; a list: one
    per device in llama.cpp's order; "free": what llama.cpp reports free) minus ``margin``.

    ``placement``: the placement flags (-sm, -ts, -mg, -dev, --rpc, -ot, -cmoe, -ncmoe, -ncffn,
    --no-repack; its n_gpu_layers is ``n_gpu_layers``'s). With ``n_gpu_layers`` (or -ncmoe/-cmoe)
    given, the largest context at that placement. Without, on a host with an offload device and a
    ``vram`` budget: the context ``ctx_size`` (default: the training context) at the most layers
    on the devices (for MoE models first the fewest expert layers on the host), or, when it fits
    with every layer offloaded, that (without ``ctx_size``: the largest context there).
    ``verify_answers`` creates each answer for real and measures it. ``results_dir``: a sweep of this
    model file (its sha256) with the fit's settings (results.fit_speed), for what the pair with the
    most context costs in generation speed; checked before the search. Unreadable lines of it go
    to ``problems``. ``progress`` (done, total, what) hears of the search and of each verification."""
    common, each = _vram(vram)
    budget = Budget(_size(memory, "--memory"), common, _size(margin, "--margin", minimum=0))
    base = settings if settings is not None else with_defaults(defaults, **given)
    base.validate()
    target = None if ctx_size is None else parse_count(ctx_size, "--ctx-size")
    if target is not None:
        dataclasses.replace(base, ctx_size=target).validate()
    if budget.host is None and not budget.offload and not each:
        raise GgufprofError("give a budget: --memory SIZE (host) and/or --vram SIZE (per offload device)")
    pairs = parse_cache_type_grid(cache_types, None, None) if isinstance(cache_types, str) else list(cache_types)
    flags = placement if placement is not None else PlacementFlags(repack=repack)
    fixed = n_gpu_layers is not None or flags.cpu_moe or bool(flags.n_cpu_moe)
    flags = dataclasses.replace(flags, n_gpu_layers=ALL_GPU_LAYERS if n_gpu_layers is None else n_gpu_layers)
    prestart(PROBE, count=SEARCH_PROBES)  # the dry run's workers start while the model is read
    info = load_model(model, whole=verify_answers)
    fitter = Fitter(info, base, budget, flags, offload_kqv, search_placement=not fixed, ctx_size=target)
    try:
        devices = fitter.devices
        if (budget.offload or each) and not devices:
            raise GgufprofError("--vram: llama.cpp has no offload device here (a CPU-only build or no device; "
                                "--rpc HOST:PORT adds an rpc-server); use --memory")
        fitter.budget = budget = dataclasses.replace(budget, per_device=_per_device(each, devices))
        ngl = fitter.flags.n_gpu_layers if n_gpu_layers is None else n_gpu_layers  # as asked (-ngl 99 without a device: said so)
        wanted = speed_settings(base.parallel, base.kv_unified, base.swa_full, base.flash_attn, ngl, offload_kqv,
                                info.has_swa)
        speed_records = None
        if results_dir is not None:
            speed_records = matching_records(load_records(results_dir, problems if problems is not None else []),
                                             sha256_file(info.path), info.path, Path(results_dir), wanted)
        results = solve_all(fitter, pairs, progress)
        search = "placement" if fitter.search_placement and budget.offload else "context"
        report = FitReport(info, budget, base, ngl, devices[0].buft if devices else None, results, defaults,
                           offload_kqv, flags.repack, placement=fitter.flags, devices=[d.buft for d in devices],
                           search=search, dry_run_loads=fitter.loads)
    finally:
        fitter.close()
    if speed_records is not None and report.best is not None:
        report.speed = tg_ratio(speed_records, (report.best.cache_type_k, report.best.cache_type_v))
        report.speed_source, report.speed_settings = Path(results_dir), wanted
    if verify_answers:
        with tempfile.TemporaryDirectory(prefix="ggufprof-fit-") as tmp:
            report.verified = verify(info, report.results, budget, offload_kqv, Path(tmp), progress)
    return report


def sweep(model: Model, spec: GridSpec, out: str | Path, *, timeout: float = 600,
          resume: bool = False, retry_failed: bool = True, quality: QualitySettings | None = None,
          on_start: Callable | None = None, on_record: Callable | None = None,
          problems: list[str] | None = None) -> SweepSummary:
    """Measure every configuration of ``spec`` in real llama.cpp runs (one worker process each),
    appending records to ``out/results.jsonl``. Axes left empty get the default grid
    (measure.grid.fill_defaults). ``spec.placement``: every placement flag but -ngl (an axis), for
    every configuration; its devices are checked against llama.cpp's own list first. Unreadable lines
    of earlier results are added to ``problems``. A remote model is downloaded first (load_model with
    ``whole``)."""
    info = load_model(model, whole=True)
    spec.validate()
    check_devices(spec.placement)
    fill_defaults(info, spec)
    runner = Sweep(info, spec, Path(out), timeout=timeout, resume=resume, retry_failed=retry_failed, quality=quality,
                   on_start=on_start, on_record=on_record)
    try:
        return runner.run()
    finally:
        if problems is not None:
            problems += runner.problems


def quality(model: Model, settings: QualitySettings, timeout: float | None = None,
            progress: WorkProgress | None = None) -> dict:
    """Each cache type's quality against f16/f16 on one text, as llama-perplexity --kl-divergence
    measures it: {"results": [one dict per pair], "text", "n_ctx", "n_chunks", "timings", "env"}.
    A remote model is downloaded first (load_model with ``whole``); ``progress`` hears of each chunk."""
    path = load_model(model, whole=True).path
    check_devices(settings.placement)
    return run_quality(path, settings, timeout, progress=progress)


def download(model: Model, progress: Progress | None = None) -> ModelInfo:
    """A remote model downloaded whole into llama.cpp's cache (or found there); its path is ``.path``."""
    return load_model(model, whole=True, progress=progress)


def speedup(model: Model, n_gen: list[int], *, threads: int | None = None, repetitions: int = RunSettings.repetitions,
            repack: bool = True, timeout: float | None = None, out: str | Path | None = None,
            progress: WorkProgress | None = None) -> SpeedupRecord:
    """What the KV cache buys: for each n of ``n_gen``, n tokens generated with the cache against the same
    n tokens where every step clears the memory and re-evaluates the whole prefix, timed per token in a
    worker process (measure/speedup_worker.py). With ``out`` the record is appended to
    ``out/speedup.jsonl``, which ``report`` draws. ``progress`` hears of each timed run."""
    from .measure.sweep import default_threads

    return run_speedup(load_model(model, whole=True), list(n_gen), threads or default_threads(), repetitions, repack=repack,
                       timeout=timeout, out_dir=None if out is None else Path(out), progress=progress)


def load_results(*paths: str | Path, columns: list[str] | None = None, problems: list[str] | None = None):
    """Sweep results as a pandas DataFrame, one row per configuration (nested fields dotted);
    ``columns``: only these (what ``ggufprof results`` shows). Unreadable lines go to ``problems``."""
    return load_dataframe(*(Path(p) for p in paths), columns=columns, problems=problems)


def records(path: str | Path, problems: list[str] | None = None) -> list[Record]:
    """The records of one results directory (or results.jsonl); unreadable lines go to ``problems``."""
    return load_records(Path(path), problems if problems is not None else [])


def compare(baseline: str | Path, new: str | Path, thresholds: Thresholds | None = None, *, force: bool = False,
            allow_missing: bool = False, allow_noisy: bool = False,
            problems: list[str] | None = None) -> Comparison:
    """The CI gate: every configuration and metric of ``new`` against ``baseline``; ``.status`` is
    "pass", "fail" or "inconclusive" and ``.exit_code`` the CLI's exit status for it."""
    return compare_paths(Path(baseline), Path(new), thresholds or Thresholds(), force=force,
                         allow_missing=allow_missing, allow_noisy=allow_noisy,
                         problems=problems if problems is not None else [])


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
