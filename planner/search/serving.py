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
``y >= ceil(x lambda_d / mu_p)`` with ``lambda_d`` the request rate of one
decode worker and ``mu_p = dp / T_prefill`` the rate one prefill worker sustains,
and more prefill workers while TTFT misses its SLO; the pair's
score is output tokens/s per GPU over both pools.

**Capacity.** With a request rate, the replicas (aggregated workers or
disaggregated groups) needed are ``ceil(rate / requests per second of one)``,
and among the layouts meeting the SLOs the one needing the fewest GPUs for the
rate is chosen (ties: throughput per GPU), so a deployment takes only what the
rate needs; a rate that needs more GPUs than ``--gpus`` is refused, saying how
many it needs. Without a rate, as many replicas as ``--gpus`` holds.

**Feasibility.** Only layouts that can run are proposed: the heads, layers and
experts divide as :func:`~planner.cost.serving.check_serving_plan` requires
(no ``tp 72`` for 64 heads), the engine can launch the layout as planned (TensorRT-LLM's attention data
parallelism runs attention with TP 1 on every rank, so with ``trtllm`` a MoE worker has ``tp > 1`` or
``dp > 1``, not both: :func:`planner.export.engines.trtllm_launch`), and every worker, prefill workers included,
holds its weights, workspace and the KV cache of at least one request of the
longest length asked for (``max_request_tokens``) in the engine's usable memory.

The Pareto front of throughput per GPU vs tokens/s per user comes from the
best aggregated layouts over the concurrencies that meet the SLOs.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, Field

from ..cost.serving import (
    ServingError,
    ServingEstimate,
    ServingPlan,
    check_serving_plan,
    estimate_serving,
    longest_request_fits,
    prefill_s,
    serving_memory,
)
from ..errors import PlannerError
from ..results import ResultMixin
from ..limits import MAX_GPUS, MAX_RATE, MAX_REQUEST_TOKENS, MAX_SLO_S, check_int, check_number
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


class ServeSearchResult(ResultMixin, BaseModel):
    aggregated: AggChoice | None
    disaggregated: DisaggChoice | None
    best: Literal["aggregated", "disaggregated"]
    pareto: list[ServingEstimate]
    layouts: int
    estimates: int
    elapsed_s: float
    plan_documents: dict[str, dict[str, Any]] | None = Field(
        None, description="the serving plan document of each answer (\"aggregated\", \"disaggregated\"), filled "
        "and checked by planner.search_serve")
    plan_document: dict[str, Any] | None = Field(None, description="the best answer's plan document")

    def _summary(self) -> str:
        a, d = self.aggregated, self.disaggregated
        parts = []
        if a is not None:
            e = a.estimate
            parts.append(f"aggregated {a.replicas} x tp {e.plan.tp} dp {e.plan.dp} {e.plan.precision} ({a.gpus} GPUs): "
                         f"TTFT {e.ttft_ms:,.0f} ms, TPOT {e.tpot_ms:,.1f} ms, {e.tokens_per_s_per_gpu:,.0f} tokens/s/GPU")
        if d is not None:
            parts.append(f"disaggregated {d.groups} group(s) ({d.gpus} GPUs): TTFT {d.ttft_ms:,.0f} ms, TPOT "
                         f"{d.tpot_ms:,.1f} ms, {d.tokens_per_s_per_gpu:,.0f} tokens/s/GPU")
        return f"best {self.best}; " + "; ".join(parts)

    def _rows(self) -> list[dict[str, Any]]:
        return [{"tp": e.plan.tp, "dp": e.plan.dp, "precision": e.plan.precision, "concurrency": e.concurrency,
                 "ttft_ms": e.ttft_ms, "tpot_ms": e.tpot_ms, "tokens_per_s_per_gpu": e.tokens_per_s_per_gpu,
                 "tokens_per_s_per_user": e.tokens_per_s_per_user} for e in self.pareto]


@dataclass(frozen=True)
class _Job:
    model: ModelSpec
    system: System
    isl: int
    osl: int
    ttft_s: float
    tpot_s: float
    max_request_tokens: int = 0  # the longest request (prompt + output) a worker must hold


