"""What ``inspect`` and ``estimate`` print: rich tables for people, plain dicts for ``--json``."""

from __future__ import annotations

from itertools import groupby

from rich import box
from rich.console import Console
from rich.table import Table

from .model import ggml_types
from .memory.predict import MemoryPrediction
from .model.model_info import ModelInfo
from .placement import Placement
from .units import human_bytes, human_count


def inspect_json(info: ModelInfo) -> dict:
    d = info.to_dict()
    d["kv_bytes_per_token"] = {t: info.kv_bytes_per_token(t) for t in ggml_types.KV_CACHE_TYPES}
    return d


def _layer_groups(info: ModelInfo) -> list[tuple[str, tuple]]:
    """Consecutive layers with the same attention shape, as ('0-4', shape) rows."""
    rows = []
    keyed = [(il, (info.n_head[il], info.n_head_kv[il], info.head_k(il), info.head_v(il), info.swa_layers[il]))
             for il in range(info.n_layer)]
    for shape, grp in groupby(keyed, key=lambda x: x[1]):
        ils = [il for il, _ in grp]
        rows.append((f"{ils[0]}" if len(ils) == 1 else f"{ils[0]}-{ils[-1]}", shape))
    return rows


def print_inspect(info: ModelInfo, console: Console | None = None) -> None:
    c = console or Console()
    c.print(f"[bold]{info.name}[/bold]  ({info.path.name})")
    c.print(
        f"architecture {info.architecture} · {info.n_layer} layers · n_embd {info.n_embd} · "
        f"{human_count(info.n_params)} parameters ({human_bytes(info.weight_bytes)} of weights: "
        + ", ".join(f"{n}×{t}" for t, n in info.tensor_types.items()) + ")"
    )
    c.print(f"trained context {info.n_ctx_train} · vocabulary {info.n_vocab}"
            + (f" · sliding window {info.n_swa} on {sum(info.swa_layers)} of {info.n_layer} layers" if info.has_swa else ""))
    if info.kv_unsupported:
        c.print(f"[yellow]{info.kv_unsupported}[/yellow]")

    t = Table(title="Attention layers", title_justify="left")
    for col in ("layers", "heads", "KV heads", "head size K/V", "attention"):
        t.add_column(col, justify="right" if col != "attention" else "left")
    for label, (nh, nkv, hk, hv, is_swa) in _layer_groups(info):
        t.add_row(label, str(nh), str(nkv), f"{hk}/{hv}", f"sliding window {info.n_swa}" if is_swa else "full")
    c.print(t)

    t = Table(title="KV cache per token (K and V of the same type, all layers)", title_justify="left")
    t.add_column("cache type")
    t.add_column("bytes/token", justify="right")
    t.add_column("vs f16", justify="right")
    t.add_column(f"at n_ctx_train {info.n_ctx_train}", justify="right")
    f16 = info.kv_bytes_per_token("f16")
    for name in ggml_types.KV_CACHE_TYPES:
        b = info.kv_bytes_per_token(name)
        t.add_row(name, f"{b:,}", f"{b / f16:.3f}" if f16 else "-", human_bytes(b * info.n_ctx_train))
    c.print(t)
    if info.has_swa:
        c.print("[dim]SWA layers keep only the window (plus a batch) unless swa_full is on: "
                "use `ggufprof estimate` for the cache llama.cpp actually allocates.[/dim]")


def estimate_json(info: ModelInfo, pred: MemoryPrediction, placement: Placement | None = None) -> dict:
    d = pred.to_dict()
    d["model"] = {"path": str(info.path), "name": info.name, "architecture": info.architecture}
    if placement is not None:
        d["placement"] = placement.to_dict()
    return d


def print_placement(p: Placement, c: Console) -> None:
    n_layer = len(p.on_gpu) - 1
    on = [il for il in range(n_layer) if p.on_gpu[il]]
    where = f"layers {on[0]}-{on[-1]}" if on else "no repeating layer"
    c.print(f"-ngl {p.n_gpu_layers}: {where} and {'the' if p.on_gpu[n_layer] else 'not the'} output layer on the GPU"
            + ("" if p.offload_kqv else "; KV kept in host memory (--no-kv-offload)"))
    t = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    for col in ("device", "weights", "KV cache", "KV buffer (logged)"):
        t.add_column(col, justify="left" if col == "device" else "right", no_wrap=True)
    for dev in ("CPU", "CUDA0"):
        w = p.weights.get(dev, 0)
        if w or p.kv_bytes(dev):
            t.add_row(dev, human_bytes(w), human_bytes(p.kv_bytes(dev)), human_bytes(p.kv_buffer(dev)))
    c.print(t)
    c.print("[dim]KV buffer: as llama.cpp's 'KV buffer size' line counts it (tensors aligned; on CUDA quantized "
            "rows padded to 512 values). CPU weights are mmapped from the file.[/dim]")


def print_estimate(info: ModelInfo, pred: MemoryPrediction, console: Console | None = None,
                   placement: Placement | None = None) -> None:
    c = console or Console()
    s = pred.settings
    c.print(f"[bold]{info.name}[/bold]  ({info.path.name}, {info.architecture})")
    c.print(f"n_ctx {pred.n_ctx} (requested {s.ctx_size}) · n_ctx_seq {pred.n_ctx_seq} · "
            f"{s.parallel} sequence(s), {'unified' if s.kv_unified else 'one stream per sequence'} · "
            f"n_ubatch {pred.n_ubatch} · flash attention {s.flash_attn}"
            + (f" · swa_full {'on' if s.swa_full else 'off'}" if info.has_swa else ""))
    t = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    for col in ("cache", "layers", "cells×streams", f"K {s.cache_type_k}", f"V {s.cache_type_v}", "total"):
        t.add_column(col, justify="left" if col == "cache" else "right", no_wrap=True)
    for cp in pred.caches:
        t.add_row(cp.name, str(cp.layers), f"{cp.cells}×{cp.streams}", human_bytes(cp.k_bytes),
                  human_bytes(cp.v_bytes), human_bytes(cp.bytes))
    c.print(t)
    c.print(f"[bold]KV cache: {human_bytes(pred.kv_bytes)}[/bold] ({pred.kv_bytes:,} bytes)")
    if placement is not None:
        print_placement(placement, c)
    if pred.v_trans and len({info.n_embd_v_gqa(il) for il in range(info.n_layer)}) > 1:
        c.print("[dim]flash attention off: V is stored transposed and every layer's V rows are padded "
                "to the widest layer.[/dim]")
