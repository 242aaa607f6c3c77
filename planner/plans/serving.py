"""The serving plan document of a search answer or of one estimate (:class:`~planner.plans.documents.ServingDocument`).

:func:`serving_document` turns the aggregated or disaggregated answer of ``search_serving`` (a
``ServeSearchResult``: an ``AggChoice`` or a ``DisaggChoice``) into the document every exporter reads;
:func:`serving_document_from_estimate` does the same for one aggregated worker (``planner estimate serve``).
The document embeds the model and system specs, so it can be checked and exported later without them.

Pools and their numbers:

* aggregated: one pool, ``workers`` = the replicas, ``concurrency`` = the requests one worker holds.
* disaggregated: a ``prefill`` pool (the prefill layout, ``prefill_workers``, concurrency
  :func:`prefill_concurrency`, not beyond the requests whose KV cache one prefill worker holds) and a ``decode``
  pool (the decode layout, ``decode_workers``, its batch).
* ``max_model_len`` = the longest request (``traffic.max_request_tokens``) rounded up to
  :data:`CONTEXT_ROUNDING` tokens, not beyond the model's max positions (a request longer than those is refused).
* per pool, memory by the planner's own model (the gate's :func:`planner.plans.serving_rules.pool_memory`):
  weights + workspace + the KV cache of ``ceil(concurrency / dp)`` requests of ``isl + osl`` tokens per GPU (each
  attention-DP group holds its own requests), against the usable memory (GPU memory x the engine's memory
  fraction).

This module also holds what the exporters need from the cost model (they import plans and specs only):
:func:`kv_cache_fp8`, :func:`engine_memory_fraction` and :data:`MAX_BATCHED_TOKENS`.
"""

from __future__ import annotations

import math
from typing import Any

from ..cost.serving import (
    BACKENDS, MAX_BATCHED_TOKENS, ServingError, ServingEstimate, ServingPlan, kv_dtype_bytes, serving_memory,
)
from ..search.serving import AggChoice, DisaggChoice, ServeSearchResult
from ..specs.hardware import System
from ..specs.model import ModelSpec
from .documents import (
    SLO, Engine, ModelRef, PoolPrediction, ServingDocument, ServingPool, ServingPrediction, SystemRef, Traffic,
)
from .serving_rules import pool_memory

#: The engine release each exporter's flags were checked against (the commits cited in
#: :mod:`planner.export.engines`). The exact tags of those commits could not be resolved offline, so each
#: value is the release line that contains the cited commit:
#:
#: * vLLM ``0.11``: ``vllm/engine/arg_utils.py`` at vllm-project/vllm 99d7eb5d6a51 (the v0.11 line) and
#:   ``vllm/entrypoints/openai/cli_args.py`` at 789340fbad95.
#: * SGLang ``0.5``: ``python/sglang/srt/server_args.py`` at sgl-project/sglang 001067fffe33 (the 0.5 line,
#:   with ``--disaggregation-transfer-backend`` choices mooncake / nixl).
#: * TensorRT-LLM ``1.0``: ``tensorrt_llm/commands/serve.py`` at NVIDIA/TensorRT-LLM 4c05a74891e4 and
#:   ``tensorrt_llm/llmapi/disagg_utils.py`` at 3e53e4adfea6 (the 1.0 release candidates, PyTorch backend).
VLLM_VERSION = "0.11"
SGLANG_VERSION = "0.5"
TRTLLM_VERSION = "1.0"
ENGINE_VERSIONS: dict[str, str] = {"vllm": VLLM_VERSION, "sglang": SGLANG_VERSION, "trtllm": TRTLLM_VERSION}

#: max model length granularity (tokens)
CONTEXT_ROUNDING = 256


def kv_cache_fp8(plan: ServingPlan) -> bool:
    """True when the plan keeps its KV cache in fp8 (an explicit ``kv_dtype``, or the engine's default for
    fp8 / fp4 weights: :func:`planner.cost.serving.kv_dtype_bytes`)."""
    return kv_dtype_bytes(plan) == 1


def engine_memory_fraction(engine: str) -> float:
    """The share of GPU memory ``engine`` takes for weights + KV cache by default (vLLM
    ``gpu_memory_utilization`` 0.9, SGLang ``mem_fraction_static`` 0.88, TensorRT-LLM
    ``free_gpu_memory_fraction`` 0.9): the value the memory model assumed."""
    return BACKENDS[engine].mem_fraction


