"""A torchtitan job config (TOML) for a plan document.

Section and key names come from torchtitan v0.2.2 (github.com/pytorch/torchtitan, tag v0.2.2, 2026-02-20),
``torchtitan/config/job_config.py`` (the ``JobConfig`` dataclasses; ``[a.b]`` = field ``b`` of ``a``), loaded
with ``--job.config_file`` (``torchtitan/config/manager.py``, ``run_train.sh``). v0.2.2 is the last release
with TOML job configs: commit 9810191 (2026-02-23, "Config System Refactor: TOML to Python Dataclass
Registry") replaced them with Python config registries.

Mapping (semantics from the same file and ``torchtitan/distributed/parallel_dims.py``,
``torchtitan/distributed/pipeline_parallel.py``, ``torchtitan/train.py`` at v0.2.2):

* ZeRO -> FSDP2 degrees. zero 0: ``data_parallel_replicate_degree = dp`` (DDP). zero 3:
  ``data_parallel_shard_degree = dp`` with ``fsdp_reshard_after_forward = "always"`` (weights re-gathered
  per micro-batch, as the planner's ZeRO-3 model). zero 1/2: ``data_parallel_shard_degree = dp`` with
  ``fsdp_reshard_after_forward = "never"``: weights stay gathered from forward to backward while gradients
  and optimizer states are sharded - FSDP's ZeRO-2 mode (Megatron-LM documents its
  ``--torch-fsdp2-no-reshard-after-forward`` as "FSDP ZeRO-2"). HSDP (replicate x shard) is not used for
  them: it shards the weights too (ZeRO-3 inside each replica group). FSDP2 has no ZeRO-1.
* Batches. torchtitan accumulates ``global_batch_size / (local_batch_size x dp)`` steps and, with pipeline
  parallelism, splits ``local_batch_size`` into micro-batches of ``pipeline_parallel_microbatch_size``. So
  pp = 1: ``local_batch_size = micro_batch``; pp > 1: ``local_batch_size = global_batch / dp`` (all
  micro-batches in one pipeline schedule, as Megatron).
* Pipeline chunks: ``module_fqns_per_model_part`` lists each chunk's modules (``tok_embeddings``,
  ``layers.<i>``, ``norm``, ``output``, the names of torchtitan's decoder models); the looped schedules put
  chunk ``c`` on rank ``c % pp`` like Megatron.
* Recompute: ``[activation_checkpoint] mode``; selective uses ``selective_ac_option = "op"`` (per-op SAC,
  the closest to Megatron's attention-core recompute; the default ``"2"`` means every 2nd layer fully).
* fp8: ``[model] converters = ["quantize.linear.float8"]``, ``[quantize.linear.float8]`` and
  ``[compile] enable`` as in torchtitan's ``docs/float8.md`` (v0.2.2).
"""

from __future__ import annotations

from typing import Any

from ._common import as_dict, chunk_sizes, header, note_lines
from .quoting import toml_string

#: Keys this exporter writes, per section, as documented in torchtitan v0.2.2 torchtitan/config/job_config.py.
TORCHTITAN_KEYS: dict[str, frozenset[str]] = {
    "job": frozenset({"description"}),
    "model": frozenset({"name", "flavor", "hf_assets_path", "converters"}),
    "training": frozenset({"local_batch_size", "global_batch_size", "seq_len", "mixed_precision_param",
                           "mixed_precision_reduce"}),
    "parallelism": frozenset({
        "data_parallel_replicate_degree", "data_parallel_shard_degree", "fsdp_reshard_after_forward",
        "tensor_parallel_degree", "pipeline_parallel_degree", "pipeline_parallel_schedule",
        "pipeline_parallel_microbatch_size", "module_fqns_per_model_part", "context_parallel_degree",
        "expert_parallel_degree", "expert_tensor_parallel_degree"}),
    "activation_checkpoint": frozenset({"mode", "selective_ac_option"}),
    "compile": frozenset({"enable"}),
    "quantize.linear.float8": frozenset({"enable_fsdp_float8_all_gather", "precompute_float8_dynamic_scale_for_fsdp"}),
}