def _runs(job: _Job, plan: ServingPlan) -> bool:
    """Whether a worker of ``plan`` can run the job: degrees divide the model (``check_serving_plan``) and its
    weights, workspace and the KV cache of one request of the longest length fit the usable memory."""
    try:
        check_serving_plan(job.model, job.system, plan)
    except ServingError:
        return False
    mem = serving_memory(job.model, job.system, plan, job.isl, job.osl)
    longest = max(job.max_request_tokens, job.isl + job.osl)
    return mem.max_concurrency >= 1 and longest_request_fits(job.model, plan, mem, longest)


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
                if backend == "trtllm" and tp > 1 and dp > 1:  # TensorRT-LLM's attention DP runs attention TP 1
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


def _check_search(model: ModelSpec, system: System, gpus: int, isl: int, osl: int, ttft_ms: float, tpot_ms: float,
                  rate: float | None, precisions: tuple[str, ...] | None, backend: str, disagg: str, objective: str,
                  max_request_tokens: int | None) -> None:
    """Every argument of :func:`search_serving` in its domain (finite, with its sign and the bounds of
    :mod:`planner.limits`), or one :class:`ServingError` line naming it."""
    if not isinstance(model, ModelSpec) or not isinstance(system, System):
        raise ServingError("search_serving takes a ModelSpec and a System (planner.get_model / planner.get_system)")
    try:
        check_int(gpus, "gpus", hi=MAX_GPUS)
        check_int(isl, "isl", hi=MAX_REQUEST_TOKENS)
        check_int(osl, "osl", hi=MAX_REQUEST_TOKENS)
        check_number(ttft_ms, "TTFT SLO (ms)", hi=MAX_SLO_S * 1e3)
        check_number(tpot_ms, "TPOT SLO (ms)", hi=MAX_SLO_S * 1e3)
        if rate is not None:
            check_number(rate, "rate (requests/s)", hi=MAX_RATE)
        if max_request_tokens is not None:
            check_int(max_request_tokens, "max_request_tokens", hi=2 * MAX_REQUEST_TOKENS)
    except PlannerError as exc:
        raise ServingError(str(exc)) from None
    for value, name, allowed in ((backend, "backend", ("trtllm", "vllm", "sglang")),
                                 (disagg, "disagg", ("auto", "on", "off")),
                                 (objective, "objective", ("throughput", "cost"))):
        if value not in allowed:
            raise ServingError(f"unknown {name} {value!r}; choose {', '.join(allowed)}"[:300])
    if precisions is not None:
        if not isinstance(precisions, (tuple, list)) or not precisions:
            raise ServingError(f"precisions must be a non-empty tuple such as ('bf16',), got {precisions!r}"[:300])
        for prec in precisions:
            if prec not in ("bf16", "fp16", "fp8", "int4", "fp4"):
                raise ServingError(f"unknown precision {prec!r}; choose bf16, fp16, fp8, int4 or fp4"[:300])