def max_model_len(model: ModelSpec, max_request_tokens: int) -> int:
    """``max_request_tokens`` rounded up to :data:`CONTEXT_ROUNDING`, capped at the model's max positions;
    a :class:`ServingError` if the request itself is longer than those."""
    cap = model.max_seq_len
    if cap and max_request_tokens > cap:
        raise ServingError(f"requests of {max_request_tokens} tokens (prompt + output) exceed {model.name}'s "
                           f"{cap}-token context")
    length = -(-max_request_tokens // CONTEXT_ROUNDING) * CONTEXT_ROUNDING
    return min(length, cap) if cap else length


def prefill_concurrency(decode_workers: int, decode_concurrency: int, prefill_workers: int) -> int:
    """Requests one prefill worker may hold at once: every decode slot has at most one request in prefill,
    spread over the prefill workers (the planner's prefill batch is 1; this is a cap, not a target):
    ``ceil(decode_workers x decode_concurrency / prefill_workers)``."""
    return max(1, math.ceil(decode_workers * decode_concurrency / max(1, prefill_workers)))


def _pool_memory(model: ModelSpec, system: System, plan: ServingPlan, traffic: Traffic, concurrency: int
                 ) -> dict[str, Any]:
    """Weights, peak, usable memory per GPU and the largest concurrency that fits, for requests of the sized length
    ``isl + osl`` (the gate's own :func:`planner.plans.serving_rules.pool_memory`)."""
    mem = pool_memory(model, system, plan, traffic.isl, traffic.osl, concurrency)
    return {"weights_bytes": float(mem.weights_bytes), "peak_bytes": float(mem.peak_bytes),
            "capacity_bytes": float(mem.usable_bytes), "max_concurrency": int(mem.max_concurrency)}


def _pool(role: str, model: ModelSpec, system: System, plan: ServingPlan, workers: int, concurrency: int,
          length: int, traffic: Traffic, *, ttft_ms: float, tpot_ms: float, tokens_per_s_per_gpu: float,
          requests_per_s: float) -> ServingPool:
    predicted = PoolPrediction(ttft_ms=float(ttft_ms), tpot_ms=float(tpot_ms),
                               tokens_per_s_per_gpu=float(tokens_per_s_per_gpu), requests_per_s=float(requests_per_s),
                               **_pool_memory(model, system, plan, traffic, concurrency))
    return ServingPool(role=role, plan=plan, workers=int(workers), gpus_per_worker=plan.gpus,
                       gpus=int(workers) * plan.gpus, concurrency=int(concurrency), max_model_len=length,
                       predicted=predicted)


def _refs(model: ModelSpec, system: System) -> tuple[ModelRef, SystemRef]:
    return (ModelRef(name=model.name, hf_id=model.hf_id, spec=model.model_dump(mode="json")),
            SystemRef(name=system.name, spec=system.model_dump(mode="json")))


def _cost_per_hour(system: System, gpus: int) -> float | None:
    price = system.accelerator.price_per_hour_usd
    return None if price is None else float(gpus * price)


def _document(model: ModelSpec, system: System, mode: str, backend: str, gpu_budget: int, traffic: Traffic,
              slo: SLO | None, pools: list[ServingPool], prediction: ServingPrediction) -> ServingDocument:
    model_ref, system_ref = _refs(model, system)
    return ServingDocument(model=model_ref, system=system_ref, mode=mode,
                           engine=Engine(name=backend, version=ENGINE_VERSIONS[backend]), gpu_budget=int(gpu_budget),
                           gpus=sum(p.gpus for p in pools), traffic=traffic, slo=slo, pools=pools,
                           prediction=prediction)


def _aggregated(est: ServingEstimate, replicas: int, cost_per_million: float | None, model: ModelSpec,
                system: System, gpu_budget: int, traffic: Traffic, slo: SLO | None) -> ServingDocument:
    length = max_model_len(model, traffic.max_request_tokens)
    pool = _pool("aggregated", model, system, est.plan, replicas, est.concurrency, length, traffic,
                 ttft_ms=est.ttft_ms, tpot_ms=est.tpot_ms, tokens_per_s_per_gpu=est.tokens_per_s_per_gpu,
                 requests_per_s=est.requests_per_s)
    prediction = ServingPrediction(
        ttft_ms=float(est.ttft_ms), tpot_ms=float(est.tpot_ms), tokens_per_s_per_gpu=float(est.tokens_per_s_per_gpu),
        tokens_per_s_per_user=float(est.tokens_per_s_per_user), requests_per_s=float(est.requests_per_s * replicas),
        cost_per_hour_usd=_cost_per_hour(system, pool.gpus),
        cost_per_million_tokens_usd=None if cost_per_million is None else float(cost_per_million))
    return _document(model, system, "aggregated", est.plan.backend, gpu_budget, traffic, slo, [pool], prediction)


def _disaggregated(dis: DisaggChoice, model: ModelSpec, system: System, gpu_budget: int, traffic: Traffic,
                   slo: SLO | None) -> ServingDocument:
    d = dis.decode
    length = max_model_len(model, traffic.max_request_tokens)
    deployment_rps = dis.tokens_per_s_per_gpu * dis.gpus / d.osl
    # capped at what a prefill worker's memory holds (the gate refuses a pool whose concurrency does not fit)
    prefill_cap = max(1, serving_memory(model, system, dis.prefill_plan, traffic.isl, traffic.osl).max_concurrency)
    prefill = _pool("prefill", model, system, dis.prefill_plan, dis.prefill_workers,
                    min(prefill_cap, prefill_concurrency(dis.decode_workers, d.concurrency, dis.prefill_workers)),
                    length, traffic,
                    ttft_ms=dis.ttft_ms, tpot_ms=0.0, tokens_per_s_per_gpu=0.0,
                    requests_per_s=deployment_rps / dis.prefill_workers)
    decode = _pool("decode", model, system, d.plan, dis.decode_workers, d.concurrency, length, traffic,
                   ttft_ms=dis.ttft_ms, tpot_ms=d.tpot_ms,
                   tokens_per_s_per_gpu=deployment_rps * d.osl / (dis.decode_workers * d.plan.gpus),
                   requests_per_s=deployment_rps / dis.decode_workers)
    prediction = ServingPrediction(
        ttft_ms=float(dis.ttft_ms), tpot_ms=float(dis.tpot_ms), tokens_per_s_per_gpu=float(dis.tokens_per_s_per_gpu),
        tokens_per_s_per_user=float(dis.tokens_per_s_per_user), requests_per_s=float(deployment_rps),
        cost_per_hour_usd=_cost_per_hour(system, prefill.gpus + decode.gpus),
        cost_per_million_tokens_usd=(None if dis.cost_per_million_tokens_usd is None
                                     else float(dis.cost_per_million_tokens_usd)))
    return _document(model, system, "disaggregated", d.plan.backend, gpu_budget, traffic, slo, [prefill, decode],
                     prediction)


def serving_document(result: ServeSearchResult, model: ModelSpec, system: System, *, choice: str = "best",
                     gpu_budget: int, traffic: Traffic, slo: SLO | None) -> ServingDocument:
    """The document of the ``choice`` ("best", "aggregated" or "disaggregated") answer of a serving search."""
    which = result.best if choice == "best" else choice
    if which not in ("aggregated", "disaggregated"):
        raise ServingError(f"unknown plan choice {choice!r}; choose from best, aggregated, disaggregated")
    picked: AggChoice | DisaggChoice | None = getattr(result, which)
    if picked is None:
        raise ServingError(f"the search found no {which} plan")
    if isinstance(picked, AggChoice):
        return _aggregated(picked.estimate, picked.replicas, picked.cost_per_million_tokens_usd, model, system,
                           gpu_budget, traffic, slo)
    return _disaggregated(picked, model, system, gpu_budget, traffic, slo)


def serving_document_from_estimate(est: ServingEstimate, model: ModelSpec, system: System, *, gpu_budget: int,
                                   traffic: Traffic, slo: SLO | None = None) -> ServingDocument:
    """The document of one aggregated worker (an estimate of ``planner estimate serve``)."""
    price = system.accelerator.price_per_hour_usd
    tokens_per_s = est.tokens_per_s_per_gpu * est.plan.gpus
    cost = None if price is None or tokens_per_s <= 0 else est.plan.gpus * price / 3600.0 / tokens_per_s * 1e6
    return _aggregated(est, 1, cost, model, system, gpu_budget, traffic, slo)


__all__ = ["CONTEXT_ROUNDING", "ENGINE_VERSIONS", "MAX_BATCHED_TOKENS", "SGLANG_VERSION", "TRTLLM_VERSION",
           "VLLM_VERSION", "engine_memory_fraction", "kv_cache_fp8", "max_model_len", "prefill_concurrency",
           "serving_document", "serving_document_from_estimate"]
