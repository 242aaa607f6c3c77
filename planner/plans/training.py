"""The training plan document: what `planner train --json` emits and launchers consume.

One JSON object, versioned (``schema_version``), described by :class:`TrainingDocument` and the JSON Schema
generated from it (``planner/plans/schemas/training-plan.v1.json``, :func:`schema`)::

    {
      "schema": "planner.training-plan",
      "schema_version": "1.1",
      "model":  {"name", "hf_id", "num_layers", "hidden_size", "num_heads", "num_kv_heads",
                 "vocab_size", "max_seq_len", "is_moe", "num_experts", "spec"},
      "system": {"name", "accelerator", "num_gpus", "gpus_per_node", "num_nodes",
                 "memory_bytes_per_gpu", "price_per_gpu_hour_usd", "spec"},
      "plan":   TrainingPlan fields (tp, pp, vpp, cp, ep, etp, dp, micro_batch, global_batch,
                 seq_len, recompute, sp, zero, dtype, attention, overlap_grad_reduce,
                 async_tp_allreduce, grad_reduce_in_fp32, layers_per_chunk, recompute_per_stage, zero3_gather)
                 plus "num_microbatches" and "expert_tp" (derived),
      "estimate": {"step_time_s", "tokens_per_s", "mfu", "model_tflops_per_gpu", "fits",
                   "memory": {...bytes...}, "breakdown": {...seconds...}}
    }

Version 1.1 embeds the full model and system specs (``model.spec``: ``ModelSpec`` fields, ``system.spec``:
``System`` fields), so a plan for a custom config.json or hardware YAML is self-contained. Version 1.0 (no
``spec``) is still read: its model and system must then be built-in catalog names. Exporters
(:mod:`planner.export`) read this object, after :func:`planner.plans.check` has passed it
(:func:`planner.plans.gate.load_plan_document` reads one from a file through the gate).
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from .. import limits as L
from ..cost.training import TrainingEstimate, TrainingPlan, estimate_training
from ..specs.hardware import System
from ..specs.model import ModelSpec
from .documents import STRICT
from .refs import (
    PlanCheckError,
    builtin_model,
    builtin_system,
    check_name,
    close,
    model_from_spec,
    short,
    system_from_spec,
)

SCHEMA_ID = "planner.training-plan"
SCHEMA_VERSION = "1.1"
#: The versions this planner reads (exact strings).
READABLE = ("1.0", "1.1")

_Count = Field(ge=1, le=L.MAX_GPUS)


class TrainingModelInfo(BaseModel):
    """The model trained: the facts launchers need, and (from 1.1) its full spec."""

    model_config = STRICT

    name: str = Field(min_length=1, max_length=200, description="catalog name (or the config's name)")
    hf_id: str | None = Field(max_length=200, description="Hugging Face repository id")
    num_layers: int = Field(ge=1, le=L.MAX_LAYERS)
    hidden_size: int = Field(ge=1, le=L.MAX_HIDDEN)
    num_heads: int = Field(ge=1, le=L.MAX_HEADS)
    num_kv_heads: int = Field(ge=1, le=L.MAX_HEADS)
    vocab_size: int = Field(ge=1, le=L.MAX_VOCAB)
    max_seq_len: int = Field(ge=1, le=L.MAX_POSITIONS)
    is_moe: bool
    num_experts: int = Field(ge=0, le=L.MAX_EXPERTS, description="routed experts per MoE layer; 0 for dense models")
    spec: dict[str, Any] | None = Field(None, description="ModelSpec.model_dump(mode='json') (required from 1.1); "
                                        "re-validated on import")


class TrainingSystemInfo(BaseModel):
    """The hardware the plan runs on: the facts launchers need, and (from 1.1) its full spec."""

    model_config = STRICT

    name: str = Field(min_length=1, max_length=200, description="catalog name (or the YAML's name)")
    accelerator: str = Field(min_length=1, max_length=200)
    num_gpus: int = Field(ge=1, le=L.MAX_GPUS, description="tp x pp x cp x dp")
    gpus_per_node: int = Field(ge=1, le=L.MAX_GPUS)
    num_nodes: int = Field(ge=1, le=L.MAX_GPUS, description="ceil(num_gpus / gpus_per_node)")
    memory_bytes_per_gpu: float = Field(gt=0)
    price_per_gpu_hour_usd: float | None = Field(ge=0, le=L.MAX_USD)
    spec: dict[str, Any] | None = Field(None, description="System.model_dump(mode='json') (required from 1.1); "
                                        "re-validated on import")


class TrainingPlanSection(BaseModel):
    """:class:`planner.TrainingPlan` fields (Megatron-LM semantics), all required, plus two derived ones."""

    model_config = STRICT

    tp: int = Field(ge=1, le=L.MAX_GPUS, description="tensor parallel size")
    pp: int = Field(ge=1, le=L.MAX_LAYERS, description="pipeline parallel size")
    vpp: int = Field(ge=1, le=L.MAX_LAYERS, description="virtual pipeline stages (model chunks) per pipeline rank")
    cp: int = Field(ge=1, le=L.MAX_GPUS, description="context parallel size")
    ep: int = Field(ge=1, le=L.MAX_EXPERTS, description="expert parallel size")
    etp: int | None = Field(ge=1, le=L.MAX_GPUS, description="expert tensor parallel size as given; null = default "
                            "(see expert_tp)")
    dp: int = Field(ge=1, le=L.MAX_GPUS, description="data parallel size")
    micro_batch: int = Field(ge=1, le=L.MAX_BATCH, description="sequences per micro-batch per data-parallel rank")
    global_batch: int = Field(ge=1, le=L.MAX_BATCH, description="sequences per optimizer step")
    seq_len: int = Field(ge=1, le=L.MAX_POSITIONS)
    recompute: Literal["none", "selective", "full"]
    sp: bool = Field(description="sequence parallelism (with tp > 1)")
    zero: Literal[0, 1, 2, 3] = Field(description="ZeRO stage; 1 = Megatron distributed optimizer")
    dtype: Literal["bf16", "fp16", "fp8"]
    attention: Literal["flash", "unfused"]
    overlap_grad_reduce: bool
    async_tp_allreduce: bool = Field(False, description="Megatron-LM's asynchronous tensor-parallel all-reduce "
                                     "(without sequence parallelism); absent in documents written before it")
    grad_reduce_in_fp32: bool
    layers_per_chunk: list[int] | None = Field(max_length=L.MAX_LAYERS, description="layers of each model chunk in "
                                               "order (pp x vpp entries; chunk c runs on stage c % pp); null = as "
                                               "even as possible")
    recompute_per_stage: list[int] | None = Field(max_length=L.MAX_LAYERS, description="with recompute = full: "
                                                  "layers recomputed per pipeline stage (the first ones of the "
                                                  "stage); null = all")
    zero3_gather: Literal["layer", "tensor"]
    num_microbatches: int = Field(ge=1, le=L.MAX_BATCH, description="derived: global_batch / (micro_batch x dp)")
    expert_tp: int = Field(ge=1, le=L.MAX_GPUS, description="derived: etp, else tp when ep = 1, else 1")

    def training_plan(self) -> TrainingPlan:
        """The :class:`TrainingPlan` these fields describe."""
        return TrainingPlan(**self.model_dump(exclude={"num_microbatches", "expert_tp"}))


class TrainingMemory(BaseModel):
    """Bytes per GPU on the most loaded pipeline stage."""

    model_config = STRICT

    weights_bytes: float = Field(ge=0)
    gradients_bytes: float = Field(ge=0)
    optimizer_bytes: float = Field(ge=0, description="fp32 master weights and Adam moments, plus the fp32 main "
                                                     "gradients when gradients are 16-bit (grad_reduce_in_fp32 "
                                                     "false), which exist only during the optimizer step")
    activations_bytes: float = Field(ge=0)
    other_bytes: float = Field(ge=0)
    peak_bytes: float = Field(ge=0, description="the larger of the backward pass (all parts but the step-only fp32 "
                                                "main gradients) and the optimizer step (all parts but the "
                                                "activations); the sum of the parts when gradients are fp32")
    capacity_bytes: float = Field(gt=0)


class TrainingPrediction(BaseModel):
    """What the cost model predicts for the plan."""

    model_config = STRICT

    step_time_s: float = Field(gt=0)
    tokens_per_s: float = Field(ge=0)
    mfu: float = Field(ge=0)
    model_tflops_per_gpu: float = Field(ge=0)
    fits: bool
    memory: TrainingMemory
    breakdown: dict[str, float] = Field(description="seconds per component of one step")


class TrainingDocument(BaseModel):
    """One estimated training plan (``planner train --json`` -> ``best.plan_document``)."""

    model_config = ConfigDict(**STRICT, title="planner training plan document")

    schema_: Literal["planner.training-plan"] = Field(SCHEMA_ID, alias="schema")
    schema_version: Literal["1.0", "1.1"] = Field(SCHEMA_VERSION, description="exact strings; 1.0 has no embedded "
                                                  "specs and names built-in models and systems")
    model: TrainingModelInfo
    system: TrainingSystemInfo
    plan: TrainingPlanSection
    estimate: TrainingPrediction

    @model_validator(mode="after")
    def _specs_by_version(self) -> TrainingDocument:
        for part in ("model", "system"):
            has = getattr(self, part).spec is not None
            if self.schema_version == "1.0" and has:
                raise ValueError(f"{part}.spec is not part of schema_version 1.0 (it came with 1.1)")
            if self.schema_version != "1.0" and not has:
                raise ValueError(f"{part}.spec is required from schema_version 1.1")
        return self

    def to_json(self) -> dict[str, Any]:
        """The document as the JSON object exporters read (``"schema"``, not ``schema_``)."""
        return self.model_dump(mode="json", by_alias=True)


def training_document(est: TrainingEstimate, model: ModelSpec, system: System) -> TrainingDocument:
    """The plan document of one estimated plan (not yet checked: see :func:`planner.plans.check`)."""
    plan = est.plan
    per_node = system.node.accelerators_per_node
    return TrainingDocument.model_validate({
        "schema": SCHEMA_ID,
        "schema_version": SCHEMA_VERSION,
        "model": {
            "name": model.name, "hf_id": model.hf_id, "num_layers": model.num_layers,
            "hidden_size": model.hidden_size, "num_heads": model.num_heads, "num_kv_heads": model.num_kv_heads,
            "vocab_size": model.vocab_size, "max_seq_len": model.max_seq_len, "is_moe": model.is_moe,
            "num_experts": model.moe.num_experts if model.moe else 0, "spec": model.model_dump(mode="json"),
        },
        "system": {
            "name": system.name, "accelerator": system.accelerator.name, "num_gpus": est.num_gpus,
            "gpus_per_node": per_node, "num_nodes": -(-est.num_gpus // per_node),
            "memory_bytes_per_gpu": float(system.accelerator.memory_bytes),
            "price_per_gpu_hour_usd": system.accelerator.price_per_hour_usd, "spec": system.model_dump(mode="json"),
        },
        "plan": {**plan.model_dump(), "layers_per_chunk": _list(plan.layers_per_chunk),
                 "recompute_per_stage": _list(plan.recompute_per_stage),
                 "num_microbatches": plan.num_microbatches, "expert_tp": plan.expert_tp},
        "estimate": {
            "step_time_s": est.step_time_s, "tokens_per_s": est.tokens_per_s, "mfu": est.mfu,
            "model_tflops_per_gpu": est.model_tflops_per_gpu, "fits": est.fits,
            "memory": est.memory.model_dump(), "breakdown": dict(est.breakdown),
        },
    }, strict=False)


def check_training(doc: TrainingDocument, where: str) -> tuple[ModelSpec, System, TrainingEstimate]:
    """The semantics of a (schema-valid) training document, against the model and hardware it embeds:

    * names without control characters; the summary fields agree with the embedded specs;
    * degrees multiply to the GPU count (tp x pp x cp x dp = num_gpus), nodes = ceil(num_gpus / per node);
    * the derived fields agree (num_microbatches, expert_tp); divisibility of heads, layers, experts and batch
      (:func:`planner.cost.training_plan.check_plan`);
    * memory by the planner's own model: re-estimated with :func:`planner.cost.training.estimate_training`,
      the plan must fit, the document must say so, and every memory part it states (weights, gradients, optimizer,
      activations, other, peak) and its step time must agree within 1 %.

    Returns the model, system and re-estimate; raises :class:`~planner.plans.refs.PlanCheckError`.
    """
    mi, si, p = doc.model, doc.system, doc.plan
    for value, field in ((mi.name, "model.name"), (mi.hf_id, "model.hf_id"), (si.name, "system.name"),
                         (si.accelerator, "system.accelerator")):
        check_name(value, field, where)
    model = model_from_spec(mi.spec, where) if mi.spec is not None else builtin_model(mi.name, where)
    system = system_from_spec(si.spec, where) if si.spec is not None else builtin_system(si.name, where)
    facts = {
        "model.name": (mi.name, model.name), "model.hf_id": (mi.hf_id, model.hf_id),
        "model.num_layers": (mi.num_layers, model.num_layers), "model.hidden_size": (mi.hidden_size, model.hidden_size),
        "model.num_heads": (mi.num_heads, model.num_heads), "model.num_kv_heads": (mi.num_kv_heads, model.num_kv_heads),
        "model.vocab_size": (mi.vocab_size, model.vocab_size), "model.max_seq_len": (mi.max_seq_len, model.max_seq_len),
        "model.is_moe": (mi.is_moe, model.is_moe),
        "model.num_experts": (mi.num_experts, model.moe.num_experts if model.moe else 0),
        "system.name": (si.name, system.name), "system.accelerator": (si.accelerator, system.accelerator.name),
        "system.gpus_per_node": (si.gpus_per_node, system.node.accelerators_per_node),
        "system.memory_bytes_per_gpu": (si.memory_bytes_per_gpu, float(system.accelerator.memory_bytes)),
        "system.price_per_gpu_hour_usd": (si.price_per_gpu_hour_usd, system.accelerator.price_per_hour_usd),
    }
    for field, (said, spec) in facts.items():
        if said != spec:
            raise PlanCheckError(f"{where}: {field} is {short(said)} but the embedded spec says "
                                 f"{short(spec)}")
    product = p.tp * p.pp * p.cp * p.dp
    if product != si.num_gpus:
        raise PlanCheckError(f"{where}: plan: degrees do not multiply to the GPU count: tp {p.tp} x pp {p.pp} x cp "
                             f"{p.cp} x dp {p.dp} = {product}, but system.num_gpus is {si.num_gpus}")
    nodes = -(-si.num_gpus // si.gpus_per_node)
    if si.num_nodes != nodes:
        raise PlanCheckError(f"{where}: system.num_nodes is {si.num_nodes}; {si.num_gpus} GPUs at "
                             f"{si.gpus_per_node} per node take {nodes}")
    try:
        plan = p.training_plan()
    except ValueError as exc:
        raise PlanCheckError(f"{where}: plan: {' '.join(str(exc).split())}") from None
    for field, said, derived in (("num_microbatches", p.num_microbatches, plan.num_microbatches),
                                 ("expert_tp", p.expert_tp, plan.expert_tp)):
        if said != derived:
            raise PlanCheckError(f"{where}: plan.{field} is {said}; the plan's degrees give {derived}")
    try:
        est = estimate_training(model, system, plan, si.num_gpus)
    except ValueError as exc:  # check_plan's PlanError: divisibility of heads, layers, experts, batch
        raise PlanCheckError(f"{where}: plan: {' '.join(str(exc).split())}") from None
    mem = est.memory
    if not est.fits:
        raise PlanCheckError(f"{where}: plan needs {mem.peak_bytes / 1e9:,.1f} GB per GPU by the planner's memory "
                             f"model; {system.accelerator.name} has {mem.capacity_bytes / 1e9:,.1f} GB")
    e = doc.estimate
    if not e.fits:
        raise PlanCheckError(f"{where}: estimate.fits is false: the document says the plan does not fit in memory")
    for part in ("peak_bytes", "weights_bytes", "gradients_bytes", "optimizer_bytes", "activations_bytes",
                 "other_bytes"):
        said, model_says = getattr(e.memory, part), getattr(mem, part)
        if not close(said, model_says):
            raise PlanCheckError(f"{where}: estimate.memory.{part} is {said:.4g}; the planner's memory model gives "
                                 f"{model_says:.4g} bytes per GPU (more than 1 % apart)")
    if not close(e.memory.capacity_bytes, mem.capacity_bytes, 1e-9):
        raise PlanCheckError(f"{where}: estimate.memory.capacity_bytes is {e.memory.capacity_bytes:.6g}; "
                             f"{system.accelerator.name} has {mem.capacity_bytes:.6g}")
    if not close(e.step_time_s, est.step_time_s):
        raise PlanCheckError(f"{where}: estimate.step_time_s is {e.step_time_s:.4g}; the planner's model gives "
                             f"{est.step_time_s:.4g} s (more than 1 % apart)")
    return model, system, est


def _list(values: tuple[int, ...] | None) -> list[int] | None:
    return None if values is None else list(values)


def plan_document(est: TrainingEstimate, model: ModelSpec, system: System) -> dict[str, Any]:
    """:func:`training_document` as the JSON object (what ``--json`` prints and exporters read)."""
    return training_document(est, model, system).to_json()


def schema() -> dict[str, Any]:
    """The committed JSON Schema of the training plan document (draft 2020-12)."""
    text = resources.files("planner.plans").joinpath("schemas", "training-plan.v1.json").read_text()
    return json.loads(text)


def plan_of(doc: dict[str, Any] | TrainingDocument) -> TrainingPlan:
    """The :class:`TrainingPlan` in a (checked) plan document."""
    if isinstance(doc, TrainingDocument):
        return doc.plan.training_plan()
    return TrainingPlan(**{k: v for k, v in doc["plan"].items() if k in TrainingPlan.model_fields})


__all__ = ["READABLE", "SCHEMA_ID", "SCHEMA_VERSION", "TrainingDocument", "TrainingMemory", "TrainingModelInfo",
           "TrainingPlanSection", "TrainingPrediction", "TrainingSystemInfo", "check_training", "plan_document",
           "plan_of", "schema", "training_document"]
