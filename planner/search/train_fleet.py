"""Training fleet: which GPU type, how many GPUs and which plan train a model on ``tokens`` tokens at the least
cost, within a deadline (and budget).

Each GPU type is searched on its own with the same job (:func:`planner.search.training.search_training`: its
objective picks the type's plan over its grid of GPU counts up to ``gpus``; with a deadline, GPU counts too
small to meet it are cut by the search's own deadline bound, which needs only the FLOPs bound of a layout).
Across types the answer is the plan of least cost to train, ``GPUs x $/GPU-h x time to train`` (ties: the
faster, then the order given). Each type's search is exact for its objective over its grid, so the answer is the
cheapest of the types' answers and never costs more than any one of them.

The frontier: each feasible type's plan as (time to train, cost to train); a plan is Pareto-optimal when no
other type's plan is at least as fast and as cheap, and strictly better in one. A type with no plan meeting the
constraints is listed with the search's reason (one line) and, when a deadline or budget excluded it, the
fastest time to train it reaches, searched again without the deadline and budget (:func:`_fastest`).

Bounding the GPU counts by the deadline. A search that finds nothing re-searches every GPU count without its
bounds to explain why (seconds per type), so with a deadline each type is first checked count by count
(:func:`_deadline_check`): the fastest plan at ``gpus`` (objective ``time``: one GPU count, ~0.1 s), then at each
smaller count of the type's GPU-count grid, largest first, until the FLOPs bound of a count
(``0.98 x 6 N_matmul x tokens / (n x peak)`` at the fastest dtype allowed:
:func:`planner.search.training.flops_lower_bound`, which no plan beats) reaches the fastest time found. As soon as
one count meets the deadline the full search runs (and finds a plan); when none does, the type is refused with the
fastest time found, which is the exact fastest over the grid (the counts not searched cannot beat it).

Power and energy (:mod:`planner.cost.power`): every GPU at its TDP, ``P = GPUs x TDP`` (the Llama 3 model
card's convention, an upper bound), and ``E = P x time to train``.
"""

from __future__ import annotations

import math
import time
from typing import Any, Callable, Sequence

from pydantic import BaseModel, Field

from ..cost.power import energy_mwh, training_power_w
from ..cost.training import PlanError
from ..errors import PlannerError
from ..limits import MAX_TOKENS, MAX_USD, check_number
from ..results import ResultMixin
from ..specs.hardware import System
from ..specs.model import ModelSpec
from .training import InfeasibleError, TrainingPlan, TrainSearchResult, _gpu_counts, flops_lower_bound, search_training

#: At most this many GPU types in one search (each is a full training search).
MAX_GPU_TYPES = 64


class FleetTrainError(PlanError):
    """A training-fleet job the search cannot take (no types, a duplicated type, a type without a price)."""


class TypePlan(BaseModel):
    """One GPU type's answer: its search result and the figures the types are compared by."""

    gpu: str = Field(description="the system's name")
    num_gpus: int
    time_to_train_s: float
    cost_to_train_usd: float
    price_per_gpu_hour_usd: float
    power_w: float = Field(description="GPUs x TDP (planner.cost.power.training_power_w)")
    energy_to_train_mwh: float = Field(description="power x time to train")
    pareto: bool = Field(description="no other type's plan is as fast and as cheap (one strictly)")
    result: TrainSearchResult


class TypeRefusal(BaseModel):
    """A GPU type with no plan meeting the constraints."""

    gpu: str
    reason: str = Field(description="the training search's one-line reason")
    fastest_time_to_train_s: float | None = Field(None, description="with a deadline or budget: the fastest time "
                                                  "to train the type reaches without them")
    fastest_num_gpus: int | None = None


