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

import heapq
import math
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydantic import BaseModel

from .cost.serving import BACKENDS, MAX_BATCHED_TOKENS, ServingPlan, decode_step_s, prefill_s, serving_memory
from .specs.hardware import System
from .specs.model import ModelSpec


@dataclass(frozen=True)
class Request:
    arrival: float
    isl: int
    osl: int


class SimResult(BaseModel):
    requests: int
    rate: float
    ttft_ms: dict[str, float]  # p50, p90, p99, mean
    tpot_ms: dict[str, float]
    attainment: float
    throughput_tokens_per_s: float
    duration_s: float


class GoodputResult(BaseModel):
    goodput_rps: float
    percentile: float
    ttft_slo_ms: float
    tpot_slo_ms: float
    grid: list[tuple[float, float]]  # (rate, attainment)


def poisson_requests(rate: float, n: int, isl: int, osl: int, seed: int = 0) -> list[Request]:
    if rate <= 0 or n <= 0:
        raise ValueError("rate and number of requests must be positive")
    gaps = np.random.default_rng(seed).exponential(1.0 / rate, n)
    t = np.cumsum(gaps) - gaps[0]
    return [Request(float(a), isl, osl) for a in t]


def trace_requests(path: str | Path, limit: int | None = None) -> list[Request]:
    """Requests of a trace CSV (``arrived_at, num_prefill_tokens, num_decode_tokens``)."""
    import csv

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"trace {p} not found")
    out = []
    with p.open() as f:
        for row in csv.DictReader(f):
            try:
                out.append(Request(float(row["arrived_at"]), max(1, int(float(row["num_prefill_tokens"]))),
                                   max(1, int(float(row["num_decode_tokens"])))))
            except (KeyError, ValueError):
                raise ValueError(f"{p}: expected columns arrived_at, num_prefill_tokens, num_decode_tokens") from None
            if limit is not None and len(out) >= limit:
                break
    if not out:
        raise ValueError(f"{p}: no requests")
    t0 = out[0].arrival
    return [Request(r.arrival - t0, r.isl, r.osl) for r in out]


def scale_rate(requests: list[Request], factor: float) -> list[Request]:
    """The same requests arriving ``factor`` times faster."""
    return [Request(r.arrival / factor, r.isl, r.osl) for r in requests]


class _Costs:
    """Iteration costs of one worker, memoised on coarse buckets."""

    def __init__(self, model: ModelSpec, system: System, plan: ServingPlan) -> None:
        self.model, self.system, self.plan = model, system, plan
        self.consts = BACKENDS[plan.backend]
        self._dec: dict[tuple[int, int], float] = {}
        self._pf: dict[int, float] = {}

    def decode(self, batch: int, ctx: float) -> float:
        b = batch if batch <= 64 else 8 * math.ceil(batch / 8)
        c = max(256, 256 * round(ctx / 256))
        key = (b, c)
        if key not in self._dec:
            self._dec[key] = decode_step_s(self.model, self.system, self.plan, b, c)["step"]
        return self._dec[key]

    def prefill(self, tokens: int) -> float:
        if tokens <= 0:
            return 0.0
        t = max(256, 256 * math.ceil(tokens / 256))
        if t not in self._pf:
            self._pf[t] = prefill_s(self.model, self.system, self.plan, 1, t) / t
        return self._pf[t] * tokens * self.consts.prefill_mix


