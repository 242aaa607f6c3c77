"""A DeepSpeed config (JSON) and the Megatron-DeepSpeed arguments for a plan document.

Config keys come from DeepSpeed's configuration reference, ``docs/_pages/config-json.md``
(github.com/deepspeedai/DeepSpeed at edaa722, 2026-08-22, version 0.19.6; published at
https://www.deepspeed.ai/docs/config-json/). The config has no key for tensor or pipeline parallelism
(pipelines are built in code with ``PipelineModule``, and the ``pipeline`` section is undocumented), so tp /
pp / sp travel as Megatron-DeepSpeed arguments (:func:`megatron_deepspeed_args`, names from
``megatron/arguments.py`` of github.com/deepspeedai/Megatron-DeepSpeed at 4efb479, 2025-07-16, plus
``--deepspeed`` / ``--deepspeed_config`` added by ``deepspeed.add_config_arguments``). As DeepSpeed
defines it, ``train_batch_size = train_micro_batch_size_per_gpu x gradient_accumulation_steps x`` the
data-parallel size.
"""

from __future__ import annotations

import json
from typing import Any

from ._common import as_dict, recomputed_layers_per_chunk, stage_chunks

#: Top-level and nested keys :func:`deepspeed_config` writes, as documented in DeepSpeed docs/_pages/config-json.md.
DEEPSPEED_KEYS: dict[str, frozenset[str]] = {
    "": frozenset({"train_batch_size", "train_micro_batch_size_per_gpu", "gradient_accumulation_steps",
                   "gradient_clipping", "zero_optimization", "bf16", "fp16", "activation_checkpointing",
                   "data_types", "communication_data_type", "steps_per_print", "wall_clock_breakdown"}),
    "zero_optimization": frozenset({"stage", "overlap_comm", "contiguous_gradients", "reduce_scatter",
                                    "reduce_bucket_size", "allgather_partitions", "allgather_bucket_size",
                                    "stage3_prefetch_bucket_size", "stage3_param_persistence_threshold",
                                    "stage3_max_live_parameters", "stage3_max_reuse_distance"}),
    "bf16": frozenset({"enabled"}),
    "fp16": frozenset({"enabled", "loss_scale", "initial_scale_power", "loss_scale_window", "hysteresis",
                       "min_loss_scale"}),
    "activation_checkpointing": frozenset({"partition_activations", "cpu_checkpointing",
                                           "contiguous_memory_optimization", "number_checkpoints",
                                           "synchronize_checkpoint_boundary", "profile"}),
    "data_types": frozenset({"grad_accum_dtype"}),
}

#: Flags :func:`megatron_deepspeed_args` may emit: deepspeedai/Megatron-DeepSpeed 4efb479 megatron/arguments.py
#: (``--deepspeed`` / ``--deepspeed_config`` from DeepSpeed's deepspeed/__init__.py ``_add_core_arguments``).
MEGATRON_DEEPSPEED_FLAGS: frozenset[str] = frozenset({
    "--tensor-model-parallel-size", "--pipeline-model-parallel-size", "--no-pipeline-parallel",
    "--moe-expert-parallel-size", "--num-experts", "--micro-batch-size", "--global-batch-size", "--seq-length",
    "--max-position-embeddings", "--num-layers", "--hidden-size", "--num-attention-heads", "--num-key-value-heads",
    "--sequence-parallel", "--zero-stage", "--recompute-granularity", "--checkpoint-activations",
    "--deepspeed-activation-checkpointing", "--bf16", "--fp16", "--use-flash-attn-v2",
    "--accumulate-allreduce-grads-in-fp32", "--deepspeed", "--deepspeed_config",
})

_BUCKET = 500_000_000  # elements; DeepSpeed's documented default (5e8) for reduce / allgather buckets


def deepspeed_config(doc: Any) -> dict[str, Any]:
    """The DeepSpeed config dict of a plan document."""
    doc = as_dict(doc)
    plan = doc["plan"]
    mbs, dp, gbs, zero = plan["micro_batch"], plan["dp"], plan["global_batch"], plan["zero"]
    zero_opt: dict[str, Any] = {"stage": zero, "overlap_comm": bool(plan["overlap_grad_reduce"]),
                                "contiguous_gradients": True, "reduce_scatter": True,
                                "reduce_bucket_size": _BUCKET, "allgather_partitions": True,
                                "allgather_bucket_size": _BUCKET}
    if zero == 3:
        zero_opt.update(stage3_prefetch_bucket_size=_BUCKET, stage3_param_persistence_threshold=100_000)
    cfg: dict[str, Any] = {
        "train_batch_size": gbs,
        "train_micro_batch_size_per_gpu": mbs,
        "gradient_accumulation_steps": gbs // (mbs * dp),
        "gradient_clipping": 1.0,
        "zero_optimization": zero_opt,
        "bf16": {"enabled": plan["dtype"] != "fp16"},
        "fp16": {"enabled": plan["dtype"] == "fp16"},
        "data_types": {"grad_accum_dtype": "fp32" if plan["grad_reduce_in_fp32"] else
                       ("fp16" if plan["dtype"] == "fp16" else "bf16")},
        "communication_data_type": "fp32" if plan["grad_reduce_in_fp32"] else
                                   ("fp16" if plan["dtype"] == "fp16" else "bf16"),
        "steps_per_print": 10,
        "wall_clock_breakdown": False,
    }
    if plan["dtype"] == "fp16":
        cfg["fp16"].update(loss_scale=0, initial_scale_power=16, loss_scale_window=1000, hysteresis=2, min_loss_scale=1)
    if plan["recompute"] == "full":
        n = recomputed_layers_per_chunk(doc)
        per_stage = max(sum(c) for c in stage_chunks(doc)) if n is None else \
            max(sum(min(n, x) for x in cs) for cs in stage_chunks(doc))
        cfg["activation_checkpointing"] = {
            "partition_activations": plan["tp"] > 1, "cpu_checkpointing": False,
            "contiguous_memory_optimization": False, "number_checkpoints": per_stage,
            "synchronize_checkpoint_boundary": False, "profile": False}
    return cfg


