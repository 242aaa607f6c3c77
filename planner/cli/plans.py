"""``planner check PLAN`` and ``planner export PLAN --to TARGET``: a saved plan document through the gate, then
(for export) to a launcher.

Both read the file with :func:`planner.files.load_json` (regular files only, bounded size and depth) and pass
the document through :func:`planner.plans.check` before anything else; a document the gate refuses is one
``error:`` line and exit 2. Either takes a bare plan document or the whole ``--json`` output of
``planner train`` / ``planner serve`` / ``planner experts`` (its plan document is used).
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from planner.plans import (
    FleetDocument,
    PlacementDocument,
    ServingDocument,
    TrainingDocument,
    check_file,
    did_you_mean,
    summary,
)

from .render import PLACEMENT_TARGETS, SERVING_TARGETS, TRAINING_TARGETS, choice, fail, print_json

ExportTarget = choice("ExportTarget", tuple(dict.fromkeys(TRAINING_TARGETS + SERVING_TARGETS + PLACEMENT_TARGETS)))


def _targets(doc: object) -> tuple[str, tuple[str, ...]]:
    """(the kind of plan, the export targets it has)."""
    if isinstance(doc, TrainingDocument):
        return "training plan", TRAINING_TARGETS
    if isinstance(doc, ServingDocument):
        return "serving plan", SERVING_TARGETS
    if isinstance(doc, PlacementDocument):
        return "expert placement", PLACEMENT_TARGETS
    return "fleet plan", SERVING_TARGETS


def export_text(doc: TrainingDocument | ServingDocument | PlacementDocument | FleetDocument, target: str) -> str:
    """The text of a checked document for ``target`` (one of its kind's targets; else a one-line error naming
    them, with the closest)."""
    kind, targets = _targets(doc)
    if target not in targets:
        if not targets:
            fail(f"this {kind} has no export target yet")
        fail(f"--to {target!r} is not an export target of this {kind}{did_you_mean(target, targets)}; choose from "
             f"{', '.join(targets)}")
    if isinstance(doc, TrainingDocument):
        from planner.export import export

        return export(doc, target)
    if isinstance(doc, ServingDocument):
        from planner.export.serving import export_serving

        return export_serving(doc, target)
    if isinstance(doc, FleetDocument):
        from planner.export.fleet import export_fleet

        return export_fleet(doc, target)
    return json.dumps(doc.model_dump(mode="json", by_alias=True), indent=2)


def check_cmd(
    plan_file: Path = typer.Argument(..., help="A plan document (training, serving, expert placement or fleet), or "
                                               "the whole --json output of train / serve / experts."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of the OK line."),
) -> None:
    """Check a saved plan document: its schema, then its semantics against the model and hardware it embeds."""
    doc = check_file(plan_file)
    line = summary(doc)
    if as_json:
        print_json({"ok": True, "file": str(plan_file), "schema": doc.schema_, "schema_version": doc.schema_version,
                    "summary": line})
    else:
        print(f"OK {plan_file}: {line}")


def export_plan(
    plan_file: Path = typer.Argument(..., help="A plan document, or the whole --json output of train / serve / "
                                               "experts (its plan document)."),
    to: ExportTarget = typer.Option(..., "--to", case_sensitive=False, help="Target: training plans megatron, "
                                    "torchtitan, deepspeed or slurm; serving and fleet plans vllm, sglang, trtllm or "
                                    "k8s; expert placements json."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object (the target, the plan's kind and "
                                 "summary, the text) instead of the text."),
) -> None:
    """Export a saved plan document for a launcher, after checking it."""
    doc = check_file(plan_file)
    text = export_text(doc, to.value)
    if as_json:
        print_json({"file": str(plan_file), "kind": _targets(doc)[0], "schema": doc.schema_,
                    "schema_version": doc.schema_version, "summary": summary(doc), "target": to.value, "text": text})
    else:
        print(text)


__all__ = ["PLACEMENT_TARGETS", "SERVING_TARGETS", "TRAINING_TARGETS", "check_cmd", "export_plan", "export_text"]
