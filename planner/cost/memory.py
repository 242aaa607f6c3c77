"""Memory per GPU: weights, gradients, optimizer states, activations, KV cache.

One memory model, used by the estimator and by every search.

Training states follow Megatron-LM's mixed-precision Adam (Megatron-LM docs,
"distributed optimizer"): bf16/fp16 weights (2 B/param), fp32 main gradients
(4 B/param, Megatron keeps them in fp32 and reduces them in fp32), fp32 master
weights + Adam m and v (12 B/param). ZeRO stage 1 (Megatron's distributed
optimizer) shards the 12 B over the data-parallel ranks (6 + 12/d B/param);
stage 2 shards the gradients too, stage 3 the weights as well (DeepSpeed
ZeRO / PyTorch FSDP semantics). With 16-bit gradients the fp32 main-gradient
copies exist only during the optimizer step, after the backward has freed the
activations, so the peak is the larger of two phases (:func:`phase_peak_bytes`).

Activations per layer generalise Korthikanti et al., "Reducing Activation
Recomputation in Large Transformer Models" (MLSys 2023), eqs. 1-4: for GPT
with TP only ``sbh(10 + 24/t + 5as/(ht))`` bytes, with sequence parallelism
``sbh/t (34 + 5as/h)``, with selective recomputation ``34 sbh/t``. Here the
same terms are built from the layer's tensors so GQA, SwiGLU, MLA, MoE,
FlashAttention (no s x s scores kept) and dropout-free models come out right.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..specs.model import ModelSpec
from .ops import LayerShape

#: CUDA context, NCCL and cuBLAS workspaces and allocator slack, per GPU (assumed,
#: typical of PyTorch training jobs; not fitted).
RUNTIME_RESERVED_BYTES = 2.0 * 2**30

Recompute = str  # "none" | "selective" | "full"


def activation_bytes_per_layer(model: ModelSpec, layer: int, sh: LayerShape, recompute: Recompute = "none") -> float:
    """Bytes one layer keeps for backward for one micro-batch on one GPU."""
    h, T, tp, ab = model.hidden_size, sh.tokens, sh.tp, sh.act_bytes
    Tsp = sh.sp_tokens
    mask = 1.0 if model.dropout > 0 else 0.0
    if recompute == "full":
        return ab * Tsp * h  # the layer's input (Megatron checkpoints each layer's input)

    kind = model.layer_attention[layer]
    # attention block: norm input, QKV input (norm output), q/k/v, output-projection input, dropout mask
    attn = 2 * ab * Tsp * h + mask * Tsp * h
    if kind == "linear":
        la = model.linear_attention
        assert la is not None
        k_dim, v_dim = la.num_key_heads * la.key_head_dim, la.num_value_heads * la.value_head_dim
        attn += ab * T * (2 * k_dim + 2 * v_dim) / tp + ab * T * v_dim / tp
        core = 4.0 * T * la.num_value_heads / tp * 64  # chunk-level states (fp32), chunk 64
    else:
        if model.mla:
            m = model.mla
            qk = m.qk_nope_head_dim + m.qk_rope_head_dim
            attn += ab * T * ((m.q_lora_rank or 0) + m.kv_lora_rank)  # inputs of the up-projections
            attn += ab * T * model.num_heads * (2 * qk + m.v_head_dim) / tp
        else:
            attn += ab * T * (model.q_dim * (2 if model.attn_output_gate else 1) + 2 * model.kv_dim) / tp
        attn += ab * T * model.attn_out_dim / tp
        heads = model.num_heads / tp
        if sh.attention == "unfused":
            s_kv = sh.kv_len or sh.seq_len
            scores = sh.micro_batch * heads * (sh.seq_len / sh.cp) * s_kv
            core = scores * (ab + (1 + ab) * mask)  # softmax output (+ dropout mask and output)
        else:
            core = 4.0 * sh.micro_batch * heads * sh.seq_len / sh.cp  # FlashAttention log-sum-exp (fp32)
    if recompute == "selective":
        core = 0.0

    # MLP / MoE block: norm input, MLP input, dropout mask, then the FFN's own tensors
    mlp = 2 * ab * Tsp * h + mask * Tsp * h
    if model.is_moe_layer(layer):
        moe = model.moe
        assert moe is not None
        t_in = T / tp
        t_recv = t_in * moe.top_k * sh.etp
        f = moe.expert_intermediate_size / sh.etp
        mlp += ab * t_recv * (h + f * (2 if model.gated_mlp else 1) + f)
        if moe.num_shared_experts:
            fs = moe.num_shared_experts * moe.shared_intermediate_size / tp
            mlp += ab * T * fs * (3 if model.gated_mlp else 2)
    else:
        f = model.intermediate_size / tp
        mlp += ab * T * f * (3 if model.gated_mlp else 2)
    return attn + core + mlp


@dataclass(frozen=True)
class StateBytes:
    weights_bytes: float
    gradients_bytes: float
    optimizer_bytes: float  # fp32 master weights + Adam m, v; plus the fp32 main grads (below) if any
    main_grad_bytes: float = 0.0  # the part of optimizer_bytes held only during the optimizer step

    @property
    def backward_bytes(self) -> float:
        """States held during the forward and backward passes (without the step-only main grads)."""
        return self.weights_bytes + self.gradients_bytes + self.optimizer_bytes - self.main_grad_bytes

    @property
    def total_bytes(self) -> float:
        """All states, as held during the optimizer step."""
        return self.weights_bytes + self.gradients_bytes + self.optimizer_bytes

    def peak_bytes(self, activations: float, other: float) -> float:
        """The larger of the two phases (:func:`phase_peak_bytes`)."""
        return phase_peak_bytes(self, activations, other)


def phase_peak_bytes(st: StateBytes, activations: float, other: float) -> float:
    """Peak bytes per GPU: the larger of the backward pass and the optimizer step.

        backward = weights + grads + (optimizer - main grads) + activations + other
        step     = weights + grads + optimizer (incl. main grads)          + other
        peak     = max(backward, step)
                 = weights + grads + optimizer - main grads + other + max(activations, main grads)

    With 16-bit gradients (``grad_reduce_in_fp32=False``, Megatron-LM 2021 with fp16)
    the optimizer's fp32 main gradients exist only inside the step: Megatron-LM's
    ``Float16OptimizerWithFloat16Params.step()`` (megatron/optimizer/optimizer.py,
    2021) calls ``_copy_model_grads_to_main_grads``, which sets
    ``main_param.grad = model_param.grad.float()``, after the backward pass has
    freed the activations. With fp32 gradients (``main_grad_bytes == 0``: they
    accumulate during the backward) both phases hold every state and the peak is
    the plain sum. ``other`` (runtime reserve, logits, buffers) is counted in both
    phases (conservative).
    """
    return st.backward_bytes + other + max(activations, st.main_grad_bytes)


def state_bytes(dense_params: float, expert_params: float, dense_dp: int, expert_dp: int, zero: int, dtype: str,
                grad_bytes: float = 4.0) -> StateBytes:
    """Weights, gradients and optimizer states of the parameters one GPU holds.

    ``grad_bytes`` is 4 for fp32 main gradients (Megatron's default with bf16),
    2 when gradients are kept in the 16-bit dtype (Megatron 2021 with fp16).
    ``dense_params`` / ``expert_params`` are this GPU's shard (already divided
    by tp / ep*etp); ``dense_dp`` / ``expert_dp`` the ranks that replicate them.
    fp8 training keeps bf16 weights plus an fp8 copy (Transformer Engine): 3 B/param.
    With 16-bit gradients the optimizer also keeps fp32 copies of them (main
    grads, 4 B/param, sharded like its states; counted in ``optimizer_bytes`` and
    reported apart as ``main_grad_bytes`` because they exist only during the
    optimizer step, see :func:`phase_peak_bytes`): Megatron's table of bytes per
    parameter (docs, distributed optimizer) gives 20 (fp16 params and grads) and 18
    (bf16 params, fp32 grads) without sharding, ``4 + 16/d`` and ``6 + 12/d`` with it.
    """
    w_b = 3.0 if dtype == "fp8" else 2.0
    main_b = 4.0 if grad_bytes < 4.0 else 0.0
    g_b, o_b = grad_bytes, 12.0 + main_b
    weights = grads = opt = main = 0.0
    for p, d in ((dense_params, max(1, dense_dp)), (expert_params, max(1, expert_dp))):
        weights += p * w_b / (d if zero >= 3 else 1)
        grads += p * g_b / (d if zero >= 2 else 1)
        opt += p * o_b / (d if zero >= 1 else 1)
        main += p * main_b / (d if zero >= 1 else 1)
    return StateBytes(weights, grads, opt, main)


def inflight_microbatches(pp: int, vpp: int, num_microbatches: int, stage: int = 0) -> float:
    """Micro-batches of activations stage ``stage`` holds at its peak (in units of a
    whole stage's layers).

    1F1B: stage i holds ``min(pp - i, m)``. Interleaved 1F1B with ``vpp`` chunks:
    the first stage holds ``pp * (1 + (pp - 1) / (pp * vpp))`` (Korthikanti et al.
    2022, sec. 4.2.3; Megatron's warm-up of ``2(pp-1) + (vpp-1)pp`` chunks + 1).
    """
    if pp == 1:
        return 1.0
    if vpp == 1:
        return float(min(pp - stage, num_microbatches))
    chunks = 2 * (pp - stage - 1) + (vpp - 1) * pp + 1
    return min(chunks, num_microbatches * vpp) / vpp
