"""The GPU-mix search: which GPU types, how many of each, and which requests each serves, at least cost.

1. **Workload** as buckets of (prompt, output) length with their request rates
   (:mod:`planner.search.fleet_workload`).
2. **Capacities** from the serving model (:mod:`planner.cost.capacity`): for every GPU type, every worker
   layout it can run (tensor parallel within the node; for MoE models also attention data parallelism with
   the experts over the same GPUs; the engine and precision asked for) and every bucket, the requests/s one
   worker sustains with TTFT and TPOT at the 90th percentile within the SLOs under random arrivals. With
   disaggregation, also prefill workers (prompts/s within the TTFT SLO less the slowest KV transfer to a
   decode worker of any type offered) and decode workers (requests/s within the TPOT SLO).
3. **The program** (:func:`planner.search.fleet_ilp.solve_mix`): Mélange's assignment of bucket slices to
   replica kinds with integer counts, at least cost per hour, within per-type availability and a power
   budget. The same program restricted to one GPU type at a time gives the best single type, the baseline
   the saving is against (a mix never costs more: the single-type answers are feasible mixes).

Prices are the catalog's (``price_per_hour_usd``, each cited in its spec file) unless overridden.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable, Literal

from typing import Any

from pydantic import BaseModel, Field, PrivateAttr

from ..cost.capacity import (Capacity, aggregated_capacity, capped_system, decode_capacity, kv_transfer_s,
                             prefill_capacity)
from ..cost.serving import ServingPlan, check_context, check_serving_plan, ServingError
from ..errors import PlannerError
from ..results import ResultMixin
from ..limits import MAX_GPUS, MAX_SLO_S, check_number
from ..specs.hardware import System
from ..specs.model import ModelSpec
from .fleet_ilp import MixInfeasible, Unit, solve_mix
from .fleet_workload import Bucket
from .serving import _layouts

#: the largest worker the mix considers (GPUs of one worker, within a node)
MAX_WORKER_GPUS = 8


class MixError(PlannerError):
    """A mix that cannot be asked or found: one line naming the input or the limit that binds."""


class MixPool(BaseModel):
    """Replicas of one worker kind on one GPU type and the buckets they serve."""

    gpu: str
    role: Literal["aggregated", "prefill", "decode"]
    plan: ServingPlan
    replicas: int
    gpus: int
    buckets: list[int] = Field(description="indices of the buckets this pool serves (some or all of their slices)")
    slices: list[int] = Field(description="slices of each of those buckets")
    rate_rps: list[float] = Field(description="requests/s of each of those buckets sent here")
    capacity_rps: list[float] = Field(description="requests/s one replica sustains on each of those buckets")
    capacity_power_w: list[float] = Field(description="watts of one replica at its capacity on each of them")
    kv_transfer_ms: list[float | None] = Field(description="prefill pools: the KV transfer each capacity allows for")
    idle_w: float = Field(description="watts of one replica with no request")
    derate: float = Field(1.0, description="capacities x this (below 1: lowered where the simulator found the "
                          "pool short of its SLOs, planner mix --verify)")
    traffic_share: float = Field(description="share of all requests this pool processes")
    utilization: float = Field(description="assigned load / the replicas' capacity")
    cost_per_hour_usd: float
    power_w: float


class MixBucket(BaseModel):
    label: str
    isl: int
    osl: int
    rate_rps: float
    share: float
    longest: int
    isl_range: tuple[int, int] = Field(description="prompt lengths of the bucket (inclusive)")
    osl_range: tuple[int, int] = Field(description="output lengths of the bucket (inclusive)")


class SingleType(BaseModel):
    gpu: str
    cost_per_hour_usd: float | None = Field(description="None: this type alone cannot serve the workload")
    gpus: int | None = None
    reason: str = ""


class MixResult(ResultMixin, BaseModel):
    model: str
    gpus_offered: list[str]
    backend: str
    precision: str
    ttft_ms: float
    tpot_ms: float
    quantile: float
    rate_rps: float = Field(description="the rate the fleet is sized for: the mean x the burst factor")
    mean_rate_rps: float
    burst_factor: float = Field(description="how much above its mean rate a bursty trace is served (1: Poisson)")
    burst_window_s: float = Field(description="the burst length that sets the factor (0: none)")
    slice_factor: int
    buckets: list[MixBucket] = Field(description="the workload's buckets at their mean rates")
    pools: list[MixPool]
    gpus: dict[str, int] = Field(description="GPUs used per type")
    cost_per_hour_usd: float
    cost_per_million_tokens_usd: float = Field(description="per million output tokens, at the mean rate")
    power_kw: float = Field(description="at the sized load (what a power budget must hold)")
    mean_power_kw: float = Field(description="at the mean rate")
    energy_wh_per_million_tokens: float = Field(description="per million output tokens, at the mean rate")
    best_single: SingleType | None
    saving_vs_best_single: float | None = Field(description="1 - cost / best single type's cost")
    singles: list[SingleType]
    solver: dict
    limits: dict
    prices: dict[str, float]
    units: int
    capacity_evaluations: int
    elapsed_s: float
    plan_document: dict | None = None
    _resolve: Any = PrivateAttr(None)  # the program again with capacities derated per kind (planner mix --verify)
    _kinds: Any = PrivateAttr(None)  # (gpu, role, plan) of each kind, the keys of a derating
    _model: Any = PrivateAttr(None)  # the ModelSpec and the offered Systems by name (for documents of a re-solve)
    _systems: Any = PrivateAttr(None)

    def _summary(self) -> str:
        mix = ", ".join(f"{n} x {g}" for g, n in self.gpus.items())
        best = self.best_single
        return (f"{self.model} at {self.mean_rate_rps:.3g} requests/s: {mix}, ${self.cost_per_hour_usd:,.2f}/h, "
                f"${self.cost_per_million_tokens_usd:.3f} per million output tokens, {self.power_kw:,.2f} kW"
                + (f"; best single type {best.gpu} ${best.cost_per_hour_usd:,.2f}/h (saving "
                   f"{100 * (self.saving_vs_best_single or 0):.1f} %)" if best and best.cost_per_hour_usd else ""))

    def _rows(self) -> list[dict[str, Any]]:
        return [{"gpu": p.gpu, "role": p.role, "tp": p.plan.tp, "dp": p.plan.dp, "replicas": p.replicas,
                 "gpus": p.gpus, "traffic_share": p.traffic_share, "utilization": p.utilization,
                 "cost_per_hour_usd": p.cost_per_hour_usd, "power_w": p.power_w,
                 "buckets": ", ".join(self.buckets[b].label for b in p.buckets)} for p in self.pools]


@dataclass
class _Kind:
    gpu: str
    system: System
    plan: ServingPlan
    role: str
    caps: list[Capacity]
    xfer_ms: list[float | None]


def _check(model: ModelSpec, systems: list[System], buckets: list[Bucket], ttft_ms: float, tpot_ms: float,
           slice_factor: int, max_gpus: dict[str, int] | None, power_budget_w: float | None,
           prices: dict[str, float], power_cap: float | None) -> None:
    if not systems:
        raise MixError("no GPU types to mix")
    if not buckets:
        raise MixError("the workload is empty")
    for v, name in ((ttft_ms, "TTFT SLO (ms)"), (tpot_ms, "TPOT SLO (ms)")):
        check_number(v, name, hi=MAX_SLO_S * 1e3)
        if v <= 0:
            raise MixError(f"{name} must be positive, got {v:g}")
    if not (isinstance(slice_factor, int) and 1 <= slice_factor <= 64):
        raise MixError(f"slice factor must be a whole number in 1..64, got {slice_factor!r}")
    names = [s.name for s in systems]
    if len(set(names)) != len(names):
        raise MixError(f"a GPU type is named twice: {', '.join(names)}")
    for g, n in (max_gpus or {}).items():
        if g not in names:
            raise MixError(f"--max names {g!r}, which is not among the GPU types offered ({', '.join(names)})")
        if not (isinstance(n, int) and 0 <= n <= MAX_GPUS):
            raise MixError(f"--max {g}={n!r}: a whole number of GPUs in 0..{MAX_GPUS:,}")
    if power_budget_w is not None and not (math.isfinite(power_budget_w) and power_budget_w > 0):
        raise MixError(f"the power budget must be a positive number of kW, got {power_budget_w / 1e3:g}")
    if power_cap is not None and not (0.2 <= power_cap <= 1.0):
        raise MixError(f"the power cap is a fraction of TDP in 0.2..1, got {power_cap:g}")
    for s in systems:
        p = prices.get(s.name)
        if p is None:
            raise MixError(f"no price for {s.name}: its spec has none; give one with --prices")
        if not (math.isfinite(p) and p > 0):
            raise MixError(f"the price of {s.name} must be a positive number of $/GPU-hour, got {p:g}")
    for b in buckets:
        try:
            check_context(model, b.longest, f"the longest request of bucket {b.label}")
        except ServingError as exc:
            raise MixError(str(exc)) from None


def _worker_layouts(model: ModelSpec, system: System, precision: str, backend: str) -> list[ServingPlan]:
    per_node = max(1, min(MAX_WORKER_GPUS, system.node.accelerators_per_node))
    out = []
    for p in _layouts(model, system, (precision,), backend, per_node):
        try:
            check_serving_plan(model, system, p)
        except ServingError:
            continue
        out.append(p)
    return out


def mix(model: ModelSpec, systems: list[System], buckets: list[Bucket], ttft_ms: float, tpot_ms: float, *,
        slice_factor: int = 4, backend: str = "trtllm", precision: str = "bf16",
        disagg: Literal["auto", "on", "off"] = "off", max_gpus: dict[str, int] | None = None,
        power_budget_w: float | None = None, prices: dict[str, float] | None = None,
        power_cap: float | None = None, time_limit_s: float = 10.0, burst_factor: float = 1.0,
        burst_window_s: float = 0.0, progress: Callable[[int, int], None] | None = None) -> MixResult:
    """The cheapest GPU mix for ``buckets`` under the SLOs (module docstring). ``prices``: $/GPU-hour per system
    name, over the catalog's; ``max_gpus``: GPUs available per system name; ``power_budget_w``: watts for the
    whole fleet; ``power_cap``: every GPU capped at this fraction of its TDP; ``burst_factor``: the buckets' (mean)
    rates are served at this multiple (a bursty trace's, :func:`planner.search.fleet_workload.burst_factor`; the
    cost and energy per token are at the mean). Raises :class:`MixError`."""
    t0 = time.perf_counter()
    price = {s.name: (prices or {}).get(s.name, s.accelerator.price_per_hour_usd) for s in systems}
    _check(model, systems, buckets, ttft_ms, tpot_ms, slice_factor, max_gpus, power_budget_w, price, power_cap)
    if disagg not in ("auto", "on", "off"):
        raise MixError(f"unknown disagg {disagg!r}; choose auto, on or off")
    if precision not in ("bf16", "fp16", "fp8", "int4", "fp4"):
        raise MixError(f"unknown precision {precision!r}; choose bf16, fp16, fp8, int4 or fp4")
    layouts = {s.name: _worker_layouts(model, s, precision, backend) for s in systems}
    offered = [s for s in systems if layouts[s.name]]
    if not offered:
        raise MixError(f"no GPU type offered runs {model.name} at {precision} in one node "
                       f"({', '.join(s.name for s in systems)})")
    kinds: list[_Kind] = []  # the worker kinds serving some bucket (the program's units)
    tried: list[_Kind] = []  # every kind evaluated (for saying what is reachable when a bucket is not)
    roles = ([] if disagg == "on" else ["aggregated"]) + ([] if disagg == "off" else ["prefill", "decode"])
    total = sum(len(layouts[s.name]) for s in offered) * len(roles) * len(buckets)
    done = [0]

    def tick() -> None:
        done[0] += 1
        if progress is not None and done[0] % 8 == 0:
            progress(done[0], total)

    # the slowest KV transfer a prefill worker may face: to a one-GPU decode worker of the slowest network
    slowest = min(offered, key=lambda s: s.node.nic_bandwidth_bytes_per_s)
    for s in offered:
        for plan in layouts[s.name]:
            for role in roles:
                caps, xfers = [], []
                for b in buckets:
                    tick()
                    xfer_ms = None
                    if role == "aggregated":
                        c = aggregated_capacity(model, s, plan, b.isl, b.osl, b.longest, ttft_ms, tpot_ms, power_cap)
                    elif role == "prefill":
                        xfer = kv_transfer_s(model, s, plan, slowest, ServingPlan(tp=1, precision=plan.precision,
                                                                                  backend=plan.backend), b.isl)
                        xfer_ms = xfer * 1e3
                        c = prefill_capacity(model, s, plan, b.isl, b.osl, b.longest, ttft_ms - xfer_ms, power_cap)
                    else:
                        c = decode_capacity(model, s, plan, b.isl, b.osl, b.longest, tpot_ms, power_cap)
                    caps.append(c)
                    xfers.append(xfer_ms)
                tried.append(_Kind(s.name, s, plan, role, caps, xfers))
                if any(c.rate_rps > 0 for c in caps):
                    kinds.append(tried[-1])
    if progress is not None:
        progress(total, total)
    _unserved(model, buckets, tried, ttft_ms, tpot_ms, disagg)
    if not (math.isfinite(burst_factor) and 1.0 <= burst_factor <= 1000.0):
        raise MixError(f"the burst factor must be in 1..1000, got {burst_factor:g}")
    loads = [b.rate * burst_factor for b in buckets]
    evaluations = done[0]

    def solve(derate: dict[int, float]) -> MixResult:
        """The program over ``kinds`` with each kind's capacities scaled by ``derate[kind index]`` (default 1:
        the capacity model's; below 1 where the simulator found a pool short of its SLOs)."""
        t1 = time.perf_counter()
        d = [derate.get(i, 1.0) for i in range(len(kinds))]
        units = [Unit(gpu=k.gpu, gpus=k.plan.gpus, cost_per_hour=price[k.gpu] * k.plan.gpus,
                      pool={"aggregated": "agg", "prefill": "prefill", "decode": "decode"}[k.role],  # type: ignore[arg-type]
                      idle_w=k.caps[0].idle_w) for k in kinds]
        cap = [[c.rate_rps * d[i] for c in k.caps] for i, k in enumerate(kinds)]
        active = [[c.power_w for c in k.caps] for k in kinds]
        try:
            sol = solve_mix(units, loads, cap, slice_factor, max_gpus, power_budget_w, time_limit_s, active_w=active)
        except MixInfeasible as exc:
            raise MixError(str(exc)) from None
        singles = []
        for s in offered:
            idx = [i for i, k in enumerate(kinds) if k.gpu == s.name]
            try:
                one = solve_mix([units[i] for i in idx], loads, [cap[i] for i in idx], slice_factor, max_gpus,
                                power_budget_w, time_limit_s, active_w=[active[i] for i in idx])
                singles.append(SingleType(gpu=s.name, cost_per_hour_usd=one.cost_per_hour,
                                          gpus=sum(units[i].gpus * n for i, n in zip(idx, one.counts))))
            except MixInfeasible as exc:
                singles.append(SingleType(gpu=s.name, cost_per_hour_usd=None, reason=str(exc)))
        for s in systems:
            if s not in offered:
                singles.append(SingleType(gpu=s.name, cost_per_hour_usd=None,
                                          reason=f"no worker layout of up to {MAX_WORKER_GPUS} GPUs holds {model.name}"))
        feasible = [x for x in singles if x.cost_per_hour_usd is not None]
        best_single = min(feasible, key=lambda x: x.cost_per_hour_usd) if feasible else None  # type: ignore[arg-type,return-value]
        pools = _pools(kinds, units, sol, buckets, slice_factor, loads, d)
        out_tokens_per_s = sum(b.rate * b.osl for b in buckets)  # at the mean rate
        cost_mtok = sol.cost_per_hour / (out_tokens_per_s * 3600.0 / 1e6)
        power_w = sum(p.power_w for p in pools)  # at the sized (burst) load: what a power budget must hold
        idle_w = sum(p.idle_w * p.replicas for p in pools)
        mean_power_w = idle_w + (power_w - idle_w) / burst_factor  # the load's share of the active draw at the mean
        used: dict[str, int] = {}
        for p in pools:
            used[p.gpu] = used.get(p.gpu, 0) + p.gpus
        res = MixResult(
            model=model.name, gpus_offered=[s.name for s in systems], backend=backend, precision=precision,
            ttft_ms=float(ttft_ms), tpot_ms=float(tpot_ms), quantile=0.9, rate_rps=float(sum(loads)),
            mean_rate_rps=float(sum(b.rate for b in buckets)), burst_factor=float(burst_factor),
            burst_window_s=float(burst_window_s),
            slice_factor=slice_factor,
            buckets=[MixBucket(label=b.label, isl=b.isl, osl=b.osl, rate_rps=b.rate, share=b.share, longest=b.longest,
                               isl_range=b.isl_range, osl_range=b.osl_range) for b in buckets],
            pools=pools, gpus=used, cost_per_hour_usd=sol.cost_per_hour, cost_per_million_tokens_usd=cost_mtok,
            power_kw=power_w / 1e3, mean_power_kw=mean_power_w / 1e3,
            energy_wh_per_million_tokens=mean_power_w / out_tokens_per_s * 1e6 / 3600.0,
            best_single=best_single,
            saving_vs_best_single=(1.0 - sol.cost_per_hour / best_single.cost_per_hour_usd
                                   if best_single and best_single.cost_per_hour_usd else None),
            singles=singles,
            solver={"name": "CBC (pulp)", "status": sol.status, "gap": sol.gap, "solve_time_s": sol.solve_time_s,
                    "variables": sol.variables, "constraints": sol.constraints, "time_limit_s": time_limit_s},
            limits={"max_gpus": dict(max_gpus or {}), "power_budget_kw": None if power_budget_w is None
                    else power_budget_w / 1e3, "power_cap": power_cap},
            prices={s.name: float(price[s.name]) for s in systems}, units=len(units),
            capacity_evaluations=evaluations, elapsed_s=time.perf_counter() - t0 if not derate
            else time.perf_counter() - t1)
        res._resolve = solve
        res._kinds = [(k.gpu, k.role, k.plan) for k in kinds]
        res._model, res._systems = model, {s.name: s for s in systems}
        return res

    return solve({})


