"""What ``ggufprof compare`` writes: a rich table for people, GitHub markdown for PR comments, JSON
for scripts and JUnit XML for CI dashboards (one testcase per configuration x metric).

The table and markdown show what changed (regressions, improvements, inconclusive comparisons,
metrics missing or not compared) and count the unchanged rows; JSON and JUnit carry every row. Every
format states the gate's outcome: pass, FAILED, or INCONCLUSIVE (exit 3; accepted by --allow-noisy).

Everything that comes from the records (configuration labels, reasons, notes, file names) is data:
in the terminal it goes through ``units.printable`` (no escape sequences or control characters) and
rich ``Text`` (no markup); in Markdown through ``md_text`` (no code spans, links, tables or line
breaks it could open); in JUnit through ``printable`` too (XML 1.0 cannot hold control characters).
"""

from __future__ import annotations

import itertools
import math
import xml.etree.ElementTree as ET

import orjson

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from .console import add_columns

from ..results.compare import Comparison, MetricResult, Unpaired
from ..results.quality import fmt_kld
from ..units import human_bytes, printable
from .report.markdown import md_text

FORMATS = ("table", "md", "json", "junit")
SHOWN = ("regression", "improvement", "inconclusive")  # the verdicts that get a row of their own
TEXT_MAX = 1000  # characters of one record-borne string shown (ids are ~150, reasons cut at 300)


def safe(text: object) -> str:
    """Text from the records, for a terminal or an XML attribute: one printable line."""
    return printable(str(text), TEXT_MAX)


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
    return [r for verdict in SHOWN for r in cmp.where(verdict)]


def _metric_groups(cmp: Comparison, verdict: str) -> list[str]:
    """Metrics of one verdict (missing, not_compared) grouped by reason: 'kv_predicted, rss_peak (12
    configurations): not measured in the new results' (results imported from llama-bench have no
    memory figures)."""
    groups: dict[str, tuple[dict, set]] = {}
    for r in cmp.where(verdict):
        metrics, ids = groups.setdefault(r.note, ({}, set()))
        metrics[r.metric] = None
        ids.add(r.id)
    return [f"{', '.join(m)} ({len(ids)} configuration(s)): {note}" for note, (m, ids) in groups.items()]


def outcome(cmp: Comparison) -> str:
    """The gate's verdict in words, with its exit code."""
    n = len(cmp.where("inconclusive"))
    if cmp.status == "fail":
        return "FAILED: " + "; ".join(([f"{len(cmp.regressions)} regression(s)"] if cmp.regressions else [])
                                      + cmp.gate_failures()) + f" (exit {int(cmp.exit_code)})"
    if cmp.status == "inconclusive":
        return (f"INCONCLUSIVE: {n} comparison(s) could not be judged (noise, too few samples); "
                f"--allow-noisy accepts them (exit {int(cmp.exit_code)})")
    return "pass" + (f", {n} inconclusive comparison(s) accepted by --allow-noisy" if n else "") + \
        (" (missing results accepted by --allow-missing)" if cmp.allow_missing and
         (cmp.lost or cmp.where("missing") or not cmp.matched) else "") + " (exit 0)"


def summary(cmp: Comparison) -> str:
    n = {v: len(cmp.where(v)) for v in ("regression", "improvement", "unchanged", "inconclusive", "missing")}
    return (f"{n['regression']} regression(s), {n['improvement']} improvement(s), {n['inconclusive']} inconclusive, "
            f"{n['unchanged']} unchanged over {cmp.matched} matched configuration(s); {n['missing']} metric(s) "
            f"missing in the new results; {len(cmp.only_baseline)} only in the baseline, {len(cmp.only_new)} only in "
            f"the new results, {len(cmp.not_compared)} not compared (not ok); {outcome(cmp)}")


def _unpaired_lines(cmp: Comparison, labels: dict[str, str]) -> list[tuple[str, list[str]]]:
    def line(u: Unpaired, status: str | None) -> str:
        return f"{labels[u.id]} ({status}{': ' + u.reason if u.reason else ''})"
    return [("only in the baseline", [line(u, u.baseline_status) for u in cmp.only_baseline]),
            ("only in the new results", [line(u, u.new_status) for u in cmp.only_new]),
            ("not compared", [f"{labels[u.id]}: {u.reason}" for u in cmp.not_compared]),
            ("metrics missing in the new results", _metric_groups(cmp, "missing")),
            ("metrics not compared", _metric_groups(cmp, "not_compared"))]


