"""What ``inspect`` and ``estimate`` print: rich tables for people, plain dicts for ``--json``."""

from __future__ import annotations

import os
from itertools import groupby
from typing import TYPE_CHECKING

from rich import box
from rich.console import Console
from rich.table import Table

from rich.text import Text

from ..errors import GgufprofError
from ..memory.create import MEMORY_KINDS, UNMODELLED, layer_memories, memory_kind
from ..measure.fit import CAP_WORDS, rank
from ..memory.footprint import HOST, gpu_bytes
from ..memory.caches import pad
from ..memory.predict import MemoryPrediction, bytes_per_token, context_bytes, recurrent_bytes_per_sequence
from ..memory.settings import CTX_PAD
from ..model import ggml_types
from ..model.model_info import ModelInfo
from ..model.params import ParamsByComponent, params_by_component
from ..flags import ngl_text, placement_args, placement_words
from ..memory.placement import CPU, EXTRA_BUFTS, Placement, PlacementFlags, is_rpc_buffer
from ..memory.settings import DEFAULTS_NOTE, differing
from ..units import b_params, human_bytes, printable

if TYPE_CHECKING:
    from ..api import FitReport


def out_console(min_width: int = 140) -> Console:
    """The console tables are printed to: a terminal's own width (or ``COLUMNS`` when set), but logs
    and pipes (which do not wrap) get at least ``min_width`` columns instead of Rich's 80."""
    if os.environ.get("COLUMNS", "").isdigit():
        return Console(highlight=False, width=int(os.environ["COLUMNS"]))
    c = Console(highlight=False)
    return c if c.is_terminal else Console(highlight=False, width=max(c.width, min_width))


def add_columns(t: Table, names: list[str] | tuple[str, ...], labels: tuple[str, ...] = ()) -> None:
    """A table's columns: labels left-aligned and kept whole, numbers right-aligned and folded onto a
    second line (units first) when the terminal is narrow -- never cut with an ellipsis."""
    for name in names:
        if name in labels:
            t.add_column(name, justify="left", no_wrap=True)
        else:
            t.add_column(name, justify="right", overflow="fold")


def _per_token(info: ModelInfo) -> dict[str, int] | None:
    try:
        return {t: bytes_per_token(info, t) for t in ggml_types.KV_CACHE_TYPES}
    except GgufprofError:  # a memory we do not model (memory_note says why)
        return None


def memory_note(info: ModelInfo) -> str | None:
    """Why there is no prediction for this model's memory, None when there is one."""
    return UNMODELLED.get(info.architecture)


def inspect_json(info: ModelInfo) -> dict:
    d = info.to_dict()
    d["layer_memory"] = layer_memories(info.hparams)
    d["memory"] = memory_kind(info.hparams)
    d["memory_unsupported"] = memory_note(info)
    d["kv_bytes_per_token"] = _per_token(info)
    d["recurrent_bytes_per_sequence"] = None if memory_note(info) else recurrent_bytes_per_sequence(info)
    d["params_by_component"] = params_by_component(info).to_dict()
    return d


def _layer_groups(info: ModelInfo) -> list[tuple[str, tuple]]:
    """Consecutive layers with the same attention shape and memory, as ('0-4', shape) rows."""
    rows = []
    memories = layer_memories(info.hparams)
    keyed = [(il, (info.n_head[il], info.n_head_kv[il], info.head_k(il), info.head_v(il), memories[il]))
             for il in range(info.n_layer)]
    for shape, grp in groupby(keyed, key=lambda x: x[1]):
        ils = [il for il, _ in grp]
        rows.append((f"{ils[0]}" if len(ils) == 1 else f"{ils[0]}-{ils[-1]}", shape))
    return rows


def print_inspect(info: ModelInfo, console: Console | None = None) -> None:
    c = console or out_console()
    c.print(Text.assemble((info.name, "bold"), f"  ({info.path.name})"))
    nextn = info.hparams.n_layer_nextn
    c.print(Text(
        f"architecture {info.architecture} · {info.n_layer} layers"
        + (f" (+{nextn} NextN/MTP, not cached by the main context)" if nextn else "")
        + f" · n_embd {info.n_embd} · {info.n_params:,} params ({b_params(info.n_params)}; "
        f"{human_bytes(info.weight_bytes)} of weights: " + ", ".join(f"{n}×{t}" for t, n in info.tensor_types.items())
        + ")"))
    c.print(Text(f"trained context {info.n_ctx_train} · vocabulary {info.n_vocab}"
                 + (f" · sliding window {info.n_swa} on {sum(info.swa_layers)} of {info.n_layer} layers"
                    if info.has_swa else "")))
    kind = memory_kind(info.hparams)
    c.print(Text(f"memory: {MEMORY_KINDS[kind].description}"))
    if note := memory_note(info):
        c.print(Text(note, style="yellow"))
    else:
        _print_memory(info, c)
    print_params(params_by_component(info), c)


