"""A training plan and what is predicted for it: the plan's fields (Megatron-LM flag semantics), the rules
a plan must satisfy against its model and hardware (:func:`check_plan`), how its layers split over pipeline
chunks, and the estimate's result types. The estimator itself is :mod:`planner.cost.training`.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from ..errors import PlannerError
from ..limits import MAX_TOKENS, MAX_USD, check_number
from ..results import ResultMixin, fmt_s
from ..specs.hardware import System
from ..specs.model import ModelSpec


class PlanError(PlannerError):
    """A plan that cannot run as given (degrees, divisibility, lengths)."""


class TrainingPlan(BaseModel):
    """An explicit training parallelization plan (Megatron-LM flag semantics)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tp: int = Field(1, ge=1, description="tensor parallel size")
    pp: int = Field(1, ge=1, description="pipeline parallel size")
    vpp: int = Field(1, ge=1, description="virtual pipeline stages (model chunks) per pipeline rank")
    cp: int = Field(1, ge=1, description="context parallel size")
    ep: int = Field(1, ge=1, description="expert parallel size")
    etp: int | None = Field(None, ge=1, description="expert tensor parallel size (default: tp, as Megatron-Core)")
    dp: int = Field(1, ge=1, description="data parallel size")
    micro_batch: int = Field(1, ge=1)
    global_batch: int = Field(..., ge=1)
    seq_len: int = Field(..., ge=1)
    recompute: Literal["none", "selective", "full"] = "selective"
    sp: bool = True
    zero: Literal[0, 1, 2, 3] = 1
    dtype: Literal["bf16", "fp16", "fp8"] = "bf16"
    attention: Literal["flash", "unfused"] = "flash"
    overlap_grad_reduce: bool = True
    async_tp_allreduce: bool = Field(
        False, description="Megatron-LM's asynchronous tensor-parallel all-reduce (without sequence parallelism; on by "
        "default from 2022): the backward all-reduce of a column-parallel layer's input gradient runs while that "
        "layer's weight gradient is computed. Off: Megatron-LM 2021, every all-reduce on the critical path")
    grad_reduce_in_fp32: bool = Field(True, description="Megatron keeps and reduces fp32 main gradients (its default for bf16)")
    layers_per_chunk: tuple[int, ...] | None = Field(
        None, description="layers of each model chunk in order (pp x vpp entries; chunk c runs on stage c % pp); "
        "default: as even as possible")
    recompute_per_stage: tuple[int, ...] | None = Field(
        None, description="with recompute='full': how many layers of each pipeline stage are recomputed (the first "
        "ones of the stage; Megatron's block method); default: all")
    zero3_gather: Literal["layer", "tensor"] = Field(
        "layer", description="ZeRO-3 collectives: 'layer' = one all-gather / reduce-scatter per layer, prefetched "
        "and overlapped with compute (PyTorch FSDP2, Megatron-FSDP); 'tensor' = one per parameter tensor, "
        "on the critical path (DeepSpeed ZeRO-3 as of 2021)")

    @property
    def num_gpus(self) -> int:
        return self.tp * self.pp * self.cp * self.dp

    @property
    def expert_tp(self) -> int:
        return self.etp if self.etp is not None else (self.tp if self.ep == 1 else 1)

    @property
    def num_microbatches(self) -> int:
        return self.global_batch // (self.micro_batch * self.dp)


class MemoryBreakdown(BaseModel):
    """Bytes per GPU on the most loaded pipeline stage.

    ``peak_bytes`` is the larger of two phases (:func:`planner.cost.memory.phase_peak_bytes`):
    the backward pass (every part but the fp32 main gradients) and the optimizer step
    (every part but the activations). The fp32 main gradients are in ``optimizer_bytes``
    only when gradients are 16-bit (``grad_reduce_in_fp32=False``), and then the peak is
    less than the sum of the parts; otherwise it is the sum.
    """

    weights_bytes: float
    gradients_bytes: float
    optimizer_bytes: float = Field(description="fp32 master weights and Adam moments, plus the fp32 main gradients "
                                               "when gradients are 16-bit (held only during the optimizer step)")
    activations_bytes: float
    other_bytes: float = Field(description="runtime reserve, logits and communication buffers")
    peak_bytes: float = Field(description="max(backward pass, optimizer step): the sum of the parts, less the "
                                          "smaller of the activations and the step-only fp32 main gradients")
    capacity_bytes: float

    @property
    def headroom_bytes(self) -> float:
        return self.capacity_bytes - self.peak_bytes


