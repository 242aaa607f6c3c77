"""Human units in spec files -> SI numbers inside the code.

Spec files may write ``80 GB``, ``81559 MiB``, ``3.35 TB/s``, ``400 Gb/s``,
``989.5 TFLOPS``, ``2 us`` or ``700 W``. Inside the planner every quantity is
in SI units: bytes, bytes per second, FLOP/s, seconds, watts.

Decimal prefixes (k, M, G, T, P) are powers of 1000; binary prefixes (Ki, Mi,
Gi, Ti) are powers of 1024. ``GB`` is therefore 1e9 bytes and ``GiB`` is 2**30
bytes: spec files say which one they mean. A lower-case ``b`` means bits
(``400 Gb/s`` = 50e9 bytes/s). Plain numbers are taken as already SI.

Parsing is strict: the whole string must be one number and one unit, the number
finite (``1e400 GB`` overflows to infinity and is refused, ``nan TFLOPS`` does
not parse) and not negative. Ranges (at least 1 GB of memory...) are the
spec's business: see :mod:`planner.specs.hardware`.
"""

from __future__ import annotations

import math
import re
from typing import Annotated

from pydantic import BeforeValidator

from ..errors import PlannerError

_DECIMAL = {"": 1.0, "k": 1e3, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18}
_BINARY = {"Ki": 2.0**10, "Mi": 2.0**20, "Gi": 2.0**30, "Ti": 2.0**40, "Pi": 2.0**50}

_NUM = r"(?P<num>[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?)"
_PREFIX = r"(?P<prefix>Ki|Mi|Gi|Ti|Pi|k|K|M|G|T|P|E)?"


class UnitError(PlannerError):
    """A quantity string that does not parse in the expected unit."""


_MAX_QUANTITY_CHARS = 64  # '989.5 TFLOPS' is 12: a longer string is not a quantity


def show(value: object) -> str:
    """``repr(value)`` clipped to 40 characters: a hostile value can be megabytes long."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def whole_number(v: object) -> object:
    """A before-validator for counts: bools, strings and fractional or non-finite floats are refused (pydantic's
    lax mode would take ``True`` as 1 and ``"8"`` as 8); the field's own bounds do the rest."""
    if isinstance(v, (bool, str)) or (isinstance(v, float) and (not math.isfinite(v) or v != int(v))):
        raise ValueError(f"must be a whole number, got {show(v)}")
    return v


def _split(text: str, units_regex: str, what: str) -> tuple[float, str, str]:
    s = str(text).strip().replace(",", "").replace("_", "")
    m = re.fullmatch(_NUM + r"\s*" + _PREFIX + r"\s*(?P<unit>" + units_regex + r")", s) if len(s) <= _MAX_QUANTITY_CHARS else None
    if not m:
        raise UnitError(f"cannot read {show(text)} as {what}")
    return float(m.group("num")), m.group("prefix") or "", m.group("unit")


def _checked(n: float, value: object, what: str) -> float:
    """``n`` if finite and not negative: ``1e400 GB`` overflows to inf, YAML's ``.nan`` is a float."""
    if not math.isfinite(n):
        raise UnitError(f"{what} must be a finite number, got {show(value)}")
    if n < 0:
        raise UnitError(f"{what} must not be negative, got {show(value)}")
    return n


def _scale(prefix: str) -> float:
    return _BINARY[prefix] if prefix in _BINARY else _DECIMAL[prefix]


def _plain_number(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    return None


def parse_bytes(value: object) -> float:
    """``80 GB`` -> 8e10; ``80 GiB`` -> 85899345920; ``512 MiB``; a number is bytes."""
    n = _plain_number(value)
    if n is None:
        num, prefix, unit = _split(str(value), r"B|bytes?|b|bits?", "a size (e.g. '80 GB' or '80 GiB')")
        n = num * _scale(prefix) / (8.0 if unit in ("b", "bit", "bits") else 1.0)
    return _checked(n, value, "size")


def parse_bandwidth(value: object) -> float:
    """``3.35 TB/s`` -> 3.35e12 bytes/s; ``400 Gb/s`` or ``400 Gbps`` -> 5e10 bytes/s."""
    n = _plain_number(value)
    if n is None:
        num, prefix, unit = _split(str(value), r"B/s|Bps|b/s|bps|bit/s", "a bandwidth (e.g. '3.35 TB/s' or '400 Gb/s')")
        bits = unit in ("b/s", "bps", "bit/s")
        n = num * _scale(prefix) / (8.0 if bits else 1.0)
    return _checked(n, value, "bandwidth")


def parse_flops(value: object) -> float:
    """``989.5 TFLOPS`` -> 9.895e14 FLOP/s (``TOPS`` and ``TFLOP/s`` too)."""
    n = _plain_number(value)
    if n is None:
        num, prefix, _ = _split(str(value), r"FLOPS|FLOP/s|flops|flop/s|OPS|ops|OP/s", "a rate (e.g. '989.5 TFLOPS')")
        if prefix in _BINARY:
            raise UnitError(f"binary prefixes make no sense for FLOP/s: {show(value)}")
        n = num * _DECIMAL[prefix]
    return _checked(n, value, "FLOP/s")


_TIME = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9, "min": 60.0, "h": 3600.0, "d": 86400.0,
         "days": 86400.0}


def parse_seconds(value: object) -> float:
    """``2 us`` -> 2e-6; ``300ms`` -> 0.3; a number is seconds."""
    n = _plain_number(value)
    if n is None:
        s = str(value).strip()
        m = re.fullmatch(_NUM + r"\s*(?P<unit>s|ms|us|µs|ns|min|h|days|d)", s) if len(s) <= _MAX_QUANTITY_CHARS else None
        if not m:
            raise UnitError(f"cannot read {show(value)} as a time (e.g. '2 us', '300 ms')")
        n = float(m.group("num")) * _TIME[m.group("unit")]
    return _checked(n, value, "time")


def read_token_count(text: str) -> float:
    """A batch size in tokens as people write it: ``16M`` = 16 x 2^20, ``4096K`` / ``4096k`` = 4096 x 2^10,
    ``4,194,304`` (batch sizes are counted in binary units). The number as read (not yet checked whole, positive
    or in range: each caller says which bound it holds); ValueError when it is no number."""
    t = text.strip().replace(",", "").replace("_", "")
    mult = {"K": 2**10, "k": 2**10, "M": 2**20}.get(t[-1:], 1)
    return float(t[:-1] if mult > 1 else t) * mult


def parse_watts(value: object) -> float:
    """``700 W`` or ``1.2 kW`` -> watts."""
    n = _plain_number(value)
    if n is None:
        num, prefix, _ = _split(str(value), r"W", "a power (e.g. '700 W')")
        n = num * _DECIMAL[prefix]
    return _checked(n, value, "power")


Bytes = Annotated[float, BeforeValidator(parse_bytes)]
BytesPerSecond = Annotated[float, BeforeValidator(parse_bandwidth)]
FlopsPerSecond = Annotated[float, BeforeValidator(parse_flops)]
Seconds = Annotated[float, BeforeValidator(parse_seconds)]
Watts = Annotated[float, BeforeValidator(parse_watts)]

GB = 1e9
GiB = 2.0**30
MiB = 2.0**20


def format_bytes(n: float) -> str:
    """Bytes for people, in decimal GB/MB (the planner's display convention)."""
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{n:.0f} B"
