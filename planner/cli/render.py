"""What every command module shares: the console, one-line errors, JSON output, tables and number formats.

Command modules import from here (never from each other); :mod:`planner.cli` assembles them into one app.
"""

from __future__ import annotations

import functools
import json
import math
import os
import time
from pathlib import Path
from typing import Any, Callable, NoReturn, TypeVar

import typer
from pydantic import ValidationError
from rich import box
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

import planner
from planner import PlanError, SpecError, UnsupportedArchitecture

EXIT_USAGE = 2  # bad input: one line on stderr
EXIT_INTERNAL = 1  # a bug: one line on stderr (PLANNER_DEBUG=1 for the traceback)

console = Console()

# ---------------------------------------------------------------------------
# errors: one line, exit 2
# ---------------------------------------------------------------------------

USER_ERRORS: tuple[type[BaseException], ...] = (
    SpecError, PlanError, UnsupportedArchitecture, ValidationError, ValueError, FileNotFoundError, OSError,
)

#: TrainingPlan field -> the flag the user typed, so errors name what they wrote.
_FLAG = {
    "micro_batch": "--mbs", "global_batch": "--gbs", "seq_len": "--seq", "tp": "--tp", "pp": "--pp", "vpp": "--vpp",
    "cp": "--cp", "ep": "--ep", "etp": "--etp", "dp": "dp", "recompute": "--recompute", "sp": "--sp",
    "zero": "--zero", "dtype": "--dtype",
}


def squash(text: str) -> str:
    """Collapse a message to one line (and drop pydantic's "Value error, " prefix)."""
    return " ".join(str(text).replace("Value error, ", "").split())


def format_validation_error(err: ValidationError) -> str:
    """The first problem of a pydantic error as one line: ``where: field: message (got value)``."""
    errors = err.errors()
    if not errors:
        return squash(str(err))
    e = errors[0]
    loc = ".".join(_FLAG.get(str(p), str(p)) for p in e.get("loc", ()))
    msg = str(e.get("msg", "invalid value"))
    if e.get("type") == "extra_forbidden":
        msg = "unknown field"
    elif e.get("type") == "missing":
        msg = "missing field"
    got = e.get("input")
    if loc and e.get("type") not in ("missing", "extra_forbidden") and isinstance(got, (int, float, str)):
        msg += f" (got {got!r})"
    what = "plan" if err.title == "TrainingPlan" else err.title
    more = f" (and {len(errors) - 1} more problems)" if len(errors) > 1 else ""
    return squash(f"invalid {what}: {loc + ': ' if loc else ''}{msg}{more}")


def format_error(exc: BaseException) -> str:
    """Any user-facing exception as one line."""
    if isinstance(exc, ValidationError):
        return format_validation_error(exc)
    if isinstance(exc, OSError) and exc.strerror and exc.filename:
        return squash(f"{exc.filename}: {exc.strerror}")
    return squash(str(exc) or type(exc).__name__)


def fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    """Print ``error: message`` as one line on stderr and exit."""
    typer.echo(f"error: {squash(message)}", err=True)
    raise typer.Exit(code)


F = TypeVar("F", bound=Callable[..., Any])


def cli_errors(fn: F) -> F:
    """Turn the planner's input errors into one line and exit 2 at the CLI boundary."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (typer.Exit, BrokenPipeError):
            raise
        except USER_ERRORS as exc:
            fail(format_error(exc))
        except Exception as exc:  # a bug, not the user's input
            if os.environ.get("PLANNER_DEBUG"):
                raise
            fail(f"internal error: {type(exc).__name__}: {format_error(exc)} (set PLANNER_DEBUG=1 for the traceback)",
                 EXIT_INTERNAL)

    return wrapper  # type: ignore[return-value]


# ---------------------------------------------------------------------------
# small formatting helpers
# ---------------------------------------------------------------------------

def gb(n: float) -> str:
    return f"{n / 1e9:,.1f}"


def duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "-"
    if seconds < 120:
        return f"{seconds:.3g} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.3g} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.3g} h"
    return f"{seconds / 86400:,.1f} days"


def json_safe(obj: Any) -> Any:
    """NaN / inf -> null so the output is strict JSON."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj


def print_json(obj: Any) -> None:
    """Exactly one JSON object on stdout (plain print: rich would wrap and colour it)."""
    print(json.dumps(json_safe(obj), indent=2, allow_nan=False))


def table(title: str | None = None, *columns: str, right: tuple[str, ...] = ()) -> Table:
    t = Table(title=title, box=box.SIMPLE_HEAVY, title_justify="left", title_style="bold")
    for c in columns:
        t.add_column(c, justify="right" if c in right else "left", overflow="fold")
    return t


def model_kind(m: planner.ModelSpec) -> str:
    tags = []
    if m.mla is not None:
        tags.append("MLA")
    if m.is_moe:
        tags.append("MoE")
    if "linear" in m.layer_attention:
        tags.append("hybrid-linear")
    elif "sliding" in m.layer_attention:
        tags.append("sliding")
    return " ".join(tags) if tags else "dense"


def default_reference() -> Path:
    """``../shared/reference`` from the working directory (the project root), or, in a
    source checkout run from elsewhere, the one beside the checkout."""
    from planner.validate import DEFAULT_REFERENCE

    if DEFAULT_REFERENCE.is_dir():
        return DEFAULT_REFERENCE
    beside = Path(planner.__file__).resolve().parents[3] / "shared" / "reference"
    return beside if beside.is_dir() else DEFAULT_REFERENCE


def signed_pct(x: float) -> str:
    return f"{x:+.1f}" if math.isfinite(x) else "-"


class LazyProgress:
    """A progress bar on stderr that appears only once a search has run for a second."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.start = time.perf_counter()
        self.bar: Progress | None = None
        self.task = None

    def __call__(self, done: int, total: int) -> None:
        if self.quiet:
            return
        if self.bar is None:
            if time.perf_counter() - self.start < 1.0 or done >= total:
                return
            self.bar = Progress(TextColumn("searching plans"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                                TimeElapsedColumn(), console=Console(stderr=True), transient=True)
            self.bar.start()
            self.task = self.bar.add_task("search", total=total)
        self.bar.update(self.task, completed=done, total=total)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


