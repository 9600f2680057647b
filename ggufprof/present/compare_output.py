"""What ``ggufprof compare`` writes: a rich table for people, GitHub markdown for PR comments, JSON
for scripts and JUnit XML for CI dashboards (one testcase per configuration x metric).

The table and markdown show what changed (regressions, improvements, metrics not compared) and
count the unchanged rows; JSON and JUnit carry every row.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET

import orjson

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from ..results.compare import Comparison, MetricResult, Unpaired
from ..results.quality import fmt_kld
from ..units import human_bytes

FORMATS = ("table", "md", "json", "junit")


def fmt_value(metric: str, v: object) -> str:
    if v is None:
        return "-"
    if metric == "kv_predicted":
        return f"{v:,} B"
    if metric == "kv_logged":
        return f"{v} MiB"
    if metric.startswith("rss"):
        return human_bytes(v)
    if metric == "kld_mean":
        return f"{fmt_kld(v)} nats"
    return f"{v:,.1f} t/s"


def fmt_change(r: MetricResult) -> str:
    if r.metric == "kld_mean" and r.baseline is not None and r.new is not None:  # judged in absolute nats
        return f"{r.new - r.baseline:+.2g} nats"
    if r.change is None:
        return "-"
    if math.isinf(r.change):
        return "from 0"
    if r.metric == "kv_predicted":  # exact bytes: one block more is +34 B, far below 0.01 %
        return f"{r.new - r.baseline:+,} B"
    return f"{r.change * 100:+.2f}%"


def fmt_p(r: MetricResult) -> str:
    if r.p_welch is None:
        return ""
    return f"{r.p_welch:.3f}/{r.p_mannwhitney:.3f}"


def _rows(cmp: Comparison) -> list[MetricResult]:
    return cmp.where("regression") + cmp.where("improvement") + cmp.where("noisy")


def _metrics_not_compared(cmp: Comparison) -> list[str]:
    """Metrics not compared, grouped by reason: 'kv_predicted, rss_peak (12 configurations): missing in
    the new results' (results imported from llama-bench have no memory figures)."""
    groups: dict[str, tuple[dict, set]] = {}
    for r in cmp.where("not_compared"):
        metrics, ids = groups.setdefault(r.note, ({}, set()))
        metrics[r.metric] = None
        ids.add(r.id)
    return [f"{', '.join(m)} ({len(ids)} configuration(s)): {note}" for note, (m, ids) in groups.items()]


def summary(cmp: Comparison) -> str:
    n = {v: len(cmp.where(v)) for v in ("regression", "improvement", "unchanged", "not_compared", "noisy")}
    text = (f"{n['regression']} regression(s), {n['improvement']} improvement(s), {n['noisy']} noisy, {n['unchanged']} unchanged "
            f"over {cmp.matched} matched configuration(s); {len(cmp.only_baseline)} only in the baseline, "
            f"{len(cmp.only_new)} only in the new results, {len(cmp.not_compared)} not compared (not ok)")
    gate = cmp.gate_failures()
    return text + ("; FAILED: " + "; ".join(gate) if gate else "")


def _unpaired_lines(cmp: Comparison, labels: dict[str, str]) -> list[tuple[str, list[str]]]:
    def line(u: Unpaired, status: str | None) -> str:
        return f"{labels[u.id]} ({status}{': ' + u.reason if u.reason else ''})"
    return [("only in the baseline", [line(u, u.baseline_status) for u in cmp.only_baseline]),
            ("only in the new results", [line(u, u.new_status) for u in cmp.only_new]),
            ("not compared", [f"{labels[u.id]}: {u.reason}" for u in cmp.not_compared]),
            ("metrics not compared", _metrics_not_compared(cmp))]


