"""A transformer layer as a declarative list of operators, sharded by the plan.

Each :class:`Op` carries its forward FLOPs and bytes for ONE GPU and what its
backward pass costs; :mod:`planner.cost.training` and the serving model turn
the list into times. Shapes follow Megatron-LM's sharding (Shoeybi et al.
2019; Korthikanti et al. 2022):

- column-parallel QKV / MLP-up and row-parallel output / MLP-down GEMMs split
  their weight by the tensor-parallel degree ``tp``;
- with sequence parallelism the norms, dropouts and residual adds run on
  ``tokens / tp`` tokens, otherwise every TP rank repeats them on all tokens;
- context parallelism ``cp`` splits the sequence: each rank holds ``s / cp``
  queries and (ring attention) attends to all keys;
- MoE layers dispatch each token to ``top_k`` experts spread over ``ep`` ranks
  (expert tensor parallelism ``etp`` splits each expert's FFN).

FLOP conventions: a GEMM ``[m x k] @ [k x n]`` is ``2mnk``; causal attention
does half of the ``4 * s_q * s_kv * d`` score and value products; its
backward is 2.5x the forward (FlashAttention-2 recomputes the scores).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ..specs.model import ModelSpec

OpKind = Literal["gemm", "attention", "memory", "comm"]


@dataclass(frozen=True)
class Op:
    """One operator of a layer's forward pass on one GPU.

    gemm: ``m, n, k`` (and ``batch`` independent GEMMs of that shape);
    attention: ``flops`` forward (FlashAttention), ``bwd_factor`` for backward;
    memory: ``bytes`` forward read+write; comm: ``collective`` over ``group``
    (``tp``, ``cp``, ``ep``) with ``bytes`` per the comm-model convention.
    ``recompute`` marks what selective recomputation re-runs in backward.
    """

    name: str
    kind: OpKind
    m: int = 0
    n: int = 0
    k: int = 0
    batch: int = 1
    flops: float = 0.0
    bytes: float = 0.0
    bwd_factor: float = 2.0
    collective: str = ""
    group: str = ""
    selective: bool = False  # recomputed under selective recomputation
    streaming: bool = False  # a plain streaming memory kernel (add, dropout, softmax, copy)

    @property
    def fwd_flops(self) -> float:
        if self.kind == "gemm":
            return 2.0 * self.m * self.n * self.k * self.batch
        return self.flops if self.kind == "attention" else 0.0


@dataclass(frozen=True)
class LayerShape:
    """The per-GPU slice of one micro-batch going through one layer."""

    micro_batch: int
    seq_len: int
    tp: int = 1
    cp: int = 1
    ep: int = 1
    etp: int = 1
    sp: bool = False
    attention: Literal["flash", "unfused"] = "flash"
    async_tp: bool = False  # backward TP all-reduces overlap the column-parallel weight gradients
    act_bytes: float = 2.0  # bytes per activation element (bf16)
    kv_len: int | None = None  # keys attended to per query (serving: context length)
    causal: bool = True

    @property
    def tokens(self) -> int:
        """Tokens of the micro-batch on one CP rank (the GEMMs' m)."""
        return self.micro_batch * self.seq_len // self.cp

    @property
    def sp_tokens(self) -> float:
        """Tokens each GPU handles in norm / dropout / residual regions."""
        return self.tokens / self.tp if self.sp else self.tokens


def _attention_core(model: ModelSpec, kind: str, sh: LayerShape) -> list[Op]:
    b, s, tp = sh.micro_batch, sh.seq_len, sh.tp
    s_q = s // sh.cp
    heads = model.num_heads / tp
    if model.mla:
        d_qk = model.mla.qk_nope_head_dim + model.mla.qk_rope_head_dim
        d_v = model.mla.v_head_dim
    else:
        d_qk = d_v = model.head_dim
    s_kv = sh.kv_len or s
    if kind == "sliding" and model.sliding_window:
        s_kv = min(s_kv, model.sliding_window)
        causal_frac = 1.0 if s_kv < s else 0.5
    else:
        causal_frac = 0.5 if sh.causal else 1.0
    if sh.attention == "unfused":
        # Megatron-LM 2021: QK^T and AV as batched GEMMs over all s x s scores,
        # fused scale-mask-softmax (read + write fp16), then attention dropout.
        bh = int(b * heads)
        scores = b * heads * s_q * s_kv
        drop_bytes = scores * (2 + 2 + 1) if model.dropout > 0 else 0.0
        return [
            Op("attn_qk", "gemm", m=s_q, n=s_kv, k=d_qk, batch=bh, selective=True),
            Op("attn_softmax", "memory", bytes=scores * 4, selective=True, streaming=True),
            *([Op("attn_dropout", "memory", bytes=drop_bytes, selective=True, streaming=True)] if drop_bytes else []),
            Op("attn_av", "gemm", m=s_q, n=d_v, k=s_kv, batch=bh, selective=True),
        ]
    flops = 2.0 * b * heads * s_q * s_kv * (d_qk + d_v) * causal_frac
    return [Op("attn_core", "attention", flops=flops, bwd_factor=2.5, selective=True)]


def _linear_attention_ops(model: ModelSpec, sh: LayerShape) -> list[Op]:
    """Gated DeltaNet (Qwen3.5): in-projections, short conv, chunked delta rule, out-projection."""
    la = model.linear_attention
    assert la is not None
    T, tp, h = sh.tokens, sh.tp, model.hidden_size
    k_dim, v_dim = la.num_key_heads * la.key_head_dim, la.num_value_heads * la.value_head_dim
    chunk = 64
    rule = T * la.num_value_heads / tp * (4 * la.key_head_dim * la.value_head_dim + 2 * chunk * (la.key_head_dim + la.value_head_dim))
    return [
        Op("la_in_proj", "gemm", m=T, k=h, n=int((2 * k_dim + 2 * v_dim + 2 * la.num_value_heads) / tp)),
        Op("la_conv", "memory", bytes=T * (2 * k_dim + v_dim) / tp * sh.act_bytes * 2),
        Op("la_delta_rule", "attention", flops=rule, bwd_factor=2.5, selective=True),
        Op("la_out_proj", "gemm", m=T, k=int(v_dim / tp), n=h),
    ]


def _tp_collectives(name: str, sh: LayerShape, h: int) -> list[Op]:
    """Megatron TP: one all-reduce per block (or all-gather + reduce-scatter with SP)."""
    if sh.tp == 1:
        return []
    nbytes = sh.tokens * h * sh.act_bytes
    if sh.sp:
        return [
            Op(f"{name}_all_gather", "comm", bytes=nbytes, collective="all_gather", group="tp"),
            Op(f"{name}_reduce_scatter", "comm", bytes=nbytes, collective="reduce_scatter", group="tp"),
        ]
    return [Op(f"{name}_all_reduce", "comm", bytes=nbytes, collective="all_reduce", group="tp")]


def layer_ops(model: ModelSpec, layer: int, sh: LayerShape) -> list[Op]:
    """Forward operators of decoder layer ``layer`` for one micro-batch on one GPU."""
    h, T, tp, ab = model.hidden_size, sh.tokens, sh.tp, sh.act_bytes
    Tsp = sh.sp_tokens
    kind = model.layer_attention[layer]
    norm_bytes = Tsp * h * ab * 2  # read x, write normalised x
    resid_bytes = Tsp * h * ab * (3 + (0.5 if model.dropout > 0 else 0))  # (bias-dropout-)add: 2 reads, 1 write (+mask)
    ops: list[Op] = [Op("input_norm", "memory", bytes=norm_bytes)]
    ops += _tp_collectives("attn", sh, h)[:1] if sh.sp else []

    if kind == "linear":
        ops += _linear_attention_ops(model, sh)
    else:
        if model.mla:
            m = model.mla
            qk = m.qk_nope_head_dim + m.qk_rope_head_dim
            if m.q_lora_rank:
                ops.append(Op("q_down", "gemm", m=T, k=h, n=m.q_lora_rank))
                ops.append(Op("q_up", "gemm", m=T, k=m.q_lora_rank, n=model.num_heads * qk // tp))
            else:
                ops.append(Op("q_proj", "gemm", m=T, k=h, n=model.num_heads * qk // tp))
            ops.append(Op("kv_down", "gemm", m=T, k=h, n=m.kv_lora_rank + m.qk_rope_head_dim))
            ops.append(Op("kv_up", "gemm", m=T, k=m.kv_lora_rank, n=model.num_heads * (m.qk_nope_head_dim + m.v_head_dim) // tp))
            rope_elems = T * (model.num_heads / tp + 1) * m.qk_rope_head_dim
        else:
            q_out = model.q_dim * (2 if model.attn_output_gate else 1)
            ops.append(Op("qkv_proj", "gemm", m=T, k=h, n=(q_out + 2 * model.kv_dim) // tp))
            rope_elems = 0 if model.learned_positions else T * (model.q_dim + model.kv_dim) / tp
        if rope_elems:
            ops.append(Op("rope", "memory", bytes=rope_elems * ab * 2))
        ops += _attention_core(model, kind, sh)
        ops.append(Op("out_proj", "gemm", m=T, k=model.attn_out_dim // tp, n=h))
    ops += _tp_collectives("attn", sh, h)[-1:] if sh.sp else _tp_collectives("attn", sh, h)
    ops.append(Op("attn_residual", "memory", bytes=resid_bytes, streaming=True))
    ops.append(Op("post_norm", "memory", bytes=norm_bytes))

    if model.is_moe_layer(layer):
        ops += _moe_ops(model, sh)
    else:
        ops += _mlp_ops(model, sh, model.intermediate_size, "mlp")
    ops.append(Op("mlp_residual", "memory", bytes=resid_bytes, streaming=True))
    return ops


def _mlp_ops(model: ModelSpec, sh: LayerShape, width: int, name: str, tp: int | None = None, tokens: float | None = None) -> list[Op]:
    tp = tp or sh.tp
    T = int(tokens if tokens is not None else sh.tokens)
    f = width // tp
    up_n = f * (2 if model.gated_mlp else 1)
    act_bytes = T * f * sh.act_bytes * (3 if model.gated_mlp else 2)
    ops = [
        Op(f"{name}_up", "gemm", m=T, k=model.hidden_size, n=up_n),
        Op(f"{name}_act", "memory", bytes=act_bytes),
        Op(f"{name}_down", "gemm", m=T, k=f, n=model.hidden_size),
    ]
    if name == "mlp":
        sp_ops = _tp_collectives("mlp", sh, model.hidden_size)
        ops = (sp_ops[:1] if sh.sp else []) + ops + (sp_ops[-1:] if sh.sp else sp_ops)
    return ops


def _moe_ops(model: ModelSpec, sh: LayerShape) -> list[Op]:
    """Router, all-to-all dispatch / combine over ``ep``, local experts, shared experts.

    Balanced routing: each GPU's ``tokens/tp * top_k`` token copies are spread
    evenly, so each local expert sees ``tokens/tp * top_k * ep / E`` tokens per
    GPU, gathered over the ``etp`` ranks that split it (Megatron-Core).
    """
    moe = model.moe
    assert moe is not None
    h, ab = model.hidden_size, sh.act_bytes
    t_in = sh.tokens / sh.tp if sh.tp > 1 else float(sh.tokens)  # MoE needs SP when tp > 1
    local_experts = max(1, moe.num_experts // sh.ep)
    per_expert = max(1, round(t_in * moe.top_k * sh.etp * sh.ep / moe.num_experts))
    f = moe.expert_intermediate_size // sh.etp
    up_n = f * (2 if model.gated_mlp else 1)
    a2a_bytes = t_in * moe.top_k * h * ab
    ops: list[Op] = [
        Op("router", "gemm", m=int(t_in), k=h, n=moe.num_experts),
        Op("permute", "memory", bytes=a2a_bytes * 2, streaming=True),
    ]
    if sh.ep > 1:
        ops.append(Op("moe_dispatch", "comm", bytes=a2a_bytes, collective="all_to_all", group="ep"))
    if sh.etp > 1:
        ops.append(Op("moe_etp_all_gather", "comm", bytes=a2a_bytes * sh.etp, collective="all_gather", group="etp"))
    ops += [
        Op("experts_up", "gemm", m=per_expert, k=h, n=up_n, batch=local_experts),
        Op("experts_act", "memory", bytes=per_expert * local_experts * f * ab * (3 if model.gated_mlp else 2)),
        Op("experts_down", "gemm", m=per_expert, k=f, n=h, batch=local_experts),
    ]
    if sh.etp > 1:
        ops.append(Op("moe_etp_reduce_scatter", "comm", bytes=a2a_bytes * sh.etp, collective="reduce_scatter", group="etp"))
    if sh.ep > 1:
        ops.append(Op("moe_combine", "comm", bytes=a2a_bytes, collective="all_to_all", group="ep"))
    ops.append(Op("unpermute", "memory", bytes=a2a_bytes * 2, streaming=True))
    if moe.num_shared_experts:
        # Shared experts are tensor-parallel like a dense MLP: all-gather the
        # sequence-parallel tokens in, reduce-scatter out.
        width = moe.num_shared_experts * moe.shared_intermediate_size
        ops += _mlp_ops(model, sh, width, "shared_expert", tokens=sh.tokens)
        if sh.tp > 1:
            ops += [
                Op("shared_all_gather", "comm", bytes=sh.tokens * h * ab, collective="all_gather", group="tp"),
                Op("shared_reduce_scatter", "comm", bytes=sh.tokens * h * ab, collective="reduce_scatter", group="tp"),
            ]
    return ops


def embedding_ops(model: ModelSpec, sh: LayerShape) -> list[Op]:
    """Token (and learned position) embedding lookup on the first pipeline stage."""
    n = sh.tokens * model.hidden_size * sh.act_bytes
    ops = [Op("embedding", "memory", bytes=n * (3 if model.learned_positions else 2), streaming=True)]
    if sh.tp > 1:  # vocab-parallel embedding: all-reduce (or reduce-scatter with SP)
        ops.append(Op("embedding_reduce", "comm", bytes=n, collective="reduce_scatter" if sh.sp else "all_reduce", group="tp"))
    return ops


def head_ops(model: ModelSpec, sh: LayerShape) -> list[Op]:
    """Final norm, LM head (vocab-parallel GEMM) and cross-entropy on the last stage."""
    T, h = sh.tokens, model.hidden_size
    vocab = -(-model.vocab_size // sh.tp)
    ops = [Op("final_norm", "memory", bytes=sh.sp_tokens * h * sh.act_bytes * 2)]
    if sh.sp and sh.tp > 1:
        ops.append(Op("head_all_gather", "comm", bytes=T * h * sh.act_bytes, collective="all_gather", group="tp"))
    ops.append(Op("lm_head", "gemm", m=T, k=h, n=vocab))
    ops.append(Op("cross_entropy", "memory", bytes=T * vocab * 4 * 3, bwd_factor=1.0, streaming=True))  # fp32 logits: softmax, loss, grad
    return ops
