"""Kubernetes manifests for a serving plan document: Deployments, Services and ConfigMaps (multi-document YAML).

Aggregated: one Deployment of ``workers`` replicas and a Service spreading requests over them. Disaggregated:
a Deployment and a headless Service per pool (the router reaches each pod directly: KV hand-offs are per pod),
ConfigMaps for TensorRT-LLM's option files and its disaggregated frontend config. ``nvidia.com/gpu`` is the GPUs
of one worker; a worker larger than a node gets a note (run it as a multi-node group, e.g. a LeaderWorkerSet).

Names: object names and the ``app.kubernetes.io/name`` label are the model name reduced to ``[a-z0-9-]``
(:func:`~planner.export.quoting.slug`); every other string is a YAML scalar written by the safe dumper, and
comment lines show control characters as escapes.
"""

from __future__ import annotations

import math
from typing import Any

from ..plans.documents import ServingDocument
from ..plans.refs import system_from_spec
from .deployment import disagg_summary, pool_prediction, pools_by_role, role_launches, role_predictions
from .engines import (
    DEFAULT_PORTS, ENGINE_NAMES, ENGINES, Launch, plan_text, serving_launch, trtllm_disagg_config, worker,
)
from .quoting import ExportError, comment_lines, slug, yaml_text

#: container images used when none is given (pin a release tag in production)
DEFAULT_IMAGES = {"vllm": "vllm/vllm-openai:latest", "sglang": "lmsysorg/sglang:latest",
                  "trtllm": "nvcr.io/nvidia/tensorrt-llm/release:latest"}
#: where the manifests mount the TensorRT-LLM YAML files
K8S_CONFIG_DIR = "/etc/planner/"

Docs = list[tuple[list[str], dict[str, Any]]]


def _dump(docs: Docs, header: list[str]) -> str:
    out = comment_lines(header)
    for comments, doc in docs:
        out.append("---")
        out += comment_lines(comments)
        out.append(yaml_text(doc).rstrip("\n"))
    return "\n".join(out) + "\n"


def _workload(name: str, component: str, model_label: str, launch: Launch, replicas: int, gpus: int, image: str,
              annotations: dict[str, str], headless: bool) -> Docs:
    """(ConfigMap for the launch's files,) Deployment and Service of one pool."""
    labels = {"app.kubernetes.io/name": model_label, "app.kubernetes.io/component": component,
              "app.kubernetes.io/managed-by": "planner"}
    ports = [{"name": "http", "containerPort": launch.port}]
    ports += [{"name": k, "containerPort": v} for k, v in launch.extra_ports.items()]
    mounts: list[dict[str, Any]] = [{"name": "dshm", "mountPath": "/dev/shm"}]
    volumes: list[dict[str, Any]] = [{"name": "dshm", "emptyDir": {"medium": "Memory"}}]
    docs: Docs = []
    if launch.files:
        cm = f"{name}-config"
        data = {k.rsplit("/", 1)[-1]: v for k, v in launch.files.items()}
        docs.append(([f"{ENGINE_NAMES[launch.engine]} options of the {component} pods"],
                     {"apiVersion": "v1", "kind": "ConfigMap",
                      "metadata": {"name": cm, "labels": labels}, "data": data}))
        mounts.append({"name": "planner-config", "mountPath": K8S_CONFIG_DIR.rstrip("/"), "readOnly": True})
        volumes.append({"name": "planner-config", "configMap": {"name": cm}})
    container = {
        "name": launch.engine, "image": image, "command": launch.program, "args": launch.args, "ports": ports,
        "resources": {"limits": {"nvidia.com/gpu": gpus}},
        "readinessProbe": {"httpGet": {"path": "/health", "port": "http"}, "initialDelaySeconds": 60,
                           "periodSeconds": 10},
        "volumeMounts": mounts,
    }
    deployment = {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "labels": labels, "annotations": annotations},
        "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                 "template": {"metadata": {"labels": labels, "annotations": annotations},
                              "spec": {"containers": [container], "volumes": volumes}}},
    }
    comments = [f"{component}: {replicas} pod(s) of {gpus} GPU(s), {ENGINE_NAMES[launch.engine]}"]
    comments += [f"note: {n}" for n in launch.notes]
    docs.append((comments, deployment))
    service: dict[str, Any] = {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "labels": labels},
        "spec": {"selector": labels,
                 "ports": [{"name": p["name"], "port": p["containerPort"], "targetPort": p["name"]} for p in ports]},
    }
    svc_comments = [f"{component} endpoints"]
    if headless:
        service["spec"]["clusterIP"] = "None"
        svc_comments = [f"{component} endpoints, headless: the router reaches each pod directly (KV hand-offs "
                        "are per pod)"]
    docs.append((svc_comments, service))
    return docs