def print_table(cmp: Comparison, console: Console) -> None:
    """Paths, labels and reasons are data: they are printed as Text, never parsed as markup."""
    labels = cmp.labels()
    th = cmp.thresholds
    console.print(Text.assemble("baseline ", (cmp.baseline, "bold"), " → new ", (cmp.new, "bold")))
    console.print(Text(f"thresholds: KV +{th.max_kv_increase:.2%}, RSS +{th.max_mem_increase:.2%} (noise "
                       f"{human_bytes(th.rss_noise)}), tokens/s -{th.max_tps_drop:.2%} at alpha {th.alpha:g}, "
                       f"mean KLD +{th.max_kld_increase:g} nats"))
    rows = _rows(cmp)
    if rows:
        t = Table(box=box.SIMPLE_HEAD)
        t.add_column("configuration", overflow="fold", min_width=min(max(len(labels[r.id]) for r in rows), 28))
        for col in ("metric", "baseline", "new", "change", "p Welch/MWU", "verdict"):
            t.add_column(col, justify="left" if col in ("metric", "verdict") else "right", no_wrap=True)
        style = {"regression": "red", "improvement": "green", "noisy": "yellow"}
        for r in rows:
            t.add_row(Text(labels[r.id]), r.metric, fmt_value(r.metric, r.baseline), fmt_value(r.metric, r.new),
                      fmt_change(r), fmt_p(r), Text(r.verdict, style=style[r.verdict]))
        console.print(t)
    for title, lines in _unpaired_lines(cmp, labels):
        if lines:
            console.print(Text.assemble((title, "yellow"), ": " + "; ".join(lines)))
    console.print(Text(summary(cmp), style="red" if cmp.failed else "green"))


def to_markdown(cmp: Comparison) -> str:
    labels = cmp.labels()
    out = [f"### ggufprof compare: `{cmp.baseline}` → `{cmp.new}`", "", f"**{summary(cmp)}**", ""]
    rows = _rows(cmp)
    if rows:
        out += ["| configuration | metric | baseline | new | change | p Welch / MWU | verdict |",
                "| --- | --- | ---: | ---: | ---: | ---: | --- |"]
        icon = {"regression": ":x: regression", "improvement": ":white_check_mark: improvement",
                "noisy": ":warning: noisy"}
        for r in rows:
            out.append(f"| `{labels[r.id]}` | {r.metric} | {fmt_value(r.metric, r.baseline)} | "
                       f"{fmt_value(r.metric, r.new)} | {fmt_change(r)} | {fmt_p(r)} | {icon[r.verdict]} |")
        out.append("")
    for title, lines in _unpaired_lines(cmp, labels):
        if lines:
            out += [f"**{title[0].upper() + title[1:]}**", ""] + [f"- `{ln}`" for ln in lines] + [""]
    return "\n".join(out)


def to_junit(cmp: Comparison) -> str:
    suite = ET.Element("testsuite", name="ggufprof compare")
    n_fail = n_skip = 0
    for r in cmp.results:
        case = ET.SubElement(suite, "testcase", classname=r.id, name=r.metric)
        what = (f"{r.metric}: baseline {fmt_value(r.metric, r.baseline)}, new {fmt_value(r.metric, r.new)}, "
                f"change {fmt_change(r)}" + (f", p Welch/MWU {fmt_p(r)}" if r.p_welch is not None else ""))
        if r.verdict == "regression":
            n_fail += 1
            ET.SubElement(case, "failure", message=what, type="regression").text = what
        elif r.verdict == "not_compared":
            n_skip += 1
            ET.SubElement(case, "skipped", message=r.note)
        else:
            ET.SubElement(case, "system-out").text = f"{r.verdict}: {what}"
    lost = {id(u) for u in cmp.lost} if not cmp.allow_missing else set()
    for u, why in ([(u, "only in the baseline") for u in cmp.only_baseline]
                   + [(u, "only in the new results") for u in cmp.only_new]
                   + [(u, u.reason) for u in cmp.not_compared]):
        case = ET.SubElement(suite, "testcase", classname=u.id, name="configuration")
        if id(u) in lost:
            n_fail += 1
            msg = f"ok in the baseline, {u.new_status or 'missing'} in the new results" + (f": {why}" if why else "")
            ET.SubElement(case, "failure", message=msg, type="lost").text = msg
        else:
            n_skip += 1
            ET.SubElement(case, "skipped", message=why)
    if cmp.matched == 0 and not cmp.allow_missing:
        n_fail += 1
        case = ET.SubElement(suite, "testcase", classname="ggufprof", name="matched configurations")
        ET.SubElement(case, "failure", message="nothing was compared", type="empty").text = \
            "no configuration was measured on both sides"
    suite.set("tests", str(len(suite)))
    suite.set("failures", str(n_fail))
    suite.set("skipped", str(n_skip))
    suite.set("errors", "0")
    ET.indent(suite)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(suite, encoding="unicode") + "\n"


def to_json(cmp: Comparison) -> str:
    """One object, indented by 2; NaN and infinities (JSON has none) as null, as orjson writes them."""
    return orjson.dumps(cmp.to_dict(), option=orjson.OPT_INDENT_2).decode() + "\n"
