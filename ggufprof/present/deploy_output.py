"""What ``ggufprof check`` prints: one table per deployment (limits, values, verdicts).

Deployment names, model file names and notes are data, never markup: they go into rich ``Text``,
and notes (a failed run's reason is llama.cpp's stderr) through ``units.printable``.
"""

from __future__ import annotations

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from ..results.deploy import SIZE_LIMITS, Deployment
from ..results.deploy_check import RUN, LimitCheck
from ..results.quality import fmt_kld
from ..units import human_bytes, printable

VERDICTS = ("pass", "fail", "inconclusive", "not checked")
STYLE = {"pass": "green", "fail": "bold red", "inconclusive": "yellow", "not checked": "yellow"}


def _fmt(limit: str, v) -> str:
    if v is None:
        return "-"
    if limit == RUN:
        return str(v)
    if limit in SIZE_LIMITS:
        return human_bytes(v)
    if limit == "max_kld":
        return f"{fmt_kld(v)} nats"
    # a limit below 1 t/s keeps two significant digits (0.001, not 0.0)
    return f"{v:,.1f} t/s" if v >= 1 else f"{v:.2g} t/s"


def print_checks(rows: list[LimitCheck], console: Console, deployments: list[Deployment]) -> None:
    """One table per deployment: limit, value, allowed, result and where the value comes from."""
    for dep in deployments:
        mine = [r for r in rows if r.deployment == dep.name]
        if not mine:
            console.print(Text(f"{dep.name}: no limits stated", style="yellow"))
            continue
        t = Table(title=Text(f"{dep.name} ({printable(dep.model.name)})"), title_justify="left", box=box.SIMPLE_HEAD)
        for col, just in (("limit", "left"), ("value", "right"), ("allowed", "right"), ("result", "left")):
            t.add_column(col, justify=just, no_wrap=True)
        t.add_column("source", min_width=20)
        for r in mine:
            sign = "" if r.limit == RUN else "≤ " if r.limit.startswith("max_") else "≥ "
            t.add_row(r.limit, Text(printable(_fmt(r.limit, r.value))), sign + _fmt(r.limit, r.allowed),
                      Text(r.verdict, style=STYLE[r.verdict]), Text(printable(r.note, 1000)))
        console.print(t)
    n = {v: sum(r.verdict == v for r in rows) for v in VERDICTS}
    console.print(Text(f"{n['pass']} passed, {n['fail']} failed, {n['inconclusive']} inconclusive, "
                       f"{n['not checked']} not checked",
                       style="bold red" if n["fail"] else "yellow" if n["inconclusive"] else "green"))
