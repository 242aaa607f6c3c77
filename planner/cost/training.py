"""Training step time and memory for an explicit parallel plan (Megatron-LM semantics).

The step of a plan ``(tp, pp, vpp, cp, ep, etp, dp, micro-batch, global batch)``:

1. Per layer and micro-batch, forward and backward time on one GPU: the
   layer's operators (:mod:`planner.cost.ops`) timed by the compute model
   (GEMM roofline with fitted efficiency, FlashAttention efficiency,
   memory-bound kernels) plus its TP / EP collectives (not overlapped: Megatron
   runs them on the critical path) and CP ring-attention exchange (overlapped
   with the attention kernel, the excess exposed). Recomputation adds the
   forward again (full) or the attention core again (selective) to backward.
2. Pipeline: layers are split over ``pp * vpp`` model chunks; stage ``i``
   takes ``t_i`` per micro-batch (its layers, embedding on the first stage,
   LM head and loss on the last, point-to-point sends). With ``m``
   micro-batches the 1F1B / interleaved schedule takes
   ``m * max(t) + (sum(t) - max(t)) / vpp`` - the classic bubble
   ``(pp - 1) / vpp`` stage-times when stages are equal (Narayanan et al. 2021).
3. Data parallelism: gradients (fp32, Megatron's main grads) are all-reduced,
   or reduce-scattered with the parameters all-gathered (distributed optimizer
   / ZeRO), over the data-parallel group; with ``overlap_grad_reduce`` only the
   part longer than the last micro-batch's backward is exposed.
4. Optimizer step: a memory-bound pass over this GPU's optimizer shard.

Model FLOPs for MFU follow PaLM (Chowdhery et al. 2022, app. B):
``6 * N_matmul + 6 * s * heads * (d_qk + d_v)`` per token and layer (no
causal discount), N_matmul being the active weights used in matmuls
(embedding lookup excluded, LM head included).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from ..errors import PlannerError
from ..limits import MAX_BATCH, MAX_GPUS, MAX_POSITIONS, check_int
from ..specs.hardware import System
from ..specs.model import ModelSpec
from .attention import attention_constants, attention_time_s
from .comm import collective_time_s, comm_constants
from .compute import compute_constants, constants_for, gemm_time_s, memory_bound_time_s
from .memory import RUNTIME_RESERVED_BYTES, activation_bytes_per_layer, inflight_microbatches, state_bytes
from .ops import LayerShape, Op, embedding_ops, head_ops, layer_ops
from .training_plan import (  # noqa: F401  (PlanError, stage_layer_counts: re-exported)
    MemoryBreakdown, PlanError, TrainingEstimate, TrainingPlan, check_plan, partition_layers, stage_layer_counts)


# ---------------------------------------------------------------------------
# per-layer timing (cached: many plans share a layer shape)
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class LayerTime:
    fwd_compute_s: float
    bwd_compute_s: float  # backward incl. recomputation
    fwd_comm: dict[str, float]  # exposed comm per group in forward
    bwd_comm: dict[str, float]  # exposed comm per group in backward incl. recomputation
    recompute_s: float  # part of bwd_compute_s that is recomputation

    @property
    def total_s(self) -> float:
        return self.fwd_compute_s + self.bwd_compute_s + sum(self.fwd_comm.values()) + sum(self.bwd_comm.values())


_KEEP: dict[int, object] = {}


def _key(obj: object) -> int:
    _KEEP[id(obj)] = obj  # keep cached objects alive so ids stay unique
    return id(obj)


@dataclass(frozen=True)
class Groups:
    """Group sizes and how many of each group's ranks share a scale-up domain
    (Megatron rank order: tp fastest, then cp, dp, pp; experts: etp, ep)."""

    tp: tuple[int, int]
    cp: tuple[int, int]
    dp: tuple[int, int]
    ep: tuple[int, int]
    etp: tuple[int, int]
    pp_cross_domain: bool


def groups_for(system: System, plan: TrainingPlan) -> Groups:
    dom = system.node.scale_up_domain

    def per_domain(size: int, stride: int) -> tuple[int, int]:
        return size, max(1, min(size, dom // stride)) if stride <= dom else 1

    return Groups(
        tp=per_domain(plan.tp, 1),
        cp=per_domain(plan.cp, plan.tp),
        dp=per_domain(plan.dp, plan.tp * plan.cp),
        ep=per_domain(plan.ep, plan.expert_tp),
        etp=per_domain(plan.expert_tp, 1),
        # any stage boundary that leaves the scale-up domain paces the pipeline (its stage is the slowest)
        pp_cross_domain=plan.pp > 1 and plan.tp * plan.cp * plan.dp * plan.pp > dom,
    )


@lru_cache(maxsize=65536)
def _collective_cached(kind: str, nbytes: float, size: int, skey: int, per_dom: int) -> float:
    return float(collective_time_s(kind, nbytes, size, _KEEP[skey], ranks_per_domain=per_dom))  # type: ignore[arg-type]


def _coll(kind: str, nbytes: float, size: int, system: System, per_dom: int) -> float:
    """collective_time_s, memoised (searches ask for the same collectives many times)."""
    return _collective_cached(kind, float(nbytes), size, _key(system), per_dom)


@lru_cache(maxsize=256)
def _constants_cached(skey: int) -> tuple[tuple[str, float], ...]:
    system: System = _KEEP[skey]  # type: ignore[assignment]
    acc = system.accelerator
    flat: dict[str, float] = {}
    for k, v in {**compute_constants(acc), **attention_constants(acc)}.items():
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            flat[k] = float(v)
    for tier, d in comm_constants(system).items():
        if isinstance(d, dict):
            for k, v in d.items():
                if isinstance(v, (int, float)) and not isinstance(v, bool):
                    flat[f"comm_{tier}_{k}"] = float(v)
    return tuple(flat.items())


@lru_cache(maxsize=256)
def _layer_table(mkey: int) -> tuple[tuple[tuple, ...], tuple[tuple[float, float], ...]]:
    """Per layer: its cost signature and (non-expert params, routed-expert params)."""
    model: ModelSpec = _KEEP[mkey]  # type: ignore[assignment]
    sigs, params = [], []
    for i in range(model.num_layers):
        sigs.append(_layer_signature(model, i))
        total = model.layer_params(i)
        if model.is_moe_layer(i):
            routed, _ = model.moe_params()
            params.append((float(total - routed), float(routed)))
        else:
            params.append((float(total), 0.0))
    return tuple(sigs), tuple(params)


def _comm(op: Op, system: System, groups: Groups) -> float:
    size, per_dom = getattr(groups, op.group)
    if size <= 1:
        return 0.0
    return _coll(op.collective, op.bytes, size, system, per_dom)


@dataclass(frozen=True)
class _Compute:
    """The kernels of a list of ops on one GPU, independent of groups and recomputation."""

    fwd: float
    bwd: float
    selective_fwd: float  # forward time of the ops selective recomputation re-runs
    attn_fwd: float
    attn_bwd: float
    comm_ops: tuple[Op, ...]
    # weight-gradient GEMM time of the column-parallel layers that take the block's input:
    # (attention block, MLP block); what an async TP all-reduce hides behind in backward
    col_wgrad: tuple[float, float] = (0.0, 0.0)


#: Column-parallel GEMMs reading a block's (replicated) input; in backward the all-reduce of
#: their input gradient is the block's conjugate TP collective.
_ATTN_INPUT_GEMMS = frozenset({"qkv_proj", "q_proj", "q_down", "kv_down", "la_in_proj"})
_MLP_INPUT_GEMMS = frozenset({"mlp_up"})


def _compute(ops: list[Op], system: System, dtype: str) -> _Compute:
    acc = system.accelerator
    fwd = bwd = sel = attn_fwd = attn_bwd = 0.0
    wgrad = [0.0, 0.0]
    comm = []
    for op in ops:
        if op.kind == "gemm":
            tf = gemm_time_s(op.m, op.n, op.k, acc, dtype, op.batch)
            tw = gemm_time_s(op.k, op.n, op.m, acc, dtype, op.batch)  # weight gradient
            tb = gemm_time_s(op.m, op.k, op.n, acc, dtype, op.batch) + tw
            if op.name in _ATTN_INPUT_GEMMS or op.name in _MLP_INPUT_GEMMS:
                wgrad[op.name in _MLP_INPUT_GEMMS] += float(tw)
        elif op.kind == "attention":
            tf = attention_time_s(op.flops, acc, dtype)
            tb = attention_time_s(op.flops * op.bwd_factor, acc, dtype, backward=True)
            attn_fwd += tf
            attn_bwd += tb
        elif op.kind == "memory":
            tf = memory_bound_time_s(op.bytes, acc, streaming=op.streaming)
            tb = memory_bound_time_s(op.bytes * op.bwd_factor, acc, streaming=op.streaming)
        else:
            comm.append(op)
            continue
        fwd += float(tf)
        bwd += float(tb)
        if op.selective:
            sel += float(tf)
    return _Compute(fwd, bwd, sel, attn_fwd, attn_bwd, tuple(comm), (wgrad[0], wgrad[1]))


def _with_comm(c: _Compute, system: System, groups: Groups, recompute: str, async_tp: bool = False) -> LayerTime:
    """Add the collectives and recomputation to the kernels.

    TP / EP collectives are on the critical path: once in forward, once (the
    conjugate collective) in backward, and once more in the recomputed forward
    under full recomputation. With ``async_tp`` (Megatron-LM's asynchronous
    tensor-parallel all-reduce, no sequence parallelism) the backward all-reduce
    of each block's input gradient runs beside the weight-gradient GEMMs of the
    column-parallel layers that read that input, so only ``max(0, ar - wgrad)``
    of it is exposed. The CP ring exchange hides behind the attention
    kernel it feeds: forward ``max(0, c - attn_fwd)``; backward sends K, V and
    returns dK, dV (twice the bytes) behind the attention backward,
    ``max(0, 2c - attn_bwd)``, plus the recomputed forward's own exchange.
    """
    fwd_comm: dict[str, float] = {}
    tp_hidden = 0.0
    for op in c.comm_ops:
        t = _comm(op, system, groups)
        fwd_comm[op.group] = fwd_comm.get(op.group, 0.0) + t
        if async_tp and op.name in ("attn_all_reduce", "mlp_all_reduce"):  # the blocks' TP all-reduces
            tp_hidden += min(t, c.col_wgrad[op.name == "mlp_all_reduce"])
    full = recompute == "full"
    rec = c.fwd if full else (c.selective_fwd if recompute == "selective" else 0.0)
    bwd_comm = {g: t * (2 if full else 1) for g, t in fwd_comm.items()}
    if tp_hidden:
        bwd_comm["tp"] -= tp_hidden
    if "cp" in fwd_comm:
        cp = fwd_comm["cp"]
        fwd_comm["cp"] = max(0.0, cp - c.attn_fwd)
        bwd_comm["cp"] = max(0.0, 2 * cp - c.attn_bwd) + (fwd_comm["cp"] if full else 0.0)
    return LayerTime(c.fwd, c.bwd + rec, fwd_comm, bwd_comm, rec)


def _ops_time(ops: list[Op], system: System, dtype: str, groups: Groups, recompute: str) -> LayerTime:
    return _with_comm(_compute(ops, system, dtype), system, groups, recompute)


def layer_shape(plan: TrainingPlan) -> LayerShape:
    """The per-GPU slice of one micro-batch in one layer under ``plan`` (16-bit activations)."""
    tp_split = plan.tp > 1
    return LayerShape(micro_batch=plan.micro_batch, seq_len=plan.seq_len, tp=plan.tp, cp=plan.cp, ep=plan.ep,
                      etp=plan.expert_tp, sp=plan.sp and tp_split, attention=plan.attention, act_bytes=2.0,
                      async_tp=plan.async_tp_allreduce and tp_split and not plan.sp)


def _cp_ops(model: ModelSpec, layer: int, sh: LayerShape) -> list[Op]:
    """Ring attention (context parallelism): each rank's K and V shard visits every other rank."""
    if sh.cp == 1 or model.layer_attention[layer] == "linear":
        return []
    if model.mla:
        kv = model.num_heads * (model.mla.qk_nope_head_dim + model.mla.qk_rope_head_dim + model.mla.v_head_dim)
    else:
        kv = 2 * model.kv_dim
    shard = sh.tokens * kv / sh.tp * sh.act_bytes
    return [Op("cp_kv_exchange", "comm", bytes=shard * sh.cp, collective="all_gather", group="cp")]