def _print_memory(info: ModelInfo, c: Console) -> None:
    """inspect's layer table and per-token KV costs."""
    t = Table(title="Layers", title_justify="left")
    for col in ("layers", "heads", "KV heads", "head size K/V", "memory"):
        t.add_column(col, justify="right" if col != "memory" else "left")
    for label, (nh, nkv, hk, hv, mem) in _layer_groups(info):
        detail = f"{mem} {info.n_swa}" if mem == "sliding window" else mem
        t.add_row(label, str(nh), str(nkv), f"{hk}/{hv}", detail)
    c.print(t)

    per_token = _per_token(info) or {}
    if per_token.get("f16"):
        t = Table(title="KV cache per token (K and V of the same type, every cache that grows with the context)",
                  title_justify="left")
        t.add_column("cache type")
        t.add_column("bytes/token", justify="right")
        t.add_column("vs f16", justify="right")
        cells = pad(info.n_ctx_train, CTX_PAD)
        if cells:  # what the caches hold at the training context (padded as llama.cpp pads n_ctx)
            t.add_column(f"at n_ctx_train {info.n_ctx_train}", justify="right")
        f16 = per_token["f16"]
        for name, b in per_token.items():
            row = [name, f"{b:,}" if isinstance(b, int) else f"{b:,.2f}", f"{b / f16:.3f}"]
            t.add_row(*row, *([human_bytes(context_bytes(info, name, name, cells))] if cells else []))
        c.print(t)
    if rs := recurrent_bytes_per_sequence(info):
        c.print(Text(f"recurrent state: {human_bytes(rs)} per sequence (f32), a fixed cost: it does not grow "
                     "with the context, only with the number of sequences"))
    if info.has_swa:
        c.print(Text("SWA layers keep only the window (plus a batch) unless swa_full is on: "
                     "use `ggufprof estimate` for the cache llama.cpp actually allocates.", style="dim"))


def print_params(p: ParamsByComponent, c: Console) -> None:
    """Parameters by component: exact (tensor shapes) beside the closed form, and why they differ."""
    t = Table(title="Parameters by component (exact, from the tensor shapes; 1 B params = 10⁹)", title_justify="left")
    for col in ("component", "params", "share", "bytes", "closed form", "difference", "why they differ"):
        t.add_column(col, justify="left" if col in ("component", "why they differ") else "right",
                     no_wrap=col != "why they differ")
    for comp in p.components:
        t.add_row(comp.label, f"{comp.params:,}", f"{comp.params / p.total:.1%}" if p.total else "-",
                  human_bytes(comp.bytes), f"{comp.closed_form:,}", f"{comp.difference:+,}" if comp.difference else "0",
                  "; ".join(comp.reasons))
    t.add_row("total", f"{p.total:,}", "100%", human_bytes(p.total_bytes), f"{p.closed_form_total:,}",
              f"{p.total - p.closed_form_total:+,}", b_params(p.total), style="bold")
    c.print(t)
    c.print(Text(f"closed form: {p.closed_form_expression}", style="dim"))
    if p.moe:
        c.print(Text(f"active per token: {p.active:,} params ({b_params(p.active)}) of {p.total:,}; {p.active_note}"
                     if p.active is not None else f"active per token: unknown ({p.active_note})"))
    if p.tied_output:
        c.print(Text("output: tied to the token embeddings (no output.weight)"))


def estimate_json(info: ModelInfo, pred: MemoryPrediction, placement: Placement | None = None) -> dict:
    """``estimate --json``. ``total_bytes`` there is the caches' total (KV + recurrent state), kept for
    scripts that read it; ``kv_and_state_bytes`` says the same number by its name, so it is not taken
    for the whole footprint (weights, compute and output buffers too: ``--total``'s ``total.<device>``)."""
    d = pred.to_dict()
    d["kv_bytes"] = pred.kv_bytes
    d["kv_and_state_bytes"] = pred.total_bytes
    d["model"] = {"path": info.location, "name": info.name, "architecture": info.architecture}
    if placement is not None:
        d["placement"] = placement.to_dict()
    return d


