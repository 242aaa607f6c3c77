"""The expert placer: CP-SAT over expert-to-GPU assignments (OR-Tools).

Replicas first: each layer's redundant slots go to the experts with the largest
load per replica (:func:`~planner.moe.placement.replica_counts`), every replica
taking an equal share of its expert's tokens. Then the replicas ("items") are
assigned to GPUs to minimise the combined objective ``J`` of
:mod:`planner.moe.placement` (GPU load imbalance, the largest GPU send or
receive volume, cross-GPU and cross-node expert-to-expert traffic between
consecutive layers), with each GPU's slot count, replicas of one expert on
distinct GPUs and a target on every GPU's load (``max_imbalance`` x the mean:
a hard cap in the joint model when it can be met, a steep penalty on the
excess in the decomposition).

* **Joint model** (small instances): one CP-SAT model over all layers. The
  traffic between layers uses an indicator ``z[i, j, g] <= x[i, g], z <= x[j, g]``
  for items ``i`` and ``j`` of consecutive layers sharing GPU ``g`` (and the same
  per node); the objective rewards ``z``, so it takes the value of the product.
  Solved to optimality it is the exhaustive optimum; the status, bound and gap
  are CP-SAT's.
* **Decomposition** (large instances): start from the greedy (EPLB) placement;
  sweep the layers, re-placing one layer with its neighbours fixed, which makes
  every term linear: first the items over *nodes* (node crossings, the largest
  node load), then each node's items over its *GPUs* (GPU crossings, the largest
  GPU load and its excess over the target, the GPUs' send and receive volumes). The first sweep looks only at the
  previous layer (it builds chains of co-located experts); later sweeps at both
  neighbours; the first layer is seeded by clustering its experts' successor
  profiles (k-means), which gives the chains an anchor. Every subproblem has a
  time limit from the remaining budget (at least 0.3 s) and a complete warm start
  (the current nodes; each node's items packed heaviest first), and a
  re-placement is kept only if ``J`` does not get worse. Reported: the CP-SAT statuses, the sum
  of the last sweep's subproblem gaps, and a global lower bound on ``J`` (the
  load term's bound, ``max(1, heaviest replica / mean)`` per layer, with the
  communication terms bounded by 0) with the gap to it.

Determinism: every time limit is counted in deterministic seconds (CP-SAT's
``max_deterministic_time`` with one worker and a fixed seed; the heuristics and the
building of each model charged by their size, :class:`_WorkClock`), never on the wall
clock, so the same input gives the same placement on any machine and under any load.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
from ortools.sat.python import cp_model

from .placement import (ExpertCluster, Placement, PlacementError, Weights, boundary_terms, evaluate,
                        from_fractions_layer, greedy)
from .joint import (MILLI, MIN_NODE_S, MIN_STAGE_S, OVER, NoSolution, cpsat_solver, joint_size, layer_items, load_bound,
                    solve_joint, status_name)
from ..errors import PlannerError
from ..results import ResultMixin, fmt_s
from ..limits import (MAX_EXPERTS, MAX_IMBALANCE, MAX_LINK_COST, MAX_ROUTING_TOKENS, MAX_TIME_LIMIT_S, check_int,
                      check_number)
from .trace import RoutingStats

@dataclass(repr=False)
class SolveResult(ResultMixin):
    """A solved placement. :func:`place_experts` also keeps the ``stats`` and ``cluster`` it solved (not part of
    :meth:`to_dict`), so :meth:`plot` and the main table (tokens per GPU) need nothing more."""

    placement: Placement
    method: str  # "joint" or "decomposed"
    status: str
    objective: float
    bound: float
    gap: float
    subproblem_gap: float
    time_s: float
    subproblems: int
    notes: list[str] = field(default_factory=list)
    greedy: Placement | None = None  # the greedy (EPLB) placement the decomposition was held against
    stats: RoutingStats | None = field(default=None, compare=False)
    cluster: ExpertCluster | None = field(default=None, compare=False)

    def summary(self) -> dict:
        return {"method": self.method, "status": self.status, "objective": self.objective, "bound": self.bound,
                "gap": self.gap, "subproblem_gap": self.subproblem_gap, "time_s": self.time_s,
                "subproblems": self.subproblems, "notes": self.notes}

    def _summary(self) -> str:
        pl = self.placement
        return (f"{pl.num_experts} experts x {pl.num_layers} layers on {pl.gpus} GPUs, {self.method} ({self.status}), "
                f"objective {self.objective:.4g}, gap {100 * self.gap:.1f} %, {fmt_s(self.time_s)}")

    def _rows(self) -> list[dict]:
        """One row per GPU: the experts it hosts (mean over layers) and, with the statistics, its routed tokens
        against the round-robin placement's (mean and worst layer)."""
        pl = self.placement
        hosted = (pl.slots >= 0).sum(axis=2).mean(axis=0)
        rows = [{"gpu": g, "experts_per_layer": float(hosted[g])} for g in range(pl.gpus)]
        if self.stats is not None and self.cluster is not None:
            from .placement import layer_terms, round_robin

            after = layer_terms(self.stats.load, pl.fractions())[0]
            before = layer_terms(self.stats.load, round_robin(self.stats, self.cluster).fractions())[0]
            for g, r in enumerate(rows):
                r.update(tokens_mean=float(after[:, g].mean()), tokens_max=float(after[:, g].max()),
                         round_robin_tokens_mean=float(before[:, g].mean()))
        return rows

    def to_dict(self) -> dict:
        """The solver's figures and the placement (``slots[layer][gpu][slot]``: the logical expert, -1 empty;
        ``share``: its share of that expert's tokens). :func:`planner.api.placement_plan` makes the checked plan
        document of it for a model and a system."""
        pl = self.placement
        return {"solver": self.summary(), "placement": {
            "num_experts": pl.num_experts, "layers": pl.num_layers, "gpus": pl.gpus,
            "slots": pl.slots.tolist(), "share": [[[round(float(x), 9) for x in s] for s in g] for g in pl.share]}}

    def plot(self, path=None, **options):
        """Tokens per GPU before (round robin) and after this placement (:func:`planner.plots.plot_expert_load`)."""
        from ..plots import plot_expert_load

        options.setdefault("stats", self.stats)
        options.setdefault("cluster", self.cluster)
        return plot_expert_load(self, path=path, **options)