@lru_cache(maxsize=8192)
def _compute_cached(mkey: int, skey: int, layer: int, sh: LayerShape, dtype: str) -> _Compute:
    model: ModelSpec = _KEEP[mkey]  # type: ignore[assignment]
    ops = layer_ops(model, layer, sh) + _cp_ops(model, layer, sh)
    return _compute(ops, _KEEP[skey], dtype)  # type: ignore[arg-type]


@lru_cache(maxsize=8192)
def _layer_time_cached(mkey: int, skey: int, layer_sig: tuple, sh: LayerShape, dtype: str, recompute: str, groups: Groups) -> LayerTime:
    return _with_comm(_compute_cached(mkey, skey, layer_sig[0], sh, dtype), _KEEP[skey], groups, recompute,  # type: ignore[arg-type]
                      sh.async_tp)


@lru_cache(maxsize=4096)
def _extra_time_cached(mkey: int, skey: int, sh: LayerShape, dtype: str, first: bool, last: bool, groups: Groups) -> LayerTime:
    """Embedding (first stage) and LM head + loss (last stage) of one micro-batch."""
    model: ModelSpec = _KEEP[mkey]  # type: ignore[assignment]
    ops = (embedding_ops(model, sh) if first else []) + (head_ops(model, sh) if last else [])
    return _ops_time(ops, _KEEP[skey], dtype, groups, "none")  # type: ignore[arg-type]


