"""CP-SAT building blocks of the expert placer and its joint model (small instances).

* :func:`layer_items` - each layer's replicas ("items"): the expert of each and its share of that expert's tokens
* :func:`joint_size` / :func:`solve_joint` - one CP-SAT model over all layers. The traffic between layers
  uses an indicator ``z[i, j, g] <= x[i, g], z <= x[j, g]`` for items ``i`` and ``j`` of consecutive layers
  sharing GPU ``g`` (and the same per node); the objective rewards ``z``, so it takes the value of the
  product. Solved to optimality it is the exhaustive optimum; the status, bound and gap are CP-SAT's.

The decomposition for large instances and :func:`~planner.moe.solver.place_experts` are in
:mod:`planner.moe.solver`.
"""

from __future__ import annotations

import numpy as np
from ortools.sat.python import cp_model

from .placement import ExpertCluster, Placement, PlacementError, Weights, from_fractions_layer, replica_counts
from .trace import RoutingStats

MILLI = 1000.0  # loads and pair counts enter the constraints in milli-tokens
MIN_STAGE_S = 0.3  # CP-SAT needs about this long to load a 2,000-variable model and return the warm start
MIN_NODE_S = 0.02  # a node's GPU model (a few hundred variables) loads in milliseconds
OVER = 1000  # weight of load above the max_imbalance target, relative to the load term



class NoSolution(Exception):
    """CP-SAT found no solution within its time (not a proof of infeasibility)."""