class TrainingEstimate(ResultMixin, BaseModel):
    """What the cost model predicts for one plan, with its breakdown and constants."""
    _document: Any = PrivateAttr(None)  # makes its plan document on demand (set by the public API; to_dict)

    model: str
    gpu: str
    num_gpus: int
    plan: TrainingPlan
    step_time_s: float
    tokens_per_s: float
    mfu: float = Field(description="model FLOPs utilization: model FLOPs (PaLM app. B, as the Llama 3 paper counts "
                       "them) per GPU per second over the dtype's dense peak")
    model_tflops_per_gpu: float = Field(description="model FLOPs (PaLM app. B) per GPU per second, in 10^12")
    megatron_tflops_per_gpu: float = Field(0.0, description="Megatron-LM's 'TFLOP/s per GPU' (Narayanan et al. 2021, "
                                           "Eq. 3): model FLOPs plus full recomputation's extra forward, in 10^12")
    hardware_tflops_per_gpu: float = Field(description="FLOPs executed per GPU per second incl. recomputation (full: "
                                           "the layers' forward again; selective: the attention cores), in 10^12")
    hfu: float = Field(0.0, description="hardware FLOPs utilization (Korthikanti et al. 2022): hardware FLOP/s over "
                       "the dtype's dense peak")
    fits: bool
    memory: MemoryBreakdown
    stage_peak_bytes: list[float] | None = Field(None, description="peak bytes per pipeline stage (when asked for)")
    breakdown: dict[str, float] = Field(description="seconds per component of one step")
    constants: dict[str, float]
    assumptions: list[str]

    def _summary(self) -> str:
        p = self.plan
        layout = f"tp {p.tp} pp {p.pp}" + (f" (vpp {p.vpp})" if p.vpp > 1 else "") + f" cp {p.cp} dp {p.dp}" + (
            f" ep {p.ep}" if p.ep > 1 else "")
        return (f"{self.model} on {self.num_gpus} x {self.gpu}, {layout}, micro-batch {p.micro_batch}: step "
                f"{fmt_s(self.step_time_s)}, {self.tokens_per_s:,.0f} tokens/s, MFU {100 * self.mfu:.1f} %, "
                f"{self.memory.peak_bytes / 1e9:,.1f} of {self.memory.capacity_bytes / 1e9:,.1f} GB per GPU"
                + ("" if self.fits else " (does not fit)"))

    def _rows(self) -> list[dict[str, Any]]:
        total = self.step_time_s or 1.0
        return [{"component": k, "seconds": v, "share of step": v / total} for k, v in self.breakdown.items()]

    def time_to_train_s(self, tokens: float) -> float:
        """Seconds to train ``tokens`` tokens at this plan's throughput."""
        return check_number(tokens, "tokens", hi=MAX_TOKENS) / self.tokens_per_s

    def cost_to_train_usd(self, tokens: float, price_per_gpu_hour: float) -> float:
        """Dollars to train ``tokens`` tokens on ``num_gpus`` GPUs at ``price_per_gpu_hour``."""
        price = check_number(price_per_gpu_hour, "price per GPU-hour", lo=0, lo_open=False, hi=MAX_USD)
        return self.time_to_train_s(tokens) / 3600.0 * self.num_gpus * price


# ---------------------------------------------------------------------------
# honest warnings about an estimate (issue 11): never errors
# ---------------------------------------------------------------------------

