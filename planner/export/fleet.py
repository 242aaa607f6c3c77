"""Fleet exporters: every aggregated pool of a fleet plan document as engine commands or Kubernetes manifests.

:func:`export_fleet` passes the document through :func:`planner.plans.check`, turns each aggregated pool into a
serving plan document (:func:`planner.plans.fleet.pool_serving_document`, itself checked) and renders it with
:func:`planner.export.serving.export_serving`, under a header naming the pool: its GPU type, replicas and the
buckets (request lengths) the router must send it. Prefill / decode pools are listed in the header with the
reason they are not rendered.
"""

from __future__ import annotations

from typing import Any

from ..plans import check
from ..plans.documents import FleetDocument
from ..plans.fleet import pool_serving_document
from ..plans.refs import PlanCheckError
from .quoting import ExportError, comment_lines
from .serving import TARGETS, export_serving


def export_fleet(doc: FleetDocument | dict[str, Any], target: str, *, image: str | None = None,
                 where: str = "fleet plan") -> str:
    """The text of every aggregated pool of the fleet plan ``doc`` for ``target`` (vllm, sglang, trtllm, k8s)."""
    if target not in TARGETS:
        raise ExportError(f"unknown export target {target!r}; choose from {', '.join(TARGETS)}")
    typed = check(doc, where=where)
    if not isinstance(typed, FleetDocument):
        raise ExportError(f"{where}: this exports fleet plans; this is a {typed.schema_} document")
    parts = [f"fleet plan: {typed.model.name}, {typed.rate_rps:.4g} requests/s, ${typed.cost_per_hour_usd:,.2f} per "
             f"hour, {len(typed.pools)} pool(s)"]
    out = []
    for i, pool in enumerate(typed.pools):
        buckets = ", ".join(f"{typed.buckets[l.bucket].label} ({l.slices}/{typed.slice_factor})" for l in pool.loads)
        head = [f"pool {i}: {pool.replicas} x {pool.role} worker(s) on {pool.system.name} "
                f"(tp {pool.plan.tp} dp {pool.plan.dp}, {pool.plan.precision}); route here: {buckets}"]
        try:
            sdoc = pool_serving_document(typed, i)
        except PlanCheckError as exc:
            parts.append(f"pool {i} not rendered: {exc}")
            continue
        body = export_serving(sdoc.model_dump(mode="json", by_alias=True), target, image=image,
                              where=f"{where} pool {i}")
        out.append("\n".join(comment_lines(head)) + "\n" + body)
    if not out:
        raise ExportError(f"{where}: no aggregated pool to render ({'; '.join(parts[1:])})")
    return "\n".join(comment_lines(parts)) + "\n\n" + "\n".join(out)


__all__ = ["export_fleet"]
