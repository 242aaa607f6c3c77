"""Fleet exporters: every pool of a fleet plan document as engine commands (aggregated pools also as Kubernetes
manifests).

:func:`export_fleet` passes the document through :func:`planner.plans.check`, then:

* each aggregated pool becomes a serving plan document (:func:`planner.plans.fleet.pool_serving_document`,
  itself checked) rendered by :func:`planner.export.serving.export_serving`, under a header naming the pool: its
  GPU type, replicas and the buckets (request lengths) the router must send it;
* the prefill and decode pools (Splitwise: possibly on different GPU types) are rendered in *groups*: pools
  linked by the buckets they share (a bucket's prefill slices on one pool, its decode slices on another). Each
  group has a header with the router's table (bucket -> prefill pool, decode pool), then one worker command per
  pool in the engine's disaggregated mode (:func:`planner.export.engines.serving_launch` with the pool's role:
  vLLM's NixlConnector, SGLang's ``--disaggregation-mode``, TensorRT-LLM's cache transceiver), each worker sized
  for its pool (:func:`planner.plans.fleet.pool_workload`), and for TensorRT-LLM the group's disaggregated
  frontend config listing its context and generation servers.

Kubernetes manifests cover the aggregated pools; a prefill / decode group is named with the reason it is not
rendered there (its workers pair across GPU types behind an engine-specific router).
"""

from __future__ import annotations

from typing import Any

from ..plans import check
from ..plans.documents import FleetDocument
from ..plans.fleet import pool_serving_document, pool_workload
from ..plans.refs import PlanCheckError
from .deployment import ROUTERS, worker_header
from .engines import DEFAULT_PORTS, ENGINE_NAMES, SGLANG_BOOTSTRAP_PORT, Worker, serving_launch, trtllm_disagg_config
from .quoting import ExportError, comment_lines, heredoc
from .serving import TARGETS, export_serving, format_command, render_launch


def _buckets_text(doc: FleetDocument, pool: Any) -> str:
    return ", ".join(f"{doc.buckets[l.bucket].label} ({l.slices}/{doc.slice_factor})" for l in pool.loads)


def role_groups(doc: FleetDocument) -> list[list[int]]:
    """The prefill / decode pools in groups linked by shared buckets (connected components), each sorted, the
    groups in order of their first pool."""
    import networkx as nx

    graph = nx.Graph()
    graph.add_nodes_from(i for i, p in enumerate(doc.pools) if p.role != "aggregated")
    by_bucket: dict[int, list[int]] = {}
    for i in graph.nodes:
        for load in doc.pools[i].loads:
            by_bucket.setdefault(load.bucket, []).append(i)
    for pools in by_bucket.values():
        nx.add_path(graph, pools)
    return sorted((sorted(c) for c in nx.connected_components(graph)), key=lambda g: g[0])


def role_worker(doc: FleetDocument, index: int) -> Worker:
    """The :class:`~planner.export.engines.Worker` of a prefill or decode pool (``index``)."""
    pool = doc.pools[index]
    w = pool_workload(doc, index)
    return Worker(model=w.model, model_name=doc.model.name, model_id=doc.model.hf_id or doc.model.name,
                  has_hf_id=bool(doc.model.hf_id), gpu=pool.system.name, plan=pool.plan, concurrency=w.batch,
                  max_model_len=pool.max_model_len, isl=w.isl, osl=w.osl, role=pool.role,  # type: ignore[arg-type]
                  workers=pool.replicas)


