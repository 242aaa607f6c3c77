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


#: Keys whose values are wall-clock measurements (search, solver and MILP times): the only part of a
#: ``--json`` answer that differs between two runs of the same command, so they appear only with ``--timings``.
TIMING_KEYS = frozenset({"elapsed_s", "solve_time_s", "time_s"})


def json_safe(obj: Any, timings: bool = True) -> Any:
    """NaN / inf -> null so the output is strict JSON; without ``timings``, the :data:`TIMING_KEYS` dropped."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: json_safe(v, timings) for k, v in obj.items() if timings or k not in TIMING_KEYS}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v, timings) for v in obj]
    return obj


def print_json(obj: Any, timings: bool = False) -> None:
    """Exactly one JSON object on stdout (plain print: rich would wrap and colour it). The same input gives the
    same bytes: wall-clock timings (:data:`TIMING_KEYS`) are left out unless ``timings`` (the ``--timings`` flag)."""
    print(json.dumps(json_safe(obj, timings), indent=2, allow_nan=False))


def given(ctx: typer.Context, *names: str) -> list[str]:
    """The flags among the parameters ``names`` that the user typed (not left at their defaults)."""
    flags = []
    for param in ctx.command.params:
        source = ctx.get_parameter_source(param.name) if param.name in names else None
        # typer vendors click in recent releases: compare the ParameterSource by name
        if source is not None and source.name not in ("DEFAULT", "DEFAULT_MAP"):
            flags.append("/".join([max(param.opts, key=len), *getattr(param, "secondary_opts", [])]))
    return flags


def refuse_unused(ctx: typer.Context, why: str, *names: str) -> None:
    """An option that does nothing in the mode asked for is an error (it would be silently ignored)."""
    flags = given(ctx, *names)
    if flags:
        fail(f"{', '.join(flags)} {'does' if len(flags) == 1 else 'do'} nothing {why}")


def refuse_overwrite(output: Path | None, flag: str, inputs: dict[str, Any]) -> None:
    """``output`` must not be one of the command's input files (``inputs``: flag -> path or name)."""
    from planner.files import same_file

    if output is None:
        return
    for name, value in inputs.items():
        if value is None:
            continue
        path = Path(str(value))
        try:
            is_input = path.exists() and same_file(output, path)
        except (OSError, ValueError):  # a name too long or with a NUL byte is no file (its loader says so)
            is_input = False
        if is_input:
            fail(f"{flag} {output} is the {name} input; refusing to write over it (choose another file)")


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


def slo_ms(text: str, flag: str) -> float:
    """An SLO flag (``300ms``, ``0.3s``, a bare number is ms) -> milliseconds, positive, finite and at most a day."""
    from planner.limits import MAX_SLO_S
    from planner.specs.units import parse_seconds

    try:
        ms = parse_seconds(text if any(c.isalpha() for c in text) else f"{text} ms") * 1e3
    except (ValueError, OverflowError):
        raise ValueError(f"{flag}: cannot read {text!r} as a time (e.g. 300ms, 0.3s)") from None
    if not 0 < ms <= MAX_SLO_S * 1e3:  # NaN fails too
        raise ValueError(f"{flag} must be a positive time of at most {MAX_SLO_S / 3600:g} h, got {text!r}")
    return ms


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


