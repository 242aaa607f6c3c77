"""Traffic simulation of one serving worker: TTFT / TPOT percentiles, SLO attainment, goodput.

An iteration-level simulation of continuous batching with chunked prefill, the
way vLLM, SGLang and TensorRT-LLM schedule (open loop: requests arrive at
their own times, from a trace or a seeded Poisson process):

* Each iteration every running request produces one token; the waiting
  requests' prompts are prefilled FIFO in chunks, up to
  ``MAX_BATCHED_TOKENS`` tokens per iteration less the running decodes.
* A request is admitted only while the KV cache holds the running requests'
  contexts (the worker's KV capacity from the memory model).
* An iteration takes the decode step time at the running batch and its mean
  context (:func:`planner.cost.serving.decode_step_s`) plus the chunk's prefill
  time (:func:`planner.cost.serving.prefill_s`, per token, scaled by the
  engine's fitted ``prefill_mix``: prefill overlapping the memory-bound decode).
* A request's TTFT ends with the iteration that completes its prompt; its TPOT
  is ``(finish - first token) / (osl - 1)``.

SLO attainment is the share of requests meeting both SLOs. Goodput is the
highest arrival rate on a fixed geometric grid up to which the attainment
reaches the chosen percentile; on a fixed grid a looser SLO can only keep or
raise it, and the same seed gives the same number.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydantic import BaseModel, Field

from .cost.serving import (ServingError, ServingMemory, ServingPlan, check_context,
                           check_serving_plan, kv_bytes_per_request_per_gpu, longest_request_fits,
                           serving_memory)
from .errors import PlannerError
from .scheduler import Costs as _Costs
from .scheduler import IterationBound, Replica
from .results import ResultMixin
from .limits import (MAX_CSV_FIELD_CHARS, MAX_GPUS, MAX_RATE, MAX_REQUEST_TOKENS, MAX_REQUESTS, MAX_SEED,
                     MAX_SIM_ITERATIONS, MAX_SLO_S, MAX_TRACE_REQUESTS, check_int, check_number)
from .specs.hardware import System
from .specs.model import ModelSpec


class SimulationError(PlannerError):
    """A request trace that cannot be read, arguments outside their domain, or a simulation over its work bound."""


@dataclass(frozen=True)
class Request:
    arrival: float
    isl: int
    osl: int


class SimResult(ResultMixin, BaseModel):
    requests: int
    rate: float
    ttft_ms: dict[str, float]  # p50, p90, p99, mean
    tpot_ms: dict[str, float]
    attainment: float
    throughput_tokens_per_s: float
    duration_s: float
    # filled by simulate(..., per_request=True) only, and left out of model_dump / JSON (outputs stay as they were)
    ttft_ms_per_request: list[float] | None = Field(None, exclude=True, repr=False, description="each request's "
                                                    "TTFT in ms, in arrival order (per_request=True)")
    tpot_ms_per_request: list[float] | None = Field(None, exclude=True, repr=False, description="each request's "
                                                    "TPOT in ms, in arrival order; 0 for one output token")

    def _summary(self) -> str:
        return (f"{self.requests:,} requests at {self.rate:.3g}/s: TTFT p50 {self.ttft_ms['p50']:,.0f} / p90 "
                f"{self.ttft_ms['p90']:,.0f} ms, TPOT p50 {self.tpot_ms['p50']:,.1f} / p90 {self.tpot_ms['p90']:,.1f} ms, "
                f"{100 * self.attainment:.1f} % meet the SLOs, {self.throughput_tokens_per_s:,.0f} output tokens/s")

    def _rows(self) -> list[dict[str, object]]:
        return [{"metric": name, **d} for name, d in (("TTFT ms", self.ttft_ms), ("TPOT ms", self.tpot_ms))]


class GoodputResult(BaseModel):
    goodput_rps: float
    percentile: float
    ttft_slo_ms: float
    tpot_slo_ms: float
    grid: list[tuple[float, float]]  # (rate, attainment)


def poisson_requests(rate: float, n: int, isl: int, osl: int, seed: int = 0) -> list[Request]:
    """``n`` requests of ``isl`` prompt and ``osl`` output tokens, arriving as a Poisson process of ``rate``
    requests/s (exponential gaps from a seeded generator; the first request at time 0)."""
    rate = check_number(rate, "rate", hi=MAX_RATE)
    n = check_int(n, "number of requests", hi=MAX_REQUESTS)
    isl = check_int(isl, "isl", hi=MAX_REQUEST_TOKENS)
    osl = check_int(osl, "osl", hi=MAX_REQUEST_TOKENS)
    seed = check_int(seed, "seed", lo=0, hi=MAX_SEED)
    gaps = np.random.default_rng(seed).exponential(1.0 / rate, n)
    t = np.cumsum(gaps) - gaps[0]
    return [Request(float(a), isl, osl) for a in t]


TRACE_COLUMNS = ("arrived_at", "num_prefill_tokens", "num_decode_tokens")


def _trace_field(value: str | None, column: str, where: str) -> float:
    if value is None or not value.strip():
        raise SimulationError(f"{where}: no {column} value (a short row)")
    try:
        v = float(value)
    except ValueError:
        raise SimulationError(f"{where}: {column} {value[:40]!r} is not a number") from None
    if not math.isfinite(v):
        raise SimulationError(f"{where}: {column} must be a finite number, got {value.strip()!r}")
    if column == "arrived_at":
        if v < 0:
            raise SimulationError(f"{where}: arrived_at must not be negative, got {value.strip()}")
        return v
    if v != int(v) or not 1 <= v <= MAX_REQUEST_TOKENS:
        raise SimulationError(f"{where}: {column} must be a whole number from 1 to {MAX_REQUEST_TOKENS:,}, "
                              f"got {value.strip()}")
    return v


def trace_requests(path: str | Path, limit: int | None = None) -> list[Request]:
    """Requests of a trace CSV with the columns ``arrived_at`` (seconds, non-decreasing),
    ``num_prefill_tokens`` and ``num_decode_tokens`` (whole numbers >= 1), the first ``limit`` rows
    (all, up to ``MAX_TRACE_REQUESTS``, without one); arrival times are shifted so the first is 0.

    The file is read through :func:`planner.files.read_text` (regular file, size bound, UTF-8). A row
    that is short, non-numeric, not finite, out of range or earlier than the row before it is refused
    with its line number (an unsorted trace is refused rather than sorted: it usually means a wrong
    column or concatenated traces)."""
    import csv
    import io

    from .files import read_text

    if limit is not None:
        limit = check_int(limit, "number of requests", hi=MAX_REQUESTS)
    if not isinstance(path, (str, os.PathLike)):
        raise SimulationError(f"a trace path must be a str or Path, got {type(path).__name__}")
    p = Path(path)
    text = read_text(p, "a request trace CSV (arrived_at, num_prefill_tokens, num_decode_tokens)")
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [h.strip() for h in next(reader, [])]
    except csv.Error as exc:
        raise SimulationError(f"{p}: not a readable CSV header ({exc})") from None
    missing = [c for c in TRACE_COLUMNS if c not in header]
    if missing:
        raise SimulationError(f"{p}: expected columns {', '.join(TRACE_COLUMNS)}; missing {', '.join(missing)}")
    col = [header.index(c) for c in TRACE_COLUMNS]
    out: list[Request] = []
    last = -math.inf
    try:
        for row in reader:
            where = f"{p} line {reader.line_num}"
            if not row or not any(x.strip() for x in row):
                continue
            if any(len(x) > MAX_CSV_FIELD_CHARS for x in row):
                raise SimulationError(f"{where}: a field longer than {MAX_CSV_FIELD_CHARS:,} characters")
            if len(row) != len(header):
                raise SimulationError(f"{where}: {len(row)} fields, the header has {len(header)}")
            arrival, isl, osl = (_trace_field(row[i], c, where) for i, c in zip(col, TRACE_COLUMNS))
            if arrival < last:
                raise SimulationError(f"{where}: arrived_at {arrival:g} is earlier than the row before ({last:g}); "
                                      f"sort the trace by arrival time")
            last = arrival
            if len(out) >= MAX_TRACE_REQUESTS:
                raise SimulationError(f"{p}: more than {MAX_TRACE_REQUESTS:,} requests; simulate a part of it")
            out.append(Request(arrival, int(isl), int(osl)))
            if limit is not None and len(out) >= limit:
                break
    except csv.Error as exc:
        raise SimulationError(f"{p} line {reader.line_num}: not readable as CSV ({exc})") from None
    if not out:
        raise SimulationError(f"{p}: no requests")
    t0 = out[0].arrival
    return [Request(r.arrival - t0, r.isl, r.osl) for r in out]


def scale_rate(requests: list[Request], factor: float) -> list[Request]:
    """The same requests arriving ``factor`` times faster."""
    return [Request(r.arrival / factor, r.isl, r.osl) for r in requests]


class _Run:
    """The per-request state one worker's simulation shares with its :class:`~planner.scheduler.Replica`."""

    __slots__ = ("isl", "osl", "first", "finish", "outbox", "iterations")

    def __init__(self, isl: list[int], osl: list[int]) -> None:
        self.isl, self.osl = isl, osl
        self.first = [math.nan] * len(isl)
        self.finish = [math.nan] * len(isl)
        self.outbox: list = []  # completed prompts of a prefill replica (none here)
        self.iterations = 0


