"""The searches as the public API gives them: every answer leaves as a plan document that passed the gate.

The searches (:mod:`planner.search`) choose plans and know nothing of documents (search never imports plans);
this layer builds each answer's document (:mod:`planner.plans`) and passes it through
:func:`planner.plans.check`. A refusal there is a bug in the planner, not in the input: it raises
:class:`~planner.plans.GateFailure` (a ``RuntimeError``, so the CLI exits 1 with the reason).
"""

from __future__ import annotations

import os
from typing import Any

from .catalog import get_model, get_system
from .cost.serving import ServingEstimate, check_context
from .cost.training_plan import TrainingEstimate
from .limits import MAX_REQUEST_TOKENS, check_int
from .moe.placement import ExpertCluster, Placement
from .plans import (
    SLO,
    PlacementDocument,
    ServingDocument,
    Traffic,
    TrainingDocument,
    gated,
    placement_document,
    training_document,
)
from .plans.refs import remember
from .plans.serving import max_model_len, serving_document, serving_document_from_estimate
from .search.serving import ServeSearchResult, search_serving
from .search.training import TrainSearchResult, search_training
from .specs.hardware import System
from .specs.model import ModelSpec


def search_train(model: str | ModelSpec, gpu: str | System, gpus: int, seq_len: int, global_batch: int,
                 **options: Any) -> TrainSearchResult:
    """Search the training plans of a job (:func:`planner.search.training.search_training`).

    ``global_batch`` is in sequences. ``options``: ``objective`` ("time", "cost", "deadline"), ``tokens``,
    ``budget_usd``, ``deadline_s``, ``top``, ``dtypes``, ``pareto``, ``refine``, ``max_memory_fraction``,
    ``price_per_gpu_hour``, ``recompute``, ``partial_recompute``, ``zero_stages``, ``base``, ``progress``.
    Returns the best plan, the next ones, the binding constraints, the partition solver's status and the best
    plan's document (``plan_document``); the best plan, the alternatives and the Pareto plans all passed the
    gate.
    """
    m, s = get_model(model), get_system(gpu)
    res = search_training(m, s, gpus, seq_len, global_batch, **options)
    remember(m, s)
    doc = gated(training_document(res.best, m, s), "training plan")
    for i, est in enumerate(res.alternatives + (res.pareto or [])):
        if est is not res.best:
            gated(training_document(est, m, s), f"training plan (alternative {i + 1})")
    assert isinstance(doc, TrainingDocument)
    return res.model_copy(update={"plan_document": doc.to_json()})


def search_serve(model: str | ModelSpec, gpu: str | System, gpus: int, isl: int, osl: int, ttft_ms: float,
                 tpot_ms: float, rate: float | None = None, *, max_request_tokens: int | None = None,
                 source: str = "flags", **options: Any) -> ServeSearchResult:
    """Search the serving plans of a deployment (:func:`planner.search.serving.search_serving`): the best
    aggregated and disaggregated answers meeting the TTFT / TPOT SLOs (milliseconds) for requests of ``isl``
    prompt and ``osl`` output tokens, sized for ``rate`` requests/s on at most ``gpus`` GPUs.

    ``max_request_tokens``: the longest request (prompt + output; a trace's maximum) the engines must hold
    [default: ``isl + osl``]; ``source``: "flags" or "trace". ``options``: ``precisions``, ``backend``,
    ``disagg``, ``objective``. Each answer's document (``plan_documents``, the best one ``plan_document``)
    passed the gate.
    """
    m, s = get_model(model), get_system(gpu)
    isl = check_int(isl, "--isl", hi=MAX_REQUEST_TOKENS)
    osl = check_int(osl, "--osl", hi=MAX_REQUEST_TOKENS)
    if max_request_tokens is not None:
        max_request_tokens = check_int(max_request_tokens, "max_request_tokens", lo=2, hi=2 * MAX_REQUEST_TOKENS)
    longest = max(max_request_tokens or 0, isl + osl)
    check_context(m, longest, "the longest request" if max_request_tokens and max_request_tokens >= isl + osl
                  else "isl + osl")
    # every worker holds one request of the engines' max model length (the longest request rounded up, as the
    # exported --max-model-len: vLLM refuses to start when its KV cache cannot hold one such request)
    res = search_serving(m, s, gpus, isl, osl, ttft_ms, tpot_ms, rate=rate,
                         max_request_tokens=max_model_len(m, longest), **options)
    remember(m, s)
    traffic = Traffic(rate_rps=rate, isl=isl, osl=osl, max_request_tokens=longest,
                      source="trace" if source == "trace" else "flags")
    slo = SLO(ttft_ms=float(ttft_ms), tpot_ms=float(tpot_ms))
    docs: dict[str, dict[str, Any]] = {}
    for choice in ("aggregated", "disaggregated"):
        if getattr(res, choice) is None:
            continue
        doc = gated(serving_document(res, m, s, choice=choice, gpu_budget=gpus, traffic=traffic, slo=slo),
                    f"{choice} serving plan")
        assert isinstance(doc, ServingDocument)
        docs[choice] = doc.model_dump(mode="json", by_alias=True)
    return res.model_copy(update={"plan_documents": docs, "plan_document": docs[res.best]})