def search_serving(model: ModelSpec, system: System, gpus: int, isl: int, osl: int, ttft_ms: float, tpot_ms: float,
                   rate: float | None = None, precisions: tuple[str, ...] | None = None, backend: str = "trtllm",
                   disagg: Literal["auto", "on", "off"] = "auto",
                   objective: Literal["throughput", "cost"] = "throughput",
                   max_request_tokens: int | None = None) -> ServeSearchResult:
    """Best aggregated and disaggregated plans (module docstring). ``max_request_tokens``: the longest request
    (prompt + output, e.g. a trace's) every worker must hold [default: ``isl + osl``]. Raises :class:`SLOError`."""
    t0 = time.perf_counter()
    _check_search(model, system, gpus, isl, osl, ttft_ms, tpot_ms, rate, precisions, backend, disagg, objective,
                  max_request_tokens)
    if precisions is None:
        acc = system.accelerator
        precisions = tuple(p for p in ("bf16", "fp8", "fp4") if p == "bf16" or acc.has_native(p))
    job = _Job(model, system, isl, osl, ttft_ms / 1e3, tpot_ms / 1e3, max(max_request_tokens or 0, isl + osl))
    counter = [0]
    layouts = [p for p in _layouts(model, system, precisions, backend, gpus) if _runs(job, p)]
    if not layouts:
        raise SLOError(f"no worker layout of up to {gpus} x {system.name} ({', '.join(precisions)}) holds "
                       f"{model.name}'s weights and the KV cache of one request of {job.max_request_tokens} "
                       f"tokens (the longest the engines are sized for)")
    best_ttft = best_tpot = math.inf
    agg_best: tuple[tuple[float, ...], ServingEstimate] | None = None
    need: list[int] = []  # GPUs the rate needs, per layout that meets the SLOs but not the GPU budget
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
            key: tuple[float, ...] = (score,)
            if rate is not None:  # the fewest GPUs that serve the rate, then the score
                used = math.ceil(rate / e.requests_per_s) * e.plan.gpus
                if used > gpus:
                    need.append(used)
                    continue
                key = (-used, score)
            if agg_best is None or key > agg_best[0]:
                agg_best = (key, e)
    agg = None
    if agg_best is not None:
        e = agg_best[1]
        per = e.plan.gpus
        replicas = max(1, gpus // per) if rate is None else math.ceil(rate / e.requests_per_s)
        agg = AggChoice(estimate=e, replicas=replicas, gpus=replicas * per,
                        cost_per_million_tokens_usd=_cost(system, per, e.tokens_per_s_per_gpu * per))
    dis = _disaggregated(job, layouts, gpus, rate, counter, need) if disagg != "off" else None
    if agg is None and dis is None:
        if need and rate is not None:
            raise SLOError(f"serving {rate:g} requests/s of {model.name} within the SLOs needs at least {min(need)} x "
                           f"{system.name}; --gpus is {gpus}")
        raise SLOError(_why(job, best_ttft, best_tpot, disagg))
    if rate is not None and agg is not None and dis is not None:  # the fewest GPUs, then throughput per GPU
        pick_agg = (agg.gpus, -agg.estimate.tokens_per_s_per_gpu) <= (dis.gpus, -dis.tokens_per_s_per_gpu)
    else:
        pick_agg = dis is None or (agg is not None and agg.estimate.tokens_per_s_per_gpu >= dis.tokens_per_s_per_gpu)
    choose = "aggregated" if pick_agg else "disaggregated"
    return ServeSearchResult(aggregated=agg, disaggregated=dis, best=choose, pareto=_front(front_pts),
                             layouts=len(layouts), estimates=counter[0], elapsed_s=time.perf_counter() - t0)


def _disaggregated(job: _Job, layouts: list[ServingPlan], gpus: int, rate: float | None,
                   counter: list[int], need: list[int]) -> DisaggChoice | None:
    # decode workers: the largest batch meeting TPOT (prefill happens elsewhere)
    decodes = []
    for plan in layouts:
        d, _ = _max_concurrency(job, plan, counter, ttft_limit=False)
        if d is not None:
            decodes.append(d)
    if not decodes:
        return None
    decodes.sort(key=lambda d: -d.tokens_per_s_per_gpu)
    tried = decodes[:3]
    if rate is not None:  # also the decode layouts needing the fewest GPUs for the rate
        fewest = sorted(decodes, key=lambda d: (math.ceil(rate / _decode_rate(job, d)) * d.plan.gpus,
                                                -d.tokens_per_s_per_gpu))
        tried += [d for d in fewest[:3] if d not in tried]
    best: DisaggChoice | None = None
    best_key: tuple[float, ...] = ()
    for d in tried:
        lam_d = _decode_rate(job, d)
        for p in layouts:
            if p.precision != d.plan.precision:
                continue
            # the prefill workers must prefill what the decode worker completes: pw dp / T_pf >= lambda_d
            # (below that the prompt queue grows without bound at the rate the group is sized for)
            need_pw = max(1, math.ceil(lam_d * prefill_s(job.model, job.system, p, 1, job.isl) / p.dp - 1e-9))
            for pw in range(need_pw, 65):  # prefill workers per decode worker, fewest first
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
            if g * groups > gpus:
                need.append(g * groups)
                continue
            cand = DisaggChoice(prefill_plan=p, estimate=e, decode=d, prefill_workers=pw * groups, decode_workers=groups, groups=groups,
                                gpus=g * groups, ttft_ms=e.ttft_ms, tpot_ms=d.tpot_ms, tokens_per_s_per_gpu=tps,
                                tokens_per_s_per_user=1e3 / d.tpot_ms,
                                cost_per_million_tokens_usd=_cost(job.system, g, tps * g))
            key = (cand.tokens_per_s_per_gpu,) if rate is None else (-cand.gpus, cand.tokens_per_s_per_gpu)
            if best is None or key > best_key:
                best, best_key = cand, key
    return best


def _decode_rate(job: _Job, d: ServingEstimate) -> float:
    """Requests per second one decode worker completes at its batch: ``C / ((osl - 1) TPOT + prefill)``."""
    return d.concurrency / (max(0, job.osl - 1) * d.tpot_ms / 1e3 + d.breakdown["prefill_s"])


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
