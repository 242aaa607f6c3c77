"""The plan documents: one pydantic model per kind of answer, each with a versioned JSON Schema.

Every answer the planner gives leaves as one of these (``--json``, saved plan files, what exporters read):

* :class:`ServingDocument`   - ``"schema": "planner.serving-plan"``: an aggregated or disaggregated deployment
  (pools of workers with their layout, the traffic it is sized for, the SLOs, the predictions)
* :class:`PlacementDocument` - ``"schema": "planner.expert-placement"``: MoE experts (and replicas) on GPUs
* :class:`FleetDocument`     - ``"schema": "planner.fleet-plan"``: serving one model over several GPU types (the
  GPU-mix answer: buckets of requests, pools of replicas per GPU type and role, which slices each takes)
* the training plan document (``"schema": "planner.training-plan"``) is :mod:`planner.plans.training`

Documents are self-contained: they embed the model and system specs they were computed for
(:class:`ModelRef`, :class:`SystemRef`), so a plan for a custom ``config.json`` or hardware YAML can be checked
and exported later without those files. A re-imported document is hostile input: :func:`planner.plans.check`
validates it against these models (strict types: ``"tp": "8"`` is refused) and then its semantics.

The models are strict (``extra="forbid"``, no type coercion) and every number is bounded
(:mod:`planner.limits`). A document's ``schema_version`` is a string ``"MAJOR.MINOR"``; a reader accepts exactly
the versions listed in :data:`READABLE_VERSIONS`.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from .. import limits as L
from ..cost.serving import ServingPlan

#: The versions each reader accepts (exact strings: "1", "1.x", 1.0 or "1.0.1" are refused).
READABLE_VERSIONS: dict[str, tuple[str, ...]] = {
    "planner.serving-plan": ("1.0",),
    "planner.expert-placement": ("1.0",),
    "planner.fleet-plan": ("2.0",),
}

#: Every document model: unknown fields refused, no type coercion ("8" is not 8), immutable, finite numbers only.
STRICT = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False)

Name = str  # names are checked for control characters by the gate (they reach scripts, quoted)


class ModelRef(BaseModel):
    """The model a plan is for: its name, Hugging Face id and the full spec (:class:`planner.ModelSpec` fields)."""

    model_config = STRICT

    name: Name = Field(min_length=1, max_length=200)
    hf_id: Name | None = Field(None, max_length=200)
    spec: dict[str, Any] = Field(description="ModelSpec.model_dump(mode='json'): re-validated on import")


class SystemRef(BaseModel):
    """The hardware a plan is for: its name and the full spec (:class:`planner.System` fields)."""

    model_config = STRICT

    name: Name = Field(min_length=1, max_length=200)
    spec: dict[str, Any] = Field(description="System.model_dump(mode='json'): re-validated on import")


class Traffic(BaseModel):
    """The traffic a serving deployment is sized for."""

    model_config = STRICT

    rate_rps: float | None = Field(None, gt=0, le=L.MAX_RATE, description="requests per second to serve "
                                   "(None: as many as the GPUs hold)")
    isl: int = Field(ge=1, le=L.MAX_REQUEST_TOKENS, description="prompt tokens per request (mean of a trace)")
    osl: int = Field(ge=1, le=L.MAX_REQUEST_TOKENS, description="output tokens per request (mean of a trace)")
    max_request_tokens: int = Field(ge=2, le=2 * L.MAX_REQUEST_TOKENS, description="the longest request (prompt + "
                                    "output): what max-model-len must hold")
    source: Literal["flags", "trace"] = "flags"


class SLO(BaseModel):
    model_config = STRICT

    ttft_ms: float = Field(gt=0, le=L.MAX_SLO_S * 1e3)
    tpot_ms: float = Field(gt=0, le=L.MAX_SLO_S * 1e3)


class PoolPrediction(BaseModel):
    """What the serving model predicts for one worker of a pool at its concurrency."""

    model_config = STRICT

    ttft_ms: float = Field(ge=0)
    tpot_ms: float = Field(ge=0)
    tokens_per_s_per_gpu: float = Field(ge=0)
    requests_per_s: float = Field(ge=0, description="requests one worker completes per second")
    weights_bytes: float = Field(ge=0, description="weights per GPU")
    peak_bytes: float = Field(ge=0, description="weights + workspace + KV cache at the concurrency, per GPU")
    capacity_bytes: float = Field(gt=0, description="usable memory per GPU")
    max_concurrency: int = Field(ge=0, description="requests of the sized length whose KV cache fits")


class ServingPool(BaseModel):
    """Identical workers (engine instances) of one role."""

    model_config = STRICT

    role: Literal["aggregated", "prefill", "decode"]
    plan: ServingPlan
    workers: int = Field(ge=1, le=L.MAX_GPUS)
    gpus_per_worker: int = Field(ge=1, le=L.MAX_GPUS)
    gpus: int = Field(ge=1, le=L.MAX_GPUS, description="workers x gpus_per_worker")
    concurrency: int = Field(ge=1, le=L.MAX_CONCURRENCY, description="requests in flight per worker (the engine's "
                             "max batch)")
    max_model_len: int = Field(ge=2, le=L.MAX_POSITIONS, description="context length the engine is started with")
    predicted: PoolPrediction


class ServingPrediction(BaseModel):
    """The deployment as a whole."""

    model_config = STRICT

    ttft_ms: float = Field(ge=0)
    tpot_ms: float = Field(ge=0)
    tokens_per_s_per_gpu: float = Field(ge=0)
    tokens_per_s_per_user: float = Field(ge=0)
    requests_per_s: float = Field(ge=0, description="requests per second the whole deployment sustains")
    cost_per_hour_usd: float | None = Field(None, ge=0)
    cost_per_million_tokens_usd: float | None = Field(None, ge=0)


class Engine(BaseModel):
    model_config = STRICT

    name: Literal["vllm", "sglang", "trtllm"]
    version: str = Field(min_length=1, max_length=40, description="the engine release the timing constants and the "
                         "exported flags are for")


class ServingDocument(BaseModel):
    """A serving deployment: one ``aggregated`` pool, or a ``prefill`` and a ``decode`` pool."""

    model_config = STRICT

    schema_: Literal["planner.serving-plan"] = Field("planner.serving-plan", alias="schema")
    schema_version: Literal["1.0"] = "1.0"
    model: ModelRef
    system: SystemRef
    mode: Literal["aggregated", "disaggregated"]
    engine: Engine
    gpu_budget: int = Field(ge=1, le=L.MAX_GPUS, description="the GPUs the search was allowed (--gpus)")
    gpus: int = Field(ge=1, le=L.MAX_GPUS, description="GPUs the deployment uses (sum over pools)")
    traffic: Traffic
    slo: SLO | None = None
    pools: list[ServingPool] = Field(min_length=1, max_length=2)
    prediction: ServingPrediction


class PlacementDocument(BaseModel):
    """MoE experts (and their replicas) on GPUs: physical slot ``g * slots_per_gpu + s`` is slot ``s`` of GPU
    ``g``; ``physical_to_logical[l][slot]`` the expert it holds in layer ``l``; ``replica_share`` the share of that
    expert's tokens the slot takes (0 for an empty slot)."""

    model_config = STRICT

    schema_: Literal["planner.expert-placement"] = Field("planner.expert-placement", alias="schema")
    schema_version: Literal["1.0"] = "1.0"
    model: ModelRef
    system: SystemRef | None = Field(None, description="the GPU whose memory the expert slots were checked against")
    weight_bytes_per_param: float = Field(1.0, gt=0, le=8, description="bytes per expert parameter (1 = fp8, "
                                          "2 = bf16) for the memory check")
    gpus: int = Field(ge=1, le=L.MAX_GPUS)
    gpus_per_node: int = Field(ge=1, le=L.MAX_GPUS)
    slots_per_gpu: int = Field(ge=1, le=L.MAX_EXPERTS)
    num_logical_experts: int = Field(ge=1, le=L.MAX_EXPERTS)
    num_redundant_experts: int = Field(ge=0, le=L.MAX_EXPERTS)
    physical_to_logical: list[list[int]] = Field(min_length=1, max_length=L.MAX_LAYERS)
    replica_share: list[list[float]] = Field(min_length=1, max_length=L.MAX_LAYERS)
    solver: dict[str, Any] | None = Field(None, description="status, objective, bound, gap of the placer")
    note: str = ""


