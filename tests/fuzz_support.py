"""Machinery of the fuzz suite (tests/test_fuzz.py).

* :func:`run_cli` runs ``planner.cli.main(argv)`` in this process with stdout and stderr captured, Python
  warnings recorded, and a time limit (``signal.setitimer``: a case still running after
  :data:`CASE_TIMEOUT_S` is stopped by a :class:`Hang` exception).
* :func:`cli_problem` classifies a run: exit 0 (accepted), exit 2 (an input error: stderr must be exactly one
  line starting ``error:``), anything else (exit 1 is an internal error), a traceback or a Python warning on
  stderr, an exception escaping ``main`` or a hang is a failure. An input the case marks :data:`REJECT` (one
  that is definitely invalid) must not exit 0.
* :func:`run_api` and :func:`api_problem` do the same for a Python API call: every exception must be a
  :class:`planner.errors.PlannerError`, and a :data:`REJECT` call must not return.
* :class:`Recorder` runs cases, counts them and collects every problem with a one-line reproducer, so one
  test reports all its failures at once (hypothesis only generates; it never shrinks here).
* the oracles: :func:`number_expect` (numeric flag values), :func:`name_expect` (model and GPU names).
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import re
import shlex
import signal
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CASE_TIMEOUT_S = 10.0  # one case (a CLI run or an API call); longer is a hang
SLOW_S = 3.0  # cases slower than this are listed in the summary (not failures)

REJECT = "reject"  # definitely invalid input: exit 2 (a PlannerError from the API)
ANY = "any"  # possibly valid: exit 0 or 2

#: Warning categories Python does not show by default (everything else would reach a user's stderr).
_HIDDEN_WARNINGS = (DeprecationWarning, PendingDeprecationWarning, ImportWarning, ResourceWarning)
_PY_WARNING_TEXT = re.compile(r"(:\d+: \w*Warning: |^\w*Warning: )", re.MULTILINE)

#: Whole-suite tallies (printed at the end of the session by test_fuzz.py).
STATS: dict[str, Any] = {"cases": 0, "seconds": 0.0, "problems": [], "slow": [], "by_test": {}, "outcomes": {}}


class Hang(BaseException):
    """Raised by the timer inside a case that runs too long (a BaseException: ``except Exception`` in the code
    under test cannot swallow it)."""


@contextlib.contextmanager
def time_limit(seconds: float):
    """Raise :class:`Hang` in this (the main) thread after ``seconds`` of wall time."""

    def on_alarm(signum, frame):
        raise Hang(f"still running after {seconds:g} s")

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


@dataclass
class Run:
    argv: list[str]
    code: int | None = None
    stdout: str = ""
    stderr: str = ""
    seconds: float = 0.0
    hang: bool = False
    crash: str = ""  # an exception that escaped planner.cli.main
    warnings: list[str] = field(default_factory=list)


def _shown(caught: list[warnings.WarningMessage]) -> list[str]:
    return [f"{w.category.__name__}: {w.message}" for w in caught if not issubclass(w.category, _HIDDEN_WARNINGS)]


def run_cli(argv: list[str], timeout_s: float = CASE_TIMEOUT_S) -> Run:
    """``planner <argv>`` in this process (``planner.cli.main``), outputs captured, under a time limit."""
    from planner.cli import main

    run = Run(list(argv))
    out, err = io.StringIO(), io.StringIO()
    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            with time_limit(timeout_s), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                main(list(argv))
            run.code = 0
        except SystemExit as exc:
            if exc.code is None or isinstance(exc.code, int):
                run.code = exc.code or 0
            else:  # sys.exit("message"): the interpreter prints it and exits 1
                run.code = 1
                err.write(f"{exc.code}\n")
        except Hang:
            run.hang = True
        except Exception as exc:  # noqa: BLE001 - a bug: main let it through
            run.crash = f"{type(exc).__name__}: {exc}"
    run.seconds = time.perf_counter() - t0
    run.stdout, run.stderr = out.getvalue(), err.getvalue()
    run.warnings = _shown(caught)
    return run


def _strict_json(text: str) -> str | None:
    """Why ``text`` is not one strict JSON value (NaN and Infinity are not JSON), or None."""

    def refuse(name: str) -> Any:
        raise ValueError(f"non-finite number {name}")

    try:
        json.loads(text, parse_constant=refuse)
    except ValueError as exc:
        return str(exc)[:120]
    return None


def cli_problem(run: Run, expect: str) -> str | None:
    """What is wrong with a run (module docstring), or None."""
    if run.hang:
        return f"hang (over {run.seconds:.0f} s)"
    if run.crash:
        return f"exception escaped main: {run.crash[:200]}"
    if "Traceback (most recent call last)" in run.stderr:
        return "traceback on stderr"
    if run.warnings:
        return f"Python warning: {run.warnings[0][:200]}"
    if _PY_WARNING_TEXT.search(run.stderr):
        return f"Python warning text on stderr: {run.stderr.strip()[:200]!r}"
    if run.code == 2:
        lines = run.stderr.splitlines()
        if len(lines) != 1 or not lines[0].startswith("error: "):
            return f"exit 2 without exactly one 'error:' line: {run.stderr[:200]!r}"
        return None
    if run.code == 0:
        if expect == REJECT:
            return "bad input accepted (exit 0)"
        if "--json" in run.argv and "--export" not in run.argv:
            why = _strict_json(run.stdout)
            if why:
                return f"--json output is not strict JSON: {why}"
        return None
    first = run.stderr.strip().splitlines()[0][:240] if run.stderr.strip() else ""
    return f"exit {run.code}: {first}"


def run_api(call: Callable[[], Any], timeout_s: float = CASE_TIMEOUT_S) -> tuple[BaseException | None, bool, float]:
    """Call ``call()`` under a time limit: (the exception it raised or None, hung, seconds)."""
    t0 = time.perf_counter()
    exc: BaseException | None = None
    hung = False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            with time_limit(timeout_s):
                call()
        except Hang:
            hung = True
        except Exception as e:  # noqa: BLE001
            exc = e
    return exc, hung, time.perf_counter() - t0


def api_problem(exc: BaseException | None, hung: bool, expect: str) -> str | None:
    from planner.errors import PlannerError

    if hung:
        return "hang"
    if exc is None:
        return "bad call returned normally" if expect == REJECT else None
    if not isinstance(exc, PlannerError):
        return f"{type(exc).__name__} instead of PlannerError: {str(exc)[:200]}"
    if "\n" in str(exc).strip():
        return f"multi-line error message: {str(exc)[:200]!r}"
    return None


def reproducer(argv: list[str], note: str = "") -> str:
    cmd = "planner " + shlex.join(argv)
    if len(cmd) > 300:
        cmd = cmd[:300] + "..."
    return f"{cmd}  [{note}]" if note else cmd


class Recorder:
    """Runs the cases of one test, counts them and keeps every problem with its reproducer."""

    def __init__(self, name: str, scratch: Path) -> None:
        self.name = name
        self.scratch = scratch  # the working directory: hostile input must never create files here
        self.problems: list[str] = []
        self.cases = 0

    def record(self, problem: str | None, repro: str, seconds: float, outcome: str = "") -> None:
        self.cases += 1
        tally = STATS["outcomes"].setdefault(self.name, {})
        tally[outcome] = tally.get(outcome, 0) + 1
        STATS["cases"] += 1
        STATS["seconds"] += seconds
        STATS["by_test"][self.name] = STATS["by_test"].get(self.name, 0) + 1
        if seconds > SLOW_S and "hang" not in (problem or ""):
            STATS["slow"].append(f"{seconds:.1f} s: {repro}")
        pwned = sorted(p.name for p in self.scratch.glob("PWNED*"))
        if pwned:
            for p in pwned:
                (self.scratch / p).unlink()
            problem = (problem + "; " if problem else "") + f"hostile input ran a command (created {pwned})"
        if problem:
            line = f"{problem} :: {repro}"
            self.problems.append(line)
            STATS["problems"].append(f"[{self.name}] {line}")

    def cli(self, argv: list[str], expect: str, note: str = "", timeout_s: float = CASE_TIMEOUT_S) -> Run:
        run = run_cli(argv, timeout_s)
        outcome = f"{expect}: " + ("hang" if run.hang else "crash" if run.crash else f"exit {run.code}")
        if run.code == 0 and expect == ANY:  # what was accepted (the report file lists it, to review the oracles)
            STATS.setdefault("accepted", []).append(f"[{self.name}] {reproducer(argv, note)}"[:300])
        self.record(cli_problem(run, expect), reproducer(argv, note), run.seconds, outcome)
        return run

    def api(self, label: str, call: Callable[[], Any], expect: str, timeout_s: float = CASE_TIMEOUT_S) -> None:
        exc, hung, seconds = run_api(call, timeout_s)
        outcome = f"{expect}: " + ("hang" if hung else "returned" if exc is None else type(exc).__name__)
        self.record(api_problem(exc, hung, expect), label, seconds, outcome)

    def check(self) -> None:
        """Fail with every problem found (deduplicated), the first 60 in full."""
        problems = sorted(set(self.problems))
        if problems:
            shown = "\n  ".join(problems[:60])
            more = f"\n  ... and {len(problems) - 60} more" if len(problems) > 60 else ""
            raise AssertionError(f"{len(problems)} problems in {self.cases} cases:\n  {shown}{more}")


# ---------------------------------------------------------------------------
# oracles
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Num:
    """A numeric flag and its domain: values below ``lo`` (or equal, with ``lo_open``) or above ``hi`` are
    invalid; generated valid values stay at or below ``cheap`` so a case stays fast. ``units`` maps the
    suffixes the flag takes (``{"ms": 1e-3, "s": 1}``) to their scale; an empty mapping: a plain number."""

    flag: str
    kind: str = "float"  # "int": typer reads it with int(); "float": float(); "unit": the planner's parser
    lo: float | None = 0.0
    lo_open: bool = True
    hi: float | None = None
    cheap: float = 1e4
    units: tuple[tuple[str, float], ...] = ()


def read_number(text: str) -> float | None:
    """``text`` as Python reads a number (``float``), or None when it is not one."""
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


def number_expect(spec: Num, text: str, number_text: str | None = None, scale: float = 1.0) -> str:
    """REJECT when ``text`` is definitely outside ``spec``'s domain, else ANY.

    ``number_text`` / ``scale``: for a unit flag, the number part of ``text`` and its unit's scale."""
    if spec.kind == "int":
        try:
            n = int(text)
        except ValueError:  # "3.0" or "1e3" name whole numbers too (a reader may take them); "1.5" does not
            f = read_number(text)
            if f is None or not math.isfinite(f) or f != int(f):
                return REJECT
            n = int(f)
        try:
            v = float(n)
        except OverflowError:  # a whole number beyond any float: fine only where nothing bounds the flag
            return ANY if spec.hi is None else REJECT
    else:
        v = read_number(text if number_text is None else number_text)
        if v is None:
            return REJECT
        v *= scale
    if not math.isfinite(v):
        return REJECT
    if spec.lo is not None and (v < spec.lo or (spec.lo_open and v == spec.lo)):
        return REJECT
    if spec.hi is not None and v > spec.hi:
        return REJECT
    return ANY