def layer_items(stats: RoutingStats, cluster: ExpertCluster) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per layer: (expert of each item, share of each item)."""
    out = []
    for l in range(stats.num_layers):
        r = replica_counts(stats.load[l], cluster.redundant, cluster.gpus)
        experts = np.repeat(np.arange(stats.num_experts), r)
        out.append((experts, 1.0 / r[experts]))
    return out


def load_bound(stats: RoutingStats, items, cluster: ExpertCluster, w: Weights) -> float:
    terms = []
    for l, (ex, sh) in enumerate(items):
        mean = stats.load[l].sum() / cluster.gpus
        terms.append(max(1.0, float((stats.load[l, ex] * sh).max()) / mean) if mean > 0 else 1.0)
    return w.load * float(np.mean(terms))


def status_name(code: int) -> str:
    return {cp_model.OPTIMAL: "optimal", cp_model.FEASIBLE: "feasible", cp_model.INFEASIBLE: "infeasible",
            cp_model.MODEL_INVALID: "invalid"}.get(code, "unknown")


def cpsat_solver(seconds: float, floor: float | None = None) -> cp_model.CpSolver:
    """A CP-SAT solver limited to ``seconds`` of *deterministic* time (CP-SAT's work measure, about a
    second of one core each) with one worker and a fixed seed, so the same model gives the same answer
    on every run and under any machine load (several workers race, and interleaving them is ten times
    slower on these small models); a wall-clock limit four times longer is only a safety net."""
    s = cp_model.CpSolver()
    limit = max(MIN_STAGE_S if floor is None else floor, seconds)
    s.parameters.max_deterministic_time = limit
    s.parameters.max_time_in_seconds = 4 * limit + 10.0
    s.parameters.num_workers = 1
    s.parameters.random_seed = 0
    return s


# ---------------------------------------------------------------------------
# joint model
# ---------------------------------------------------------------------------

def joint_size(stats: RoutingStats, cluster: ExpertCluster) -> int:
    """Indicator variables the joint model needs (its size)."""
    items = layer_items(stats, cluster)
    n = sum(len(ex) for ex, _ in items) * cluster.gpus
    for l in range(stats.num_layers - 1):
        p = stats.transitions[l][np.ix_(items[l][0], items[l + 1][0])]
        n += int((p > 0).sum()) * (cluster.gpus + (cluster.nodes if cluster.nodes > 1 else 0))
    return n


def solve_joint(stats: RoutingStats, cluster: ExpertCluster, w: Weights, time_limit: float,
                 max_imbalance: float | None) -> tuple[Placement, str, float, float]:
    items = layer_items(stats, cluster)
    n_l, g_n, k_n = stats.num_layers, cluster.gpus, cluster.nodes
    node = cluster.node_of()
    m = cp_model.CpModel()
    x = [[[m.new_bool_var(f"x{l}_{i}_{g}") for g in range(g_n)] for i in range(len(items[l][0]))] for l in range(n_l)]
    obj = []
    for l in range(n_l):
        ex, sh = items[l]
        for i in range(len(ex)):
            m.add_exactly_one(x[l][i])
        for g in range(g_n):
            m.add(sum(x[l][i][g] for i in range(len(ex))) <= cluster.slots)
        for e in np.unique(ex[sh < 1]):
            copies = np.flatnonzero(ex == e)
            for g in range(g_n):
                m.add(sum(x[l][c][g] for c in copies) <= 1)
        wl = np.round(stats.load[l, ex] * sh * MILLI).astype(np.int64)
        mean = stats.load[l].sum() / g_n
        lmax = m.new_int_var(0, int(wl.sum()), f"L{l}")
        for g in range(g_n):
            expr = sum(int(wl[i]) * x[l][i][g] for i in range(len(ex)))
            m.add(lmax >= expr)
            if max_imbalance is not None:
                m.add(expr <= int(max_imbalance * mean * MILLI))
        if mean > 0:
            obj.append(w.load / (n_l * mean * MILLI) * lmax)
    nb = n_l - 1
    for l in range(nb):
        (ei, si), (ej, sj) = items[l], items[l + 1]
        p = stats.transitions[l][np.ix_(ei, ej)] * si[:, None] * sj[None, :]
        pairs = float(p.sum())
        if pairs <= 0:
            continue
        pi = np.round(p * MILLI).astype(np.int64)
        nz = np.argwhere(pi > 0)
        cmax = m.new_int_var(0, int(pi.sum()), f"C{l}")
        same_gpu = []
        send = [[] for _ in range(g_n)]
        recv = [[] for _ in range(g_n)]
        zs: dict[tuple[int, int, int], cp_model.IntVar] = {}
        us: dict[tuple[int, int, int], cp_model.IntVar] = {}
        for i, j in nz:
            c = int(pi[i, j])
            for g in range(g_n):
                z = m.new_bool_var("")
                zs[i, j, g] = z
                m.add_implication(z, x[l][i][g])
                m.add_implication(z, x[l + 1][j][g])
                same_gpu.append(c * z)
                send[g].append(c * x[l][i][g] - c * z)
                recv[g].append(c * x[l + 1][j][g] - c * z)
            if k_n > 1:
                for n in range(k_n):
                    u = m.new_bool_var("")
                    us[i, j, n] = u
                    gs = np.flatnonzero(node == n)
                    m.add(u <= sum(x[l][i][g] for g in gs))
                    m.add(u <= sum(x[l + 1][j][g] for g in gs))
                    obj.append(-w.traffic * (cluster.c_node - cluster.c_gpu) / (nb * pairs * MILLI) * c * u)
        # a GPU (node) holds at most `slots` (gpus_per_node x slots) items of the next layer: an item
        # shares its GPU with at most that many (valid cuts that tighten the relaxation of z, u)
        per_node = cluster.gpus_per_node * cluster.slots
        for (side, size) in ((0, cluster.slots), (1, cluster.slots)):
            groups: dict[tuple[int, int], list] = {}
            for (i, j, g), z in zs.items():
                groups.setdefault(((i, g) if side == 0 else (j, g)), []).append(z)
            for (a, g), zz in groups.items():
                if len(zz) > size:
                    m.add(sum(zz) <= size * (x[l][a][g] if side == 0 else x[l + 1][a][g]))
            groups = {}
            for (i, j, n), u in us.items():
                groups.setdefault(((i, n) if side == 0 else (j, n)), []).append(u)
            for (a, n), uu in groups.items():
                if len(uu) > per_node:
                    xs = x[l][a] if side == 0 else x[l + 1][a]
                    m.add(sum(uu) <= per_node * sum(xs[g] for g in np.flatnonzero(node == n)))
        for g in range(g_n):
            m.add(cmax >= sum(send[g]))
            m.add(cmax >= sum(recv[g]))
        obj.append(w.comm * g_n / (nb * pairs * MILLI) * cmax)
        obj.append(-w.traffic * cluster.c_gpu / (nb * pairs * MILLI) * sum(same_gpu))
        # constants (every pair counted as crossing) keep the objective equal to J
        obj.append(w.traffic * (cluster.c_gpu + (cluster.c_node - cluster.c_gpu if k_n > 1 else 0)) / nb)
    # GPUs are interchangeable within a node and nodes with each other: the first item of the
    # first layer goes on GPU 0 (any placement can be relabelled so)
    m.add(x[0][0][0] == 1)
    m.minimize(sum(obj))
    solver = cpsat_solver(time_limit)
    code = solver.solve(m)
    if code == cp_model.INFEASIBLE:
        raise PlacementError("no placement meets the slot and load constraints")
    if code not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        raise NoSolution()
    slots = -np.ones((n_l, g_n, cluster.slots), dtype=np.int64)
    share = np.zeros(slots.shape)
    for l in range(n_l):
        ex, sh = items[l]
        gpu = np.array([next(g for g in range(g_n) if solver.value(x[l][i][g])) for i in range(len(ex))])
        slots[l], share[l] = from_fractions_layer(list(zip(ex.tolist(), sh.tolist())), gpu, g_n, cluster.slots)
    return (Placement(slots, share, stats.num_experts, {"method": "solver"}), status_name(code),
            float(solver.objective_value), float(solver.best_objective_bound))