class FleetTrainResult(ResultMixin, BaseModel):
    """What :func:`search_training_fleet` returns."""

    objective: str
    tokens: float
    deadline_s: float | None
    budget_usd: float | None
    cheapest: TypePlan
    frontier: list[TypePlan] = Field(description="each feasible type's plan, cheapest first")
    infeasible: list[TypeRefusal]
    elapsed_s: float

    def _summary(self) -> str:
        c = self.cheapest
        return (f"cheapest: {c.num_gpus:,} x {c.gpu}, {c.time_to_train_s / 86400:,.1f} days, "
                f"${c.cost_to_train_usd / 1e6:,.2f}M, {c.energy_to_train_mwh:,.0f} MWh; {len(self.frontier)} type(s) "
                f"feasible, {len(self.infeasible)} not")

    def _rows(self) -> list[dict[str, Any]]:
        return [{"gpu": f.gpu, "gpus": f.num_gpus, "days": f.time_to_train_s / 86400, "cost_usd": f.cost_to_train_usd,
                 "price_per_gpu_hour_usd": f.price_per_gpu_hour_usd, "energy_mwh": f.energy_to_train_mwh,
                 "pareto": f.pareto} for f in self.frontier]


def _check(systems: Sequence[System], tokens: float, deadline_s: float | None, budget_usd: float | None,
           price: float | None) -> None:
    if not isinstance(systems, (list, tuple)) or not all(isinstance(s, System) for s in systems):
        raise FleetTrainError("search_training_fleet takes a list of Systems (planner.get_system)")
    if not systems:
        raise FleetTrainError("no GPU types given (expected one or more, e.g. h100,h200,b200,mi300x)")
    if len(systems) > MAX_GPU_TYPES:
        raise FleetTrainError(f"at most {MAX_GPU_TYPES} GPU types, got {len(systems)}")
    seen: dict[str, int] = {}
    for i, s in enumerate(systems):
        if s.name in seen:
            raise FleetTrainError(f"GPU type {s.name} is listed twice (entries {seen[s.name] + 1} and {i + 1})")
        seen[s.name] = i
    try:
        check_number(tokens, "tokens", hi=MAX_TOKENS)
        if tokens <= 0:
            raise FleetTrainError(f"tokens must be positive, got {tokens:g}")
        if price is not None:
            check_number(price, "price per GPU-hour", hi=MAX_USD)
    except PlannerError as exc:
        raise FleetTrainError(str(exc)) from None
    if price is None:
        for s in systems:
            if s.accelerator.price_per_hour_usd is None:
                raise FleetTrainError(f"GPU type {s.name} has no price_per_hour_usd in its spec: give a price "
                                      "(--price) or leave it out of the list")
    del deadline_s, budget_usd  # checked by the training search


def pareto_flags(points: Sequence[tuple[float, float]]) -> list[bool]:
    """For each (time, cost), whether no other point is at least as good in both and better in one."""
    out = []
    for i, (t, c) in enumerate(points):
        out.append(not any(j != i and t2 <= t and c2 <= c and (t2 < t or c2 < c)
                           for j, (t2, c2) in enumerate(points)))
    return out


def _without_limits(options: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in options.items() if k not in ("tokens", "deadline_s", "budget_usd", "objective", "pareto",
                                                          "top", "refine", "progress")}


def _fastest_at(search: Callable[..., TrainSearchResult], model: ModelSpec, system: System, gpus: int, seq_len: int,
                global_batch: int, tokens: float, options: dict[str, Any]) -> tuple[float, int] | None:
    """(time to train ``tokens``, ``gpus``) of the fastest plan at ``gpus`` GPUs (no deadline or budget), or None
    when no plan of ``gpus`` GPUs fits or divides the batch."""
    try:
        res = search(model, system, gpus, seq_len, global_batch, objective="time", tokens=tokens, top=1,
                     refine=False, **_without_limits(options))
    except InfeasibleError:
        return None
    return tokens / res.best.tokens_per_s, res.best.num_gpus


def _fastest(search: Callable[..., TrainSearchResult], model: ModelSpec, system: System, gpus: int, seq_len: int,
             global_batch: int, tokens: float, options: dict[str, Any]) -> tuple[float, int] | None:
    """(fastest time to train ``tokens``, its GPU count) without deadline or budget: the fastest plan at ``gpus``
    (the most GPUs train fastest), or, when no plan of ``gpus`` GPUs fits or divides the batch, the head of the
    type's time / cost front over its GPU counts."""
    at = _fastest_at(search, model, system, gpus, seq_len, global_batch, tokens, options)
    if at is not None:
        return at
    try:
        res = search(model, system, gpus, seq_len, global_batch, objective="cost", tokens=tokens, pareto=True,
                     top=1, refine=False, **_without_limits(options))
    except InfeasibleError:
        return None
    best = min(res.pareto or [res.best], key=lambda e: (1.0 / e.tokens_per_s, e.num_gpus))
    return tokens / best.tokens_per_s, best.num_gpus