def known_names() -> set[str]:
    """Built-in model and system names, aliases and Hugging Face ids, lower case."""
    import planner

    names: set[str] = set()
    for n in planner.hardware_names():
        names.add(n)
        with contextlib.suppress(Exception):
            names.update(a.lower() for a in planner.get_system(n).aliases)
    for n in planner.model_names():
        names.add(n)
        with contextlib.suppress(Exception):
            hf = planner.get_model(n).hf_id
            if hf:
                names.add(hf.lower())
    return names


def name_expect(value: str, names: set[str]) -> str:
    """A model / system name or path: ANY when it is a known name or an existing regular file or folder outside
    /dev, /proc and /sys; REJECT otherwise."""
    if value.strip().lower() in names:
        return ANY
    if value.startswith(("/dev", "/proc", "/sys")):
        return REJECT
    try:
        p = Path(value)
        if value and (p.is_file() or p.is_dir()):
            return ANY
    except (OSError, ValueError):
        pass
    return REJECT


def replace_flag(argv: list[str], flag: str, value: str) -> list[str]:
    """``argv`` with ``flag``'s value replaced (or the flag appended)."""
    out = list(argv)
    if flag in out:
        out[out.index(flag) + 1] = value
        return out
    return out + [flag, value]


def drop_flag(argv: list[str], flag: str) -> list[str]:
    out = list(argv)
    if flag in out:
        i = out.index(flag)
        del out[i:i + 2]
    return out