@lru_cache(maxsize=4096)
def _act_cached(mkey: int, layer: int, sh: LayerShape, recompute: str) -> float:
    return activation_bytes_per_layer(_KEEP[mkey], layer, sh, recompute)  # type: ignore[arg-type]


def _layer_signature(model: ModelSpec, i: int) -> tuple:
    """Layers with the same attention kind and MLP kind cost the same."""
    return (model.layer_attention[i], model.is_moe_layer(i))


@lru_cache(maxsize=256)
def _representatives_cached(mkey: int) -> dict[tuple, int]:
    return _representatives(_KEEP[mkey])  # type: ignore[arg-type]


def _representatives(model: ModelSpec) -> dict[tuple, int]:
    reps: dict[tuple, int] = {}
    for i in range(model.num_layers):
        reps.setdefault(_layer_signature(model, i), i)
    return reps


def layer_time(model: ModelSpec, system: System, layer: int, sh: LayerShape, dtype: str, recompute: str, groups: Groups) -> LayerTime:
    rep = _representatives_cached(_key(model))[_layer_signature(model, layer)]
    return _layer_time_cached(_key(model), _key(system), (rep,), sh, dtype, recompute, groups)


# ---------------------------------------------------------------------------
# pipeline partition
# ---------------------------------------------------------------------------

@lru_cache(maxsize=1024)
def _stages_cached(mkey: int, pp: int, vpp: int, layers_per_chunk: tuple[int, ...] | None = None
                   ) -> tuple[list[list[int]], list[list[int]], list[tuple]]:
    """Chunks, the layers of each pipeline stage, and each stage's (signature, count) pairs."""
    model: ModelSpec = _KEEP[mkey]  # type: ignore[assignment]
    sig_of, _ = _layer_table(mkey)
    chunks = partition_layers(model.num_layers, pp, vpp, layers_per_chunk)
    stages = [[i for c in range(s, len(chunks), pp) for i in chunks[c]] for s in range(pp)]
    counts = []
    for layers in stages:
        d: dict[tuple, int] = {}
        for i in layers:
            d[sig_of[i]] = d.get(sig_of[i], 0) + 1
        counts.append(tuple(d.items()))
    return chunks, stages, counts


