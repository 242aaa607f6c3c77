"""The semantic rules of a serving plan document (:class:`~planner.plans.documents.ServingDocument`), run by the
gate (:func:`planner.plans.check`) against the model and hardware the document embeds.

Memory per GPU of a worker at concurrency ``C`` (:func:`pool_memory`), by the serving model's own account
(:func:`planner.cost.serving.serving_memory`)::

    peak = weights + workspace + ceil(C / dp) x KV bytes of one request of isl + osl tokens

within the usable memory (the engine's memory fraction of the GPU), i.e. ``C <= max_concurrency``.
"""

from __future__ import annotations

import math
from typing import NamedTuple

from ..cost.serving import (
    ServingPlan,
    check_serving_plan,
    estimate_serving,
    kv_bytes_per_request_per_gpu,
    longest_request_fits,
    serving_memory,
)
from ..specs.hardware import System
from ..specs.model import ModelSpec
from .documents import ServingDocument, ServingPool
from .refs import PlanCheckError, check_name, close, model_from_spec, system_from_spec

_SLACK = 1e-9  # relative slack on "<=" comparisons of floats that went through JSON


class PoolMemory(NamedTuple):
    """Bytes per GPU of one worker (see the module docstring)."""

    weights_bytes: float
    peak_bytes: float
    usable_bytes: float
    max_concurrency: int


def pool_memory(model: ModelSpec, system: System, plan: ServingPlan, isl: int, osl: int, concurrency: int
                ) -> PoolMemory:
    """Weights, peak (weights + workspace + the KV cache of ``concurrency`` requests of ``isl + osl`` tokens),
    usable bytes per GPU and the largest concurrency that fits, for one worker of ``plan``."""
    mem = serving_memory(model, system, plan, isl, osl)
    per_request = kv_bytes_per_request_per_gpu(model, plan, isl + osl)
    peak = mem.weights_bytes + mem.workspace_bytes + math.ceil(concurrency / plan.dp) * per_request
    return PoolMemory(mem.weights_bytes, peak, mem.usable_bytes, mem.max_concurrency)


def _le(a: float, b: float) -> bool:
    return a <= b * (1 + _SLACK) + 1e-12


def check_serving(doc: ServingDocument, where: str) -> tuple[ModelSpec, System]:
    """The semantics of a (schema-valid) serving document:

    * names without control characters (model, Hugging Face id, system, engine version); they agree with the
      embedded specs;
    * ``aggregated``: one aggregated pool; ``disaggregated``: one prefill and one decode pool; every pool's
      backend is the document's engine;
    * degrees multiply to the GPU count: a worker has ``tp x dp x pp`` GPUs, a pool ``workers x gpus_per_worker``,
      the deployment the sum over pools, within ``gpu_budget``;
    * divisibility of heads, layers and experts, native precisions (:func:`planner.cost.serving.check_serving_plan`);
    * lengths: the longest request holds the sized one (``isl + osl``), the engine's ``max_model_len`` holds the
      longest request and is within the model's positions; one longest request fits a worker's KV cache;
    * memory (:func:`pool_memory`): each pool's concurrency within ``max_concurrency``; its claimed weights and
      peak agree with the model within 1 %; its capacity is the usable memory;
    * predictions: re-estimated (:func:`planner.cost.serving.estimate_serving`) for aggregated and decode pools
      within 1 %; the deployment meets the SLOs where stated and serves the rate asked for.
    """
    for value, field in ((doc.model.name, "model.name"), (doc.model.hf_id, "model.hf_id"),
                         (doc.system.name, "system.name"), (doc.engine.version, "engine.version")):
        check_name(value, field, where)
    model = model_from_spec(doc.model.spec, where)
    system = system_from_spec(doc.system.spec, where)
    for field, said, spec in (("model.name", doc.model.name, model.name), ("model.hf_id", doc.model.hf_id, model.hf_id),
                              ("system.name", doc.system.name, system.name)):
        if said != spec:
            raise PlanCheckError(f"{where}: {field} is {said!r} but the embedded spec says {spec!r}")
    roles = sorted(p.role for p in doc.pools)
    want = ["aggregated"] if doc.mode == "aggregated" else ["decode", "prefill"]
    if roles != want:
        raise PlanCheckError(f"{where}: pools: a {doc.mode} plan has {' and '.join(want)} pool(s), got "
                             f"{', '.join(roles)}")
    t = doc.traffic
    if t.max_request_tokens < t.isl + t.osl:
        raise PlanCheckError(f"{where}: traffic.max_request_tokens {t.max_request_tokens} is shorter than isl + osl = "
                             f"{t.isl + t.osl}")
    total = 0
    for i, pool in enumerate(doc.pools):
        total += _check_pool(doc, pool, f"pools[{i}]", model, system, where)
    if total != doc.gpus:
        raise PlanCheckError(f"{where}: gpus is {doc.gpus} but the pools hold {total} GPUs")
    if doc.gpus > doc.gpu_budget:
        raise PlanCheckError(f"{where}: gpus: the deployment takes {doc.gpus} GPUs; the budget (gpu_budget) is "
                             f"{doc.gpu_budget}")
    pr = doc.prediction
    if doc.slo is not None:
        if not _le(pr.ttft_ms, doc.slo.ttft_ms):
            raise PlanCheckError(f"{where}: prediction.ttft_ms {pr.ttft_ms:.4g} misses the SLO of {doc.slo.ttft_ms:g} ms")
        if not _le(pr.tpot_ms, doc.slo.tpot_ms):
            raise PlanCheckError(f"{where}: prediction.tpot_ms {pr.tpot_ms:.4g} misses the SLO of {doc.slo.tpot_ms:g} ms")
    serving = next(p for p in doc.pools if p.role in ("aggregated", "decode"))
    sustained = serving.workers * serving.predicted.requests_per_s
    if not close(pr.requests_per_s, sustained):
        raise PlanCheckError(f"{where}: prediction.requests_per_s is {pr.requests_per_s:.4g}; {serving.workers} "
                             f"{serving.role} workers at {serving.predicted.requests_per_s:.4g} each sustain "
                             f"{sustained:.4g}")
    if t.rate_rps is not None and not _le(t.rate_rps, pr.requests_per_s):
        raise PlanCheckError(f"{where}: the deployment sustains {pr.requests_per_s:.4g} requests/s; "
                             f"traffic.rate_rps asks for {t.rate_rps:g}")
    return model, system


