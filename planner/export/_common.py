"""Helpers shared by the training exporters: the document as a dict, the provenance line, the layer split."""

from __future__ import annotations

from typing import Any

from ..plans.layers import chunk_sizes as _chunk_sizes
from .quoting import comment


def as_dict(doc: Any) -> dict[str, Any]:
    """The training plan document as its JSON dict (a pydantic document is dumped by alias, a dict is kept)."""
    if hasattr(doc, "model_dump"):
        return doc.model_dump(mode="json", by_alias=True)
    return doc


def summary(doc: dict[str, Any]) -> str:
    """One line naming the planner, model, system, GPU count and the predicted step time / MFU (names shown
    with :func:`~planner.export.quoting.comment`, so they cannot break the line)."""
    m, s, e = doc["model"], doc["system"], doc["estimate"]
    nodes = int(s["num_nodes"])
    return comment(f"planner: {m['name']} on {int(s['num_gpus'])} x {s['name']} ({nodes} node"
                   f"{'s' if nodes != 1 else ''}, {int(s['gpus_per_node'])} GPUs per node), predicted step time "
                   f"{float(e['step_time_s']):.3f} s, MFU {100 * float(e['mfu']):.1f}% (plan document "
                   f"{doc['schema_version']})")


def header(doc: dict[str, Any], prefix: str = "# ") -> str:
    """:func:`summary` as a comment line."""
    return prefix + summary(doc)


def note_lines(notes: list[str]) -> list[str]:
    """``# note: ...`` comment lines."""
    return ["# note: " + comment(n) for n in notes]


def chunk_sizes(doc: dict[str, Any]) -> list[int]:
    """Layers of each model chunk (pp x vpp entries, chunk ``c`` on stage ``c % pp``), as the planner splits them."""
    plan = doc["plan"]
    return _chunk_sizes(doc["model"]["num_layers"], plan["pp"], plan["vpp"], plan.get("layers_per_chunk"))


def stage_chunks(doc: dict[str, Any]) -> list[list[int]]:
    """For each pipeline stage, the layer counts of its model chunks (in virtual-stage order)."""
    pp = doc["plan"]["pp"]
    sizes = chunk_sizes(doc)
    return [sizes[s::pp] for s in range(pp)]


def recomputed_layers_per_chunk(doc: dict[str, Any]) -> int | None:
    """With ``recompute_per_stage``: the smallest per-chunk count ``n`` (every chunk recomputes its first
    ``n`` layers, as Megatron's block method and DeepSpeed do) that recomputes at least the planned number
    of layers on every stage. That is the maximum over stages when vpp = 1; it never saves less memory
    than the plan. None when the plan recomputes every layer."""
    per_stage = doc["plan"].get("recompute_per_stage")
    if per_stage is None:
        return None
    chunks = stage_chunks(doc)
    top = max((max(c) for c in chunks if c), default=0)
    for n in range(top + 1):
        if all(sum(min(n, c) for c in cs) >= r for cs, r in zip(chunks, per_stage)):
            return n
    return top
