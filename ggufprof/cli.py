"""The ``ggufprof`` command line: parse options, call the library, print. Nothing else lives here.

Heavy imports (llama_cpp, pandas) happen inside the commands that need them, so ``--help`` is fast.
Every GgufprofError becomes one ``Error: ...`` line on stderr and exit code 2.
"""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path
from typing import Callable, Optional

import typer

from .errors import GgufprofError

app = typer.Typer(
    help="What the llama.cpp KV cache costs you: predicted byte-exactly, measured in real runs.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

MODEL = typer.Argument(..., help="Path to a GGUF model file.", show_default=False)
JSON = typer.Option(False, "--json", help="Print one JSON object instead of tables.")


def _one_line_errors(fn: Callable) -> Callable:
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except GgufprofError as e:
            typer.echo(f"Error: {e}", err=True)
            raise typer.Exit(2) from None
    return wrapper


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
    ctx_size: int = typer.Option(512, "--ctx-size", "-c", help="Context size in tokens (llama.cpp's n_ctx; 0 = the model's training context)."),
    cache_type_k: str = typer.Option("f16", "--cache-type-k", "-ctk", help="K cache type: f32, f16, bf16, q8_0, q4_0, q4_1, iq4_nl, q5_0, q5_1."),
    cache_type_v: str = typer.Option("f16", "--cache-type-v", "-ctv", help="V cache type (quantized V needs flash attention)."),
    parallel: int = typer.Option(1, "--parallel", "-np", help="Number of parallel sequences (n_seq_max)."),
    kv_unified: bool = typer.Option(False, "--kv-unified/--no-kv-unified", "-kvu", help="One KV buffer shared by all sequences."),
    swa_full: bool = typer.Option(True, "--swa-full/--no-swa-full", help="Full-size SWA cache. The library default is on; llama-cli and llama-server default to off."),
    batch_size: int = typer.Option(2048, "--batch-size", "-b", help="Logical batch size (n_batch)."),
    ubatch_size: int = typer.Option(512, "--ubatch-size", "-ub", help="Physical batch size (n_ubatch); sizes the SWA cache."),
    flash_attn: str = typer.Option("auto", "--flash-attn", "-fa", help="on, off or auto. Off transposes V, which pads V rows to the widest layer."),
    n_gpu_layers: Optional[int] = typer.Option(None, "--n-gpu-layers", "-ngl", help="Layers offloaded to one GPU (the output layer counts as one; -1 = all): splits KV and weights per device."),
    no_kv_offload: bool = typer.Option(False, "--no-kv-offload", "-nkvo", help="Keep the KV cache in host memory even for offloaded layers."),
    as_json: bool = JSON,
) -> None:
    """Predict every KV cache and recurrent state llama.cpp allocates, byte-exactly.

    Defaults are llama.cpp's library defaults (llama_context_default_params): n_ctx 512, f16/f16,
    1 sequence, per-sequence (not unified) cache, swa_full on, n_batch 2048, n_ubatch 512,
    flash attention auto.
    """
    from .memory.settings import KVSettings
    from .memory.predict import predict
    from .model.model_info import load_model_info
    from .present.console import estimate_json, print_estimate

    settings = KVSettings(ctx_size, cache_type_k, cache_type_v, parallel, kv_unified, swa_full,
                          batch_size, ubatch_size, flash_attn.lower())
    settings.validate()  # settings errors first: they do not need the file
    info = load_model_info(model)
    pred = predict(info, settings)
    placement = None
    if n_gpu_layers is not None or no_kv_offload:
        from .memory.placement import place

        placement = place(info, pred, n_gpu_layers if n_gpu_layers is not None else 0, not no_kv_offload)
    if as_json:
        _emit_json(estimate_json(info, pred, placement))
    else:
        print_estimate(info, pred, placement=placement)