#: Published model-FLOPs utilization of large dense LLM training runs (bf16, model FLOPs as PaLM app. B counts them).
PUBLISHED_MFU: tuple[tuple[str, float], ...] = (
    ("Llama 3 405B on 8K-16K H100, bf16 (Dubey et al. 2024, sec. 3.3.2, Table 4)", 0.43),  # 38-43 %
    ("Megatron-Core GPT 2B-462B on up to 6,144 H100 (NVIDIA Megatron-LM README, 2024)", 0.47),
    ("MegaScale 175B on 12,288 GPUs (Jiang et al. 2024, NSDI)", 0.552),
)
#: An MFU above this is far above every published run above (the best, MegaScale's 55.2 %, plus ~5 points):
#: more likely a hardware spec or plan that flatters the model than a real run.
MFU_WARN = 0.60
#: A plan that needs longer than this to train its tokens is not a plan anyone runs.
TIME_TO_TRAIN_WARN_S = 365.0 * 86400.0


def training_warnings(est: TrainingEstimate, tokens: float | None = None) -> list[str]:
    """One-line warnings about ``est``: an MFU far above published runs, or (given ``tokens``) more than a year
    to train them. Warnings inform; they never fail a command."""
    out = []
    if est.mfu > MFU_WARN:
        best = max(PUBLISHED_MFU, key=lambda r: r[1])
        out.append(f"MFU {100 * est.mfu:.0f} % is far above published large runs (Llama 3 on H100: 38-43 %; "
                   f"best published: {100 * best[1]:.1f} %, {best[0]}); check the hardware spec "
                   f"(network, peak FLOP/s) before trusting this plan")
    if tokens is not None and est.tokens_per_s > 0:
        t = tokens / est.tokens_per_s
        if t > TIME_TO_TRAIN_WARN_S:
            out.append(f"this plan needs {t / 86400:,.0f} days ({t / TIME_TO_TRAIN_WARN_S:,.1f} years) to train "
                       f"{tokens:.3g} tokens on {est.num_gpus} GPUs: use more GPUs or fewer tokens")
    return out


# ---------------------------------------------------------------------------
# validation of a plan against the model and the hardware
# ---------------------------------------------------------------------------

