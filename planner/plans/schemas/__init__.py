"""The committed JSON Schemas of the plan documents, generated from their pydantic models.

One file per kind and major version (``<kind>.v<major>.json``). They are generated, never edited by hand:
``python -m planner.plans.schemas`` rewrites them from the models, and ``tests/test_plans.py`` fails when a
committed file differs from what the models generate (``--check`` does the same from the command line).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel

HERE = Path(__file__).resolve().parent
BASE_URL = "https://planner.dev/schemas/"


def _models() -> dict[str, tuple[type[BaseModel], str]]:
    from ..documents import FleetDocument, PlacementDocument, ServingDocument
    from ..training import TrainingDocument

    return {
        "training-plan.v1.json": (TrainingDocument, "planner training plan document: one estimated training plan "
                                  "(`planner train --json` -> best.plan_document), Megatron-LM semantics"),
        "serving-plan.v1.json": (ServingDocument, "planner serving plan document: an aggregated or disaggregated "
                                 "deployment (`planner serve --json` -> plan_document)"),
        "expert-placement.v1.json": (PlacementDocument, "planner expert placement document: MoE experts and "
                                     "replicas on GPUs (`planner experts --export`)"),
        "fleet-plan.v2.json": (FleetDocument, "planner fleet plan document: one model served over several GPU "
                               "types (`planner mix --json` -> plan_document)"),
    }


def generate() -> dict[str, dict[str, Any]]:
    """file name -> the JSON Schema (draft 2020-12) its model generates (validation mode, by alias)."""
    out = {}
    for name, (model, description) in _models().items():
        body = model.model_json_schema(by_alias=True, mode="validation")
        # the models default the kind and version for builders; a document must always carry them
        body["required"] = ["schema", "schema_version"] + [r for r in body.get("required", [])
                                                           if r not in ("schema", "schema_version")]
        out[name] = {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": BASE_URL + name,
                     **body, "description": description}
    return out


def text(schema: dict[str, Any]) -> str:
    """A schema as committed: two-space indented, keys in generation order, a final newline."""
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def load(name: str) -> dict[str, Any]:
    """A committed schema by file name."""
    return json.loads((HERE / name).read_text(encoding="utf-8"))


def stale() -> list[str]:
    """The committed files that differ from (or are missing for) what the models generate."""
    return [name for name, sch in generate().items()
            if not (HERE / name).is_file() or (HERE / name).read_text(encoding="utf-8") != text(sch)]


def write() -> list[str]:
    """Rewrite every schema file from the models; the names written."""
    written = []
    for name, sch in generate().items():
        (HERE / name).write_text(text(sch), encoding="utf-8")
        written.append(name)
    return written


__all__ = ["BASE_URL", "generate", "load", "stale", "text", "write"]