@app.command()
@_one_line_errors
def sweep(
    model: Path = MODEL,
    cache_types: str = typer.Option("f16,q8_0,q4_0", "--cache-types", "-ct", help="Comma-separated cache types; K:V for a mixed pair (q8_0:q4_0)."),
    ctx_sizes: Optional[str] = typer.Option(None, "--ctx-sizes", "-c", help="Comma-separated context sizes. Default: 2048, 8192, 32768 up to min(n_ctx_train, what fits in memory)."),
    swa_full: str = typer.Option("both", "--swa-full", help="on, off or both (only on models with SWA layers)."),
    parallel: str = typer.Option("1", "--parallel", "-np", help="Comma-separated numbers of parallel sequences."),
    kv_unified: str = typer.Option("both", "--kv-unified", "-kvu", help="on, off or both (only when parallel > 1)."),
    flash_attn: str = typer.Option("auto", "--flash-attn", "-fa", help="Comma-separated: on, off, auto."),
    threads: Optional[int] = typer.Option(None, "--threads", "-t", help="Threads (default: physical cores)."),
    batch_size: int = typer.Option(2048, "--batch-size", "-b"),
    ubatch_size: int = typer.Option(512, "--ubatch-size", "-ub"),
    n_prompt: int = typer.Option(512, "--n-prompt", "-p", help="Prompt tokens per pp test (0: no pp test)."),
    n_gen: int = typer.Option(128, "--n-gen", "-n", help="Generated tokens per tg test (0: no tg test)."),
    depth: str = typer.Option("0", "--depth", "-d", help="Comma-separated context depths filled before each timed test."),
    repetitions: int = typer.Option(3, "--repetitions", "-r", help="Timed repetitions after one warm-up."),
    n_gpu_layers: str = typer.Option("0", "--n-gpu-layers", "-ngl", help="Comma-separated layer counts to offload to the GPU."),
    kv_offload: str = typer.Option("on", "--kv-offload", help="on, off (llama.cpp's --no-kv-offload) or both."),
    repack: bool = typer.Option(True, "--repack/--no-repack", help="Repacked CPU weight buffers (llama.cpp's default; AMX, ...). --no-repack when they crash on this CPU."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Output directory (default ./ggufprof-out/<model>-<timestamp>/)."),
    resume: bool = typer.Option(False, "--resume", help="Skip configurations already in --out's results.jsonl."),
    timeout: float = typer.Option(600, "--timeout", help="Seconds one configuration may run before it is killed."),
    strict: bool = typer.Option(False, "--strict", help="Exit 1 when any measurement disagrees with the prediction."),
    recheck: bool = typer.Option(False, "--recheck", help="Measure nothing: recompute predictions and checks of --out's results from their stored llama.cpp logs."),
) -> None:
    """Measure KV memory, RSS and tokens/s in real llama.cpp runs over a grid, checked against the model.

    Each configuration runs in its own worker process; results.jsonl gets a record as each one
    ends (Ctrl-C keeps what was measured; --resume goes on). Exit 1 when a configuration failed,
    or with --strict when a measurement disagrees with the prediction.
    """
    from rich.console import Console

    from .measure.grid import GridSpec, default_ctx_sizes, on_off_both, parse_cache_types, parse_choice_list, parse_int_list
    from .measure.runner import Sweep, default_out_dir, default_threads
    from .model.model_info import load_model_info
    from .present.sweep_view import SweepView

    for flag, value in (("--n-prompt", n_prompt), ("--n-gen", n_gen)):
        if value < 0:
            raise GgufprofError(f"{flag} must be >= 0, got {value}")
    if repetitions < 1:
        raise GgufprofError(f"--repetitions must be >= 1, got {repetitions}")
    info = load_model_info(model)
    depths = parse_int_list(depth, "--depth")
    if ctx_sizes:
        sizes = parse_int_list(ctx_sizes, "--ctx-sizes", minimum=1)
    else:
        import psutil

        sizes = default_ctx_sizes(info, max(depths) + max(n_prompt, n_gen), psutil.virtual_memory().available // 2)
    spec = GridSpec(
        cache_types=parse_cache_types(cache_types), ctx_sizes=sizes, swa_full=on_off_both(swa_full, "--swa-full"),
        parallel=parse_int_list(parallel, "--parallel", minimum=1), kv_unified=on_off_both(kv_unified, "--kv-unified"),
        flash_attn=parse_choice_list(flash_attn, "--flash-attn", ("on", "off", "auto")), depths=depths,
        threads=threads or default_threads(), n_prompt=n_prompt, n_gen=n_gen, repetitions=repetitions,
        batch_size=batch_size, ubatch_size=ubatch_size, n_gpu_layers=parse_int_list(n_gpu_layers, "--n-gpu-layers"),
        repack=repack, offload_kqv=on_off_both(kv_offload, "--kv-offload"),
    )
    out_dir = out or default_out_dir(model)
    console = Console(stderr=False)
    if recheck:
        if out is None:
            raise GgufprofError("--recheck needs --out DIR (the results to check again)")
        from .measure.runner import SweepSummary
        from .results.store import results_file

        results_file(out_dir)
        recs = Sweep(info, spec, out_dir).recheck()
        summary = SweepSummary(out_dir, records=recs)
        console.print(f"rechecked {summary.count('ok')} records; {summary.mismatches} disagree with the prediction")
        raise typer.Exit(1 if strict and summary.mismatches else 0)
    console.print(f"[bold]{info.name}[/bold] ({info.architecture}) → {out_dir}/results.jsonl")
    runner = Sweep(info, spec, out_dir, timeout=timeout, resume=resume)
    n = len([p for p in runner.planned()])
    with SweepView(console, n) as view:
        runner.on_start, runner.on_record = view.started, view.finished
        try:
            summary = runner.run()
        except KeyboardInterrupt:
            console.print(f"[yellow]interrupted: the configurations measured so far are in {out_dir}/results.jsonl "
                          "(--resume goes on)[/yellow]")
            raise typer.Exit(130) from None
    console.print(
        f"{summary.count('ok')} measured, {summary.count('skipped')} skipped, {summary.count('failed')} failed"
        + (f", {summary.resumed} already in the results" if summary.resumed else "")
        + f"; {summary.mismatches} disagree with the prediction. Results: {out_dir}/results.jsonl, results.csv"
    )
    if summary.count("failed") or (strict and summary.mismatches):
        raise typer.Exit(1)


@app.command()
@_one_line_errors
def results(
    paths: list[Path] = typer.Argument(..., help="Result directories (or results.jsonl files)."),
    csv: Optional[Path] = typer.Option(None, "--csv", help="Write the flattened table to this CSV file."),
) -> None:
    """Load sweep results into pandas and print a summary (the same DataFrame notebooks get from
    ``ggufprof.results.load_dataframe``)."""
    from .results.store import load_dataframe

    df = load_dataframe(*paths)
    show = {"status": "status", "settings.cache_type_k": "K", "settings.cache_type_v": "V",
            "settings.ctx_size": "ctx", "settings.parallel": "np", "settings.kv_unified": "unified",
            "settings.swa_full": "swa_full", "settings.flash_attn": "fa", "settings.depth": "depth",
            "predicted.kv_bytes": "KV bytes", "check.kv_exact": "KV exact", "measured.pp.tps_mean": "pp t/s",
            "measured.tg.tps_mean": "tg t/s"}
    view = df[[c for c in show if c in df.columns]].rename(columns=show)
    typer.echo(view.to_string(index=False, float_format=lambda x: f"{x:.1f}"))
    if csv:
        df.to_csv(csv, index=False)
        typer.echo(f"wrote {csv}")


@app.command()
@_one_line_errors
def report(
    paths: list[Path] = typer.Argument(..., help="Result directories of one model (e.g. the same sweep on several hosts)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Output directory (default: the first result directory)."),
) -> None:
    """Write report.html (self-contained) and report.md with its plots from sweep results; nothing is re-measured."""
    from .present.report import write_report

    written = write_report(paths, out)
    typer.echo(f"wrote {written['html']} and {written['md']} (+{len(written) - 2} plot PNGs)")


@app.command()
@_one_line_errors
def compare(
    baseline: Path = typer.Argument(..., help="Baseline result directory (or results.jsonl)."),
    new: Path = typer.Argument(..., help="New result directory (or results.jsonl)."),
    max_kv_increase: str = typer.Option("0", "--max-kv-increase", help="KV size growth allowed (predicted bytes and llama.cpp's logged MiB), e.g. 0, 0.5% or 0.005. Default 0: the KV cache is deterministic."),
    max_mem_increase: str = typer.Option("1%", "--max-mem-increase", help="RSS growth allowed (at context creation and peak), e.g. 1% or 0.01."),
    rss_noise: str = typer.Option("1 MiB", "--rss-noise", help="RSS change always ignored (page and allocator noise), e.g. '1 MiB' or bytes."),
    max_tps_drop: str = typer.Option("5%", "--max-tps-drop", help="Minimum drop of mean tokens/s (pp, tg) that can count as a regression."),
    alpha: float = typer.Option(0.05, "--alpha", help="Significance level of the one-sided Welch t / Mann-Whitney U tests."),
    force: bool = typer.Option(False, "--force", help="Compare results of different models or machines anyway."),
    fmt: str = typer.Option("table", "--format", "-f", help="table, md (GitHub markdown), json or junit (XML)."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Write to this file instead of stdout."),
) -> None:
    """Compare two sweeps for CI: exit 1 on a regression, 0 otherwise, 2 on bad input.

    Memory (KV bytes, RSS) is deterministic and compared exactly against its threshold; tokens/s is
    flagged only when the drop is significant (Welch's t or Mann-Whitney U, one-sided, at --alpha)
    AND larger than --max-tps-drop. Configurations are matched by their settings.
    """
    from .results.compare import Thresholds, compare_paths, parse_fraction
    from .present.compare_output import FORMATS, print_table, to_json, to_junit, to_markdown
    from .results.deploy import parse_size

    fmt = fmt.lower()
    if fmt not in FORMATS:
        raise GgufprofError(f"--format must be one of {', '.join(FORMATS)}, got '{fmt}'")
    if not 0 < alpha < 1:
        raise GgufprofError(f"--alpha must be between 0 and 1, got {alpha}")
    th = Thresholds(parse_fraction(max_kv_increase, "--max-kv-increase"),
                    parse_fraction(max_mem_increase, "--max-mem-increase"), parse_size(rss_noise, "--rss-noise"),
                    parse_fraction(max_tps_drop, "--max-tps-drop"), alpha)
    result = compare_paths(baseline, new, th, force=force)
    if fmt == "table":
        from rich.console import Console

        if output:
            with open(output, "w", encoding="utf-8") as f:
                print_table(result, Console(file=f, width=160, no_color=True, highlight=False))
        else:
            console = Console(highlight=False)
            if not console.is_terminal:  # CI logs do not wrap: do not squeeze the table into 80 columns
                console = Console(highlight=False, width=max(console.width, 160))
            print_table(result, console)
    else:
        text = {"md": to_markdown, "json": to_json, "junit": to_junit}[fmt](result)
        if output:
            output.write_text(text, encoding="utf-8")
        else:
            sys.stdout.write(text)
    if result.regressions:
        raise typer.Exit(1)


@app.command()
@_one_line_errors
def check(
    deploy_file: Path = typer.Argument(..., help="TOML file with [[deployment]] tables and their [deployment.limits]."),
    estimate_only: bool = typer.Option(False, "--estimate-only", help="Only predict memory and check max_kv_bytes; run nothing."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Directory for the measurements (OUT/<name>/results.jsonl); default a temporary one."),
    timeout: float = typer.Option(600, "--timeout", help="Seconds one deployment's run may take before it is killed."),
) -> None:
    """Check deployments against their limits (KV bytes, RSS, VRAM, tokens/s): exit 0 when all pass,
    1 when a limit is broken, 2 on a bad file (one line naming the key and its line)."""
    import tempfile

    from rich.console import Console

    from .results.deploy import load_deployments
    from .present.deploy_output import print_checks
    from .results.deploy_check import check_deployment, out_subdir, run_deployment
    from .measure.runner import default_threads

    deployments = load_deployments(deploy_file, default_threads(), measuring=not estimate_only)
    console = Console(highlight=False)
    if not console.is_terminal:  # CI logs do not wrap: do not squeeze the tables into 80 columns
        console = Console(highlight=False, width=max(console.width, 160))
    rows = []
    with tempfile.TemporaryDirectory(prefix="ggufprof-check-") as tmp:
        base = out or Path(tmp)
        for dep in deployments:
            kv = dep.run.kv
            console.print(f"[bold]{dep.name}[/bold]: {dep.model.name}, ctx {kv.ctx_size}, {kv.cache_type_k}/"
                          f"{kv.cache_type_v}, {kv.parallel} seq" + ("" if estimate_only else
                          f" → measuring ({dep.run.n_prompt} prompt + {dep.run.n_gen} generated tokens "
                          f"x {dep.run.repetitions})"))
            rec = None if estimate_only else run_deployment(dep, out_subdir(base, dep.name), timeout)
            if rec is not None and rec.status != "ok":
                console.print(f"[red]{dep.name}: {rec.status}: {rec.reason}[/red]")
            rows += check_deployment(dep, rec)
        print_checks(rows, console, deployments)
        if out:
            console.print(f"measurements: {out}/<deployment>/results.jsonl")
    if any(r.verdict == "fail" for r in rows):
        raise typer.Exit(1)


@app.command()
@_one_line_errors
def export(
    path: Path = typer.Argument(..., help="Result directory (or results.jsonl)."),
    fmt: str = typer.Option("llama-bench", "--format", "-f", help="Output format: llama-bench (its -o jsonl lines)."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Write to this file instead of stdout."),
    build_commit: Optional[str] = typer.Option(None, "--build-commit", help="build_commit to write (compare-llama-bench.py compares builds by it). Default: llama-cpp-python-<version>."),
) -> None:
    """Write sweep results as llama-bench JSONL: one pp and one tg test per configuration, readable
    by llama.cpp's scripts/compare-llama-bench.py."""
    from .results.llama_bench_io import write_export
    from .results.store import load_records

    if fmt != "llama-bench":
        raise GgufprofError(f"--format: only llama-bench is supported, got '{fmt}'")
    text = write_export(load_records(path), output, build_commit)
    if output is None:
        sys.stdout.write(text)
    else:
        typer.echo(f"wrote {text.count(chr(10))} llama-bench tests to {output}", err=True)


@app.command(name="import")
@_one_line_errors
def import_(
    path: Path = typer.Argument(..., help="llama-bench output (-o jsonl, or -o json)."),
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