STYLE = {"regression": "red", "improvement": "green", "inconclusive": "yellow"}
STATUS_STYLE = {"fail": "red", "inconclusive": "yellow", "pass": "green"}


# Configurations the table shows, worst first: a terminal is read, not searched (the other formats
# hold every one; a 100,000-configuration gate printed in full took minutes and said nothing more).
TABLE_CONFIGURATIONS = 200


def print_table(cmp: Comparison, console: Console) -> None:
    """Paths, labels and reasons are data: printed as Text, never parsed as markup, and printable.
    The TABLE_CONFIGURATIONS worst configurations; a line counts the rest by verdict."""
    labels = cmp.labels()
    th = cmp.thresholds
    console.print(Text.assemble("baseline ", (safe(cmp.baseline), "bold"), " → new ", (safe(cmp.new), "bold")))
    console.print(Text(safe(cmp.builds_line()), style="bold" if cmp.builds_differ else "dim"))
    console.print(Text(f"thresholds: KV +{th.max_kv_increase:.2%}, RSS +{th.max_mem_increase:.2%} (noise "
                       f"{human_bytes(th.rss_noise)}), tokens/s -{th.max_tps_drop:.2%} at alpha {th.alpha:g}, "
                       f"mean KLD +{th.max_kld_increase:g} nats"))
    rows = _rows(cmp)  # worst verdict first; each configuration's rows together, where its worst one stands
    first = {}
    for i, r in enumerate(rows):
        first.setdefault(labels[r.id], i)
    rows.sort(key=lambda r: first[labels[r.id]])
    groups = [(label, list(group)) for label, group in itertools.groupby(rows, key=lambda r: labels[r.id])]
    hidden = groups[TABLE_CONFIGURATIONS:]
    groups = groups[:TABLE_CONFIGURATIONS]
    notes = [r for _, group in groups for r in group if r.note]  # why a row is inconclusive or missing: below
    note_no = {id(r): i for i, r in enumerate(notes, 1)}
    for label, group in groups:
        # one small table per configuration under its label: an 80-column terminal keeps every number
        console.print(Text(safe(label), style="bold"))
        t = Table(box=box.SIMPLE_HEAD, pad_edge=False)
        add_columns(t, ("metric", "baseline", "new", "change", "p Welch/MWU", "verdict"), labels=("metric", "verdict"))
        for r in group:
            mark = f" [{note_no[id(r)]}]" if id(r) in note_no else ""
            t.add_row(r.metric, fmt_value(r.metric, r.baseline), fmt_value(r.metric, r.new), fmt_change(r), fmt_p(r),
                      Text(r.verdict + mark, style=STYLE[r.verdict]))
        console.print(t)
    for i, r in enumerate(notes, 1):
        console.print(Text(f"[{i}] {safe(r.note)}", style="dim"))
    if hidden:
        verdicts: dict[str, int] = {}
        for _, group in hidden:
            for r in group:
                verdicts[r.verdict] = verdicts.get(r.verdict, 0) + 1
        console.print(Text(f"... {len(hidden):,} more configuration(s) not shown ("
                           + ", ".join(f"{n:,} {v}" for v, n in verdicts.items())
                           + "); every one is in --format json, md and junit, and counts in the verdict below",
                           style="yellow"))
    for title, lines in _unpaired_lines(cmp, labels):
        if lines:
            console.print(Text.assemble((title, "yellow"), ": " + safe("; ".join(lines))))
    console.print(Text(summary(cmp), style=STATUS_STYLE[cmp.status]))