# ---------------------------------------------------------------------------
# nested documents: paths, mutation
# ---------------------------------------------------------------------------

Path_ = tuple[Any, ...]


def leaf_paths(doc: Any, prefix: Path_ = ()) -> list[Path_]:
    """Every path to a scalar or an empty container in ``doc`` (dict keys and list indices)."""
    if isinstance(doc, dict) and doc:
        return [p for k, v in doc.items() for p in leaf_paths(v, (*prefix, k))]
    if isinstance(doc, list) and doc:
        # a long list (a trace's arrays): its first and last items stand for the rest
        idx = sorted({0, len(doc) - 1})
        return [p for i in idx for p in leaf_paths(doc[i], (*prefix, i))]
    return [prefix]


def mapping_paths(doc: Any, prefix: Path_ = ()) -> list[Path_]:
    """Every path to a mapping in ``doc`` (where a key can be added)."""
    out = []
    if isinstance(doc, dict):
        out.append(prefix)
        for k, v in doc.items():
            out += mapping_paths(v, (*prefix, k))
    elif isinstance(doc, list) and doc:
        out += mapping_paths(doc[0], (*prefix, 0))
    return out


def get_at(doc: Any, path: Path_) -> Any:
    for k in path:
        doc = doc[k]
    return doc


def set_at(doc: Any, path: Path_, value: Any) -> None:
    get_at(doc, path[:-1])[path[-1]] = value


