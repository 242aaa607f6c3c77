"""Serving exporters: a serving plan document as engine launch commands or Kubernetes manifests.

:func:`export_serving` passes a :class:`~planner.plans.documents.ServingDocument` (or its JSON object) through
:func:`planner.plans.check` and dispatches on the target:

* ``vllm`` / ``sglang`` / ``trtllm`` - shell text: the command of one aggregated worker (its header naming the
  replicas to run), or the prefill then the decode worker of a disaggregated deployment (TensorRT-LLM: and its
  ``trtllm-serve disaggregated`` frontend with its config). The engine flags are :mod:`.engines`'.
* ``k8s`` - Deployments + Services (multi-document YAML) for the document's engine (:mod:`.k8s`).

:func:`vllm_command`, :func:`sglang_command` and :func:`trtllm_command` render one worker of a pool.
Disaggregated serving needs a router in front (named in the output's comments): vLLM's prefill / decode proxy
(the NixlConnector moves the KV cache), the SGLang router in PD mode, or TensorRT-LLM's disaggregated frontend.

Quoting (:mod:`.quoting`): every argument is one shell word (``shlex.quote``), files are written by quoted
heredocs, names in comments are shown with their escapes, so a name from a user's file cannot run anything.
"""

from __future__ import annotations

from typing import Any

from ..plans import check
from ..plans.documents import ServingDocument, ServingPool
from .deployment import disagg_summary, pool_prediction, pools_by_role, role_launches, role_predictions, worker_header
from .engines import ENGINES, Launch, serving_launch, trtllm_disagg_config, worker
from .k8s import k8s_manifest
from .quoting import ExportError, comment_lines, heredoc, shell_word

TARGETS = ("vllm", "sglang", "trtllm", "k8s")

# --------------------------------------------------------------------------------------------------
# text
# --------------------------------------------------------------------------------------------------

def format_command(tokens: list[str]) -> str:
    """One flag (with its value) per continuation line, every token one shell word."""
    lines: list[list[str]] = [[]]
    for t in tokens:
        if t.startswith("--") and lines[-1]:
            lines.append([])
        lines[-1].append(shell_word(t, "argument"))
    return " \\\n  ".join(" ".join(line) for line in lines)


def render_launch(launch: Launch, header: list[str]) -> str:
    """Comment lines (header, notes), the heredocs writing the launch's files, then the command."""
    out = comment_lines(header) + comment_lines(launch.notes, "# note: ")
    out += [heredoc(name, text) for name, text in launch.files.items()]
    out.append(format_command(launch.program + launch.args))
    return "\n".join(out) + "\n"


def _worker_command(engine: str, doc: ServingDocument, pool: ServingPool | None, memory_fraction: float | None,
                    port: int | None) -> str:
    pool = doc.pools[0] if pool is None else pool
    w = worker(doc, pool)
    launch = serving_launch(engine, w, memory_fraction, port=port)
    return render_launch(launch, worker_header(engine, w, [pool_prediction(doc, pool)]))


def vllm_command(doc: ServingDocument, pool: ServingPool | None = None, *, memory_fraction: float | None = None,
                 port: int | None = None) -> str:
    """A ``vllm serve`` command for one worker of ``pool`` (default the first; ``memory_fraction`` defaults to
    the planner's vLLM assumption, 0.9; a prefill / decode pool gives a disaggregated worker)."""
    return _worker_command("vllm", doc, pool, memory_fraction, port)


def sglang_command(doc: ServingDocument, pool: ServingPool | None = None, *, memory_fraction: float | None = None,
                   port: int | None = None) -> str:
    """A ``python3 -m sglang.launch_server`` command (as :func:`vllm_command`; memory fraction default 0.88)."""
    return _worker_command("sglang", doc, pool, memory_fraction, port)


def trtllm_command(doc: ServingDocument, pool: ServingPool | None = None, *, memory_fraction: float | None = None,
                   port: int | None = None) -> str:
    """A ``trtllm-serve`` command with its ``--extra_llm_api_options`` YAML written by a heredoc first."""
    return _worker_command("trtllm", doc, pool, memory_fraction, port)


COMMANDS = {"vllm": vllm_command, "sglang": sglang_command, "trtllm": trtllm_command}


# --------------------------------------------------------------------------------------------------
# aggregated and disaggregated deployments
# --------------------------------------------------------------------------------------------------

def aggregated_commands(doc: ServingDocument, engine: str) -> str:
    """The command of one aggregated worker, its header naming the replicas to run."""
    pool = pools_by_role(doc)["aggregated"]
    w = worker(doc, pool)
    launch = serving_launch(engine, w)
    cost = doc.prediction.cost_per_million_tokens_usd
    replicas = (f"deploy {pool.workers} replica(s) of this worker ({pool.gpus} GPUs in all) behind a load balancer"
                + (f"; ${cost:.3f} per million output tokens" if cost is not None else ""))
    return render_launch(launch, worker_header(engine, w, [pool_prediction(doc, pool), replicas]))


def disaggregated_commands(doc: ServingDocument, engine: str) -> str:
    """The prefill and the decode worker commands one after the other (TensorRT-LLM: and its frontend)."""
    pools = pools_by_role(doc)
    launches = role_launches(doc, engine, "", same_port=False)
    out = comment_lines(disagg_summary(doc, engine))
    for role, launch in launches.items():
        pool = pools[role]
        text = render_launch(launch, worker_header(engine, worker(doc, pool), role_predictions(doc, pool)))
        out += ["", f"# ===== {role} worker =====", text.rstrip("\n")]
    if engine == "trtllm":
        cfg = trtllm_disagg_config([f"localhost:{launches['prefill'].port}"], [f"localhost:{launches['decode'].port}"])
        out += ["", "# ===== disaggregated frontend =====",
                "# list every prefill (context) and decode (generation) server in the urls, host:port each",
                heredoc("disagg-config.yaml", cfg), "trtllm-serve disaggregated --config_file disagg-config.yaml"]
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------------------------------
# dispatch
# --------------------------------------------------------------------------------------------------

def export_serving(doc: ServingDocument | dict[str, Any], target: str, *, image: str | None = None,
                   where: str = "serving plan") -> str:
    """The text of the serving plan ``doc`` (the document or its JSON object) for ``target``, after
    :func:`planner.plans.check` has passed it (a refusal is one line starting with ``where``): an engine command
    ("vllm", "sglang", "trtllm"; a disaggregated plan prints the prefill and the decode command one after the
    other) or Kubernetes YAML ("k8s", for the document's engine; ``image`` replaces the engine's default
    container image). The renderers below (:func:`aggregated_commands`, :func:`vllm_command`, ...,
    :func:`~planner.export.k8s.k8s_manifest`) do not check."""
    if target not in TARGETS:
        raise ExportError(f"unknown export target {target!r}; choose from {', '.join(TARGETS)}")
    typed = check(doc, where=where)
    if not isinstance(typed, ServingDocument):
        raise ExportError(f"{where}: {target} exports serving plans; this is a {typed.schema_} document")
    doc = typed
    if target == "k8s":
        return k8s_manifest(doc, image=image)
    if image is not None:
        raise ExportError(f"--image is for the k8s target; {target} prints a command without a container")
    if doc.mode == "aggregated":
        return aggregated_commands(doc, target)
    return disaggregated_commands(doc, target)


__all__ = ["COMMANDS", "ENGINES", "TARGETS", "aggregated_commands", "disaggregated_commands", "export_serving",
           "format_command", "render_launch", "sglang_command", "trtllm_command", "vllm_command"]
