"""A SLURM batch script launching a plan document with torchrun.

One task per node (``srun`` starts ``torchrun`` once per node), ``torchrun`` starts one process per GPU and
rendezvous over c10d at the first node of the allocation (sbatch / srun options from the SLURM manual,
https://slurm.schedmd.com/sbatch.html; torchrun options from https://pytorch.org/docs/stable/elastic/run.html).
The trainer arguments come from the other exporters: Megatron-LM (:mod:`.megatron`), torchtitan
(:mod:`.torchtitan`, its TOML written next to the script) or Megatron-DeepSpeed (:mod:`.deepspeed`, its
JSON config written next to the script).
"""

from __future__ import annotations

from typing import Any

from ._common import as_dict, header, note_lines
from .deepspeed import deepspeed_json, megatron_deepspeed_args, megatron_deepspeed_notes
from .megatron import format_args, megatron_args, megatron_notes
from .quoting import ExportError, heredoc, slug
from .torchtitan import torchtitan_toml

LAUNCHERS = ("megatron", "torchtitan", "deepspeed")


def slurm_script(doc: Any, launcher: str = "megatron") -> str:
    """An ``sbatch`` script running the plan with ``launcher`` ("megatron", "torchtitan" or "deepspeed").

    The job name is ``planner-`` and the model name reduced to ``[a-z0-9-]`` (sbatch reads ``#SBATCH`` lines
    itself, without shell quoting); files the launcher reads are written by quoted heredocs."""
    if launcher not in LAUNCHERS:
        raise ExportError(f"unknown launcher {launcher!r}; choose from {', '.join(LAUNCHERS)}")
    doc = as_dict(doc)
    s, plan, m = doc["system"], doc["plan"], doc["model"]
    gpus, per_node = int(s["num_gpus"]), int(s["gpus_per_node"])
    nodes = -(-gpus // per_node)
    nproc = gpus // nodes
    notes: list[str] = []
    if nproc * nodes != gpus:
        notes.append(f"{gpus} GPUs do not fill {nodes} nodes evenly: torchrun starts {nproc} per node")

    lines = ["#!/bin/bash", header(doc),
             f"#SBATCH --job-name=planner-{slug(str(m['name']))}",
             f"#SBATCH --nodes={nodes}",
             "#SBATCH --ntasks-per-node=1",
             f"#SBATCH --gpus-per-node={nproc}",
             "#SBATCH --exclusive"]
    body: list[str] = []
    if launcher == "megatron":
        notes += megatron_notes(doc)
        entry, args = "pretrain_gpt.py", megatron_args(doc)
        if plan["zero"] < 2:  # Megatron overlaps TP communication in order; Megatron-FSDP wants it unset
            body.append("export CUDA_DEVICE_MAX_CONNECTIONS=1")
    elif launcher == "torchtitan":
        body.append(heredoc("plan.toml", torchtitan_toml(doc)))
        entry, args = "-m torchtitan.train", ["--job.config_file", "plan.toml"]
    else:
        notes += megatron_deepspeed_notes(doc)
        body.append(heredoc("ds_config.json", deepspeed_json(doc)))
        entry, args = "pretrain_gpt.py", megatron_deepspeed_args(doc, "ds_config.json")
        body.append("export CUDA_DEVICE_MAX_CONNECTIONS=1")
    lines += note_lines(notes)
    lines += ["", "set -euo pipefail",
              'MASTER_ADDR=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)',
              "export MASTER_ADDR MASTER_PORT=29500"]
    lines += body
    lines.append(f'srun torchrun --nnodes "$SLURM_NNODES" --nproc-per-node {nproc} --rdzv-id "$SLURM_JOB_ID"'
                 f' --rdzv-backend c10d --rdzv-endpoint "$MASTER_ADDR:$MASTER_PORT" {entry} \\\n    '
                 + format_args(args))
    return "\n".join(lines) + "\n"


__all__ = ["LAUNCHERS", "slurm_script"]
