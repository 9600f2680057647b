"""The report's figures, rendered to PNG bytes with matplotlib's Agg backend.

Why bytes: the HTML page embeds them (one self-contained file) and the Markdown writer saves them
next to report.md; neither needs a display. A figure is drawn only when its axis varies in the
data; otherwise a one-line note says why it is missing, so an absent plot is never a mystery.
Everything not on a plot's axis is held at one reference configuration, named in its caption.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, fields
from pathlib import Path

from ...errors import GgufprofError
from ...memory.settings import KVSettings
from ...memory.predict import predict
from ...model.model_info import ModelInfo, load_model_info
from ...results.speedup import speedup as speedup_factor
from .data import CACHE_KEYS, AXIS_LABELS, Item, fmt_setting, hashable, ReportData, doubtful, measured_kv_bytes, pair_label, speed

MIB = 2**20
NOISY_BARS = " Hatched bars, labelled ~: measurements not to be trusted (compare's noise rule: spread over 10 %, " \
    "the CPU taken by other processes, or fewer than 2 repetitions)."


def _speed_bar(rec, test: str) -> tuple[float | None, float | None, bool]:
    """(mean, stddev, not trusted): a bar of tokens/s, hatched when results/noise.py does not trust it."""
    return (*speed(rec, test), doubtful(rec, test))
FREE_ALWAYS = {*CACHE_KEYS, "threads", "repetitions"}  # threads follow each host's cores; cache types are the series


@dataclass
class Plot:
    slug: str  # file name part: report-<slug>.png
    title: str
    caption: str
    png: bytes
    wide: bool = False  # several panels: a page gives it the full width


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # labels carry host names and model data: '$' must stay a dollar sign, never start mathtext
    plt.rcParams["text.parse_math"] = False
    return plt


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    _pyplot().close(fig)
    return buf.getvalue()


def _reference(data: ReportData, items: list[Item], free: set[str]) -> dict:
    """Values of the varying settings not on the plot's axes: those of the group of records in
    which the plot's own axes take the most values (the first such group on a tie), so a sweep
    that varies depth in one corner of its grid still gets its depth plot from that corner."""
    keys = [k for k in data.varying if k not in free | FREE_ALWAYS]
    groups: dict[tuple, set] = {}
    for i in items:
        g = tuple(hashable(i.rec.settings.get(k)) for k in keys)
        groups.setdefault(g, set()).add(tuple(hashable(i.rec.settings.get(f)) for f in sorted(free)))
    best = max(groups, key=lambda g: len(groups[g]))
    return dict(zip(keys, best))


def _matching(items: list[Item], ref: dict) -> list[Item]:
    return [i for i in items if all(hashable(i.rec.settings.get(k)) == v for k, v in ref.items())]


def _ref_text(ref: dict) -> str:
    return ", ".join(f"{AXIS_LABELS[k]} {fmt_setting(v)}" for k, v in ref.items()) or "the sweep's settings"


def _model_info(model: dict) -> ModelInfo | None:
    """The GGUF file the sweep read, if it is still there (same size); None draws from records only."""
    path = Path(model.get("path") or "")
    try:
        if path.is_file() and path.stat().st_size == model.get("size"):
            return load_model_info(path)
    except (GgufprofError, OSError):
        pass
    return None


def _kv_settings(settings: dict, ctx: int) -> KVSettings:
    known = {f.name for f in fields(KVSettings)}
    return KVSettings(**{**{k: v for k, v in settings.items() if k in known}, "ctx_size": ctx})


def kv_vs_ctx(data: ReportData) -> Plot | str:
    items = [i for i in data.items if i.rec.predicted.get("kv_bytes")]
    ctxs = sorted({i.rec.settings["ctx_size"] for i in items})
    if len(ctxs) < 2:
        one = ctxs[0] if ctxs else "—"
        return f"KV memory against context size: not drawn, the sweep has one context size ({one})."
    ref = _reference(data, items, {"ctx_size", "depth"})
    items = _matching(items, ref)
    info = _model_info(data.model)
    log_x = ctxs[0] > 0 and ctxs[-1] / ctxs[0] >= 8  # ctx 0: the training context, a linear axis
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.2))
    for n, pair in enumerate(data.pairs):
        mine = sorted((i for i in items if i.pair == pair), key=lambda i: i.rec.settings["ctx_size"])
        if not mine:
            continue
        color = f"C{n}"
        line = {i.rec.settings["ctx_size"]: i.rec.predicted["kv_bytes"] for i in mine}
        if info is not None:
            lo, hi = min(line), max(line)
            grid = {round(lo * (hi / lo) ** (k / 160)) if log_x else lo + (hi - lo) * k // 160 for k in range(161)}
            for c in sorted(grid | set(line)):
                try:
                    line[c] = predict(info, _kv_settings(mine[0].rec.settings, c)).kv_bytes
                except GgufprofError:
                    pass
        xs = sorted(line)
        ax.plot(xs, [line[x] / MIB for x in xs], color=color, lw=1.5, label=f"{pair_label(pair)} model")
        pts = [(i.rec.settings["ctx_size"], measured_kv_bytes(i.rec)) for i in mine if i.ok]
        pts = [(x, y) for x, y in pts if y is not None]
        if pts:
            ax.plot([x for x, _ in pts], [y / MIB for _, y in pts], "o", color=color, ms=6, mfc="white",
                    label=f"{pair_label(pair)} llama.cpp")
        state = mine[0].rec.predicted.get("recurrent_bytes")
        if state:  # recurrent / compressor state: a fixed size per sequence, flat in the context size
            ax.axhline(state / MIB, color=color, ls="--", lw=1, label=f"{pair_label(pair)} recurrent state (fixed)")
    if log_x:
        from matplotlib.ticker import FuncFormatter

        ax.set_xscale("log", base=2)
        ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:,.0f}"))
    ax.set_xlabel("context size (tokens)")
    ax.set_ylabel("KV cache, recurrent state (MiB)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, ncols=2)
    src = "the model's prediction from the GGUF file" if info else "through the predicted sizes (GGUF file not found)"
    return Plot("kv-vs-ctx", "KV memory against context size",
                f"Lines: {src}; circles: what llama.cpp logged. At {_ref_text(ref)}.", _png(fig))


def speed_vs_depth(data: ReportData) -> Plot | str:
    depths = sorted({i.rec.settings.get("depth", 0) for i in data.ok})
    if len(depths) < 2:
        return f"Tokens/s against depth: not drawn, the sweep has one depth ({depths[0] if depths else '—'})."
    ref = _reference(data, data.ok, {"depth"})
    items = _matching(data.ok, ref)
    tests = [t for t in ("pp", "tg") if any(speed(i.rec, t)[0] is not None for i in items)]
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(tests), figsize=(8 if len(tests) == 1 else 11, 4.2), squeeze=False)
    styles = ["-", "--", ":", "-."]
    noisy = False
    for ax, test in zip(axes[0], tests):
        for n, pair in enumerate(data.pairs):
            for h, host in enumerate(data.hosts):
                mine = sorted((i for i in items if i.pair == pair and i.host == host),
                              key=lambda i: i.rec.settings.get("depth", 0))
                pts = [(i.rec.settings.get("depth", 0), *_speed_bar(i.rec, test)) for i in mine]
                pts = [p for p in pts if p[1] is not None]
                if not pts:
                    continue
                label = pair_label(pair) + (f" · {host}" if len(data.hosts) > 1 else "")
                ax.errorbar([p[0] for p in pts], [p[1] for p in pts], yerr=[p[2] or 0 for p in pts], color=f"C{n}",
                            ls=styles[h % 4], marker="o", ms=4, capsize=3, label=label)
                bad = [p for p in pts if p[3]]
                if bad:  # hollow: not trusted
                    ax.plot([p[0] for p in bad], [p[1] for p in bad], "o", ms=7, mfc="white", mec=f"C{n}", zorder=3)
                    noisy = True
        ax.set_title(f"{test} ({'prompt processing' if test == 'pp' else 'generation'})", fontsize=10)
        ax.set_xlabel("depth (tokens already in the context)")
        ax.set_ylabel("tokens/s")
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return Plot("speed-vs-depth", "Tokens/s against depth",
                f"Mean over the repetitions, error bars: standard deviation. At {_ref_text(ref)}."
                + (" Hollow points: measurements not to be trusted (compare's noise rule: spread over 10 %, the CPU "
                   "taken by other processes, or fewer than 2 repetitions)." if noisy else ""), _png(fig),
                len(tests) > 1)


def _hatch(bars, vals: list[tuple]) -> None:
    """Hatch the bars whose value (value, error, not trusted) is not trusted."""
    for bar, t in zip(bars, vals):
        if len(t) > 2 and t[2]:
            bar.set_hatch("//")
            bar.set_alpha(0.5)


def _bars(ax, groups: list[str], series: dict[str, list[tuple[float | None, float | None]]]) -> None:
    """Grouped bars: one group per label, one bar per series (value, error)."""
    width = 0.8 / max(len(series), 1)
    for n, (name, vals) in enumerate(series.items()):
        xs = [g + (n - (len(series) - 1) / 2) * width for g in range(len(groups))]
        errors = [t[1] or 0 for t in vals] if any(t[1] for t in vals) else None
        bars = ax.bar(xs, [t[0] or 0 for t in vals], width, yerr=errors, capsize=3, color=f"C{n}", label=name)
        _hatch(bars, vals)
        if errors is None:  # sizes: print them on the bars
            ax.bar_label(bars, labels=["" if t[0] is None else f"{t[0]:.2f}" for t in vals], fontsize=7, padding=2)
    ax.set_xticks(range(len(groups)), groups, fontsize=8)
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=8)


def swa_full_plot(data: ReportData) -> Plot | str:
    items = [i for i in data.items if len(i.rec.predicted.get("caches") or []) == 2]
    if not items:
        return "swa_full on vs off: not drawn, the model has no sliding-window layers."
    if len({i.rec.settings.get("swa_full") for i in items}) < 2:
        return "swa_full on vs off: not drawn, the sweep ran one swa_full setting."
    ref = _reference(data, items, {"swa_full", "ctx_size", "depth"})
    items = _matching(items, ref)
    keys = list(dict.fromkeys((i.rec.settings["ctx_size"], i.pair) for i in
                              sorted(items, key=lambda i: (i.rec.settings["ctx_size"], data.pairs.index(i.pair)))))
    by = {(i.rec.settings["ctx_size"], i.pair, i.rec.settings.get("swa_full")): i for i in items}
    series = {f"swa_full {label}": [((by[(c, p, on)].rec.predicted["kv_bytes"] / MIB) if (c, p, on) in by else None,
                                     None) for c, p in keys] for on, label in ((False, "off"), (True, "on"))}
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.2))
    _bars(ax, [f"{pair_label(p)}\nctx {c}" for c, p in keys], series)
    ax.set_ylabel("KV cache, recurrent state (MiB)")
    return Plot("swa-full", "SWA cache: swa_full on vs off",
                "With swa_full off the sliding-window layers keep only window + ubatch cells per sequence. "
                f"Predicted bytes (llama.cpp's log agrees, see Checks). At {_ref_text(ref)}.", _png(fig))


def unified_plot(data: ReportData) -> Plot | str:
    items = [i for i in data.ok if i.rec.settings.get("parallel", 1) > 1]
    if not items:
        return "Unified vs per-sequence cache: not drawn, every configuration ran one sequence."
    if len({i.rec.settings.get("kv_unified") for i in items}) < 2:
        return "Unified vs per-sequence cache: not drawn, the sweep ran one kv_unified setting."
    ref = _reference(data, items, {"kv_unified"})
    items = _matching(items, ref)
    keys = list(dict.fromkeys((i.host, i.pair) for i in
                              sorted(items, key=lambda i: (data.pairs.index(i.pair), data.hosts.index(i.host)))))
    by = {(i.host, i.pair, i.rec.settings.get("kv_unified")): i for i in items}
    labels = [pair_label(p) + (f"\n{h}" if len(data.hosts) > 1 else "") for h, p in keys]
    plt = _pyplot()
    fig, (ax_kv, ax_tg) = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, what in ((ax_kv, "kv"), (ax_tg, "tg")):
        series = {}
        for on, label in ((False, "per-sequence"), (True, "unified")):
            vals = []
            for h, p in keys:
                it = by.get((h, p, on))
                if it is None:
                    vals.append((None, None))
                elif what == "kv":
                    vals.append((it.rec.predicted.get("kv_bytes", 0) / MIB, None))
                else:
                    vals.append(_speed_bar(it.rec, "tg"))
            series[label] = vals
        _bars(ax, labels, series)
        ax.set_ylabel("KV cache (MiB)" if what == "kv" else "tg tokens/s")
        ax.set_title("KV cache" if what == "kv" else "generation speed (± stddev)", fontsize=10)
    return Plot("unified", "Unified vs per-sequence KV cache",
                f"Several sequences sharing one KV buffer (unified) or one stream each. At {_ref_text(ref)}."
                + (NOISY_BARS if any(doubtful(i.rec, "tg") for i in items) else ""),
                _png(fig), True)


def _bar_panel(ax, labels: list[str], series: dict[str, list[tuple[float | None, float | None]]], fmt,
               colors: list[str]) -> None:
    """Bars per cache type: one series each in the cache type's colour (as in the other plots), or, with
    several series (hosts), one colour per host; values printed on the bars with ``fmt``."""
    width = 0.8 / max(len(series), 1)
    for n, (name, vals) in enumerate(series.items()):
        xs = [g + (n - (len(series) - 1) / 2) * width for g in range(len(labels))]
        errs = [t[1] or 0 for t in vals]
        bars = ax.bar(xs, [t[0] or 0 for t in vals], width, yerr=errs if any(errs) else None, capsize=3,
                      color=colors if len(series) == 1 else f"C{n}", label=name)
        _hatch(bars, vals)
        ax.bar_label(bars, labels=["n/a" if t[0] is None else ("~" if len(t) > 2 and t[2] else "") + fmt(t[0])
                                   for t in vals], fontsize=7, padding=2)
    ax.set_xticks(range(len(labels)), labels, fontsize=8, rotation=30 if len(labels) > 4 else 0)
    ax.set_ylim(bottom=0)
    ax.margins(y=0.15)
    ax.grid(alpha=0.3, axis="y")
    if len(series) > 1:
        ax.legend(fontsize=7)


def cache_type_chart(data: ReportData) -> Plot | str:
    """Always drawn when anything was measured: KV bytes, tokens/s and (when measured) mean KLD per
    cache type side by side, at the reference configuration holding the most cache types."""
    from ...results.quality import fmt_kld
    from .data import quality_block

    if not data.ok:
        return "By cache type: not drawn, no configuration was measured."
    ref = _reference(data, data.ok, set(CACHE_KEYS))
    items = _matching(data.ok, ref)
    pairs = [p for p in data.pairs if any(i.pair == p for i in items)]
    by = {(i.host, i.pair): i for i in items}
    hosts = [h for h in data.hosts if any(i.host == h for i in items)]
    tests = [t for t in ("pp", "tg") if any(speed(i.rec, t)[0] is not None for i in items)]
    quality = any(quality_block(i.rec) for i in items)
    panels = ["kv"] + tests + (["kld"] if quality else [])
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(3.4 * len(panels) + 1, 4.0), squeeze=False,
                             layout="constrained")
    labels = [pair_label(p) for p in pairs]
    colors = [f"C{data.pairs.index(p)}" for p in pairs]
    for ax, panel in zip(axes[0], panels):
        if panel == "kv":  # the same bytes on every host: one series
            first = {p: next(by[(h, p)] for h in hosts if (h, p) in by) for p in pairs}
            kv = [first[p].rec.predicted.get("kv_bytes") or measured_kv_bytes(first[p].rec) for p in pairs]
            _bar_panel(ax, labels, {"KV cache": [(None if b is None else b / MIB, None) for b in kv]},
                       lambda v: f"{v:.2f}", colors)
            ax.set_title("KV cache (MiB)", fontsize=10)
        elif panel in ("pp", "tg"):
            series = {h: [_speed_bar(by[(h, p)].rec, panel) if (h, p) in by else (None, None) for p in pairs]
                      for h in hosts}
            _bar_panel(ax, labels, series, lambda v: f"{v:,.0f}", colors)
            ax.set_title(f"{panel} tokens/s (± stddev)", fontsize=10)
        else:
            def kld(h: str, p: tuple[str, str]) -> tuple[float | None, None]:
                q = quality_block(by[(h, p)].rec) if (h, p) in by else None
                return (q["kld_mean"] if q else None), None
            _bar_panel(ax, labels, {h: [kld(h, p) for p in pairs] for h in hosts}, fmt_kld, colors)
            ax.set_title("mean KLD vs f16/f16 (nats)", fontsize=10)
    return Plot("cache-types", "By cache type",
                "KV bytes (predicted), tokens/s (mean ± stddev over the repetitions)"
                + (" and mean KL divergence against f16/f16 (sweep --quality)" if quality else
                   "; no quality measured (sweep --quality adds mean KLD)")
                + f". At {_ref_text(ref)}" + ("; colours: hosts" if len(hosts) > 1 else "") + "."
                + (NOISY_BARS if any(doubtful(i.rec, t) for i in items for t in tests) else ""),
                _png(fig), True)


def speedup_plot(data: ReportData) -> Plot | str:
    """``ggufprof speedup``'s latest record: time per token against its position with and without the
    KV cache (the largest n), and the speed-up per n."""
    if not data.speedup:
        return ("Generation with and without the KV cache: not drawn, no speedup.jsonl "
                "(`ggufprof speedup MODEL --out DIR` writes one).")
    rec = data.speedup[-1]
    last = max(rec.points, key=lambda p: p["n"])
    plt = _pyplot()
    fig, (ax_t, ax_s) = plt.subplots(1, 2, figsize=(11, 4.2))
    xs = list(range(last["n"]))
    for n, (mode, label) in enumerate((("cached", "with the KV cache (1 token per step)"),
                                       ("uncached", "without: the whole prefix again"))):
        ax_t.plot(xs, [s * 1e3 for s in last[mode]["per_token_s"]], color=f"C{n}", lw=1.2, label=label)
    from matplotlib.ticker import FuncFormatter, NullFormatter

    ax_t.set_yscale("log")
    ax_t.yaxis.set_major_formatter(FuncFormatter(lambda y, _: f"{y:g}"))
    ax_t.set_xlabel("position of the generated token")
    ax_t.set_ylabel("ms per token")
    ax_t.set_title(f"time per token, n = {last['n']}", fontsize=10)
    ax_t.grid(alpha=0.3, which="both")
    ax_t.legend(fontsize=8)
    ns = [p["n"] for p in rec.points]
    ups = [speedup_factor(p) or 0 for p in rec.points]
    ax_s.plot(ns, ups, "o-", color="C2")
    for x, y in zip(ns, ups):
        ax_s.annotate(f"{y:.1f}×", (x, y), textcoords="offset points", xytext=(0, 6), ha="center", fontsize=8)
    if len(ns) > 1 and ns[-1] / ns[0] >= 8:
        ax_s.set_xscale("log", base=2)
        ax_s.xaxis.set_minor_formatter(NullFormatter())
    ax_s.set_xticks(ns, [str(n) for n in ns])
    ax_s.set_xlabel("tokens generated (n)")
    ax_s.set_ylabel("speed-up (time without / with)")
    ax_s.set_title("total speed-up of the KV cache", fontsize=10)
    ax_s.set_ylim(bottom=0)
    ax_s.margins(y=0.15)
    ax_s.grid(alpha=0.3)
    s = rec.settings
    return Plot("speedup", "Generation with and without the KV cache",
                f"Real llama.cpp runs on {rec.host} ({s.get('threads')} threads, f16 cache, mean of "
                f"{len(last['cached']['samples_s'])} repetition(s)): each step timed alone. Without the cache every "
                "step clears the memory and evaluates the whole prefix (llama.cpp counted position + 1 tokens per "
                f"step, against 1 with the cache). Latest of {len(data.speedup)} speedup record(s), "
                f"{rec.started_at or 'undated'}.", _png(fig), True)


def make_plots(data: ReportData) -> tuple[list[Plot], list[str]]:
    """Every plot the data supports, and a note for each one it does not. The cache-type chart comes
    first and is drawn whatever varies in the sweep; the speedup plot comes from speedup.jsonl."""
    plots, notes = [], []
    if not data.items:
        notes.append("The sweep's plots: not drawn, no sweep records here (results.jsonl).")
    for fn in (cache_type_chart, kv_vs_ctx, speed_vs_depth, swa_full_plot, unified_plot) if data.items else ():
        result = fn(data)
        (plots if isinstance(result, Plot) else notes).append(result)
    result = speedup_plot(data)
    (plots if isinstance(result, Plot) else notes).append(result)
    return plots, notes
