"""Exporters: a training plan document (:mod:`planner.plans.training`) as launcher input.

Each target maps the plan document dict to the text to write or print:

* ``megatron``   - a Megatron-LM ``pretrain_gpt.py`` command (:mod:`.megatron`)
* ``torchtitan`` - a torchtitan v0.2.2 job config TOML (:mod:`.torchtitan`)
* ``deepspeed``  - a DeepSpeed config JSON (:mod:`.deepspeed`)
* ``slurm``      - an sbatch script running the Megatron-LM command (:mod:`.slurm`; other launchers via
  :func:`~planner.export.slurm.slurm_script`)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .deepspeed import deepspeed_config, deepspeed_json, megatron_deepspeed_args
from .megatron import megatron_args, megatron_command
from .slurm import slurm_script
from .torchtitan import torchtitan_toml

EXPORTERS: dict[str, Callable[[dict[str, Any]], str]] = {
    "megatron": megatron_command,
    "torchtitan": torchtitan_toml,
    "deepspeed": deepspeed_json,
    "slurm": slurm_script,
}


def export(doc: dict[str, Any], target: str) -> str:
    """The text of ``doc`` exported for ``target`` (one of :data:`EXPORTERS`)."""
    try:
        fn = EXPORTERS[target]
    except KeyError:
        raise ValueError(f"unknown export target {target!r}; choose from {', '.join(EXPORTERS)}") from None
    return fn(doc)


__all__ = ["EXPORTERS", "deepspeed_config", "deepspeed_json", "export", "megatron_args", "megatron_command",
           "megatron_deepspeed_args", "slurm_script", "torchtitan_toml"]