def to_markdown(cmp: Comparison) -> str:
    labels = cmp.labels()
    icon = {"regression": ":x: regression", "improvement": ":white_check_mark: improvement",
            "inconclusive": ":grey_question: inconclusive"}
    out = [f"### ggufprof compare: {md_text(cmp.baseline)} → {md_text(cmp.new)}", "", md_text(cmp.builds_line()), "",
           f"**{md_text(summary(cmp))}**", ""]
    rows = _rows(cmp)
    if rows:
        out += ["| configuration | metric | baseline | new | change | p Welch / MWU | verdict | why |",
                "| --- | --- | ---: | ---: | ---: | ---: | --- | --- |"]
        for r in rows:
            out.append(f"| {md_text(labels[r.id])} | {r.metric} | {fmt_value(r.metric, r.baseline)} | "
                       f"{fmt_value(r.metric, r.new)} | {fmt_change(r)} | {fmt_p(r)} | {icon[r.verdict]} | "
                       f"{md_text(r.note)} |")
        out.append("")
    for title, lines in _unpaired_lines(cmp, labels):
        if lines:
            out += [f"**{title[0].upper() + title[1:]}**", ""] + [f"- {md_text(ln)}" for ln in lines] + [""]
    return "\n".join(out)


def _metric_case(suite: ET.Element, cmp: Comparison, r: MetricResult) -> str | None:
    """One testcase per configuration x metric; returns the JUnit outcome it counts as."""
    case = ET.SubElement(suite, "testcase", classname=safe(r.id), name=r.metric)
    what = safe(f"{r.metric}: baseline {fmt_value(r.metric, r.baseline)}, new {fmt_value(r.metric, r.new)}, "
                f"change {fmt_change(r)}" + (f", p Welch/MWU {fmt_p(r)}" if r.p_welch is not None else "")
                + (f"; {r.note}" if r.note else ""))
    if r.verdict == "regression" or (r.verdict == "missing" and not cmp.allow_missing):
        ET.SubElement(case, "failure", message=what, type=r.verdict).text = what
        return "failures"
    if r.verdict == "inconclusive" and not cmp.allow_noisy:
        ET.SubElement(case, "error", message=what, type="inconclusive").text = what
        return "errors"
    if r.verdict in ("inconclusive", "missing", "not_compared"):
        accepted = {"inconclusive": " (accepted by --allow-noisy)", "missing": " (accepted by --allow-missing)"}
        ET.SubElement(case, "skipped", message=f"{r.verdict}{accepted.get(r.verdict, '')}: {what}")
        return "skipped"
    ET.SubElement(case, "system-out").text = f"{r.verdict}: {what}"
    return None


def to_junit(cmp: Comparison) -> str:
    suite = ET.Element("testsuite", name="ggufprof compare")
    props = ET.SubElement(suite, "properties")
    for side in ("baseline", "new"):
        ET.SubElement(props, "property", name=f"llama.cpp {side}", value=safe(", ".join(cmp.builds.get(side) or [])))
    counts = {"failures": 0, "errors": 0, "skipped": 0}
    for r in cmp.results:
        if (kind := _metric_case(suite, cmp, r)) is not None:
            counts[kind] += 1
    lost = {id(u) for u in cmp.lost} if not cmp.allow_missing else set()
    for u, why in ([(u, "only in the baseline") for u in cmp.only_baseline]
                   + [(u, "only in the new results") for u in cmp.only_new]
                   + [(u, u.reason) for u in cmp.not_compared]):
        case = ET.SubElement(suite, "testcase", classname=safe(u.id), name="configuration")
        if id(u) in lost:
            counts["failures"] += 1
            msg = safe(f"ok in the baseline, {u.new_status or 'missing'} in the new results" + (f": {why}" if why else ""))
            ET.SubElement(case, "failure", message=msg, type="lost").text = msg
        else:
            counts["skipped"] += 1
            ET.SubElement(case, "skipped", message=safe(why))
    if cmp.matched == 0 and not cmp.allow_missing:
        counts["failures"] += 1
        case = ET.SubElement(suite, "testcase", classname="ggufprof", name="matched configurations")
        ET.SubElement(case, "failure", message="nothing was compared", type="empty").text = \
            "no configuration was measured on both sides"
    ET.SubElement(suite, "system-out").text = safe(summary(cmp))
    suite.set("tests", str(len(suite.findall("testcase"))))
    for kind, n in counts.items():
        suite.set(kind, str(n))
    ET.indent(suite)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(suite, encoding="unicode") + "\n"


def to_json(cmp: Comparison) -> str:
    """One object, indented by 2; NaN and infinities (JSON has none) as null, as orjson writes them."""
    return orjson.dumps(cmp.to_dict(), option=orjson.OPT_INDENT_2).decode() + "\n"
