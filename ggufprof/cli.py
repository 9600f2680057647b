"""The ``ggufprof`` command line: parse options, call the library, print. Nothing else lives here.

Heavy imports (llama_cpp, pandas) happen inside the commands that need them, so ``--help`` is fast.
Every GgufprofError becomes one ``Error: ...`` line on stderr and exit code 2, and so does output
that cannot be written; a reader that stops reading (``| head -1``) leaves the exit code as it was.
"""

from __future__ import annotations

import errno
import functools
import json
import os
import sys
from pathlib import Path
from inspect import Parameter, signature
from typing import Callable, Optional

import typer

from .errors import ExitCode, GgufprofError
from .flags import DEFAULT_CACHE_TYPES, DEFAULT_FIT_MARGIN
from .memory.settings import DEFAULT_PROFILE, PROFILES, KVSettings
from .results.compare import Thresholds
from .results.quality import QualitySettings
from .results.run_settings import RunSettings
from .units import ASCII_ERRORS, printable

app = typer.Typer(
    help="What the llama.cpp KV cache costs you: predicted byte-exactly, measured in real runs.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",  # help text brackets are escaped (\\[) where they must show
    add_completion=False,
)

MODEL = typer.Argument(None, metavar="MODEL.gguf|URL", show_default=False,
                       help="A GGUF model file, or an http(s):// URL of one (of a split model: its first shard).")
HF_REPO = typer.Option(None, "--hf-repo", "-hf", "-hfr", metavar="USER/REPO[:QUANT]", help="Instead of MODEL, the model of a Hugging Face repository, as llama.cpp's -hf picks it (default quant Q4_K_M, then Q8_0). HF_ENDPOINT and HF_TOKEN apply.")
HF_FILE = typer.Option(None, "--hf-file", "-hff", metavar="FILE", help="With --hf-repo: this file of the repository (overrides the quant).")
JSON = typer.Option(False, "--json", help="Print one JSON object instead of tables.")
# the cache types that sweep and quality compare (flags.parse_cache_type_grid)
CACHE_TYPE_LIST = typer.Option(None, "--cache-types", "-ct", metavar="LIST", help="Comma-separated cache types for K and V; K:V for a mixed pair (q8_0:q4_0). Default f16,q8_0,q4_0.")
CACHE_TYPE_K_LIST = typer.Option(None, "--cache-type-k", "-ctk", metavar="LIST", help="K cache types; with -ctv, every K x V pair (as llama-bench runs them).")
DEFAULTS_OPTION = typer.Option(
    DEFAULT_PROFILE, "--defaults", metavar="|".join(PROFILES),
    help="Defaults of the flags you do not give: llama.cpp's tools' (common/common.h, as llama-cli and llama-bench), "
         "llama-server's (4 slots in a unified cache) or the library's (llama_context_default_params, as "
         "llama-cpp-python). Every output names the profile.")
LLAMA_LIB_OPTION = typer.Option(None, "--llama-lib", metavar="DIR", help="Run llama.cpp from this build's shared libraries (libllama, libggml*: your own build or another release) instead of the one llama-cpp-python ships, as LLAMA_CPP_LIB_PATH; records name the build.")
REPACK_OPTION = typer.Option(True, "--repack/--no-repack", help="llama.cpp's extra CPU buffer types (CPU_REPACK: weights copied at load into a layout this CPU computes faster; its default), counted on top of the mapped file; --no-repack (llama.cpp's -nr) leaves them off.")
SPLIT_MODE = typer.Option(None, "--split-mode", "-sm", metavar="none|layer", help="How layers are split over several devices (llama.cpp's -sm; default layer). row and tensor are not modelled and are refused.")
TENSOR_SPLIT = typer.Option(None, "--tensor-split", "-ts", metavar="N0,N1,...", help="Proportion of the offloaded layers per device, e.g. 3,1 (llama.cpp's -ts). Default: by each device's free memory as llama.cpp reports it now.")
MAIN_GPU = typer.Option(None, "--main-gpu", "-mg", metavar="INDEX", help="With -sm none: the one device that gets the offloaded layers (default 0).")
DEVICE = typer.Option(None, "--device", "-dev", metavar="DEV1,DEV2|none", help="Devices to offload to, by llama.cpp's names (RPC0, CUDA0); none: no offload.")
RPC = typer.Option(None, "--rpc", metavar="HOST:PORT,...", help="llama.cpp rpc-servers, added as offload devices (needs a llama.cpp built with -DGGML_RPC=ON: --llama-lib).")
OVERRIDE_TENSOR = typer.Option(None, "--override-tensor", "-ot", metavar="REGEX=BUFT,...", help="Weights whose name matches REGEX go to buffer type BUFT (CPU, RPC0[host:port], CUDA0); first match wins; may be repeated.")
CPU_MOE = typer.Option(False, "--cpu-moe", "-cmoe", help="Every layer's MoE expert weights in host memory (an -ot pattern, as llama.cpp's).")
N_CPU_MOE = typer.Option(None, "--n-cpu-moe", "-ncmoe", metavar="N", help="The first N layers' MoE expert weights in host memory.")
N_CPU_FFN = typer.Option(None, "--n-cpu-ffn", "-ncffn", metavar="N", help="The first N layers' dense FFN weights in host memory.")
LOAD_MODE = typer.Option(None, "--load-mode", "-lm", metavar="auto|none|mmap|mlock|mmap+mlock|dio", help="How llama.cpp loads the weights (its -lm; default auto = mmap): with mmap host weights are the mapped file (CPU_Mapped, paged in on use); none, mlock and dio copy them into real host buffers (CPU, or a GPU's pinned CUDA_Host), resident.")
NO_HOST = typer.Option(False, "--no-host", help="Host weights skip the GPU's pinned host buffer type (llama.cpp's --no-host), so extra buffer types (CPU_REPACK) are used.")
NO_MMAP = typer.Option(False, "--no-mmap", help="Older llama.cpp's spelling of -lm none.")
MLOCK = typer.Option(False, "--mlock", help="Older llama.cpp's spelling of -lm mmap+mlock (with --no-mmap: -lm mlock).")
# Every placement flag but -ngl (each command words its own) and --no-repack: (the option's parameter
# name, which is placement_flags' keyword argument, its type, the typer Option)
PLACEMENT_OPTIONS = (
    ("split_mode", Optional[str], SPLIT_MODE), ("tensor_split", Optional[str], TENSOR_SPLIT),
    ("main_gpu", Optional[int], MAIN_GPU), ("device", Optional[str], DEVICE), ("rpc", Optional[str], RPC),
    ("override_tensor", Optional[list[str]], OVERRIDE_TENSOR), ("cpu_moe", bool, CPU_MOE),
    ("n_cpu_moe", Optional[int], N_CPU_MOE), ("n_cpu_ffn", Optional[int], N_CPU_FFN),
    ("load_mode", Optional[str], LOAD_MODE), ("no_host", bool, NO_HOST), ("no_mmap", bool, NO_MMAP),
    ("mlock", bool, MLOCK))


