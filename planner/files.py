"""Reading a user's file safely: every loader of the planner goes through here.

A file is hostile until checked. :func:`read_text` refuses what is not a
regular file (a directory, a FIFO, ``/dev/zero``, a socket), files larger than
a bound (read with the bound, so a growing or lying file cannot make it read
more), and bytes that are not UTF-8, naming the file each time.
:func:`load_json` and :func:`load_yaml` add a nesting-depth bound (checked
before the parser sees the text, so a ``[[[[...`` bomb is refused without a
``RecursionError``) and YAML's safe loader (tags are never executed).

Every error is a :class:`FileInputError` (a :class:`~planner.errors.PlannerError`)
whose message starts with the path.
"""

from __future__ import annotations

import json
import math
import os
import stat
from pathlib import Path
from typing import Any

from .errors import PlannerError
from .limits import MAX_FILE_BYTES, MAX_NESTING, MAX_NUMBER_DIGITS


class FileInputError(PlannerError):
    """A file that cannot be read as asked: missing, special, too large, not text, malformed or too deep."""


def _open_regular(path: Path, what: str):
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise FileInputError(f"{path}: no such file") from None
    except OSError as exc:
        raise FileInputError(f"{path}: cannot read {what} ({exc.strerror or exc})") from None
    if stat.S_ISDIR(st.st_mode):
        raise FileInputError(f"{path}: is a folder, expected {what}")
    if not stat.S_ISREG(st.st_mode):
        raise FileInputError(f"{path}: not a regular file (a device, pipe or socket); expected {what}")
    try:
        # O_NONBLOCK: should the path be swapped for a FIFO after the check, open does not wait for a writer
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        raise FileInputError(f"{path}: cannot read {what} ({exc.strerror or exc})") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise FileInputError(f"{path}: not a regular file; expected {what}")
    return os.fdopen(fd, "rb")


def read_bytes(path: str | Path, what: str = "a file", max_bytes: int = MAX_FILE_BYTES) -> bytes:
    """The bytes of a regular file of at most ``max_bytes``; else a one-line :class:`FileInputError`."""
    p = Path(path)
    with _open_regular(p, what) as f:
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise FileInputError(f"{p}: larger than {max_bytes / 1e6:,.0f} MB; expected {what}")
    return data


def read_text(path: str | Path, what: str = "a text file", max_bytes: int = MAX_FILE_BYTES) -> str:
    """:func:`read_bytes` decoded as UTF-8 (a binary file is refused, naming the file and the offset)."""
    p = Path(path)
    data = read_bytes(p, what, max_bytes)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FileInputError(f"{p}: not UTF-8 text (byte {exc.start}); expected {what}") from None


def check_depth(text: str, where: str, max_depth: int = MAX_NESTING) -> None:
    """Refuse JSON / YAML flow text nested deeper than ``max_depth`` brackets (strings are skipped)."""
    depth = 0
    in_str = esc = False
    quote = ""
    for ch in text:
        if in_str:
            if esc:
                esc = False
            elif ch == "\\" and quote == '"':
                esc = True
            elif ch == quote:
                in_str = False
            continue
        if ch in "\"'":
            # a quote opens a string only in JSON or YAML flow; an apostrophe inside a YAML plain scalar would
            # hide brackets, which can only make the bound looser, never refuse a valid file
            if ch == '"' or depth:
                in_str, quote = True, ch
        elif ch in "[{":
            depth += 1
            if depth > max_depth:
                raise FileInputError(f"{where}: nested deeper than {max_depth} levels")
        elif ch in "]}":
            depth = max(0, depth - 1)


def _clip(text: str, n: int = 40) -> str:
    """At most ``n`` characters of ``text`` for a message (a hostile value can be megabytes long)."""
    return text if len(text) <= n else text[: n - 3] + "..."


def _depth_of(obj: Any, where: str, max_depth: int) -> None:
    """Refuse a parsed object nested deeper than ``max_depth`` or holding a non-finite float (YAML's
    ``.nan`` / ``.inf``: JSON refuses them too)."""
    stack: list[tuple[Any, int, str]] = [(obj, 1, "")]
    while stack:
        o, d, at = stack.pop()
        if d > max_depth:
            raise FileInputError(f"{where}: nested deeper than {max_depth} levels")
        if isinstance(o, float) and not math.isfinite(o):
            raise FileInputError(f"{where}: {at or '(top level)'}: {o!r} is not a finite number")
        if isinstance(o, dict):
            stack.extend((v, d + 1, f"{at}.{_clip(str(k))}" if at else _clip(str(k))) for k, v in o.items())
        elif isinstance(o, list):
            stack.extend((v, d + 1, f"{at}[{i}]") for i, v in enumerate(o))