def _multi_node_note(doc: ServingDocument, gpus: int) -> list[str]:
    per_node = system_from_spec(doc.system.spec, "serving plan").node.accelerators_per_node
    if gpus > per_node:
        return [f"a worker of {gpus} GPUs spans {math.ceil(gpus / per_node)} nodes of {per_node}: one pod cannot "
                "hold it, run it as a multi-node group (e.g. a LeaderWorkerSet) instead of the Deployment below"]
    return []


def _annotations(plan: str, **predicted: float) -> dict[str, str]:
    out = {"planner/plan": plan}
    out.update({f"planner/predicted-{k.replace('_', '-')}": str(v) if isinstance(v, int) else f"{v:.2f}"
                for k, v in predicted.items()})
    return out


def _disaggregated(doc: ServingDocument, engine: str, image: str) -> str:
    pools = pools_by_role(doc)
    base = slug(doc.model.name)
    launches = role_launches(doc, engine, K8S_CONFIG_DIR, same_port=True)
    header = disagg_summary(doc, engine)
    header += ["gated checkpoints: add an HF_TOKEN env var from a Secret to the containers; mount a model cache "
               "volume to avoid downloading per pod"]
    for role in ("prefill", "decode"):
        header += [f"{role}: {n}" for n in _multi_node_note(doc, pools[role].gpus_per_worker)]
    docs: Docs = []
    for role in ("prefill", "decode"):
        pool = pools[role]
        w = worker(doc, pool)
        p = pool.predicted
        ann = (_annotations(plan_text(w.model, pool.plan), ttft_ms=p.ttft_ms) if role == "prefill" else
               _annotations(plan_text(w.model, pool.plan), tpot_ms=p.tpot_ms, batch=pool.concurrency,
                            output_tokens_per_s_per_gpu=p.tokens_per_s_per_gpu))
        docs += _workload(f"{base}-{role}", role, base, launches[role], pool.workers, pool.gpus_per_worker, image,
                          ann, headless=True)
        docs[-2][0].extend(role_predictions(doc, pool))
    if engine == "trtllm":
        port = DEFAULT_PORTS["trtllm"]
        cfg = trtllm_disagg_config([f"{base}-prefill:{port}"], [f"{base}-decode:{port}"], port)
        docs.append((["TensorRT-LLM disaggregated frontend config: run `trtllm-serve disaggregated --config_file "
                      f"{K8S_CONFIG_DIR}disagg-config.yaml` with this ConfigMap mounted at {K8S_CONFIG_DIR}",
                      "each Service is listed once (its pods resolve by DNS); list pods individually for "
                      "per-pod routing"],
                     {"apiVersion": "v1", "kind": "ConfigMap",
                      "metadata": {"name": f"{base}-disagg-config",
                                   "labels": {"app.kubernetes.io/name": base,
                                              "app.kubernetes.io/managed-by": "planner"}},
                      "data": {"disagg-config.yaml": cfg}}))
    return _dump(docs, header)


def _aggregated(doc: ServingDocument, engine: str, image: str) -> str:
    pool = pools_by_role(doc)["aggregated"]
    w = worker(doc, pool)
    base = slug(doc.model.name)
    launch = serving_launch(engine, w, config_dir=K8S_CONFIG_DIR)
    header = [f"planner: aggregated {ENGINE_NAMES[engine]} serving of {w.model_name} ({w.model_id}) on "
              f"{pool.gpus} x {w.gpu}: {pool.workers} replica(s)",
              f"plan: {plan_text(w.model, pool.plan)}", pool_prediction(doc, pool),
              "the Service spreads requests over the replicas; gated checkpoints: add an HF_TOKEN env var from a "
              "Secret", *_multi_node_note(doc, pool.gpus_per_worker)]
    p = pool.predicted
    ann = _annotations(plan_text(w.model, pool.plan), ttft_ms=p.ttft_ms, tpot_ms=p.tpot_ms,
                       concurrency=pool.concurrency, output_tokens_per_s_per_gpu=p.tokens_per_s_per_gpu)
    docs = _workload(base, "worker", base, launch, pool.workers, pool.gpus_per_worker, image, ann, headless=False)
    return _dump(docs, header)


def k8s_manifest(doc: ServingDocument, *, engine: str | None = None, image: str | None = None) -> str:
    """Kubernetes YAML for the document's deployment, for ``engine`` (default the document's) with ``image``
    (default :data:`DEFAULT_IMAGES` of the engine)."""
    engine = doc.engine.name if engine is None else engine
    if engine not in ENGINES:
        raise ExportError(f"unknown serving engine {engine!r}; choose from {', '.join(ENGINES)}")
    image = image or DEFAULT_IMAGES[engine]
    if doc.mode == "aggregated":
        return _aggregated(doc, engine, image)
    return _disaggregated(doc, engine, image)


__all__ = ["DEFAULT_IMAGES", "K8S_CONFIG_DIR", "k8s_manifest"]