def placement_plan(placement: Placement, model: str | ModelSpec, cluster: ExpertCluster, *,
                   system: str | System | None = None, weight_bytes_per_param: float = 1.0,
                   solver: dict[str, Any] | None = None) -> PlacementDocument:
    """The expert placement document of a solved placement (:func:`planner.place_experts`), after the gate:
    one row per MoE layer, every expert placed with shares summing to 1, the slots within ``system``'s memory."""
    m = get_model(model)
    s = get_system(system) if system is not None else None
    remember(m, *([s] if s is not None else []))
    doc = gated(placement_document(placement, m, cluster, system=s, weight_bytes_per_param=weight_bytes_per_param,
                                   solver=solver), "expert placement")
    assert isinstance(doc, PlacementDocument)
    return doc


def training_plan_document(est: TrainingEstimate, model: str | ModelSpec, system: str | System) -> dict[str, Any] | None:
    """The plan document of one estimated training plan (``planner estimate train --json``), after the gate;
    None when the plan does not fit in memory (no launcher should be handed it)."""
    if not est.fits:
        return None
    m, s = get_model(model), get_system(system)
    remember(m, s)
    doc = gated(training_document(est, m, s), "training plan")
    assert isinstance(doc, TrainingDocument)
    return doc.to_json()


def serving_plan_document(est: ServingEstimate, model: str | ModelSpec, system: str | System) -> dict[str, Any] | None:
    """The plan document of one serving worker at its concurrency (``planner estimate serve --json``): one
    aggregated replica on its own GPUs, after the gate; None when it does not fit."""
    if not est.fits:
        return None
    m, s = get_model(model), get_system(system)
    remember(m, s)
    traffic = Traffic(rate_rps=None, isl=est.isl, osl=est.osl, max_request_tokens=est.isl + est.osl)
    doc = gated(serving_document_from_estimate(est, m, s, gpu_budget=est.plan.gpus, traffic=traffic),
                "serving plan")
    assert isinstance(doc, ServingDocument)
    return doc.model_dump(mode="json", by_alias=True)


__all__ = ["placement_plan", "search_serve", "search_train", "serving_plan_document", "training_plan_document"]


