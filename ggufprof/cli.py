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
    """Show a model's attention layout and the KV bytes one token costs per cache type."""
    from .model_info import load_model_info
    from .console import inspect_json, print_inspect

    info = load_model_info(model)
    if as_json:
        _emit_json(inspect_json(info))
    else:
        print_inspect(info)


@app.command()
@_one_line_errors
def estimate(
    model: Path = MODEL,
    ctx_size: int = typer.Option(512, "--ctx-size", "-c", help="Context size in tokens (llama.cpp's n_ctx)."),
    cache_type_k: str = typer.Option("f16", "--cache-type-k", "-ctk", help="K cache type: f32, f16, bf16, q8_0, q4_0, q4_1, iq4_nl, q5_0, q5_1."),
    cache_type_v: str = typer.Option("f16", "--cache-type-v", "-ctv", help="V cache type (quantized V needs flash attention)."),
    parallel: int = typer.Option(1, "--parallel", "-np", help="Number of parallel sequences (n_seq_max)."),
    kv_unified: bool = typer.Option(False, "--kv-unified/--no-kv-unified", "-kvu", help="One KV buffer shared by all sequences."),
    swa_full: bool = typer.Option(True, "--swa-full/--no-swa-full", help="Full-size SWA cache. The library default is on; llama-cli and llama-server default to off."),
    batch_size: int = typer.Option(2048, "--batch-size", "-b", help="Logical batch size (n_batch)."),
    ubatch_size: int = typer.Option(512, "--ubatch-size", "-ub", help="Physical batch size (n_ubatch); sizes the SWA cache."),
    flash_attn: str = typer.Option("auto", "--flash-attn", "-fa", help="on, off or auto. Off transposes V, which pads V rows to the widest layer."),
    as_json: bool = JSON,
) -> None:
    """Predict the KV cache llama.cpp allocates, byte-exactly.

    Defaults are llama.cpp's library defaults (llama_context_default_params): n_ctx 512, f16/f16,
    1 sequence, per-sequence (not unified) cache, swa_full on, n_batch 2048, n_ubatch 512,
    flash attention auto.
    """
    from .kv_model import KVSettings, predict
    from .model_info import load_model_info
    from .console import estimate_json, print_estimate

    if ctx_size < 1:
        raise GgufprofError(f"--ctx-size must be >= 1, got {ctx_size}")
    settings = KVSettings(ctx_size, cache_type_k, cache_type_v, parallel, kv_unified, swa_full,
                          batch_size, ubatch_size, flash_attn.lower())
    settings.validate()  # settings errors first: they do not need the file
    info = load_model_info(model)
    pred = predict(info, settings)
    if as_json:
        _emit_json(estimate_json(info, pred))
    else:
        print_estimate(info, pred)


def main() -> None:
    app()