def _time_bound_per_gpu(model: ModelSpec, system: System, seq_len: int, tokens: float,
                        options: dict[str, Any]) -> float | None:
    """GPU-seconds no plan trains ``tokens`` in less than (the FLOPs bound at the fastest dtype allowed; module
    docstring), or None when it cannot be formed."""
    # the dtypes the search may use (its default: bf16)
    dtypes = options.get("dtypes") or ("bf16",)
    try:
        fastest = max((d for d in dtypes if d in ("bf16", "fp16", "fp8")), key=system.accelerator.flops)
        one = TrainingPlan(global_batch=1, seq_len=seq_len, dtype=fastest)  # one GPU, one sequence per step
        return flops_lower_bound(model, system, one) / seq_len * tokens
    except (PlannerError, ValueError):
        return None


def _deadline_check(search: Callable[..., TrainSearchResult], model: ModelSpec, system: System, gpus: int,
                    seq_len: int, global_batch: int, objective: str, tokens: float, deadline_s: float,
                    options: dict[str, Any]) -> tuple[tuple[float, int] | None, bool]:
    """(fastest (time to train, GPUs) found, whether no GPU count meets the deadline for certain), count by count
    (module docstring). Not certain (the full search decides) when a count meets it, when no count searched has a
    plan (the full search says why) or when the FLOPs bound cannot be formed."""
    bound = _time_bound_per_gpu(model, system, seq_len, tokens, options)
    best: tuple[float, int] | None = None
    for n in sorted(_gpu_counts(system, gpus, objective), reverse=True):
        if best is not None:
            if bound is None:
                return best, False
            if bound / n >= best[0]:
                break  # this count and every smaller one are slower than the fastest found
        at = _fastest_at(search, model, system, n, seq_len, global_batch, tokens, options)
        if at is None:
            continue
        if best is None or at[0] < best[0]:
            best = at
        if at[0] <= deadline_s:
            return best, False
    return best, best is not None


