"""How a serving document's pools become engine workers: the pools by role, the ports, the text lines that
describe the deployment (shared by the shell exporter :mod:`.serving` and the manifests of :mod:`.k8s`).

Lines returned here are plain text; the renderers make them comments (:func:`~planner.export.quoting.comment`).
"""

from __future__ import annotations

from ..plans.documents import ServingDocument, ServingPool
from .engines import DEFAULT_PORTS, ENGINE_NAMES, Launch, Worker, plan_text, serving_launch, worker
from .quoting import ExportError

ROUTERS = {
    "vllm": ("a prefill/decode proxy in front of both pools (vLLM's disaggregated-serving example proxy, "
             "llm-d or NVIDIA Dynamo): it sends each request to a prefill worker, then to a decode worker "
             "that pulls the KV cache over NIXL"),
    "sglang": ("the SGLang router in PD mode: python3 -m sglang_router.launch_router --pd-disaggregation "
               "--prefill http://<prefill>:30000 8998 --decode http://<decode>:30000 (or its Kubernetes "
               "service discovery with prefill / decode pod selectors)"),
    "trtllm": ("the TensorRT-LLM disaggregated frontend, trtllm-serve disaggregated --config_file "
               "<disagg config> listing the context (prefill) and generation (decode) servers"),
}



def pool_prediction(doc: ServingDocument, pool: ServingPool) -> str:
    """The predicted TTFT / TPOT / throughput of one worker of ``pool`` at its concurrency."""
    p = pool.predicted
    per_user = 1e3 / p.tpot_ms if p.tpot_ms > 0 else 0.0
    return (f"predicted at concurrency {pool.concurrency}, ISL {doc.traffic.isl}, OSL {doc.traffic.osl}: TTFT "
            f"{p.ttft_ms:.1f} ms, TPOT {p.tpot_ms:.2f} ms, {p.tokens_per_s_per_gpu:.1f} output tok/s/GPU, "
            f"{per_user:.1f} tok/s/user ({pool.plan.backend} engine constants)")


def worker_header(engine: str, w: Worker, predicted: list[str]) -> list[str]:
    """The comment lines above one worker's command (plain text; :func:`render_launch` makes them comments)."""
    what = f"{w.role} worker" if w.role else "worker"
    return [f"planner: {ENGINE_NAMES[engine]} {what} for {w.model_name} ({w.model_id}) on {w.gpu}",
            f"plan: {plan_text(w.model, w.plan)}", *predicted]


def pools_by_role(doc: ServingDocument) -> dict[str, ServingPool]:
    """The document's pools by role (``aggregated``, or ``prefill`` and ``decode``)."""
    pools = {p.role: p for p in doc.pools}
    need = {"aggregated"} if doc.mode == "aggregated" else {"prefill", "decode"}
    if set(pools) != need or len(doc.pools) != len(need):
        raise ExportError(f"a {doc.mode} serving plan needs pools {', '.join(sorted(need))}; "
                          f"it has {', '.join(p.role for p in doc.pools)}")
    return pools


def disagg_summary(doc: ServingDocument, engine: str) -> list[str]:
    """What the whole disaggregated deployment is and what it is predicted to do (plain text lines)."""
    pools = pools_by_role(doc)
    pre, dec = pools["prefill"], pools["decode"]
    w = worker(doc, dec)
    pred = doc.prediction
    return [
        f"planner: disaggregated {ENGINE_NAMES[engine]} serving of {w.model_name} ({w.model_id}) on "
        f"{doc.gpus} x {w.gpu}: {pre.workers} prefill worker(s) + {dec.workers} decode worker(s)",
        f"prefill plan: {plan_text(w.model, pre.plan)}",
        f"decode plan: {plan_text(w.model, dec.plan)}",
        f"predicted at decode batch {dec.concurrency}, ISL {doc.traffic.isl}, OSL {doc.traffic.osl}: TTFT "
        f"{pred.ttft_ms:.1f} ms, TPOT {pred.tpot_ms:.2f} ms, {pred.tokens_per_s_per_gpu:.1f} output tok/s/GPU, "
        f"{pred.tokens_per_s_per_user:.1f} tok/s/user ({dec.plan.backend} engine constants)",
        f"router: {ROUTERS[engine]}",
    ]


def role_predictions(doc: ServingDocument, pool: ServingPool) -> list[str]:
    """The one-line prediction under a prefill or decode worker's header."""
    p = pool.predicted
    if pool.role == "prefill":
        return [f"run {pool.workers} of these; predicted TTFT {p.ttft_ms:.1f} ms (prefill, KV transfer and "
                f"queueing), {p.requests_per_s:.2f} requests/s per worker"]
    return [f"run {pool.workers} of these; predicted TPOT {p.tpot_ms:.2f} ms at batch {pool.concurrency}, "
            f"{p.tokens_per_s_per_gpu:.1f} output tok/s/GPU of the decode pool"]


def role_launches(doc: ServingDocument, engine: str, config_dir: str, same_port: bool) -> dict[str, Launch]:
    """The prefill and decode :class:`Launch` (distinct ports unless ``same_port``: one host vs one pod each)."""
    pools = pools_by_role(doc)
    base = DEFAULT_PORTS[engine]
    ports = {"prefill": base if same_port else base + 1, "decode": base if same_port else base + 2}
    return {role: serving_launch(engine, worker(doc, pools[role]), port=ports[role], config_dir=config_dir)
            for role in ("prefill", "decode")}


__all__ = ["ROUTERS", "disagg_summary", "pool_prediction", "pools_by_role", "role_launches", "role_predictions",
           "worker_header"]