SMALL_GPU_MARGIN = 256 << 20  # below this, fit warns that the GPU's unlogged runtime allocations may not fit
NO_GPU = "llama.cpp lists no GPU here (a CPU build or no device): -ngl is ignored, every layer stays in host memory"


def placement_line(p: Placement, ngl_default: bool = False) -> str:
    """The placement a footprint is for, in llama.cpp's flags, and where its layers went."""
    flags = PlacementFlags.from_dict(p.flags) if p.flags else PlacementFlags(n_gpu_layers=p.n_gpu_layers)
    words = " ".join([f"-ngl {ngl_text(flags.n_gpu_layers)}"] + placement_args(flags))
    if ngl_default:
        words += " (-ngl: llama.cpp's default, every layer)"
    offloaded = [d for d in p.layer_device if d != CPU]
    if not p.offload_devices and not p.gpu:
        return f"placement: {words} · llama.cpp lists no offload device here: every layer in host memory"
    n_layer = len(p.layer_device) - 1
    return (f"placement: {words} · {sum(1 for d in p.layer_device[:n_layer] if d != CPU)} of {n_layer} layers "
            f"and {'the' if p.layer_device[n_layer] != CPU else 'not the'} output layer on "
            f"{', '.join(d for d in (p.offload_devices or [p.gpu]) if d in offloaded) or 'no device'}")


def print_placement(p: Placement, c: Console) -> None:
    n_layer = len(p.on_gpu) - 1
    if p.gpu is None and p.n_gpu_layers:
        c.print(Text(NO_GPU, style="yellow"))
    on = [il for il in range(n_layer) if p.on_gpu[il]]
    where = f"layers {on[0]}-{on[-1]}" if on else "no repeating layer"
    c.print(f"-ngl {p.n_gpu_layers}: {where} and {'the' if p.on_gpu[n_layer] else 'not the'} output layer on the GPU"
            + ("" if p.offload_kqv else "; KV kept in host memory (--no-kv-offload)"))
    t = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    add_columns(t, ("device", "weights", "KV cache", "KV buffer (logged)"), labels=("device",))
    for dev in p.devices:
        w = p.weights.get(dev, 0)
        if w or p.kv_bytes(dev):
            t.add_row(dev, human_bytes(w), human_bytes(p.kv_bytes(dev)), human_bytes(p.kv_buffer(dev)))
    c.print(t)
    c.print("[dim]KV buffer: as llama.cpp's 'KV buffer size' line counts it (tensors aligned; on CUDA quantized "
            "rows padded to 512 values). CPU weights are mmapped from the file.[/dim]")


def print_estimate(info: ModelInfo, pred: MemoryPrediction, console: Console | None = None,
                   placement: Placement | None = None, defaults_note: str | None = None,
                   devices: list | None = None, ngl_default: bool = False) -> None:
    """``ngl_default``: -ngl was not given and the placement is llama.cpp's default (every layer)."""
    c = console or out_console()
    s = pred.settings
    c.print(Text.assemble((info.name, "bold"), f"  ({info.path.name}, {info.architecture})"))
    c.print(Text(f"n_ctx {pred.n_ctx} (requested {s.ctx_size or 'the training context'}) · n_ctx_seq {pred.n_ctx_seq} · "
                 f"{s.parallel} sequence(s), {'unified' if s.kv_unified else 'one stream per sequence'} · "
                 f"n_ubatch {pred.n_ubatch} · flash attention {s.flash_attn}"
                 + (f" · swa_full {'on' if s.swa_full else 'off'}" if info.has_swa else "")))
    c.print(Text(f"memory: {MEMORY_KINDS[pred.kind].description}"))
    if defaults_note:
        c.print(Text(f"unset flags: {defaults_note}", style="dim"))
    if info.n_ctx_train and pred.n_ctx_seq > info.n_ctx_train:
        c.print(Text(f"warning: {pred.n_ctx_seq} cells per sequence exceed the model's training context "
                     f"{info.n_ctx_train} (llama.cpp: possible training context overflow)", style="yellow"))
    t = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    add_columns(t, ("cache", "layers", "cells×streams", "K/V types", "K", "V", "total"), labels=("cache",))
    for cp in pred.caches:
        t.add_row(cp.name, str(cp.layers), f"{cp.cells}×{cp.streams}", f"{cp.type_k}/{cp.type_v}",
                  human_bytes(cp.k_bytes), human_bytes(cp.v_bytes + cp.p_bytes), human_bytes(cp.bytes))
    c.print(t)
    c.print(Text(f"KV cache: {human_bytes(pred.kv_bytes)} ({pred.kv_bytes:,} bytes)", style="bold"))
    if pred.recurrent_bytes:
        c.print(Text(f"recurrent state: {human_bytes(pred.recurrent_bytes)} ({pred.recurrent_bytes:,} bytes), "
                     f"a fixed size per sequence ({s.parallel}), whatever the context size", style="bold"))
        c.print(Text("(recurrent caches list R and S as K and V; compressor state its kv and score rows)", style="dim"))
    if not pred.caches:
        c.print(Text("llama.cpp creates no KV cache for this model.", style="dim"))
    if devices is not None:
        if placement is not None:
            c.print(Text(placement_line(placement, ngl_default)))
        print_footprint(devices, c)
    elif placement is not None:
        print_placement(placement, c)
    if pred.v_trans and info.hparams.is_n_embd_v_gqa_variable():
        c.print(Text("flash attention off: V is stored transposed and every layer's V rows are padded "
                     "to the widest layer.", style="dim"))