def check_worker_plan(plan, model: ModelSpec, system: System, where: str, at: str) -> None:
    """A pool's worker layout in a plan document (serving or fleet) is one the model and GPU allow
    (:func:`planner.cost.serving.check_serving_plan`: divisibility, native FP8 / FP4), else one line naming it."""
    try:
        check_serving_plan(model, system, plan)
    except ValueError as exc:
        raise PlanCheckError(f"{where}: {at}.plan: {' '.join(str(exc).split())}") from None


def _check_pool(doc: ServingDocument, pool: ServingPool, at: str, model: ModelSpec, system: System,
                where: str) -> int:
    """The rules of one pool; its GPU count."""
    plan, t = pool.plan, doc.traffic
    if plan.backend != doc.engine.name:
        raise PlanCheckError(f"{where}: {at}.plan.backend is {plan.backend} but the engine is {doc.engine.name}")
    if pool.gpus_per_worker != plan.gpus:
        raise PlanCheckError(f"{where}: {at}.gpus_per_worker is {pool.gpus_per_worker}; tp {plan.tp} x dp {plan.dp} "
                             f"x pp {plan.pp} = {plan.gpus}")
    if pool.gpus != pool.workers * pool.gpus_per_worker:
        raise PlanCheckError(f"{where}: {at}.gpus is {pool.gpus}; {pool.workers} workers x {pool.gpus_per_worker} "
                             f"GPUs = {pool.workers * pool.gpus_per_worker}")
    check_worker_plan(plan, model, system, where, at)
    if pool.max_model_len < t.max_request_tokens:
        raise PlanCheckError(f"{where}: {at}.max_model_len {pool.max_model_len} is shorter than the longest request "
                             f"(traffic.max_request_tokens {t.max_request_tokens})")
    if pool.max_model_len > model.max_seq_len:
        raise PlanCheckError(f"{where}: {at}.max_model_len {pool.max_model_len} exceeds {model.name}'s "
                             f"{model.max_seq_len} positions")
    mem = pool_memory(model, system, plan, t.isl, t.osl, pool.concurrency)
    gb = 1e9
    if pool.concurrency > mem.max_concurrency:
        raise PlanCheckError(f"{where}: {at}.concurrency {pool.concurrency} does not fit: needs {mem.peak_bytes / gb:,.1f}"
                             f" GB per GPU; {mem.usable_bytes / gb:,.1f} GB of {system.accelerator.name} are usable "
                             f"(at most {mem.max_concurrency} requests)")
    if not longest_request_fits(model, plan, serving_memory(model, system, plan, t.isl, t.osl), t.max_request_tokens):
        raise PlanCheckError(f"{where}: {at}: one request of traffic.max_request_tokens {t.max_request_tokens} does "
                             f"not fit the KV cache of a worker")
    pp = pool.predicted
    for field, said, actual in (("weights_bytes", pp.weights_bytes, mem.weights_bytes),
                                ("peak_bytes", pp.peak_bytes, mem.peak_bytes),
                                ("capacity_bytes", pp.capacity_bytes, mem.usable_bytes)):
        if not close(said, actual):
            raise PlanCheckError(f"{where}: {at}.predicted.{field} is {said:.4g}; the planner's memory model gives "
                                 f"{actual:.4g} bytes per GPU (more than 1 % apart)")
    if pp.max_concurrency != mem.max_concurrency:
        raise PlanCheckError(f"{where}: {at}.predicted.max_concurrency is {pp.max_concurrency}; the memory model "
                             f"gives {mem.max_concurrency}")
    if pool.role != "prefill":
        est = estimate_serving(model, system, plan, t.isl, t.osl, pool.concurrency,
                               mode="agg" if pool.role == "aggregated" else "disagg")
        checks = [("tpot_ms", pp.tpot_ms, est.tpot_ms)]
        if pool.role == "aggregated":
            checks += [("ttft_ms", pp.ttft_ms, est.ttft_ms), ("requests_per_s", pp.requests_per_s, est.requests_per_s)]
        for field, said, actual in checks:
            if not close(said, actual):
                raise PlanCheckError(f"{where}: {at}.predicted.{field} is {said:.4g}; the serving model gives "
                                     f"{actual:.4g} (more than 1 % apart)")
        if doc.slo is not None and pool.role == "aggregated" and not (
                _le(pp.ttft_ms, doc.slo.ttft_ms) and _le(pp.tpot_ms, doc.slo.tpot_ms)):
            raise PlanCheckError(f"{where}: {at}.predicted misses the SLOs (TTFT {pp.ttft_ms:.4g} ms, TPOT "
                                 f"{pp.tpot_ms:.4g} ms)")
    return pool.gpus


__all__ = ["PoolMemory", "check_serving", "check_worker_plan", "pool_memory"]
