"""Training plan search: the fastest (or cheapest) plan a job can run with, certified.

For one GPU count the search is a branch and bound over the shapes of
:mod:`planner.search.candidates`:

1. Memory bound: a shape whose weights, gradients and optimizer states alone
   (spread evenly over its pipeline stages, the most favourable case) exceed
   the GPU's memory cannot fit with any recomputation or partition: pruned.
2. Time bound: each shape gets the lower bound
   ``LB = (sum of its layers' time without recomputation, with their TP / CP / EP
   communication, plus embedding and LM head) / pp * (m + (pp - 1) / vpp)`` per
   step. The estimator's step time is never below it: stage times only add
   point-to-point sends and recomputation (which also repeats the forward
   collectives), the step adds data-parallel and optimizer time, and ``m max(t) + (sum(t) - max(t)) / vpp >= mean(t) (m + (pp - 1) / vpp)``.
3. Shapes are ordered first by a cheaper FLOPs bound (:func:`flops_lower_bound`),
   which is replaced by ``LB`` when the shape comes up; shapes are estimated in
   increasing ``LB``; the search stops when the next
   ``LB`` is no better than the k-th best step time found. The result is
   therefore the exhaustive optimum of the same cost model (tests check it on
   small instances).
4. Per shape, recomputation: no recomputation if it fits; otherwise the better
   fitting one of selective recomputation and full recomputation of the fewest
   layers per stage that fit (:func:`min_recompute_per_stage`).
5. The best plans with pipelining are refined by the partition MILP
   (:mod:`planner.search.partition`): uneven layers per stage and per-stage
   recomputation, kept when the estimator confirms they are faster and fit.

Objectives across GPU counts: ``time`` (fastest at the given count), ``cost``
(cheapest per token among counts up to the given one, within the budget and
deadline if given), ``deadline`` (fewest GPUs, then cheapest, that train
``tokens`` within the deadline). GPU counts form a geometric grid (the node
size times powers of two, plus the count given), so the work grows with the
divisors of each count, never with the GPUs; :func:`_search_counts` visits them
cheapest-first and stops each count at a step time that cannot enter the answer
(the k-th best cost found so far, the deadline). A shape whose micro-batch fits
in no way rules out the larger micro-batches of the same layout.
"""

from __future__ import annotations

import dataclasses
import heapq
import math
import time
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Callable, Literal

from pydantic import BaseModel, Field, computed_field

from ..results import ResultMixin

from ..cost.memory import RUNTIME_RESERVED_BYTES, state_bytes
from ..cost.stage_costs import stage_costs
from ..cost.training import (
    _KEEP,
    PlanError,
    TrainingEstimate,
    TrainingPlan,
    _extra_time_cached,
    _key,
    _layer_table,
    _model_flops_cached,
    _representatives_cached,
    _stages_cached,
    estimate_training,
    groups_for,
    layer_shape,
    layer_time,
)
from ..cost.training_plan import training_warnings
from ..errors import PlannerError
from ..limits import (MAX_BATCH, MAX_DEADLINE_S, MAX_GPUS, MAX_POSITIONS, MAX_TOKENS, MAX_TOP, MAX_USD, check_int,
                      check_number)
from ..specs.hardware import System
from ..specs.model import ModelSpec
from .candidates import MICRO_BATCHES, Shape, dp_degrees, enumerate_shapes

Objective = Literal["time", "cost", "deadline"]
GB = 1e9


class InfeasibleError(PlanError):
    """No plan satisfies the job's constraints; the message says which binds and by how much."""


class PartitionInfo(BaseModel):
    status: str
    objective_s: float = Field(description="the MILP's pipeline time")
    bound_s: float = Field(description="balanced-pipeline lower bound")
    gap: float
    solve_time_s: float
    improved: bool = Field(description="whether the refined partition beat the even one")