def check_plan(model: ModelSpec, system: System, plan: TrainingPlan, num_gpus: int | None = None) -> None:
    """Raise :class:`PlanError` with one clear line if the plan cannot run."""
    if num_gpus is not None and plan.num_gpus != num_gpus:
        raise PlanError(
            f"degrees do not multiply to the GPU count: tp {plan.tp} x pp {plan.pp} x cp {plan.cp} x dp {plan.dp}"
            f" = {plan.num_gpus}, not {num_gpus}"
        )
    if plan.global_batch % (plan.micro_batch * plan.dp):
        raise PlanError(
            f"global batch {plan.global_batch} is not divisible by micro-batch {plan.micro_batch} x dp {plan.dp}"
            f" = {plan.micro_batch * plan.dp}"
        )
    if model.num_heads % plan.tp:
        raise PlanError(f"tp {plan.tp} does not divide the {model.num_heads} attention heads of {model.name}")
    if model.mla is None and model.num_kv_heads % plan.tp and plan.tp % model.num_kv_heads:
        raise PlanError(f"tp {plan.tp} and the {model.num_kv_heads} KV heads of {model.name} do not divide one another")
    if plan.async_tp_allreduce and plan.sp and plan.tp > 1:
        raise PlanError("async_tp_allreduce and sequence parallelism exclude each other (Megatron-LM: the "
                        "sequence-parallel all-gather takes the all-reduce's place); use one")
    if plan.pp * plan.vpp > model.num_layers:
        raise PlanError(f"pp {plan.pp} x vpp {plan.vpp} model chunks exceed the {model.num_layers} layers of {model.name}")
    if plan.layers_per_chunk is not None:
        if len(plan.layers_per_chunk) != plan.pp * plan.vpp:
            raise PlanError(f"layers_per_chunk has {len(plan.layers_per_chunk)} entries; pp {plan.pp} x vpp {plan.vpp}"
                            f" = {plan.pp * plan.vpp} model chunks")
        if min(plan.layers_per_chunk) < 0 or sum(plan.layers_per_chunk) != model.num_layers:
            raise PlanError(f"layers_per_chunk {list(plan.layers_per_chunk)} must be >= 0 and sum to the"
                            f" {model.num_layers} layers of {model.name}")
    if plan.recompute_per_stage is not None:
        if plan.recompute != "full":
            raise PlanError("recompute_per_stage needs recompute='full'")
        if len(plan.recompute_per_stage) != plan.pp:
            raise PlanError(f"recompute_per_stage has {len(plan.recompute_per_stage)} entries, not pp = {plan.pp}")
        sizes = stage_layer_counts(model.num_layers, plan.pp, plan.vpp, plan.layers_per_chunk)
        for st, (r, n) in enumerate(zip(plan.recompute_per_stage, sizes)):
            if not 0 <= r <= n:
                raise PlanError(f"recompute_per_stage[{st}] = {r}: stage {st} holds {n} layers")
    if plan.vpp > 1 and plan.num_microbatches % plan.pp:
        raise PlanError(
            f"the interleaved schedule needs the {plan.num_microbatches} micro-batches to be a multiple of pp {plan.pp}"
        )
    if plan.seq_len % plan.cp or (plan.cp > 1 and plan.seq_len % (2 * plan.cp)):
        raise PlanError(f"sequence length {plan.seq_len} is not divisible by 2 x cp = {2 * plan.cp} (load-balanced ring attention)")
    if plan.seq_len > model.max_seq_len:
        raise PlanError(f"sequence length {plan.seq_len} exceeds {model.name}'s maximum of {model.max_seq_len} positions")
    if plan.ep > 1 and not model.is_moe:
        raise PlanError(f"ep {plan.ep} given but {model.name} has no experts")
    if model.moe:
        if model.moe.num_experts % plan.ep:
            raise PlanError(f"ep {plan.ep} does not divide the {model.moe.num_experts} experts of {model.name}")
        ep_group = plan.ep * plan.expert_tp
        if (plan.tp * plan.cp * plan.dp) % ep_group:
            raise PlanError(
                f"ep {plan.ep} x expert tp {plan.expert_tp} = {ep_group} must divide tp x cp x dp = {plan.tp * plan.cp * plan.dp}"
            )
    if plan.dtype == "fp8" and not system.accelerator.has_native("fp8"):
        raise PlanError(f"{system.accelerator.name} has no FP8 tensor cores; use --dtype bf16")



def partition_layers(num_layers: int, pp: int, vpp: int = 1, layers_per_chunk: tuple[int, ...] | None = None) -> list[list[int]]:
    """Layers of each model chunk (chunk c runs on stage c % pp): ``layers_per_chunk``
    when given, else as even as possible with leftover layers in the middle
    chunks (the first and last stages also carry the embedding and the LM head)."""
    if layers_per_chunk is not None:
        out, start = [], 0
        for n in layers_per_chunk:
            out.append(list(range(start, start + n)))
            start += n
        return out
    chunks = pp * vpp
    base, extra = divmod(num_layers, chunks)
    order = sorted(range(chunks), key=lambda c: (abs(c - (chunks - 1) / 2), c))
    sizes = [base] * chunks
    for c in order[:extra]:
        sizes[c] += 1
    out, start = [], 0
    for n in sizes:
        out.append(list(range(start, start + n)))
        start += n
    return out


def stage_layer_counts(num_layers: int, pp: int, vpp: int = 1, layers_per_chunk: tuple[int, ...] | None = None) -> list[int]:
    """How many layers each pipeline stage holds."""
    sizes = list(layers_per_chunk) if layers_per_chunk is not None else [len(c) for c in partition_layers(num_layers, pp, vpp)]
    return [sum(sizes[c] for c in range(s, len(sizes), pp)) for s in range(pp)]
