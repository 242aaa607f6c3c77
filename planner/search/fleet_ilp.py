"""The GPU-mix integer program (Mélange's formulation, with pools, availability and power).

Mélange (Griggs et al., "Mélange: Cost Efficient Large Language Model Serving by Exploiting GPU
Heterogeneity", 2024) buckets requests by (prompt length, output length), cuts each bucket's load
into ``S`` equal slices (the slice factor) and assigns every slice to one GPU type; a type's count
must cover the load assigned to it at that type's capacity for each bucket. Here a *unit* is one
replica of a GPU type's worker (``gpus`` GPUs; Mélange's units are single GPUs), and a unit serves
one pool: ``agg`` (prefill and decode together), or ``prefill`` / ``decode`` (Splitwise's
disaggregated phases, possibly on different GPU types). With

    lam_b      the requests/s of bucket b, S the slice factor
    cap[u, b]  requests/s one unit u sustains on bucket b within the SLOs (0: it cannot)
    y[b, u]    slices of bucket b unit type u takes (integer 0..S)
    z_b        slices of bucket b served disaggregated (integer 0..S)
    n_u        units of type u (integer >= 0)

the program is::

    minimise    sum_u cost_u n_u
    subject to  sum_{u in agg} y[b, u] + z_b = S                        every bucket served
                sum_{u in prefill} y[b, u] = z_b = sum_{u in decode} y[b, u]   both phases of a split slice
                sum_b y[b, u] lam_b / (S cap[u, b]) <= n_u              each unit type covers its load
                sum_{u on gpu g} gpus_u n_u <= max_g                     availability (GPUs of a type)
                sum_u idle_u n_u + sum_{b,u} y[b,u] lam_b / (S cap[u,b]) (active[u,b] - idle_u) <= W   power

(the last: a unit draws ``idle_u`` watts with no load and ``active[u, b]`` at its capacity on bucket b,
linear in between). Mélange's slices are binary per (slice, type);
since the slices of a bucket are interchangeable, counting them (``y``) is the same program with
fewer symmetric solutions. Solved by CBC (pulp; single-threaded by default) with a time limit, so the same input
gives the same answer; the status and the relative gap are reported.
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, field
from typing import Literal

Pool = Literal["agg", "prefill", "decode"]


class MixInfeasible(ValueError):
    """No mix serves the load within the limits (the message names the binding limit)."""


@dataclass(frozen=True)
class Unit:
    """One replica kind: ``gpus`` GPUs of type ``gpu`` serving ``pool``; per hour ``cost``; watts drawn idle and at
    the load it is sized for. ``label`` names its worker (layout) for the report."""

    gpu: str
    gpus: int
    cost_per_hour: float
    pool: Pool = "agg"
    idle_w: float = 0.0
    active_w: float = 0.0
    label: str = ""


@dataclass
class MixSolution:
    status: str  # "optimal", "feasible (time limit)"
    cost_per_hour: float
    counts: list[int]  # units per Unit
    slices: list[list[int]]  # [bucket][unit] slices taken
    split: list[int]  # disaggregated slices per bucket
    load: list[float]  # utilisation of each unit type's units (assigned load / capacity of n_u units)
    power_w: float
    gap: float
    bound: float | None
    solve_time_s: float
    variables: int = 0
    constraints: int = 0
    notes: list[str] = field(default_factory=list)


def solve_mix(units: list[Unit], loads: list[float], capacity: list[list[float]], slice_factor: int = 1,
              max_gpus: dict[str, int] | None = None, power_budget_w: float | None = None,
              time_limit_s: float = 10.0, gap_rel: float = 1e-6, active_w: list[list[float]] | None = None
              ) -> MixSolution:
    """Solve the program in the module docstring. ``capacity[u][b]``: requests/s of one unit ``u`` on bucket ``b``
    (0 or less: cannot); ``active_w[u][b]``: watts of one unit ``u`` at its capacity on bucket ``b`` (default the
    unit's ``active_w``). Raises :class:`MixInfeasible` naming the binding limit."""
    import pulp

    warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"pulp(\..*)?")
    t0 = time.perf_counter()
    B, U, S = len(loads), len(units), int(slice_factor)
    if S < 1:
        raise MixInfeasible(f"slice factor must be at least 1, got {slice_factor}")
    if len(capacity) != U or any(len(row) != B for row in capacity):
        raise MixInfeasible("capacity must have one row per unit and one column per bucket")
    act = active_w if active_w is not None else [[units[u].active_w] * B for u in range(U)]
    agg = [u for u in range(U) if units[u].pool == "agg"]
    pre = [u for u in range(U) if units[u].pool == "prefill"]
    dec = [u for u in range(U) if units[u].pool == "decode"]
    split_ok = bool(pre and dec)
    for b in range(B):
        if loads[b] <= 0:
            continue
        can_agg = any(capacity[u][b] > 0 for u in agg)
        can_split = split_ok and any(capacity[u][b] > 0 for u in pre) and any(capacity[u][b] > 0 for u in dec)
        if not (can_agg or can_split):
            raise MixInfeasible(f"bucket {b}: no GPU type serves it within the SLOs")
    prob = pulp.LpProblem("gpu_mix", pulp.LpMinimize)
    y = {(b, u): pulp.LpVariable(f"y_{b}_{u}", lowBound=0, upBound=S, cat="Integer")
         for b in range(B) for u in range(U) if loads[b] > 0 and capacity[u][b] > 0}
    z = {b: pulp.LpVariable(f"z_{b}", lowBound=0, upBound=S, cat="Integer") for b in range(B)
         if loads[b] > 0 and split_ok}
    hi = {u: None for u in range(U)}
    if max_gpus:
        hi = {u: (max_gpus[units[u].gpu] // units[u].gpus if units[u].gpu in max_gpus else None) for u in range(U)}
    n = [pulp.LpVariable(f"n_{u}", lowBound=0, upBound=hi[u], cat="Integer") for u in range(U)]
    prob += pulp.lpSum(units[u].cost_per_hour * n[u] for u in range(U))
    for b in range(B):
        if loads[b] <= 0:
            continue
        prob += pulp.lpSum(y[b, u] for u in agg if (b, u) in y) + (z[b] if b in z else 0) == S, f"serve_{b}"
        if b in z:
            prob += pulp.lpSum(y[b, u] for u in pre if (b, u) in y) == z[b], f"prefill_{b}"
            prob += pulp.lpSum(y[b, u] for u in dec if (b, u) in y) == z[b], f"decode_{b}"

    def used(u: int):  # units' worth of load assigned to unit type u
        return pulp.lpSum(y[b, u] * (loads[b] / S / capacity[u][b]) for b in range(B) if (b, u) in y)

    for u in range(U):
        prob += used(u) <= n[u], f"cover_{u}"
    if max_gpus:
        for g, cap_g in max_gpus.items():
            us = [u for u in range(U) if units[u].gpu == g]
            if us:
                prob += pulp.lpSum(units[u].gpus * n[u] for u in us) <= cap_g, f"avail_{g}"
    if power_budget_w is not None:
        prob += (pulp.lpSum(units[u].idle_w * n[u] for u in range(U))
                 + pulp.lpSum(y[b, u] * (loads[b] / S / capacity[u][b]) * (act[u][b] - units[u].idle_w)
                              for (b, u) in y) <= power_budget_w), "power"
    prob.solve(pulp.PULP_CBC_CMD(msg=False, timeLimit=time_limit_s, gapRel=gap_rel))
    if prob.sol_status not in (pulp.LpSolutionOptimal, pulp.LpSolutionIntegerFeasible):
        raise MixInfeasible(_why_infeasible(units, loads, capacity, act, max_gpus, power_budget_w, split_ok))
    counts = [int(round(v.value() or 0)) for v in n]
    slices = [[int(round(y[b, u].value() or 0)) if (b, u) in y else 0 for u in range(U)] for b in range(B)]
    split = [int(round(z[b].value() or 0)) if b in z else 0 for b in range(B)]
    need = [sum(slices[b][u] * loads[b] / S / capacity[u][b] for b in range(B) if slices[b][u]) for u in range(U)]
    load = [need[u] / counts[u] if counts[u] else 0.0 for u in range(U)]
    power = sum(units[u].idle_w * counts[u] for u in range(U)) + sum(
        slices[b][u] * loads[b] / S / capacity[u][b] * (act[u][b] - units[u].idle_w)
        for b in range(B) for u in range(U) if slices[b][u])
    cost = sum(units[u].cost_per_hour * counts[u] for u in range(U))
    optimal = prob.sol_status == pulp.LpSolutionOptimal
    return MixSolution(status="optimal" if optimal else "feasible (time limit)", cost_per_hour=cost, counts=counts,
                       slices=slices, split=split, load=load, power_w=power, gap=gap_rel if optimal else math.nan,
                       bound=None, solve_time_s=time.perf_counter() - t0, variables=len(prob.variables()),
                       constraints=len(prob.constraints))


def _why_infeasible(units: list[Unit], loads: list[float], capacity: list[list[float]], act: list[list[float]],
                    max_gpus: dict[str, int] | None, power_budget_w: float | None, split_ok: bool) -> str:
    """One line naming the limit that binds: the least power any mix needs against the budget, or the GPUs the
    load needs against the availability."""
    B, U = len(loads), len(units)
    if power_budget_w is not None:
        # the least power: every bucket on the unit with the least active watts per request/s (no idle draw)
        least = 0.0
        for b in range(B):
            if loads[b] <= 0:
                continue
            per = [act[u][b] / capacity[u][b] for u in range(U) if capacity[u][b] > 0 and units[u].pool == "agg"]
            if split_ok:
                p = [act[u][b] / capacity[u][b] for u in range(U) if capacity[u][b] > 0 and units[u].pool == "prefill"]
                d = [act[u][b] / capacity[u][b] for u in range(U) if capacity[u][b] > 0 and units[u].pool == "decode"]
                if p and d:
                    per.append(min(p) + min(d))
            least += loads[b] * min(per)
        if least > power_budget_w:
            return (f"the power budget of {power_budget_w / 1e3:,.2f} kW is below the {least / 1e3:,.2f} kW the "
                    f"least power-hungry mix draws at this load")
    if max_gpus:
        avail = ", ".join(f"{g} {c}" for g, c in sorted(max_gpus.items()))
        return (f"the GPUs available ({avail}) cannot carry the load within the SLOs"
                + (" and the power budget" if power_budget_w is not None else ""))
    return "no mix meets the limits (power budget and availability together)"


def exhaustive_mix(costs: list[float], loads: list[float], capacity: list[list[float]], slice_factor: int
                   ) -> tuple[float, list[int]]:
    """The cheapest assignment of every slice to one GPU type by enumerating all of them (Mélange's binary
    formulation taken literally: single-GPU units, no limits), the reference a test holds :func:`solve_mix` to.
    ``(cost per hour, counts)``; ``types ** (buckets x slices)`` assignments."""
    from itertools import product

    T, B, S = len(costs), len(loads), slice_factor
    slices = [(b, loads[b] / S) for b in range(B) if loads[b] > 0 for _ in range(S)]
    options = [[t for t in range(T) if capacity[t][b] > 0] for b, _ in slices]
    best = (math.inf, [0] * T)
    for pick in product(*options):
        need = [0.0] * T
        for (b, lam), t in zip(slices, pick):
            need[t] += lam / capacity[t][b]
        counts = [math.ceil(v - 1e-9) for v in need]
        cost = sum(c * k for c, k in zip(costs, counts))
        if cost < best[0] - 1e-12:
            best = (cost, counts)
    return best


__all__ = ["MixInfeasible", "MixSolution", "Pool", "Unit", "exhaustive_mix", "solve_mix"]