class TrainSearchResult(ResultMixin, BaseModel):
    """What :func:`search_training` returns."""

    objective: str
    best: TrainingEstimate
    alternatives: list[TrainingEstimate]
    pareto: list[TrainingEstimate] | None = None
    binding: list[str] = Field(description="constraints that limit the chosen plan")
    partition: PartitionInfo | None = None
    gpu_counts: list[int]
    shapes: int = Field(description="shapes that pass the placement and divisibility rules")
    estimated: int = Field(description="plans the estimator evaluated")
    pruned: dict[str, int]
    elapsed_s: float
    tokens: float | None = None
    price_per_gpu_hour: float | None = None
    plan_document: dict[str, Any] | None = Field(None, description="the best plan's document "
                                                 "(planner.training-plan), filled and checked by planner.search_train")
    warnings: list[str] = Field(default_factory=list, description="one-line warnings about the best plan (MFU far "
                                "above published runs; over a year to train ``tokens``): planner.cost.training_plan."
                                "training_warnings")

    def cost_per_million_tokens(self, est: TrainingEstimate) -> float | None:
        """Dollars per million tokens trained by plan ``est`` (the best, an alternative or a Pareto plan) at the
        search's price per GPU-hour (None without one); the best plan's is :attr:`cost_per_million_tokens_usd`."""
        if self.price_per_gpu_hour is None:
            return None
        return est.num_gpus * self.price_per_gpu_hour / 3600.0 / est.tokens_per_s * 1e6

    @computed_field  # type: ignore[prop-decorator]
    @property
    def cost_per_million_tokens_usd(self) -> float | None:
        """The best plan's dollars per million tokens (None without a price)."""
        return self.cost_per_million_tokens(self.best)

    def _summary(self) -> str:
        cpm = self.cost_per_million_tokens_usd
        return (f"best of {self.estimated:,} plans ({self.objective}): {self.best._summary()}"
                + (f", ${cpm:.3f} per million tokens" if cpm is not None else "")
                + f"; {len(self.alternatives)} alternatives")

    def _rows(self) -> list[dict[str, Any]]:
        out = []
        for rank, e in enumerate([self.best] + [a for a in self.alternatives if a is not self.best]):
            p = e.plan
            out.append({"rank": rank, "gpus": e.num_gpus, "tp": p.tp, "pp": p.pp, "vpp": p.vpp, "cp": p.cp,
                        "ep": p.ep, "dp": p.dp, "micro_batch": p.micro_batch, "recompute": p.recompute,
                        "zero": p.zero, "dtype": p.dtype, "step_time_s": e.step_time_s, "tokens_per_s": e.tokens_per_s,
                        "mfu": e.mfu, "peak_gb": e.memory.peak_bytes / 1e9,
                        "usd_per_million_tokens": self.cost_per_million_tokens(e)})
        return out


# ---------------------------------------------------------------------------
# bounds
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class SearchSpace:
    """What the search may choose beyond the degrees, and the fields it must keep.

    ``recompute``: the recomputation modes allowed; ``partial_recompute``: with
    "full" allowed, whether only some layers per stage may be recomputed;
    ``even_layers``: only layouts with equal layers per model chunk;
    ``micro_batches``: the micro-batch sizes tried;
    ``base``: TrainingPlan fields fixed for every plan (e.g. ``attention``,
    ``sp``, ``grad_reduce_in_fp32``), overriding the search's defaults.
    """

    seq_len: int
    global_batch: int
    dtypes: tuple[str, ...] = ("bf16",)
    zero_stages: tuple[int, ...] = (1, 3)
    recompute: tuple[str, ...] = ("none", "selective", "full")
    partial_recompute: bool = True
    even_layers: bool = False
    micro_batches: tuple[int, ...] = MICRO_BATCHES
    base: tuple[tuple[str, object], ...] = ()
    capacity: float = 0.0

    def plan(self, shape: Shape, recompute: str = "none") -> TrainingPlan:
        fields = dict(
            tp=shape.tp, pp=shape.pp, vpp=shape.vpp, cp=shape.cp, ep=shape.ep, etp=shape.etp, dp=shape.dp,
            micro_batch=shape.micro_batch, global_batch=self.global_batch, seq_len=self.seq_len,
            recompute=recompute, sp=shape.tp > 1, zero=shape.zero, dtype=shape.dtype,
        )
        fields.update(dict(self.base))
        fields["recompute"] = recompute
        if fields.get("sp") and shape.tp == 1:
            fields["sp"] = False
        return TrainingPlan(**fields)


@lru_cache(maxsize=64)
def _param_totals(mkey: int) -> tuple[float, float]:
    """(dense params incl. embedding, LM head and final norm; routed-expert params) of a model."""
    model: ModelSpec = _KEEP[mkey]  # type: ignore[assignment]
    _, table = _layer_table(mkey)
    dense = sum(t[0] for t in table) + model.embedding_params + model.lm_head_params + model.final_norm_params
    return dense, sum(t[1] for t in table)


