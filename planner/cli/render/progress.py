"""Progress on stderr for work longer than a second: a bar where the work is counted (plan searches), a spinner
with the elapsed time where it is not (a solver, a simulation walk).

Both stay silent under ``--json`` (the caller passes ``quiet``) and when stderr is not a terminal (a pipe, a
file, a test), and both appear only once the work has run for a second, so quick answers never flash a bar.
Neither takes over stdout (rich's redirection is off): the answer printed after them is untouched.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from rich.console import Console
from rich.progress import (BarColumn, Progress, SpinnerColumn, TaskProgressColumn, TextColumn,
                           TimeElapsedColumn)

#: Seconds a piece of work runs before its progress appears.
DELAY_S = 1.0
#: Steps of the bar (it shows a percentage: the searches count in different units).
_STEPS = 1000


def _terminal() -> bool:
    """Whether stderr is a terminal (rich's test: honours FORCE_COLOR / TTY_COMPATIBLE too)."""
    return Console(stderr=True).is_terminal


def _progress(*columns: Any) -> Progress:
    return Progress(*columns, console=Console(stderr=True), transient=True, redirect_stdout=False,
                    redirect_stderr=False)


class LazyProgress:
    """A bar over the whole of a search, fed ``(done, total)`` by the search's ``progress`` callback.

    ``segments``: how many searches report through the same callback one after another (one per GPU type of
    ``planner train --gpu a,b,c``): each is a share of the bar, and a call with ``done >= total`` ends one.
    The bar never moves back."""

    def __init__(self, quiet: bool, label: str = "searching plans", segments: int = 1) -> None:
        self.quiet = quiet or not _terminal()
        self.label = label
        self.segments = max(1, segments)
        self.segment = 0
        self.fraction = 0.0
        self.start = time.perf_counter()
        self.bar: Progress | None = None
        self.task: Any = None

    def __call__(self, done: int, total: int) -> None:
        if self.quiet:
            return
        part = min(1.0, done / total) if total > 0 else 1.0
        seg = min(self.segment, self.segments - 1)
        self.fraction = max(self.fraction, (seg + part) / self.segments)
        if part >= 1.0:
            self.segment += 1
        if self.bar is None:
            if time.perf_counter() - self.start < DELAY_S or self.fraction >= 1.0:
                return
            self.bar = _progress(TextColumn(self.label), BarColumn(), TaskProgressColumn(), TimeElapsedColumn())
            self.bar.start()
            self.task = self.bar.add_task(self.label, total=_STEPS)
        self.bar.update(self.task, completed=round(self.fraction * _STEPS))

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None


class Activity:
    """A spinner, a label and the time since the block began (with ``limit_s``, the solver's limit beside it)
    while a block runs, shown from its second second on (a timer thread starts the display; rich refreshes it on
    its own thread, which runs while a solver releases the GIL)::

        with Activity(quiet=as_json, label="placing experts", limit_s=60):
            solve()
    """

    def __init__(self, quiet: bool, label: str, limit_s: float | None = None) -> None:
        self.quiet = quiet or not _terminal()
        self.label = label
        self.limit = f"(CP-SAT limit {limit_s:g} deterministic s)" if limit_s is not None else ""
        self.bar: Progress | None = None
        self.lock = threading.Lock()
        self.closed = False
        self.timer: threading.Timer | None = None

    def __enter__(self) -> "Activity":
        if not self.quiet:
            # the task starts its clock now; the display comes after DELAY_S
            self.bar = _progress(SpinnerColumn(), TextColumn(self.label), TimeElapsedColumn(), TextColumn(self.limit))
            self.bar.add_task(self.label, total=None)
            self.timer = threading.Timer(DELAY_S, self._start)
            self.timer.daemon = True
            self.timer.start()
        return self

    def _start(self) -> None:
        with self.lock:
            if not self.closed and self.bar is not None:
                self.bar.start()
                self.shown = True

    shown = False

    def __exit__(self, *exc: Any) -> None:
        if self.timer is not None:
            self.timer.cancel()
        with self.lock:
            self.closed = True
            if self.bar is not None and self.shown:
                self.bar.stop()
            self.bar = None