def _placement_options(fn: Callable) -> Callable:
    """A command's ``placement: dict`` parameter becomes llama.cpp's placement options, in its place
    (typer reads the signature), and the command gets them back as one dict of placement_flags'
    keyword arguments: the options are declared once for estimate, fit, sweep and quality."""
    sig = signature(fn)
    params = []
    for p in sig.parameters.values():
        params += ([Parameter(name, p.kind, default=option, annotation=kind)
                    for name, kind, option in PLACEMENT_OPTIONS] if p.name == "placement" else [p])

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        placement = {name: kwargs.pop(name) for name, _, _ in PLACEMENT_OPTIONS}
        return fn(*args, placement=placement, **kwargs)

    wrapper.__signature__ = sig.replace(parameters=params)
    wrapper.__annotations__ = {**{k: v for k, v in fn.__annotations__.items() if k != "placement"},
                               **{name: kind for name, kind, _ in PLACEMENT_OPTIONS}}
    return wrapper
CACHE_TYPE_V_LIST = typer.Option(None, "--cache-type-v", "-ctv", metavar="LIST", help="V cache types (see -ctk).")
# how the measuring commands (sweep, quality, speedup) run llama.cpp
THREADS = typer.Option(None, "--threads", "-t", metavar="N", help="Threads (default: physical cores; 0 or less: every logical CPU, as llama.cpp reads -t 0).")
REPETITIONS = typer.Option(str(RunSettings.repetitions), "--repetitions", "-r", metavar="N|auto", help="Timed repetitions after one warm-up; auto: until the 95% CI of the mean is within ±3% (3 to 20).")


class _Output:
    """sys.stdout or sys.stderr while a command runs. A reader that goes away (``| head -1``: EPIPE)
    ends the output, not the command: what follows is dropped and the command's exit code stands (a
    gate's verdict is not turned into a crash). Any other failure to write (a full disk, a closed
    descriptor) is kept in ``failed``: the command then ends with one Error line and exit 2."""

    def __init__(self, stream):
        self.stream = stream
        self.gone = False
        self.failed: OSError | None = None

    def write(self, text):
        if not (self.gone or self.failed):
            try:
                return self.stream.write(text)
            except OSError as e:
                self._lost(e)
        return len(text)

    def flush(self) -> None:
        if not (self.gone or self.failed):
            try:
                self.stream.flush()
            except OSError as e:
                self._lost(e)

    def _lost(self, e: OSError) -> None:
        if e.errno == errno.EPIPE:
            self.gone = True
        else:
            self.failed = e
        try:  # what the stream still buffers would fail again when Python flushes it at exit
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self.stream.fileno())
            os.close(devnull)
        except (OSError, ValueError, AttributeError):  # no descriptor (a test's stream)
            pass

    def __getattr__(self, name: str):
        return getattr(self.stream, name)


def _readable_anywhere(stream) -> None:
    """A stream whose encoding cannot show every character (PYTHONIOENCODING=ascii, a C locale) writes
    the output's symbols as ASCII (units.ASCII_FALLBACK: × as x, · as -, ≥ as >=) instead of ending the
    command in a UnicodeEncodeError; UTF-8 streams are left as they are."""
    encoding = (getattr(stream, "encoding", None) or "").lower().replace("-", "").replace("_", "")
    if encoding and not encoding.startswith("utf") and hasattr(stream, "reconfigure"):
        try:
            stream.reconfigure(errors=ASCII_ERRORS)
        except (ValueError, OSError):  # a stream that cannot change now: leave it
            pass