def mix(model: str | ModelSpec, gpus: list[str | System], ttft_ms: float, tpot_ms: float, *,
        trace: str | None = None, histogram: str | list | None = None, buckets: list | None = None,
        rate: float | None = None, prices: dict[str, float] | None = None, max_gpus: dict[str, int] | None = None,
        power_budget_kw: float | None = None, **options: Any):
    """The cheapest GPU-type mix for a workload (:func:`planner.search.fleet.mix`), with its fleet plan document
    (``plan_document``) checked by the gate. The workload is a request ``trace`` (its mean rate unless ``rate``
    is given), a ``histogram`` (a CSV ``isl,osl,weight``, or those rows as a list of tuples; ``rate`` required) or
    ready ``buckets`` (:class:`planner.search.fleet_workload.Bucket`). ``gpus``: names
    or systems; ``prices`` ($/GPU-hour) and ``max_gpus`` (GPUs available) are keyed by GPU name or alias.
    ``options``: ``slice_factor``, ``backend``, ``precision``, ``disagg``, ``power_cap``, ``time_limit_s``,
    ``progress``, ``input_edges``, ``output_edges``."""
    from .plans.fleet import fleet_document
    from .search.fleet import MixError, mix as _mix
    from .search.fleet_workload import (INPUT_EDGES, OUTPUT_EDGES, Bucket, buckets_from_histogram,
                                        buckets_from_lengths, buckets_from_weights, burst_factor, read_trace,
                                        trace_rate)

    m = get_model(model)
    if not isinstance(gpus, (list, tuple)) or not gpus:
        raise MixError("give at least one GPU type")
    systems = [get_system(g) for g in gpus]
    by_alias = {}
    for g, s in zip(gpus, systems):
        by_alias[g if isinstance(g, str) else s.name] = s.name
        by_alias[s.name] = s.name

    def keyed(d: dict | None, what: str) -> dict | None:
        if d is None:
            return None
        out = {}
        for k, v in d.items():
            name = by_alias.get(k)
            if name is None:
                try:
                    name = get_system(k).name
                except Exception:
                    name = None
                if name not in by_alias.values():
                    raise MixError(f"{what} names {k!r}, which is not among the GPU types offered "
                                   f"({', '.join(s.name for s in systems)})")
            out[name] = v
        return out

    edges = (options.pop("input_edges", INPUT_EDGES), options.pop("output_edges", OUTPUT_EDGES))
    given = sum(x is not None for x in (trace, histogram, buckets))
    if given != 1:
        raise MixError("give the workload as one of a trace, a histogram or buckets")
    burst, window = 1.0, 0.0
    if trace is not None:
        reqs = read_trace(trace)
        own = trace_rate(reqs) if len(reqs) > 1 and reqs[-1].arrival > reqs[0].arrival else None
        if rate is None:
            if own is None:
                raise MixError(f"{trace}: needs at least two requests at different times for its rate (or give --rate)")
            rate = own
        bk = buckets_from_lengths([(r.isl, r.osl) for r in reqs], rate, *edges)
        if own is not None:  # the trace's bursts at the rate asked for (its arrival times scaled to it)
            from .limits import MAX_RATE, check_number

            scale = own / check_number(rate, "rate (requests/s)", hi=MAX_RATE)
            burst, window = burst_factor([r.arrival * scale for r in reqs], rate, float(ttft_ms) / 1e3)
    elif histogram is not None:
        if rate is None:
            raise MixError("a histogram gives the shares of requests; give the total --rate too")
        bk = (buckets_from_histogram(histogram, rate) if isinstance(histogram, (str, os.PathLike))
              else buckets_from_weights(histogram, rate))
    else:
        bk = list(buckets)  # type: ignore[arg-type]
        if not bk or not all(isinstance(b, Bucket) for b in bk):
            raise MixError("buckets= takes planner.search.fleet_workload.Bucket objects; for (isl, osl, weight) "
                           "rows use histogram=[...] with rate=")
    budget_w = None if power_budget_kw is None else float(power_budget_kw) * 1e3
    res = _mix(m, systems, bk, ttft_ms, tpot_ms, prices=keyed(prices, "--prices"),
               max_gpus=keyed(max_gpus, "--max"), power_budget_w=budget_w, burst_factor=burst,
               burst_window_s=window, **options)
    for s in systems:
        remember(m, s)
    doc = gated(fleet_document(res, m, {s.name: s for s in systems}), "fleet plan")
    # model_copy keeps the private _resolve / _kinds / _model / _systems that planner mix --verify re-solves with
    return res.model_copy(update={"plan_document": doc.model_dump(mode="json", by_alias=True)})


