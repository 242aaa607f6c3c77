"""The domain of every input: sane upper bounds, in one place.

Each bound is far above anything real (so no real job is refused) and low
enough that the work it allows stays bounded (so no input can make the planner
hang or exhaust memory). A value outside gets one :class:`~planner.errors.PlannerError`
line naming the flag or field, the value and the bound. :func:`check_number`
and :func:`check_int` are the checks every entry point uses.
"""

from __future__ import annotations

import math
from typing import Any

from .errors import PlannerError

# --- files -------------------------------------------------------------------------------------------------
MAX_FILE_BYTES = 64 * 10**6  # a spec, plan, trace or CSV file (the largest reference trace is ~10 MB)
MAX_NESTING = 64  # JSON / YAML nesting depth (a config.json or plan document nests 4-6 levels)
MAX_NUMBER_DIGITS = 64  # digits of one number literal in JSON (Python refuses > 4,300 with a bare ValueError)
MAX_SPEC_FILE_BYTES = 16 * 10**6  # a config.json or hardware YAML (the largest real config.json seen is ~3 MB)
MAX_NAME_CHARS = 4096  # a model / GPU name, Hugging Face id or spec path as given (PATH_MAX)
MAX_CSV_FIELD_CHARS = 4096  # one CSV field
MAX_TRACE_REQUESTS = 2_000_000  # requests read from a request trace
MAX_CSV_ROWS = 1_000_000  # rows of an --from-csv file

# --- hardware and models -------------------------------------------------------------------------------------
MAX_GPUS = 1_048_576  # GPUs in one job or deployment (2^20)
MAX_LAYERS = 4096  # transformer layers of a model
MAX_HIDDEN = 1 << 20  # hidden size, intermediate size
MAX_HEADS = 1 << 16  # attention heads
MAX_EXPERTS = 1 << 16  # routed experts per layer
MAX_VOCAB = 1 << 24  # vocabulary
MAX_POSITIONS = 1 << 28  # sequence length / max positions (268 M tokens)

# --- workloads -----------------------------------------------------------------------------------------------
MAX_TOKENS = 1e16  # tokens to train (10,000 T)
MAX_BATCH = 1 << 24  # sequences in a global batch
MAX_REQUEST_TOKENS = 1 << 24  # prompt or output tokens of one serving request (16.7 M)
MAX_CONCURRENCY = 1 << 20  # requests in flight
MAX_RATE = 1e6  # requests per second
MAX_REQUESTS = 1_000_000  # requests simulated
MAX_SLO_S = 86_400.0  # a latency SLO (one day)
MAX_TIME_LIMIT_S = 86_400.0  # a solver time limit
MAX_DEADLINE_S = 100 * 365 * 86_400.0  # a training deadline (a century)
MAX_USD = 1e15  # a budget, a price
MAX_ROUTING_TOKENS = 1 << 24  # tokens of a routing trace
MAX_SYNTHETIC_WORK = 1 << 30  # tokens x MoE layers x experts of a synthetic routing trace (~1 min, ~1 GB)
MAX_ROUTING_ARRAY_BYTES = 1 << 30  # one array of a routing trace, decompressed
MAX_SIM_ITERATIONS = 20_000_000  # scheduler iterations of one simulate / goodput call (about a minute)
MAX_TOP = 1000  # plans listed
MAX_SEED = 2**63 - 1  # a random seed
MAX_LINK_COST = 1e3  # a link or objective weight of the expert placer (relative to a same-node GPU hop = 1)
MAX_IMBALANCE = 1e3  # a cap on max / mean GPU load (any cap at or above the GPU count caps nothing)
MAX_BYTES_PER_PARAM = 8.0  # bytes per stored parameter (fp4 = 0.5 ... fp64 = 8)


def check_number(value: Any, name: str, *, lo: float | None = 0.0, hi: float | None = None,
                 lo_open: bool = True, integer: bool = False) -> float:
    """``value`` as a finite number in ``(lo, hi]`` (``[lo, hi]`` with ``lo_open=False``); else one line
    naming ``name`` (the flag or field the user wrote)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise PlannerError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(value):
        raise PlannerError(f"{name} must be a finite number, got {value!r}")
    if integer and value != int(value):
        raise PlannerError(f"{name} must be a whole number, got {value!r}")
    if lo is not None and (value <= lo if lo_open else value < lo):
        need = f"greater than {lo:g}" if lo_open else f"at least {lo:g}"
        if lo == 0 and lo_open:
            need = "positive"
        raise PlannerError(f"{name} must be {need}, got {value!r}")
    if hi is not None and value > hi:
        raise PlannerError(f"{name} must be at most {hi:,.6g}, got {value!r}")
    return value


def check_int(value: Any, name: str, *, lo: int = 1, hi: int | None = None) -> int:
    """``value`` as an integer in ``[lo, hi]`` (bools and non-integral floats refused)."""
    if isinstance(value, bool):
        raise PlannerError(f"{name} must be a whole number, got {value!r}")
    if isinstance(value, float):
        if not math.isfinite(value) or value != int(value):
            raise PlannerError(f"{name} must be a whole number, got {value!r}")
        value = int(value)
    if not isinstance(value, int):
        raise PlannerError(f"{name} must be a whole number, got {value!r}")
    if value < lo:
        raise PlannerError(f"{name} must be at least {lo}, got {value}")
    if hi is not None and value > hi:
        raise PlannerError(f"{name} must be at most {hi:,}, got {value:,}")
    return value


__all__ = [name for name in dir() if name.isupper()] + ["check_int", "check_number"]