# ---------------------------------------------------------------------------
# decomposition
# ---------------------------------------------------------------------------

SOLVE_CHARGE_S = 5e-5  # work charged per variable or constraint of a CP-SAT subproblem (building and loading it)
HEURISTIC_CHARGE_S = 4e-6  # work charged per item x GPU of one layer placed by the heuristics


class _WorkClock:
    """The decomposition's budget in deterministic seconds, about seconds of one core: each subproblem's
    CP-SAT deterministic time (``max_deterministic_time``, not the wall clock) plus
    :data:`SOLVE_CHARGE_S` per variable and constraint, and :data:`HEURISTIC_CHARGE_S` per item x GPU
    for each layer the heuristics place (both measured on this code). The same input therefore takes
    the same path and gives the same placement on any machine and under any load; a wall-clock stop at
    ``WALL_FACTOR`` x the limit (plus 10 s) only guards against a pathologically slow machine, and says
    so in the notes when it fires."""

    WALL_FACTOR = 4.0

    def __init__(self, limit_s: float) -> None:
        self.limit_s = limit_s
        self.spent_s = 0.0
        self.wall_start = time.perf_counter()

    def solve(self, solver: cp_model.CpSolver, model: cp_model.CpModel) -> int:
        code = solver.solve(model)
        size = len(model.proto.variables) + len(model.proto.constraints)
        self.spent_s += solver.deterministic_time + SOLVE_CHARGE_S * size
        return code

    def heuristic_layer(self, items: int, gpus: int) -> None:
        self.spent_s += HEURISTIC_CHARGE_S * items * gpus

    def left_s(self) -> float:
        return self.limit_s - self.spent_s

    def wall_exceeded(self) -> bool:
        return time.perf_counter() - self.wall_start > self.WALL_FACTOR * self.limit_s + 10.0

class _Layer:
    """The items of one layer and where they are."""

    def __init__(self, experts: np.ndarray, share: np.ndarray, gpu: np.ndarray):
        self.experts, self.share, self.gpu = experts, share, gpu

    def fractions(self, num_experts: int, gpus: int) -> np.ndarray:
        f = np.zeros((num_experts, gpus))
        np.add.at(f, (self.experts, self.gpu), self.share)
        return f


def _layers_from(placement: Placement) -> list[_Layer]:
    out = []
    for l in range(placement.num_layers):
        g, s = np.nonzero(placement.slots[l] >= 0)
        out.append(_Layer(placement.slots[l][g, s], placement.share[l][g, s], g))
    return out


def _to_placement(layers: list[_Layer], stats: RoutingStats, cluster: ExpertCluster) -> Placement:
    slots = -np.ones((len(layers), cluster.gpus, cluster.slots), dtype=np.int64)
    share = np.zeros(slots.shape)
    for l, ly in enumerate(layers):
        slots[l], share[l] = from_fractions_layer(list(zip(ly.experts.tolist(), ly.share.tolist())), ly.gpu,
                                                  cluster.gpus, cluster.slots)
    return Placement(slots, share, stats.num_experts, {"method": "solver"})


def _neighbour_flows(stats: RoutingStats, layers: list[_Layer], l: int, cluster: ExpertCluster, use_next: bool
                     ) -> tuple[np.ndarray, np.ndarray, float, float]:
    """A[i, g']: pairs into item i of layer l from GPU g' of layer l - 1; B[i, h]: pairs from item
    i to GPU h of layer l + 1; and the two boundaries' total pairs."""
    ly = layers[l]
    n_i, g_n = len(ly.experts), cluster.gpus
    a = np.zeros((n_i, g_n))
    b = np.zeros((n_i, g_n))
    pa = pb = 0.0
    if l > 0:
        fp = layers[l - 1].fractions(stats.num_experts, g_n)
        a = (stats.transitions[l - 1].T @ fp)[ly.experts] * ly.share[:, None]
        pa = float(a.sum())
    if use_next and l + 1 < len(layers):
        fn = layers[l + 1].fractions(stats.num_experts, g_n)
        b = (stats.transitions[l] @ fn)[ly.experts] * ly.share[:, None]
        pb = float(b.sum())
    return a, b, pa, pb