def _unserved(model: ModelSpec, buckets: list[Bucket], kinds: list[_Kind], ttft_ms: float, tpot_ms: float,
              disagg: str) -> None:
    """One line for the first bucket no GPU type serves within the SLOs: its lengths and the best latency any
    type reaches on it."""
    for j, b in enumerate(buckets):
        agg = any(k.caps[j].rate_rps > 0 for k in kinds if k.role == "aggregated")
        split = (any(k.caps[j].rate_rps > 0 for k in kinds if k.role == "prefill")
                 and any(k.caps[j].rate_rps > 0 for k in kinds if k.role == "decode"))
        if agg or split:
            continue
        best_ttft = min((k.caps[j].best_ttft_ms for k in kinds if k.role != "decode"), default=math.inf)
        best_tpot = min((k.caps[j].best_tpot_ms for k in kinds if k.role != "prefill"), default=math.inf)
        reasons = sorted({k.caps[j].reason for k in kinds if k.caps[j].reason})
        reach = []
        if math.isfinite(best_ttft):
            reach.append(f"TTFT {best_ttft:,.0f} ms (SLO {ttft_ms:g})")
        if math.isfinite(best_tpot):
            reach.append(f"TPOT {best_tpot:,.1f} ms (SLO {tpot_ms:g})")
        if not reach:
            raise MixError(f"bucket {b.label} (isl {b.isl}, osl {b.osl}, {b.share:.1%} of requests): no worker of up "
                           f"to {MAX_WORKER_GPUS} GPUs of the types offered holds {model.name}'s weights and one "
                           f"request of {b.longest} tokens" + (f" ({'; '.join(reasons)})" if reasons else ""))
        raise MixError(f"bucket {b.label} (isl {b.isl}, osl {b.osl}, {b.share:.1%} of requests): no GPU type offered "
                       f"serves it within the SLOs; the best reachable at the 90th percentile is " + ", ".join(reach))
    if not kinds:
        raise MixError(f"no GPU type offered serves {model.name} within the SLOs")


