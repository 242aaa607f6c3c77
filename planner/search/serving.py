"""Serving plan search: the best aggregated and disaggregated deployments under TTFT / TPOT SLOs.

**Aggregated.** For every worker layout (tensor parallel ``tp`` within the
scale-up domain; for MoE models also attention data parallelism ``dp`` with the
experts spread over the same ``tp x dp`` GPUs; each precision the GPU runs) the
largest concurrency whose predicted TTFT and TPOT meet the SLOs is found by
bisection (both grow with concurrency in the model), and the layout is scored
by output tokens/s per GPU at that concurrency.

**Disaggregated.** Prefill workers are scored by the prefill throughput they
sustain while TTFT (batched prefill + KV transfer + queueing) meets its SLO;
decode workers by the largest batch whose TPOT meets its SLO. A pair of
layouts is combined in the ratio ``y / x`` of prefill to decode workers that
keeps the prefill pool from becoming the bottleneck:
``y = ceil(x lambda_d / mu_p)`` with ``lambda_d`` the request rate of one
decode worker and ``mu_p`` the rate one prefill worker sustains; the pair's
score is output tokens/s per GPU over both pools.

**Capacity.** With a request rate, the replicas (aggregated workers or
disaggregated groups) needed are ``ceil(rate / requests per second of one)``;
without, as many as ``--gpus`` holds.

The Pareto front of throughput per GPU vs tokens/s per user comes from the
best aggregated layouts over the concurrencies that meet the SLOs.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, Field

from ..errors import PlannerError
from ..cost.serving import ServingEstimate, ServingError, ServingPlan, estimate_serving
from ..specs.hardware import System
from ..specs.model import ModelSpec


class SLOError(PlannerError):
    """No serving plan meets the SLOs; the message says which binds and the best reachable value."""


class AggChoice(BaseModel):
    estimate: ServingEstimate
    replicas: int
    gpus: int
    cost_per_million_tokens_usd: float | None


class DisaggChoice(BaseModel):
    prefill_plan: ServingPlan = Field(description="the layout of one prefill worker")
    estimate: ServingEstimate = Field(description="one group: the decode worker at its batch with its prefill workers")
    decode: ServingEstimate = Field(description="a decode worker at its batch")
    prefill_workers: int
    decode_workers: int
    groups: int
    gpus: int
    ttft_ms: float
    tpot_ms: float
    tokens_per_s_per_gpu: float
    tokens_per_s_per_user: float
    cost_per_million_tokens_usd: float | None


class ServeSearchResult(BaseModel):
    aggregated: AggChoice | None
    disaggregated: DisaggChoice | None
    best: Literal["aggregated", "disaggregated"]
    pareto: list[ServingEstimate]
    layouts: int
    estimates: int
    elapsed_s: float


@dataclass(frozen=True)
class _Job:
    model: ModelSpec
    system: System
    isl: int
    osl: int
    ttft_s: float
    tpot_s: float


def _layouts(model: ModelSpec, system: System, precisions: tuple[str, ...], backend: str, max_gpus: int
             ) -> list[ServingPlan]:
    dom = system.node.scale_up_domain
    out = []
    tps = [t for t in (1, 2, 4, 8, 16, 32, 64, 72) if t <= max(1, dom) and t <= max_gpus]
    for prec in precisions:
        for tp in tps:
            dps = [1]
            if model.is_moe:
                dps += [d for d in (2, 4, 8, 16, 32, 64) if tp * d <= max(dom, 8) and tp * d <= max_gpus]
            for dp in dps:
                mesh = tp * dp
                if model.is_moe and model.moe.num_experts % mesh:  # type: ignore[union-attr]
                    continue
                out.append(ServingPlan(tp=tp, dp=dp, ep=mesh if model.is_moe else None,
                                       moe_tp=1 if model.is_moe else None, precision=prec, backend=backend))  # type: ignore[arg-type]
    return out


def _max_concurrency(job: _Job, plan: ServingPlan, counter: list[int], ttft_limit: bool = True
                     ) -> tuple[ServingEstimate | None, ServingEstimate | None]:
    """(the estimate at the largest concurrency meeting the SLOs, the estimate at concurrency 1).
    Without ``ttft_limit`` the worker is a disaggregated decode worker (no prefills mixed in)."""
    mode = "agg" if ttft_limit else "disagg"

    def est(c: int) -> ServingEstimate:
        counter[0] += 1
        return estimate_serving(job.model, job.system, plan, job.isl, job.osl, c, mode=mode)  # type: ignore[arg-type]

    def ok(e: ServingEstimate) -> bool:
        return e.fits and e.tpot_ms <= job.tpot_s * 1e3 and (not ttft_limit or e.ttft_ms <= job.ttft_s * 1e3)

    try:
        first = est(1)
    except ServingError:
        return None, None
    if not ok(first):
        return None, first
    hi = max(1, first.memory.max_concurrency)
    lo, best = 1, first
    while lo < hi:  # bisection on a monotone predicate
        mid = (lo + hi + 1) // 2
        e = est(mid)
        if ok(e):
            lo, best = mid, e
        else:
            hi = mid - 1
    return best, first


def _cost(system: System, gpus: int, tokens_per_s: float) -> float | None:
    price = system.accelerator.price_per_hour_usd
    if price is None or tokens_per_s <= 0:
        return None
    return gpus * price / 3600.0 / tokens_per_s * 1e6


def search_serving(model: ModelSpec, system: System, gpus: int, isl: int, osl: int, ttft_ms: float, tpot_ms: float,
                   rate: float | None = None, precisions: tuple[str, ...] | None = None, backend: str = "trtllm",
                   disagg: Literal["auto", "on", "off"] = "auto",
                   objective: Literal["throughput", "cost"] = "throughput") -> ServeSearchResult:
    """Best aggregated and disaggregated plans (module docstring). Raises :class:`SLOError`."""
    t0 = time.perf_counter()
    for v, name in ((gpus, "--gpus"), (isl, "--isl"), (osl, "--osl"), (ttft_ms, "--ttft"), (tpot_ms, "--tpot")):
        if v <= 0:
            raise ValueError(f"{name} must be positive, got {v}")
    if rate is not None and rate <= 0:
        raise ValueError(f"--rate must be positive, got {rate}")
    if precisions is None:
        acc = system.accelerator
        precisions = tuple(p for p in ("bf16", "fp8", "fp4") if p == "bf16" or acc.has_native(p))
    job = _Job(model, system, isl, osl, ttft_ms / 1e3, tpot_ms / 1e3)
    counter = [0]
    layouts = _layouts(model, system, precisions, backend, gpus)
    best_ttft = best_tpot = math.inf
    agg_best: tuple[float, ServingEstimate] | None = None
    front_pts: list[ServingEstimate] = []
    if disagg != "on":
        for plan in layouts:
            e, first = _max_concurrency(job, plan, counter)
            if first is not None:
                best_ttft, best_tpot = min(best_ttft, first.ttft_ms), min(best_tpot, first.tpot_ms)
            if e is None:
                continue
            front_pts.append(e)
            c = 1
            while c < e.concurrency:  # the layout's curve: throughput vs speed per user
                counter[0] += 1
                front_pts.append(estimate_serving(model, system, plan, isl, osl, c))
                c *= 2
            score = e.tokens_per_s_per_gpu if objective == "throughput" else -(_cost(system, 1, e.tokens_per_s_per_gpu) or 0)
            if agg_best is None or score > agg_best[0]:
                agg_best = (score, e)
    agg = None
    if agg_best is not None:
        e = agg_best[1]
        per = e.plan.gpus
        replicas = max(1, gpus // per) if rate is None else math.ceil(rate / e.requests_per_s)
        agg = AggChoice(estimate=e, replicas=replicas, gpus=replicas * per,
                        cost_per_million_tokens_usd=_cost(system, per, e.tokens_per_s_per_gpu * per))
    dis = _disaggregated(job, layouts, gpus, rate, counter) if disagg != "off" else None
    if agg is None and dis is None:
        raise SLOError(_why(job, best_ttft, best_tpot, disagg))
    choose = "aggregated" if dis is None or (agg is not None and
                                             agg.estimate.tokens_per_s_per_gpu >= dis.tokens_per_s_per_gpu) else "disaggregated"
    return ServeSearchResult(aggregated=agg, disaggregated=dis, best=choose, pareto=_front(front_pts),
                             layouts=len(layouts), estimates=counter[0], elapsed_s=time.perf_counter() - t0)


def _disaggregated(job: _Job, layouts: list[ServingPlan], gpus: int, rate: float | None,
                   counter: list[int]) -> DisaggChoice | None:
    # decode workers: the largest batch meeting TPOT (prefill happens elsewhere)
    decodes = []
    for plan in layouts:
        d, _ = _max_concurrency(job, plan, counter, ttft_limit=False)
        if d is not None:
            decodes.append(d)
    if not decodes:
        return None
    decodes.sort(key=lambda d: -d.tokens_per_s_per_gpu)
    best: DisaggChoice | None = None
    for d in decodes[:3]:
        lam_d = d.concurrency / (max(0, job.osl - 1) * d.tpot_ms / 1e3 + d.breakdown["prefill_s"])
        for p in layouts:
            if p.precision != d.plan.precision:
                continue
            for pw in range(1, 65):  # prefill workers per decode worker group of x decode workers
                counter[0] += 1
                e = estimate_serving(job.model, job.system, d.plan, job.isl, job.osl, d.concurrency, mode="disagg",
                                     prefill_plan=p, prefill_batch=1, prefill_workers=pw, decode_workers=1)
                if e.ttft_ms <= job.ttft_s * 1e3:
                    break
            else:
                continue
            g = d.plan.gpus + pw * p.gpus
            if rate is None and g > gpus:
                continue
            tps = lam_d * job.osl / g
            groups = max(1, gpus // g) if rate is None else math.ceil(rate / lam_d)
            cand = DisaggChoice(prefill_plan=p, estimate=e, decode=d, prefill_workers=pw * groups, decode_workers=groups, groups=groups,
                                gpus=g * groups, ttft_ms=e.ttft_ms, tpot_ms=d.tpot_ms, tokens_per_s_per_gpu=tps,
                                tokens_per_s_per_user=1e3 / d.tpot_ms,
                                cost_per_million_tokens_usd=_cost(job.system, g, tps * g))
            if best is None or cand.tokens_per_s_per_gpu > best.tokens_per_s_per_gpu:
                best = cand
    return best


def _front(points: list[ServingEstimate]) -> list[ServingEstimate]:
    pts = sorted(points, key=lambda e: (-e.tokens_per_s_per_user, -e.tokens_per_s_per_gpu))
    out, best = [], -math.inf
    for e in pts:
        if e.tokens_per_s_per_gpu > best:
            out.append(e)
            best = e.tokens_per_s_per_gpu
    return out


def _why(job: _Job, best_ttft: float, best_tpot: float, disagg: str) -> str:
    parts = []
    if best_tpot > job.tpot_s * 1e3:
        parts.append(f"TPOT <= {job.tpot_s * 1e3:g} ms: the fastest plan reaches {best_tpot:.1f} ms at concurrency 1")
    if best_ttft > job.ttft_s * 1e3:
        parts.append(f"TTFT <= {job.ttft_s * 1e3:g} ms: the fastest plan reaches {best_ttft:.1f} ms at concurrency 1")
    if not parts:
        return f"no {'disaggregated ' if disagg == 'on' else ''}plan meets the SLOs on {job.system.name}"
    return f"no plan for {job.model.name} on {job.system.name} meets " + " and ".join(parts)


__all__ = ["AggChoice", "DisaggChoice", "SLOError", "ServeSearchResult", "search_serving"]