def _copies(experts: np.ndarray, subset: np.ndarray) -> list[np.ndarray]:
    out = []
    ex = experts[subset]
    for e in np.unique(ex):
        c = subset[ex == e]
        if len(c) > 1:
            out.append(c)
    return out


def _place_layer(stats: RoutingStats, layers: list[_Layer], l: int, cluster: ExpertCluster, w: Weights,
                 max_imbalance: float | None, use_next: bool, seconds: float, clock: _WorkClock
                 ) -> tuple[np.ndarray, float, float, list[str]]:
    """New GPUs for layer l's items: one CP-SAT model over the nodes (warm start: the greedy
    node assignment), then one small model per node over its GPUs; (gpu, objective, bound, statuses)."""
    ly = layers[l]
    n_i, g_n, k_n, per = len(ly.experts), cluster.gpus, cluster.nodes, cluster.gpus_per_node
    node = cluster.node_of()
    nb = max(1, stats.num_layers - 1)
    a, b, pa, pb = _neighbour_flows(stats, layers, l, cluster, use_next)
    wl = stats.load[l, ly.experts] * ly.share
    wi = np.round(wl * MILLI).astype(np.int64)
    mean_gpu = stats.load[l].sum() / g_n
    statuses: list[str] = []
    obj_total = bound_total = 0.0
    t_stage = seconds / 2 if k_n > 1 else seconds
    scale = 1e6  # objective in micro-units of J (CP-SAT objectives are integral)
    # --- nodes ---
    if k_n > 1:
        shares = _node_shares(a, b, pa, pb, cluster)
        keep = np.round(shares * w.traffic / nb * (cluster.c_node - cluster.c_gpu) * scale).astype(np.int64)
        m = cp_model.CpModel()
        y = [[m.new_bool_var("") for _ in range(k_n)] for _ in range(n_i)]
        start_node = _greedy_nodes(keep, wl, ly.experts, node[ly.gpu], cluster, max_imbalance)
        for i in range(n_i):
            m.add_exactly_one(y[i])
            for n in range(k_n):
                m.add_hint(y[i][n], bool(start_node[i] == n))
        lmax = m.new_int_var(0, int(wi.sum()), "Ln")
        room = _node_room(n_i, cluster)
        for n in range(k_n):
            m.add(sum(y[i][n] for i in range(n_i)) <= room)
            m.add(lmax >= sum(int(wi[i]) * y[i][n] for i in range(n_i)))
        for c in _copies(ly.experts, np.arange(n_i)):
            for n in range(k_n):
                m.add(sum(y[i][n] for i in c) <= per)
        kl = max(1, int(round(w.load / (stats.num_layers * mean_gpu * per * MILLI) * scale))) if mean_gpu > 0 else 1
        over = m.new_int_var(0, int(wi.sum()), "over")
        if max_imbalance is not None:
            m.add(over >= lmax - int(max_imbalance * mean_gpu * per * MILLI))
        m.minimize(sum(-int(keep[i, n]) * y[i][n] for i in range(n_i) for n in range(k_n) if keep[i, n] > 0)
                   + cp_model.LinearExpr.term(lmax, kl) + cp_model.LinearExpr.term(over, OVER * kl))
        s = cpsat_solver(t_stage)
        code = clock.solve(s, m)
        statuses.append(status_name(code))
        if code in (cp_model.OPTIMAL, cp_model.FEASIBLE):
            new_node = np.array([next(n for n in range(k_n) if s.value(y[i][n])) for i in range(n_i)])
            obj_total += s.objective_value / scale
            bound_total += s.best_objective_bound / scale
        else:
            new_node = start_node  # CP-SAT had no time to load the model: keep the warm start
    else:
        new_node = np.zeros(n_i, dtype=np.int64)
    # --- GPUs within each node ---
    gpu, o, bd, st = _place_gpus(stats, layers, l, cluster, w, max_imbalance, new_node, a, b, pa, pb,
                                 t_stage, range(k_n), clock)
    return gpu, obj_total + o, bound_total + bd, statuses + st