def delete_at(doc: Any, path: Path_) -> None:
    parent = get_at(doc, path[:-1])
    del parent[path[-1]]


def path_text(path: Path_) -> str:
    return ".".join(str(p) for p in path) or "(document)"


def deep_json(depth: int) -> str:
    return '{"a": ' + "[" * depth + "]" * depth + "}"


def is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def finite(v: Any) -> bool:
    return is_number(v) and math.isfinite(v)


def _main() -> None:
    """``python fuzz_support.py MEMORY_LIMIT_BYTES < cases.json``: run each argv of the JSON list (all invalid
    input) under the memory limit; print one JSON list of ``{"problem", "seconds"}``. test_fuzz.py runs the cases
    that could take a process down (a FIFO, /dev/zero) this way."""
    import resource
    import sys

    limit = int(sys.argv[1])
    resource.setrlimit(resource.RLIMIT_AS, (limit, resource.getrlimit(resource.RLIMIT_AS)[1]))
    import planner.cli
    import planner.moe.solver  # noqa: F401

    results = []
    for argv in json.loads(sys.stdin.read()):
        run = run_cli(argv, timeout_s=5.0)
        outcome = f"{REJECT}: " + ("hang" if run.hang else "crash" if run.crash else f"exit {run.code}")
        results.append({"problem": cli_problem(run, REJECT), "seconds": run.seconds, "outcome": outcome})
    sys.stdout.write(json.dumps(results))


if __name__ == "__main__":
    _main()
