"""The gate: :func:`check`, the one function every plan document passes before it is trusted.

Every search's answer (:mod:`planner.api`), every document ``planner check`` / ``planner export`` read and every
exporter's input goes through it. Two steps:

1. **Schema.** ``"schema"`` names the kind (training, serving, expert placement, fleet) and
   ``"schema_version"`` must be one of the exact strings that kind reads (``"1"``, ``"1.x"``, ``1.0`` or
   ``"1.0.1"`` are refused). The document is then validated against its pydantic model in strict JSON mode:
   ``"tp": "8"`` or ``8.0`` is refused at any depth, missing and unknown fields are refused, numbers must be
   finite and within :mod:`planner.limits`.
2. **Semantics,** against the model and hardware the document embeds (re-validated like any hostile input):
   degrees multiply to the GPU count; divisibility of heads, layers, experts and batch; memory by the
   planner's own model within the limit; within the GPU budget asked for; SLOs met where stated; names
   without control characters. See each kind's rules: :func:`planner.plans.training.check_training`,
   :func:`planner.plans.serving_rules.check_serving`, :func:`planner.plans.placement.check_placement`,
   :func:`planner.plans.fleet.check_fleet`.

A refusal is a :class:`PlanCheckError` (a :class:`~planner.errors.PlannerError`): one line starting with where
the document came from (the file name when read from a file) and naming the field. No malformed document
raises anything else.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from ..files import load_json
from .documents import (
    READABLE_VERSIONS,
    FleetDocument,
    PlacementDocument,
    ServingDocument,
)
from .fleet import check_fleet
from .placement import check_placement
from .refs import PlanCheckError, short, validation_line
from .serving_rules import check_serving
from .training import READABLE as TRAINING_READABLE
from .training import SCHEMA_ID as TRAINING_ID
from .training import TrainingDocument, check_training

Document = TrainingDocument | ServingDocument | PlacementDocument | FleetDocument

#: schema id -> (model, readable versions, semantic check)
KINDS: dict[str, tuple[type[BaseModel], tuple[str, ...], Any]] = {
    TRAINING_ID: (TrainingDocument, TRAINING_READABLE, check_training),
    "planner.serving-plan": (ServingDocument, READABLE_VERSIONS["planner.serving-plan"], check_serving),
    "planner.expert-placement": (PlacementDocument, READABLE_VERSIONS["planner.expert-placement"], check_placement),
    "planner.fleet-plan": (FleetDocument, READABLE_VERSIONS["planner.fleet-plan"], check_fleet),
}


class GateFailure(RuntimeError):
    """A search produced an answer the gate refuses: a bug in the planner, not in the input (exit 1)."""


def did_you_mean(name: str, known: list[str] | tuple[str, ...]) -> str:
    """`` (did you mean 'x'?)`` for the known name closest to ``name``, or "" when none is close."""
    import difflib

    near = difflib.get_close_matches(name, known, n=1, cutoff=0.5)
    return f" (did you mean {near[0]!r}?)" if near else ""


def _json_text(document: Any, where: str) -> tuple[dict[str, Any], str]:
    """(the document as a JSON object, its JSON text) for strict JSON-mode validation."""
    if isinstance(document, BaseModel):
        document = document.model_dump(mode="json", by_alias=True)
    if not isinstance(document, dict):
        raise PlanCheckError(f"{where}: a plan document is a JSON object, got {type(document).__name__}")
    try:
        text = json.dumps(document, allow_nan=False)
    except ValueError as exc:
        msg = "holds NaN or infinity (not JSON numbers)" if "Out of range" in str(exc) else "is not plain JSON"
        raise PlanCheckError(f"{where}: the document {msg}") from None
    except (TypeError, RecursionError):
        raise PlanCheckError(f"{where}: the document is not plain JSON (objects, arrays, strings, numbers)") from None
    return document, text


def check(document: Any, where: str = "plan") -> Document:
    """The typed document if ``document`` (a JSON object or a document model) passes the gate (module
    docstring); else a one-line :class:`PlanCheckError` starting with ``where``."""
    data, text = _json_text(document, where)
    kind = data.get("schema")
    if not isinstance(kind, str) or kind not in KINDS:
        if "format" in data and "schema" not in data:
            raise PlanCheckError(f"{where}: an expert placement written before plan documents existed "
                                 f"(\"format\": {short(data['format'])}); run `planner experts ... --export` again")
        got = f"{short(kind)}" if kind is not None else "none"
        hint = did_you_mean(kind, list(KINDS)) if isinstance(kind, str) else ""
        raise PlanCheckError(f"{where}: schema: not a planner plan document (got {got}{hint}; expected one of "
                             f"{', '.join(KINDS)})")
    model, versions, rules = KINDS[kind]
    version = data.get("schema_version")
    if not isinstance(version, str) or version not in versions:
        raise PlanCheckError(f"{where}: schema_version: {short(version)} is not a version this planner reads for "
                             f"{kind} (exact strings: {', '.join(repr(v) for v in versions)})")
    try:
        typed = model.model_validate_json(text, strict=True)
    except ValidationError as exc:
        raise PlanCheckError(validation_line(exc, where)) from None
    rules(typed, where)
    return typed  # type: ignore[return-value]


def unwrap(data: Any) -> Any:
    """The plan document inside a whole ``--json`` output: ``planner train --json`` (``best.plan_document``),
    ``planner serve --json`` and ``planner experts --json`` (``plan_document``); anything else as it is."""
    if isinstance(data, dict) and "schema" not in data:
        best = data.get("best")
        if isinstance(best, dict) and "plan_document" in best:
            return best["plan_document"]
        if "plan_document" in data:
            if data["plan_document"] is None:  # `planner estimate ... --json` of a plan that does not fit
                raise PlanCheckError("holds no plan document: the estimated plan does not fit in memory (\"fits\": "
                                     "false), so there is nothing to check or launch")
            return data["plan_document"]
    return data


def check_file(path: str | Path) -> Document:
    """A plan document read from a file (:func:`planner.files.load_json`: regular files only, bounded size and
    depth) or the whole ``--json`` output of a search, through :func:`check`; errors start with the path."""
    data = load_json(path, "a plan document (JSON)")
    try:
        inner = unwrap(data)
    except PlanCheckError as exc:
        raise PlanCheckError(f"{path}: {exc}") from None
    return check(inner, where=str(path))


def load_plan_document(path: str | Path) -> dict[str, Any]:
    """A training plan document read from a file through the gate (:func:`check_file`), as its JSON object."""
    doc = check_file(path)
    if not isinstance(doc, TrainingDocument):
        raise PlanCheckError(f"{path}: schema: not a training plan (\"{TRAINING_ID}\"), but {doc.schema_}")
    return doc.to_json()


def check_plan_document(doc: Any, where: str = "plan") -> dict[str, Any]:
    """``doc`` as its JSON object if it is a training plan document that passes the gate; else a one-line
    :class:`PlanCheckError`."""
    typed = check(doc, where=where)
    if not isinstance(typed, TrainingDocument):
        raise PlanCheckError(f"{where}: schema: not a training plan (\"{TRAINING_ID}\"), but {typed.schema_}")
    return typed.to_json()


def gated(document: Any, what: str) -> Document:
    """:func:`check` on an answer the planner itself produced: a refusal is a bug (:class:`GateFailure`)."""
    try:
        return check(document, where=what)
    except PlanCheckError as exc:
        raise GateFailure(f"the planner's own {what} fails its plan check: {exc}") from None


def summary(doc: Document) -> str:
    """One line describing a checked document (what ``planner check`` prints after OK)."""
    if isinstance(doc, TrainingDocument):
        p, s, e = doc.plan, doc.system, doc.estimate
        layout = f"tp {p.tp} x pp {p.pp} x cp {p.cp} x dp {p.dp}" + (f", vpp {p.vpp}" if p.vpp > 1 else "")
        layout += f", ep {p.ep}" if p.ep > 1 else ""
        return (f"training plan {doc.schema_version}: {doc.model.name} on {s.num_gpus} x {s.name} ({layout}), "
                f"step {e.step_time_s:.3f} s, MFU {100 * e.mfu:.1f} %, {e.memory.peak_bytes / 1e9:.1f} of "
                f"{e.memory.capacity_bytes / 1e9:.1f} GB per GPU")
    if isinstance(doc, ServingDocument):
        pools = ", ".join(f"{p.role} {p.workers} x tp {p.plan.tp} dp {p.plan.dp} pp {p.plan.pp} {p.plan.precision}"
                          for p in doc.pools)
        pr = doc.prediction
        return (f"serving plan {doc.schema_version} ({doc.mode}, {doc.engine.name}): {doc.model.name} on {doc.gpus} "
                f"of {doc.gpu_budget} x {doc.system.name} ({pools}), TTFT {pr.ttft_ms:.0f} ms, TPOT "
                f"{pr.tpot_ms:.1f} ms, {pr.requests_per_s:.2f} requests/s")
    if isinstance(doc, PlacementDocument):
        return (f"expert placement {doc.schema_version}: {doc.model.name}, {doc.num_logical_experts} experts + "
                f"{doc.num_redundant_experts} redundant over {doc.gpus} GPUs ({doc.slots_per_gpu} slots each), "
                f"{len(doc.physical_to_logical)} MoE layers")
    gpus: dict[str, int] = {}
    for p in doc.pools:
        gpus[p.system.name] = gpus.get(p.system.name, 0) + p.gpus
    return (f"fleet plan {doc.schema_version}: {doc.model.name} at {doc.rate_rps:.4g} requests/s over "
            f"{', '.join(f'{n} x {g}' for g, n in gpus.items())} in {len(doc.pools)} pool(s), "
            f"${doc.cost_per_hour_usd:,.2f}/h, {doc.power_w / 1e3:,.2f} kW")


__all__ = [
    "KINDS",
    "Document",
    "GateFailure",
    "PlanCheckError",
    "check",
    "check_file",
    "check_plan_document",
    "did_you_mean",
    "gated",
    "load_plan_document",
    "summary",
    "unwrap",
]
