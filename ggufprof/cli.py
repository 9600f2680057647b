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
from typing import Callable, Optional

import typer

from .errors import GgufprofError
from .flags import DEFAULT_CACHE_TYPES, DEFAULT_FIT_MARGIN
from .memory.settings import KVSettings
from .results.compare import Thresholds
from .results.quality import QualitySettings
from .results.run_settings import RunSettings
from .units import printable

app = typer.Typer(
    help="What the llama.cpp KV cache costs you: predicted byte-exactly, measured in real runs.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",  # help text brackets are escaped (\\[) where they must show
    add_completion=False,
)

MODEL = typer.Argument(..., metavar="MODEL.gguf", help="Path to a GGUF model file.", show_default=False)
JSON = typer.Option(False, "--json", help="Print one JSON object instead of tables.")
# the cache types that sweep and quality compare (flags.parse_cache_type_grid)
CACHE_TYPE_LIST = typer.Option(None, "--cache-types", "-ct", metavar="LIST", help="Comma-separated cache types for K and V; K:V for a mixed pair (q8_0:q4_0). Default f16,q8_0,q4_0.")
CACHE_TYPE_K_LIST = typer.Option(None, "--cache-type-k", "-ctk", metavar="LIST", help="K cache types; with -ctv, every K x V pair (as llama-bench runs them).")
CACHE_TYPE_V_LIST = typer.Option(None, "--cache-type-v", "-ctv", metavar="LIST", help="V cache types (see -ctk).")


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


def _one_line_errors(fn: Callable) -> Callable:
    """The CLI's one error boundary: a GgufprofError or output that cannot be written is one
    ``Error:`` line and exit 2; a reader that stopped reading changes nothing."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        if sys.stdout is None:  # started with stdout closed (>&-): a file opened now could get descriptor 1
            typer.echo("Error: standard output is closed: redirect it (> FILE, or > /dev/null to discard it)",
                       err=True)
            raise typer.Exit(2)
        out = sys.stdout = _Output(sys.stdout)
        err = sys.stderr = _Output(sys.stderr) if sys.stderr is not None else None  # 2>&-: nowhere to say anything
        code = 0
        try:
            fn(*args, **kwargs)
        except typer.Exit as e:
            code = e.exit_code
        except GgufprofError as e:  # one line, whatever the data in the message holds
            typer.echo(f"Error: {printable(str(e), 4000)}", err=True)
            code = 2
        finally:
            for guard in (out, err):
                if guard is not None:
                    guard.flush()
            sys.stdout, sys.stderr = out.stream, err.stream if err is not None else None
        if out.failed is not None:
            typer.echo(f"Error: cannot write to standard output: {out.failed.strerror or out.failed}", err=True)
            code = 2
        if code:
            raise typer.Exit(code)
    return wrapper


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
def inspect(model: Path = MODEL, as_json: bool = JSON) -> None:
    """Show a model's layers, what memory each keeps, and the KV bytes one token costs per cache type."""
    from .model.model_info import load_model_info
    from .present.console import inspect_json, print_inspect

    info = load_model_info(model)
    if as_json:
        _emit_json(inspect_json(info))
    else:
        print_inspect(info)