def _check_slo(value: float, name: str) -> float:
    """An SLO in ms: positive and at most a day; ``math.inf`` is "no SLO"."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value == math.inf:
        return math.inf
    return check_number(value, name, hi=MAX_SLO_S * 1e3)


def _check_worker(model: ModelSpec, system: System, plan: ServingPlan) -> None:
    """The worker a simulation runs: the right types and a layout the model allows (:func:`check_serving_plan`)."""
    if not isinstance(model, ModelSpec) or not isinstance(system, System) or not isinstance(plan, ServingPlan):
        raise SimulationError("simulate takes a ModelSpec, a System and a ServingPlan (planner.get_model, "
                              "planner.get_system, planner.cost.serving.ServingPlan)")
    try:
        check_int(plan.gpus, "GPUs of the worker (tp x dp x pp)", hi=MAX_GPUS)
    except PlannerError as exc:
        raise SimulationError(str(exc)) from None
    check_serving_plan(model, system, plan)  # as estimate serve and the plan gate (fp4 without tensor cores too)


def _check_fits(model: ModelSpec, system: System, plan: ServingPlan, mem: ServingMemory, longest: int) -> None:
    """The worker can run the requests, as ``planner estimate serve`` and the search require: the longest
    request (prompt + output) is within the model's context, and the worker holds its weights, workspace and the
    KV cache of that one request in the engine's usable memory (:func:`planner.cost.serving.longest_request_fits`)."""
    try:
        check_context(model, longest, "the longest request")
    except ServingError as exc:
        raise SimulationError(str(exc)) from None
    if not longest_request_fits(model, plan, mem, longest):
        kv = kv_bytes_per_request_per_gpu(model, plan, longest)
        raise SimulationError(
            f"{model.name} does not fit on {plan.gpus} x {system.name} at {plan.precision}: weights "
            f"{mem.weights_bytes / 1e9:,.1f} GB + workspace {mem.workspace_bytes / 1e9:,.1f} GB + the KV cache of one "
            f"request of {longest} tokens {kv / 1e9:,.1f} GB per GPU exceed the {mem.usable_bytes / 1e9:,.1f} GB "
            f"usable (try more --tp, a smaller --precision or shorter requests)")