def print_footprint(devices: list, c: Console) -> None:
    """Per device, as llama.cpp's memory breakdown: model / context (KV, state) / compute / output."""
    t = Table(box=box.SIMPLE_HEAD, pad_edge=False, title="Whole footprint per device", title_justify="left")
    repack = any(d.repack_bytes for d in devices)
    recurrent = any(d.recurrent_bytes for d in devices)  # a column only for a model with recurrent state
    cols = (["device", "weights"] + (["repacked"] if repack else []) + ["KV"] + (["recurrent"] if recurrent else [])
            + ["compute", "output", "graph", "total"])
    add_columns(t, cols, labels=("device",))
    for d in devices:
        host = [b for b in d.weights_buffers if b not in EXTRA_BUFTS] if d.device == HOST else []
        t.add_row(d.device, human_bytes(d.weights_bytes) + (f" ({' + '.join(host)})" if len(host) > 1 else ""),
                  *([human_bytes(d.repack_bytes)] if repack else []), human_bytes(d.kv_bytes),
                  *([human_bytes(d.recurrent_bytes)] if recurrent else []), human_bytes(d.compute_bytes),
                  human_bytes(d.output_bytes), human_bytes(d.graph_bytes), human_bytes(d.total_bytes))
    c.print(t)
    mapped = any(d.weights_mapped for d in devices)
    if repack:
        where = "on top of the mapped file" if mapped else "instead of the CPU buffer"
        extra = " + ".join(sorted({b for d in devices for b in d.weights_buffers if b in EXTRA_BUFTS}))
        c.print(Text(f"repacked: weights llama.cpp copies into {extra} at load (faster kernels for this CPU), {where}; "
                     "llama.cpp's own dry run counts them nowhere. --no-repack leaves them out.", style="dim"))
    weights = ("CPU weights are mmapped file pages (CPU_Mapped), counted in full (the safe bound)" if mapped else
               "CPU weights are real host buffers (-lm none/mlock/dio: CPU, a GPU's pinned CUDA_Host), resident")
    c.print(Text(f"Compute buffers from llama.cpp's own dry run (printed to 0.01 MiB); {weights}; the output buffer "
                 "holds one row of logits per sequence; graph: the context's graph metadata on the heap (up to 3 "
                 "graphs' nodes, in no log line).", style="dim"))


def fit_speed_text(report: FitReport) -> str | None:
    """What the pair with the most context cost in generation speed, from ``--results`` (None without it)."""
    if report.speed_source is None:
        return None
    best, src = report.best, printable(str(report.speed_source))
    label = f"{best.cache_type_k}/{best.cache_type_v}"
    if report.speed is None:
        return f"no configuration of {src} measured both {label} and f16/f16 at the fit's settings"
    sp = report.speed
    why = f"{'; '.join(sp.doubts[:3])}{'; …' if len(sp.doubts) > 3 else ''}"
    doubts = f"; {sp.n_doubtful} configuration(s) left out, their samples not to be trusted ({why})" \
        if sp.n_doubtful else ""
    if sp.ratio is None:
        return (f"generation speed against f16: n/a, all {sp.n_doubtful} configuration(s) of {src} measured with "
                f"both {label} and f16/f16 rest on noisy samples or fewer than 2 repetitions ({why}): sweep again "
                "on a quiet machine, or with more repetitions")
    return (f"generation at {sp.ratio:.2f}x f16's speed in {src} (median of {sp.n_pairs} "
            f"configuration(s) measured with both, at the fit's {', '.join(report.speed_settings)}{doubts})")