def _place_gpus(stats: RoutingStats, layers: list[_Layer], l: int, cluster: ExpertCluster, w: Weights,
                max_imbalance: float | None, node_of_item: np.ndarray, a: np.ndarray, b: np.ndarray, pa: float,
                pb: float, seconds: float, nodes, clock: _WorkClock) -> tuple[np.ndarray, float, float, list[str]]:
    """Each listed node's items over its GPUs, one small CP-SAT model per node: the largest
    GPU load and its excess over the target, same-GPU pairs with the neighbour layers, the
    GPUs' send and receive volumes; warm start: heaviest first on the least-loaded GPU."""
    ly = layers[l]
    g_n, per = cluster.gpus, cluster.gpus_per_node
    nb = max(1, stats.num_layers - 1)
    wl = stats.load[l, ly.experts] * ly.share
    wi = np.round(wl * MILLI).astype(np.int64)
    mean_gpu = stats.load[l].sum() / g_n
    wa = w.traffic / (nb * pa) if pa > 0 else 0.0
    wb = w.traffic / (nb * pb) if pb > 0 else 0.0
    scale = 1e6
    hint = _lpt_within_nodes(ly, node_of_item, wl, cluster)
    gpu = hint.copy()
    nodes = list(nodes)
    obj = bound = 0.0
    statuses: list[str] = []
    for n in nodes:
        mine = np.flatnonzero(node_of_item == n)
        if len(mine) == 0:
            continue
        gs = range(n * per, (n + 1) * per)
        m = cp_model.CpModel()
        x = {(i, g): m.new_bool_var("") for i in mine for g in gs}
        for i in mine:
            m.add_exactly_one([x[i, g] for g in gs])
            for g in gs:
                m.add_hint(x[i, g], bool(hint[i] == g))
        for c in _copies(ly.experts, mine):
            for g in gs:
                m.add(sum(x[i, g] for i in c) <= 1)
        lmax = m.new_int_var(0, int(wi.sum()), "L")
        hint_max = max(int(wi[mine][hint[mine] == g].sum()) for g in gs)
        for g in gs:
            m.add(sum(x[i, g] for i in mine) <= cluster.slots)
            m.add(lmax >= sum(int(wi[i]) * x[i, g] for i in mine))
        m.add(lmax <= max(hint_max, int((max_imbalance or 1.0) * mean_gpu * MILLI)))  # never worse than the warm start
        terms = []
        if mean_gpu > 0:
            kl = max(1, int(round(w.load / (stats.num_layers * mean_gpu * MILLI) * scale)))
            terms.append(cp_model.LinearExpr.term(lmax, kl))
            if max_imbalance is not None:
                over = m.new_int_var(0, int(wi.sum()), "over")
                m.add(over >= lmax - int(max_imbalance * mean_gpu * MILLI))
                terms.append(cp_model.LinearExpr.term(over, OVER * kl))
        for (i, g), var in x.items():
            saved = int(round(cluster.c_gpu * (a[i, g] * wa + b[i, g] * wb) * scale))
            if saved > 0:
                terms.append(-saved * var)
        for flows, pairs in ((a, pa), (b, pb)):
            if pairs <= 0:
                continue
            fm = np.round(flows * MILLI).astype(np.int64)
            tot = fm.sum(axis=1)
            cmax = m.new_int_var(0, int(fm.sum()) + 1, "")
            for g in gs:
                m.add(cmax >= sum(int(tot[i] - fm[i, g]) * x[i, g] for i in mine))
                m.add(cmax >= int(fm[:, g].sum()) - sum(int(fm[i, g]) * x[i, g] for i in mine))
            terms.append(cp_model.LinearExpr.term(cmax, max(1, int(round(w.comm * g_n / (nb * pairs * MILLI) * scale)))))
        m.minimize(sum(terms))
        s = cpsat_solver(seconds / len(nodes), floor=MIN_NODE_S)
        code = clock.solve(s, m)
        statuses.append(status_name(code))
        if code in (cp_model.OPTIMAL, cp_model.FEASIBLE):
            for (i, g), var in x.items():
                if s.value(var):
                    gpu[i] = g
            obj += s.objective_value / scale
            bound += s.best_objective_bound / scale
    return gpu, obj, bound, statuses


def _greedy_nodes(keep: np.ndarray, wl: np.ndarray, experts: np.ndarray, current: np.ndarray, cluster: ExpertCluster,
                  max_imbalance: float | None) -> np.ndarray:
    """A warm start for the node stage: items in order of how much they gain from their best
    node, each to the node that keeps most of its traffic among those with a free slot, room
    for its load (``max_imbalance`` x the mean node load) and fewer copies of its expert than
    GPUs; the current node breaks ties."""
    k_n, per = cluster.nodes, cluster.gpus_per_node
    # nodes a little tighter than GPUs, so that packing a node's GPUs has room
    cap = wl.sum() / k_n * (1.0 + ((max_imbalance or 1.05) - 1.0) / 2)
    fill = np.zeros(k_n, dtype=np.int64)
    load = np.zeros(k_n)
    copies: dict[tuple[int, int], int] = {}
    out = current.copy()
    room = _node_room(len(wl), cluster)
    order = np.lexsort((-wl, -(keep.max(axis=1) - keep.min(axis=1))))
    for i in order:
        e = int(experts[i])
        pref = sorted(range(k_n), key=lambda n: (-keep[i, n], n != current[i]))
        ok = [n for n in pref if fill[n] < room and copies.get((e, n), 0) < per]
        fits = [n for n in ok if load[n] + wl[i] <= cap]
        n = fits[0] if fits else min(ok, key=lambda n: load[n])
        out[i] = n
        fill[n] += 1
        load[n] += wl[i]
        copies[(e, n)] = copies.get((e, n), 0) + 1
    _repair_nodes(out, keep, wl, experts, cluster, cap, room)
    return out