def parse_json(text: str, where: str, max_depth: int = MAX_NESTING, *, allow_non_finite: bool = False) -> Any:
    """JSON text -> object, with the depth bound and integer literals of at most ``MAX_NUMBER_DIGITS`` digits;
    NaN / Infinity literals (not JSON) and floats that overflow (``1e400``) are refused unless
    ``allow_non_finite`` (Hugging Face's config.json files hold ``Infinity`` in fields the planner does not read;
    the reader of such a file checks every field it uses)."""
    check_depth(text, where, max_depth)

    def no_constants(name: str) -> Any:
        if allow_non_finite:
            return float(name)
        raise FileInputError(f"{where}: {name} is not a JSON number")

    def finite_float(literal: str) -> float:
        value = float(literal)
        if not math.isfinite(value) and not allow_non_finite:  # 1e400 overflows to inf
            raise FileInputError(f"{where}: number {_clip(literal)} is out of range (not a finite float)")
        return value

    def bounded_int(literal: str) -> int:
        if len(literal) > MAX_NUMBER_DIGITS:  # Python refuses > 4300 digits with a bare ValueError
            raise FileInputError(f"{where}: number {_clip(literal)} has more than {MAX_NUMBER_DIGITS} digits")
        return int(literal)

    try:
        return json.loads(text, parse_constant=no_constants, parse_float=finite_float, parse_int=bounded_int)
    except json.JSONDecodeError as exc:
        raise FileInputError(f"{where}: malformed JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None
    except RecursionError:
        raise FileInputError(f"{where}: nested too deeply") from None


def load_json(path: str | Path, what: str = "a JSON file", max_bytes: int = MAX_FILE_BYTES,
              max_depth: int = MAX_NESTING) -> Any:
    """A JSON file -> object (:func:`read_text` then :func:`parse_json`)."""
    return parse_json(read_text(path, what, max_bytes), str(path), max_depth)


def parse_yaml(text: str, where: str, max_depth: int = MAX_NESTING) -> Any:
    """YAML text -> object with the safe loader (no tags executed), the depth bound and aliases refused
    (a "billion laughs" document expands aliases exponentially)."""
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    check_depth(text, where, max_depth)
    try:
        nodes = yaml.compose(text, Loader=loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark else ""
        raise FileInputError(f"{where}: malformed YAML{at}: {getattr(exc, 'problem', None) or exc}") from None
    except RecursionError:
        raise FileInputError(f"{where}: nested too deeply") from None
    if nodes is None:
        return None
    seen: set[int] = set()
    stack = [(nodes, 1)]
    while stack:  # aliases make the node graph share children: refuse them outright
        n, d = stack.pop()
        if id(n) in seen:
            raise FileInputError(f"{where}: YAML aliases (&anchor / *alias) are not accepted")
        seen.add(id(n))
        if d > max_depth:
            raise FileInputError(f"{where}: nested deeper than {max_depth} levels")
        if isinstance(n.value, list):
            for item in n.value:
                if isinstance(item, tuple):
                    stack.extend((x, d + 1) for x in item)
                else:
                    stack.append((item, d + 1))
    try:
        data = yaml.load(text, Loader=loader)
    except yaml.YAMLError as exc:
        raise FileInputError(f"{where}: malformed YAML: {getattr(exc, 'problem', None) or exc}") from None
    except (ValueError, OverflowError, TypeError) as exc:  # a constructor's own error: a 5,000-digit integer
        raise FileInputError(f"{where}: malformed YAML: {_clip(str(exc))}") from None
    _depth_of(data, where, max_depth)
    return data


def load_yaml(path: str | Path, what: str = "a YAML file", max_bytes: int = MAX_FILE_BYTES,
              max_depth: int = MAX_NESTING) -> Any:
    """A YAML file -> object (:func:`read_text` then :func:`parse_yaml`)."""
    return parse_yaml(read_text(path, what, max_bytes), str(path), max_depth)


def same_file(a: str | Path, b: str | Path) -> bool:
    """Whether two paths name the same file (either may not exist yet): an output must never replace an input."""
    pa, pb = Path(a), Path(b)
    try:
        if pa.exists() and pb.exists():
            return os.path.samefile(pa, pb)
    except OSError:
        pass
    return pa.resolve() == pb.resolve()


__all__ = ["FileInputError", "check_depth", "load_json", "load_yaml", "parse_json", "parse_yaml", "read_bytes",
           "read_text", "same_file"]


def output_path(path: Any, suffixes: tuple[str, ...], what: str, error: type[PlannerError]) -> Path:
    """``path`` (a str or Path) as a :class:`Path` when its suffix is one of ``suffixes`` (any case); else one
    ``error`` line naming ``what`` is written and the suffixes it takes."""
    from .errors import one_line

    if not isinstance(path, (str, os.PathLike)):
        raise error(f"a {what} path must be a str or Path, got {type(path).__name__}")
    p = Path(path)
    if p.suffix.lower() not in suffixes:
        raise error(f"{one_line(str(p))}: a {what} is written as {' or '.join(suffixes)} (got "
                    f"{one_line(repr(p.suffix)) if p.suffix else 'no suffix'})")
    return p