def _group_text(doc: FleetDocument, group: list[int], number: int, target: str) -> str:
    """One prefill / decode group: its router table, one command per pool, and TensorRT-LLM's frontend."""
    pools = doc.pools
    roles = {r: [i for i in group if pools[i].role == r] for r in ("prefill", "decode")}
    if not roles["prefill"] or not roles["decode"]:
        missing = "decode" if roles["prefill"] else "prefill"
        raise ExportError(f"fleet plan: pools {', '.join(map(str, group))} take buckets that no {missing} pool "
                          f"takes; a disaggregated bucket needs both")
    routes: dict[int, dict[str, list[str]]] = {}
    for i in group:
        for load in pools[i].loads:
            routes.setdefault(load.bucket, {"prefill": [], "decode": []})[pools[i].role].append(
                f"pool {i} ({load.slices}/{doc.slice_factor})")
    types = sorted({pools[i].system.name for i in group})
    head = [f"disaggregated group {number}: {len(roles['prefill'])} prefill pool(s) and {len(roles['decode'])} "
            f"decode pool(s) on {', '.join(types)}",
            f"router: {ROUTERS[target]}; each bucket's requests are prefilled and decoded by these pools:"]
    head += [f"  {doc.buckets[b].label}: prefill on {', '.join(r['prefill'])}; decode on {', '.join(r['decode'])}"
             for b, r in sorted(routes.items())]
    head.append("a router that balances over all of a group's servers mixes the buckets (planner mix --verify "
                "--router least-outstanding simulates that); the capacities hold as planned with the split above")
    if len(types) > 1:
        head.append("prefill and decode run on different GPU types: the KV cache moves between them over the "
                    "network (the fleet's capacities allow for that transfer); both sides keep the same KV "
                    f"precision ({pools[group[0]].plan.precision}, the fleet's)")
    out = ["\n".join(comment_lines(head))]
    base = DEFAULT_PORTS[target]
    urls: dict[str, list[str]] = {"prefill": [], "decode": []}
    for i in group:
        pool = pools[i]
        w = role_worker(doc, i)
        port = base + 1 + i  # distinct per pool: a pool's workers may share hosts with another pool's
        launch = serving_launch(target, w, port=port, config_dir=f"pool{i}-")
        urls[pool.role] += [f"<pool {i} {pool.role} host {k}>:{port}" for k in range(1, pool.replicas + 1)]
        header = [f"pool {i}: {pool.replicas} x {pool.role} worker(s) on {pool.system.name} (tp {pool.plan.tp} dp "
                  f"{pool.plan.dp}, {pool.plan.precision}); it takes {_buckets_text(doc, pool)}",
                  f"each worker sized for ISL {w.isl}, OSL {w.osl} and {w.concurrency} requests at once (the 99th "
                  f"percentile in flight at its load)"]
        text = render_launch(launch, [*worker_header(target, w, []), *header])
        out.append(f"# ===== pool {i}: {pool.role} =====\n" + text.rstrip("\n"))
    if target == "sglang":
        args = ["--pd-disaggregation"]
        for url in urls["prefill"]:
            args += ["--prefill", f"http://{url}", str(SGLANG_BOOTSTRAP_PORT)]
        for url in urls["decode"]:
            args += ["--decode", f"http://{url}"]
        out.append(f"# ===== the SGLang router of group {number} (PD mode; one --prefill / --decode per server) =====\n"
                   + format_command(["python3", "-m", "sglang_router.launch_router", *args, "--host", "0.0.0.0",
                                     "--port", str(DEFAULT_PORTS["sglang"])]))
    if target == "trtllm":
        cfg = trtllm_disagg_config(urls["prefill"], urls["decode"])
        out.append("# ===== disaggregated frontend of group "
                   f"{number} =====\n# one url per {ENGINE_NAMES[target]} server of the group (host:port; each pool's "
                   f"replicas listed)\n"
                   + heredoc(f"group{number}-disagg-config.yaml", cfg)
                   + f"\ntrtllm-serve disaggregated --config_file group{number}-disagg-config.yaml")
    return "\n\n".join(out) + "\n"


def export_fleet(doc: FleetDocument | dict[str, Any], target: str, *, image: str | None = None,
                 where: str = "fleet plan") -> str:
    """The text of every pool of the fleet plan ``doc`` for ``target`` (vllm, sglang, trtllm; k8s: the
    aggregated pools)."""
    if target not in TARGETS:
        raise ExportError(f"unknown export target {target!r}; choose from {', '.join(TARGETS)}")
    if image is not None and target != "k8s":
        raise ExportError(f"--image is for the k8s target; {target} prints commands without a container")
    typed = check(doc, where=where)
    if not isinstance(typed, FleetDocument):
        raise ExportError(f"{where}: this exports fleet plans; this is a {typed.schema_} document")
    parts = [f"fleet plan: {typed.model.name}, {typed.rate_rps:.4g} requests/s, ${typed.cost_per_hour_usd:,.2f} per "
             f"hour, {len(typed.pools)} pool(s)"]
    out = []
    for i, pool in enumerate(typed.pools):
        if pool.role != "aggregated":
            continue
        head = [f"pool {i}: {pool.replicas} x aggregated worker(s) on {pool.system.name} "
                f"(tp {pool.plan.tp} dp {pool.plan.dp}, {pool.plan.precision}); route here: "
                f"{_buckets_text(typed, pool)}"]
        try:
            sdoc = pool_serving_document(typed, i)
        except PlanCheckError as exc:
            parts.append(f"pool {i} not rendered: {exc}")
            continue
        body = export_serving(sdoc.model_dump(mode="json", by_alias=True), target, image=image,
                              where=f"{where} pool {i}")
        out.append("\n".join(comment_lines(head)) + "\n" + body)
    for number, group in enumerate(role_groups(typed), start=1):
        if target == "k8s":
            parts.append(f"pools {', '.join(map(str, group))} (prefill / decode) not rendered as manifests: their "
                         f"workers pair across GPU types behind an engine's router; export them to "
                         f"vllm, sglang or trtllm instead")
            continue
        out.append(_group_text(typed, group, number, target))
    if not out:
        raise ExportError(f"{where}: nothing to render ({'; '.join(parts[1:])})")
    return "\n".join(comment_lines(parts)) + "\n\n" + "\n".join(out)


__all__ = ["export_fleet", "role_groups", "role_worker"]