def search_train_fleet(model: str | ModelSpec, gpu_types: list, gpus: int, seq_len: int, global_batch: int,
                       **options: Any):
    """The cheapest GPU type, count and plan that trains a job (:func:`planner.search.train_fleet.
    search_training_fleet`): every type's search is :func:`search_train` (its answers gated), the frontier over
    the types, and the types that cannot meet the deadline or budget. ``options``: ``tokens`` (required),
    ``objective``, ``deadline_s``, ``budget_usd``, ``price_per_gpu_hour``, ``dtypes`` (a tuple or "auto") and
    the other options of :func:`search_train`."""
    from .search.train_fleet import search_training_fleet

    if not isinstance(gpu_types, (list, tuple)) or not gpu_types:
        from .search.train_fleet import FleetTrainError

        raise FleetTrainError("give at least one GPU type")
    return search_training_fleet(get_model(model), [get_system(g) for g in gpu_types], gpus, seq_len, global_batch,
                                 search=search_train, **options)


def estimate_serve(model: str | ModelSpec, gpu: str | System, isl: int, osl: int, *, concurrency: int | None = None,
                   rate: float | None = None, tp: int = 1, dp: int = 1, pp: int = 1, ep: int | None = None,
                   precision: str = "bf16", backend: str = "trtllm", engine_version: str | None = None
                   ) -> ServingEstimate:
    """TTFT, TPOT and throughput of one serving worker (``tp x dp x pp`` GPUs; experts over ``ep``) for requests of
    ``isl`` prompt and ``osl`` output tokens: at a fixed ``concurrency`` (closed loop, as benchmarks run;
    :func:`planner.cost.serving.estimate_serving`) or at ``rate`` requests/s arriving at random (open loop;
    :func:`planner.cost.serving.estimate_serving_at_rate`). Give exactly one of the two."""
    from .cost.serving import ServingError, ServingPlan, estimate_serving, estimate_serving_at_rate

    if (concurrency is None) == (rate is None):
        raise ServingError("give exactly one of concurrency (closed loop) or rate (requests/s, open loop)")
    m, s = get_model(model), get_system(gpu)
    plan = ServingPlan(tp=tp, dp=dp, pp=pp, ep=ep, precision=precision, backend=backend)  # type: ignore[arg-type]
    if rate is not None:
        if engine_version is not None:
            raise ServingError("engine_version is for the closed loop (a benchmark's releases); the open loop has none")
        return estimate_serving_at_rate(m, s, plan, isl, osl, rate)  # to_dict(): the estimate (no document of
        # an open-loop operating point: a document's predictions are the closed loop's at its concurrency)
    est = estimate_serving(m, s, plan, isl, osl, concurrency, engine_version=engine_version)  # type: ignore[arg-type]
    if engine_version is None:  # to_dict(): its plan document, after the gate (documents use current constants)
        est._document = lambda: serving_plan_document(est, m, s)
    return est


def simulate(model: str | ModelSpec, gpu: str | System, *, trace: str | None = None, rate: float | None = None,
             isl: int = 1024, osl: int = 256, requests: int = 2000, seed: int = 0, tp: int = 1, dp: int = 1,
             ep: int | None = None, precision: str = "bf16", backend: str = "trtllm", ttft_ms: float = float("inf"),
             tpot_ms: float = float("inf"), per_request: bool = True):
    """Simulate one serving worker (:func:`planner.simulation.simulate`) on a request ``trace`` (its first
    ``requests``) or on ``requests`` Poisson arrivals at ``rate`` requests/s of ``isl`` / ``osl`` tokens (seeded):
    a ``SimResult`` with TTFT / TPOT percentiles and the share meeting the SLOs (milliseconds; none by default).
    ``per_request`` (default on): keep every request's TTFT and TPOT, so ``plot()`` draws their distributions."""
    from .cost.serving import ServingPlan
    from .simulation import SimulationError, poisson_requests, trace_requests
    from .simulation import simulate as _simulate

    if (trace is None) == (rate is None):
        raise SimulationError("give exactly one of trace (a CSV path) or rate (requests/s, Poisson)")
    m, s = get_model(model), get_system(gpu)
    plan = ServingPlan(tp=tp, dp=dp, ep=ep, precision=precision, backend=backend)  # type: ignore[arg-type]
    reqs = trace_requests(trace, requests) if trace is not None else poisson_requests(rate, requests, isl, osl, seed)  # type: ignore[arg-type]
    return _simulate(m, s, plan, reqs, ttft_ms, tpot_ms, per_request=per_request)
