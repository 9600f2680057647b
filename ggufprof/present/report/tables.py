"""The report's tables as rows of display strings, shared by the HTML and Markdown writers.

Why: both outputs must say the same thing in the same words and precision; only the markup
differs. Each Table knows which columns are numeric so a writer can right-align them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ...units import human_bytes, mean_spread
from ...results.quality import fmt_kld, recommendation
from .data import AXIS_LABELS, DASH, ReportData, fmt_setting, cache_summary, check_failures, comparison_rows, environments, \
    not_measured, pair_label, quality_by_pair, quality_errors



@dataclass
class Table:
    title: str
    headers: list[str]
    rows: list[list[str]]
    numeric: list[bool] = field(default_factory=list)  # per column: right-align
    note: str = ""  # shown under the title (or instead of an empty table)
    starts: list[bool] = field(default_factory=list)  # per row: first of a group (a writer may draw a rule)


def fmt_bytes(n: float | None) -> str:
    return DASH if n is None else human_bytes(n)


def fmt_ratio(r: float | None, digits: int = 2) -> str:
    return DASH if r is None else f"{r:.{digits}f}×"


def fmt_tps(mean: float | None, sd: float | None) -> str:
    if mean is None:
        return DASH
    return mean_spread(mean, sd, ",.0f" if mean >= 100 else ".1f")  # sd None: one repetition, no spread measured


QUALITY_HEADERS = ["KLD", "top-1", "Δppl"]
QUALITY_NOTE = (" KLD: mean KL divergence of the next-token distribution against f16/f16 over the same text, "
                "top-1: how often the most likely token agrees, Δppl: relative change of perplexity "
                "(sweep --quality; as llama-perplexity --kl-divergence).")


def fmt_quality(kld: float | None, top1: float | None, dppl: float | None) -> list[str]:
    return [fmt_kld(kld) if kld is not None else DASH, DASH if top1 is None else f"{top1:.1%}",
            DASH if dppl is None else f"{dppl:+.2%}"]


def _noisy(test: str, row: dict) -> str:
    return "~" if test in row["noisy"] else ""


def _ratio_cell(test: str, row: dict) -> str:
    """A ratio to f16/f16, marked "~" when either measurement under it is not trusted (results/noise.py)."""
    text = fmt_ratio(row[f"{test}_ratio"])
    return "~" + text if row[f"{test}_ratio_doubtful"] and row[f"{test}_ratio"] is not None else text


NOISE_NOTE = ("~ marks a measurement not to be trusted, by the rule compare uses: repetitions spread by more "
              "than 10 %, other processes used over 25 % of the CPU, or fewer than 2 repetitions (no spread "
              "measured: ± n/a); a ratio resting on one: do not read a difference into it.")


def _summary_ratio(s: dict, test: str) -> str:
    if s[f"{test}_ratio"] is None and s[f"{test}_ratio_left_out"]:
        return "n/a (noisy)"
    return fmt_ratio(s[f"{test}_ratio"])


def comparison_table(data: ReportData) -> Table:
    rows = comparison_rows(data)
    hosts = len(data.hosts) > 1
    vram = any(r["vram_growth"] is not None for r in rows)
    quality = any(r["kld"] is not None for r in rows)
    axes = data.shown_axes
    headers = (["host"] if hosts else []) + ["K/V"] + [AXIS_LABELS[a] for a in axes] + \
        ["KV cache", "KV ×f16", "RSS growth", "peak RSS"] + (["VRAM growth"] if vram else []) + \
        ["pp t/s", "pp ×f16", "tg t/s", "tg ×f16"] + (QUALITY_HEADERS if quality else [])
    out, starts, prev = [], [], None
    for r in rows:
        group = (r["host"], tuple(r["settings"].items()))
        starts.append(group != prev)
        prev = group
        out.append(([r["host"]] if hosts else []) + [pair_label(r["pair"])]
                   + [fmt_setting(r["settings"][a]) for a in axes]
                   + [fmt_bytes(r["kv_bytes"]), fmt_ratio(r["kv_ratio"], 3), fmt_bytes(r["rss_growth"]),
                      fmt_bytes(r["rss_peak"])] + ([fmt_bytes(r["vram_growth"])] if vram else [])
                   + [_noisy("pp", r) + fmt_tps(r["pp"], r["pp_sd"]), _ratio_cell("pp", r),
                      _noisy("tg", r) + fmt_tps(r["tg"], r["tg_sd"]), _ratio_cell("tg", r)]
                   + (fmt_quality(r["kld"], r["top1"], r["dppl"]) if quality else []))
    n_text = int(hosts) + 1
    numeric = [False] * n_text + [True] * (len(headers) - n_text)
    note = ("KV cache: the predicted bytes (llama.cpp's log agrees, see Checks). RSS growth: resident memory "
            "added by creating the context. t/s: mean ± standard deviation over the repetitions. "
            "×f16: ratio to f16/f16 at the same other settings" + (" on the same host." if hosts else ".")
            + (" " + NOISE_NOTE if any(r["pp_ratio_doubtful"] or r["tg_ratio_doubtful"] for r in rows) else "")
            + (QUALITY_NOTE if quality else ""))
    if not any(r["pair"] == ("f16", "f16") for r in rows):
        note += " No f16/f16 configuration was measured, so there are no ratios."
    return Table("All measured configurations", headers, out, numeric, note if rows else "Nothing was measured.",
                 starts)


def summary_table(data: ReportData) -> Table:
    hosts = len(data.hosts) > 1
    rows = cache_summary(comparison_rows(data), data)
    quality = any(s.get("kld") is not None for s in rows)
    out = []
    for s in rows:
        lo_hi = s["kv_ratio"]
        kv = DASH if lo_hi is None else (fmt_ratio(lo_hi[0], 3) if abs(lo_hi[1] - lo_hi[0]) < 5e-4
                                          else f"{fmt_ratio(lo_hi[0], 3)} – {fmt_ratio(lo_hi[1], 3)}")
        out.append([pair_label(s["pair"])] + ([s["host"]] if hosts else [])
                   + [str(s["configs"]), kv, _summary_ratio(s, "pp"), _summary_ratio(s, "tg")]
                   + (fmt_quality(s.get("kld"), s.get("top1"), s.get("dppl")) if quality else []))
    headers = ["K/V"] + (["host"] if hosts else []) + ["configurations", "KV ×f16", "pp ×f16 (median)",
                                                        "tg ×f16 (median)"] + (QUALITY_HEADERS if quality else [])
    n_text = 1 + int(hosts)
    return Table("By cache type", headers, out, [False] * n_text + [True] * (len(headers) - n_text),
                 "Per K/V cache type pair: the KV size relative to f16/f16 (range over the settings) and the "
                 "median speed ratio to f16/f16 over the configurations whose measurements compare's noise rule "
                 "trusts (both sides: at least 2 repetitions, spread within 10 %, the CPU not taken by others)"
                 + (f"; {left_out} ratio(s) resting on noisy or single measurements left out, n/a (noisy) where "
                    "none was left" if (left_out := sum(s["pp_ratio_left_out"] + s["tg_ratio_left_out"] for s in rows))
                    else "") + "."
                 + (" Quality: the worst measured over the settings." if quality else ""))


def recommendation_table(data: ReportData) -> Table:
    """The recommendation line (a table with no rows: its note is the line), from measured numbers only."""
    q = quality_by_pair(data)
    ratios: dict = {}
    for s in cache_summary(comparison_rows(data), data):
        if s["kv_ratio"] is not None:
            ratios[s["pair"]] = max(ratios.get(s["pair"], 0), s["kv_ratio"][1])
    # no model name in the line: the report's heading names it, and a note is not escaped markup
    line = recommendation(None, [(p, q[p], ratios.get(p)) for p in data.pairs if p in q])
    if q:
        line += " Mean KLD and top-1 against f16/f16 over the same text; the thresholds are explained in the README."
    errors = quality_errors(data)
    if errors:  # the reasons are data (a worker's stderr): counted here, kept in the records' quality.error
        line += (f" The quality measurement failed for some configurations ({len(errors)} distinct reason(s) in "
                 "their records' quality.error).")
    return Table("Recommendation", [], [], [], line)


def checks_table(data: ReportData) -> Table:
    fails = check_failures(data)
    ok = data.ok
    exact = sum(i.rec.check.get("kv_exact") is True for i in ok)
    rss = sum(i.rec.check.get("rss_explained") is True for i in ok)
    summary = (f"{exact} of {len(ok)} measured configurations: KV cache byte-exact against llama.cpp's log; "
               f"{rss} of {len(ok)}: RSS growth at context creation explained by the predicted KV buffers.")
    if not fails:
        return Table("Measurement vs model", [], [], [], summary + " No disagreement.")
    hosts = len(data.hosts) > 1
    out = []
    for f in fails:
        tol = f" ± {fmt_bytes(f['rss_tolerance'])}" if f["rss_tolerance"] is not None else ""
        out.append(([f["host"]] if hosts else []) + [
            f["config"], fmt_bytes(f["kv_predicted"]), fmt_bytes(f["kv_measured"]),
            "; ".join(f["kv_mismatches"]) or ("exact" if f["kv_exact"] else DASH),
            fmt_bytes(f["rss_growth"]), fmt_bytes(f["rss_expected"]) + tol,
            fmt_bytes(f["vram_growth"]), fmt_bytes(f["vram_expected"])])
    headers = (["host"] if hosts else []) + ["configuration", "KV predicted", "KV llama.cpp", "KV mismatches",
                                             "RSS growth", "RSS expected", "VRAM growth", "VRAM expected"]
    n_text = int(hosts) + 1
    numeric = [False] * n_text + [True, True, False, True, True, True, True]
    return Table("Measurement vs model", headers, out, numeric,
                 summary + f" {len(fails)} configuration(s) disagree: predicted and measured side by side.")


def not_measured_table(data: ReportData) -> Table:
    rows = not_measured(data)
    out = [[r["host"], r["status"], r["config"], r["reason"]] for r in rows]
    return Table("Skipped and failed configurations", ["host", "status", "configuration", "reason"], out,
                 [False] * 4, "" if rows else "Every configuration was measured.")


def environment_table(data: ReportData) -> Table:
    envs = environments(data)

    def row(label: str, fn) -> list[str]:
        return [label] + [fmt_setting(fn(e)) if fn(e) not in ("", []) else DASH for e in envs]

    def cores(e: dict) -> str | None:
        return f"{e['cpu_count_physical']} physical, {e['cpu_count_logical']} logical" \
            if e["cpu_count_logical"] else None

    rows = [
        row("results", lambda e: ", ".join(e["sources"])),
        row("llama-cpp-python", lambda e: e["llama_cpp_python"]),
        row("ggufprof", lambda e: e["ggufprof"]),
        row("CPU", lambda e: e["cpu"]),
        row("cores", cores),
        row("memory", lambda e: fmt_bytes(e["memory_total"]) if e["memory_total"] else None),
        row("GPU", lambda e: e["gpu"]),
        row("threads", lambda e: ", ".join(map(str, e["threads"]))),
        row("platform", lambda e: e["platform"]),
        row("Python", lambda e: e["python"]),
        row("llama.cpp system info", lambda e: e["llama_cpp_system_info"]),
    ]
    return Table("Hosts", [""] + [e["host"] for e in envs], rows, [False] * (len(envs) + 1))


def model_table(data: ReportData) -> Table:
    m = data.model
    rows = [["name", str(m.get("name", DASH))], ["architecture", str(m.get("architecture", DASH))],
            ["file", str(m.get("path", DASH))], ["size", fmt_bytes(m.get("size"))],
            ["sha256", str(m.get("sha256", DASH))]]
    return Table("Model", ["", ""], rows, [False, False])