def _one_line_errors(fn: Callable) -> Callable:
    """The CLI's one error boundary: a GgufprofError or output that cannot be written is one
    ``Error:`` line and exit 2; a reader that stopped reading changes nothing. For the commands that
    run llama.cpp, ``--llama-lib`` is applied before anything runs."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        if sys.stdout is None:  # started with stdout closed (>&-): a file opened now could get descriptor 1
            typer.echo("Error: standard output is closed: redirect it (> FILE, or > /dev/null to discard it)",
                       err=True)
            raise typer.Exit(ExitCode.BAD_INPUT)
        for stream in (sys.stdout, sys.stderr):
            _readable_anywhere(stream)
        out = sys.stdout = _Output(sys.stdout)
        err = sys.stderr = _Output(sys.stderr) if sys.stderr is not None else None  # 2>&-: nowhere to say anything
        code = 0
        try:
            if kwargs.get("llama_lib") is not None:
                from .measure.workers import use_llama_lib  # light: before a command prestarts its worker

                use_llama_lib(kwargs["llama_lib"])
            fn(*args, **kwargs)
        except typer.Exit as e:
            code = e.exit_code
        except GgufprofError as e:  # one line, whatever the data in the message holds
            typer.echo(f"Error: {printable(str(e), 4000)}", err=True)
            code = ExitCode.BAD_INPUT
        finally:
            for guard in (out, err):
                if guard is not None:
                    guard.flush()
            sys.stdout, sys.stderr = out.stream, err.stream if err is not None else None
        if out.failed is not None:
            typer.echo(f"Error: cannot write to standard output: {out.failed.strerror or out.failed}", err=True)
            code = ExitCode.BAD_INPUT
        if code:
            raise typer.Exit(code)
    return wrapper


def _model(model: Optional[str], hf_repo: Optional[str], hf_file: Optional[str]):
    """MODEL, a URL or -hf, as the library takes it (model/remote.model_argument)."""
    from .model.remote import model_argument

    return model_argument(model, hf_repo, hf_file)


def _warn(problems: list[str], limit: int = 10) -> None:
    """Lines of results that were skipped (torn, not JSON, not a record): said on stderr, not fatal."""
    for p in problems[:limit]:
        typer.echo(f"warning: {p}", err=True)
    if len(problems) > limit:
        typer.echo(f"warning: {len(problems) - limit} more unreadable lines skipped", err=True)


def _emit_json(obj: dict) -> None:
    sys.stdout.write(json.dumps(obj, indent=2) + "\n")


@app.command()
@_one_line_errors
def inspect(model: Optional[str] = MODEL, hf_repo: Optional[str] = HF_REPO, hf_file: Optional[str] = HF_FILE,
            as_json: bool = JSON) -> None:
    """Show a model's layers, what memory each keeps, and the KV bytes one token costs per cache type.

    A URL or --hf-repo: only the header is fetched (range requests), not the model."""
    from .api import load_model
    from .present.console import inspect_json, print_inspect

    info = load_model(_model(model, hf_repo, hf_file))
    if as_json:
        _emit_json(inspect_json(info))
    else:
        print_inspect(info)


# The context settings estimate and explain share: one definition of each flag, one parser (_kv_given).
CTX_SIZE = typer.Option(None, "--ctx-size", "-c", metavar="N", help="Context size in tokens (llama.cpp's n_ctx): 4096, 32k; 0 = the model's training context. Default 0 (tools, server) or 512 (library).")
CACHE_TYPE = typer.Option(None, "--cache-type", "-ct", metavar="TYPE", help="K and V cache type at once (q8_0), or K:V (q8_0:q4_0).")
CACHE_TYPE_K = typer.Option(None, "--cache-type-k", "-ctk", metavar="TYPE", help="K cache type: f32, f16, bf16, q8_0, q4_0, q4_1, iq4_nl, q5_0, q5_1 (default f16).")
CACHE_TYPE_V = typer.Option(None, "--cache-type-v", "-ctv", metavar="TYPE", help="V cache type (default f16; quantized V needs flash attention).")
PARALLEL = typer.Option(None, "--parallel", "-np", metavar="N", help="Number of parallel sequences (n_seq_max). Default 1, or 4 with --defaults server.")
KV_UNIFIED = typer.Option(None, "--kv-unified/--no-kv-unified", "-kvu", help="One KV buffer shared by all sequences. Default off, or on with --defaults server.")
SWA_FULL = typer.Option(None, "--swa-full/--no-swa-full", help="Full-size SWA cache. Default off (tools, server) or on (library).")
BATCH_SIZE = typer.Option(None, "--batch-size", "-b", metavar="N", help="Logical batch size (n_batch, default 2048).")
UBATCH_SIZE = typer.Option(None, "--ubatch-size", "-ub", metavar="N", help="Physical batch size (n_ubatch, default 512); sizes the SWA cache.")
FLASH_ATTN = typer.Option(None, "--flash-attn", "-fa", metavar="on|off|auto", help="Default auto. Off transposes V, which pads V rows to the widest layer (also 1/0).")


def _kv_given(ctx_size: Optional[str], cache_type: Optional[str], cache_type_k: Optional[str],
              cache_type_v: Optional[str], parallel: Optional[int], kv_unified: Optional[bool],
              swa_full: Optional[bool], batch_size: Optional[int], ubatch_size: Optional[int],
              flash_attn: Optional[str]) -> dict:
    """The KVSettings fields the flags set (None: not given, the defaults decide)."""
    from .flags import parse_cache_types, parse_count, parse_flash_attn

    tk = tv = None
    if cache_type is not None:
        ((tk, tv),) = parse_cache_types(cache_type, flag="--cache-type")
    if cache_type_k is not None or cache_type_v is not None:
        ((tk, tv),) = parse_cache_types(None, cache_type_k or tk or "f16", cache_type_v or tv or "f16")
    return dict(ctx_size=None if ctx_size is None else parse_count(ctx_size, "--ctx-size"), cache_type_k=tk,
                cache_type_v=tv, parallel=parallel, kv_unified=kv_unified, swa_full=swa_full, batch_size=batch_size,
                ubatch_size=ubatch_size, flash_attn=None if flash_attn is None else parse_flash_attn(flash_attn))


@app.command()
@_one_line_errors
@_placement_options
def estimate(
    model: Optional[str] = MODEL,
    hf_repo: Optional[str] = HF_REPO,
    hf_file: Optional[str] = HF_FILE,
    ctx_size: Optional[str] = CTX_SIZE,
    cache_type: Optional[str] = CACHE_TYPE,
    cache_type_k: Optional[str] = CACHE_TYPE_K,
    cache_type_v: Optional[str] = CACHE_TYPE_V,
    parallel: Optional[int] = PARALLEL,
    kv_unified: Optional[bool] = KV_UNIFIED,
    swa_full: Optional[bool] = SWA_FULL,
    batch_size: Optional[int] = BATCH_SIZE,
    ubatch_size: Optional[int] = UBATCH_SIZE,
    flash_attn: Optional[str] = FLASH_ATTN,
    defaults: str = DEFAULTS_OPTION,
    n_gpu_layers: Optional[str] = typer.Option(None, "--n-gpu-layers", "-ngl", metavar="N|all", help="Layers offloaded to the devices llama.cpp lists (the output layer counts as one; all or -1 = every layer): splits KV and weights per device. With --total, default all (llama.cpp's)."),
    no_kv_offload: bool = typer.Option(False, "--no-kv-offload", "-nkvo", help="Keep the KV cache in host memory even for offloaded layers."),
    total: bool = typer.Option(False, "--total", help="The whole footprint per device: weights, KV, recurrent state, compute and output buffers (compute from llama.cpp's own dry run)."),
    repack: bool = REPACK_OPTION,
    placement: dict = None,  # _placement_options: llama.cpp's placement flags
    as_json: bool = JSON,
    llama_lib: Optional[Path] = LLAMA_LIB_OPTION,
) -> None:
    """Predict every KV cache and recurrent state llama.cpp allocates, byte-exactly.

    Unset flags take llama.cpp's tools' defaults (common/common.h: the training context, f16/f16,
    1 sequence, swa_full off, n_batch 2048, n_ubatch 512, flash attention auto); --defaults server
    llama-server's (4 slots in a unified cache), --defaults library llama_context_default_params
    (n_ctx 512, swa_full on: what llama-cpp-python gets).
    """
    from .api import estimate as estimate_  # with --total it prestarts the dry run's worker (as launch.py, earlier)
    from .flags import placement_flags
    from .memory.settings import DEFAULTS_NOTE
    from .present.console import estimate_json, print_estimate

    given = _kv_given(ctx_size, cache_type, cache_type_k, cache_type_v, parallel, kv_unified, swa_full, batch_size,
                      ubatch_size, flash_attn)
    ngl_default = total and n_gpu_layers is None  # the whole footprint at llama.cpp's -ngl default: all
    flags = placement_flags("all" if ngl_default else n_gpu_layers, repack=repack, **placement)
    est = estimate_(_model(model, hf_repo, hf_file), defaults=defaults, offload_kqv=not no_kv_offload, total=total,
                    placement=flags if total or n_gpu_layers is not None or flags != type(flags)(repack=repack) else None,
                    repack=repack, **given)
    if as_json:
        # total_bytes (top level) is KV + state, as it always was; the whole footprint is footprint_bytes
        extra = {"total": {d.device: d.to_dict() for d in est.devices},
                 "footprint_bytes": sum(d.total_bytes for d in est.devices)} if est.devices is not None else {}
        _emit_json({**estimate_json(est.model, est.prediction, est.placement), "defaults": defaults, **extra})
    else:
        print_estimate(est.model, est.prediction, placement=est.placement, defaults_note=DEFAULTS_NOTE[defaults],
                       devices=est.devices, ngl_default=ngl_default)


@app.command()
@_one_line_errors
def explain(
    model: Optional[str] = MODEL,
    hf_repo: Optional[str] = HF_REPO,
    hf_file: Optional[str] = HF_FILE,
    ctx_size: Optional[str] = CTX_SIZE,
    cache_type: Optional[str] = CACHE_TYPE,
    cache_type_k: Optional[str] = CACHE_TYPE_K,
    cache_type_v: Optional[str] = CACHE_TYPE_V,
    parallel: Optional[int] = PARALLEL,
    kv_unified: Optional[bool] = KV_UNIFIED,
    swa_full: Optional[bool] = SWA_FULL,
    batch_size: Optional[int] = BATCH_SIZE,
    ubatch_size: Optional[int] = UBATCH_SIZE,
    flash_attn: Optional[str] = FLASH_ATTN,
    defaults: str = DEFAULTS_OPTION,
    as_json: bool = JSON,
) -> None:
    """How big the KV cache is, step by step as llama.cpp sizes it, and why the usual formulas miss.

    The same flags and defaults as `estimate`; ends in exactly estimate's figure. Then the formulas
    people copy (hidden_size-based, GQA-aware but SWA-blind, "q8_0 = half of f16", per-sequence vs
    unified), each with its number, its ratio to the exact one and what breaks it on this model.
    """
    from .api import explain as explain_
    from .memory.settings import DEFAULTS_NOTE
    from .present.explain_output import explain_json, explain_lines

    given = _kv_given(ctx_size, cache_type, cache_type_k, cache_type_v, parallel, kv_unified, swa_full, batch_size,
                      ubatch_size, flash_attn)
    e = explain_(_model(model, hf_repo, hf_file), defaults=defaults, **given)
    if as_json:
        _emit_json({**explain_json(e.model, e.explanation), "defaults": defaults})
    else:
        typer.echo("\n".join(explain_lines(e.model, e.explanation, DEFAULTS_NOTE[defaults])))


@app.command()
@_one_line_errors
@_placement_options
def fit(
    model: Optional[str] = MODEL,
    hf_repo: Optional[str] = HF_REPO,
    hf_file: Optional[str] = HF_FILE,
    memory: Optional[str] = typer.Option(None, "--memory", metavar="SIZE", help="Host memory budget (8GiB, 16 GB): weights, KV, state, compute and output in host memory must fit."),
    vram: Optional[str] = typer.Option(None, "--vram", metavar="SIZE|SIZE,SIZE,...|free", help="Memory budget of every offload device (GPU, rpc-server); one size per device in llama.cpp's device order; or free: what llama.cpp reports free on each. Without -ngl/-ncmoe, fit finds the most layers on the devices for the context (-c)."),
    margin: str = typer.Option(f"{DEFAULT_FIT_MARGIN >> 20} MiB", "--margin", metavar="SIZE", help="Kept free on each budgeted device (llama.cpp's --fit-target default, 1024 MiB)."),
    cache_types: str = typer.Option(DEFAULT_CACHE_TYPES, "--cache-types", "-ct", metavar="LIST", help="Cache types; K:V for a mixed pair."),
    parallel: Optional[int] = typer.Option(None, "--parallel", "-np", metavar="N", help="Sequences: the context found is per sequence (n_ctx = N x that unless unified)."),
    kv_unified: Optional[bool] = typer.Option(None, "--kv-unified/--no-kv-unified", "-kvu"),
    swa_full: Optional[bool] = typer.Option(None, "--swa-full/--no-swa-full"),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", "-b", metavar="N"),
    ubatch_size: Optional[int] = typer.Option(None, "--ubatch-size", "-ub", metavar="N"),
    flash_attn: Optional[str] = typer.Option(None, "--flash-attn", "-fa", metavar="on|off|auto"),
    defaults: str = DEFAULTS_OPTION,
    n_gpu_layers: Optional[str] = typer.Option(None, "--n-gpu-layers", "-ngl", metavar="N|all", help="Layers on the offload devices: fixed, the context is searched. Default: searched with --vram (the most that leave -c), else all."),
    ctx_size: Optional[str] = typer.Option(None, "--ctx-size", "-c", metavar="N", help="With --vram and no -ngl/-ncmoe: the context to find the placement for (default: the training context)."),
    no_kv_offload: bool = typer.Option(False, "--no-kv-offload", "-nkvo", help="Keep the KV cache in host memory even for offloaded layers."),
    repack: bool = REPACK_OPTION,
    placement: dict = None,  # _placement_options: llama.cpp's placement flags
    results_dir: Optional[Path] = typer.Option(None, "--results", metavar="DIR", help="A sweep of this model file (its sha256) at the fit's settings: say what the cache type with the most context costs in generation speed against f16."),
    verify: bool = typer.Option(False, "--verify", help="Create each answer for real, decode a batch, and compare measured memory with the prediction; exit 1 if one does not fit."),
    as_json: bool = JSON,
    llama_lib: Optional[Path] = LLAMA_LIB_OPTION,
) -> None:
    """The largest context per cache type whose whole footprint fits a memory budget -- or, with --vram
    and no -ngl, the most layers on the offload devices for a context (MoE: the fewest expert layers
    on the host first, as llama.cpp's fit moves them).

    Searched in llama.cpp's steps (256 cells, one layer, one expert layer) up to the training context,
    each step's compute buffers from llama.cpp's own dry run; the next step of every answer is over.
    When the compute buffer is what stops an answer, the same search at -ub 256/128/64 is shown as
    an alternative. Budgets count allocated bytes (weights in full), the safe bound llama.cpp's --fit
    uses; --verify creates each answer for real.
    """
    from .api import fit as fit_  # it prestarts the dry run's worker (as launch.py does, earlier)
    from .flags import parse_flash_attn, parse_gpu_layers, placement_flags
    from .present.console import print_fit
    from .present.progress import Steps

    problems: list[str] = []
    flags = placement_flags(None, repack=repack, **placement)
    with Steps("fit") as progress:
        report = fit_(_model(model, hf_repo, hf_file), memory=memory, vram=vram, margin=margin, cache_types=cache_types,
                      defaults=defaults, n_gpu_layers=None if n_gpu_layers is None else parse_gpu_layers(n_gpu_layers),
                      offload_kqv=not no_kv_offload, repack=repack, placement=flags, ctx_size=ctx_size,
                      verify_answers=verify, results_dir=results_dir,
                      problems=problems, parallel=parallel, kv_unified=kv_unified, swa_full=swa_full,
                      batch_size=batch_size, ubatch_size=ubatch_size,
                      flash_attn=None if flash_attn is None else parse_flash_attn(flash_attn), progress=progress)
    _warn(problems)
    results, measured = report.results, report.verified
    if as_json:
        sys.stdout.write(json.dumps(report.to_json(), indent=2) + "\n")
    else:
        print_fit(report)
    if (measured and any(m.get("fits") is False for m in measured)) or not any(r.ctx_size for r in results):
        raise typer.Exit(ExitCode.FAIL)  # an answer that does not fit, or nothing fits at all


LLAMA_BENCH_FORMATS = ("csv", "json", "jsonl", "md", "sql")


@app.command()
@_one_line_errors
@_placement_options
def sweep(
    model: Optional[str] = MODEL,
    hf_repo: Optional[str] = HF_REPO,
    hf_file: Optional[str] = HF_FILE,
    cache_types: Optional[str] = CACHE_TYPE_LIST,
    cache_type_k: Optional[str] = CACHE_TYPE_K_LIST,
    cache_type_v: Optional[str] = CACHE_TYPE_V_LIST,
    ctx_sizes: Optional[str] = typer.Option(None, "--ctx-sizes", "-c", metavar="LIST", help="Comma-separated context sizes (4096, 32k). Default one: min(n_ctx_train, 32768, what fits in memory) -- memory at other sizes is predicted exactly by `estimate`, speed depends on the depth."),
    swa_full: Optional[str] = typer.Option(None, "--swa-full", metavar="on|off|both", help="Full-size SWA cache (only on models with SWA layers). Default off (tools, server) or on (library); both to measure the two."),
    parallel: Optional[str] = typer.Option(None, "--parallel", "-np", metavar="LIST", help="Comma-separated numbers of parallel sequences. Default 1, or 4 with --defaults server."),
    kv_unified: Optional[str] = typer.Option(None, "--kv-unified", "-kvu", metavar="on|off|both", help="Unified cache (only when parallel > 1). Default both, or on with --defaults server."),
    flash_attn: str = typer.Option("auto", "--flash-attn", "-fa", metavar="LIST", help="Comma-separated: on, off, auto (or 1, 0)."),
    defaults: str = DEFAULTS_OPTION,
    threads: Optional[int] = THREADS,
    batch_size: int = typer.Option(KVSettings.batch_size, "--batch-size", "-b", metavar="N"),
    ubatch_size: int = typer.Option(KVSettings.ubatch_size, "--ubatch-size", "-ub", metavar="N"),
    n_prompt: int = typer.Option(RunSettings.n_prompt, "--n-prompt", "-p", metavar="N", help="Prompt tokens per pp test (0: no pp test)."),
    n_gen: int = typer.Option(RunSettings.n_gen, "--n-gen", "-n", metavar="N", help="Generated tokens per tg test (0: no tg test)."),
    depth: Optional[str] = typer.Option(None, "--depth", "-d", metavar="LIST", help="Comma-separated context depths filled before each timed test. Default 0 and half the context (speed differs with depth)."),
    repetitions: str = REPETITIONS,
    n_gpu_layers: str = typer.Option("0", "--n-gpu-layers", "-ngl", metavar="LIST", help="Comma-separated layer counts to offload to the GPU ('all' or -1: every layer)."),
    kv_offload: str = typer.Option("on", "--kv-offload", metavar="on|off|both", help="on, off (llama.cpp's --no-kv-offload) or both."),
    repack: bool = REPACK_OPTION,
    placement: dict = None,  # _placement_options: llama.cpp's placement flags
    out: Optional[Path] = typer.Option(None, "--out", "-o", metavar="DIR", help="Output directory (default ./ggufprof-out/<model>-<timestamp>/). Results are always JSONL + CSV."),
    resume: bool = typer.Option(False, "--resume", help="Run only what --out's results.jsonl lacks (failed configurations are run again)."),
    retry_failed: bool = typer.Option(True, "--retry-failed/--no-retry-failed", help="With --resume: run failed configurations again (default) or keep them."),
    timeout: float = typer.Option(600, "--timeout", metavar="SECONDS", help="Seconds one configuration may run before it is killed."),
    strict: bool = typer.Option(False, "--strict", help="Exit 1 when any measurement disagrees with the prediction."),
    recheck: bool = typer.Option(False, "--recheck", help="Measure nothing: recompute predictions and checks of --out's results from their stored llama.cpp logs."),
    quality: bool = typer.Option(False, "--quality", help="Also measure each cache type's quality against f16/f16 (KL divergence, top-1, perplexity, as `ggufprof quality`), first; each record gets a quality block."),
    quality_ctx: Optional[str] = typer.Option(None, "--quality-ctx", metavar="N", help="With --quality: tokens per chunk of the text (llama-perplexity's -c). Default 2048, capped at n_ctx_train."),
    chunks: Optional[int] = typer.Option(None, "--chunks", metavar="N", help="With --quality: chunks of the text to evaluate (llama-perplexity's --chunks). Default all."),
    text: Optional[Path] = typer.Option(None, "--text", metavar="FILE", help="With --quality: a UTF-8 text. Default: the English text packaged with ggufprof."),
    llama_lib: Optional[Path] = LLAMA_LIB_OPTION,
) -> None:
    """Measure KV memory, RSS and tokens/s in real llama.cpp runs over a grid, checked against the model.

    Each configuration runs in its own worker process; results.jsonl gets a record as each one
    ends (Ctrl-C or SIGTERM keep what was measured; --resume goes on). Exit 1 when a configuration
    failed, or with --strict when a measurement disagrees with the prediction.
    """
    from rich.console import Console
    from rich.text import Text

    from .api import load_model, sweep as sweep_
    from .flags import on_off_both, parse_cache_type_grid, parse_count_list, parse_flash_attn_list, parse_int_list, \
        parse_gpu_layers_list, parse_repetitions, parse_seconds, parse_threads, placement_args, placement_flags
    from .measure.grid import GridSpec
    from .measure.sweep import Sweep, SweepSummary, default_out_dir, default_threads
    from .memory.settings import DEFAULTS, DEFAULTS_NOTE, check_profile
    from .present.console import DownloadBar
    from .present.sweep_view import SweepView
    from .present.quality_output import describe_text
    from .results.quality import quality_settings
    from .results.store import results_file

    if out is not None and str(out).lower() in LLAMA_BENCH_FORMATS and not out.exists():
        raise GgufprofError(f"-o {out}: ggufprof's -o/--out is the results directory (llama-bench's -o is a format); "
                            "results are always results.jsonl + results.csv, and `ggufprof export --format "
                            f"llama-bench` writes llama-bench JSONL. Use --out {Path.cwd() / out} to mean a directory named {out} "
                            f"(./{out} reads as {out})")
    prof = DEFAULTS[check_profile(defaults)]
    timeout = parse_seconds(timeout, "--timeout")
    pairs = parse_cache_type_grid(cache_types, cache_type_k, cache_type_v)
    spec = GridSpec(
        cache_types=pairs, ctx_sizes=parse_count_list(ctx_sizes, "--ctx-sizes", minimum=1) if ctx_sizes else [],
        swa_full=on_off_both(swa_full or ("on" if prof.swa_full else "off"), "--swa-full"),
        parallel=parse_int_list(parallel or str(prof.parallel), "--parallel", minimum=1),
        kv_unified=on_off_both(kv_unified or ("on" if prof.kv_unified else "both"), "--kv-unified"),
        flash_attn=parse_flash_attn_list(flash_attn), depths=parse_int_list(depth, "--depth") if depth is not None else [],
        threads=parse_threads(threads) or default_threads(), n_prompt=n_prompt, n_gen=n_gen, repetitions=parse_repetitions(repetitions),
        batch_size=batch_size, ubatch_size=ubatch_size, n_gpu_layers=parse_gpu_layers_list(n_gpu_layers),
        offload_kqv=on_off_both(kv_offload, "--kv-offload"),
        placement=placement_flags(None, repack=repack, **placement),
    )
    spec.validate()  # refused values: exit 2 before anything is read, run or rotated
    info = load_model(_model(model, hf_repo, hf_file), whole=True, progress=DownloadBar())  # --recheck: its sha256
    out_dir = out or default_out_dir(info.path)
    console = Console(stderr=False, highlight=False)
    if recheck:
        if out is None:
            raise GgufprofError("--recheck needs --out DIR (the results to check again)")
        results_file(out_dir)
        runner = Sweep(info, spec, out_dir)
        recs = runner.recheck()
        _warn(runner.problems)
        summary = SweepSummary(out_dir, records=recs)
        console.print(Text(f"rechecked {summary.count('ok')} records; {summary.mismatches} disagree with the prediction"))
        raise typer.Exit(ExitCode.FAIL if strict and summary.mismatches else ExitCode.PASS)
    console.print(Text.assemble((info.name, "bold"), f" ({info.architecture}) → {out_dir}/results.jsonl"))
    console.print(Text(f"unset axes: {DEFAULTS_NOTE[defaults]}", style="dim"))
    if shared := placement_args(spec.placement) + ([] if spec.placement.repack else ["--no-repack"]):
        console.print(Text(f"placement of every configuration (with each -ngl): {' '.join(shared)}", style="dim"))
    if info.n_ctx_train and spec.ctx_sizes and max(spec.ctx_sizes) > info.n_ctx_train:
        console.print(Text(f"warning: context sizes above the model's training context ({info.n_ctx_train}) "
                           "are measured, but llama.cpp warns of a possible training context overflow", style="yellow"))
    qs = None
    if quality:
        qs = quality_settings(pairs, quality_ctx, chunks, text, spec.threads, info.n_ctx_train, placement=spec.placement)
        console.print(Text(f"quality: every cache type against f16/f16 first ({describe_text(qs, info.n_ctx_train)})", style="dim"))
    elif quality_ctx or chunks or text:
        raise GgufprofError("--quality-ctx, --chunks and --text shape the quality measurement: add --quality")
    problems: list[str] = []
    with SweepView(console) as view:
        try:
            summary = sweep_(info, spec, out_dir, timeout=timeout, resume=resume, retry_failed=retry_failed,
                             quality=qs, on_start=view.started, on_record=view.finished, problems=problems)
        except KeyboardInterrupt:
            _warn(problems)
            console.print(Text(f"interrupted: the configurations measured so far are in {out_dir}/results.jsonl "
                               "and results.csv (--resume goes on)", style="yellow"))
            raise typer.Exit(130) from None
    _warn(problems)
    console.print(Text(
        f"{summary.count('ok')} measured, {summary.count('skipped')} skipped, {summary.count('failed')} failed"
        + (f", {summary.resumed} already in the results" if summary.resumed else "")
        + (f" ({summary.kept_failed} of them failed, kept by --no-retry-failed)" if summary.kept_failed else "")
        + f"; {summary.mismatches} disagree with the prediction. Results: {out_dir}/results.jsonl, results.csv"))
    for line in summary.quality_failures:  # one line per failed quality group: never hidden in the records
        typer.echo(printable(line, 1000), err=True)
    raise typer.Exit(summary.exit_code(strict))


@app.command()
@_one_line_errors
@_placement_options
def quality(
    model: Optional[str] = MODEL,
    hf_repo: Optional[str] = HF_REPO,
    hf_file: Optional[str] = HF_FILE,
    cache_types: Optional[str] = CACHE_TYPE_LIST,
    cache_type_k: Optional[str] = CACHE_TYPE_K_LIST,
    cache_type_v: Optional[str] = CACHE_TYPE_V_LIST,
    text: Optional[Path] = typer.Option(None, "--text", "--file", "-f", metavar="FILE", help="A UTF-8 text, tokenized by the model (llama-perplexity's -f). Default: the English text packaged with ggufprof (~44 KB)."),
    quality_ctx: Optional[str] = typer.Option(None, "--quality-ctx", "--ctx-size", "-c", metavar="N", help="Tokens per chunk (llama-perplexity's -c); the second half of each chunk is scored. Default 2048, capped at n_ctx_train."),
    chunks: Optional[int] = typer.Option(None, "--chunks", metavar="N", help="At most this many chunks (llama-perplexity's --chunks). Default all the text holds."),
    threads: Optional[int] = THREADS,
    flash_attn: str = typer.Option("auto", "--flash-attn", "-fa", metavar="on|off|auto", help="Flash attention, for the baseline and every cache type alike (a quantized V cache needs it)."),
    ubatch_size: int = typer.Option(QualitySettings.ubatch_size, "--ubatch-size", "-ub", metavar="N", help="Tokens per decode (n_ubatch); also bounds the logits held per context."),
    n_gpu_layers: str = typer.Option("0", "--n-gpu-layers", "-ngl", metavar="N|all", help="Layers offloaded to the GPU ('all' or -1: every layer)."),
    kv_offload: bool = typer.Option(True, "--kv-offload/--no-kv-offload", "-kvo/-nkvo", help="KV cache on the GPU with its layers (llama.cpp's default) or in host memory."),
    repack: bool = REPACK_OPTION,
    placement: dict = None,  # _placement_options: llama.cpp's placement flags
    timeout: float = typer.Option(3600, "--timeout", metavar="SECONDS", help="Seconds the whole measurement may run before it is killed."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON list, one object per cache type pair."),
    llama_lib: Optional[Path] = LLAMA_LIB_OPTION,
) -> None:
    """What each KV cache type costs in quality: the same text evaluated with an f16/f16 cache and with
    each cache type, compared at every scored position as llama-perplexity --kl-divergence does
    (mean/median/p99/max KL divergence, top-1 agreement, perplexity of both), in one run.

    The model is loaded once, in a worker process; one context per cache type plus the baseline are
    decoded chunk by chunk, and only one chunk piece's logits per context are held at a time.
    """
    from rich.console import Console
    from rich.text import Text

    from .api import load_model, quality as quality_
    from .flags import parse_cache_type_grid, parse_flash_attn, parse_seconds, parse_threads, placement_flags
    from .measure.quality import QualityFailed
    from .measure.sweep import default_threads
    from .present.console import DownloadBar, out_console
    from .present.progress import Steps
    from .present.quality_output import describe_text, kv_ratios, print_quality
    from .results.quality import quality_settings

    pairs = parse_cache_type_grid(cache_types, cache_type_k, cache_type_v)
    timeout = parse_seconds(timeout, "--timeout")
    placement = placement_flags(n_gpu_layers, repack=repack, **placement)
    if ubatch_size < 1:
        raise GgufprofError("--ubatch-size must be >= 1")
    info = load_model(_model(model, hf_repo, hf_file), whole=True, progress=DownloadBar())
    qs = quality_settings(pairs, quality_ctx, chunks, text, parse_threads(threads) or default_threads(), info.n_ctx_train,
                          parse_flash_attn(flash_attn), ubatch_size=ubatch_size, offload_kqv=kv_offload,
                          placement=placement)
    err = Console(stderr=True, highlight=False)
    if err.is_terminal:  # progress for people; scripts get nothing but the result (or one Error line)
        err.print(Text(f"{printable(info.name)}: {', '.join(f'{k}/{v}' for k, v in pairs)} against f16/f16 over "
                       f"{describe_text(qs, info.n_ctx_train)}", style="dim"))
    try:
        with Steps("quality", "chunks") as progress:
            run = quality_(info, qs, timeout, progress=progress)
    except QualityFailed as e:
        typer.echo(f"Error: {printable(str(e), 4000)}", err=True)
        raise typer.Exit(ExitCode.FAIL) from None
    if as_json:
        sys.stdout.write(json.dumps(run["results"], indent=2) + "\n")
        return
    print_quality(out_console(140), info.name, run, kv_ratios(info, pairs))


@app.command()
@_one_line_errors
def download(model: Optional[str] = MODEL, hf_repo: Optional[str] = HF_REPO,
             hf_file: Optional[str] = HF_FILE) -> None:
    """Download a model (a URL or --hf-repo) whole into llama.cpp's cache, as llama.cpp's -mu/-hf do,
    and print its path; resumed when interrupted, checked against the server's size and sha256."""
    from .api import download as download_
    from .present.console import DownloadBar

    typer.echo(str(download_(_model(model, hf_repo, hf_file), DownloadBar()).path))


@app.command()
@_one_line_errors
def speedup(
    model: Optional[str] = MODEL,
    hf_repo: Optional[str] = HF_REPO,
    hf_file: Optional[str] = HF_FILE,
    n_gen: str = typer.Option("32,128,512", "--n-gen", "-n", metavar="LIST", help="Comma-separated numbers of tokens to generate (32,128,512,1024), each with and without the cache. Without it the work grows as n²/2."),
    threads: Optional[int] = THREADS,
    repetitions: str = REPETITIONS,
    repack: bool = REPACK_OPTION,
    out: Optional[Path] = typer.Option(None, "--out", "-o", metavar="DIR", help="Append the record to DIR/speedup.jsonl (beside a sweep's results.jsonl), which `ggufprof report DIR` draws."),
    timeout: float = typer.Option(3600, "--timeout", metavar="SECONDS", help="Seconds the whole run may take before it is killed."),
    as_json: bool = JSON,
) -> None:
    """What the KV cache buys: n tokens generated with the cache against the same n tokens where every
    step clears the memory and re-evaluates the whole prefix (what an implementation without a cache
    does), timed per token in real llama.cpp runs, and the speed-up per n.

    Runs in a worker process as the sweep's; the tokens llama.cpp evaluated per step (its own counters:
    1 with the cache, position + 1 without) are recorded and checked. Exit 1 when the worker failed.
    """
    from rich.console import Console
    from rich.text import Text

    from .api import speedup as speedup_
    from .flags import parse_count_list, parse_repetitions, parse_seconds, parse_threads
    from .measure.speedup import SpeedupFailed
    from .present.console import out_console
    from .present.progress import Steps
    from .present.speedup_output import print_speedup

    ns = sorted(parse_count_list(n_gen, "--n-gen", minimum=1))
    reps = parse_repetitions(repetitions)
    timeout = parse_seconds(timeout, "--timeout")
    threads = parse_threads(threads)
    err = Console(stderr=True, highlight=False)
    if err.is_terminal:
        work = sum(n * (n + 1) // 2 for n in ns)
        err.print(Text(f"timing {', '.join(map(str, ns))} generated tokens with and without the KV cache "
                       f"(without: {work:,} tokens evaluated per repetition)", style="dim"))
    try:
        with Steps("speedup", "tokens") as progress:
            rec = speedup_(_model(model, hf_repo, hf_file), ns, threads=threads, repetitions=reps, repack=repack,
                           timeout=timeout, out=out, progress=progress)
    except SpeedupFailed as e:
        typer.echo(f"Error: {printable(str(e), 4000)}", err=True)
        raise typer.Exit(1) from None
    if as_json:
        _emit_json(rec.to_dict())
        return
    print_speedup(rec, out_console(100))
    if out is not None:
        typer.echo(f"record appended to {out / 'speedup.jsonl'} (ggufprof report {out} draws it)")


@app.command()
@_one_line_errors
def results(
    paths: list[Path] = typer.Argument(..., metavar="DIR...", help="Result directories (or results.jsonl files)."),
    csv: Optional[Path] = typer.Option(None, "--csv", help="Write the flattened table to this CSV file."),
) -> None:
    """Load sweep results into pandas and print a summary (the same DataFrame notebooks get from
    ggufprof.results.load_dataframe). Lines that cannot be read are skipped, each said on stderr."""
    from .api import load_results
    from .present.sweep_view import NOISE_COLUMNS, RESULT_COLUMNS, results_text
    from .results import files
    from .results.store import refuse_overwrite

    refuse_overwrite(csv, paths)
    problems: list[str] = []
    df = load_results(*paths, columns=None if csv else [*RESULT_COLUMNS, *NOISE_COLUMNS], problems=problems)  # --csv: all
    _warn(problems)
    typer.echo(results_text(df))
    if csv:
        with files.replacing(csv) as f:
            df.to_csv(f, index=False)
        typer.echo(f"wrote {csv}")


@app.command()
@_one_line_errors
def report(
    paths: list[Path] = typer.Argument(..., metavar="DIR...", help="Result directories of one model (e.g. the same sweep on several hosts)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Output directory (default: the first result directory)."),
) -> None:
    """Write report.html (self-contained) and report.md with its plots from sweep results; nothing is re-measured."""
    from .present.report import write_report

    problems: list[str] = []
    written = write_report(paths, out, problems)
    _warn(problems)
    typer.echo(f"wrote {written['html']} and {written['md']} (+{len(written) - 2} plot PNGs)")


@app.command()
@_one_line_errors
def compare(
    baseline: Path = typer.Argument(..., metavar="BASELINE", help="Baseline result directory (or results.jsonl)."),
    new: Path = typer.Argument(..., metavar="NEW", help="New result directory (or results.jsonl)."),
    max_kv_increase: str = typer.Option(f"{Thresholds.max_kv_increase:g}", "--max-kv-increase", help="KV size growth allowed (predicted bytes and llama.cpp's logged MiB), e.g. 0, 0.5% or 0.005. Default 0: the KV cache is deterministic."),
    max_mem_increase: str = typer.Option(f"{Thresholds.max_mem_increase:.0%}", "--max-mem-increase", help="RSS growth allowed (at context creation and peak), e.g. 1% or 0.01."),
    rss_noise: str = typer.Option(f"{Thresholds.rss_noise >> 20} MiB", "--rss-noise", help="RSS change always ignored (page and allocator noise), e.g. '1 MiB' or bytes."),
    max_tps_drop: str = typer.Option(f"{Thresholds.max_tps_drop:.0%}", "--max-tps-drop", help="Minimum drop of mean tokens/s (pp, tg) that can count as a regression."),
    alpha: float = typer.Option(Thresholds.alpha, "--alpha", help="Significance level of the one-sided Welch t / Mann-Whitney U tests."),
    max_kld_increase: float = typer.Option(Thresholds.max_kld_increase, "--max-kld-increase", metavar="NATS", help="Growth of the mean KL divergence against f16/f16 (sweep --quality) that counts as a regression, in nats (absolute)."),
    force: bool = typer.Option(False, "--force", help="Compare results of different models or machines anyway."),
    allow_noisy: bool = typer.Option(False, "--allow-noisy", help="Exit 0 instead of 3 when speed comparisons are inconclusive (noisy samples, fewer than 2 samples, a large change the samples do not confirm); they are still reported."),
    strict_noise: bool = typer.Option(False, "--strict-noise", hidden=True, help="Deprecated: the default now (noise never hides a significant change)."),
    allow_missing: bool = typer.Option(False, "--allow-missing", help="Do not fail when configurations ok in the baseline, or metrics compared in the baseline, are missing, failed, skipped or not comparable in the new results, or when nothing matched."),
    fmt: str = typer.Option("table", "--format", "-f", help="table, md (GitHub markdown), json or junit (XML)."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Write to this file instead of stdout."),
) -> None:
    """Compare two sweeps for CI: exit 0 pass; 1 on a regression, or when a configuration or metric of
    the baseline is missing, failed, skipped or not comparable in the new results (or nothing matched);
    2 on bad input (a configuration twice in one input included); 3 when nothing failed but speed
    comparisons are inconclusive (noise, too few samples; --allow-noisy accepts them).

    Memory (KV bytes, RSS) is deterministic and compared exactly against its threshold; tokens/s is
    flagged only when the drop is significant (Welch's t or Mann-Whitney U, one-sided, at --alpha)
    AND larger than --max-tps-drop; quality (sweep --quality) when the mean KLD against f16/f16
    grows by more than --max-kld-increase. Configurations are matched by what their settings mean
    (a setting an older record lacks takes its default).
    """
    from .api import compare as compare_
    from .flags import parse_fraction, parse_size
    from .present.compare_output import FORMATS, print_table, to_json, to_junit, to_markdown
    from .present.console import out_console
    from .results import files
    from .results.store import refuse_overwrite

    fmt = fmt.lower()
    if fmt not in FORMATS:
        raise GgufprofError(f"--format must be one of {', '.join(FORMATS)}, got '{fmt}'")
    if not 0 < alpha < 1:
        raise GgufprofError(f"--alpha must be between 0 and 1, got {alpha}")
    if strict_noise and allow_noisy:
        raise GgufprofError("--strict-noise and --allow-noisy contradict each other (--strict-noise is the default now)")
    if strict_noise:
        typer.echo("warning: --strict-noise is the default now: noise never hides a significant change, and what it "
                   "leaves undecided is inconclusive (exit 3); the flag can be dropped", err=True)
    th = Thresholds(parse_fraction(max_kv_increase, "--max-kv-increase"),
                    parse_fraction(max_mem_increase, "--max-mem-increase"), parse_size(rss_noise, "--rss-noise"),
                    parse_fraction(max_tps_drop, "--max-tps-drop"), alpha,
                    parse_fraction(max_kld_increase, "--max-kld-increase"))
    refuse_overwrite(output, [baseline, new])
    problems: list[str] = []
    try:
        result = compare_(baseline, new, th, force=force, allow_missing=allow_missing, allow_noisy=allow_noisy,
                          problems=problems)
    finally:  # the lines skipped are said even when the comparison is refused (a configuration twice, ...)
        _warn(problems)
    if fmt == "table":
        from rich.console import Console

        if output:
            with files.replacing(output) as f:
                print_table(result, Console(file=f, width=160, no_color=True, highlight=False))
        else:
            print_table(result, out_console(160))
    else:
        text = {"md": to_markdown, "json": to_json, "junit": to_junit}[fmt](result)
        if output:
            files.write_file(output, text)
        else:
            sys.stdout.write(text)
    raise typer.Exit(result.exit_code)


@app.command()
@_one_line_errors
def check(
    deploy_file: Path = typer.Argument(..., metavar="DEPLOY.toml", help="TOML file with \\[\\[deployment]] tables and their \\[deployment.limits]."),
    estimate_only: bool = typer.Option(False, "--estimate-only", help="Only predict memory and check max_kv_bytes; run nothing."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Directory for the measurements (OUT/<name>/results.jsonl); default a temporary one."),
    timeout: float = typer.Option(600, "--timeout", help="Seconds one deployment's run may take before it is killed."),
    allow_inconclusive: bool = typer.Option(False, "--allow-inconclusive", help="Exit 0 instead of 3 when a measured run left a limit without a reading (max_vram without NVML); still reported."),
) -> None:
    """Check deployments against their limits (KV bytes, RSS, VRAM, tokens/s, KLD): exit 0 when all pass,
    1 when a limit is broken or a deployment's run did not complete, 2 on a bad file (one line naming
    the key and its line), 3 when a measured limit had no reading (--allow-inconclusive accepts it)."""
    from rich.text import Text

    from .api import check as check_
    from .flags import parse_seconds
    from .present.console import out_console
    from .present.deploy_output import print_checks
    from .results.deploy_check import outcome

    timeout = parse_seconds(timeout, "--timeout")  # before the file is read: a bad flag is the first error
    console = out_console(160)

    def started(dep) -> None:
        kv = dep.run.kv
        console.print(Text.assemble((dep.name, "bold"), f": {printable(dep.model.name)}, ctx {kv.ctx_size}, "
                                    f"{kv.cache_type_k}/{kv.cache_type_v}, {kv.parallel} seq" + ("" if estimate_only else
                                    f" → measuring ({dep.run.n_prompt} prompt + {dep.run.n_gen} generated tokens "
                                    f"x {dep.run.repetitions})")))

    runs = check_(deploy_file, estimate_only=estimate_only, out=out, timeout=timeout, on_deployment=started)
    for run in runs:
        rec = run.record
        if rec is not None and rec.status != "ok":
            console.print(Text(printable(f"{run.deployment.name}: {rec.status}: {rec.reason}", 4000), style="red"))
    rows = [row for run in runs for row in run.checks]
    print_checks(rows, console, [run.deployment for run in runs])
    if out:
        console.print(Text(f"measurements: {printable(str(out))}/<deployment>/results.jsonl"))
    raise typer.Exit(outcome(rows, allow_inconclusive))


@app.command()
@_one_line_errors
def export(
    path: Path = typer.Argument(..., metavar="DIR", help="Result directory (or results.jsonl)."),
    fmt: str = typer.Option("llama-bench", "--format", "-f", help="Output format: llama-bench (its -o jsonl lines)."),
    output_arg: Optional[str] = typer.Option(None, "--output", "-o", metavar="FILE", help="Write to this file instead of stdout (a bare format word such as json is refused: the format is --format; ./json names a file)."),
    build_commit: Optional[str] = typer.Option(None, "--build-commit", help="build_commit to write (compare-llama-bench.py compares builds by it). Default: llama-cpp-python-<version>."),
) -> None:
    """Write sweep results as llama-bench JSONL: one pp and one tg test per configuration, readable
    by llama.cpp's scripts/compare-llama-bench.py."""
    from .results.llama_bench_io import write_export
    from .results.store import load_records, refuse_overwrite

    if fmt != "llama-bench":
        raise GgufprofError(f"--format: only llama-bench is supported, got '{fmt}'")
    if output_arg is not None and output_arg.lower() in (*LLAMA_BENCH_FORMATS, "llama-bench"):
        # llama-bench's -o is a format; here it is a file: a file named json would be a surprise (and
        # later stands where `sweep -o json` would make its directory)
        raise GgufprofError(f"-o {output_arg}: export's -o/--output is the file to write, and its format is "
                            f"--format (llama-bench JSONL); write -o {output_arg}.jsonl, or -o ./{output_arg} to "
                            f"mean a file named {output_arg}")
    output = None if output_arg is None else Path(output_arg)
    refuse_overwrite(output, [path])
    problems: list[str] = []
    text = write_export(load_records(path, problems), output, build_commit)
    _warn(problems)
    if output is None:
        sys.stdout.write(text)
    else:
        typer.echo(f"wrote {text.count(chr(10))} llama-bench tests to {output}", err=True)


@app.command(name="import")
@_one_line_errors
def import_(
    path: Path = typer.Argument(..., metavar="FILE.jsonl", help="llama-bench output (-o jsonl, or -o json)."),
    out: Path = typer.Option(..., "--out", "-o", help="Result directory to write results.jsonl and results.csv into."),
) -> None:
    """Turn llama-bench results into ggufprof records (env.source = llama-bench; a pp and a tg test of
    the same settings become one record), so reports show them beside our sweeps."""
    from .results.llama_bench_io import import_llama_bench, write_records

    summary = import_llama_bench(path)
    if not summary.records:
        raise GgufprofError(f"{path}: no pp or tg tests to import")
    written = write_records(summary.records, out)
    typer.echo(f"imported {summary.lines} llama-bench tests as {len(summary.records)} records into {written}"
               + (f"; {summary.ignored_pg} combined -pg tests left out (ggufprof times pp and tg apart)"
                  if summary.ignored_pg else ""))


def main() -> None:
    app()
