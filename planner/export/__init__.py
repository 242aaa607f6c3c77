"""Exporters: plan documents (:mod:`planner.plans`) as launcher input. They read plan documents only.

``planner.export`` imports nothing of the planner but :mod:`planner.plans`, :mod:`planner.specs` and the error
types; a document reaches it after :func:`planner.plans.check` (the CLI passes every document it reads through
the gate). Every string from a document is quoted for the format it lands in (:mod:`.quoting`).

Training (the training plan document, its JSON dict or the pydantic ``TrainingDocument``; :func:`export`):

* ``megatron``   - a Megatron-LM ``pretrain_gpt.py`` command (:mod:`.megatron`)
* ``torchtitan`` - a torchtitan v0.2.2 job config TOML (:mod:`.torchtitan`)
* ``deepspeed``  - a DeepSpeed config JSON (:mod:`.deepspeed`)
* ``slurm``      - an sbatch script running the Megatron-LM command (:mod:`.slurm`; other launchers via
  :func:`~planner.export.slurm.slurm_script`)

Serving (a ``ServingDocument``; :func:`planner.export.serving.export_serving`): vLLM / SGLang / TensorRT-LLM
commands (:mod:`.engines` holds the flags, :mod:`.serving` the shell text and the disaggregated wiring) and
Kubernetes manifests (:mod:`.k8s`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..plans import TrainingDocument, check
from .deepspeed import deepspeed_config, deepspeed_json, megatron_deepspeed_args
from .megatron import megatron_args, megatron_command
from .quoting import ExportError
from .slurm import slurm_script
from .torchtitan import torchtitan_toml

EXPORTERS: dict[str, Callable[[Any], str]] = {
    "megatron": megatron_command,
    "torchtitan": torchtitan_toml,
    "deepspeed": deepspeed_json,
    "slurm": slurm_script,
}


def export(doc: Any, target: str, *, where: str = "plan") -> str:
    """The text of the training plan document ``doc`` (its JSON dict or the pydantic document) exported for
    ``target`` (one of :data:`EXPORTERS`), after :func:`planner.plans.check` has passed it (a refusal is one
    :class:`~planner.errors.PlannerError` line starting with ``where``). The per-launcher functions
    (:func:`megatron_command`, ...) render a document without checking it."""
    try:
        fn = EXPORTERS[target]
    except KeyError:
        raise ExportError(f"unknown export target {target!r}; choose from {', '.join(EXPORTERS)}") from None
    typed = check(doc, where=where)
    if not isinstance(typed, TrainingDocument):
        raise ExportError(f"{where}: {target} exports training plans; this is a {typed.schema_} document")
    return fn(typed.to_json())


__all__ = ["EXPORTERS", "ExportError", "deepspeed_config", "deepspeed_json", "export", "megatron_args", "megatron_command",
           "megatron_deepspeed_args", "slurm_script", "torchtitan_toml"]
