"""The fleet plan document (``"schema": "planner.fleet-plan"``, version 2.0): one model served over several GPU
types, as the GPU-mix search chose it (:mod:`planner.search.fleet`): the workload's buckets, and pools of
replicas (a GPU type, a role, a worker layout) each taking slices of some buckets.

:func:`fleet_document` builds it from a :class:`~planner.search.fleet.MixResult`; :func:`check_fleet` is the
gate's rules for it, re-deriving every claim from the model and hardware the document embeds:

* names without control characters; the embedded specs re-validated and agreeing with the names;
* every pool: its engine is the document's, ``gpus = replicas x tp x dp x pp``, the layout divides the model
  (:func:`planner.cost.serving.check_serving_plan`), its precision is native to the GPU, its ``max_model_len``
  holds the longest request of every bucket it serves and is within the model's positions;
* every bucket served: its slices add up to the slice factor (aggregated slices plus the disaggregated ones,
  which a prefill pool and a decode pool both take), the bucket rates add up to the fleet's rate, each load's
  rate is its slices' share of its bucket;
* capacities: each load's ``capacity_rps`` is what :mod:`planner.cost.capacity` gives for that pool and bucket
  under the document's SLOs, quantile and power cap (within 1 %), and a pool's replicas cover its load; a
  prefill pool's capacity allows for a KV transfer at least as long as the one to every decode pool that
  takes the same bucket;
* cost (GPUs x price) and power (idle plus the load's share of the active draw) add up, per pool and in all;
  the availability (``max_gpus``) and power budget the document names are met.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ..cost.capacity import QUANTILE, aggregated_capacity, decode_capacity, kv_transfer_s, prefill_capacity
from ..cost.serving import ServingError, check_context
from .. import limits as L
from .documents import (READABLE_VERSIONS, SLO, Engine, FleetBucket, FleetDocument, FleetLoad, FleetPool, ModelRef,
                        ServingDocument, SystemRef)
from .refs import PlanCheckError, check_name, close, model_from_spec, system_from_spec
from .serving import ENGINE_VERSIONS, max_model_len
from .serving_rules import check_worker_plan

SCHEMA_ID = "planner.fleet-plan"
SCHEMA_VERSION = READABLE_VERSIONS[SCHEMA_ID][-1]
_TOL = 1e-6


def fleet_document(result: Any, model: Any, systems: dict[str, Any]) -> FleetDocument:
    """The document of a GPU-mix answer (``result``: a :class:`planner.search.fleet.MixResult`; ``systems``: the
    offered systems by name), not yet checked."""
    buckets = [FleetBucket(label=b.label, isl=b.isl, osl=b.osl, longest=b.longest,
                           rate_rps=b.rate_rps * result.burst_factor, isl_range=b.isl_range, osl_range=b.osl_range)
               for b in result.buckets]
    pools = []
    for p in result.pools:
        s = systems[p.gpu]
        longest = max(result.buckets[b].longest for b in p.buckets)
        loads = [FleetLoad(bucket=b, slices=k, rate_rps=r, capacity_rps=c, kv_transfer_ms=x, power_w=w)
                 for b, k, r, c, x, w in zip(p.buckets, p.slices, p.rate_rps, p.capacity_rps, p.kv_transfer_ms,
                                             p.capacity_power_w)]
        pools.append(FleetPool(system=SystemRef(name=s.name, spec=s.model_dump(mode="json")), role=p.role,
                               plan=p.plan, replicas=p.replicas, gpus=p.gpus,
                               max_model_len=max_model_len(model, longest),
                               price_per_gpu_hour_usd=result.prices[p.gpu], cost_per_hour_usd=p.cost_per_hour_usd,
                               idle_w=p.idle_w, power_w=p.power_w, capacity_derate=p.derate, loads=loads))
    lim = result.limits
    return FleetDocument.model_validate({
        "schema": SCHEMA_ID, "schema_version": SCHEMA_VERSION,
        "model": ModelRef(name=model.name, hf_id=model.hf_id, spec=model.model_dump(mode="json")),
        "engine": Engine(name=result.backend, version=ENGINE_VERSIONS[result.backend]),
        "slo": SLO(ttft_ms=result.ttft_ms, tpot_ms=result.tpot_ms), "quantile": result.quantile,
        "rate_rps": result.rate_rps, "burst_factor": result.burst_factor, "slice_factor": result.slice_factor, "buckets": buckets, "pools": pools,
        "cost_per_hour_usd": result.cost_per_hour_usd, "power_w": result.power_kw * 1e3,
        "power_cap": lim.get("power_cap"), "max_gpus": lim.get("max_gpus") or None,
        "power_budget_w": None if lim.get("power_budget_kw") is None else lim["power_budget_kw"] * 1e3,
        "solver": result.solver,
    }, strict=False)


def _capacity(doc: FleetDocument, pool: FleetPool, load: FleetLoad, model, system, where: str, at: str):
    b = doc.buckets[load.bucket]
    slo, cap_frac = doc.slo, doc.power_cap
    if pool.role == "aggregated":
        return aggregated_capacity(model, system, pool.plan, b.isl, b.osl, b.longest, slo.ttft_ms, slo.tpot_ms, cap_frac)
    if pool.role == "decode":
        return decode_capacity(model, system, pool.plan, b.isl, b.osl, b.longest, slo.tpot_ms, cap_frac)
    if load.kv_transfer_ms is None:
        raise PlanCheckError(f"{where}: {at}.kv_transfer_ms: a prefill pool's load names the KV transfer its "
                             f"capacity allows for")
    return prefill_capacity(model, system, pool.plan, b.isl, b.osl, b.longest, slo.ttft_ms - load.kv_transfer_ms,
                            cap_frac)


def check_fleet(doc: FleetDocument, where: str) -> None:
    """The rules of a fleet plan document (module docstring)."""
    check_name(doc.model.name, "model.name", where)
    check_name(doc.model.hf_id, "model.hf_id", where)
    check_name(doc.engine.version, "engine.version", where)
    model = model_from_spec(doc.model.spec, where)
    if model.name != doc.model.name:
        raise PlanCheckError(f"{where}: model.name is {doc.model.name!r} but the embedded spec says {model.name!r}")
    if abs(doc.quantile - QUANTILE) > _TOL:
        raise PlanCheckError(f"{where}: quantile is {doc.quantile:g}; the capacities hold the SLOs at {QUANTILE:g}")
    B, S = len(doc.buckets), doc.slice_factor
    for j, b in enumerate(doc.buckets):
        check_name(b.label, f"buckets[{j}].label", where)
        for rng, name in ((b.isl_range, "isl_range"), (b.osl_range, "osl_range")):
            if not 0 <= rng[0] <= rng[1] <= 2 * L.MAX_REQUEST_TOKENS:
                raise PlanCheckError(f"{where}: buckets[{j}].{name} {list(rng)} is not an ordered pair of token counts")
        if b.isl + b.osl > b.longest:
            raise PlanCheckError(f"{where}: buckets[{j}]: its mean isl + osl ({b.isl + b.osl}) exceeds its longest "
                                 f"request ({b.longest})")
        try:
            check_context(model, b.longest, f"buckets[{j}].longest")
        except ServingError as exc:
            raise PlanCheckError(f"{where}: {exc}") from None
    if not close(sum(b.rate_rps for b in doc.buckets), doc.rate_rps, _TOL):
        raise PlanCheckError(f"{where}: the buckets' rates sum to {sum(b.rate_rps for b in doc.buckets):.6g} "
                             f"requests/s, not rate_rps {doc.rate_rps:.6g}")
    taken = {role: [0] * B for role in ("aggregated", "prefill", "decode")}
    gpus_by_type: dict[str, int] = {}
    cost = power = 0.0
    seen: set[tuple] = set()
    systems = []
    for i, pool in enumerate(doc.pools):
        at = f"pools[{i}]"
        check_name(pool.system.name, f"{at}.system.name", where)
        system = system_from_spec(pool.system.spec, where, f"{at}.system.spec")
        systems.append(system)
        if system.name != pool.system.name:
            raise PlanCheckError(f"{where}: {at}.system.name is {pool.system.name!r} but the embedded spec says "
                                 f"{system.name!r}")
        key = (system.name, pool.role, pool.plan.model_dump_json())
        if key in seen:
            raise PlanCheckError(f"{where}: {at}: a second {pool.role} pool of the same layout on {system.name}")
        seen.add(key)
        plan = pool.plan
        if plan.backend != doc.engine.name:
            raise PlanCheckError(f"{where}: {at}.plan.backend is {plan.backend} but the engine is {doc.engine.name}")
        if pool.gpus != pool.replicas * plan.gpus:
            raise PlanCheckError(f"{where}: {at}.gpus is {pool.gpus}; {pool.replicas} replicas x {plan.gpus} GPUs = "
                                 f"{pool.replicas * plan.gpus}")
        check_worker_plan(plan, model, system, where, at)
        gpus_by_type[system.name] = gpus_by_type.get(system.name, 0) + pool.gpus
        longest = 0
        need = active = 0.0
        for k, load in enumerate(pool.loads):
            la = f"{at}.loads[{k}]"
            if load.bucket >= B:
                raise PlanCheckError(f"{where}: {la}.bucket {load.bucket}: there are {B} buckets")
            b = doc.buckets[load.bucket]
            longest = max(longest, b.longest)
            taken[pool.role][load.bucket] += load.slices
            if not close(load.rate_rps, load.slices * b.rate_rps / S, _TOL):
                raise PlanCheckError(f"{where}: {la}.rate_rps is {load.rate_rps:.6g}; {load.slices} of {S} slices of "
                                     f"bucket {load.bucket} are {load.slices * b.rate_rps / S:.6g} requests/s")
            cap = _capacity(doc, pool, load, model, system, where, la)
            if cap.rate_rps <= 0:
                raise PlanCheckError(f"{where}: {la}: a {pool.role} worker of this layout cannot serve bucket "
                                     f"{load.bucket} within the SLOs ({cap.reason})")
            want = cap.rate_rps * pool.capacity_derate
            if not close(load.capacity_rps, want):
                raise PlanCheckError(f"{where}: {la}.capacity_rps is {load.capacity_rps:.4g}; the capacity model "
                                     f"gives {cap.rate_rps:.4g} requests/s"
                                     + (f" x the pool's derate {pool.capacity_derate:g}" if pool.capacity_derate < 1
                                        else "") + " (more than 1 % apart)")
            if not close(load.power_w, cap.power_w):
                raise PlanCheckError(f"{where}: {la}.power_w is {load.power_w:.4g}; the power model gives "
                                     f"{cap.power_w:.4g} W (more than 1 % apart)")
            need += load.rate_rps / want
            active += load.rate_rps / want * (cap.power_w - cap.idle_w)
            if not close(pool.idle_w, cap.idle_w):
                raise PlanCheckError(f"{where}: {at}.idle_w is {pool.idle_w:.4g}; the power model gives "
                                     f"{cap.idle_w:.4g} W")
        if pool.max_model_len < longest:
            raise PlanCheckError(f"{where}: {at}.max_model_len {pool.max_model_len} is shorter than the longest request "
                                 f"of its buckets ({longest})")
        if pool.max_model_len > model.max_seq_len:
            raise PlanCheckError(f"{where}: {at}.max_model_len {pool.max_model_len} exceeds {model.name}'s "
                                 f"{model.max_seq_len} positions")
        if need > pool.replicas * (1 + _TOL):
            raise PlanCheckError(f"{where}: {at}: its load needs {need:.4g} replicas' capacity; it has {pool.replicas}")
        if not close(pool.cost_per_hour_usd, pool.gpus * pool.price_per_gpu_hour_usd, _TOL):
            raise PlanCheckError(f"{where}: {at}.cost_per_hour_usd is {pool.cost_per_hour_usd:.6g}; {pool.gpus} GPUs "
                                 f"at ${pool.price_per_gpu_hour_usd:g} are {pool.gpus * pool.price_per_gpu_hour_usd:.6g}")
        want_power = pool.idle_w * pool.replicas + active
        if not close(pool.power_w, want_power):
            raise PlanCheckError(f"{where}: {at}.power_w is {pool.power_w:.4g}; its replicas at their load draw "
                                 f"{want_power:.4g} W")
        cost += pool.cost_per_hour_usd
        power += pool.power_w
    for j in range(B):
        a, p, d = taken["aggregated"][j], taken["prefill"][j], taken["decode"][j]
        if p != d:
            raise PlanCheckError(f"{where}: bucket {j}: prefill pools take {p} slices and decode pools {d}; a "
                                 f"disaggregated slice is taken by one of each")
        if a + p != S:
            raise PlanCheckError(f"{where}: bucket {j}: its pools take {a + p} of its {S} slices")
    for i, pool in enumerate(doc.pools):  # the KV transfer a prefill pool allows for covers every decode pool's
        if pool.role != "prefill":
            continue
        for k, load in enumerate(pool.loads):
            for i2, other in enumerate(doc.pools):
                if other.role != "decode" or all(l2.bucket != load.bucket for l2 in other.loads):
                    continue
                t = 1e3 * kv_transfer_s(model, systems[i], pool.plan, systems[i2], other.plan,
                                        doc.buckets[load.bucket].isl)
                if load.kv_transfer_ms is not None and t > load.kv_transfer_ms * (1 + _TOL):
                    raise PlanCheckError(f"{where}: pools[{i}].loads[{k}].kv_transfer_ms {load.kv_transfer_ms:.4g} is "
                                         f"shorter than the {t:.4g} ms transfer to pools[{i2}]")
    if not close(doc.cost_per_hour_usd, cost, _TOL):
        raise PlanCheckError(f"{where}: cost_per_hour_usd is {doc.cost_per_hour_usd:.6g}; the pools cost {cost:.6g}")
    if not close(doc.power_w, power):
        raise PlanCheckError(f"{where}: power_w is {doc.power_w:.4g}; the pools draw {power:.4g} W")
    for g, n in (doc.max_gpus or {}).items():
        check_name(g, "max_gpus", where)
        if gpus_by_type.get(g, 0) > n:
            raise PlanCheckError(f"{where}: the pools take {gpus_by_type[g]} x {g}; max_gpus allows {n}")
    if doc.power_budget_w is not None and power > doc.power_budget_w * (1 + _TOL):
        raise PlanCheckError(f"{where}: the pools draw {power / 1e3:,.2f} kW; the power budget is "
                             f"{doc.power_budget_w / 1e3:,.2f} kW")
    if math.isnan(power):
        raise PlanCheckError(f"{where}: power is not a number")




@dataclass(frozen=True)
class PoolWorkload:
    """What one worker of a fleet pool runs (:func:`pool_workload`): the model and GPU, the load-weighted mean
    prompt and output lengths of the buckets it serves, the longest request of any, and its batch."""

    model: Any
    system: Any
    isl: int
    osl: int
    longest: int
    batch: int


def pool_workload(doc: FleetDocument, index: int) -> PoolWorkload:
    """The workload of one worker of pool ``index`` of a (checked) fleet document, for the exporters: the
    load-weighted mean prompt and output lengths of its buckets, the longest request of any, and its batch: the
    99th percentile of the requests in flight at its load (each bucket's share of the pool's capacity times the
    requests in flight there, Poisson: ``N + 2.33 sqrt(N)``), at most what its KV cache holds. The same for
    every role: a prefill worker's batch is the prompts it holds at once, a decode worker's the requests it
    decodes."""
    from ..cost.serving import serving_memory

    if not 0 <= index < len(doc.pools):
        raise PlanCheckError(f"fleet plan: pool {index}: there are {len(doc.pools)} pools (0..{len(doc.pools) - 1})")
    pool = doc.pools[index]
    model = model_from_spec(doc.model.spec, "fleet plan")
    system = system_from_spec(pool.system.spec, "fleet plan", f"pools[{index}].system.spec")
    weight = sum(l.rate_rps for l in pool.loads)
    isl = max(1, round(sum(doc.buckets[l.bucket].isl * l.rate_rps for l in pool.loads) / weight))
    osl = max(1, round(sum(doc.buckets[l.bucket].osl * l.rate_rps for l in pool.loads) / weight))
    longest = max(doc.buckets[l.bucket].longest for l in pool.loads)
    n = 0.0  # requests in flight per replica: each bucket's share of a replica's capacity x its in-flight there
    for load in pool.loads:
        cap = _capacity(doc, pool, load, model, system, "fleet plan", f"pools[{index}]")
        n += load.rate_rps / pool.replicas / (cap.rate_rps * pool.capacity_derate) * cap.in_flight
    batch = math.ceil(n + 2.33 * math.sqrt(n))
    batch = max(1, min(batch, serving_memory(model, system, pool.plan, isl, osl).max_concurrency))
    return PoolWorkload(model, system, isl, osl, longest, batch)


def pool_serving_document(doc: FleetDocument, index: int) -> ServingDocument:
    """One aggregated pool of a (checked) fleet document as a serving plan document, for the exporters: its
    replicas as workers of one aggregated deployment on its GPU type, sized for its buckets
    (:func:`pool_workload`), the predictions the serving model's at that batch. No SLO is attached: the fleet's
    SLOs hold at the quantile under its arrivals (the fleet document), not at the closed-loop batch. Prefill and
    decode pools are refused (their workers pair across GPU types; :func:`planner.export.fleet.export_fleet`
    renders them as role workers)."""
    from ..cost.serving import estimate_serving
    from .documents import Traffic
    from .serving import _aggregated

    if 0 <= index < len(doc.pools) and doc.pools[index].role != "aggregated":
        pool = doc.pools[index]
        raise PlanCheckError(f"fleet plan: pool {index} is a {pool.role} pool on {pool.system.name}; only aggregated "
                             f"pools export as one engine command (a disaggregated pair may span GPU types)")
    w = pool_workload(doc, index)
    pool = doc.pools[index]
    est = estimate_serving(w.model, w.system, pool.plan, w.isl, w.osl, w.batch)
    traffic = Traffic(rate_rps=None, isl=w.isl, osl=w.osl, max_request_tokens=max(w.longest, w.isl + w.osl),
                      source="trace")
    tokens = est.tokens_per_s_per_gpu * pool.plan.gpus
    cpm = pool.price_per_gpu_hour_usd * pool.plan.gpus / 3600.0 / tokens * 1e6 if tokens > 0 else None
    return _aggregated(est, pool.replicas, cpm, w.model, w.system, pool.gpus, traffic, None)


__all__ = ["SCHEMA_ID", "SCHEMA_VERSION", "PoolWorkload", "check_fleet", "fleet_document", "pool_serving_document",
           "pool_workload"]
