"""A progress display for the commands that run for more than a second (quality, fit, speedup).

One helper for all of them: the library and the measuring code take a plain callback
``progress(done, total, doing)`` (measure/workers.Progress) and know nothing of terminals; this
draws it with rich on stderr: what runs now, a bar, done/total, elapsed time and an ETA. When
stderr is not a terminal (a pipe, a file, CI, typer's CliRunner) nothing is drawn and nothing is
written, so scripts see exactly the output they saw before. The display is transient: it leaves no
trace in the terminal's scrollback once the command prints its result.
"""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn, \
    TimeRemainingColumn


class Steps:
    """``with Steps("quality") as progress: run(..., progress=progress)``; ``progress`` is None when
    stderr is not a terminal, so the callee skips the calls as well as the drawing."""

    def __init__(self, title: str, unit: str = "", console: Console | None = None):
        """``unit``: what the counts count (shown after done/total), e.g. "chunks"."""
        self.console = console or Console(stderr=True, highlight=False)
        self.title, self.unit = title, unit
        self.live = self.console.is_terminal
        self.bar = Progress(SpinnerColumn(), TextColumn("[bold]{task.fields[title]}"),
                            TextColumn("{task.description}", markup=False),
                            BarColumn(bar_width=20), MofNCompleteColumn(), TextColumn(unit), TimeElapsedColumn(),
                            TextColumn("ETA"), TimeRemainingColumn(), console=self.console, transient=True,
                            redirect_stdout=False, redirect_stderr=False)
        self.task = self.bar.add_task("", total=None, title=title)

    def __enter__(self) -> "Steps | None":
        if not self.live:
            return None
        self.bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.live:
            self.bar.stop()

    def __call__(self, done: int, total: int | None, doing: str) -> None:
        """The callback: ``done`` of ``total`` (None: unknown, no ETA), ``doing`` what runs now (data:
        shown as text, never markup)."""
        self.bar.update(self.task, completed=done, total=total, description=doing)