class FleetBucket(BaseModel):
    """Requests of one (prompt, output) length range and their rate."""

    model_config = STRICT

    label: Name = Field(min_length=1, max_length=120)
    isl: int = Field(ge=1, le=L.MAX_REQUEST_TOKENS, description="mean prompt tokens of the bucket's requests")
    osl: int = Field(ge=1, le=L.MAX_REQUEST_TOKENS, description="mean output tokens of the bucket's requests")
    longest: int = Field(ge=2, le=2 * L.MAX_REQUEST_TOKENS, description="its longest request (prompt + output)")
    rate_rps: float = Field(gt=0, le=L.MAX_RATE)
    isl_range: tuple[int, int] = Field(description="the prompt lengths it holds (inclusive): what a router sends here")
    osl_range: tuple[int, int] = Field(description="the output lengths it holds (inclusive)")


class FleetLoad(BaseModel):
    """The slices of one bucket a pool takes, and what one of its replicas sustains on that bucket."""

    model_config = STRICT

    bucket: int = Field(ge=0, le=400)
    slices: int = Field(ge=1, le=64)
    rate_rps: float = Field(gt=0, le=L.MAX_RATE, description="slices x the bucket's rate / slice factor")
    capacity_rps: float = Field(gt=0, le=L.MAX_RATE, description="requests/s one replica sustains on the bucket "
                                "within the SLOs at the quantile (planner.cost.capacity, x the pool's derate)")
    kv_transfer_ms: float | None = Field(None, ge=0, le=L.MAX_SLO_S * 1e3, description="prefill pools: the KV "
                                         "transfer to a decode worker its capacity allows for")
    power_w: float = Field(ge=0, description="watts of one replica at that capacity")