#: planner catalog name -> (torchtitan ``model.name``, ``model.flavor``) for the models torchtitan v0.2.2 ships.
TORCHTITAN_MODELS: dict[str, tuple[str, str]] = {
    "llama-3.1-8b": ("llama3", "8B"), "llama-3.1-70b": ("llama3", "70B"), "llama-3.1-405b": ("llama3", "405B"),
    "qwen3-8b": ("qwen3", "8B"), "qwen3-32b": ("qwen3", "32B"), "qwen3-30b-a3b": ("qwen3", "30B-A3B"),
    "qwen3-235b-a22b": ("qwen3", "235B-A22B"), "deepseek-v3": ("deepseek_v3", "671B"),
    "llama-4-scout-17b-16e-instruct": ("llama4", "17bx16e"), "gpt-oss-20b": ("gpt_oss", "20b"),
    "gpt-oss-120b": ("gpt_oss", "120b"),
}


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return toml_string(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    raise TypeError(f"no TOML form for {type(v).__name__}")


def _toml(sections: dict[str, dict[str, Any]]) -> str:
    """Sections of ``key = value`` lines (section and key names are this module's constants: bare TOML keys)."""
    out = []
    for name, keys in sections.items():
        out.append(f"[{name}]")
        out += [f"{k} = {_value(v)}" for k, v in keys.items()]
        out.append("")
    return "\n".join(out)


def _module_fqns(sizes: list[int]) -> list[list[str]]:
    parts, start = [], 0
    for i, n in enumerate(sizes):
        part = (["tok_embeddings"] if i == 0 else []) + [f"layers.{j}" for j in range(start, start + n)]
        if i == len(sizes) - 1:
            part += ["norm", "output"]
        parts.append(part)
        start += n
    return parts


def torchtitan_sections(doc: Any) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """The job config as ``{section: {key: value}}`` and the notes on what it cannot express."""
    doc = as_dict(doc)
    m, plan = doc["model"], doc["plan"]
    notes: list[str] = []
    tp, pp, vpp, cp, ep, dp, zero = (plan[k] for k in ("tp", "pp", "vpp", "cp", "ep", "dp", "zero"))

    name, flavor = TORCHTITAN_MODELS.get(m["name"], (m["name"], m["name"]))
    model: dict[str, Any] = {"name": name, "flavor": flavor}
    if m["name"] in TORCHTITAN_MODELS and m.get("hf_id"):
        model["hf_assets_path"] = "./assets/hf/" + m["hf_id"].split("/")[-1]
    else:
        notes.append(f"torchtitan v0.2.2 ships no model for {m['name']}: set [model] name / flavor to a registered one")

    if zero == 0:
        par: dict[str, Any] = {"data_parallel_replicate_degree": dp, "data_parallel_shard_degree": 1}
        if cp > 1:
            notes.append("torchtitan always FSDP-shards weights over the cp ranks (its fsdp mesh is dp_shard x cp)")
    else:
        par = {"data_parallel_replicate_degree": 1, "data_parallel_shard_degree": dp,
               "fsdp_reshard_after_forward": "always" if zero == 3 else "never"}
        if zero == 1:
            notes.append("FSDP2 has no ZeRO-1: zero 1 runs as ZeRO-2 (gradients sharded too; less memory than planned)")
    par.update(tensor_parallel_degree=tp, pipeline_parallel_degree=pp)
    if pp > 1:
        par.update(pipeline_parallel_schedule="Interleaved1F1B" if vpp > 1 else "1F1B",
                   pipeline_parallel_microbatch_size=plan["micro_batch"],
                   module_fqns_per_model_part=_module_fqns(chunk_sizes(doc)))
    elif vpp > 1:
        notes.append(f"vpp {vpp} ignored: torchtitan interleaves model chunks only with pipeline parallelism")
    par["context_parallel_degree"] = cp
    par["expert_parallel_degree"] = ep
    if ep > 1:
        etp = plan["expert_tp"]
        if etp in (1, tp):
            par["expert_tensor_parallel_degree"] = etp
        else:
            notes.append(f"expert tp {etp}: torchtitan supports only etp = 1 or etp = tp")
        shard = par["data_parallel_shard_degree"] * cp * tp
        if shard % (ep * etp):
            notes.append(f"ep {ep} x etp {etp} must divide dp_shard x cp x tp = {shard} in torchtitan")
    if tp > 1 and not plan["sp"]:
        notes.append("torchtitan's tensor parallelism always shards norms / dropout over the sequence (sp)")

    training: dict[str, Any] = {
        "local_batch_size": plan["global_batch"] // dp if pp > 1 else plan["micro_batch"],
        "global_batch_size": plan["global_batch"], "seq_len": plan["seq_len"],
        "mixed_precision_param": "float32" if plan["dtype"] == "fp16" else "bfloat16",
        "mixed_precision_reduce": "float32",
    }
    if plan["dtype"] == "fp16":
        notes.append("torchtitan has no fp16 mixed precision (bfloat16 or float32 only): float32 params")
    if not plan["grad_reduce_in_fp32"]:
        notes.append("torchtitan reduces gradients in float32 only (mixed_precision_reduce)")

    ac: dict[str, Any] = {"mode": plan["recompute"]}
    if plan["recompute"] == "selective":
        ac["selective_ac_option"] = "op"
    if plan.get("recompute_per_stage") is not None:
        notes.append("torchtitan has no per-stage recompute count: every layer is recomputed")

    sections = {"job": {"description": f"{m['name']} plan from planner"}, "model": model, "training": training,
                "parallelism": par, "activation_checkpoint": ac}
    if plan["dtype"] == "fp8":
        model["converters"] = ["quantize.linear.float8"]
        sections["compile"] = {"enable": True}
        sections["quantize.linear.float8"] = {"enable_fsdp_float8_all_gather": zero > 0,
                                              "precompute_float8_dynamic_scale_for_fsdp": zero > 0}
    if plan["attention"] != "flash":
        notes.append("attention: torchtitan picks SDPA / flex attention from the model flavor")
    return sections, notes


def torchtitan_toml(doc: Any) -> str:
    """The job config TOML of a plan document (run with ``--job.config_file``); strings as TOML basic strings
    (:func:`~planner.export.quoting.toml_string`), names in comments shown with their escapes."""
    doc = as_dict(doc)
    sections, notes = torchtitan_sections(doc)
    lines = [header(doc), "# torchtitan v0.2.2 job config (torchtitan/config/job_config.py); add dataset, optimizer, steps"]
    lines += note_lines(notes)
    return "\n".join(lines) + "\n\n" + _toml(sections)


__all__ = ["TORCHTITAN_KEYS", "TORCHTITAN_MODELS", "torchtitan_sections", "torchtitan_toml"]