def _check_requests(requests: list[Request]) -> None:
    """Requests in their domain: finite arrival times >= 0, token counts whole numbers in [1, MAX_REQUEST_TOKENS]."""
    if not isinstance(requests, (list, tuple)) or not requests:
        raise SimulationError("no requests to simulate")
    if len(requests) > MAX_TRACE_REQUESTS:
        raise SimulationError(f"{len(requests):,} requests; at most {MAX_TRACE_REQUESTS:,} are simulated")
    for i, r in enumerate(requests):
        if not isinstance(r, Request):
            raise SimulationError(f"request {i} is a {type(r).__name__}, not a planner.simulation.Request")
        check_number(r.arrival, f"request {i} arrival", lo=0.0, lo_open=False)
        check_int(r.isl, f"request {i} isl", hi=MAX_REQUEST_TOKENS)
        check_int(r.osl, f"request {i} osl", hi=MAX_REQUEST_TOKENS)


def simulate(model: ModelSpec, system: System, plan: ServingPlan, requests: list[Request],
             ttft_slo_ms: float = math.inf, tpot_slo_ms: float = math.inf, costs: _Costs | None = None,
             max_iterations: int = MAX_SIM_ITERATIONS, per_request: bool = False) -> SimResult:
    """Simulate the worker on ``requests`` (module docstring); SLOs in ms (``math.inf``: none).
    ``per_request``: also return every request's TTFT and TPOT (``ttft_ms_per_request``,
    ``tpot_ms_per_request``, in arrival order: the samples the percentiles are taken over; not in the JSON).

    A worker ``planner estimate serve`` refuses is refused here too: a layout the model does not allow
    (:func:`planner.cost.serving.check_serving_plan`), a request longer than the model's context, or a worker that
    cannot hold the longest request's KV cache beside its weights.

    The work is bounded: the scheduler loop makes progress every iteration (a prompt chunk or a decode
    step), and more than ``max_iterations`` iterations raise :class:`SimulationError` naming the bound, as
    does a trace whose outputs alone need more (the sum of output tokens over the most requests the KV cache
    holds at once is a lower bound on the iterations)."""
    _check_worker(model, system, plan)
    _check_requests(requests)
    ttft_slo_ms, tpot_slo_ms = _check_slo(ttft_slo_ms, "TTFT SLO (ms)"), _check_slo(tpot_slo_ms, "TPOT SLO (ms)")
    max_iterations = check_int(max_iterations, "max_iterations", lo=0, hi=MAX_SIM_ITERATIONS)
    costs = costs or _Costs(model, system, plan)
    mem = serving_memory(model, system, plan, int(np.mean([r.isl for r in requests])),
                         int(np.mean([r.osl for r in requests])))
    kv_cap = mem.kv_capacity_tokens
    reqs = sorted(requests, key=lambda r: r.arrival)
    longest = max(r.osl for r in reqs)
    widest = max(1, min(len(reqs), kv_cap // max(1, min(r.isl + r.osl for r in reqs))))
    need = max(longest, sum(r.osl for r in reqs) // widest)
    if need > max_iterations:
        raise SimulationError(f"simulating these requests needs at least {need:,} scheduler iterations, more than "
                              f"the bound of {max_iterations:,}; simulate fewer requests or shorter outputs")
    _check_fits(model, system, plan, mem, max(r.isl + r.osl for r in reqs))
    n = len(reqs)
    run = _Run([r.isl for r in reqs], [r.osl for r in reqs])
    worker = Replica(0, "aggregated", costs, kv_cap, run)
    try:
        for i, r in enumerate(reqs):  # an iteration starting at t sees the arrivals at or before t
            if worker.t < r.arrival and (worker.waiting or worker.running):
                worker.advance(r.arrival, max_iterations)
            worker.add(i, r.arrival)
        worker.advance(math.inf, max_iterations)
    except IterationBound:
        left = sum(1 for x in run.finish if x != x)  # NaN: not finished
        raise SimulationError(f"the simulation passed {max_iterations:,} scheduler iterations (its bound) with "
                              f"{left:,} requests left; simulate fewer requests or shorter outputs") from None
    it = worker.it
    first, finish = np.array(run.first), np.array(run.finish)
    costs.iterations += it
    arr = np.array([r.arrival for r in reqs])
    osl = np.array([r.osl for r in reqs])
    ttft = (first - arr) * 1e3
    tpot = np.where(osl > 1, (finish - first) / np.maximum(osl - 1, 1), 0.0) * 1e3
    ok = (ttft <= ttft_slo_ms) & (tpot <= tpot_slo_ms)
    dur = float(np.nanmax(finish) - arr[0]) if n else 0.0

    def pct(x: np.ndarray) -> dict[str, float]:
        return {"p50": float(np.percentile(x, 50)), "p90": float(np.percentile(x, 90)),
                "p99": float(np.percentile(x, 99)), "mean": float(np.mean(x))}

    span = max(arr[-1] - arr[0], 1e-9)
    res = SimResult(requests=n, rate=(n - 1) / span if n > 1 else 0.0, ttft_ms=pct(ttft), tpot_ms=pct(tpot),
                    attainment=float(np.mean(ok)), throughput_tokens_per_s=float(osl.sum() / max(dur, 1e-9)),
                    duration_s=dur)
    if per_request:
        res.ttft_ms_per_request, res.tpot_ms_per_request = ttft.tolist(), tpot.tolist()
    return res


def goodput(model: ModelSpec, system: System, plan: ServingPlan, requests: list[Request], ttft_slo_ms: float,
            tpot_slo_ms: float, percentile: float = 90.0, steps: int = 48) -> GoodputResult:
    """The highest rate on the grid ``base x 2^(k/4)`` (k = -8, -7, ...) below which every grid
    rate's SLO attainment reaches ``percentile`` % (the walk stops at the first miss).
    ``requests`` fixes the arrival pattern and lengths (a trace, or a seeded Poisson sample),
    scaled in time for each rate. A looser SLO passes every rate a tighter one passes, so
    its goodput is never lower."""
    percentile = check_number(percentile, "percentile", hi=100.0)
    steps = check_int(steps, "steps", hi=200)
    _check_worker(model, system, plan)
    _check_requests(requests)
    ttft_slo_ms, tpot_slo_ms = _check_slo(ttft_slo_ms, "TTFT SLO (ms)"), _check_slo(tpot_slo_ms, "TPOT SLO (ms)")
    base = (len(requests) - 1) / max(requests[-1].arrival - requests[0].arrival, 1e-9)
    costs = _Costs(model, system, plan)
    grid = []
    best = 0.0
    for k in range(-8, steps - 8):
        factor = 2.0 ** (k / 4)
        # one iteration bound for the whole walk: every grid point replays the same requests
        res = simulate(model, system, plan, scale_rate(requests, factor), ttft_slo_ms, tpot_slo_ms, costs,
                       max_iterations=MAX_SIM_ITERATIONS - costs.iterations)
        grid.append((base * factor, res.attainment))
        if res.attainment * 100 < percentile - 1e-9:
            break
        best = base * factor
    return GoodputResult(goodput_rps=best, percentile=percentile, ttft_slo_ms=ttft_slo_ms, tpot_slo_ms=tpot_slo_ms,
                         grid=grid)


__all__ = ["GoodputResult", "Request", "SimResult", "SimulationError", "goodput", "poisson_requests", "scale_rate", "simulate",
           "trace_requests"]