def search_training_fleet(model: ModelSpec, systems: Sequence[System], gpus: int, seq_len: int, global_batch: int,
                          *, tokens: float, objective: str = "cost", deadline_s: float | None = None,
                          budget_usd: float | None = None, price_per_gpu_hour: float | None = None,
                          search: Callable[..., TrainSearchResult] | None = None,
                          on_type: Callable[[str], None] | None = None, **options: Any) -> FleetTrainResult:
    """The cheapest (GPU type, GPU count, plan) that trains ``tokens`` tokens within ``deadline_s`` and
    ``budget_usd`` (module docstring), with the frontier over types and the types that cannot.

    ``gpus``: the most GPUs of any type; ``objective`` picks each type's plan as in :func:`search_training`
    (``cost``: cheapest per token; ``deadline``: fewest GPUs; ``time``: fastest at ``gpus``);
    ``price_per_gpu_hour``: one price for every type [default: each spec's]; ``dtypes`` (in ``options``): as
    :func:`search_training`'s, or "auto": bf16, and fp8 on the types with FP8 tensor cores; ``search``: the
    per-type search (default :func:`search_training`; :mod:`planner.api` passes its gated one); ``on_type``:
    called with each type's name before its search; ``options``: the other arguments of :func:`search_training`.
    Raises :class:`FleetTrainError` for a bad list and :class:`InfeasibleError` when no type has a plan (naming
    the fastest time to train any type reaches when a deadline or budget excluded them).
    """
    t0 = time.perf_counter()
    _check(systems, tokens, deadline_s, budget_usd, price_per_gpu_hour)
    run = search or search_training
    feasible: list[tuple[System, TrainSearchResult]] = []
    refused: list[TypeRefusal] = []
    for s in systems:
        if on_type is not None:
            on_type(s.name)
        job = dict(options, objective=objective, tokens=tokens, deadline_s=deadline_s, budget_usd=budget_usd,
                   price_per_gpu_hour=price_per_gpu_hour)
        if options.get("dtypes") == "auto":  # bf16, and fp8 where the type has FP8 tensor cores
            job["dtypes"] = ("bf16", "fp8") if s.accelerator.has_native("fp8") else ("bf16",)
        fastest = None
        if deadline_s is not None and objective != "time":
            fastest, none_meets = _deadline_check(run, model, s, gpus, seq_len, global_batch, objective, tokens,
                                                  deadline_s, job)
            if none_meets and fastest is not None:
                refused.append(TypeRefusal(
                    gpu=s.name, reason=f"no plan meets the deadline: the fastest plan ({fastest[1]} GPUs) needs "
                    f"{fastest[0] / 86400:.1f} days for {tokens:.3g} tokens; the deadline is {deadline_s / 86400:.1f} "
                    "days", fastest_time_to_train_s=fastest[0], fastest_num_gpus=fastest[1]))
                continue
        try:
            feasible.append((s, run(model, s, gpus, seq_len, global_batch, **job)))
        except InfeasibleError as exc:
            if deadline_s is None and budget_usd is None:
                fastest = None
            elif fastest is None or deadline_s is None or fastest[0] > deadline_s:  # not the check's certain one
                fastest = _fastest(run, model, s, gpus, seq_len, global_batch, tokens, job)
            refused.append(TypeRefusal(gpu=s.name, reason=" ".join(str(exc).split()),
                                       fastest_time_to_train_s=fastest[0] if fastest else None,
                                       fastest_num_gpus=fastest[1] if fastest else None))
    if not feasible:
        raise InfeasibleError(_none_feasible(refused, tokens, deadline_s, budget_usd))
    rows = []
    for s, res in feasible:
        best = res.best
        t = tokens / best.tokens_per_s
        price = res.price_per_gpu_hour
        assert price is not None  # _check: every type has one
        power = training_power_w(s.accelerator, best.num_gpus)
        rows.append(dict(gpu=s.name, num_gpus=best.num_gpus, time_to_train_s=t,
                         cost_to_train_usd=best.num_gpus * price * t / 3600.0, price_per_gpu_hour_usd=price,
                         power_w=power, energy_to_train_mwh=energy_mwh(power, t), result=res))
    flags = pareto_flags([(r["time_to_train_s"], r["cost_to_train_usd"]) for r in rows])
    plans = [TypePlan(**r, pareto=f) for r, f in zip(rows, flags)]
    order = sorted(range(len(plans)), key=lambda i: (plans[i].cost_to_train_usd, plans[i].time_to_train_s, i))
    frontier = [plans[i] for i in order]
    return FleetTrainResult(objective=objective, tokens=tokens, deadline_s=deadline_s, budget_usd=budget_usd,
                            cheapest=frontier[0], frontier=frontier, infeasible=refused,
                            elapsed_s=time.perf_counter() - t0)


def _none_feasible(refused: list[TypeRefusal], tokens: float, deadline_s: float | None,
                   budget_usd: float | None) -> str:
    reach = [r for r in refused if r.fastest_time_to_train_s is not None]
    f = min(reach, key=lambda r: r.fastest_time_to_train_s or math.inf) if reach else None
    if f is not None and deadline_s is not None and (f.fastest_time_to_train_s or 0.0) > deadline_s:
        days = (f.fastest_time_to_train_s or 0.0) / 86400
        return (f"no GPU type trains {tokens:.3g} tokens within {deadline_s / 86400:.1f} days"
                + (f" and ${budget_usd:,.0f}" if budget_usd is not None else "")
                + f": the fastest reachable is {days:,.1f} days ({f.gpu}, {f.fastest_num_gpus} GPUs)")
    if reach and budget_usd is not None:
        return f"no GPU type trains {tokens:.3g} tokens within ${budget_usd:,.0f}: " + "; ".join(
            f"{r.gpu}: {r.reason}" for r in refused)
    return "no GPU type has a plan: " + "; ".join(f"{r.gpu}: {r.reason}" for r in refused)


__all__ = ["FleetTrainError", "FleetTrainResult", "MAX_GPU_TYPES", "TypePlan", "TypeRefusal", "pareto_flags",
           "search_training_fleet"]