def _pools(kinds: list[_Kind], units: list[Unit], sol, buckets: list[Bucket], S: int, loads: list[float],
           derate: list[float]) -> list[MixPool]:
    total_rate = sum(loads)
    out = []
    for u, k in enumerate(kinds):
        n = sol.counts[u]
        if n <= 0:
            continue
        served = [b for b in range(len(buckets)) if sol.slices[b][u] > 0]
        rates = [sol.slices[b][u] * loads[b] / S for b in served]
        caps = [k.caps[b].rate_rps * derate[u] for b in served]
        need = sum(r / c for r, c in zip(rates, caps))
        util = need / n
        idle = units[u].idle_w
        power = idle * n + sum(r / c * (k.caps[b].power_w - idle) for b, r, c in zip(served, rates, caps))
        out.append(MixPool(gpu=k.gpu, role=k.role, plan=k.plan, replicas=n, gpus=n * k.plan.gpus, buckets=served,  # type: ignore[arg-type]
                           slices=[sol.slices[b][u] for b in served], rate_rps=rates, capacity_rps=caps,
                           capacity_power_w=[k.caps[b].power_w for b in served],
                           kv_transfer_ms=[k.xfer_ms[b] for b in served], idle_w=idle, derate=derate[u],
                           traffic_share=sum(rates) / total_rate if total_rate else 0.0, utilization=util,
                           cost_per_hour_usd=units[u].cost_per_hour * n, power_w=power))
    return out


__all__ = ["MAX_WORKER_GPUS", "MixBucket", "MixError", "MixPool", "MixResult", "SingleType", "mix"]