def print_fit(report: FitReport, console: Console | None = None) -> None:
    """The fit table (a FitReport from ggufprof.api.fit): the defaults it used, what stops each answer,
    the command that runs the best one, and the footnotes."""
    c = console or out_console()
    info, results, budget, base, measured = report.model, report.results, report.budget, report.base, report.verified
    trained = f"trained context {info.n_ctx_train}" if info.n_ctx_train else "no training context stated"
    c.print(Text.assemble((info.name, "bold"), f"  ({info.path.name}, {info.architecture}, {trained})"))
    parts = [f"host {human_bytes(budget.host)}" if budget.host else ""]
    parts += ([f"{dev} {human_bytes(n)}" for dev, n in budget.per_device] if budget.per_device
              else [f"each offload device {human_bytes(budget.vram)}" if budget.vram else ""])
    c.print(Text(f"budget: {', '.join(p for p in parts if p)}, minus a margin of {human_bytes(budget.margin)} · "
                 f"{base.parallel} sequence(s){' unified' if base.kv_unified else ''} · n_ubatch {base.ubatch_size} · "
                 f"flash attention {base.flash_attn}"))
    if report.n_gpu_layers and report.gpu is None:
        c.print(Text(NO_GPU, style="yellow"))
    changed = {k: v for k, v in differing(base, report.profile).items() if k not in ("ctx_size", "cache_type_k", "cache_type_v")}
    c.print(Text(f"defaults: {DEFAULTS_NOTE[report.profile]}"
                 + (f"; changed: {', '.join(f'{k}={v}' for k, v in changed.items())}" if changed else ""), style="dim"))
    t = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    per_seq = base.parallel > 1
    placed = bool(report.devices)
    cols = ["K/V", "max context" if report.search == "context" else "context"] + (["per sequence"] if per_seq else [])
    cols += (["placement"] if placed else []) + ["KV", "compute", "total"]
    gpu = budget.offload
    if gpu:
        cols += ["devices total"]
    cols += ["headroom"]
    gpu_measured = bool(measured) and any(m.get("vram_growth") is not None for m in measured)
    if measured:
        cols += ["peak RSS"] + (["VRAM"] if gpu_measured else []) + ["fits"]
    add_columns(t, cols, labels=("K/V",))
    caps = list(dict.fromkeys(r.capped_by for r in results if r.capped))  # footnote marks, in order
    for i, r in enumerate(results):
        d = r.to_dict()
        mark = "*" * (caps.index(r.capped_by) + 1) if r.capped else ""
        row = [f"{r.cache_type_k}/{r.cache_type_v}", f"{r.ctx_size:,}" + mark]
        row += [f"{r.n_ctx_seq:,}"] if per_seq else []
        row += [placement_words(r.placement) if r.placement else "-"] if placed else []
        row += [human_bytes(d["kv_bytes"] + d["recurrent_bytes"]), human_bytes(d["compute_bytes"]),
                human_bytes(d["total_bytes"])]
        if gpu:
            row += [human_bytes(gpu_bytes(r.devices))]
        row += ["-" if r.headroom is None else human_bytes(r.headroom)]
        if measured:
            m = measured[i]
            row += ["-" if m.get("rss_peak_growth") is None else human_bytes(m["rss_peak_growth"])]
            if gpu_measured:
                row += ["-" if m.get("vram_growth") is None else human_bytes(m["vram_growth"])]
            row += [Text({True: "yes", False: "NO", None: "-"}[m.get("fits")],
                         style={True: "green", False: "bold red", None: ""}[m.get("fits")])]
        t.add_row(*row)
    c.print(t)
    for r in results:
        if r.note:
            c.print(Text(f"{r.cache_type_k}/{r.cache_type_v}: {r.note}", style="yellow"))
        if r.limited_by.get("device"):
            lim = r.limited_by
            hint = {"compute buffer": " (a smaller -ub shrinks it)", "weights": " (fewer layers there, or a smaller "
                    "quantization)"}.get(lim["by"], "")
            step = "the smallest" if not r.ctx_size else f"the next ({r.next_step})" if r.next_step else "the next"
            c.print(Text(f"{r.cache_type_k}/{r.cache_type_v}: {step} step is over the {lim['device']} budget by "
                         f"{human_bytes(lim.get('over_bytes', 0))}; its largest part is the {lim['by']}, "
                         f"{human_bytes(lim['bytes'])}{hint}", style="dim"))
        if (alt := r.alternative) is not None and alt.ctx_size:
            c.print(Text(f"{r.cache_type_k}/{r.cache_type_v} alternative (not applied: -ub changes prompt speed): with "
                         f"-ub {alt.settings.ubatch_size} the compute buffer shrinks to "
                         f"{human_bytes(sum(d.compute_bytes for d in alt.devices))}: context {alt.ctx_size:,}"
                         + (f", {placement_words(alt.placement) if alt.placement else '-'}" if placed else "") + " -- "
                         + report.commands(alt).get("llama-server", ""), style="cyan"))
    _print_answer(report, c)
    if report.search == "placement":
        c.print(Text(f"placement searched for the context (-ngl; for MoE models the first or the last layers' experts on the host, -ncmoe or -ot; part of one more layer as -ot; "
                     f"with several devices and no -ts also the layers per device, -ts): {report.dry_run_loads} "
                     "dry-run load(s) of the model", style="dim"))
    for n, cap in enumerate(caps, 1):
        c.print(Text(f"{'*' * n} {CAP_WORDS[cap]}: memory is not what limits it", style="dim"))
    if measured:
        c.print(Text("peak RSS: measured growth of the process's resident memory"
                     + ("; VRAM: measured growth of its GPU memory after a decode" if gpu_measured else ""), style="dim"))
    c.print(Text("Totals are allocated bytes (weights, KV, recurrent state, compute and output buffers, graph "
                 "metadata); headroom is "
                 "what is left beyond the margin; the next 256-cell step of each answer is over budget (JSON: "
                 "next_step_total_bytes).", style="dim"))
    if gpu and not all(is_rpc_buffer(d) for d in report.devices or []):
        c.print(Text("The GPU budget is memory free to this process, as llama.cpp's --fit reads it (after the CUDA "
                     "context exists); measured VRAM counts from there, after a decode: the margin covers the "
                     "cuBLAS workspace and pools that llama.cpp allocates then and does not log.", style="dim"))
        if budget.margin < SMALL_GPU_MARGIN:
            c.print(Text(f"--margin {human_bytes(budget.margin)} may not hold them (tens of MiB after the first "
                         "decode, e.g. 88-90 MiB for a 7B on an H200: benchmarks/h200-fit); --verify measures them.",
                         style="yellow"))