def state_lower_bound(model: ModelSpec, shape: Shape, grad_fp32: bool = True) -> float:
    """Bytes per GPU of weights, gradients and optimizer states if every stage held
    an equal share (the most loaded stage holds at least this), plus the runtime reserve.

    A valid lower bound of the phase-aware peak (:func:`planner.cost.memory.phase_peak_bytes`):
    the optimizer step holds every state, the fp32 main gradients of 16-bit-gradient plans
    included, plus ``other`` (at least the reserve), and the peak is at least the step."""
    dense, expert = _param_totals(_key(model))
    etp = shape.etp
    st = state_bytes(dense / (shape.tp * shape.pp), expert / (shape.ep * etp * shape.pp), shape.dp * shape.cp,
                     max(1, shape.tp * shape.cp * shape.dp // (shape.ep * etp)), shape.zero, shape.dtype,
                     4.0 if grad_fp32 else 2.0)
    return st.weights_bytes + st.gradients_bytes + st.optimizer_bytes + RUNTIME_RESERVED_BYTES


def flops_lower_bound(model: ModelSpec, system: System, plan: TrainingPlan) -> float:
    """A cheaper, looser step-time bound: the weight matmuls' FLOPs (``6 N_matmul``
    per token, less 2 % for biases and norms counted in ``N``) at the dense peak,
    spread over the GPUs, times the pipeline factor ``(m + (pp - 1) / vpp) / m``."""
    matmul = _model_flops_cached(_key(model), 0)  # 6 N_matmul per token: no attention term at length 0
    tokens = plan.global_batch * plan.seq_len
    m = plan.num_microbatches
    peak = system.accelerator.flops(plan.dtype)
    return 0.98 * matmul * tokens / (plan.num_gpus * peak) * (m + (plan.pp - 1) / plan.vpp) / m


def time_lower_bound(model: ModelSpec, system: System, plan: TrainingPlan) -> float:
    """Step-time lower bound of a shape (module docstring, point 2)."""
    mkey = _key(model)
    groups = groups_for(system, plan)
    sh = layer_shape(plan)
    reps = _representatives_cached(mkey)
    _, _, counts = _stages_cached(mkey, 1, 1)
    total = 0.0
    for sig, n in counts[0]:
        total += n * layer_time(model, system, reps[sig], sh, plan.dtype, "none", groups).total_s
    total += _extra_time_cached(mkey, _key(system), sh, plan.dtype, True, True, groups).total_s
    m = plan.num_microbatches
    return total / plan.pp * (m + (plan.pp - 1) / plan.vpp)


# ---------------------------------------------------------------------------
# recomputation for one shape
# ---------------------------------------------------------------------------

def min_recompute_per_stage(model: ModelSpec, system: System, plan: TrainingPlan, capacity: float | None = None,
                            peaks_without: list[float] | None = None) -> tuple[tuple[int, ...], TrainingEstimate] | None:
    """The fewest layers per stage to recompute fully (the first ones of each
    stage, Megatron's block method) so that every stage fits, with the estimate
    of that plan; ``None`` if even recomputing all of them does not.

    Per stage this is a knapsack whose items are the stage's layers (weight:
    the time a recomputation adds, value: the bytes it frees) restricted to
    prefixes, which Megatron can express; its optimum is the shortest prefix
    whose savings cover the excess, found by walking the stage's layers.
    The result is checked with the estimator and a stage still over the limit
    gets one more layer until it fits. ``peaks_without``: the per-stage peaks
    of the same plan without recomputation, if already estimated.
    """
    cap = capacity if capacity is not None else system.accelerator.memory_bytes
    if peaks_without is None:
        base = plan.model_copy(update={"recompute": "full", "recompute_per_stage": (0,) * plan.pp})
        peaks_without = estimate_training(model, system, base, per_stage_memory=True).stage_peak_bytes or []
    peaks = peaks_without
    costs = stage_costs(model, system, plan.model_copy(update={"recompute": "full"})) if plan.zero < 3 else None
    _, stages, _ = _stages_cached(_key(model), plan.pp, plan.vpp, plan.layers_per_chunk)
    rec = []
    for s, layers in enumerate(stages):
        excess = peaks[s] - cap
        if excess <= 0:
            rec.append(0)
            continue
        if costs is None:  # ZeRO-3: same activations, no stage_costs; walk with the estimator's numbers
            rec.append(len(layers))
            continue
        step = sum(costs.state[costs.kind[i]] + costs.main_grad[costs.kind[i]] for i in layers) + costs.extra_step[s]
        if step > cap * (1 + 1e-9):  # the optimizer step (fp32 main grads, no activations): recomputation cannot help
            return None
        f = costs.inflight[s]
        freed, r = -max(costs.a_none), 0  # the re-materialised layer costs one layer's activations
        while r < len(layers) and freed < excess:
            k = costs.kind[layers[r]]
            freed += f * (costs.a_none[k] - costs.a_full[k])
            r += 1
        if freed < excess:
            return None
        rec.append(r)
    for _ in range(4):  # confirm with the estimator
        cand = plan.model_copy(update={"recompute": "full", "recompute_per_stage": tuple(rec)})
        if rec == [len(x) for x in stages]:
            cand = cand.model_copy(update={"recompute_per_stage": None})
        est = estimate_training(model, system, cand, per_stage_memory=True)
        over = [s for s, p in enumerate(est.stage_peak_bytes or []) if p > cap]
        if not over:
            return tuple(rec), est
        for s in over:
            if rec[s] >= len(stages[s]):
                return None
            rec[s] += 1
    return None


def _recompute_options(model: ModelSpec, system: System, shape: Shape, space: SearchSpace, counter: Counter,
                       peaks_without: list[float] | None = None) -> tuple[TrainingEstimate | None, float]:
    """The fastest fitting recomputation the space allows (selective; the fewest
    fully recomputed layers per stage, or all of them), and the smallest peak seen."""
    cap = space.capacity
    options = []
    smallest = math.inf
    if "selective" in space.recompute:
        sel = estimate_training(model, system, space.plan(shape, "selective"))
        counter["estimated"] += 1
        smallest = sel.memory.peak_bytes
        if sel.memory.peak_bytes <= cap:
            options.append(sel)
    if "full" in space.recompute:
        full_plan = space.plan(shape, "full")
        found = (min_recompute_per_stage(model, system, full_plan, cap, peaks_without) if space.partial_recompute
                 else None)
        if found is not None:
            counter["estimated"] += 1 if peaks_without is not None else 2
            part = found[1].model_copy(update={"stage_peak_bytes": None})
            options.append(part)
            smallest = min(smallest, part.memory.peak_bytes)
        else:
            counter["estimated"] += 1
            full = estimate_training(model, system, full_plan)
            smallest = min(smallest, full.memory.peak_bytes)
            if full.memory.peak_bytes <= cap:
                options.append(full)
    if not options:
        return None, smallest
    return min(options, key=lambda e: e.step_time_s), smallest


# ---------------------------------------------------------------------------
# one GPU count
# ---------------------------------------------------------------------------

class _CountResult:
    def __init__(self) -> None:
        self.top: list[TrainingEstimate] = []
        self.shapes = 0
        self.pruned: Counter = Counter()
        self.smallest_peak: tuple[float, Shape] | None = None
        self.min_state: tuple[float, Shape] | None = None


def _search_count(model: ModelSpec, system: System, gpus: int, space: SearchSpace, top: int, counter: Counter,
                  progress: Callable[[int, int], None] | None, beyond_s: float = math.inf,
                  need_own: bool = False) -> _CountResult:
    """The ``top`` fastest plans at one GPU count. ``beyond_s``: a step time no
    plan of this count needs to beat (it could not enter the answer across GPU
    counts: the deadline, or the k-th best cost found at other counts); the
    search stops when the next lower bound reaches it (after this count's own
    best plan when ``need_own``, for a Pareto front)."""
    res = _CountResult()
    shapes = list(enumerate_shapes(model, system, gpus, space.seq_len, space.global_batch, space.dtypes,
                                   space.zero_stages, skipped=res.pruned, even_layers=space.even_layers,
                                   micro_batches=space.micro_batches))
    res.shapes = len(shapes)
    ranked = []
    for shape in shapes:
        lb_mem = state_lower_bound(model, shape, dict(space.base).get("grad_reduce_in_fp32", True))
        if lb_mem > space.capacity:
            res.pruned["weights and optimizer states exceed memory"] += 1
            if res.min_state is None or lb_mem < res.min_state[0]:
                res.min_state = (lb_mem, shape)
            continue
        ranked.append((flops_lower_bound(model, system, space.plan(shape)), shape))
    # A queue ordered by lower bound. A shape is first estimated without
    # recomputation; if that does not fit, its step time (a lower bound for every
    # recomputation choice) becomes its new bound and it waits for its turn again.
    first_phase = 0 if "none" in space.recompute else 1
    queue = [(lb, -1, shape) for lb, shape in ranked]  # phase -1: only the FLOPs bound so far
    heapq.heapify(queue)
    heap: list[tuple[float, int, TrainingEstimate]] = []  # max-heap of the k best (negated times)
    done = 0
    total = len(queue)
    own_best = math.inf
    hopeless: dict[Shape, int] = {}  # shape without its micro-batch -> smallest micro-batch that fits in no way
    while queue:
        lb, phase, shape = heapq.heappop(queue)
        if len(heap) >= top and lb >= -heap[0][0]:
            res.pruned["bound: cannot beat the k-th best"] += 1 + len(queue)
            break
        if lb >= beyond_s and (not need_own or lb >= own_best):
            res.pruned[_ACROSS] += 1 + len(queue)
            break
        if phase == -1:  # tighten the bound with the layers' own times, then wait again
            heapq.heappush(queue, (max(lb, time_lower_bound(model, system, space.plan(shape))), first_phase, shape))
            continue
        if phase == 0:
            counter["estimated"] += 1
            est = estimate_training(model, system, space.plan(shape, "none"))
            if est.memory.peak_bytes > space.capacity:
                heapq.heappush(queue, (est.step_time_s, 1, shape))
                continue
            best: TrainingEstimate | None = est
        else:
            family = dataclasses.replace(shape, micro_batch=0)
            if shape.micro_batch >= hopeless.get(family, math.inf):
                # a larger micro-batch keeps at least as many activation bytes in flight (b min(pp, m) with m =
                # batch / (b dp)) under every recomputation, so it cannot fit where a smaller one does not
                res.pruned["does not fit memory even with recomputation"] += 1
                continue
            best, smallest = _recompute_options(model, system, shape, space, counter)
            if best is None:
                hopeless[family] = min(shape.micro_batch, hopeless.get(family, math.inf))
        done += 1
        if progress is not None and done % 16 == 0:
            progress(done, total)
        if best is None:
            res.pruned["does not fit memory even with recomputation"] += 1
            if res.smallest_peak is None or smallest < res.smallest_peak[0]:
                res.smallest_peak = (smallest, shape)
            continue
        own_best = min(own_best, best.step_time_s)
        item = (-best.step_time_s, -done, best)
        if len(heap) < top:
            heapq.heappush(heap, item)
        elif best.step_time_s < -heap[0][0]:
            heapq.heapreplace(heap, item)
    if progress is not None:
        progress(total, total)
    res.top = sorted((e for _, _, e in heap), key=lambda e: e.step_time_s)
    return res


def _refine(model: ModelSpec, system: System, est: TrainingEstimate, capacity: float,
            counter: Counter, partial: bool = True) -> tuple[TrainingEstimate, PartitionInfo | None]:
    """Uneven partition and per-stage recomputation by the MILP, kept if it is faster and fits."""
    plan = est.plan
    if plan.pp == 1 or plan.zero >= 3:
        return est, None
    from .partition import solve_partition

    base = plan.model_copy(update={"layers_per_chunk": None, "recompute_per_stage": None})
    costs = stage_costs(model, system, base)
    if capacity < costs.capacity:
        costs = type(costs)(**{**costs.__dict__, "capacity": capacity})
    sol = solve_partition(costs, allow_recompute=partial and plan.recompute == "full")
    if sol is None:
        return est, None
    update: dict = {"layers_per_chunk": sol.layers_per_chunk}
    if sol.recompute_per_stage is not None:
        update["recompute_per_stage"] = sol.recompute_per_stage
    new_plan = plan.model_copy(update=update)
    counter["estimated"] += 1
    try:
        new = estimate_training(model, system, new_plan)
    except PlanError:
        new = None
    improved = new is not None and new.memory.peak_bytes <= capacity and new.step_time_s < est.step_time_s * (1 - 1e-9)
    info = PartitionInfo(status=sol.status, objective_s=sol.objective_s, bound_s=sol.bound_s, gap=sol.gap,
                         solve_time_s=sol.solve_time_s, improved=improved)
    return (new if improved and new is not None else est), info


# ---------------------------------------------------------------------------
# the search
# ---------------------------------------------------------------------------

def _gpu_counts(system: System, gpus: int, objective: str) -> list[int]:
    if objective == "time":
        return [gpus]
    per = system.node.accelerators_per_node
    counts = {gpus}
    n = per
    while n < gpus:
        counts.add(n)
        n *= 2
    counts |= {c for c in (1, 2, 4) if c < per and c < gpus}
    return sorted(counts)


_ACROSS = "bound: cannot beat the plans at other GPU counts or meet the deadline"


def _search_counts(model: ModelSpec, system: System, gpus: int, counts: list[int], space: SearchSpace, objective: str,
                   top: int, pareto: bool, tokens: float | None, deadline_s: float | None,
                   ok: Callable[[TrainingEstimate], bool], progress: Callable[[int, int], None] | None,
                   across: bool, exact: dict[int, _CountResult] | None = None
                   ) -> tuple[Counter, dict[int, _CountResult], Counter, int]:
    """Search each GPU count. With ``across``, counts are visited in the order
    that finds the answer soonest and each count's search stops at a step time
    that could not enter the answer: for ``cost`` (largest count first) the
    k-th smallest GPU-seconds per step of the admissible plans found so far over
    this count's GPUs; for any objective with a deadline, the step time that
    trains ``tokens`` in time; for ``deadline`` (smallest count first) the
    counts above the first ``top`` admissible plans are not searched (with a
    Pareto front each count's own best plan is still found). ``exact``: counts
    already searched without those bounds, reused as they are."""
    counter: Counter = Counter()
    per_count: dict[int, _CountResult] = {}
    pruned: Counter = Counter()
    shapes = 0
    deadline_step = math.inf
    if across and deadline_s is not None and tokens is not None:
        deadline_step = deadline_s * space.global_batch * space.seq_len / tokens
    gpu_s: list[float] = []  # max-heap (negated) of the `top` smallest GPU-seconds per step among admissible plans
    admissible = 0
    order = sorted(counts, reverse=objective == "cost")
    for i, n in enumerate(order):
        if across and objective == "deadline" and not pareto and admissible >= top:
            break
        beyond = deadline_step
        if across and objective == "cost" and len(gpu_s) >= top:
            beyond = min(beyond, -gpu_s[0] / n)
        if exact and n in exact:
            r = exact[n]
        else:
            r = _search_count(model, system, n, space, top if n == gpus or objective != "time" else 1, counter,
                              _share(progress, i, len(order)), beyond, need_own=pareto)
        per_count[n] = r
        pruned.update(r.pruned)
        shapes += r.shapes
        for e in r.top:
            if ok(e):
                admissible += 1
                heapq.heappush(gpu_s, -n * e.step_time_s)
                if len(gpu_s) > top:
                    heapq.heappop(gpu_s)
    if progress is not None:  # the counts a bound skipped are done too
        progress(len(order) * _PROGRESS_STEPS, len(order) * _PROGRESS_STEPS)
    return counter, per_count, pruned, shapes


#: Steps of the progress each GPU count's search reports in (:func:`_share`).
_PROGRESS_STEPS = 1000


def _share(progress: Callable[[int, int], None] | None, i: int, k: int) -> Callable[[int, int], None] | None:
    """The ``progress`` of the ``i``-th of ``k`` GPU counts' searches as its equal share of the whole search's
    (``done / total`` of that count's queue, in :data:`_PROGRESS_STEPS` per count): one bar over every count."""
    if progress is None:
        return None
    return lambda done, total: progress(i * _PROGRESS_STEPS + _PROGRESS_STEPS * min(done, total) // max(total, 1),
                                        k * _PROGRESS_STEPS)


def search_training(model: ModelSpec, system: System, gpus: int, seq_len: int, global_batch: int, *,
                    objective: Objective = "time", tokens: float | None = None, budget_usd: float | None = None,
                    deadline_s: float | None = None, top: int = 5, dtypes: tuple[str, ...] = ("bf16",),
                    pareto: bool = False, refine: bool = True, max_memory_fraction: float = 0.95,
                    price_per_gpu_hour: float | None = None, recompute: tuple[str, ...] = ("none", "selective", "full"),
                    partial_recompute: bool = True, zero_stages: tuple[int, ...] = (1, 3),
                    base: dict | None = None, even_layers: bool = False,
                    micro_batches: tuple[int, ...] = MICRO_BATCHES,
                    progress: Callable[[int, int], None] | None = None) -> TrainSearchResult:
    """Search the plan space (module docstring). ``global_batch`` is in sequences.

    ``recompute`` / ``partial_recompute`` / ``zero_stages`` / ``base`` / ``even_layers`` /
    ``micro_batches``: see
    :class:`SearchSpace`; ``refine``: run the partition MILP on the best plan;
    ``max_memory_fraction``: the share of GPU memory a plan may use (default
    0.95: 5 % left for allocator fragmentation and buffers the memory model
    does not count).
    Raises :class:`InfeasibleError` naming the binding constraint when no plan fits.
    """
    t0 = time.perf_counter()
    _check_job(model, system, gpus, seq_len, global_batch, objective, tokens, budget_usd, deadline_s, top,
               dtypes, max_memory_fraction, price_per_gpu_hour, micro_batches, zero_stages, recompute)
    price = price_per_gpu_hour if price_per_gpu_hour is not None else system.accelerator.price_per_hour_usd
    if objective in ("cost",) and price is None:
        raise PlanError(f"objective 'cost' needs a price: {system.name} has no price_per_hour; give --price")
    capacity = system.accelerator.memory_bytes * max_memory_fraction
    bad = [r for r in recompute if r not in ("none", "selective", "full")] or [z for z in zero_stages if z not in (0, 1, 2, 3)]
    if bad or not recompute or not zero_stages:
        raise PlanError(f"invalid recompute modes {recompute} or ZeRO stages {zero_stages}")
    if not micro_batches or min(micro_batches) < 1:
        raise PlanError(f"micro-batch sizes must be positive, got {tuple(micro_batches)}")
    base_items = tuple(sorted((base or {}).items()))
    unknown = [k for k, _ in base_items if k not in TrainingPlan.model_fields]
    if unknown:
        raise PlanError(f"unknown plan fields {unknown}")
    space = SearchSpace(seq_len=seq_len, global_batch=global_batch, dtypes=tuple(dtypes), zero_stages=tuple(zero_stages),
                        recompute=tuple(recompute), partial_recompute=partial_recompute, base=base_items,
                        even_layers=even_layers, micro_batches=tuple(micro_batches),
                        capacity=capacity)

    def cost_of(e: TrainingEstimate) -> float:  # dollars per token
        return e.num_gpus * (price or 0.0) / 3600.0 / e.tokens_per_s

    def ok(e: TrainingEstimate) -> bool:
        if deadline_s is not None and tokens is not None and tokens / e.tokens_per_s > deadline_s:
            return False
        if budget_usd is not None and tokens is not None and cost_of(e) * tokens > budget_usd:
            return False
        return True

    all_counts = _gpu_counts(system, gpus, "cost" if pareto else objective)  # a front needs several GPU counts
    counter, per_count, pruned, shapes = _search_counts(model, system, gpus, all_counts, space, objective, top, pareto,
                                                        tokens, deadline_s, ok, progress, across=True)
    if not any(ok(e) for r in per_count.values() for e in r.top) and any(k.startswith(_ACROSS) for k in pruned):
        # nothing admissible: search the counts the cross-count bounds cut short again without them, so the
        # message names the true fastest and cheapest plans
        exact = {n: r for n, r in per_count.items() if _ACROSS not in r.pruned}
        again, per_count, pruned, shapes = _search_counts(model, system, gpus, all_counts, space, objective, top,
                                                          pareto, tokens, deadline_s, ok, progress, across=False,
                                                          exact=exact)
        counter.update(again)
    counts = sorted(per_count)

    if objective == "time":
        pool = [e for e in per_count[gpus].top if ok(e)]
        key: Callable[[TrainingEstimate], tuple] = lambda e: (e.step_time_s,)
    elif objective == "cost":
        pool = [e for r in per_count.values() for e in r.top if ok(e)]
        key = lambda e: (cost_of(e), e.step_time_s)
    else:
        pool = [e for r in per_count.values() for e in r.top if ok(e)]
        key = lambda e: (e.num_gpus, cost_of(e), e.step_time_s)
    if not pool:
        raise InfeasibleError(_why_infeasible(model, system, per_count, gpus, capacity, tokens, deadline_s,
                                              budget_usd, cost_of, objective, space))
    pool.sort(key=key)
    best, info = pool[0], None
    if refine:
        best, info = _refine(model, system, best, capacity, counter, partial_recompute and "full" in recompute)
    alternatives = [e for e in pool[1:] if e.plan != best.plan][: max(0, top - 1)]
    front = _pareto([r.top[0] for r in per_count.values() if r.top], cost_of) if pareto else None
    return TrainSearchResult(
        objective=objective, best=best, alternatives=alternatives, pareto=front,
        binding=_binding(model, system, best, capacity, tokens, deadline_s, budget_usd, cost_of, gpus, global_batch),
        partition=info, gpu_counts=counts, shapes=shapes, estimated=counter["estimated"], pruned=dict(pruned),
        elapsed_s=time.perf_counter() - t0, tokens=tokens, price_per_gpu_hour=price,
        warnings=training_warnings(best, tokens),
    )


def _check_job(model: ModelSpec, system: System, gpus: int, seq_len: int, global_batch: int, objective: str,
               tokens: float | None, budget: float | None, deadline: float | None, top: int,
               dtypes: tuple[str, ...], frac: float, price: float | None, micro_batches: object,
               zero_stages: object, recompute: object) -> None:
    """Every argument of a search in its domain (one :class:`PlanError` line), before any work depends on it."""
    if not isinstance(model, ModelSpec) or not isinstance(system, System):
        raise PlanError("search_training takes a ModelSpec and a System (planner.get_model / planner.get_system)")
    try:  # every number finite, with its sign and bound (planner.limits), before any work depends on it
        check_int(gpus, "gpus", hi=MAX_GPUS)
        check_int(seq_len, "sequence length", hi=MAX_POSITIONS)
        check_int(global_batch, "global batch", hi=MAX_BATCH)
        check_int(top, "top", hi=MAX_TOP)
        check_number(frac, "max memory fraction", hi=1.0)
        for v, name, hi in ((tokens, "tokens", MAX_TOKENS), (budget, "budget (USD)", MAX_USD),
                            (deadline, "deadline (s)", MAX_DEADLINE_S)):
            if v is not None:
                check_number(v, name, hi=hi)
    except PlannerError as exc:
        raise PlanError(str(exc)) from None
    if not isinstance(dtypes, (tuple, list)) or not dtypes:
        raise PlanError(f"dtypes must be a non-empty tuple such as ('bf16',), got {dtypes!r}"[:200])
    if seq_len > model.max_seq_len:
        raise InfeasibleError(f"sequence length {seq_len} exceeds {model.name}'s maximum of {model.max_seq_len} positions")
    if objective not in ("time", "cost", "deadline"):
        raise PlanError(f"unknown objective {objective!r}; choose time, cost or deadline")
    if objective == "deadline" and (tokens is None or deadline is None):
        raise PlanError("objective 'deadline' needs --tokens and --deadline")
    if (budget is not None or deadline is not None) and tokens is None:
        raise PlanError("a budget or deadline needs the token count to train (--tokens)")
    for d in dtypes:
        if d not in ("bf16", "fp16", "fp8"):
            raise PlanError(f"unknown training dtype {d!r}; choose bf16, fp16 or fp8")
        if d == "fp8" and not system.accelerator.has_native("fp8"):
            raise PlanError(f"{system.accelerator.name} has no FP8 tensor cores; use bf16")
    try:
        if price is not None:
            check_number(price, "price per GPU-hour", hi=MAX_USD)
        for name, values in (("micro-batch sizes", micro_batches), ("ZeRO stages", zero_stages),
                             ("recompute modes", recompute)):
            if not isinstance(values, (tuple, list)):
                raise PlanError(f"{name} must be a tuple, got {type(values).__name__}")
        for mb in micro_batches:  # type: ignore[attr-defined]
            check_int(mb, "micro-batch size", hi=MAX_BATCH)
    except PlannerError as exc:  # a PlanError as it is; the limits' errors become one
        raise PlanError(str(exc)) from None


def _gb(x: float) -> str:
    return f"{x / GB:.1f} GB"


def _nearest_batches(model: ModelSpec, system: System, gpus: int, space: SearchSpace) -> str:
    """The global batches nearest to the job's (below and above) that some layout of ``gpus`` divides."""
    gbs, mbs = space.global_batch, min(space.micro_batches)
    steps = {dp * mbs for dp in dp_degrees(model, system, gpus, space.seq_len, space.even_layers)}
    below = max((gbs // s * s for s in steps if gbs >= s), default=None)
    above = min((-(-gbs // s) * s for s in steps if -(-gbs // s) * s <= MAX_BATCH), default=None)
    near = [f"{b} sequences" for b in (below, above) if b is not None]
    if not near:
        return "try another GPU count"
    return "the nearest global batches that have one: " + " and ".join(near) + "; or try another GPU count"


def _why_infeasible(model: ModelSpec, system: System, per_count: dict[int, _CountResult], gpus: int,
                    capacity: float, tokens, deadline, budget, cost_of, objective: str, space: SearchSpace) -> str:
    r = per_count[max(per_count)]
    fitting = [e for c in per_count.values() for e in c.top]
    name = system.accelerator.name
    if fitting:  # plans fit, but the deadline or budget does not
        fastest = min(fitting, key=lambda e: e.step_time_s)
        cheapest = min(fitting, key=cost_of)
        parts = []
        if deadline is not None:
            need = tokens / fastest.tokens_per_s
            parts.append(f"the fastest plan ({fastest.num_gpus} GPUs) needs {need / 86400:.1f} days for {tokens:.3g} tokens;"
                         f" the deadline is {deadline / 86400:.1f} days")
        if budget is not None:
            parts.append(f"the cheapest plan costs ${cost_of(cheapest) * tokens:,.0f}; the budget is ${budget:,.0f}")
        return "no plan meets the constraints: " + "; ".join(parts)
    if r.shapes == 0:
        return (f"no parallel layout of {gpus} GPUs divides the global batch and {model.name}'s heads and layers"
                f" ({_nearest_batches(model, system, gpus, space)})")
    best_need = None
    if r.smallest_peak is not None:
        best_need = r.smallest_peak
    elif r.min_state is not None:
        best_need = r.min_state
    if best_need is not None:
        need, shape = best_need
        return (f"{model.name} does not fit on {gpus} x {system.name}: the leanest plan (tp {shape.tp}, pp {shape.pp},"
                f" cp {shape.cp}, ep {shape.ep}, ZeRO-{shape.zero}, full recomputation) needs at least {_gb(need)} per GPU;"
                f" {name} has {_gb(capacity)}"
                + ("" if capacity >= system.accelerator.memory_bytes else
                   f" usable ({capacity / system.accelerator.memory_bytes:.0%} of {_gb(system.accelerator.memory_bytes)})"))
    return f"no plan found for {model.name} on {gpus} x {system.name}"


def _binding(model: ModelSpec, system: System, e: TrainingEstimate, capacity: float, tokens, deadline, budget,
             cost_of, gpus: int, global_batch: int) -> list[str]:
    out = []
    head = capacity - e.memory.peak_bytes
    if head < 0.1 * capacity or e.plan.recompute != "none":
        why = f"memory: {_gb(e.memory.peak_bytes)} of {_gb(capacity)} per GPU ({_gb(head)} headroom)"
        if e.plan.recompute != "none":
            why += f"; recomputation '{e.plan.recompute}' is needed to fit"
        out.append(why)
    if e.plan.num_microbatches < 2 * e.plan.pp and e.plan.pp > 1:
        out.append(f"global batch: {global_batch} sequences give {e.plan.num_microbatches} micro-batches for pp {e.plan.pp}"
                   f" (pipeline bubble {e.breakdown.get('pp_bubble', 0) / e.step_time_s:.0%} of the step)")
    if deadline is not None and tokens is not None:
        t = tokens / e.tokens_per_s
        out.append(f"deadline: {t / 86400:.1f} of {deadline / 86400:.1f} days")
    if budget is not None and tokens is not None:
        out.append(f"budget: ${cost_of(e) * tokens:,.0f} of ${budget:,.0f}")
    if e.num_gpus == gpus and len(out) == 0:
        out.append(f"GPU count: all {gpus} GPUs used")
    return out


def _pareto(points: list[TrainingEstimate], cost_of) -> list[TrainingEstimate]:
    """Plans not beaten on both time per token and cost per token."""
    pts = sorted(points, key=lambda e: (1 / e.tokens_per_s, cost_of(e)))
    front, best_cost = [], math.inf
    for e in pts:
        c = cost_of(e)
        if c < best_cost - 1e-15:
            front.append(e)
            best_cost = c
    return front


__all__ = ["InfeasibleError", "PartitionInfo", "TrainSearchResult", "min_recompute_per_stage", "search_training",
           "state_lower_bound", "time_lower_bound"]