def deepspeed_json(doc: Any) -> str:
    """:func:`deepspeed_config` as JSON text (JSON has no comments: the planner summary is not in it)."""
    return json.dumps(deepspeed_config(doc), indent=2) + "\n"


def megatron_deepspeed_notes(doc: Any) -> list[str]:
    """What the Megatron-DeepSpeed arguments cannot express."""
    doc = as_dict(doc)
    plan = doc["plan"]
    notes: list[str] = []
    if plan["vpp"] > 1:
        notes.append(f"vpp {plan['vpp']}: DeepSpeed's pipeline engine has no interleaved schedule (runs vpp 1)")
    if plan.get("layers_per_chunk") is not None or len({sum(c) for c in stage_chunks(doc)}) > 1:
        notes.append("uneven layer split: DeepSpeed PipelineModule partitions layers itself (partition_method)")
    if plan["pp"] > 1 and plan["zero"] >= 2:
        notes.append(f"zero {plan['zero']} with pp {plan['pp']}: DeepSpeed's pipeline engine accepts ZeRO 0/1 only"
                     " (deepspeed/runtime/pipe/engine.py)")
    if plan["cp"] > 1:
        notes.append(f"cp {plan['cp']}: Megatron-DeepSpeed has no ring context parallelism"
                     " (--ds-sequence-parallel-size is Ulysses)")
    if plan["dtype"] == "fp8":
        notes.append("fp8: run as bf16 (Megatron-DeepSpeed fp8 needs Transformer Engine layers)")
    if plan["recompute"] == "full" and plan.get("recompute_per_stage") is not None:
        notes.append("recompute_per_stage: Megatron-DeepSpeed with DeepSpeed checkpointing recomputes every layer")
    return notes


def megatron_deepspeed_args(doc: Any, config_path: str = "ds_config.json") -> list[str]:
    """Megatron-DeepSpeed ``pretrain_gpt.py`` arguments carrying tp / pp / sp / model sizes next to the config."""
    doc = as_dict(doc)
    m, plan = doc["model"], doc["plan"]
    a = ["--tensor-model-parallel-size", str(plan["tp"]), "--pipeline-model-parallel-size", str(plan["pp"])]
    if plan["pp"] == 1:
        a.append("--no-pipeline-parallel")
    if m["is_moe"]:
        a += ["--num-experts", str(m["num_experts"]), "--moe-expert-parallel-size", str(plan["ep"])]
    a += ["--micro-batch-size", str(plan["micro_batch"]), "--global-batch-size", str(plan["global_batch"]),
          "--seq-length", str(plan["seq_len"]), "--max-position-embeddings", str(m["max_seq_len"]),
          "--num-layers", str(m["num_layers"]), "--hidden-size", str(m["hidden_size"]),
          "--num-attention-heads", str(m["num_heads"])]
    if m["num_kv_heads"] < m["num_heads"]:
        a += ["--num-key-value-heads", str(m["num_kv_heads"])]
    if plan["sp"] and plan["tp"] > 1:
        a.append("--sequence-parallel")
    a += ["--zero-stage", str(plan["zero"])]
    if plan["recompute"] == "selective":
        a += ["--recompute-granularity", "selective"]
    elif plan["recompute"] == "full":
        a += ["--checkpoint-activations", "--deepspeed-activation-checkpointing"]
    a.append("--fp16" if plan["dtype"] == "fp16" else "--bf16")
    if plan["attention"] == "flash":
        a.append("--use-flash-attn-v2")
    if plan["grad_reduce_in_fp32"]:
        a.append("--accumulate-allreduce-grads-in-fp32")
    a += ["--deepspeed", "--deepspeed_config", config_path]
    return a


__all__ = ["DEEPSPEED_KEYS", "MEGATRON_DEEPSPEED_FLAGS", "deepspeed_config", "deepspeed_json",
           "megatron_deepspeed_args", "megatron_deepspeed_notes"]
