"""Per-layer and per-stage cost coefficients of a plan's shape, for the partition solver.

:func:`estimate_training` times and sizes a given partition. The layer-to-stage
partition solver (:mod:`planner.search.partition`) needs the same numbers as
coefficients, independent of the partition: for every layer, its time per
micro-batch with and without full recomputation, its activation bytes each way
and its weight/gradient/optimizer bytes; for the first and last stage the
embedding and LM-head time and bytes; per stage the in-flight micro-batches.
Every coefficient comes from the estimator's own cached functions, so a stage's
time and memory are the linear sums below, equal to what the estimator computes
for that partition (tests check it):

    t_s   = sum_{i in s} (t_none[i] + x_i (t_full[i] - t_none[i])) + extra_t[s] + p2p[s]
    mem_s = sum_{i in s} (state[i] + inflight[s] (a_none[i] - x_i (a_none[i] - a_full[i])))
            + [any x_i = 1] * max a_none (re-materialised layer) + extra_mem[s]          (backward)
    step_s = sum_{i in s} (state[i] + main_grad[i]) + extra_step[s]                      (optimizer step)
    peak_s = max(mem_s, step_s)

with ``x_i = 1`` when layer ``i`` is fully recomputed. ``main_grad`` are the fp32
main gradients Megatron's fp16 optimizer creates only inside its step (16-bit
gradients, ``grad_reduce_in_fp32=False``; 0 otherwise, and then ``step_s <= mem_s``):
see :func:`planner.cost.memory.phase_peak_bytes`. Both phases are linear, so the
MILP keeps one memory constraint per phase. With interleaving, a
chunk's time is its layers' time, ``1 / vpp`` of its stage's sends, and the
embedding (chunk 0) or LM head (last chunk).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..specs.hardware import System
from ..specs.model import ModelSpec
from .memory import RUNTIME_RESERVED_BYTES, inflight_microbatches, state_bytes
from .training import (
    TrainingPlan,
    _act_cached,
    _edge_act_bytes,
    _edge_params,
    _extra_time_cached,
    _key,
    _layer_table,
    _p2p_send_s,
    _representatives_cached,
    check_plan,
    groups_for,
    layer_shape,
    layer_time,
)


@dataclass(frozen=True)
class StageCosts:
    """Coefficients of one plan shape (see the module docstring); seconds and bytes."""

    kind: tuple[int, ...]  # kind index of each layer
    t_none: tuple[float, ...]  # per kind
    t_full: tuple[float, ...]
    a_none: tuple[float, ...]
    a_full: tuple[float, ...]
    state: tuple[float, ...]  # per kind: weights + grads + optimizer bytes on one GPU held in the backward
    main_grad: tuple[float, ...]  # per kind: fp32 main-grad bytes held only in the optimizer step
    inflight: tuple[float, ...]  # per stage
    extra_t: tuple[float, ...]  # per stage: embedding / LM head time + p2p
    sends_t: tuple[float, ...]  # per stage: the p2p part of extra_t
    extra_mem: tuple[float, ...]  # per stage: embedding / LM head states, logits, dropout mask, reserve
    extra_step: tuple[float, ...]  # per stage, optimizer step: embedding / LM head states incl. main grads,
    #                                logits, reserve
    num_microbatches: int
    pp: int
    vpp: int
    capacity: float


def stage_costs(model: ModelSpec, system: System, plan: TrainingPlan) -> StageCosts:
    """The coefficients of ``plan``'s shape (its partition and recompute fields are ignored)."""
    if plan.zero >= 3:
        raise ValueError("the partition model does not cover ZeRO-3 (its gathers depend on the slowest stage)")
    base = plan.model_copy(update={"layers_per_chunk": None, "recompute_per_stage": None})
    check_plan(model, system, base)
    groups = groups_for(system, plan)
    sh = layer_shape(plan)
    mkey = _key(model)
    sig_of, table = _layer_table(mkey)
    reps = _representatives_cached(mkey)
    sigs = list(reps)
    index = {g: k for k, g in enumerate(sigs)}
    dense_dp = plan.dp * plan.cp
    expert_dp = max(1, plan.tp * plan.cp * plan.dp // (plan.ep * plan.expert_tp))
    grad_b = 4.0 if plan.grad_reduce_in_fp32 else 2.0
    base_mode = "selective" if plan.recompute == "selective" else "none"

    def ltime(g: tuple, mode: str) -> float:
        lt = layer_time(model, system, reps[g], sh, plan.dtype, mode, groups)
        return lt.fwd_compute_s + lt.bwd_compute_s + sum(lt.fwd_comm.values()) + sum(lt.bwd_comm.values())

    def states(dense: float, expert: float) -> tuple[float, float]:
        st = state_bytes(dense, expert, dense_dp, expert_dp, plan.zero, plan.dtype, grad_b)
        return st.backward_bytes, st.main_grad_bytes

    state, main_grad = [], []
    for g in sigs:
        d, e = table[reps[g]]
        bwd, main = states(d / plan.tp, e / (plan.ep * plan.expert_tp))
        state.append(bwd)
        main_grad.append(main)
    m = plan.num_microbatches
    inflight = tuple(inflight_microbatches(plan.pp, plan.vpp, m, s) for s in range(plan.pp))
    extra_t, extra_mem, extra_step, sends_t = [], [], [], []
    t_p2p = _p2p_send_s(model, system, plan, sh, groups)
    for s in range(plan.pp):
        first, last = s == 0, s == plan.pp - 1
        t = 0.0
        if first or last:
            t += _extra_time_cached(mkey, _key(system), sh, plan.dtype, first, last, groups).total_s
        sends = (1 if first or last else 2) * plan.vpp * t_p2p
        t += sends
        sends_t.append(sends)
        edge_act, logits = _edge_act_bytes(model, plan, sh, first, last, inflight[s])
        extra_t.append(t)
        edge_bwd, edge_main = states(_edge_params(model, plan, first, last), 0.0)
        extra_mem.append(RUNTIME_RESERVED_BYTES + edge_act + logits + edge_bwd)
        extra_step.append(RUNTIME_RESERVED_BYTES + logits + edge_bwd + edge_main)
    return StageCosts(
        kind=tuple(index[sig_of[i]] for i in range(model.num_layers)),
        t_none=tuple(ltime(g, base_mode) for g in sigs),
        t_full=tuple(ltime(g, "full") for g in sigs),
        a_none=tuple(_act_cached(mkey, reps[g], sh, base_mode) for g in sigs),
        a_full=tuple(_act_cached(mkey, reps[g], sh, "full") for g in sigs),
        state=tuple(state),
        main_grad=tuple(main_grad),
        inflight=inflight,
        extra_t=tuple(extra_t),
        sends_t=tuple(sends_t),
        extra_mem=tuple(extra_mem),
        extra_step=tuple(extra_step),
        num_microbatches=m,
        pp=plan.pp,
        vpp=plan.vpp,
        capacity=system.accelerator.memory_bytes,
    )


__all__ = ["StageCosts", "stage_costs"]
