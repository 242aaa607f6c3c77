"""One-line errors at the CLI boundary: every bad input is ``error: ...`` on stderr and exit 2.

:func:`cli_errors` wraps each command; :func:`usage_error` words click's usage errors (an unknown choice, a
missing option) the same way for :func:`planner.cli.main`.
"""

from __future__ import annotations

import difflib
import functools
import os
import re
from pathlib import Path
from typing import Any, Callable, NoReturn, TypeVar

import typer
from pydantic import ValidationError

from planner import PlanError, SpecError, UnsupportedArchitecture

from .options import choices_of

EXIT_USAGE = 2  # bad input: one line on stderr
EXIT_INTERNAL = 1  # a bug: one line on stderr (PLANNER_DEBUG=1 for the traceback)

USER_ERRORS: tuple[type[BaseException], ...] = (
    SpecError, PlanError, UnsupportedArchitecture, ValidationError, ValueError, FileNotFoundError, OSError,
)

#: TrainingPlan field -> the flag the user typed, so errors name what they wrote.
_FLAG = {
    "micro_batch": "--mbs", "global_batch": "--gbs", "seq_len": "--seq", "tp": "--tp", "pp": "--pp", "vpp": "--vpp",
    "cp": "--cp", "ep": "--ep", "etp": "--etp", "dp": "dp", "recompute": "--recompute", "sp": "--sp",
    "zero": "--zero", "dtype": "--dtype",
}

#: A choice parameter's name -> what its values are, for "unknown <noun>" (default: the name, spaced).
CHOICE_NOUNS = {
    "to": "export target", "export_to": "export target", "disagg": "disaggregation mode",
    "recompute": "recomputation mode", "attention": "attention kernel", "zero3_gather": "ZeRO-3 gather mode",
    "csv_table": "table", "kind": "kind",
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


def usage_error(exc: Any) -> str:
    """A click usage error as one line. An unknown choice names the flag, what its values are, the closest
    one and all of them (``--precision 'fp3': unknown precision; choose bf16, fp16, fp8, int4 or fp4``);
    anything else is click's own message."""
    message = squash(exc.format_message())
    param = getattr(exc, "param", None)
    choices = choices_of(param)
    got = re.match(r"(?:Invalid value for .*?: )?'(.*)' is not (?:one of )?'", message)
    if not (param is not None and choices and got):
        return message
    value = got.group(1)
    flag = max(getattr(param, "opts", None) or [f"--{param.name}"], key=len)
    noun = CHOICE_NOUNS.get(param.name, str(param.name).replace("_", " "))
    close = difflib.get_close_matches(value.lower(), choices, n=1, cutoff=0.5)
    hint = f"; did you mean {close[0]}?" if close else ""
    listed = ", ".join(choices[:-1]) + f" or {choices[-1]}" if len(choices) > 1 else choices[0]
    return squash(f"{flag} {value[:80]!r}: unknown {noun}{hint} (choose {listed})")


# ---------------------------------------------------------------------------
# options that do nothing, outputs that are inputs
# ---------------------------------------------------------------------------

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
