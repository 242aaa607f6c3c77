"""``planner mix --verify``: replay the workload through the chosen mix in the deployment simulator.

The GPU-mix program trusts per-bucket capacities (:mod:`planner.cost.capacity`, an open-loop queueing model
at the 90th percentile); the simulator (:mod:`planner.simulate_fleet`, iteration-level continuous batching on
every replica) checks them. The mix's fleet plan document gives the pools (GPU type and spec, role, layout,
replicas) and each pool's share of each bucket; the requests are the trace's (its first ``requests``, their
arrival times scaled to the mix's rate when it differs from the trace's own) or, for a histogram, Poisson
arrivals at the mix's rate with each request's lengths drawn from the buckets by their shares (seeded). Each
request is routed by its bucket (``bucket``: the mix's split, then the least-loaded replica of the pool) or,
for comparison, round-robin or least-outstanding over all replicas. The answer: per pool and per bucket the
p50 / p90 / p99 TTFT and TPOT and the share of requests meeting both SLOs, and one line for each pool
(``short``; the target is per pool) and each bucket (``short_buckets``, for information) below the target share.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .plans.documents import FleetDocument
from .plans.refs import model_from_spec, system_from_spec
from .simulation import Request, trace_requests
from .simulate_fleet import DeploymentPool, shortfalls, simulate_deployment


def _requests(doc: FleetDocument, trace: str | None, n: int, seed: int) -> list[Request]:
    mean_rate = doc.rate_rps / doc.burst_factor
    if trace is not None:
        reqs = trace_requests(trace)
        span = reqs[-1].arrival - reqs[0].arrival
        own = (len(reqs) - 1) / span if len(reqs) > 1 and span > 0 else mean_rate
        scale = own / mean_rate  # arrival times shrink by this factor for a faster rate
        return [Request(r.arrival * scale, r.isl, r.osl) for r in reqs[:n]]
    rng = np.random.default_rng(seed)
    gaps = rng.exponential(1.0 / mean_rate, size=n)
    gaps[0] = 0.0
    times = np.cumsum(gaps)
    shares = np.array([b.rate_rps for b in doc.buckets])
    picks = rng.choice(len(doc.buckets), size=n, p=shares / shares.sum())
    return [Request(float(t), doc.buckets[k].isl, doc.buckets[k].osl) for t, k in zip(times, picks)]


def _bucket_of(doc: FleetDocument, reqs: list[Request]) -> list[int]:
    """Each request's bucket: the one whose prompt and output ranges hold its lengths (as the mix bucketed it);
    a request outside every bucket (a trace's tail beyond the mix's buckets) goes to the nearest by lengths."""
    out = []
    for r in reqs:
        best, dist = 0, None
        for j, b in enumerate(doc.buckets):
            d = (max(0, b.isl_range[0] - r.isl, r.isl - b.isl_range[1])
                 + max(0, b.osl_range[0] - r.osl, r.osl - b.osl_range[1]))
            if dist is None or d < dist:
                best, dist = j, d
            if d == 0:
                break
        out.append(best)
    return out


def simulate_mix(plan: Any, *, trace: str | None = None, router: str = "bucket", attainment: float = 0.9,
                 requests: int = 20000, seed: int = 0) -> dict[str, Any]:
    """Simulate a fleet plan (a checked :class:`~planner.plans.documents.FleetDocument`, or a
    :class:`planner.search.fleet.MixResult` with its plan document) on its workload (module docstring): a
    JSON-ready report with ``ok`` and the lines where it falls short."""
    doc = plan if isinstance(plan, FleetDocument) else FleetDocument.model_validate(plan.plan_document, strict=False)
    model = model_from_spec(doc.model.spec, "fleet plan")
    pools = []
    for i, p in enumerate(doc.pools):
        system = system_from_spec(p.system.spec, "fleet plan", f"pools[{i}].system.spec")
        pools.append(DeploymentPool(name=f"{i}:{p.system.name}:{p.role}", system=system, plan=p.plan,
                                    replicas=p.replicas, role=p.role,
                                    weights={l.bucket: l.rate_rps for l in p.loads}))
    reqs = _requests(doc, trace, requests, seed)
    buckets = _bucket_of(doc, reqs)
    sim = simulate_deployment(model, pools, reqs, buckets, router=router, ttft_slo_ms=doc.slo.ttft_ms,
                              tpot_slo_ms=doc.slo.tpot_ms, seed=seed)
    lines = shortfalls(sim, attainment)
    short = [x for x in lines if x.startswith("pool ")]
    pools_out = [{"name": p.name, "role": p.role, "gpu": p.gpu, "replicas": p.replicas, "requests": p.requests,
                  "ttft_ms": p.ttft_ms, "tpot_ms": p.tpot_ms, "attainment": p.attainment,
                  "ok": p.attainment is None or p.attainment >= attainment} for p in sim.pools]
    return {"router": router, "requests": sim.requests, "rate_rps": sim.rate, "target": attainment,
            "attainment": sim.attainment, "ttft_ms": sim.ttft_ms, "tpot_ms": sim.tpot_ms, "pools": pools_out,
            "buckets": [b.model_dump() for b in sim.buckets], "ok": not short, "short": short,
            "short_buckets": [x for x in lines if not x.startswith("pool ")],
            "duration_s": sim.duration_s}


def verify_mix(res: Any, *, trace: str | None = None, router: str = "bucket", attainment: float = 0.9,
               requests: int = 20000, seed: int = 0, repair: bool = True, rounds: int = 15) -> tuple[Any, dict[str, Any]]:
    """Simulate the mix; while a pool is short of the target share, lower the capacities of its worker kind (x
    the square of its achieved share over the target, within 0.5..0.9 a round) and solve the program again, for at most
    ``rounds`` rounds: ``(the mix that met the target, or the last one tried; the report of its simulation with
    the rounds' history)``. The capacity model (:mod:`planner.cost.capacity`) holds each bucket's SLOs alone;
    a replica serving buckets of very different lengths, or a trace burstier than its windows show, can fall
    short in the simulator, which has the last word."""
    from .plans import gated
    from .plans.fleet import fleet_document
    from .search.fleet import MixError

    if router != "bucket":
        repair = False  # the program's split is what a repair adjusts
    history = []
    derate: dict[int, float] = {}
    cur = res
    report: dict[str, Any] = {}
    for r in range(rounds + 1):
        report = simulate_mix(cur, trace=trace, router=router, attainment=attainment, requests=requests, seed=seed)
        history.append({"round": r, "cost_per_hour_usd": cur.cost_per_hour_usd, "gpus": dict(cur.gpus),
                        "attainment": report["attainment"],
                        "pools": {p["name"]: p["attainment"] for p in report["pools"]}})
        if report["ok"] or not repair or r == rounds:
            break
        kinds = cur._kinds
        for i, (pool, sim) in enumerate(zip(cur.pools, report["pools"])):
            if sim["attainment"] is None or sim["attainment"] >= attainment:
                continue
            k = next(j for j, key in enumerate(kinds) if key == (pool.gpu, pool.role, pool.plan))
            derate[k] = derate.get(k, 1.0) * min(0.9, max(0.5, (sim["attainment"] / attainment) ** 2))
        try:
            nxt = cur._resolve(derate)
        except MixError as exc:
            report["short"].append(f"no mix with the capacities the simulator allows: {exc}")
            break
        doc = gated(fleet_document(nxt, nxt._model, nxt._systems), "fleet plan")
        cur = nxt.model_copy(update={"plan_document": doc.model_dump(mode="json", by_alias=True)})  # privates kept
    report["rounds"] = history
    report["repaired"] = len(history) > 1
    return cur, report


__all__ = ["simulate_mix", "verify_mix"]