@app.command()
@_one_line_errors
def estimate(
    model: Path = MODEL,
    ctx_size: Optional[str] = typer.Option(None, "--ctx-size", "-c", metavar="N", help="Context size in tokens (llama.cpp's n_ctx): 4096, 32k; 0 = the model's training context. Default 512 (library) or 0 (server)."),
    cache_type: Optional[str] = typer.Option(None, "--cache-type", "-ct", metavar="TYPE", help="K and V cache type at once (q8_0), or K:V (q8_0:q4_0)."),
    cache_type_k: Optional[str] = typer.Option(None, "--cache-type-k", "-ctk", metavar="TYPE", help="K cache type: f32, f16, bf16, q8_0, q4_0, q4_1, iq4_nl, q5_0, q5_1 (default f16)."),
    cache_type_v: Optional[str] = typer.Option(None, "--cache-type-v", "-ctv", metavar="TYPE", help="V cache type (default f16; quantized V needs flash attention)."),
    parallel: Optional[int] = typer.Option(None, "--parallel", "-np", metavar="N", help="Number of parallel sequences (n_seq_max). Default 1 (library) or 4 (server)."),
    kv_unified: Optional[bool] = typer.Option(None, "--kv-unified/--no-kv-unified", "-kvu", help="One KV buffer shared by all sequences. Default off (library) or on (server)."),
    swa_full: Optional[bool] = typer.Option(None, "--swa-full/--no-swa-full", help="Full-size SWA cache. Default on (library); llama-cli and llama-server use off."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", "-b", metavar="N", help="Logical batch size (n_batch, default 2048)."),
    ubatch_size: Optional[int] = typer.Option(None, "--ubatch-size", "-ub", metavar="N", help="Physical batch size (n_ubatch, default 512); sizes the SWA cache."),
    flash_attn: Optional[str] = typer.Option(None, "--flash-attn", "-fa", metavar="on|off|auto", help="Default auto. Off transposes V, which pads V rows to the widest layer (also 1/0)."),
    defaults: str = typer.Option("library", "--defaults", metavar="library|server", help="Defaults of unset flags: llama.cpp's library (llama_context_default_params) or llama-server's."),
    n_gpu_layers: Optional[str] = typer.Option(None, "--n-gpu-layers", "-ngl", metavar="N|all", help="Layers offloaded to one GPU (the output layer counts as one; all or -1 = every layer): splits KV and weights per device."),
    no_kv_offload: bool = typer.Option(False, "--no-kv-offload", "-nkvo", help="Keep the KV cache in host memory even for offloaded layers."),
    total: bool = typer.Option(False, "--total", help="The whole footprint per device: weights, KV, recurrent state, compute and output buffers (compute from llama.cpp's own dry run)."),
    as_json: bool = JSON,
) -> None:
    """Predict every KV cache and recurrent state llama.cpp allocates, byte-exactly.

    Unset flags take llama.cpp's library defaults (llama_context_default_params: n_ctx 512, f16/f16,
    1 sequence, per-sequence cache, swa_full on, n_batch 2048, n_ubatch 512, flash attention auto),
    or with --defaults server llama-server's (training context, 4 slots, unified cache, swa_full off).
    """
    from .api import estimate as estimate_
    from .flags import parse_cache_types, parse_count, parse_flash_attn, parse_gpu_layers
    from .memory.settings import DEFAULTS_NOTE
    from .present.console import estimate_json, print_estimate

    tk = tv = None
    if cache_type is not None:
        ((tk, tv),) = parse_cache_types(cache_type, flag="--cache-type")
    if cache_type_k is not None or cache_type_v is not None:
        ((tk, tv),) = parse_cache_types(None, cache_type_k or tk or "f16", cache_type_v or tv or "f16")
    est = estimate_(
        model, defaults=defaults, n_gpu_layers=None if n_gpu_layers is None else parse_gpu_layers(n_gpu_layers),
        offload_kqv=not no_kv_offload, total=total,
        ctx_size=None if ctx_size is None else parse_count(ctx_size, "--ctx-size"), cache_type_k=tk, cache_type_v=tv,
        parallel=parallel, kv_unified=kv_unified, swa_full=swa_full, batch_size=batch_size, ubatch_size=ubatch_size,
        flash_attn=None if flash_attn is None else parse_flash_attn(flash_attn))
    if as_json:
        extra = {"total": {d.device: d.to_dict() for d in est.devices}} if est.devices is not None else {}
        _emit_json({**estimate_json(est.model, est.prediction, est.placement), "defaults": defaults, **extra})
    else:
        print_estimate(est.model, est.prediction, placement=est.placement, defaults_note=DEFAULTS_NOTE[defaults],
                       devices=est.devices)


@app.command()
@_one_line_errors
def fit(
    model: Path = MODEL,
    memory: Optional[str] = typer.Option(None, "--memory", metavar="SIZE", help="Host memory budget (8GiB, 16 GB): weights, KV, state, compute and output in host memory must fit."),
    vram: Optional[str] = typer.Option(None, "--vram", metavar="SIZE", help="GPU memory budget per GPU, with -ngl (default all layers when a GPU is visible)."),
    margin: str = typer.Option(f"{DEFAULT_FIT_MARGIN >> 20} MiB", "--margin", metavar="SIZE", help="Kept free on each budgeted device (llama.cpp's --fit-target default, 1024 MiB)."),
    cache_types: str = typer.Option(DEFAULT_CACHE_TYPES, "--cache-types", "-ct", metavar="LIST", help="Cache types; K:V for a mixed pair."),
    parallel: Optional[int] = typer.Option(None, "--parallel", "-np", metavar="N", help="Sequences: the context found is per sequence (n_ctx = N x that unless unified)."),
    kv_unified: Optional[bool] = typer.Option(None, "--kv-unified/--no-kv-unified", "-kvu"),
    swa_full: Optional[bool] = typer.Option(None, "--swa-full/--no-swa-full"),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", "-b", metavar="N"),
    ubatch_size: Optional[int] = typer.Option(None, "--ubatch-size", "-ub", metavar="N"),
    flash_attn: Optional[str] = typer.Option(None, "--flash-attn", "-fa", metavar="on|off|auto"),
    defaults: str = typer.Option("library", "--defaults", metavar="library|server"),
    n_gpu_layers: Optional[str] = typer.Option(None, "--n-gpu-layers", "-ngl", metavar="N|all", help="Layers on the GPU (all or -1 = every layer, the default when a GPU is visible)."),
    no_kv_offload: bool = typer.Option(False, "--no-kv-offload", "-nkvo"),
    results_dir: Optional[Path] = typer.Option(None, "--results", metavar="DIR", help="A sweep of this model: say what the cache type with the most context costs in speed."),
    verify: bool = typer.Option(False, "--verify", help="Create each answer for real, decode a batch, and compare measured memory with the prediction; exit 1 if one does not fit."),
    as_json: bool = JSON,
) -> None:
    """The largest context per cache type whose whole footprint fits a memory budget.

    Searched in llama.cpp's 256-cell steps up to the training context, each step's compute buffers
    from llama.cpp's own dry run. Budgets count allocated bytes (weights in full), the safe bound
    llama.cpp's --fit uses; --verify measures what is resident.
    """
    from .api import fit as fit_
    from .flags import parse_flash_attn, parse_gpu_layers
    from .present.console import print_fit, speed_note

    report = fit_(model, memory=memory, vram=vram, margin=margin, cache_types=cache_types, defaults=defaults,
                  n_gpu_layers=None if n_gpu_layers is None else parse_gpu_layers(n_gpu_layers),
                  offload_kqv=not no_kv_offload, verify_answers=verify, parallel=parallel, kv_unified=kv_unified,
                  swa_full=swa_full, batch_size=batch_size, ubatch_size=ubatch_size,
                  flash_attn=None if flash_attn is None else parse_flash_attn(flash_attn))
    results, measured = report.results, report.verified
    note = speed_note(results, results_dir) if results_dir else None
    if as_json:
        sys.stdout.write(json.dumps([{**r.to_dict(), **({"verify": measured[i]} if measured else {})}
                                     for i, r in enumerate(results)], indent=2) + "\n")
    else:
        print_fit(report.model, results, report.budget, report.base, note, measured)
    if measured and any(m.get("fits") is False for m in measured):
        raise typer.Exit(1)


LLAMA_BENCH_FORMATS = ("csv", "json", "jsonl", "md", "sql")


@app.command()
@_one_line_errors
def sweep(
    model: Path = MODEL,
    cache_types: Optional[str] = CACHE_TYPE_LIST,
    cache_type_k: Optional[str] = CACHE_TYPE_K_LIST,
    cache_type_v: Optional[str] = CACHE_TYPE_V_LIST,
    ctx_sizes: Optional[str] = typer.Option(None, "--ctx-sizes", "-c", metavar="LIST", help="Comma-separated context sizes (4096, 32k). Default one: min(n_ctx_train, 32768, what fits in memory) -- memory at other sizes is predicted exactly by `estimate`, speed depends on the depth."),
    swa_full: Optional[str] = typer.Option(None, "--swa-full", metavar="on|off|both", help="Full-size SWA cache (only on models with SWA layers). Default on (library) or off (server); both to measure the two."),
    parallel: Optional[str] = typer.Option(None, "--parallel", "-np", metavar="LIST", help="Comma-separated numbers of parallel sequences. Default 1 (library) or 4 (server)."),
    kv_unified: Optional[str] = typer.Option(None, "--kv-unified", "-kvu", metavar="on|off|both", help="Unified cache (only when parallel > 1). Default both (library) or on (server)."),
    flash_attn: str = typer.Option("auto", "--flash-attn", "-fa", metavar="LIST", help="Comma-separated: on, off, auto (or 1, 0)."),
    defaults: str = typer.Option("library", "--defaults", metavar="library|server", help="Defaults of unset axes: llama.cpp's library or llama-server's (4 slots, unified, swa_full off)."),
    threads: Optional[int] = typer.Option(None, "--threads", "-t", metavar="N", help="Threads (default: physical cores)."),
    batch_size: int = typer.Option(KVSettings.batch_size, "--batch-size", "-b", metavar="N"),
    ubatch_size: int = typer.Option(KVSettings.ubatch_size, "--ubatch-size", "-ub", metavar="N"),
    n_prompt: int = typer.Option(RunSettings.n_prompt, "--n-prompt", "-p", metavar="N", help="Prompt tokens per pp test (0: no pp test)."),
    n_gen: int = typer.Option(RunSettings.n_gen, "--n-gen", "-n", metavar="N", help="Generated tokens per tg test (0: no tg test)."),
    depth: Optional[str] = typer.Option(None, "--depth", "-d", metavar="LIST", help="Comma-separated context depths filled before each timed test. Default 0 and half the context (speed differs with depth)."),
    repetitions: str = typer.Option(str(RunSettings.repetitions), "--repetitions", "-r", metavar="N|auto", help="Timed repetitions after one warm-up; auto: until the 95% CI of the mean is within ±3% (3 to 20)."),
    n_gpu_layers: str = typer.Option("0", "--n-gpu-layers", "-ngl", metavar="LIST", help="Comma-separated layer counts to offload to the GPU ('all' or -1: every layer)."),
    kv_offload: str = typer.Option("on", "--kv-offload", metavar="on|off|both", help="on, off (llama.cpp's --no-kv-offload) or both."),
    repack: bool = typer.Option(True, "--repack/--no-repack", help="Repacked CPU weight buffers (llama.cpp's default; AMX, ...). --no-repack when they crash on this CPU."),
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
        parse_gpu_layers_list, parse_repetitions, parse_seconds
    from .measure.grid import GridSpec
    from .measure.sweep import Sweep, SweepSummary, default_out_dir, default_threads
    from .memory.settings import DEFAULTS_NOTE
    from .present.sweep_view import SweepView
    from .present.quality_output import describe_text
    from .results.quality import quality_settings
    from .results.store import results_file

    if out is not None and str(out).lower() in LLAMA_BENCH_FORMATS and not out.exists():
        raise GgufprofError(f"-o {out}: ggufprof's -o/--out is the results directory (llama-bench's -o is a format); "
                            "results are always results.jsonl + results.csv, and `ggufprof export --format "
                            f"llama-bench` writes llama-bench JSONL. Use --out ./{out} to mean a directory named {out}.")
    if defaults not in DEFAULTS_NOTE:
        raise GgufprofError(f"--defaults must be library or server, got '{defaults}'")
    server = defaults == "server"
    timeout = parse_seconds(timeout, "--timeout")
    pairs = parse_cache_type_grid(cache_types, cache_type_k, cache_type_v)
    spec = GridSpec(
        cache_types=pairs, ctx_sizes=parse_count_list(ctx_sizes, "--ctx-sizes", minimum=1) if ctx_sizes else [],
        swa_full=on_off_both(swa_full or ("off" if server else "on"), "--swa-full"),
        parallel=parse_int_list(parallel or ("4" if server else "1"), "--parallel", minimum=1),
        kv_unified=on_off_both(kv_unified or ("on" if server else "both"), "--kv-unified"),
        flash_attn=parse_flash_attn_list(flash_attn), depths=parse_int_list(depth, "--depth") if depth is not None else [],
        threads=threads or default_threads(), n_prompt=n_prompt, n_gen=n_gen, repetitions=parse_repetitions(repetitions),
        batch_size=batch_size, ubatch_size=ubatch_size, n_gpu_layers=parse_gpu_layers_list(n_gpu_layers), repack=repack,
        offload_kqv=on_off_both(kv_offload, "--kv-offload"),
    )
    spec.validate()  # refused values: exit 2 before anything is read, run or rotated
    info = load_model(model)
    out_dir = out or default_out_dir(model)
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
        raise typer.Exit(1 if strict and summary.mismatches else 0)
    console.print(Text.assemble((info.name, "bold"), f" ({info.architecture}) → {out_dir}/results.jsonl"))
    console.print(Text(f"unset axes: {DEFAULTS_NOTE[defaults]}", style="dim"))
    if info.n_ctx_train and spec.ctx_sizes and max(spec.ctx_sizes) > info.n_ctx_train:
        console.print(Text(f"warning: context sizes above the model's training context ({info.n_ctx_train}) "
                           "are measured, but llama.cpp warns of a possible training context overflow", style="yellow"))
    qs = None
    if quality:
        qs = quality_settings(pairs, quality_ctx, chunks, text, spec.threads, info.n_ctx_train, repack=repack)
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
    if summary.count("failed") or summary.kept_failed or (strict and summary.mismatches):
        raise typer.Exit(1)


@app.command()
@_one_line_errors
def quality(
    model: Path = MODEL,
    cache_types: Optional[str] = CACHE_TYPE_LIST,
    cache_type_k: Optional[str] = CACHE_TYPE_K_LIST,
    cache_type_v: Optional[str] = CACHE_TYPE_V_LIST,
    text: Optional[Path] = typer.Option(None, "--text", "--file", "-f", metavar="FILE", help="A UTF-8 text, tokenized by the model (llama-perplexity's -f). Default: the English text packaged with ggufprof (~44 KB)."),
    quality_ctx: Optional[str] = typer.Option(None, "--quality-ctx", "--ctx-size", "-c", metavar="N", help="Tokens per chunk (llama-perplexity's -c); the second half of each chunk is scored. Default 2048, capped at n_ctx_train."),
    chunks: Optional[int] = typer.Option(None, "--chunks", metavar="N", help="At most this many chunks (llama-perplexity's --chunks). Default all the text holds."),
    threads: Optional[int] = typer.Option(None, "--threads", "-t", metavar="N", help="Threads (default: physical cores)."),
    flash_attn: str = typer.Option("auto", "--flash-attn", "-fa", metavar="on|off|auto", help="Flash attention, for the baseline and every cache type alike (a quantized V cache needs it)."),
    ubatch_size: int = typer.Option(QualitySettings.ubatch_size, "--ubatch-size", "-ub", metavar="N", help="Tokens per decode (n_ubatch); also bounds the logits held per context."),
    n_gpu_layers: str = typer.Option("0", "--n-gpu-layers", "-ngl", metavar="N|all", help="Layers offloaded to the GPU ('all' or -1: every layer)."),
    kv_offload: bool = typer.Option(True, "--kv-offload/--no-kv-offload", "-kvo/-nkvo", help="KV cache on the GPU with its layers (llama.cpp's default) or in host memory."),
    repack: bool = typer.Option(True, "--repack/--no-repack", help="Repacked CPU weight buffers (llama.cpp's default). --no-repack when they crash on this CPU."),
    timeout: float = typer.Option(3600, "--timeout", metavar="SECONDS", help="Seconds the whole measurement may run before it is killed."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON list, one object per cache type pair."),
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
    from .flags import parse_cache_type_grid, parse_flash_attn, parse_gpu_layers, parse_seconds
    from .measure.quality import QualityFailed
    from .measure.sweep import default_threads
    from .present.console import out_console
    from .present.quality_output import describe_text, kv_ratios, print_quality
    from .results.quality import quality_settings

    pairs = parse_cache_type_grid(cache_types, cache_type_k, cache_type_v)
    timeout = parse_seconds(timeout, "--timeout")
    ngl = parse_gpu_layers(n_gpu_layers)
    if ubatch_size < 1 or (threads is not None and threads < 1):
        raise GgufprofError("--ubatch-size and --threads must be >= 1")
    info = load_model(model)
    qs = quality_settings(pairs, quality_ctx, chunks, text, threads or default_threads(), info.n_ctx_train,
                          parse_flash_attn(flash_attn), ubatch_size=ubatch_size, n_gpu_layers=ngl,
                          offload_kqv=kv_offload, repack=repack)
    err = Console(stderr=True, highlight=False)
    if err.is_terminal:  # progress for people; scripts get nothing but the result (or one Error line)
        err.print(Text(f"{printable(info.name)}: {', '.join(f'{k}/{v}' for k, v in pairs)} against f16/f16 over "
                       f"{describe_text(qs, info.n_ctx_train)}", style="dim"))
    try:
        run = quality_(model, qs, timeout)
    except QualityFailed as e:
        typer.echo(f"Error: {printable(str(e), 4000)}", err=True)
        raise typer.Exit(1) from None
    if as_json:
        sys.stdout.write(json.dumps(run["results"], indent=2) + "\n")
        return
    print_quality(out_console(140), info.name, run, kv_ratios(info, pairs))


@app.command()
@_one_line_errors
def results(
    paths: list[Path] = typer.Argument(..., metavar="DIR...", help="Result directories (or results.jsonl files)."),
    csv: Optional[Path] = typer.Option(None, "--csv", help="Write the flattened table to this CSV file."),
) -> None:
    """Load sweep results into pandas and print a summary (the same DataFrame notebooks get from
    ggufprof.results.load_dataframe). Lines that cannot be read are skipped, each said on stderr."""
    from .api import load_results
    from .present.sweep_view import RESULT_COLUMNS, results_text
    from .results import files
    from .results.store import refuse_overwrite

    refuse_overwrite(csv, paths)
    problems: list[str] = []
    df = load_results(*paths, columns=None if csv else list(RESULT_COLUMNS), problems=problems)  # --csv: all
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
    strict_noise: bool = typer.Option(False, "--strict-noise", help="Judge speed changes of measurements flagged noisy too (by default they are reported as noisy, never as regressions)."),
    allow_missing: bool = typer.Option(False, "--allow-missing", help="Do not fail when configurations ok in the baseline are missing, failed or skipped in the new results, or when nothing matched."),
    fmt: str = typer.Option("table", "--format", "-f", help="table, md (GitHub markdown), json or junit (XML)."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Write to this file instead of stdout."),
) -> None:
    """Compare two sweeps for CI: exit 1 on a regression or when configurations ok in the baseline are
    missing, failed or skipped in the new results (or nothing matched), 0 otherwise, 2 on bad input.

    Memory (KV bytes, RSS) is deterministic and compared exactly against its threshold; tokens/s is
    flagged only when the drop is significant (Welch's t or Mann-Whitney U, one-sided, at --alpha)
    AND larger than --max-tps-drop; quality (sweep --quality) when the mean KLD against f16/f16
    grows by more than --max-kld-increase. Configurations are matched by their settings.
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
    th = Thresholds(parse_fraction(max_kv_increase, "--max-kv-increase"),
                    parse_fraction(max_mem_increase, "--max-mem-increase"), parse_size(rss_noise, "--rss-noise"),
                    parse_fraction(max_tps_drop, "--max-tps-drop"), alpha,
                    parse_fraction(max_kld_increase, "--max-kld-increase"), strict_noise)
    refuse_overwrite(output, [baseline, new])
    problems: list[str] = []
    result = compare_(baseline, new, th, force=force, allow_missing=allow_missing, problems=problems)
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
    if result.failed:
        raise typer.Exit(1)


@app.command()
@_one_line_errors
def check(
    deploy_file: Path = typer.Argument(..., metavar="DEPLOY.toml", help="TOML file with \\[\\[deployment]] tables and their \\[deployment.limits]."),
    estimate_only: bool = typer.Option(False, "--estimate-only", help="Only predict memory and check max_kv_bytes; run nothing."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Directory for the measurements (OUT/<name>/results.jsonl); default a temporary one."),
    timeout: float = typer.Option(600, "--timeout", help="Seconds one deployment's run may take before it is killed."),
) -> None:
    """Check deployments against their limits (KV bytes, RSS, VRAM, tokens/s): exit 0 when all pass,
    1 when a limit is broken, 2 on a bad file (one line naming the key and its line)."""
    from .api import check as check_
    from .present.console import out_console
    from .present.deploy_output import print_checks

    console = out_console(160)

    def started(dep) -> None:
        kv = dep.run.kv
        console.print(f"[bold]{dep.name}[/bold]: {dep.model.name}, ctx {kv.ctx_size}, {kv.cache_type_k}/"
                      f"{kv.cache_type_v}, {kv.parallel} seq" + ("" if estimate_only else
                      f" → measuring ({dep.run.n_prompt} prompt + {dep.run.n_gen} generated tokens "
                      f"x {dep.run.repetitions})"))

    runs = check_(deploy_file, estimate_only=estimate_only, out=out, timeout=timeout, on_deployment=started)
    for run in runs:
        rec = run.record
        if rec is not None and rec.status != "ok":
            console.print(f"[red]{run.deployment.name}: {rec.status}: {rec.reason}[/red]")
    rows = [row for run in runs for row in run.checks]
    print_checks(rows, console, [run.deployment for run in runs])
    if out:
        console.print(f"measurements: {out}/<deployment>/results.jsonl")
    if any(r.verdict == "fail" for r in rows):
        raise typer.Exit(1)


@app.command()
@_one_line_errors
def export(
    path: Path = typer.Argument(..., metavar="DIR", help="Result directory (or results.jsonl)."),
    fmt: str = typer.Option("llama-bench", "--format", "-f", help="Output format: llama-bench (its -o jsonl lines)."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Write to this file instead of stdout."),
    build_commit: Optional[str] = typer.Option(None, "--build-commit", help="build_commit to write (compare-llama-bench.py compares builds by it). Default: llama-cpp-python-<version>."),
) -> None:
    """Write sweep results as llama-bench JSONL: one pp and one tg test per configuration, readable
    by llama.cpp's scripts/compare-llama-bench.py."""
    from .results.llama_bench_io import write_export
    from .results.store import load_records, refuse_overwrite

    if fmt != "llama-bench":
        raise GgufprofError(f"--format: only llama-bench is supported, got '{fmt}'")
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