def _node_room(items: int, cluster: ExpertCluster) -> int:
    """Items a node may take: an even share plus one, so that every node gets a mix of heavy
    and light replicas its GPUs can balance (a node of only heavy replicas cannot be split
    evenly over its GPUs), and never more than its slots."""
    return min(cluster.gpus_per_node * cluster.slots, -(-items // cluster.nodes) + 1)


def _repair_nodes(out: np.ndarray, keep: np.ndarray, wl: np.ndarray, experts: np.ndarray, cluster: ExpertCluster,
                  cap: float, room: int) -> None:
    """Move, then swap, items off nodes above ``cap`` where it costs the least kept traffic."""
    k_n, per = cluster.nodes, cluster.gpus_per_node
    e_n = int(experts.max()) + 1
    for _ in range(4 * len(out)):
        load = np.bincount(out, weights=wl, minlength=k_n)
        src = int(np.argmax(load))
        if load[src] <= cap + 1e-9:
            return
        fill = np.bincount(out, minlength=k_n)
        copies = np.zeros((e_n, k_n), dtype=np.int64)
        np.add.at(copies, (experts, out), 1)
        mine = np.flatnonzero(out == src)
        best = (np.inf, -1, -1, -1)
        # moves: item i of src to node n
        ok = (fill[None, :] < room) & (load[None, :] + wl[mine, None] <= cap) & (copies[experts[mine]] < per)
        ok[:, src] = False
        if ok.any():
            loss = np.where(ok, keep[mine, src][:, None] - keep[mine], np.inf)
            a, n = np.unravel_index(int(np.argmin(loss)), loss.shape)
            best = (float(loss[a, n]), int(mine[a]), int(n), -1)
        # swaps: item i of src with a lighter item j of a full node n
        for n in np.flatnonzero(fill >= room):
            if n == src:
                continue
            theirs = np.flatnonzero(out == n)
            d = wl[mine][:, None] - wl[theirs][None, :]
            ok = (d > 0) & (load[n] + d <= cap)
            ok &= (copies[experts[mine], n] < per)[:, None] | (experts[mine][:, None] == experts[theirs][None, :])
            ok &= (copies[experts[theirs], src] < per)[None, :] | (experts[mine][:, None] == experts[theirs][None, :])
            if not ok.any():
                continue
            loss = (keep[mine, src] - keep[mine, n])[:, None] + (keep[theirs, n] - keep[theirs, src])[None, :]
            loss = np.where(ok, loss, np.inf)
            a, bj = np.unravel_index(int(np.argmin(loss)), loss.shape)
            if loss[a, bj] < best[0]:
                best = (float(loss[a, bj]), int(mine[a]), int(n), int(theirs[bj]))
        if not np.isfinite(best[0]):
            return
        _, i, n, j = best
        out[i] = n
        if j >= 0:
            out[j] = src


def _lpt_within_nodes(ly: _Layer, node_of_item: np.ndarray, wl: np.ndarray, cluster: ExpertCluster) -> np.ndarray:
    """Each node's items on its GPUs, heaviest first onto the least-loaded GPU with a free slot
    and no copy of the item's expert (a feasible warm start; items already on a GPU of their
    node stay first in line for it)."""
    per, g_n = cluster.gpus_per_node, cluster.gpus
    gl = np.zeros(g_n)
    fill = np.zeros(g_n, dtype=np.int64)
    holds: list[set[int]] = [set() for _ in range(g_n)]
    out = ly.gpu.copy()
    for i in np.argsort(-wl, kind="stable"):
        n = int(node_of_item[i])
        gs = [g for g in range(n * per, (n + 1) * per) if fill[g] < cluster.slots and int(ly.experts[i]) not in holds[g]]
        if not gs:
            gs = [g for g in range(n * per, (n + 1) * per) if fill[g] < cluster.slots]
        g = min(gs, key=lambda g: (gl[g], g != ly.gpu[i]))
        out[i] = g
        gl[g] += wl[i]
        fill[g] += 1
        holds[g].add(int(ly.experts[i]))
    for n in range(cluster.nodes):
        _rebalance_node(out, wl, ly.experts, range(n * per, (n + 1) * per), cluster.slots)
    return out


def _rebalance_node(gpu: np.ndarray, wl: np.ndarray, experts: np.ndarray, gs: range, slots: int,
                    rounds: int = 200) -> None:
    """Local search on one node: move or swap items between its most and least loaded GPUs
    while that lowers the larger of the two loads (copies of an expert stay apart)."""
    gs = list(gs)
    for _ in range(rounds):
        load = {g: float(wl[gpu == g].sum()) for g in gs}
        hi = max(gs, key=lambda g: load[g])
        improved = False
        for lo in sorted(gs, key=lambda g: load[g]):
            if lo == hi:
                break
            on_hi, on_lo = np.flatnonzero(gpu == hi), np.flatnonzero(gpu == lo)
            best, move = load[hi], None
            for i in on_hi:
                if (experts[on_lo] == experts[i]).any():
                    continue
                if len(on_lo) < slots and max(load[hi] - wl[i], load[lo] + wl[i]) < best - 1e-9:
                    best, move = max(load[hi] - wl[i], load[lo] + wl[i]), (i, None)
                for j in on_lo:
                    if (experts[on_hi] == experts[j]).any() and experts[j] != experts[i]:
                        continue
                    d = wl[i] - wl[j]
                    if d > 0 and max(load[hi] - d, load[lo] + d) < best - 1e-9:
                        best, move = max(load[hi] - d, load[lo] + d), (i, j)
            if move is not None:
                i, j = move
                gpu[i] = lo
                if j is not None:
                    gpu[j] = hi
                improved = True
                break
        if not improved:
            return


def _seed_first_layer(stats: RoutingStats, layer: _Layer, cluster: ExpertCluster, seed: int = 0) -> None:
    """Nodes for the first layer's items from the routing alone: spherical k-means of the
    experts' successor profiles (rows of the first transition matrix; experts whose tokens
    go on to the same experts share a node), then balanced like any node stage."""
    k_n = cluster.nodes
    if k_n <= 1 or stats.num_layers < 2:
        return
    rows = stats.transitions[0][layer.experts]
    rows = rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12)
    rng = np.random.default_rng(seed)
    centres = rows[rng.choice(len(rows), k_n, replace=False)]
    for _ in range(25):
        label = np.argmax(rows @ centres.T, axis=1)
        for c in range(k_n):
            members = rows[label == c]
            if len(members):
                v = members.sum(axis=0)
                centres[c] = v / max(np.linalg.norm(v), 1e-12)
    sim = rows @ centres.T
    wl = stats.load[0, layer.experts] * layer.share
    nodes = _greedy_nodes(sim, wl, layer.experts, cluster.node_of()[layer.gpu], cluster, None)
    layer.gpu = _lpt_within_nodes(layer, nodes, wl, cluster)


def _local_objective(stats: RoutingStats, layers: list[_Layer], l: int, cluster: ExpertCluster, w: Weights) -> float:
    """The terms of J that layer l's placement changes: its load imbalance and the two
    boundaries it touches (same formulas as :func:`~planner.moe.placement.evaluate`)."""
    e_n, g_n = stats.num_experts, cluster.gpus
    n_l, nb = stats.num_layers, max(1, stats.num_layers - 1)
    f = layers[l].fractions(e_n, g_n)
    gl = stats.load[l] @ f
    mean = gl.mean()
    total = w.load * (gl.max() / mean if mean > 0 else 1.0) / n_l
    for bnd in (l - 1, l):
        if bnd < 0 or bnd + 1 >= n_l:
            continue
        fa = f if bnd == l else layers[bnd].fractions(e_n, g_n)
        fb = f if bnd + 1 == l else layers[bnd + 1].fractions(e_n, g_n)
        _, _, _, skew, traffic = boundary_terms(fa.T @ stats.transitions[bnd] @ fb, cluster)
        total += (w.comm * skew + w.traffic * traffic) / nb
    return float(total)


def _node_shares(a: np.ndarray, b: np.ndarray, pa: float, pb: float, cluster: ExpertCluster) -> np.ndarray:
    """``[items, nodes]``: the share of each item's pairs with the neighbour layers (``a`` from
    layer l - 1, ``b`` to layer l + 1, :func:`_neighbour_flows`) that stays inside each node."""
    node = cluster.node_of()
    an = np.stack([a[:, node == n].sum(axis=1) for n in range(cluster.nodes)], axis=1)
    bn = np.stack([b[:, node == n].sum(axis=1) for n in range(cluster.nodes)], axis=1)
    return an / (pa or 1.0) + bn / (pb or 1.0)


def _heuristic_layer(stats: RoutingStats, layers: list[_Layer], l: int, cluster: ExpertCluster,
                     max_imbalance: float | None, use_next: bool) -> np.ndarray:
    """Layer l's items placed by the heuristics alone: each to the node that keeps most of its
    traffic with the neighbour layers (:func:`_greedy_nodes`), packed on the node's GPUs."""
    ly = layers[l]
    wl = stats.load[l, ly.experts] * ly.share
    keep = _node_shares(*_neighbour_flows(stats, layers, l, cluster, use_next), cluster)
    nodes = _greedy_nodes(keep, wl, ly.experts, cluster.node_of()[ly.gpu], cluster, max_imbalance)
    return _lpt_within_nodes(ly, nodes, wl, cluster)


def _align_forward(stats: RoutingStats, layers: list[_Layer], cluster: ExpertCluster, max_imbalance: float | None) -> None:
    """The chains: layer by layer from the seeded first one, each item to the node its
    predecessors' tokens come from, packed on the node's GPUs."""
    for l in range(1, stats.num_layers):
        layers[l].gpu = _heuristic_layer(stats, layers, l, cluster, max_imbalance, False)


def _solve_decomposed(stats: RoutingStats, cluster: ExpertCluster, w: Weights, time_limit: float,
                      max_imbalance: float | None, base: Placement, base_objective: float
                      ) -> tuple[Placement, str, float, int, list[str]]:
    """The decomposition (module docstring), from the greedy placement ``base`` (objective ``base_objective``),
    within ``time_limit`` deterministic seconds (:class:`_WorkClock`)."""
    clock = _WorkClock(time_limit)
    layers = _layers_from(base)
    notes: list[str] = []
    if cluster.nodes > 1:
        items = len(layers[0].experts)
        _seed_first_layer(stats, layers[0], cluster)
        _align_forward(stats, layers, cluster, max_imbalance)
        clock.heuristic_layer(items * stats.num_layers, cluster.gpus)
        # heuristic sweeps with both neighbours while they help, within a third of the budget
        for sweep in range(3):
            improved = False
            for l in range(stats.num_layers):
                improved |= _accept(stats, layers, l, cluster, w,
                                    _heuristic_layer(stats, layers, l, cluster, max_imbalance, True))
                clock.heuristic_layer(len(layers[l].experts), cluster.gpus)
            if not improved or clock.spent_s > time_limit / 3:
                break
        notes.append(f"warm start: k-means seed, forward chain alignment and {sweep + 1} heuristic sweep(s)")
        if base_objective < evaluate(stats, _to_placement(layers, stats, cluster), cluster, w).objective:
            layers = _layers_from(base)
            notes.append("CP-SAT sweeps start from the greedy placement (it scored better than the chains)")
    sweeps, n_sub, statuses = 0, 0, []
    sub_gap = 0.0
    while clock.left_s() > time_limit * 0.03:
        gap_obj = gap_bound = 0.0
        improved = False
        for l in range(stats.num_layers):
            left = clock.left_s()
            if left <= MIN_STAGE_S:
                notes.append(f"time limit reached in CP-SAT sweep {sweeps + 1} at layer {l}")
                break
            if clock.wall_exceeded():
                notes.append(f"wall-clock safety stop in CP-SAT sweep {sweeps + 1} at layer {l} (a very slow "
                             f"machine: this placement may differ from run to run)")
                break
            gpu, obj, bnd, st = _place_layer(stats, layers, l, cluster, w, max_imbalance, True,
                                             left / (stats.num_layers - l), clock)
            n_sub += len(st)
            statuses += st
            if not math.isnan(obj):
                gap_obj += abs(obj)
                gap_bound += abs(obj - bnd)
                improved |= _accept(stats, layers, l, cluster, w, gpu)
        else:
            sweeps += 1
            sub_gap = gap_bound / gap_obj if gap_obj > 0 else sub_gap
            if not improved:
                break
            continue
        if gap_obj > 0:  # a sweep cut short: its subproblems so far
            sub_gap = gap_bound / gap_obj
        break
    status = "optimal" if statuses and all(s == "optimal" for s in statuses) else "feasible"
    notes.append(f"{sweeps} full CP-SAT sweep(s) over {stats.num_layers} layers, {n_sub} subproblems")
    return _to_placement(layers, stats, cluster), status, sub_gap, n_sub, notes


def _accept(stats: RoutingStats, layers: list[_Layer], l: int, cluster: ExpertCluster, w: Weights, gpu: np.ndarray) -> bool:
    """Put layer l's items on ``gpu`` if that does not worsen J's terms it touches; True if it improved them."""
    old = layers[l].gpu
    before = _local_objective(stats, layers, l, cluster, w)
    layers[l].gpu = gpu
    after = _local_objective(stats, layers, l, cluster, w)
    if after > before + 1e-12:
        layers[l].gpu = old
        return False
    return after < before - 1e-9


def _check_inputs(stats: RoutingStats, cluster: ExpertCluster, weights: Weights | None, time_limit: float,
                  max_imbalance: float | None, method: str, joint_limit: int) -> None:
    """Every argument of :func:`place_experts` in its domain, or one :class:`PlacementError` line."""
    if not isinstance(stats, RoutingStats) or not isinstance(cluster, ExpertCluster):
        raise PlacementError("place_experts takes RoutingStats (trace.stats()) and an ExpertCluster")
    try:
        check_number(time_limit, "time limit (s)", hi=MAX_TIME_LIMIT_S)
        if max_imbalance is not None:
            check_number(max_imbalance, "max imbalance (max / mean GPU load)", lo=1.0, lo_open=False,
                         hi=MAX_IMBALANCE)
        if weights is not None and not isinstance(weights, Weights):
            raise PlacementError(f"weights must be a planner.moe.Weights, got {type(weights).__name__}")
        w = weights or Weights()
        for name in ("load", "comm", "traffic"):
            check_number(getattr(w, name), f"weight {name}", lo=0.0, lo_open=False, hi=MAX_LINK_COST)
        check_int(joint_limit, "joint_limit", lo=0, hi=10**7)
        check_int(stats.top_k, "top_k", hi=MAX_EXPERTS)
        check_int(stats.tokens, "tokens", hi=MAX_ROUTING_TOKENS)
    except PlannerError as exc:
        raise PlacementError(str(exc)) from None
    if method not in ("auto", "joint", "decomposed"):
        raise PlacementError(f"unknown method {method!r}; choose auto, joint or decomposed")
    load, trans = np.asarray(stats.load), np.asarray(stats.transitions)
    if load.ndim != 2 or 0 in load.shape or trans.shape != (load.shape[0] - 1, load.shape[1], load.shape[1]):
        raise PlacementError(f"routing statistics of shapes load {load.shape}, transitions {trans.shape}; expected "
                             f"[layers, experts] and [layers - 1, experts, experts]")
    if not (np.isfinite(load).all() and np.isfinite(trans).all()) or (load < 0).any() or (trans < 0).any():
        raise PlacementError("routing loads and transitions must be finite and non-negative")
    if stats.num_experts > cluster.num_experts:
        raise PlacementError(f"the routing has {stats.num_experts} experts, the cluster {cluster.num_experts}")
    if stats.num_experts + cluster.redundant > cluster.gpus * cluster.slots:
        raise PlacementError(f"{cluster.gpus} GPUs x {cluster.slots} slots cannot hold {stats.num_experts} experts "
                             f"+ {cluster.redundant} replicas")


def place_experts(stats: RoutingStats, cluster: ExpertCluster, weights: Weights | None = None, time_limit: float = 60.0,
                  max_imbalance: float | None = 1.05, method: str = "auto", joint_limit: int = 4000) -> SolveResult:
    """Place the experts (module docstring). ``method``: ``joint``, ``decomposed`` or ``auto``
    (joint when the joint model has at most ``joint_limit`` indicator variables). ``time_limit`` is in
    CP-SAT's deterministic seconds (about seconds of one core), so the result is the same on every run."""
    res = _place(stats, cluster, weights, time_limit, max_imbalance, method, joint_limit)
    res.stats, res.cluster = stats, cluster
    return res


def _place(stats: RoutingStats, cluster: ExpertCluster, weights: Weights | None, time_limit: float,
           max_imbalance: float | None, method: str, joint_limit: int) -> SolveResult:
    _check_inputs(stats, cluster, weights, time_limit, max_imbalance, method, joint_limit)
    if max_imbalance is not None:
        max_imbalance = min(max_imbalance, float(cluster.gpus))  # max / mean load never exceeds the GPU count
    w = weights or Weights()
    start = time.perf_counter()
    items = layer_items(stats, cluster)
    lb = load_bound(stats, items, cluster, w)
    notes: list[str] = []
    if method == "joint" or (method == "auto" and joint_size(stats, cluster) <= joint_limit):
        try:
            try:
                pl, status, obj, bound = solve_joint(stats, cluster, w, time_limit, max_imbalance)
            except PlacementError:
                if max_imbalance is None:
                    raise
                notes.append(f"no placement keeps every GPU within {max_imbalance} x the mean load; cap dropped")
                # CP-SAT proved the cap infeasible within its deterministic limit; the model without the
                # cap gets the same limit again (the same input always takes the same path)
                pl, status, obj, bound = solve_joint(stats, cluster, w, time_limit, None)
            j = evaluate(stats, pl, cluster, w).objective
            gap = max(0.0, (j - bound) / j) if j > 0 else 0.0
            return SolveResult(pl, "joint", status, j, bound, gap, gap, time.perf_counter() - start, 1, notes)
        except NoSolution:
            if method == "joint":
                raise PlacementError(f"the joint model found no placement in {time_limit:g} s; "
                                     "raise --time-limit or use the decomposition") from None
            notes.append("joint model found no placement in time; decomposed instead")
            time_limit = MIN_STAGE_S  # the joint model used the whole (deterministic) limit
    base = greedy(stats, cluster)
    jb = evaluate(stats, base, cluster, w).objective
    pl, status, sub_gap, n_sub, more = _solve_decomposed(stats, cluster, w, max(MIN_STAGE_S, time_limit),
                                                         max_imbalance, base, jb)
    notes += more
    j = evaluate(stats, pl, cluster, w).objective
    if jb < j:  # never worse than the baseline it replaces
        notes.append("the greedy (EPLB) placement scored better and is returned")
        pl, j = base, jb
    return SolveResult(pl, "decomposed", status, j, lb, max(0.0, (j - lb) / j) if j > 0 else 0.0, sub_gap,
                       time.perf_counter() - start, n_sub, notes, base)


__all__ = ["SolveResult", "joint_size", "place_experts"]
