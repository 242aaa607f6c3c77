"""Numbers as people read them, JSON as programs read it, and the amounts flags take (``15T``, ``$2.5M``,
``60d``, ``300ms``)."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import planner

# ---------------------------------------------------------------------------
# numbers in tables
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


def signed_pct(x: float) -> str:
    return f"{x:+.1f}" if math.isfinite(x) else "-"


def si(x: float) -> str:
    """A large count the way the flags take it: ``1T``, ``14.8T``, ``2.5B``, ``300M``, ``12k``; below 1,000 as
    is (three significant figures)."""
    for scale, unit in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= scale:
            return f"{x / scale:.3g}{unit}"
    return f"{x:.3g}"


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


# ---------------------------------------------------------------------------
# JSON
# ---------------------------------------------------------------------------

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


# ---------------------------------------------------------------------------
# amounts flags take
# ---------------------------------------------------------------------------

_SCALE = {"k": 1e3, "K": 1e3, "M": 1e6, "B": 1e9, "G": 1e9, "T": 1e12}
#: A number with optional thousands separators (``14,800``): a comma anywhere else (``1,5``) is no number.
_GROUPED = re.compile(r"[+-]?\d{1,3}(,\d{3})+(\.\d*)?")


def parse_amount(text: str, what: str, hi: float) -> float:
    """``2.5e6``, ``2.5M``, ``$300k``, ``1T``, ``14,800B`` -> a positive finite number of at most ``hi``
    (k = 1e3, M = 1e6, B or G = 1e9, T = 1e12); else a ValueError naming ``what``."""
    s = text.strip().lstrip("$").replace("_", "")
    mult = _SCALE.get(s[-1:], 1.0)
    if s[-1:] in _SCALE:
        s = s[:-1]
    if "," in s:
        s = s.replace(",", "") if _GROUPED.fullmatch(s) else "?"
    try:
        v = float(s) * mult
    except ValueError:
        raise ValueError(f"cannot read {text[:80]!r} as {what} (e.g. 1e12, 15T, 2.5M)") from None
    if not math.isfinite(v) or v <= 0:  # NaN, inf and 1e400 (inf once read) included
        raise ValueError(f"{what} must be a positive finite number, got {text[:80]!r}")
    if v > hi:
        raise ValueError(f"{what} must be at most {hi:,.6g}, got {text[:80]!r}")
    return v


def parse_time(text: str, flag: str, hi_s: float, examples: str = "60d, 720h") -> float:
    """A time that must carry its unit (``60d``, ``720h``, ``90 min``) -> seconds in (0, ``hi_s``]. A bare
    number is refused: ``--deadline 60`` could be seconds, hours or days."""
    from planner.specs.units import parse_seconds

    t = text.strip()
    if t and not any(c.isalpha() for c in t):
        raise ValueError(f"{flag} {t[:80]!r} needs a unit (e.g. {examples})")
    try:
        v = parse_seconds(t)
    except (ValueError, OverflowError):
        raise ValueError(f"cannot read {flag} {text[:80]!r} as a time (e.g. {examples})") from None
    if not 0 < v <= hi_s:  # NaN fails too
        raise ValueError(f"{flag} must be a positive time of at most {_span(hi_s)}, got {text[:80]!r}")
    return v


def _span(seconds: float) -> str:
    years = seconds / 86400 / 365
    return f"{years:g} years" if years >= 1 else f"{seconds / 3600:g} h"


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


def default_reference() -> Path:
    """``../shared/reference`` from the working directory (the project root), or, in a
    source checkout run from elsewhere, the one beside the checkout."""
    from planner.validate import DEFAULT_REFERENCE

    if DEFAULT_REFERENCE.is_dir():
        return DEFAULT_REFERENCE
    beside = Path(planner.__file__).resolve().parents[3] / "shared" / "reference"
    return beside if beside.is_dir() else DEFAULT_REFERENCE