@lru_cache(maxsize=4096)
def _stage_mix(mkey: int, pp: int, vpp: int, layers_per_chunk: tuple[int, ...] | None, recompute: str,
               recompute_per_stage: tuple[int, ...] | None) -> list[tuple[tuple[tuple[tuple, str], int], ...]]:
    """Per stage: ((layer signature, recompute mode), count) pairs. With
    ``recompute_per_stage`` the first ``r`` layers of stage ``s`` are fully
    recomputed and the rest not at all."""
    _, stages, counts = _stages_cached(mkey, pp, vpp, layers_per_chunk)
    if recompute_per_stage is None:
        return [tuple(((sig, recompute), n) for sig, n in c) for c in counts]
    sig_of, _ = _layer_table(mkey)
    out = []
    for layers, r in zip(stages, recompute_per_stage):
        d: dict[tuple[tuple, str], int] = {}
        for j, i in enumerate(layers):
            k = (sig_of[i], "full" if j < r else "none")
            d[k] = d.get(k, 0) + 1
        out.append(tuple(d.items()))
    return out


def clear_caches() -> None:
    """Forget memoised layer times and collectives (benchmarks use it to time cold estimates)."""
    for f in (_stages_cached, _layer_table, _layer_time_cached, _compute_cached, _extra_time_cached, _act_cached,
              _collective_cached, _constants_cached, _representatives_cached, _model_flops_cached, _layer_groups,
              _stage_param_sums, _stage_mix, _recompute_flops_cached):
        f.cache_clear()


# ---------------------------------------------------------------------------
# the estimate
# ---------------------------------------------------------------------------

def model_flops_per_token(model: ModelSpec, seq_len: int) -> float:
    """PaLM-style model FLOPs per trained token (forward + backward)."""
    return _model_flops_cached(_key(model), seq_len)


@lru_cache(maxsize=1024)
def _model_flops_cached(mkey: int, seq_len: int) -> float:
    model: ModelSpec = _KEEP[mkey]  # type: ignore[assignment]
    matmul = model.active_params - model.embedding_params - model.final_norm_params
    if model.tie_embeddings:
        matmul += model.vocab_size * model.hidden_size
    attn = 0.0
    for kind in model.layer_attention:
        if kind == "linear":
            continue
        s_kv = min(seq_len, model.sliding_window) if kind == "sliding" and model.sliding_window else seq_len
        if model.mla:
            d = model.mla.qk_nope_head_dim + model.mla.qk_rope_head_dim + model.mla.v_head_dim
        else:
            d = 2 * model.head_dim
        attn += 6.0 * s_kv * model.num_heads * d / 2 * 2  # QK^T and AV, fwd + bwd
    return 6.0 * matmul + attn


# -- FLOPs counted beyond the model FLOPs (issue 11; reporting only, never in the step time) ----------------------

@lru_cache(maxsize=1024)
def _recompute_flops_cached(mkey: int, seq_len: int) -> tuple[float, float]:
    """Per trained token, in the model-FLOPs convention (PaLM, no causal discount): the forward FLOPs of all
    the transformer layers (what full recomputation runs again) and of their attention cores, QK^T and AV
    (what selective recomputation runs again; Korthikanti et al. 2022, sec. 5)."""
    model: ModelSpec = _KEEP[mkey]  # type: ignore[assignment]
    total = _model_flops_cached(mkey, seq_len)
    matmul = model.active_params - model.embedding_params - model.final_norm_params
    if model.tie_embeddings:
        matmul += model.vocab_size * model.hidden_size
    attn = total - 6.0 * matmul
    layers = total - 6.0 * model.vocab_size * model.hidden_size  # all but the LM head, which is never recomputed
    return layers / 3.0, attn / 3.0


def recomputed_flops_per_token(model: ModelSpec, plan: TrainingPlan) -> tuple[float, float]:
    """FLOPs per trained token that ``plan``'s recomputation adds: (counted by Megatron-LM 2021's Eq. 3, i.e. the
    full-recomputation forward; executed in all, i.e. that plus selective recomputation's attention cores).
    Model FLOPs + the first give Narayanan et al. 2021's TFLOP/s; + the second, hardware FLOP/s (HFU)."""
    layers_fwd, attn_fwd = _recompute_flops_cached(_key(model), plan.seq_len)
    if plan.recompute == "selective":
        return 0.0, attn_fwd
    if plan.recompute == "full":
        share = 1.0 if plan.recompute_per_stage is None else sum(plan.recompute_per_stage) / model.num_layers
        return layers_fwd * share, layers_fwd * share
    return 0.0, 0.0


@lru_cache(maxsize=4096)
def _stage_param_sums(mkey: int, pp: int, vpp: int, lpc: tuple[int, ...] | None, stage: int) -> tuple[float, float, float]:
    """Of the layers pipeline stage ``stage`` holds: (dense params, expert params,
    the largest layer's params)."""
    _, table = _layer_table(mkey)
    layers = _stages_cached(mkey, pp, vpp, lpc)[1][stage]
    return (sum(table[i][0] for i in layers), sum(table[i][1] for i in layers),
            max((sum(table[i]) for i in layers), default=0.0))