class FleetPool(BaseModel):
    """Replicas of one worker kind on one GPU type, the buckets they serve and what they cost and draw."""

    model_config = STRICT

    system: SystemRef
    role: Literal["aggregated", "prefill", "decode"]
    plan: ServingPlan
    replicas: int = Field(ge=1, le=L.MAX_GPUS)
    gpus: int = Field(ge=1, le=L.MAX_GPUS, description="replicas x tp x dp x pp")
    max_model_len: int = Field(ge=2, le=L.MAX_POSITIONS, description="context length the engines are started with")
    price_per_gpu_hour_usd: float = Field(gt=0, le=1e6)
    cost_per_hour_usd: float = Field(ge=0)
    idle_w: float = Field(ge=0, description="watts of one replica with no request")
    power_w: float = Field(ge=0, description="watts of the pool at its assigned load")
    capacity_derate: float = Field(1.0, gt=0, le=1.0, description="the capacity model's capacities x this (below 1: "
                                   "lowered where the simulator found the pool short of its SLOs, mix --verify)")
    loads: list[FleetLoad] = Field(min_length=1, max_length=400)


class FleetDocument(BaseModel):
    """Serving one model over several GPU types: the buckets of the workload, the pools (GPU type, role, worker
    layout, replicas) and which slices of which buckets each takes, as the GPU-mix program chose them."""

    model_config = STRICT

    schema_: Literal["planner.fleet-plan"] = Field("planner.fleet-plan", alias="schema")
    schema_version: Literal["2.0"] = "2.0"
    model: ModelRef
    engine: Engine
    slo: SLO
    quantile: float = Field(ge=0.5, le=0.999, description="the share of requests the SLOs hold for")
    arrivals: Literal["poisson"] = Field("poisson", description="how requests arrive (open loop)")
    rate_rps: float = Field(gt=0, le=L.MAX_RATE, description="the rate the fleet is sized for (mean x burst factor)")
    burst_factor: float = Field(1.0, ge=1.0, le=1000.0, description="a bursty trace served at this multiple of its "
                                "mean rate (planner.search.fleet_workload.burst_factor)")
    slice_factor: int = Field(ge=1, le=64)
    buckets: list[FleetBucket] = Field(min_length=1, max_length=400, description="at their sized rates")
    pools: list[FleetPool] = Field(min_length=1, max_length=400)
    cost_per_hour_usd: float = Field(ge=0)
    power_w: float = Field(ge=0)
    power_cap: float | None = Field(None, ge=0.2, le=1.0, description="every GPU capped at this fraction of TDP")
    max_gpus: dict[Name, int] | None = Field(None, description="GPUs available per type")
    power_budget_w: float | None = Field(None, gt=0)
    solver: dict[str, Any] | None = None


__all__ = [
    "READABLE_VERSIONS",
    "SLO",
    "Engine",
    "FleetBucket",
    "FleetDocument",
    "FleetLoad",
    "FleetPool",
    "ModelRef",
    "PlacementDocument",
    "PoolPrediction",
    "ServingDocument",
    "ServingPool",
    "ServingPrediction",
    "SystemRef",
    "Traffic",
]