def _print_answer(report: FitReport, c: Console) -> None:
    """The answer in one line (ties named as ties), the command that runs it, or the budget nothing
    fits under."""
    results = report.results
    most = max(r.ctx_size for r in results)
    if not most:
        need = min((r for r in results if r.smallest_budget), key=lambda r: sum(r.smallest_budget.values()), default=None)
        if need is not None:
            c.print(Text(f"nothing fits; the smallest context ({need.cache_type_k}/{need.cache_type_v}, 256 cells per "
                         "sequence) needs a budget of " + ", ".join(f"{dev} {human_bytes(n)}" for dev, n in
                                                                   need.smallest_budget.items())
                         + f" with the {human_bytes(report.budget.margin)} margin", style="bold red"))
        return
    top = max(rank(r) for r in results)
    best = [r for r in results if rank(r) == top]
    names = ", ".join(f"{r.cache_type_k}/{r.cache_type_v}" for r in best)
    note = fit_speed_text(report)
    where = f" at {placement_words(best[0].placement) if best[0].placement else '-'}" if report.devices else ""
    c.print(Text(f"{names} {'gives' if len(best) == 1 else 'give the same'} context: {most:,} tokens{where}"
                 + (" (the most)" if len(best) < len(results) else "") + (f" ({note})" if note else "")))
    command = report.commands(best[0]).get("llama-server")
    if command:
        c.print(Text("run it: ", style="bold") + Text(command))


class DownloadBar:
    """A model download's progress bar on stderr (model/remote.Progress), drawn only on a terminal:
    scripts and logs get nothing but the result."""

    def __init__(self, console: Console | None = None):
        self.console = console or Console(stderr=True, highlight=False)
        self.bar = None
        self.task = None

    def start(self, name: str, total: int, done: int) -> None:
        from rich.progress import (BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn,
                                   TransferSpeedColumn)

        if not self.console.is_terminal:
            return
        self.bar = Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                            TimeRemainingColumn(), console=self.console)
        self.task = self.bar.add_task(f"downloading {name}", total=total if total >= 0 else None, completed=done)
        self.bar.start()

    def update(self, n: int) -> None:
        if self.bar is not None:
            self.bar.advance(self.task, n)

    def stop(self) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None