def simulate(model: ModelSpec, system: System, plan: ServingPlan, requests: list[Request],
             ttft_slo_ms: float = math.inf, tpot_slo_ms: float = math.inf, costs: _Costs | None = None) -> SimResult:
    if not requests:
        raise ValueError("no requests to simulate")
    costs = costs or _Costs(model, system, plan)
    mem = serving_memory(model, system, plan, int(np.mean([r.isl for r in requests])),
                         int(np.mean([r.osl for r in requests])))
    kv_cap = max(1, mem.kv_capacity_tokens)
    reqs = sorted(requests, key=lambda r: r.arrival)
    n = len(reqs)
    first = np.full(n, np.nan)
    finish = np.full(n, np.nan)
    t, it, nxt = 0.0, 0, 0
    waiting: deque[int] = deque()
    prefill_left: dict[int, int] = {}
    running: list[tuple[int, int]] = []  # heap of (iteration at which it finishes, request)
    start_it: dict[int, int] = {}
    sum_isl = sum_start = 0  # for the mean context: sum(isl + it - start)
    kv_used = 0
    while nxt < n or waiting or running:
        while nxt < n and reqs[nxt].arrival <= t:
            waiting.append(nxt)
            nxt += 1
        if not waiting and not running:
            t = reqs[nxt].arrival
            continue
        # prefill chunk: FIFO over admitted prompts, within the token budget and the KV capacity
        budget = max(0, MAX_BATCHED_TOKENS - len(running))
        chunk = 0
        done_prefill = []
        for i in list(waiting):
            if budget <= 0:
                break
            if i not in prefill_left:
                need = reqs[i].isl + reqs[i].osl
                if kv_used + need > kv_cap and (running or prefill_left):
                    break  # wait for KV space
                prefill_left[i] = reqs[i].isl
                kv_used += need
            take = min(budget, prefill_left[i])
            prefill_left[i] -= take
            budget -= take
            chunk += take
            if prefill_left[i] == 0:
                done_prefill.append(i)
        n_dec = len(running)
        ctx = (sum_isl + n_dec * it - sum_start) / n_dec if n_dec else 0.0
        dt = (costs.decode(n_dec, ctx) if n_dec else 0.0) + costs.prefill(chunk)
        if dt <= 0:
            dt = 1e-4
        t += dt
        it += 1
        while running and running[0][0] <= it:  # requests that produced their last token
            _, i = heapq.heappop(running)
            finish[i] = t
            sum_isl -= reqs[i].isl
            sum_start -= start_it.pop(i)
            kv_used -= reqs[i].isl + reqs[i].osl
        for i in done_prefill:
            waiting.remove(i)
            del prefill_left[i]
            first[i] = t
            if reqs[i].osl <= 1:
                finish[i] = t
                kv_used -= reqs[i].isl + reqs[i].osl
                continue
            start_it[i] = it
            sum_isl += reqs[i].isl
            sum_start += it
            heapq.heappush(running, (it + reqs[i].osl - 1, i))
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
    return SimResult(requests=n, rate=(n - 1) / span if n > 1 else 0.0, ttft_ms=pct(ttft), tpot_ms=pct(tpot),
                     attainment=float(np.mean(ok)), throughput_tokens_per_s=float(osl.sum() / max(dur, 1e-9)),
                     duration_s=dur)


def goodput(model: ModelSpec, system: System, plan: ServingPlan, requests: list[Request], ttft_slo_ms: float,
            tpot_slo_ms: float, percentile: float = 90.0, steps: int = 48) -> GoodputResult:
    """The highest rate on the grid ``base x 2^(k/4)`` (k = -8, -7, ...) below which every grid
    rate's SLO attainment reaches ``percentile`` % (the walk stops at the first miss).
    ``requests`` fixes the arrival pattern and lengths (a trace, or a seeded Poisson sample),
    scaled in time for each rate. A looser SLO passes every rate a tighter one passes, so
    its goodput is never lower."""
    if not 0 < percentile <= 100:
        raise ValueError(f"percentile must be in (0, 100], got {percentile}")
    base = (len(requests) - 1) / max(requests[-1].arrival - requests[0].arrival, 1e-9)
    costs = _Costs(model, system, plan)
    grid = []
    best = 0.0
    for k in range(-8, steps - 8):
        factor = 2.0 ** (k / 4)
        res = simulate(model, system, plan, scale_rate(requests, factor), ttft_slo_ms, tpot_slo_ms, costs)
        grid.append((base * factor, res.attainment))
        if res.attainment * 100 < percentile - 1e-9:
            break
        best = base * factor
    return GoodputResult(goodput_rps=best, percentile=percentile, ttft_slo_ms=ttft_slo_ms, tpot_slo_ms=tpot_slo_ms,
                         grid=grid)


__all__ = ["GoodputResult", "Request", "SimResult", "goodput", "poisson_requests", "scale_rate", "simulate",
           "trace_requests"]
