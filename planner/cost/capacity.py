"""How many requests per second one worker sustains within TTFT / TPOT SLOs at a quantile, under random
(Poisson) arrivals: the per-type capacities of the GPU-mix program (Mélange profiles them on real GPUs;
here they come from the serving model).

A deployment sized for a traffic level sees requests arrive at random, not the benchmark's closed loop, so
the open-loop model is used (:func:`planner.cost.serving.estimate_serving_at_rate`: M/D/1 prompt queue,
Little's law for the requests in flight; its terms, :func:`planner.cost.serving.open_loop_terms`). Its times are means; the SLOs hold at a quantile ``q`` (0.9)
of the requests:

* the prompt queue's wait: zero with probability ``1 - rho``, else about exponential with the mean that
  makes the M/D/1 mean ``W`` (the exponential tail of M/G/1 waits, Kingman), so its ``q`` quantile is
  ``(W / rho) ln(rho / (1 - q))`` when ``rho > 1 - q`` and 0 below;
* the wait for the decode iteration in flight is uniform over the iteration: its ``q`` quantile is
  ``2 q`` times its mean;
* TPOT at the ``q`` quantile of the requests in flight, ``N + z_q sqrt(N)`` (Poisson, normal
  approximation, ``z_0.9 = 1.2816``), the decode step at that batch;
* the KV cache holds the 99th percentile of the requests in flight (as ``estimate_serving_at_rate``), and
  one request of the longest length of the bucket.

``TTFT_q`` and ``TPOT_q`` grow with the rate, so the capacity is found by bisection (in log rate, to 0.2 %).
Disaggregated workers: a *prefill* worker's capacity is the prompts/s whose M/D/1 wait at the quantile,
plus the prompt's prefill and the KV transfer, stays within the TTFT SLO; a *decode* worker's, the
requests/s whose TPOT at the quantile of its batch stays within the TPOT SLO (no prefills mixed in).

Power (:mod:`planner.cost.power`): a worker at its capacity draws its GPUs' active power at the batch and
prefill share of that operating point.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..specs.hardware import System
from ..specs.model import ModelSpec
from .power import BUSY, IDLE, capped_clock, serving_power_w
from .serving import (BACKENDS, ServingError, ServingPlan, decode_step_s, first_token_prefill_s, kv_dtype_bytes,
                      longest_request_fits, open_loop_terms, prefill_s, serving_memory)

QUANTILE = 0.9
Z_QUANTILE = 1.2816  # standard normal 0.9 quantile
_BISECT_STEPS = 12
_RATE_FLOOR = 1e-4  # the lowest rate tried, as a fraction of the prefill-bound rate


@dataclass(frozen=True)
class Capacity:
    """One worker's requests/s within the SLOs (0 when none) and its operating point there."""

    rate_rps: float
    ttft_ms: float  # at the quantile, at that rate (prefill worker: with the KV transfer)
    tpot_ms: float
    in_flight: float  # mean requests in flight
    prefill_share: float
    power_w: float  # the worker's GPUs at that rate
    idle_w: float
    best_ttft_ms: float = math.inf  # at the lowest rate: the best the worker reaches
    best_tpot_ms: float = math.inf
    reason: str = ""


def quantile_wait(mean_wait_s: float, rho: float, q: float = QUANTILE) -> float:
    """The ``q`` quantile of an M/G/1 queue's wait from its mean (exponential tail; module docstring)."""
    if rho <= 1.0 - q or mean_wait_s <= 0:
        return 0.0
    return mean_wait_s / rho * math.log(rho / (1.0 - q))


