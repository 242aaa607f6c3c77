"""The training plan document: what `planner train --json` emits and launchers consume.

One JSON object, versioned (``schema_version``), described by the JSON Schema
shipped at ``planner/plans/schemas/training-plan.v1.json`` (:func:`schema`)::

    {
      "schema": "planner.training-plan",
      "schema_version": "1.0",
      "model":  {"name", "hf_id", "num_layers", "hidden_size", "num_heads", "num_kv_heads",
                 "vocab_size", "max_seq_len", "is_moe", "num_experts"},
      "system": {"name", "accelerator", "num_gpus", "gpus_per_node", "num_nodes",
                 "memory_bytes_per_gpu", "price_per_gpu_hour_usd"},
      "plan":   TrainingPlan fields (tp, pp, vpp, cp, ep, etp, dp, micro_batch, global_batch,
                 seq_len, recompute, sp, zero, dtype, attention, overlap_grad_reduce,
                 grad_reduce_in_fp32, layers_per_chunk, recompute_per_stage, zero3_gather)
                 plus "num_microbatches" and "expert_tp" (derived),
      "estimate": {"step_time_s", "tokens_per_s", "mfu", "model_tflops_per_gpu", "fits",
                   "memory": {...bytes...}, "breakdown": {...seconds...}}
    }

Exporters (:mod:`planner.export`) read this object, so a plan saved to a file
can be exported later without re-running the search.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

from ..cost.training import PlanError, TrainingEstimate, TrainingPlan
from ..specs.hardware import System
from ..specs.model import ModelSpec

SCHEMA_ID = "planner.training-plan"
SCHEMA_VERSION = "1.0"


def plan_document(est: TrainingEstimate, model: ModelSpec, system: System) -> dict[str, Any]:
    """The plan document of one estimated plan."""
    plan = est.plan
    node = system.node
    per_node = node.accelerators_per_node
    return {
        "schema": SCHEMA_ID,
        "schema_version": SCHEMA_VERSION,
        "model": {
            "name": model.name, "hf_id": model.hf_id, "num_layers": model.num_layers,
            "hidden_size": model.hidden_size, "num_heads": model.num_heads, "num_kv_heads": model.num_kv_heads,
            "vocab_size": model.vocab_size, "max_seq_len": model.max_seq_len, "is_moe": model.is_moe,
            "num_experts": model.moe.num_experts if model.moe else 0,
        },
        "system": {
            "name": system.name, "accelerator": system.accelerator.name, "num_gpus": est.num_gpus,
            "gpus_per_node": per_node, "num_nodes": -(-est.num_gpus // per_node),
            "memory_bytes_per_gpu": system.accelerator.memory_bytes,
            "price_per_gpu_hour_usd": system.accelerator.price_per_hour_usd,
        },
        "plan": {**plan.model_dump(mode="json"), "num_microbatches": plan.num_microbatches,
                 "expert_tp": plan.expert_tp},
        "estimate": {
            "step_time_s": est.step_time_s, "tokens_per_s": est.tokens_per_s, "mfu": est.mfu,
            "model_tflops_per_gpu": est.model_tflops_per_gpu, "fits": est.fits,
            "memory": est.memory.model_dump(mode="json"), "breakdown": dict(est.breakdown),
        },
    }


def schema() -> dict[str, Any]:
    """The JSON Schema of the plan document (draft 2020-12)."""
    text = resources.files("planner.plans").joinpath("schemas", "training-plan.v1.json").read_text()
    return json.loads(text)


def load_plan_document(path: str | Path) -> dict[str, Any]:
    """Read a plan document, checking its schema id, version and plan fields."""
    p = Path(path)
    try:
        doc = json.loads(p.read_text())
    except FileNotFoundError:
        raise PlanError(f"plan file {p} not found") from None
    except json.JSONDecodeError as e:
        raise PlanError(f"{p}: not valid JSON (line {e.lineno}: {e.msg})") from None
    return check_plan_document(doc, str(p))


def check_plan_document(doc: Any, where: str = "plan") -> dict[str, Any]:
    """``doc`` if it is a plan document this planner reads; else a one-line :class:`PlanError`."""
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA_ID:
        raise PlanError(f"{where}: not a planner training plan (expected \"schema\": \"{SCHEMA_ID}\")")
    major = str(doc.get("schema_version", "")).split(".")[0]
    if major != SCHEMA_VERSION.split(".")[0]:
        raise PlanError(f"{where}: schema_version {doc.get('schema_version')!r} is not supported (this planner reads {SCHEMA_VERSION})")
    for key in ("model", "system", "plan"):
        if not isinstance(doc.get(key), dict):
            raise PlanError(f"{where}: missing the \"{key}\" object")
    fields = {k: v for k, v in doc["plan"].items() if k in TrainingPlan.model_fields}
    try:
        TrainingPlan(**fields)
    except ValueError as e:
        first = str(e).splitlines()
        raise PlanError(f"{where}: invalid plan: {' '.join(first[:3])}") from None
    return doc


def plan_of(doc: dict[str, Any]) -> TrainingPlan:
    """The :class:`TrainingPlan` in a plan document."""
    return TrainingPlan(**{k: v for k, v in doc["plan"].items() if k in TrainingPlan.model_fields})


__all__ = ["SCHEMA_ID", "SCHEMA_VERSION", "check_plan_document", "load_plan_document", "plan_document", "plan_of", "schema"]