def _params_on_gpu(model: ModelSpec, stage: int, plan: TrainingPlan) -> tuple[float, float]:
    """(dense params, expert params) of one GPU of pipeline stage ``stage``."""
    dense_sum, expert_sum, _ = _stage_param_sums(_key(model), plan.pp, plan.vpp, plan.layers_per_chunk, stage)
    dense = dense_sum / plan.tp
    expert = expert_sum / (plan.ep * plan.expert_tp)
    return dense + _edge_params(model, plan, stage == 0, stage == plan.pp - 1), expert


def _edge_params(model: ModelSpec, plan: TrainingPlan, first: bool, last: bool) -> float:
    """Parameters on one GPU of the embedding (first stage) and of the LM head and final
    norm (last stage); an LM head tied to the embedding is a separate copy once pp > 1."""
    params = model.embedding_params / plan.tp if first else 0.0
    if last:
        params += (model.lm_head_params or (model.vocab_size * model.hidden_size if plan.pp > 1 else 0)) / plan.tp
        params += model.final_norm_params
    return params


def _edge_act_bytes(model: ModelSpec, plan: TrainingPlan, sh: LayerShape, first: bool, last: bool,
                    inflight: float) -> tuple[float, float]:
    """(activation bytes, other bytes) the embedding and loss add: the embedding dropout mask
    of every in-flight micro-batch (first stage), fp32 logits for the loss (last stage)."""
    act = sh.sp_tokens * model.hidden_size * inflight if first and model.dropout > 0 else 0.0
    logits = 4.0 * sh.tokens * (-(-model.vocab_size // plan.tp)) if last else 0.0
    return act, logits


def _p2p_send_s(model: ModelSpec, system: System, plan: TrainingPlan, sh: LayerShape, groups: Groups) -> float:
    """One pipeline send of a micro-batch's activations (Megatron sends 1/tp of them per TP rank:
    the scatter-gather optimisation, or SP's shard); 0 without pipelining."""
    if plan.pp == 1:
        return 0.0
    return _coll("send_recv", sh.tokens * model.hidden_size * sh.act_bytes / plan.tp, 2, system,
                 1 if groups.pp_cross_domain else 2)


#: DeepSpeed ZeRO-3 (2021) per-tensor collectives reach this fraction of the
#: bandwidth the comm model gives NCCL for one large collective. Fitted
#: (least squares on relative error) on the three ZeRO-3 rows of Narayanan et
#: al. 2021, Table 2 (175B on 384/768/1536 A100) by ``scripts/fit_zero3.py``.
ZERO3_TENSOR_BW_EFF = 0.61


@lru_cache(maxsize=1024)
def _layer_groups(mkey: int, layers: tuple[int, ...]) -> tuple[tuple[tuple[float, float, int], int], ...]:
    """The layers of a stage grouped by (dense params, expert params, tensors), with counts."""
    model: ModelSpec = _KEEP[mkey]  # type: ignore[assignment]
    _, table = _layer_table(mkey)
    counts: dict[tuple[float, float, int], int] = {}
    for i in layers:
        k = (table[i][0], table[i][1], model.layer_param_tensors(i))
        counts[k] = counts.get(k, 0) + 1
    return tuple(counts.items())


def _zero3_microbatch_s(model: ModelSpec, system: System, plan: TrainingPlan, layers: list[int],
                        params: tuple[float, float], dense_group: tuple[int, int], expert_dp: int,
                        ab: float, grad_b: float) -> float:
    """ZeRO-3 / FSDP communication of one micro-batch on one GPU of a stage.

    Every micro-batch all-gathers each weight for its forward and again for its
    backward, and reduce-scatters its gradient. ``zero3_gather="layer"``: one
    collective per layer (plus one for the embedding / head weights of the
    stage), time from the comm model. ``"tensor"``: one collective per parameter
    tensor (:meth:`ModelSpec.layer_param_tensors`), so ``n_tensors`` launch
    latencies plus the bandwidth term of the whole volume divided by
    ``ZERO3_TENSOR_BW_EFF``; the recomputation forward gathers the weights a
    third time (module hooks fire again).
    """
    dense_dp, dp_dom = dense_group
    egroup = (expert_dp, 1)
    per_tensor = plan.zero3_gather == "tensor"
    gathers = 2 + (1 if per_tensor and plan.recompute == "full" else 0)

    def one(nbytes_w: float, size: int, per_dom: int, count: int = 1) -> float:
        if size <= 1 or nbytes_w <= 0:
            return 0.0
        t_ag = _coll("all_gather", nbytes_w * ab, size, system, per_dom)
        t_rs = _coll("reduce_scatter", nbytes_w * grad_b, size, system, per_dom)
        if not per_tensor:
            return gathers * t_ag + t_rs
        lat_ag = _coll("all_gather", 1.0, size, system, per_dom)
        lat_rs = _coll("reduce_scatter", 1.0, size, system, per_dom)
        return (gathers * (count * lat_ag + (t_ag - lat_ag) / ZERO3_TENSOR_BW_EFF)
                + count * lat_rs + (t_rs - lat_rs) / ZERO3_TENSOR_BW_EFF)

    total = 0.0
    layer_dense = 0.0
    for (dense_p, expert_p, n_t), count in _layer_groups(_key(model), tuple(layers)):
        d, e = dense_p / plan.tp, expert_p / (plan.ep * plan.expert_tp)
        layer_dense += count * d
        if e > 0:  # routed experts sit on their own (expert-data-parallel) group
            n_e = 2 * model.moe.num_experts if model.moe else 0
            total += count * (one(d, dense_dp, dp_dom, n_t - n_e) + one(e, *egroup, n_e))
        else:
            total += count * one(d, dense_dp, dp_dom, n_t)
    rest = params[0] - layer_dense  # embedding, LM head, final norm of the stage
    if rest > 0:
        total += one(rest, dense_dp, dp_dom, 2)
    return total


def _slowest_chunk_s(chunks: list[list[int]], stage_layers: list[list[int]], stage_t: list[float],
                     layer_parts: list[float], pp: int, vpp: int) -> float:
    """The longest model chunk's time per micro-batch (interleaved schedule).

    Chunk ``c`` runs on stage ``s = c % pp``: its share of the stage's layer time
    (``len(chunk) / layers of the stage``), its share ``1 / vpp`` of the stage's
    point-to-point sends, the embedding on chunk 0 and the LM head on the last
    chunk. With equal chunks, ``(pp - 1)`` times this is the classic bubble
    ``(pp - 1) t / vpp`` (Narayanan et al. 2021); an uneven chunk or a heavy
    first / last chunk lengthens every warm-up and cool-down slot.
    """
    worst = 0.0
    last = len(chunks) - 1
    for c, layers in enumerate(chunks):
        s = c % pp
        n_s = len(stage_layers[s])
        other = stage_t[s] - layer_parts[s]  # embedding / head + sends
        t = (layer_parts[s] * len(layers) / n_s) if n_s else 0.0
        # the embedding / head sit on chunk 0 / the last chunk; otherwise only sends, spread over chunks
        t += other if c in (0, last) else other / vpp
        worst = max(worst, t)
    return worst


def _stage_act_other(model: ModelSpec, plan: TrainingPlan, sh: LayerShape, s: int,
                     counts: dict[tuple[tuple, str], int], m: int) -> tuple[float, float]:
    """Activation bytes and other bytes (runtime reserve, logits, ZeRO-3 buffers) of stage ``s``."""
    mkey = _key(model)
    reps = _representatives_cached(mkey)
    inflight = inflight_microbatches(plan.pp, plan.vpp, m, s)
    act = sum(n * _act_cached(mkey, reps[g], sh, mode) for (g, mode), n in counts.items()) * inflight
    recomputed = [g for (g, mode) in counts if mode == "full"]
    if recomputed:
        act += max(_act_cached(mkey, reps[g], sh, "none") for g in recomputed)  # one layer re-materialised
    edge_act, logits = _edge_act_bytes(model, plan, sh, s == 0, s == plan.pp - 1, inflight)
    act += edge_act
    other = RUNTIME_RESERVED_BYTES + logits
    if plan.zero >= 3:  # two gathered layers' weights
        other += 2 * _stage_param_sums(mkey, plan.pp, plan.vpp, plan.layers_per_chunk, s)[2] / plan.tp * 2
    return act, other


def _check_arguments(model: ModelSpec, system: System, plan: TrainingPlan, num_gpus: int | None) -> None:
    """The types and sizes :func:`estimate_training` needs before any work depends on them (degrees, batch and
    sequence within :mod:`planner.limits`), or one :class:`PlanError` line."""
    if not isinstance(model, ModelSpec) or not isinstance(system, System) or not isinstance(plan, TrainingPlan):
        raise PlanError("estimate_training takes a ModelSpec, a System and a TrainingPlan")
    try:
        if num_gpus is not None:
            check_int(num_gpus, "GPU count", hi=MAX_GPUS)
        for name in ("tp", "pp", "cp", "dp", "ep", "vpp"):
            check_int(getattr(plan, name), name, hi=MAX_GPUS)
        check_int(plan.num_gpus, "GPUs of the plan (tp x pp x cp x dp)", hi=MAX_GPUS)
        check_int(plan.expert_tp, "etp", hi=MAX_GPUS)
        check_int(plan.micro_batch, "micro-batch", hi=MAX_BATCH)
        check_int(plan.global_batch, "global batch", hi=MAX_BATCH)
        check_int(plan.seq_len, "sequence length", hi=MAX_POSITIONS)
    except PlannerError as exc:
        raise PlanError(str(exc)) from None


def stage_memory(model: ModelSpec, system: System, plan: TrainingPlan) -> list[MemoryBreakdown]:
    """Memory per GPU of every pipeline stage of ``plan``, stage 0 first: the same terms as
    :func:`estimate_training` (states by :func:`~planner.cost.memory.state_bytes`, activations and other bytes of
    the stage's layers and in-flight micro-batches, the peak by :func:`~planner.cost.memory.phase_peak_bytes`),
    whose ``memory`` is the largest of these and whose ``stage_peak_bytes`` (``per_stage_memory=True``) are
    their peaks. For the memory plot (:func:`planner.plots.plot_memory`)."""
    _check_arguments(model, system, plan, None)
    check_plan(model, system, plan)
    sh = layer_shape(plan)
    mix = _stage_mix(_key(model), plan.pp, plan.vpp, plan.layers_per_chunk, plan.recompute, plan.recompute_per_stage)
    dense_dp = plan.dp * plan.cp
    expert_dp = max(1, plan.tp * plan.cp * plan.dp // (plan.ep * plan.expert_tp))
    out = []
    for s in range(plan.pp):
        dense, expert = _params_on_gpu(model, s, plan)
        st = state_bytes(dense, expert, dense_dp, expert_dp, plan.zero, plan.dtype, 4.0 if plan.grad_reduce_in_fp32 else 2.0)
        act, other = _stage_act_other(model, plan, sh, s, dict(mix[s]), plan.num_microbatches)
        out.append(MemoryBreakdown(weights_bytes=st.weights_bytes, gradients_bytes=st.gradients_bytes,
                                   optimizer_bytes=st.optimizer_bytes, activations_bytes=act, other_bytes=other,
                                   peak_bytes=st.peak_bytes(act, other), capacity_bytes=system.accelerator.memory_bytes))
    return out


def estimate_training(model: ModelSpec, system: System, plan: TrainingPlan, num_gpus: int | None = None,
                      per_stage_memory: bool = False) -> TrainingEstimate:
    """Predict step time, throughput, MFU and per-GPU memory of ``plan``.

    ``per_stage_memory``: also fill ``stage_peak_bytes`` with every pipeline
    stage's peak (otherwise stages with the same layers are computed once).
    """
    _check_arguments(model, system, plan, num_gpus)
    check_plan(model, system, plan, num_gpus)
    acc = system.accelerator
    groups = groups_for(system, plan)
    sh = layer_shape(plan)
    ab = sh.act_bytes
    m = plan.num_microbatches
    mkey, skey = _key(model), _key(system)
    chunks, stage_layers, _ = _stages_cached(mkey, plan.pp, plan.vpp, plan.layers_per_chunk)
    stage_sig_counts = _stage_mix(mkey, plan.pp, plan.vpp, plan.layers_per_chunk, plan.recompute,
                                  plan.recompute_per_stage)

    # -- per-stage time per micro-batch ---------------------------------------
    stage_t: list[float] = []
    parts_by_stage: list[dict[str, float]] = []
    reps = _representatives_cached(mkey)
    stage_counts: list[tuple] = []
    layer_parts: list[float] = []  # the layers' share of each stage time (for the interleaved bubble)
    seen: dict[tuple, tuple[dict[str, float], float, float]] = {}
    comm_key = {"tp": "tp_comm", "cp": "cp_comm", "ep": "ep_comm", "etp": "ep_comm"}
    t_p2p = _p2p_send_s(model, system, plan, sh, groups)
    for s in range(plan.pp):
        first, last = s == 0, s == plan.pp - 1
        ckey = (stage_sig_counts[s], first, last)
        stage_counts.append(ckey)
        hit = seen.get(ckey)
        if hit is None:  # stages with the same layers cost the same
            parts = {"compute": 0.0, "recompute": 0.0, "tp_comm": 0.0, "cp_comm": 0.0, "ep_comm": 0.0, "pp_p2p": 0.0}
            for (sig, mode), n in stage_sig_counts[s]:
                lt = _layer_time_cached(mkey, skey, (reps[sig],), sh, plan.dtype, mode, groups)
                parts["compute"] += n * (lt.fwd_compute_s + lt.bwd_compute_s - lt.recompute_s)
                parts["recompute"] += n * lt.recompute_s
                for g, t in lt.fwd_comm.items():
                    parts[comm_key[g]] += n * t
                for g, t in lt.bwd_comm.items():
                    parts[comm_key[g]] += n * t
            layer_part = sum(parts.values())
            if first or last:
                lt = _extra_time_cached(mkey, skey, sh, plan.dtype, first, last, groups)
                parts["compute"] += lt.fwd_compute_s + lt.bwd_compute_s
                parts["tp_comm"] += sum(lt.fwd_comm.values()) + sum(lt.bwd_comm.values())
            # fwd activation + bwd gradient per chunk (one of them on the first / last stage)
            parts["pp_p2p"] = (1 if first or last else 2) * plan.vpp * t_p2p
            hit = seen[ckey] = (parts, sum(parts.values()), layer_part)
        stage_t.append(hit[1])
        parts_by_stage.append(hit[0])
        layer_parts.append(hit[2])
    t_max = max(stage_t)
    slowest = stage_t.index(t_max)
    if plan.vpp == 1:  # 1F1B: (m - 1) t_max + sum(t)
        bubble_s = sum(stage_t) - t_max
    else:  # interleaved: (pp - 1) warm-up / cool-down slots of the slowest chunk
        bubble_s = (plan.pp - 1) * _slowest_chunk_s(chunks, stage_layers, stage_t, layer_parts, plan.pp, plan.vpp)
    pipeline_s = m * t_max + bubble_s

    # -- memory per GPU (most loaded stage) -------------------------------------
    dense_dp = plan.dp * plan.cp
    expert_dp = max(1, plan.tp * plan.cp * plan.dp // (plan.ep * plan.expert_tp))
    best_mem: tuple[float, ...] | None = None
    per_gpu_params: list[tuple[float, float]] = []
    mem_seen: dict[tuple, tuple[float, float]] = {}
    stage_peaks: list[float] = []
    for s in range(plan.pp):
        ckey = stage_counts[s]
        if ckey in mem_seen and not per_stage_memory:
            # same layers as an earlier stage, which holds at least as many micro-batches
            per_gpu_params.append(mem_seen[ckey])
            continue
        dense, expert = _params_on_gpu(model, s, plan)
        mem_seen[ckey] = (dense, expert)
        per_gpu_params.append((dense, expert))
        st = state_bytes(dense, expert, dense_dp, expert_dp, plan.zero, plan.dtype, 4.0 if plan.grad_reduce_in_fp32 else 2.0)
        act, other = _stage_act_other(model, plan, sh, s, dict(ckey[0]), m)
        peak = st.peak_bytes(act, other)  # max(backward, optimizer step): memory.phase_peak_bytes
        stage_peaks.append(peak)
        if best_mem is None or peak > best_mem[5]:
            best_mem = (st.weights_bytes, st.gradients_bytes, st.optimizer_bytes, act, other, peak)
    assert best_mem is not None
    mem = MemoryBreakdown.model_construct(
        weights_bytes=best_mem[0], gradients_bytes=best_mem[1], optimizer_bytes=best_mem[2],
        activations_bytes=best_mem[3], other_bytes=best_mem[4], peak_bytes=best_mem[5], capacity_bytes=acc.memory_bytes,
    )

    # -- data-parallel gradient reduction --------------------------------------
    dense, expert = per_gpu_params[slowest]
    dp_size, dp_dom = groups.dp
    grad_b = 4.0 if plan.grad_reduce_in_fp32 else 2.0
    parts = parts_by_stage[slowest]
    dp_s = 0.0
    if plan.zero >= 3:
        zero3_mb = _zero3_microbatch_s(model, system, plan, stage_layers[slowest], (dense, expert),
                                       (dense_dp, dp_dom), expert_dp, ab, grad_b)
        if plan.zero3_gather == "layer":  # prefetched: a micro-batch takes max(compute, comm)
            extra_mb = max(0.0, zero3_mb - stage_t[slowest])
        else:  # issued on the compute stream: adds up
            extra_mb = zero3_mb
        pipeline_s += m * extra_mb
        dp_exposed = m * extra_mb
        dp_s = m * zero3_mb
    else:
        for params, size, per_dom in ((dense, dense_dp, dp_dom), (expert, expert_dp, 1)):
            if size <= 1 or params <= 0:
                continue
            if plan.zero >= 1:  # reduce-scatter gradients, all-gather updated weights
                dp_s += _coll("reduce_scatter", params * grad_b, size, system, per_dom)
                dp_s += _coll("all_gather", params * ab, size, system, per_dom)
            else:
                dp_s += _coll("all_reduce", params * grad_b, size, system, per_dom)
        if plan.overlap_grad_reduce:
            # gradients are final only in the last micro-batch's backward: the
            # reduction overlaps with it, bucket by bucket (the last bucket is exposed)
            n_layers = max(1, len(stage_layers[slowest]))
            bwd_one_mb = (parts["compute"] + parts["recompute"]) * 2 / 3
            dp_exposed = max(dp_s / n_layers, dp_s - bwd_one_mb)
        else:
            dp_exposed = dp_s

    # -- optimizer step: read grads + fp32 states, write states and weights -----
    shard = (dense / (dense_dp if plan.zero >= 1 else 1)) + (expert / (expert_dp if plan.zero >= 1 else 1))
    opt_s = shard * (4 + 12 + 12 + 2) / (acc.hbm_bandwidth_bytes_per_s * constants_for(acc).stream_eff)

    step = pipeline_s + (0.0 if plan.zero >= 3 else dp_exposed) + opt_s
    tokens = plan.global_batch * plan.seq_len
    n = plan.num_gpus
    mf = model_flops_per_token(model, plan.seq_len) * tokens
    peak_flops = acc.flops(plan.dtype)
    rec_counted, rec_executed = recomputed_flops_per_token(model, plan)  # Megatron 2021 Eq. 3 / hardware FLOPs
    breakdown = {k: v * m for k, v in parts.items()}
    breakdown["pp_bubble"] = bubble_s
    breakdown["dp_comm"] = dp_exposed
    breakdown["dp_comm_total"] = dp_s
    breakdown["optimizer"] = opt_s
    constants = dict(_constants_cached(skey))
    assumptions = [
        "Megatron-LM semantics: bf16 weights, fp32 main gradients reduced in fp32, Adam states in fp32",
        f"ZeRO stage {plan.zero}" + (" (Megatron distributed optimizer)" if plan.zero == 1 else ""),
        f"{'interleaved ' if plan.vpp > 1 else ''}1F1B pipeline schedule; layers split {[len(c) for c in chunks]} over chunks",
        "TP/EP collectives on the critical path; CP ring exchange overlapped with attention",
        f"attention: {'FlashAttention' if plan.attention == 'flash' else 'unfused softmax (Megatron-LM 2021)'}",
        "balanced expert routing" if model.is_moe else "dense model",
    ]
    # model_construct: every field is computed here with the right type (validation
    # would cost a third of an estimate in a search of thousands)
    return TrainingEstimate.model_construct(
        model=model.name,
        gpu=system.name,
        num_gpus=n,
        plan=plan,
        step_time_s=step,
        tokens_per_s=tokens / step,
        mfu=mf / (step * n * peak_flops),
        model_tflops_per_gpu=mf / (step * n) / 1e12,
        megatron_tflops_per_gpu=(mf + rec_counted * tokens) / (step * n) / 1e12,
        hardware_tflops_per_gpu=(mf + rec_executed * tokens) / (step * n) / 1e12,
        hfu=(mf + rec_executed * tokens) / (step * n * peak_flops),
        fits=mem.peak_bytes <= acc.memory_bytes,
        memory=mem,
        stage_peak_bytes=stage_peaks if per_stage_memory else None,
        breakdown=breakdown,
        constants=constants,
        assumptions=assumptions,
    )