def _grid(batch: float) -> tuple[int, int, float]:
    """The decode-step grid around ``batch``: every batch up to 16, then steps of 1/8 of a power of two
    (17, 18, 20, 22, 24, ... at most 12.5 % apart): (lower, upper, weight of upper)."""
    b = max(1.0, batch)
    if b <= 16:
        lo = int(math.floor(b))
        return lo, lo + 1, b - lo
    unit = 2 ** (int(math.log2(b)) - 3)
    lo = int(b // unit * unit)
    return lo, lo + unit, (b - lo) / unit


def decode_step_fn(model: ModelSpec, system: System, plan: ServingPlan, context: int):
    """``step(batch)``: the decode step (:func:`planner.cost.serving.decode_step_s`) at mean ``context``, exact at
    the batches of :func:`_grid` and linear between them (a capacity search visits thousands of batches)."""
    cache: dict[int, float] = {}

    def at(b: int) -> float:
        if b not in cache:
            cache[b] = decode_step_s(model, system, plan, b, context)["step"]
        return cache[b]

    def step(batch: float) -> float:
        lo, hi, w = _grid(batch)
        return at(lo) if w <= 0 else (1.0 - w) * at(lo) + w * at(hi)

    return step


def capped_system(system: System, cap_fraction: float | None) -> System:
    """``system`` with its GPUs capped at ``cap_fraction`` of TDP: the tensor-core rates scaled by the clock the cap
    leaves a compute-bound GPU (:func:`planner.cost.power.capped_clock` at the busy draw); memory bandwidth kept."""
    if cap_fraction is None or cap_fraction >= BUSY:
        return system
    f = capped_clock(BUSY, cap_fraction)
    acc = system.accelerator
    flops = {k: v * f for k, v in acc.peak_flops.items()}
    return system.model_copy(update={"name": system.name, "accelerator": acc.model_copy(update={"peak_flops": flops})})


def _bisect(ok, hi: float) -> tuple[float, object]:
    """The largest rate in ``[hi * _RATE_FLOOR, hi]`` with ``ok(rate)`` true (``ok`` returns a result or None,
    monotone: true below some rate), by bisection in log rate; ``(0, None)`` when even the lowest fails."""
    lo = hi * _RATE_FLOOR
    res = ok(hi)
    if res is not None:
        return hi, res
    best = ok(lo)
    if best is None:
        return 0.0, None
    a, b = math.log(lo), math.log(hi)
    for _ in range(_BISECT_STEPS):
        mid = 0.5 * (a + b)
        r = ok(math.exp(mid))
        if r is None:
            b = mid
        else:
            a, best = mid, r
    return math.exp(a), best


def _power(system: System, plan: ServingPlan, in_flight: float, prefill_share: float,
           cap_fraction: float | None) -> tuple[float, float]:
    acc = system.accelerator
    per_gpu = serving_power_w(acc, in_flight / plan.dp, prefill_share, 1.0, cap_fraction)
    return per_gpu * plan.gpus, acc.tdp_w * IDLE * plan.gpus


def aggregated_capacity(model: ModelSpec, system: System, plan: ServingPlan, isl: int, osl: int, longest: int,
                        ttft_ms: float, tpot_ms: float, cap_fraction: float | None = None) -> Capacity:
    """Requests/s one aggregated worker sustains with TTFT and TPOT at the quantile within the SLOs."""
    sys_c = capped_system(system, cap_fraction)
    mem = serving_memory(model, sys_c, plan, isl, osl)
    idle = system.accelerator.tdp_w * IDLE * plan.gpus
    if mem.max_concurrency < 1 or not longest_request_fits(model, plan, mem, longest):
        return Capacity(0.0, math.inf, math.inf, 0.0, 0.0, 0.0, idle, reason="the longest request does not fit")
    consts = BACKENDS[plan.backend]
    context = isl + osl // 2
    t_pf = prefill_s(model, sys_c, plan, 1, isl)
    t_first = first_token_prefill_s(model, sys_c, plan, 1, isl)
    step = decode_step_fn(model, sys_c, plan, context)

    def at(rate: float):
        # the terms of estimate_serving_at_rate, without building an estimate per trial rate
        try:
            terms, _, n, rho = open_loop_terms(t_pf, t_first, step, osl, rate, consts, plan.dp)
        except ServingError:
            return None
        ttft = (terms["ttft_prefill_s"] + terms["ttft_overhead_s"] + quantile_wait(terms["ttft_queue_s"], rho)
                + 2.0 * QUANTILE * terms["ttft_iteration_s"])
        tpot = step(n + Z_QUANTILE * math.sqrt(n)) / max(0.05, 1.0 - consts.prefill_mix * rho)
        fits = n + 2.33 * math.sqrt(n) <= mem.max_concurrency  # the 99th percentile in flight, as at_rate's "fits"
        return fits, ttft, tpot, n, rho

    low = at(plan.dp / t_pf * _RATE_FLOOR)
    best_ttft, best_tpot = (low[1] * 1e3, low[2] * 1e3) if low else (math.inf, math.inf)

    def ok(rate: float):
        r = at(rate)
        if r is None:
            return None
        fits, ttft, tpot, _, _ = r
        return r if (fits and ttft * 1e3 <= ttft_ms and tpot * 1e3 <= tpot_ms) else None

    rate, res = _bisect(ok, 0.999 * plan.dp / t_pf)
    if res is None:
        why = []
        if best_ttft > ttft_ms:
            why.append(f"TTFT {best_ttft:,.0f} ms")
        if best_tpot > tpot_ms:
            why.append(f"TPOT {best_tpot:,.1f} ms")
        return Capacity(0.0, math.inf, math.inf, 0.0, 0.0, 0.0, idle, best_ttft, best_tpot,
                        reason=("best reachable " + ", ".join(why)) if why else "the KV cache cannot hold the requests")
    _, ttft, tpot, n, rho = res
    power, idle = _power(system, plan, n, rho, cap_fraction)
    return Capacity(rate, ttft * 1e3, tpot * 1e3, n, rho, power, idle, best_ttft, best_tpot)


def kv_transfer_s(model: ModelSpec, prefill_system: System, prefill_plan: ServingPlan, decode_system: System,
                  decode_plan: ServingPlan, isl: int) -> float:
    """Seconds to move one prompt's KV cache from a prefill worker to a decode worker: its bytes over the
    slower side's network (each GPU's NIC, over the worker's GPUs within a node) plus the network latency."""
    nbytes = isl * model.kv_cache_bytes_per_token(kv_dtype_bytes(prefill_plan))
    bw = min(s.node.nic_bandwidth_bytes_per_s * min(p.gpus, s.node.accelerators_per_node)
             for s, p in ((prefill_system, prefill_plan), (decode_system, decode_plan)))
    return nbytes / bw + max(prefill_system.node.network_latency_s, decode_system.node.network_latency_s)


def prefill_capacity(model: ModelSpec, system: System, plan: ServingPlan, isl: int, osl: int, longest: int,
                     ttft_budget_ms: float, cap_fraction: float | None = None) -> Capacity:
    """Prompts/s one prefill worker takes with its queue wait at the quantile plus the prefill within
    ``ttft_budget_ms`` (the TTFT SLO less the KV transfer)."""
    sys_c = capped_system(system, cap_fraction)
    mem = serving_memory(model, sys_c, plan, isl, osl)
    idle = system.accelerator.tdp_w * IDLE * plan.gpus
    if mem.max_concurrency < 1 or not longest_request_fits(model, plan, mem, longest):
        return Capacity(0.0, math.inf, 0.0, 0.0, 0.0, 0.0, idle, reason="the longest request does not fit")
    t_pf = prefill_s(model, sys_c, plan, 1, isl)
    t_first = first_token_prefill_s(model, sys_c, plan, 1, isl)
    budget = ttft_budget_ms / 1e3 - t_first
    if budget < 0:
        return Capacity(0.0, math.inf, 0.0, 0.0, 0.0, 0.0, idle, t_first * 1e3, 0.0,
                        reason=f"best reachable TTFT {t_first * 1e3:,.0f} ms (prefill)")

    def ok(rate: float):
        rho = rate * t_pf / plan.dp
        if rho >= 1.0:
            return None
        wait = quantile_wait(rho * t_pf / (2.0 * (1.0 - rho)), rho)
        return (wait, rho) if wait <= budget else None

    rate, res = _bisect(ok, 0.999 * plan.dp / t_pf)
    if res is None:
        return Capacity(0.0, math.inf, 0.0, 0.0, 0.0, 0.0, idle, t_first * 1e3, 0.0, reason="prefill queue")
    wait, rho = res
    acc = system.accelerator
    frac = IDLE + rho * (BUSY - IDLE)
    if cap_fraction is not None:
        frac = min(frac, cap_fraction)
    return Capacity(rate, (t_first + wait) * 1e3, 0.0, rho * plan.dp, rho, acc.tdp_w * frac * plan.gpus, idle,
                    t_first * 1e3, 0.0)


def decode_capacity(model: ModelSpec, system: System, plan: ServingPlan, isl: int, osl: int, longest: int,
                    tpot_ms: float, cap_fraction: float | None = None) -> Capacity:
    """Requests/s one decode worker completes with TPOT at the quantile of its batch within the SLO (prompts
    prefilled elsewhere); its KV cache holds the 99th percentile of the requests in flight."""
    sys_c = capped_system(system, cap_fraction)
    mem = serving_memory(model, sys_c, plan, isl, osl)
    idle = system.accelerator.tdp_w * IDLE * plan.gpus
    if mem.max_concurrency < 1 or not longest_request_fits(model, plan, mem, longest):
        return Capacity(0.0, 0.0, math.inf, 0.0, 0.0, 0.0, idle, reason="the longest request does not fit")
    context = isl + osl // 2
    steps = max(1, osl - 1)
    step = decode_step_fn(model, sys_c, plan, context)

    def at(rate: float):
        n = rate * steps * step(1)
        for _ in range(100):
            new = rate * steps * step(n)
            if new > mem.max_concurrency * 4:
                return None
            if abs(new - n) <= 1e-6 * max(1.0, n):
                n = new
                break
            n = 0.5 * (n + new)
        tpot = step(n + Z_QUANTILE * math.sqrt(n))
        fits = n + 2.33 * math.sqrt(n) <= mem.max_concurrency
        return (n, tpot) if fits else None

    best_tpot = step(1) * 1e3

    def ok(rate: float):
        r = at(rate)
        return r if r is not None and r[1] * 1e3 <= tpot_ms else None

    # a decode worker completes at most max_concurrency / (steps x step(1)) requests/s
    rate, res = _bisect(ok, mem.max_concurrency / (steps * step(1)))
    if res is None:
        return Capacity(0.0, 0.0, math.inf, 0.0, 0.0, 0.0, idle, 0.0, best_tpot,
                        reason=f"best reachable TPOT {best_tpot:,.1f} ms")
    n, tpot = res
    power, idle = _power(system, plan, n, 0.0, cap_fraction)
    return Capacity(rate, 0.0, tpot * 1e3, n, 0.0, power, idle, 0.0, best_tpot)


__all__ = ["Capacity", "QUANTILE", "aggregated_capacity", "capped_system", "decode_capacity", "kv_transfer_s",
           "prefill_capacity", "quantile_wait"]
