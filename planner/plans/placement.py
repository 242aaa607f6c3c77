"""The expert placement document (``"schema": "planner.expert-placement"``): an MoE model's experts and their
replicas on GPUs, as ``planner experts --export`` writes it and vLLM / SGLang expert-placement maps take it.

:func:`placement_document` builds it from a solved :class:`~planner.moe.placement.Placement`;
:func:`check_placement` holds its semantic rules (the gate, :func:`planner.plans.check`, runs them).
"""

from __future__ import annotations

import math
from typing import Any

from ..moe.placement import ExpertCluster, Placement, expert_slots
from ..specs.hardware import System
from ..specs.model import ModelSpec
from .documents import READABLE_VERSIONS, ModelRef, PlacementDocument, SystemRef
from .refs import PlanCheckError, check_name, model_from_spec, system_from_spec

SCHEMA_ID = "planner.expert-placement"
SCHEMA_VERSION = READABLE_VERSIONS[SCHEMA_ID][-1]
SHARE_TOLERANCE = 1e-4  # shares are written with 6 decimals: a layer's shares of one expert sum to 1 within this

NOTE = ("physical slot g * slots_per_gpu + s is slot s of GPU g; empty slots repeat the GPU's first expert with "
        "share 0.")


def placement_document(placement: Placement, model: ModelSpec, cluster: ExpertCluster, *,
                       system: System | None = None, weight_bytes_per_param: float = 1.0,
                       solver: dict[str, Any] | None = None) -> PlacementDocument:
    """The document of one placement: per MoE layer, physical slot -> logical expert (GPU-major, the shape of
    vLLM's / SGLang's expert-placement maps) and each slot's share of its expert's tokens (not yet checked)."""
    note = NOTE
    if (placement.num_experts + cluster.redundant) % cluster.gpus:
        note += (f" vLLM and SGLang need experts + redundant ({placement.num_experts + cluster.redundant}) to divide "
                 f"evenly over the {cluster.gpus} EP ranks; choose --redundant so that it does.")
    return PlacementDocument.model_validate({
        "schema": SCHEMA_ID, "schema_version": SCHEMA_VERSION,
        "model": ModelRef(name=model.name, hf_id=model.hf_id, spec=model.model_dump(mode="json")),
        "system": None if system is None else SystemRef(name=system.name, spec=system.model_dump(mode="json")),
        "weight_bytes_per_param": float(weight_bytes_per_param),
        "gpus": cluster.gpus, "gpus_per_node": cluster.gpus_per_node, "slots_per_gpu": cluster.slots,
        "num_logical_experts": placement.num_experts, "num_redundant_experts": cluster.redundant,
        "physical_to_logical": placement.to_physical_map(),
        "replica_share": [[round(float(x), 6) for x in layer.reshape(-1)] for layer in placement.share],
        "solver": solver, "note": note,
    }, strict=False)


def check_placement(doc: PlacementDocument, where: str) -> ModelSpec:
    """The semantics of a placement document against the model (and GPU) it embeds:

    * names without control characters; the model is an MoE model with ``num_logical_experts`` routed experts
      and one row per MoE layer;
    * ``gpus`` fill nodes of ``gpus_per_node``; ``gpus x slots_per_gpu`` slots hold the experts and the
      redundant replicas; every row has one entry per slot;
    * every entry names an expert ``0 <= e < E``; every expert has a slot in every layer; each slot's share is
      in [0, 1] and an expert's shares sum to 1 (within 1e-4, shares are written to 6 decimals); a slot with a
      positive share is at most one of ``E + redundant``;
    * with a GPU: the slots fit its memory (:func:`planner.moe.placement.expert_slots`).
    """
    check_name(doc.model.name, "model.name", where)
    check_name(doc.model.hf_id, "model.hf_id", where)
    model = model_from_spec(doc.model.spec, where)
    if doc.model.name != model.name:
        raise PlanCheckError(f"{where}: model.name is {doc.model.name!r} but the embedded spec is {model.name!r}")
    if model.moe is None:
        raise PlanCheckError(f"{where}: model.spec: {model.name} has no experts to place")
    e = model.moe.num_experts
    layers = sum(1 for i in range(model.num_layers) if model.is_moe_layer(i))
    if doc.num_logical_experts != e:
        raise PlanCheckError(f"{where}: num_logical_experts is {doc.num_logical_experts}; {model.name} has {e} "
                             f"routed experts")
    g, per_node, slots, red = doc.gpus, doc.gpus_per_node, doc.slots_per_gpu, doc.num_redundant_experts
    if per_node > g or g % per_node:
        raise PlanCheckError(f"{where}: gpus: {g} GPUs do not fill nodes of gpus_per_node {per_node}")
    if g * slots < e + red:
        raise PlanCheckError(f"{where}: slots_per_gpu: {g} GPUs x {slots} slots cannot hold {e} experts + {red} "
                             f"redundant (need {math.ceil((e + red) / g)} slots per GPU)")
    for field, rows in (("physical_to_logical", doc.physical_to_logical), ("replica_share", doc.replica_share)):
        if len(rows) != layers:
            raise PlanCheckError(f"{where}: {field} has {len(rows)} rows; {model.name} has {layers} MoE layers")
        for li, row in enumerate(rows):
            if len(row) != g * slots:
                raise PlanCheckError(f"{where}: {field}[{li}] has {len(row)} entries, not gpus x slots_per_gpu = "
                                     f"{g * slots}")
    for li, (experts, shares) in enumerate(zip(doc.physical_to_logical, doc.replica_share)):
        total = [0.0] * e
        seen = [False] * e
        used = 0
        for si, (x, share) in enumerate(zip(experts, shares)):
            if not 0 <= x < e:
                raise PlanCheckError(f"{where}: physical_to_logical[{li}][{si}] is {x}; experts are 0..{e - 1}")
            if not 0.0 <= share <= 1.0:
                raise PlanCheckError(f"{where}: replica_share[{li}][{si}] is {share}; a share is in [0, 1]")
            seen[x] = True
            total[x] += share
            used += share > 0
        missing = [x for x in range(e) if not seen[x] or abs(total[x] - 1.0) > SHARE_TOLERANCE]
        if missing:
            x = missing[0]
            raise PlanCheckError(f"{where}: replica_share[{li}]: expert {x}'s shares sum to {total[x]:.6g}, not 1"
                                 + ("" if seen[x] else " (it has no slot)"))
        if used > e + red:
            raise PlanCheckError(f"{where}: physical_to_logical[{li}] uses {used} slots; {e} experts + "
                                 f"num_redundant_experts {red} = {e + red}")
    if doc.system is not None:
        check_name(doc.system.name, "system.name", where)
        system = system_from_spec(doc.system.spec, where)
        fits = expert_slots(model, system.accelerator.memory_bytes, doc.weight_bytes_per_param)
        if slots > fits:
            raise PlanCheckError(f"{where}: slots_per_gpu {slots} does not fit: a {system.accelerator.name} holds at "
                                 f"most {fits} expert slots per layer at {doc.weight_bytes_per_param:g} bytes per "
                                 f"parameter (half its memory kept for attention, KV cache and activations)")
    return model


__all__ = ["NOTE", "SCHEMA_ID", "SCHEMA_VERSION", "check_placement", "placement_document"]
