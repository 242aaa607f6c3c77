"""Layer-to-stage partition and per-stage recomputation: a small MILP (pulp / CBC).

Given a plan's shape, choose how many layers each of the ``C = pp * vpp`` model
chunks holds (chunk ``c`` on stage ``c mod pp``, contiguous in layer order) and
how many layers of each pipeline stage are fully recomputed, to minimise the
estimator's pipeline time under the memory limit.

Data (:class:`planner.cost.stage_costs.StageCosts`): layer kinds ``g(i)``; per
kind ``t_g`` (time per micro-batch, no recomputation), ``w_g`` (weight,
gradient and optimizer bytes held in the backward), ``g_g`` (fp32 main-gradient
bytes held only in the optimizer step: 16-bit gradients, Megatron's fp16
optimizer; 0 otherwise, and the step row is then dropped as implied),
``a_g`` (activation bytes); ``dt`` the extra time
of a recomputed layer (largest over kinds), ``da`` the bytes it frees (smallest
over kinds); per stage ``f_s`` (in-flight micro-batches), ``e_s`` / ``E_s``
(embedding, LM head and p2p time / their bytes), ``S_s`` (their bytes in the
optimizer step), ``p_s`` (p2p time); ``h_c``
the embedding (c = 0) or LM head (c = C - 1) time of a chunk.

Variables: ``n_c`` layers of chunk ``c`` (by kind ``n_{c,g}``), ``r_s`` integer
layers recomputed on stage ``s``, ``T`` the slowest stage, ``K`` the slowest chunk;
``z = 1`` when recomputation is allowed (room for the re-materialised layer on
every stage: exact when a stage recomputes, a layer's activations to spare
when it does not; a binary ``z_s`` made CBC ten times slower), else 0.

    sum_c n_c = L,  n_c >= 1
    t_s = sum_{c = s mod pp} sum_g n_{c,g} t_g + r_s dt + e_s <= T
    sum_{c = s mod pp} sum_g n_{c,g} (w_g + f_s a_g) - r_s f_s da + z max_g a_g + E_s <= M   (backward)
    sum_{c = s mod pp} sum_g n_{c,g} (w_g + g_g) + S_s <= M                                  (optimizer step)
    0 <= r_s <= sum_{c = s mod pp} n_c
    vpp = 1:  minimise  (m - 1) T + sum_s t_s                 (1F1B)
    vpp > 1:  sum_g n_{c,g} t_g + r_s dt + p_s / vpp + h_c <= K,
              minimise  m T + (pp - 1) K                       (interleaved)

When every layer is of one kind (most dense models) ``n_c`` are plain integers.
Otherwise contiguity is kept by choosing each chunk's first layer ``b_c`` with
binaries ``u[c, j]`` (``sum_j u[c, j] = 1``, ``b_c = sum_j j u[c, j]``), ``j`` in a
window around the even split, and ``n_{c,g} = P_g(b_{c+1}) - P_g(b_c)`` with
``P_g(j)`` the layers of kind ``g`` among the first ``j`` (linear in ``u``).
With interleaving, the chunk rows count all of a stage's recomputed layers
(an upper bound: the estimator spreads them).

``r_s`` is fixed at 0 unless the plan recomputes fully. The solution is
re-estimated by :func:`estimate_training` (the source of truth); the reported
gap is to the balanced-pipeline bound (``S`` = the sum of all stage times
without recomputation): ``(m - 1) S / pp + S`` for 1F1B, ``m S / pp + (pp - 1) S / C``
interleaved, which no partition can beat.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass

from ..cost.stage_costs import StageCosts


@dataclass(frozen=True)
class PartitionResult:
    layers_per_chunk: tuple[int, ...]
    recompute_per_stage: tuple[int, ...] | None
    objective_s: float  # the MILP's pipeline time (seconds)
    bound_s: float  # balanced-pipeline lower bound (seconds)
    status: str  # "optimal" or "time limit (feasible)"
    solve_time_s: float

    @property
    def gap(self) -> float:
        return max(0.0, (self.objective_s - self.bound_s) / self.objective_s) if self.objective_s > 0 else 0.0


def _windows(num_layers: int, chunks: int, window: int | None) -> list[list[int]]:
    """Candidate start layers of chunks 1..C-1 (at least one layer per chunk)."""
    out = []
    for c in range(1, chunks):
        lo, hi = c, num_layers - (chunks - c)
        if window is not None:
            centre = round(c * num_layers / chunks)
            lo, hi = max(lo, centre - window), min(hi, centre + window)
        out.append(list(range(lo, hi + 1)))
    return out


def solve_partition(costs: StageCosts, allow_recompute: bool, window: int | None = 4,
                    time_limit_s: float = 5.0, gap_rel: float = 0.0) -> PartitionResult | None:
    """Solve the MILP of the module docstring; ``None`` when no partition fits in memory.

    ``window``: with several layer kinds, chunk starts are searched within
    +/- ``window`` layers of the even split (``None``: anywhere; the tests use
    that to compare with brute force). ``gap_rel``: stop once CBC proves the
    incumbent within this relative gap of its bound (0: prove optimality).
    """
    import pulp

    warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"pulp(\..*)?")  # PuLP 3.x notes on 4.0
    t0 = time.perf_counter()
    L, C, pp, vpp, m = len(costs.kind), costs.pp * costs.vpp, costs.pp, costs.vpp, costs.num_microbatches
    kinds = range(len(costs.t_none))
    homogeneous = len(set(costs.kind)) == 1
    dt = max(f - n for f, n in zip(costs.t_full, costs.t_none))
    da = min(n - f for n, f in zip(costs.a_none, costs.a_full))
    a_max = max(costs.a_none)
    ts, ms = 1e6, 1.0 / 2**20  # microseconds and MiB keep CBC's numbers well conditioned

    prob = pulp.LpProblem("partition", pulp.LpMinimize)
    T = pulp.LpVariable("T", lowBound=0)
    K = pulp.LpVariable("K", lowBound=0)
    if homogeneous:  # stage-level integers (module docstring)
        N = [pulp.LpVariable(f"N_{s}", lowBound=vpp, upBound=L, cat="Integer") for s in range(pp)]
        prob += pulp.lpSum(N) == L, "all_layers"
        q = [pulp.LpVariable(f"q_{s}", lowBound=1, upBound=L, cat="Integer") for s in range(pp)] if vpp > 1 else []
        e = {s: pulp.LpVariable(f"e_{s}", lowBound=1, upBound=L, cat="Integer") for s in {0, pp - 1}} if vpp > 1 else {}
        u: list[dict[int, pulp.LpVariable]] = []
    else:
        prefix = [[0] * (L + 1) for _ in kinds]
        for i, g in enumerate(costs.kind):
            for k in kinds:
                prefix[k][i + 1] = prefix[k][i] + (1 if k == g else 0)
        u = [{j: pulp.LpVariable(f"u_{c}_{j}", cat="Binary") for j in js}
             for c, js in enumerate(_windows(L, C, window), start=1)]
        for c, uc in enumerate(u, start=1):
            prob += pulp.lpSum(uc.values()) == 1, f"one_start_{c}"

        def at(c: int, table: list[int]):  # table[b_c] as a linear expression
            if c == 0:
                return table[0]
            if c == C:
                return table[L]
            return pulp.lpSum(table[j] * v for j, v in u[c - 1].items())

        positions = list(range(L + 1))
        for c in range(1, C - 1):
            prob += at(c + 1, positions) >= at(c, positions) + 1, f"nonempty_{c}"
        per_chunk = [{k: at(c + 1, prefix[k]) - at(c, prefix[k]) for k in kinds} for c in range(C)]
    edge = [costs.extra_t[s] - costs.sends_t[s] for s in range(pp)]  # embedding / head time of the stage
    stage_t, rs = [], []
    for s in range(pp):
        chunks = list(range(s, C, pp))
        if homogeneous:
            n = {0: N[s]}
        else:
            n = {k: pulp.lpSum(per_chunk[c][k] for c in chunks) for k in kinds}
        if allow_recompute:
            r = pulp.LpVariable(f"r_{s}", lowBound=0, cat="Integer")
            prob += r <= pulp.lpSum(n.values()), f"r_le_layers_{s}"
            rs.append(r)
            z = 1  # room for the re-materialised layer (needed only when r_s > 0: conservative otherwise)
        else:
            r = z = 0
        t_s = pulp.lpSum(v * costs.t_none[k] * ts for k, v in n.items()) + r * dt * ts + costs.extra_t[s] * ts
        stage_t.append(t_s)
        prob += t_s <= T, f"slowest_{s}"
        if vpp > 1 and homogeneous:
            # q_s = the stage's largest chunk; on the first / last stage e_s is the edge chunk
            # (embedding / head), the other vpp - 1 chunks at most q_s
            send = costs.sends_t[s] / vpp * ts
            prob += q[s] * costs.t_none[0] * ts + r * dt * ts + send <= K, f"chunk_{s}"
            if s in e:
                prob += e[s] <= q[s], f"edge_le_q_{s}"
                prob += N[s] <= e[s] + (vpp - 1) * q[s], f"chunks_hold_{s}"
                prob += e[s] * costs.t_none[0] * ts + r * dt * ts + send + edge[s] * ts <= K, f"edge_chunk_{s}"
                if pp == 1:
                    prob += N[s] >= 2 * e[s] - q[s], f"two_edges_{s}"
            else:
                prob += N[s] <= vpp * q[s], f"chunks_hold_{s}"
        elif vpp > 1:
            for c in chunks:
                h = edge[s] if c in (0, C - 1) else 0.0
                prob += (pulp.lpSum(per_chunk[c][k] * costs.t_none[k] * ts for k in kinds) + r * dt * ts
                         + (costs.sends_t[s] / vpp + h) * ts <= K), f"chunk_{c}"
        f = costs.inflight[s]
        prob += (pulp.lpSum(v * (costs.state[k] + f * costs.a_none[k]) * ms for k, v in n.items())
                 - r * f * da * ms + z * a_max * ms + costs.extra_mem[s] * ms <= costs.capacity * ms), f"memory_{s}"
        if any(costs.main_grad):  # the optimizer step (memory.phase_peak_bytes): no activations, fp32 main grads
            prob += (pulp.lpSum(v * (costs.state[k] + costs.main_grad[k]) * ms for k, v in n.items())
                     + costs.extra_step[s] * ms <= costs.capacity * ms), f"memory_step_{s}"
    if vpp == 1:
        prob += (m - 1) * T + pulp.lpSum(stage_t)
    else:
        prob += m * T + (pp - 1) * K
    # cutting planes cost more than they save on these small models (0.58 s -> 0.22 s on Llama-3.1-405B pp 16 vpp 4)
    prob.solve(pulp.PULP_CBC_CMD(msg=False, timeLimit=time_limit_s, gapRel=gap_rel, cuts=False))
    if prob.sol_status not in (pulp.LpSolutionOptimal, pulp.LpSolutionIntegerFeasible):
        return None
    status = "optimal" if prob.sol_status == pulp.LpSolutionOptimal else "time limit (feasible)"
    if homogeneous:
        sizes = [0] * C
        for s_ in range(pp):
            n_s = int(round(N[s_].value()))
            if vpp == 1:
                sizes[s_] = n_s
                continue
            chunks_s = list(range(s_, C, pp))
            edge_c = 0 if s_ == 0 else (C - 1 if s_ == pp - 1 else None)
            if edge_c is not None:  # the edge chunk takes e_s, the rest spread evenly
                e_s = min(int(round(e[s_].value())), n_s - (vpp - 1))
                rest = [c for c in chunks_s if c != edge_c]
                sizes[edge_c] = e_s
                base, extra = divmod(n_s - e_s, len(rest))
                for j, c in enumerate(rest):
                    sizes[c] = base + (1 if j < extra else 0)
            else:
                base, extra = divmod(n_s, vpp)
                for j, c in enumerate(chunks_s):
                    sizes[c] = base + (1 if j < extra else 0)
    else:
        bounds = [0] + [int(round(sum(j * v.value() for j, v in uc.items()))) for uc in u] + [L]
        sizes = [bounds[c + 1] - bounds[c] for c in range(C)]
    rec = tuple(int(round(r.value())) for r in rs) if allow_recompute else None
    total = sum(costs.t_none[g] for g in costs.kind) + sum(costs.extra_t)
    bound = (m - 1) * total / pp + total if vpp == 1 else m * total / pp + (pp - 1) * total / C
    return PartitionResult(
        layers_per_chunk=tuple(sizes), recompute_per_stage=rec, objective_s=pulp.value(prob.objective) / ts,
        bound_s=bound, status=status, solve_time_s=time.perf_counter() - t0,
    )


__all__ = ["PartitionResult", "solve_partition"]
