"""Serving: prefill and decode iteration times, memory and KV capacity, TTFT / TPOT.

A serving *worker* (one engine instance) runs on ``tp x dp x pp`` GPUs:
attention is tensor-parallel over ``tp`` and data-parallel over ``dp``
("attention DP": each of the ``dp`` groups attends to its own share of the
running requests); MoE experts are spread over the same ``tp x dp`` GPUs as
``moe_tp x ep``; ``pp`` pipeline stages split the layers.

Per GPU and per iteration (formulas in the functions below):

* **Decode step** at batch ``B`` (running requests) and mean context ``c``:
  the weight GEMMs at ``m = B / dp`` tokens (weight-read bound at small B,
  :func:`~planner.cost.compute.gemm_time_s` with the quantized weight bytes),
  the attention kernel reading ``B / dp`` requests' KV cache (GQA heads split
  over ``tp``; the MLA latent is not split, its absorbed attention is also
  timed as FLOPs), routed experts (``E_local (1 - (1 - 1/E)^(B k))`` experts
  touched, each at ``B k / E`` tokens), norms, the LM head, TP all-reduces and
  MoE all-to-alls from the comm model, plus a per-step engine overhead.
* **Prefill** of ``n`` requests of ``isl`` tokens: the training operators'
  forward pass (:func:`planner.cost.ops.layer_ops`, causal FlashAttention) at
  the precision's GEMM rate, plus a per-prefill engine overhead.
* **Closed loop at concurrency C** (how the measured runs were made: a
  finished request is replaced at once): requests complete at
  ``lambda = C / (TTFT + (osl - 1) TPOT)``; prefills take a share
  ``rho = lambda T_pf`` of the GPU time, so decode iterations run in the rest,
  ``TPOT = t_dec(C) / (1 - rho)``; a new request waits for the iteration in
  flight and for the prefills queued before it (an M/D/1 wait at utilisation
  ``rho``), ``TTFT = T_pf + t_dec / 2 + rho T_pf / (2 (1 - rho))``. The fixed
  point in ``lambda`` is found by iteration.
* **Disaggregated**: prefill workers batch ``prefill_batch`` requests; the KV
  cache goes to the decode worker over the network; decode workers run at
  ``decode_batch``. TTFT = batched prefill + transfer + the wait for the prefill
  pool, from a mean value analysis of the closed loop through both pools
  (:func:`closed_network_wait`); TPOT the decode step.

Per-backend constants (engine overheads, a decode efficiency) are fitted on
the H100 / H200 rows of ``shared/reference/serving/measured_serving.csv`` by
``scripts/fit_serving.py``; Blackwell rows are report-only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from ..errors import PlannerError
from ..limits import MAX_CONCURRENCY, MAX_GPUS, MAX_RATE, MAX_REQUEST_TOKENS, check_int, check_number
from ..results import ResultMixin
from ..specs.hardware import System
from ..specs.model import ModelSpec
from .compute import gemm_time_s, memory_bound_time_s
from .ops import LayerShape, layer_ops
from .training import _KEEP, _compute, _key, _layer_table, _representatives_cached, _stages_cached
from .training import _coll as _train_coll

Precision = Literal["bf16", "fp16", "fp8", "int4", "fp4"]
Backend = Literal["trtllm", "vllm", "sglang"]

#: bytes per weight element of the quantized linear layers (NVFP4: 4 bits plus an
#: fp8 scale per 16 values; int4 AWQ/GPTQ: 4 bits plus a 16-bit scale per 128).
WEIGHT_BYTES = {"bf16": 2.0, "fp16": 2.0, "fp8": 1.0, "int4": 0.5 + 2.0 / 128, "fp4": 0.5 + 1.0 / 16}
#: the GEMM math each precision runs (int4 is weight-only: bf16 math)
GEMM_DTYPE = {"bf16": "bf16", "fp16": "fp16", "fp8": "fp8", "int4": "bf16", "fp4": "fp4"}


@dataclass(frozen=True)
class BackendConstants:
    """Engine behaviour not in the kernels (fitted, see the module docstring).

    Decode step: ``t_step = kernel_eff * kernels + moe_eff * expert kernels + comm_eff * collectives
    + comm_x_eff * collectives leaving the scale-up domain + step_overhead_s + step_per_request_s * m``
    (``m`` running requests per attention-DP group; engines differ most in their fused-MoE kernels);
    with prefills mixed in (chunked prefill), ``TPOT = t_step + prefill_mix * rho * TPOT``
    (the prefill work that lands in each iteration, ``prefill_mix < 1`` where it
    overlaps the decode's memory-bound kernels).
    First token in the closed loop: ``TTFT = ttft_prefill * T_dense + ttft_prefill_moe * T_experts
    + ttft_cycle / lambda + ttft_queue * T_pf rho / (1 - rho) + ttft_admit * C * TPOT
    + ttft_burst * (C - 1) / 2 * T_burst + ttft_overhead_s``: the prefill itself (its dense
    and routed-expert kernels, whose grouped GEMMs run further from the roofline), a wait
    proportional to the time between request completions, an M/D/1 queue behind other
    prefills, admission behind the requests that arrived in the same burst (a share of C
    decode iterations), and the prompts prefilled ahead of a request when the C requests
    arrive together at the start of a run (``T_burst``: prefill time per request with as
    many prompts packed per forward pass as the token budget allows; the constant is the
    share of requests that arrive that way). All per attention-DP group.
    """

    kernel_eff: float
    moe_eff: float
    comm_eff: float
    comm_x_eff: float
    step_overhead_s: float
    step_per_request_s: float  # host time per running request per decode step (the engine's per-token bookkeeping)
    prefill_mix: float
    ttft_prefill: float
    ttft_prefill_moe: float
    ttft_cycle: float
    ttft_queue: float
    ttft_admit: float
    ttft_burst: float
    ttft_overhead_s: float
    ttft_busy_s: float  # extra per-request latency while other requests are in flight (x (C - 1) / C)
    mem_fraction: float  # share of GPU memory the engine takes for weights + KV
    kv_fp8_when_quantized: bool  # KV cache in fp8 when weights are fp8 / fp4


#: Fitted by scripts/fit_serving.py on the h100_sxm / h200_sxm rows of
#: shared/reference/serving/measured_serving.csv (calibration split only; 779
#: trtllm, 576 vllm, 281 sglang rows; TPOT constants minimise the MAPE, TTFT constants the mean
#: |log(predicted / measured)|, see TTFT_LOG_LOSS there). Memory fractions and KV dtypes are the
#: engines' defaults (vLLM gpu_memory_utilization 0.9, SGLang mem_fraction_static
#: ~0.88, TensorRT-LLM free_gpu_memory_fraction 0.9 with an fp8 KV cache for fp8 / fp4 models).
_FITTED = {
    "trtllm": dict(kernel_eff=0.806, moe_eff=1.021, comm_eff=0.672, comm_x_eff=0.4201, step_overhead_s=0.000753, step_per_request_s=0, prefill_mix=0.95, ttft_prefill=1, ttft_prefill_moe=1, ttft_cycle=0, ttft_queue=0, ttft_admit=0.03092, ttft_burst=0.1345, ttft_overhead_s=0, ttft_busy_s=0.09972),
    "vllm": dict(kernel_eff=0.8399, moe_eff=0.938, comm_eff=1.069, comm_x_eff=3.547, step_overhead_s=0, step_per_request_s=0, prefill_mix=0.9219, ttft_prefill=1, ttft_prefill_moe=1, ttft_cycle=0, ttft_queue=0, ttft_admit=0.02958, ttft_burst=0.115, ttft_overhead_s=0, ttft_busy_s=0.03994),
    "sglang": dict(kernel_eff=0.7, moe_eff=1.329, comm_eff=0.25, comm_x_eff=0.25, step_overhead_s=0.003106, step_per_request_s=1.629e-05, prefill_mix=0.7299, ttft_prefill=1, ttft_prefill_moe=1, ttft_cycle=0, ttft_queue=4.008, ttft_admit=0.03002, ttft_burst=0.1667, ttft_overhead_s=0, ttft_busy_s=0.1781),
}
BACKENDS: dict[str, BackendConstants] = {
    "trtllm": BackendConstants(**_FITTED["trtllm"], mem_fraction=0.9, kv_fp8_when_quantized=True),
    "vllm": BackendConstants(**_FITTED["vllm"], mem_fraction=0.9, kv_fp8_when_quantized=False),
    "sglang": BackendConstants(**_FITTED["sglang"], mem_fraction=0.88, kv_fp8_when_quantized=False),
}

#: activation workspace a worker reserves (max batched tokens x hidden x a few buffers)
MAX_BATCHED_TOKENS = 8192


#: Per engine release, the closed-loop wait proportional to the interval between request
#: completions (``ttft_cycle x (C - 1) / C / lambda``), fitted by ``scripts/fit_serving.py`` on the
#: calibration rows of each release with at least ``RELEASE_MIN_ROWS`` rows. Older releases wait so:
#: on the rows of TensorRT-LLM 1.0.0rc3, vLLM 0.12.0 and SGLang 0.5.1 / 0.5.6 (H100 / H200)
#: ``(TTFT - prefill) x lambda`` has a median of 1.0-18, on every later release, Blackwell's
#: included, 0.06-0.9. Without it the H100 rows (nearly all of those releases) taught a wait the
#: H200 rows do not have: fitted on H100 alone, H200 TTFT was 117 % off; with it, 51 %. Other
#: releases, and a plan that names none, use the engine's ``ttft_cycle`` (0: current releases).
RELEASE_CYCLE: dict[tuple[str, str], float] = {
    ("sglang", "0.5.1.post1"): 1.271,
    ("sglang", "0.5.6.post2"): 0.0408,
    ("sglang", "0.5.9"): 0.003131,
    ("sglang", "glm5-hopper"): 0.005548,
    ("trtllm", "1.0.0rc3"): 0.1362,
    ("trtllm", "1.1.0rc2.post2"): 0.02857,
    ("trtllm", "gpt-oss-dev"): 0,
    ("vllm", "0.12.0"): 0.06049,
    ("vllm", "0.16.0"): 0.001812,
    ("vllm", "0.18.0"): 0.0008368,
}
RELEASE_MIN_ROWS = 30


def release_constants(backend: str, engine_version: str | None) -> "BackendConstants":
    """The engine's constants, with the cycle wait of ``engine_version`` where one was fitted."""
    c = BACKENDS[backend]
    extra = RELEASE_CYCLE.get((backend, engine_version or ""))
    return c if extra is None else replace(c, ttft_cycle=extra)


class ServingError(PlannerError):
    """A serving plan that cannot run (degrees, memory, concurrency)."""


class ServingPlan(BaseModel):
    """How one serving worker is laid out."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tp: int = Field(1, ge=1, description="attention tensor parallel size")
    dp: int = Field(1, ge=1, description="attention data parallel size (DP attention)")
    pp: int = Field(1, ge=1, description="pipeline stages")
    ep: int | None = Field(None, ge=1, description="expert parallel size [default: tp x dp for MoE]")
    moe_tp: int | None = Field(None, ge=1, description="expert tensor parallel size [default: tp x dp / ep]")
    precision: Precision = "bf16"
    kv_dtype: Literal["auto", "bf16", "fp16", "fp8"] = "auto"
    backend: Backend = "trtllm"

    @property
    def gpus(self) -> int:
        return self.tp * self.dp * self.pp

    def expert_layout(self, model: ModelSpec) -> tuple[int, int]:
        """(ep, moe_tp) over the tp x dp GPUs of a stage."""
        mesh = self.tp * self.dp
        if not model.is_moe:
            return 1, 1
        ep = self.ep if self.ep is not None else (mesh // self.moe_tp if self.moe_tp else mesh)
        moe_tp = self.moe_tp if self.moe_tp is not None else max(1, mesh // ep)
        return ep, moe_tp


class ServingMemory(BaseModel):
    weights_bytes: float
    workspace_bytes: float
    kv_bytes_per_token: float = Field(description="KV cache bytes per token on one GPU")
    kv_capacity_tokens: int = Field(description="tokens of KV cache one worker holds")
    max_concurrency: int = Field(description="requests of isl + osl tokens that fit at once (sliding-window "
                                 "layers keep at most the window)")
    capacity_bytes: float
    usable_bytes: float


class ServingEstimate(ResultMixin, BaseModel):
    _document: Any = PrivateAttr(None)  # makes its plan document on demand (set by the public API; to_dict)
    model: str
    gpu: str
    plan: ServingPlan
    mode: Literal["agg", "disagg"]
    isl: int
    osl: int
    concurrency: int
    ttft_ms: float
    tpot_ms: float
    tokens_per_s_per_gpu: float
    tokens_per_s_per_user: float
    requests_per_s: float
    fits: bool
    memory: ServingMemory
    breakdown: dict[str, float] = Field(description="seconds: prefill, decode step, waits")
    constants: dict[str, float]
    assumptions: list[str]

    def _summary(self) -> str:
        p = self.plan
        return (f"{self.model} on {p.gpus} x {self.gpu} (tp {p.tp} dp {p.dp} pp {p.pp}, {p.precision}, {p.backend}), "
                f"{self.mode}, isl {self.isl} osl {self.osl} at concurrency {self.concurrency}: TTFT "
                f"{self.ttft_ms:,.1f} ms, TPOT {self.tpot_ms:,.2f} ms, {self.tokens_per_s_per_gpu:,.0f} tokens/s per GPU"
                + ("" if self.fits else " (the KV cache does not hold it)"))

    def _rows(self) -> list[dict[str, object]]:
        return [{"term": k, "seconds": v} for k, v in self.breakdown.items()]


# ---------------------------------------------------------------------------
# checks and memory
# ---------------------------------------------------------------------------

def check_serving_plan(model: ModelSpec, system: System, plan: ServingPlan) -> None:
    mesh = plan.tp * plan.dp
    if plan.tp > 1 and model.num_heads % plan.tp:
        raise ServingError(f"tp {plan.tp} does not divide the {model.num_heads} attention heads of {model.name}; "
                           f"spread the GPUs as attention data parallelism (dp) instead")
    if plan.pp > model.num_layers:
        raise ServingError(f"pp {plan.pp} exceeds the {model.num_layers} layers of {model.name}")
    if model.is_moe:
        ep, moe_tp = plan.expert_layout(model)
        if ep * moe_tp != mesh:
            raise ServingError(f"ep {ep} x moe_tp {moe_tp} = {ep * moe_tp} must equal tp x dp = {mesh}")
        if ep > model.moe.num_experts:  # type: ignore[union-attr]
            raise ServingError(f"ep {ep} exceeds the {model.moe.num_experts} experts of {model.name}")  # type: ignore[union-attr]
    elif plan.ep not in (None, 1):
        raise ServingError(f"ep {plan.ep} given but {model.name} has no experts")
    if plan.precision == "fp8" and not system.accelerator.has_native("fp8"):
        raise ServingError(f"{system.accelerator.name} has no FP8 tensor cores; use bf16 or int4")
    if plan.precision == "fp4" and not system.accelerator.has_native("fp4"):
        raise ServingError(f"{system.accelerator.name} has no FP4 tensor cores; use bf16, fp8 or int4")


def check_context(model: ModelSpec, tokens: int, what: str = "isl + osl") -> None:
    """A request of ``tokens`` tokens (prompt + output) fits the model's context, or one :class:`ServingError`."""
    if model.max_seq_len and tokens > model.max_seq_len:
        raise ServingError(f"{what} ({tokens} tokens, prompt + output) exceeds {model.name}'s "
                           f"{model.max_seq_len}-token context")


def kv_dtype_bytes(plan: ServingPlan) -> float:
    if plan.kv_dtype != "auto":
        return 1.0 if plan.kv_dtype == "fp8" else 2.0
    quant = plan.precision in ("fp8", "fp4")
    return 1.0 if quant and BACKENDS[plan.backend].kv_fp8_when_quantized else 2.0


def kv_bytes_per_token_per_gpu(model: ModelSpec, plan: ServingPlan) -> float:
    """KV bytes one token adds on one GPU holding it (GQA heads split over tp, not
    below one head; the MLA latent is replicated over tp); layers split over pp."""
    b = kv_dtype_bytes(plan)
    per_layer = model.kv_bytes_per_token_per_layer(b)
    if not model.mla:
        per_layer *= max(1, model.num_kv_heads // plan.tp) / model.num_kv_heads
    return per_layer * _kv_layers(model) / plan.pp


def _kv_layers(model: ModelSpec) -> float:
    """Layers that keep a KV cache growing with the context (linear-attention layers keep a fixed state)."""
    return sum(1 for k in model.layer_attention if k != "linear")


def weight_bytes_per_gpu(model: ModelSpec, plan: ServingPlan) -> float:
    """Quantized linear weights, 16-bit embeddings / LM head / norms, on one GPU of the busiest stage."""
    wb = WEIGHT_BYTES[plan.precision]
    ep, moe_tp = plan.expert_layout(model)
    _, table = _layer_table(_key(model))  # per layer: (non-expert params, routed-expert params)
    dense, expert = sum(t[0] for t in table), sum(t[1] for t in table)
    embed = model.embedding_params + model.lm_head_params
    # an ep that does not divide the experts gives every GPU ceil(E / ep) slots, the spare
    # ones holding redundant copies of hot experts (EPLB, TensorRT-LLM / SGLang wide EP)
    share = 1.0 / ep if not model.is_moe else math.ceil(model.moe.num_experts / ep) / model.moe.num_experts  # type: ignore[union-attr]
    return (dense / plan.tp * wb + expert * share / moe_tp * wb) / plan.pp + embed / plan.tp * 2.0


def serving_memory(model: ModelSpec, system: System, plan: ServingPlan, isl: int, osl: int) -> ServingMemory:
    consts = BACKENDS[plan.backend]
    cap = system.accelerator.memory_bytes
    usable = cap * consts.mem_fraction
    weights = weight_bytes_per_gpu(model, plan)
    workspace = MAX_BATCHED_TOKENS * model.hidden_size * 2.0 * 8 / plan.tp + 2**30  # buffers + CUDA graphs, NCCL
    kv_tok = kv_bytes_per_token_per_gpu(model, plan)
    free = max(0.0, usable - weights - workspace)
    # attention DP: each dp group holds its own requests' KV, so tokens add up over dp
    tokens = int(free / kv_tok) * plan.dp if kv_tok > 0 else 0
    per_request = kv_bytes_per_request_per_gpu(model, plan, isl + osl)
    max_conc = int(free / per_request) * plan.dp if per_request > 0 else 0
    return ServingMemory(weights_bytes=weights, workspace_bytes=workspace, kv_bytes_per_token=kv_tok,
                         kv_capacity_tokens=tokens, max_concurrency=max_conc,
                         capacity_bytes=cap, usable_bytes=usable)


def kv_bytes_per_request_per_gpu(model: ModelSpec, plan: ServingPlan, tokens: int) -> float:
    """KV bytes of one request of ``tokens`` tokens on one GPU: full-attention layers keep every
    token, sliding-window layers at most the window (gpt-oss, Gemma, Mistral)."""
    full = kv_bytes_per_token_per_gpu(model, plan)
    kv_layers = _kv_layers(model)
    if not kv_layers or not model.sliding_window:
        return full * tokens
    sliding = sum(1 for k in model.layer_attention if k == "sliding")
    per_layer = full / kv_layers
    return per_layer * ((kv_layers - sliding) * tokens + sliding * min(tokens, model.sliding_window))


def longest_request_fits(model: ModelSpec, plan: ServingPlan, mem: ServingMemory, tokens: int) -> bool:
    """Whether one request of ``tokens`` tokens (the longest a deployment is sized for) fits a worker's KV cache
    beside its weights and workspace (``mem``: the worker's :func:`serving_memory`)."""
    need = mem.weights_bytes + mem.workspace_bytes + kv_bytes_per_request_per_gpu(model, plan, tokens)
    return need <= mem.usable_bytes


# ---------------------------------------------------------------------------
# decode step
# ---------------------------------------------------------------------------

def _coll(kind: str, nbytes: float, group: int, system: System) -> float:
    """A collective over ``group`` GPUs packed into the scale-up domain (the training model's memoised call)."""
    if group <= 1 or nbytes <= 0:
        return 0.0
    return _train_coll(kind, nbytes, group, system, min(group, system.node.scale_up_domain))


def _layer_kinds(mkey: int) -> list[tuple[int, int]]:
    """(a representative layer, how many layers share its cost signature) for each kind of layer."""
    reps = _representatives_cached(mkey)
    return [(reps[sig], n) for sig, n in _stages_cached(mkey, 1, 1)[2][0]]


@lru_cache(maxsize=65536)
def _decode_layer_s(mkey: int, skey: int, layer: int, plan: ServingPlan, batch: int, context: int) -> dict[str, float]:
    """One layer of one decode step on one GPU: {kind: seconds}."""
    model: ModelSpec = _KEEP[mkey]  # type: ignore[assignment]
    system: System = _KEEP[skey]  # type: ignore[assignment]
    acc = system.accelerator
    dt, wb = GEMM_DTYPE[plan.precision], WEIGHT_BYTES[plan.precision]
    h, tp = model.hidden_size, plan.tp
    m = max(1, math.ceil(batch / plan.dp))  # tokens on one GPU's attention

    def gemm(mm: float, n: float, k: float, b: float = 1) -> float:
        return float(gemm_time_s(int(mm), int(n), int(k), acc, dt, int(b), weight_bytes=wb))

    out = {"gemm": 0.0, "attention": 0.0, "moe": 0.0, "memory": 0.0, "comm": 0.0, "comm_x": 0.0}
    domain = system.node.scale_up_domain

    def coll(kind: str, nbytes: float, group: int) -> None:
        # collectives inside the scale-up (NVLink) domain and those that leave it are timed apart
        out["comm_x" if group > domain else "comm"] += _coll(kind, nbytes, group, system)

    kind = model.layer_attention[layer]
    out["memory"] += 2 * float(memory_bound_time_s(m * h * 2.0 * 2, acc))  # two norms
    if kind == "linear":
        la = model.linear_attention
        assert la is not None
        k_dim, v_dim = la.num_key_heads * la.key_head_dim, la.num_value_heads * la.value_head_dim
        out["gemm"] += gemm(m, (2 * k_dim + 2 * v_dim + 2 * la.num_value_heads) / tp, h) + gemm(m, h, v_dim / tp)
        state = m * la.num_value_heads / tp * la.key_head_dim * la.value_head_dim * 4.0  # fp32 state read + write
        out["attention"] += float(memory_bound_time_s(2 * state, acc))
    else:
        kvb = kv_dtype_bytes(plan)
        if model.mla:
            ml = model.mla
            qk = ml.qk_nope_head_dim + ml.qk_rope_head_dim
            if ml.q_lora_rank:
                out["gemm"] += gemm(m, ml.q_lora_rank, h) + gemm(m, model.num_heads * qk / tp, ml.q_lora_rank)
            else:
                out["gemm"] += gemm(m, model.num_heads * qk / tp, h)
            out["gemm"] += gemm(m, ml.kv_lora_rank + ml.qk_rope_head_dim, h)
            # absorbed MLA decode: q and o through the latent (two batched GEMMs per head)
            heads = max(1.0, model.num_heads / tp)  # tp beyond the heads replicates them
            out["gemm"] += 2 * gemm(m, ml.kv_lora_rank, ml.qk_nope_head_dim, heads)
            lat = ml.kv_lora_rank + ml.qk_rope_head_dim
            kv_read = m * context * lat * kvb
            flops = 2.0 * m * heads * context * (lat + ml.kv_lora_rank)
        else:
            kv_heads = max(1, model.num_kv_heads // tp)
            q_out = model.q_dim * (2 if model.attn_output_gate else 1)
            out["gemm"] += gemm(m, (q_out + 2 * model.kv_dim) / tp, h)
            s_kv = min(context, model.sliding_window) if kind == "sliding" and model.sliding_window else context
            kv_read = m * s_kv * 2 * kv_heads * model.head_dim * kvb
            flops = 2.0 * m * max(1.0, model.num_heads / tp) * s_kv * 2 * model.head_dim
        t_mem = float(memory_bound_time_s(kv_read, acc))
        t_fl = flops / (acc.flops("bf16") * 0.5)
        out["attention"] += max(t_mem, t_fl)
        out["gemm"] += gemm(m, h, model.attn_out_dim / tp)
    if tp > 1:
        coll("all_reduce", m * h * 2.0, tp)
    if model.is_moe_layer(layer):
        moe = model.moe
        assert moe is not None
        ep, moe_tp = plan.expert_layout(model)
        tokens = batch  # every token of the worker reaches the expert mesh
        local = moe.num_experts / ep
        touched = local * (1.0 - (1.0 - 1.0 / moe.num_experts) ** (tokens * moe.top_k))
        per_expert = max(1.0, tokens * moe.top_k / moe.num_experts * local / max(touched, 1e-9))
        f = moe.expert_intermediate_size / moe_tp
        up = f * (2 if model.gated_mlp else 1)
        out["moe"] += gemm(m, moe.num_experts, h)  # router
        out["moe"] += gemm(per_expert, up, h, max(1, round(touched))) + gemm(per_expert, h, f, max(1, round(touched)))
        if moe.num_shared_experts:
            w = moe.num_shared_experts * moe.shared_intermediate_size / tp
            out["gemm"] += gemm(m, w * (2 if model.gated_mlp else 1), h) + gemm(m, h, w)
        a2a = m * moe.top_k * h * 2.0
        if ep > 1:
            coll("all_to_all", a2a, ep)
            coll("all_to_all", a2a, ep)
        if moe_tp > 1:
            coll("all_reduce", m * h * 2.0, moe_tp)
    else:
        f = model.intermediate_size / tp
        out["gemm"] += gemm(m, f * (2 if model.gated_mlp else 1), h) + gemm(m, h, f)
        if tp > 1:
            coll("all_reduce", m * h * 2.0, tp)
    return out


def decode_step_s(model: ModelSpec, system: System, plan: ServingPlan, batch: int, context: int) -> dict[str, float]:
    """One decode iteration of a worker at ``batch`` running requests of mean ``context`` tokens."""
    mkey, skey = _key(model), _key(system)
    consts = BACKENDS[plan.backend]
    parts = {"gemm": 0.0, "attention": 0.0, "moe": 0.0, "memory": 0.0, "comm": 0.0, "comm_x": 0.0}
    ctx = int(round(context / 64.0)) * 64 or 64  # cache-friendly rounding (64-token blocks)
    for layer, n in _layer_kinds(mkey):
        for k, v in _decode_layer_s(mkey, skey, layer, plan, batch, ctx).items():
            parts[k] += v * n
    m = max(1, math.ceil(batch / plan.dp))
    acc = system.accelerator
    parts["gemm"] += float(gemm_time_s(m, -(-model.vocab_size // plan.tp), model.hidden_size, acc, "bf16", 1))
    comm, comm_x = parts.pop("comm"), parts.pop("comm_x")
    if plan.pp > 1:
        comm += (plan.pp - 1) * _coll("send_recv", m * model.hidden_size * 2.0, 2, system)
    kernels = sum(parts.values())
    return {"kernels_raw": kernels - parts["moe"], "moe_raw": parts["moe"], "comm_raw": comm, "comm_x_raw": comm_x,
            "requests_per_group": float(m),
            "step": (consts.kernel_eff * (kernels - parts["moe"]) + consts.moe_eff * parts["moe"]
                     + consts.comm_eff * comm + consts.comm_x_eff * comm_x + consts.step_overhead_s
                     + consts.step_per_request_s * m),
            **{f"decode_{k}": v for k, v in parts.items()}, "decode_comm": comm + comm_x}


# ---------------------------------------------------------------------------
# prefill
# ---------------------------------------------------------------------------

_EXPERT_OPS = frozenset({"router", "permute", "experts_up", "experts_act", "experts_down", "unpermute",
                         "moe_dispatch", "moe_combine"})


@lru_cache(maxsize=8192)
def _prefill_kernels_s(mkey: int, skey: int, plan: ServingPlan, requests: int, isl: int) -> tuple[float, float]:
    """Forward pass of ``requests`` prompts of ``isl`` tokens on one attention-DP group:
    (total seconds, of which routed-expert kernels and their all-to-alls)."""
    model: ModelSpec = _KEEP[mkey]  # type: ignore[assignment]
    system: System = _KEEP[skey]  # type: ignore[assignment]
    ep, moe_tp = plan.expert_layout(model)
    # Without sequence parallelism every expert shard sees all routed tokens: for the FLOPs on
    # one GPU an expert mesh of ep x moe_tp is the same as ep x moe_tp-way expert parallelism
    # (the training operators' etp would gather tokens across a sequence-parallel group).
    sh = LayerShape(micro_batch=requests, seq_len=isl, tp=plan.tp, ep=ep * moe_tp, etp=1, sp=False,
                    attention="flash", act_bytes=2.0)
    dt = GEMM_DTYPE[plan.precision]
    total = experts = 0.0
    for layer, n in _layer_kinds(mkey):
        ops = layer_ops(model, layer, sh)
        c = _compute(ops, system, dt)
        comm = 0.0
        for op in c.comm_ops:
            group = {"tp": plan.tp, "ep": ep * moe_tp}.get(op.group, 1)
            t = _coll(op.collective, op.bytes, group, system)
            comm += t
            experts += t * n if op.name in _EXPERT_OPS else 0.0
        expert_ops = [op for op in ops if op.name in _EXPERT_OPS and op.kind != "comm"]
        if expert_ops:
            experts += _compute(expert_ops, system, dt).fwd * n
        total += (c.fwd + comm) * n
    acc = system.accelerator
    total += float(gemm_time_s(requests, -(-model.vocab_size // plan.tp), model.hidden_size, acc, "bf16", 1))
    total += (plan.pp - 1) * _coll("send_recv", requests * isl * model.hidden_size * 2.0 / plan.tp, 2, system)
    return total, experts


def _prefill_parts_s(model: ModelSpec, system: System, plan: ServingPlan, requests: int, isl: int) -> tuple[float, float]:
    """(total, routed-expert part) of prefilling ``requests`` prompts spread over the attention-DP groups."""
    return _prefill_kernels_s(_key(model), _key(system), plan, max(1, math.ceil(requests / plan.dp)), isl)


def prefill_s(model: ModelSpec, system: System, plan: ServingPlan, requests: int, isl: int) -> float:
    """Kernel time to prefill ``requests`` prompts together (spread over the attention-DP groups)."""
    return _prefill_parts_s(model, system, plan, requests, isl)[0]


def prefill_expert_s(model: ModelSpec, system: System, plan: ServingPlan, requests: int, isl: int) -> float:
    """The routed-expert part of :func:`prefill_s` (grouped GEMMs, routing, all-to-alls)."""
    return _prefill_parts_s(model, system, plan, requests, isl)[1]


def first_token_prefill_s(model: ModelSpec, system: System, plan: ServingPlan, requests: int, isl: int) -> float:
    """The prefill term of TTFT: ``ttft_prefill`` x the dense kernels + ``ttft_prefill_moe`` x the expert kernels."""
    c = BACKENDS[plan.backend]
    total, experts = _prefill_parts_s(model, system, plan, requests, isl)
    return c.ttft_prefill * (total - experts) + c.ttft_prefill_moe * experts


def prefill_chunks(isl: int, concurrency: int, groups: int = 1) -> int:
    """Iterations a prompt of ``isl`` tokens takes under chunked prefill: each iteration has a budget of
    ``MAX_BATCHED_TOKENS`` tokens, of which the other running requests' decodes take one each."""
    others = max(0, math.ceil(concurrency / groups) - 1)
    return max(1, math.ceil(isl / max(1, MAX_BATCHED_TOKENS - others)))


def prefill_burst_s(model: ModelSpec, system: System, plan: ServingPlan, concurrency: int, isl: int) -> float:
    """Prefill time per request when requests arrive together: the engine packs
    ``MAX_BATCHED_TOKENS // isl`` prompts (at least one, at most the requests of one
    attention-DP group) into each forward pass."""
    per_group = max(1, math.ceil(concurrency / plan.dp))
    n = max(1, min(per_group, MAX_BATCHED_TOKENS // max(1, isl)))
    return _prefill_kernels_s(_key(model), _key(system), plan, n, isl)[0] / n


# ---------------------------------------------------------------------------
# closed loop
# ---------------------------------------------------------------------------

def closed_loop(t_pf: float, t_step: float, osl: int, concurrency: int, c: BackendConstants, groups: int = 1,
                t_burst: float | None = None, t_first: float | None = None, chunks: int = 1
                ) -> tuple[float, float, float, float]:
    """(TTFT, TPOT, request rate, prefill share) at a fixed concurrency: the fixed point of
    ``lambda = C / (TTFT + (osl - 1) TPOT)``, TTFT and TPOT as in :class:`BackendConstants`.
    ``groups`` attention-DP groups prefill and admit requests side by side (each sees
    ``1 / groups`` of the load). Every wait and every interference comes from the *other*
    requests: the prefill share that slows decode iterations and queues a new prompt is
    ``rho = lambda T_pf (C - 1) / (C groups)``, the requests admitted ahead are
    ``C / groups - 1``, so at concurrency 1 TTFT is the engine's prefill plus its overhead
    and TPOT is the decode step (:func:`ttft_terms`)."""
    lam = concurrency / (t_pf + max(0, osl - 1) * t_step + 1e-12)
    ttft = tpot = rho = 0.0
    for _ in range(300):
        terms, tpot, rho = ttft_terms(t_pf, t_step, concurrency, lam, c, groups, t_burst, t_first, chunks)
        ttft = sum(terms.values())
        new = concurrency / (ttft + max(0, osl - 1) * tpot)
        if abs(new - lam) <= 1e-10 * lam:
            lam = new
            break
        lam = 0.5 * lam + 0.5 * new
    return ttft, tpot, lam, rho


def ttft_terms(t_pf: float, t_step: float, concurrency: int, lam: float, c: BackendConstants, groups: int = 1,
               t_burst: float | None = None, t_first: float | None = None, chunks: int = 1
               ) -> tuple[dict[str, float], float, float]:
    """The named terms of TTFT in seconds, TPOT, and the others' prefill share ``rho``, at request rate
    ``lam`` (requests/s of the worker) and ``concurrency`` requests in flight:

    * ``ttft_prefill_s``: the engine's own prefill of the prompt (``t_first``, default
      ``ttft_prefill x T_pf``: its kernels at the engine's prefill efficiency);
    * ``ttft_overhead_s``: the engine's fixed per-request cost (tokenisation, scheduling, the first
      detokenised token back to the client);
    * ``ttft_queue_s``: an M/D/1 wait behind the other requests' prefills, ``ttft_queue T_pf rho / (1 - rho)``;
    * ``ttft_admit_s``: admission behind the requests already running, ``ttft_admit (C/groups - 1) TPOT``;
    * ``ttft_cycle_s``: a wait proportional to the time between the other requests' completions;
    * ``ttft_burst_s``: the prompts prefilled ahead when the C requests of a benchmark arrive together
      (its first wave), ``ttft_burst (C/groups - 1) / 2 T_burst``, ``ttft_burst`` the share of requests that
      arrive that way;
    * ``ttft_busy_s``: the latency an engine adds to a request while it serves others (its scheduler
      and output processing between iterations), ``ttft_busy_s (C - 1) / C``;
    * ``ttft_chunk_s``: chunked prefill: the prompt rides ``chunks`` iterations (``isl`` over the token
      budget the running decodes leave, :func:`prefill_chunks`), each also running the others' decode
      step, ``chunks x t_step`` when others run.
    """
    per_group = concurrency / groups
    others = max(0.0, per_group - 1.0)
    share_others = (concurrency - 1) / concurrency if concurrency > 1 else 0.0
    rho = min(0.95, lam * t_pf * share_others / groups)
    tpot = t_step / max(0.05, 1.0 - c.prefill_mix * rho)
    terms = {
        "ttft_prefill_s": c.ttft_prefill * t_pf if t_first is None else t_first,
        "ttft_overhead_s": c.ttft_overhead_s,
        "ttft_queue_s": c.ttft_queue * t_pf * rho / (1.0 - rho),
        "ttft_admit_s": c.ttft_admit * others * tpot,
        "ttft_cycle_s": c.ttft_cycle * share_others / lam if lam > 0 else 0.0,
        "ttft_burst_s": c.ttft_burst * others / 2.0 * (t_pf if t_burst is None else t_burst),
        "ttft_busy_s": c.ttft_busy_s * share_others,
        "ttft_chunk_s": chunks * t_step if others > 0 else 0.0,
    }
    return terms, tpot, rho


def closed_network_wait(clients: int, service_s: float, cycle_s: float) -> tuple[float, float]:
    """(queueing wait, throughput) of ``clients`` requests cycling through one queue of
    mean service ``service_s`` (the prefill pool as one server of its total rate) and
    ``cycle_s`` seconds spent elsewhere: Schweitzer's approximate mean value analysis of a
    closed network, ``R = S (1 + Q (N - 1) / N)``, ``X = N / (R + Z)``, ``Q = X R``. When
    the pool is the bottleneck the wait grows as ``N S - Z``, the closed-loop form of
    requests queueing for prefill; when it is not the wait tends to zero."""
    if clients <= 0 or service_s <= 0:
        return 0.0, 0.0
    z = max(0.0, cycle_s - service_s)
    q = clients * service_s / (service_s + z)
    r = service_s
    for _ in range(2000):
        r = service_s * (1.0 + q * (clients - 1) / clients)
        new = clients * r / (r + z)
        if abs(new - q) <= 1e-9 * max(1.0, q):
            q = new
            break
        q = 0.5 * q + 0.5 * new
    r = service_s * (1.0 + q * (clients - 1) / clients)
    return r - service_s, clients / (r + z)


def _check_arguments(model: ModelSpec, system: System, plan: ServingPlan, isl: int, osl: int, concurrency: int,
                     mode: str, prefill_plan: ServingPlan | None, prefill_batch: int, prefill_workers: int,
                     decode_workers: int) -> None:
    """The arguments of :func:`estimate_serving` in their domain (whole numbers within :mod:`planner.limits`),
    or one :class:`ServingError` line naming the first one outside."""
    if not isinstance(model, ModelSpec) or not isinstance(system, System):
        raise ServingError("estimate_serving takes a ModelSpec and a System (planner.get_model / planner.get_system)")
    for p, optional in ((plan, False), (prefill_plan, True)):
        if not isinstance(p, ServingPlan) and not (optional and p is None):
            raise ServingError(f"a serving plan must be a ServingPlan, got {type(p).__name__}")
    if mode not in ("agg", "disagg"):
        raise ServingError(f"unknown mode {mode!r}; choose agg or disagg"[:200])
    try:
        check_int(isl, "isl", hi=MAX_REQUEST_TOKENS)
        check_int(osl, "osl", hi=MAX_REQUEST_TOKENS)
        check_int(concurrency, "concurrency", hi=MAX_CONCURRENCY)
        check_int(prefill_batch, "prefill batch", hi=MAX_CONCURRENCY)
        check_int(prefill_workers, "prefill workers", hi=MAX_GPUS)
        check_int(decode_workers, "decode workers", hi=MAX_GPUS)
        for p in (plan, prefill_plan):
            if p is not None:
                check_int(p.gpus, "GPUs of a worker (tp x dp x pp)", hi=MAX_GPUS)
                check_int(p.ep or 1, "ep", hi=MAX_GPUS)
                check_int(p.moe_tp or 1, "moe_tp", hi=MAX_GPUS)
    except PlannerError as exc:
        raise ServingError(str(exc)) from None


def _sources(model: ModelSpec, plan: ServingPlan, consts: BackendConstants, arrivals: str) -> dict:
    """The ``constants`` and ``assumptions`` fields of an estimate (``arrivals``: how requests come)."""
    kvb = kv_dtype_bytes(plan)
    return dict(constants={**{k: float(v) for k, v in consts.__dict__.items()}, "kv_bytes_per_elem": kvb},
                assumptions=[f"{plan.backend} engine constants (fitted on H100/H200 rows)", arrivals,
                             f"weights {plan.precision} ({WEIGHT_BYTES[plan.precision]:.3g} B/param), "
                             f"KV {'fp8' if kvb == 1 else '16-bit'}",
                             "balanced expert routing" if model.is_moe else "dense model"])


def estimate_serving(model: ModelSpec, system: System, plan: ServingPlan, isl: int, osl: int, concurrency: int,
                     mode: Literal["agg", "disagg"] = "agg", prefill_plan: ServingPlan | None = None,
                     prefill_batch: int = 1, prefill_workers: int = 1, decode_workers: int = 1,
                     engine_version: str | None = None) -> ServingEstimate:
    """TTFT, TPOT and throughput of one worker (``agg``) or a prefill / decode pool pair (``disagg``;
    ``plan`` is the decode worker, ``concurrency`` its batch). ``engine_version``: the engine release
    when it is one whose scheduler measured differently (:data:`RELEASE_CYCLE`); default: current releases."""
    _check_arguments(model, system, plan, isl, osl, concurrency, mode, prefill_plan, prefill_batch, prefill_workers,
                     decode_workers)
    check_serving_plan(model, system, plan)
    check_context(model, isl + osl)
    mem = serving_memory(model, system, plan, isl, osl)
    context = isl + osl // 2
    dec = decode_step_s(model, system, plan, concurrency, context)
    t_dec = dec["step"]
    consts = release_constants(plan.backend, engine_version)
    if mode == "agg":
        t_pf = prefill_s(model, system, plan, 1, isl)
        t_burst = prefill_burst_s(model, system, plan, concurrency, isl)
        t_first = first_token_prefill_s(model, system, plan, 1, isl)
        chunks = prefill_chunks(isl, concurrency, plan.dp)
        ttft, tpot, lam, rho = closed_loop(t_pf, t_dec, osl, concurrency, consts, plan.dp, t_burst, t_first, chunks)
        terms, _, _ = ttft_terms(t_pf, t_dec, concurrency, lam, consts, plan.dp, t_burst, t_first, chunks)
        gpus = plan.gpus
        breakdown = {"prefill_s": t_pf, "prefill_expert_s": prefill_expert_s(model, system, plan, 1, isl),
                     "prefill_burst_s": t_burst, "decode_step_s": t_dec, "prefill_share": rho,
                     **terms, "ttft_wait_s": sum(v for k, v in terms.items()
                                                 if k not in ("ttft_prefill_s", "ttft_overhead_s")),
                     **{k: v for k, v in dec.items()}}
    else:
        pplan = prefill_plan or plan
        check_serving_plan(model, system, pplan)
        t_pf = prefill_s(model, system, pplan, prefill_batch, isl)
        t_first = first_token_prefill_s(model, system, pplan, prefill_batch, isl)
        kv_bytes = isl * model.kv_cache_bytes_per_token(kv_dtype_bytes(pplan))
        nic = system.node.nic_bandwidth_bytes_per_s * min(pplan.gpus, system.node.accelerators_per_node)
        t_xfer = kv_bytes / nic + system.node.network_latency_s
        tpot = t_dec
        # closed loop over both pools: C x decode workers requests in flight; the prefill pool
        # serves prefill_batch requests per t_pf on each worker (spread over its attention-DP groups)
        servers = prefill_workers  # prefill_s already spreads prefill_batch over the attention-DP groups
        clients = concurrency * decode_workers
        busy = consts.ttft_busy_s * (clients - 1) / clients if clients > 1 else 0.0
        own = t_first + t_xfer + consts.ttft_overhead_s + busy  # a request's first token without queueing
        service = t_pf / (servers * prefill_batch)  # the prefill pool's time per request
        wait, lam = closed_network_wait(clients, service, own + max(0, osl - 1) * tpot)
        # the benchmark's first wave: all clients arrive together and queue at the prefill pool
        burst = consts.ttft_burst * max(0, clients - 1) / 2.0 * service
        ttft = own + wait + burst
        rho = min(1.0, lam * t_pf / (servers * prefill_batch))
        gpus = plan.gpus * decode_workers + pplan.gpus * prefill_workers
        breakdown = {"prefill_s": t_pf, "prefill_expert_s": prefill_expert_s(model, system, pplan, prefill_batch, isl),
                     "kv_transfer_s": t_xfer, "decode_step_s": t_dec, "prefill_share": rho,
                     "ttft_prefill_s": t_first, "ttft_overhead_s": consts.ttft_overhead_s, "ttft_busy_s": busy,
                     "ttft_queue_s": wait, "ttft_burst_s": burst, "prefill_service_s": service,
                     "ttft_wait_s": wait + burst, **{k: v for k, v in dec.items()}}
    tokens_per_s = lam * osl
    return ServingEstimate(
        model=model.name, gpu=system.name, plan=plan, mode=mode, isl=isl, osl=osl, concurrency=concurrency,
        ttft_ms=ttft * 1e3, tpot_ms=tpot * 1e3, tokens_per_s_per_gpu=tokens_per_s / gpus,
        tokens_per_s_per_user=1.0 / tpot, requests_per_s=lam,
        fits=concurrency <= mem.max_concurrency,
        memory=mem, breakdown=breakdown,
        **_sources(model, plan, consts, "closed loop at fixed concurrency: TTFT includes waiting behind other prefills"),
    )


def open_loop_terms(t_pf: float, t_first: float, step, osl: int, rate: float, c: BackendConstants, groups: int = 1
                    ) -> tuple[dict[str, float], float, float, float]:
    """Requests arriving at random (Poisson) at ``rate`` requests/s on one worker, the way a
    deployment sized for a traffic level sees them (not the benchmark's closed loop):
    ``(TTFT terms, TPOT, mean requests in flight, prefill utilisation rho)``.

    ``rho = rate T_pf / groups`` (each attention-DP group prefills its share); a new prompt waits
    for the prompts ahead of it, the M/D/1 (Pollaczek-Khinchine) wait ``rho T_pf / (2 (1 - rho))``,
    and for the decode iteration in flight, ``t_step / 2`` times the chance that one is running
    (``1 - exp(-N)`` with ``N`` requests in flight, Poisson by the M/G/inf argument). Prefills
    take ``rho`` of the GPU from the decode iterations: ``TPOT = t_step / (1 - prefill_mix rho)``.
    ``N = rate (TTFT + (osl - 1) TPOT)`` (Little's law), with ``step(N)`` the decode step at
    that batch: a fixed point. Raises :class:`ServingError` when ``rho >= 1``: the worker cannot
    prefill the prompts as fast as they arrive."""
    rho = rate * t_pf / groups
    if rho >= 1.0:
        raise ServingError(f"{rate:g} requests/s exceeds what one worker can prefill ({groups / t_pf:.3g} requests/s "
                           f"at {t_pf * 1e3:.1f} ms per prompt); use more workers")
    n = rate * (t_first + c.ttft_overhead_s + max(0, osl - 1) * step(1))
    terms: dict[str, float] = {}
    tpot = 0.0
    for _ in range(200):
        t_step = step(max(1, round(n)))
        tpot = t_step / max(0.05, 1.0 - c.prefill_mix * rho)
        terms = {"ttft_prefill_s": t_first, "ttft_overhead_s": c.ttft_overhead_s,
                 "ttft_queue_s": rho * t_pf / (2.0 * (1.0 - rho)),
                 "ttft_iteration_s": t_step / 2.0 * (1.0 - math.exp(-n))}
        new = rate * (sum(terms.values()) + max(0, osl - 1) * tpot)
        if abs(new - n) <= 1e-9 * max(1.0, n):
            n = new
            break
        if new > MAX_CONCURRENCY:
            break
        n = 0.5 * n + 0.5 * new
    else:
        new = MAX_CONCURRENCY + 1.0
    if new > MAX_CONCURRENCY or not math.isfinite(new):
        raise ServingError(f"one worker cannot sustain {rate:g} requests/s of {osl} output tokens: its decode "
                           f"iterations fall behind and the requests in flight grow without bound; use more workers")
    return terms, tpot, n, rho


def estimate_serving_at_rate(model: ModelSpec, system: System, plan: ServingPlan, isl: int, osl: int,
                             rate: float) -> ServingEstimate:
    """TTFT, TPOT and throughput of one aggregated worker receiving ``rate`` requests/s at random
    (:func:`open_loop_terms`). ``concurrency`` in the answer is the mean number of requests in
    flight; ``fits`` asks the KV cache to hold its 99th percentile (``N + 2.33 sqrt(N)``)."""
    _check_arguments(model, system, plan, isl, osl, 1, "agg", None, 1, 1, 1)
    try:
        check_number(rate, "rate (requests/s)", hi=MAX_RATE)
    except PlannerError as exc:
        raise ServingError(str(exc)) from None
    if rate <= 0:
        raise ServingError(f"rate must be positive, got {rate:g}")
    check_serving_plan(model, system, plan)
    check_context(model, isl + osl)
    mem = serving_memory(model, system, plan, isl, osl)
    consts = BACKENDS[plan.backend]
    context = isl + osl // 2
    t_pf = prefill_s(model, system, plan, 1, isl)
    t_first = first_token_prefill_s(model, system, plan, 1, isl)

    def step(batch: int) -> float:
        return decode_step_s(model, system, plan, batch, context)["step"]

    terms, tpot, n, rho = open_loop_terms(t_pf, t_first, step, osl, rate, consts, plan.dp)
    batch = max(1, round(n))
    dec = decode_step_s(model, system, plan, batch, context)
    ttft = sum(terms.values())
    peak = n + 2.33 * math.sqrt(n)
    breakdown = {"prefill_s": t_pf, "prefill_expert_s": prefill_expert_s(model, system, plan, 1, isl),
                 "decode_step_s": dec["step"], "prefill_share": rho, **terms,
                 "ttft_wait_s": terms["ttft_queue_s"] + terms["ttft_iteration_s"], "in_flight_mean": n,
                 "in_flight_p99": peak, **dec}
    return ServingEstimate(
        model=model.name, gpu=system.name, plan=plan, mode="agg", isl=isl, osl=osl, concurrency=batch,
        ttft_ms=ttft * 1e3, tpot_ms=tpot * 1e3, tokens_per_s_per_gpu=rate * osl / plan.gpus,
        tokens_per_s_per_user=1.0 / tpot, requests_per_s=rate, fits=peak <= mem.max_concurrency,
        memory=mem, breakdown=breakdown,
        **_sources(model, plan, consts, f"open loop: Poisson arrivals at {rate:g} requests/s; prefills queue M/D/1"),
    )


__all__ = ["BACKENDS", "BackendConstants", "closed_loop", "ttft_terms", "closed_network_wait", "GEMM_DTYPE", "ServingError", "ServingEstimate", "ServingMemory",
           "ServingPlan", "WEIGHT_BYTES", "check_serving_plan", "decode_step_s", "estimate_serving", "estimate_serving_at_rate", "open_loop_terms",
           "kv_bytes_per_request_per_gpu", "kv_bytes_per_token_per_gpu", "longest_request_fits", "prefill_s", "serving_memory", "weight_bytes_per_gpu"]
