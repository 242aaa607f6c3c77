"""The fleet plan document (``"schema": "planner.fleet-plan"``): serving one model over several GPU types, one
serving document per type and the share of the traffic it takes. The fleet planner fills it in; today the gate
checks what a fleet must hold whatever its planner (:func:`check_fleet`), and :func:`fleet_document` assembles
one from serving documents.
"""

from __future__ import annotations

from typing import Any

from .documents import READABLE_VERSIONS, FleetDocument, FleetPool, ServingDocument
from .refs import PlanCheckError, check_name
from .serving_rules import check_serving

SCHEMA_ID = "planner.fleet-plan"
SCHEMA_VERSION = READABLE_VERSIONS[SCHEMA_ID][-1]
SHARE_TOLERANCE = 1e-6


def fleet_document(pools: list[tuple[float, ServingDocument]], *, solver: dict[str, Any] | None = None
                   ) -> FleetDocument:
    """A fleet of ``(traffic share, serving document)`` pools of one model (not yet checked)."""
    if not pools:
        raise PlanCheckError("fleet: no pools")
    costs = [d.prediction.cost_per_hour_usd for _, d in pools]
    return FleetDocument.model_validate({
        "schema": SCHEMA_ID, "schema_version": SCHEMA_VERSION, "model": pools[0][1].model,
        "pools": [FleetPool(gpu=d.system.name, traffic_share=share, serving=d) for share, d in pools],
        "cost_per_hour_usd": None if any(c is None for c in costs) else sum(costs),  # type: ignore[misc]
        "solver": solver,
    }, strict=False)


def check_fleet(doc: FleetDocument, where: str) -> None:
    """Each pool's serving document passes the serving rules; the pools serve the fleet's model on the GPU
    they name, one pool per GPU type; the traffic shares sum to 1."""
    check_name(doc.model.name, "model.name", where)
    seen: set[str] = set()
    for i, pool in enumerate(doc.pools):
        at = f"pools[{i}]"
        check_name(pool.gpu, f"{at}.gpu", where)
        if pool.serving.model != doc.model:
            raise PlanCheckError(f"{where}: {at}.serving.model is {pool.serving.model.name!r}, not the fleet's "
                                 f"model {doc.model.name!r}")
        if pool.gpu != pool.serving.system.name:
            raise PlanCheckError(f"{where}: {at}.gpu is {pool.gpu!r} but its serving plan runs on "
                                 f"{pool.serving.system.name!r}")
        if pool.gpu in seen:
            raise PlanCheckError(f"{where}: {at}.gpu: {pool.gpu!r} has two pools")
        seen.add(pool.gpu)
        check_serving(pool.serving, f"{where}: {at}.serving")
    total = sum(p.traffic_share for p in doc.pools)
    if abs(total - 1.0) > SHARE_TOLERANCE:
        raise PlanCheckError(f"{where}: pools: the traffic shares sum to {total:.6g}, not 1")


__all__ = ["SCHEMA_ID", "SCHEMA_VERSION", "check_fleet", "fleet_document"]
