"""The plan document (schema, loading) and its exporters (Megatron-LM, torchtitan, DeepSpeed, SLURM).

Documents are real: built with ``planner.estimate_train`` + ``plan_document`` and round-tripped through JSON
as a saved plan file would be. Exported names are checked against constants transcribed from the launchers'
sources (see each exporter's module doc for the files and versions) and the numbers against the plan.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import tomllib
from typing import Any

import pytest

import planner
from planner.cost.training import partition_layers
from planner.errors import PlannerError
from planner.export import EXPORTERS, export
from planner.export.deepspeed import (
    DEEPSPEED_KEYS, MEGATRON_DEEPSPEED_FLAGS, deepspeed_config, deepspeed_json, megatron_deepspeed_args,
)
from planner.export.megatron import MEGATRON_FLAGS, megatron_args, megatron_command
from planner.export.slurm import slurm_script
from planner.export.torchtitan import TORCHTITAN_KEYS, torchtitan_toml
from planner.plans import check
from planner.plans.layers import chunk_sizes
from planner.plans import load_plan_document
from planner.plans.training import SCHEMA_ID, TrainingDocument, plan_document

# --------------------------------------------------------------------------------------------------
# documented names, transcribed from the launchers' sources
# --------------------------------------------------------------------------------------------------

#: Flags the brief asks for, as named in Megatron-LM megatron/training/arguments.py (d98e8a64ddf3) and the
#: config dataclasses it turns into flags.
REQUIRED_MEGATRON_FLAGS = {
    "--tensor-model-parallel-size", "--pipeline-model-parallel-size", "--num-layers-per-virtual-pipeline-stage",
    "--decoder-first-pipeline-num-layers", "--decoder-last-pipeline-num-layers", "--pipeline-model-parallel-layout",
    "--context-parallel-size", "--expert-model-parallel-size", "--expert-tensor-parallel-size", "--micro-batch-size",
    "--global-batch-size", "--seq-length", "--max-position-embeddings", "--num-layers", "--hidden-size",
    "--num-attention-heads", "--num-query-groups", "--group-query-attention", "--sequence-parallel",
    "--use-distributed-optimizer", "--use-megatron-fsdp", "--recompute-granularity", "--recompute-method",
    "--recompute-num-layers", "--bf16", "--fp16", "--fp8-format", "--attention-backend", "--overlap-grad-reduce",
    "--overlap-param-gather", "--accumulate-allreduce-grads-in-fp32",
}

#: Megatron flags that take no value (store_true).
MEGATRON_SWITCHES = {"--group-query-attention", "--sequence-parallel", "--use-distributed-optimizer",
                     "--use-megatron-fsdp", "--bf16", "--fp16", "--overlap-grad-reduce", "--overlap-param-gather",
                     "--accumulate-allreduce-grads-in-fp32", "--grad-reduce-in-bf16"}

#: Fields of the torchtitan v0.2.2 JobConfig sections used (torchtitan/config/job_config.py at tag v0.2.2).
TORCHTITAN_V022_FIELDS: dict[str, set[str]] = {
    "job": {"config_file", "dump_folder", "description", "print_config", "save_config_file", "custom_config_module"},
    "model": {"name", "flavor", "hf_assets_path", "tokenizer_path", "converters", "print_after_conversion"},
    "training": {"dataset", "dataset_path", "local_batch_size", "global_batch_size", "seq_len", "max_norm", "steps",
                 "enable_cpu_offload", "dtype", "mixed_precision_param", "mixed_precision_reduce", "gc_freq",
                 "gc_debug", "dataloader"},
    "parallelism": {"data_parallel_replicate_degree", "data_parallel_shard_degree", "fsdp_reshard_after_forward",
                    "tensor_parallel_degree", "disable_loss_parallel", "enable_async_tensor_parallel",
                    "pipeline_parallel_degree", "module_fqns_per_model_part",
                    "pipeline_parallel_first_stage_less_layers", "pipeline_parallel_last_stage_less_layers",
                    "pipeline_parallel_layers_per_stage", "pipeline_parallel_schedule",
                    "pipeline_parallel_schedule_csv", "pipeline_parallel_microbatch_size",
                    "pipeline_parallel_expert_parallel_overlap", "context_parallel_degree",
                    "context_parallel_load_balancer", "context_parallel_rotate_method", "expert_parallel_degree",
                    "expert_tensor_parallel_degree", "expert_parallel_comm_backend"},
    "activation_checkpoint": {"mode", "selective_ac_option", "per_op_sac_force_recompute_mm_shapes_by_fqns",
                              "early_stop", "memory_budget", "visualize_memory_budget_pareto",
                              "preserve_rng_state", "determinism_check", "debug"},
    "compile": {"enable", "components", "backend"},
    "quantize.linear.float8": {"enable_fsdp_float8_all_gather", "precompute_float8_dynamic_scale_for_fsdp",
                               "recipe_name", "filter_fqns", "emulate"},
}

#: Keys of DeepSpeed's configuration reference (docs/_pages/config-json.md, DeepSpeed 0.19.6) used here.
DEEPSPEED_DOCUMENTED: dict[str, set[str]] = {
    "": {"train_batch_size", "train_micro_batch_size_per_gpu", "gradient_accumulation_steps", "gradient_clipping",
         "zero_optimization", "bf16", "fp16", "activation_checkpointing", "data_types", "communication_data_type",
         "steps_per_print", "wall_clock_breakdown", "optimizer", "scheduler", "amp"},
    "zero_optimization": {"stage", "allgather_partitions", "allgather_bucket_size", "overlap_comm", "reduce_scatter",
                          "reduce_bucket_size", "contiguous_gradients", "load_from_fp32_weights", "grad_hooks",
                          "round_robin_gradients", "offload_param", "offload_optimizer",
                          "stage3_max_live_parameters", "stage3_max_reuse_distance", "stage3_prefetch_bucket_size",
                          "stage3_param_persistence_threshold", "stage3_gather_16bit_weights_on_model_save",
                          "sub_group_size", "ignore_unused_parameters"},
    "bf16": {"enabled", "bf16_master_weights_and_grads", "bf16_optimizer_states"},
    "fp16": {"enabled", "auto_cast", "loss_scale", "initial_scale_power", "loss_scale_window", "hysteresis",
             "consecutive_hysteresis", "min_loss_scale", "fp16_master_weights_and_grads"},
    "activation_checkpointing": {"partition_activations", "cpu_checkpointing", "contiguous_memory_optimization",
                                 "number_checkpoints", "synchronize_checkpoint_boundary", "profile"},
    "data_types": {"grad_accum_dtype"},
}

# --------------------------------------------------------------------------------------------------
# documents
# --------------------------------------------------------------------------------------------------


def make_doc(model: str, gpus: int, gpu: str = "h100", **plan: Any) -> dict[str, Any]:
    m, s = planner.get_model(model), planner.get_system(gpu)
    est = planner.estimate_train(m, s, gpus=gpus, **plan)
    return json.loads(json.dumps(plan_document(est, m, s)))  # as read back from a saved plan file


BASE = dict(micro_batch=1, global_batch=256, seq_len=4096)
PLANS: dict[str, tuple[str, int, dict[str, Any]]] = {
    "base": ("llama-3.1-70b", 64, dict(tp=8, pp=2, **BASE)),
    "interleaved": ("llama-3.1-70b", 64, dict(tp=8, pp=4, vpp=5, **BASE)),
    "uneven_first_last": ("llama-3.1-70b", 64, dict(tp=8, pp=4, layers_per_chunk=(18, 21, 21, 20), **BASE)),
    "uneven_layout": ("llama-3.1-70b", 64, dict(tp=8, pp=4, layers_per_chunk=(19, 21, 20, 20), **BASE)),
    "uneven_interleaved": ("llama-3.1-70b", 64, dict(tp=8, pp=2, vpp=2, layers_per_chunk=(19, 21, 20, 20), **BASE)),
    "default_uneven": ("llama-3.1-70b", 48, dict(tp=8, pp=3, micro_batch=1, global_batch=258, seq_len=4096)),
    "moe": ("mixtral-8x7b", 64, dict(tp=2, pp=2, ep=8, **BASE)),
    "moe_fp8_zero3": ("mixtral-8x7b", 64, dict(tp=2, pp=2, ep=8, zero=3, dtype="fp8", **BASE)),
    "full_per_stage": ("llama-3.1-70b", 64, dict(tp=8, pp=2, vpp=2, recompute="full", recompute_per_stage=(30, 10),
                                                 **BASE)),
    "full_all_cp": ("llama-3.1-70b", 64, dict(tp=8, pp=2, cp=2, recompute="full", micro_batch=1, global_batch=128,
                                              seq_len=16384)),
    "zero0_fp16": ("llama-3.1-8b", 16, dict(tp=2, pp=1, zero=0, dtype="fp16", recompute="none", sp=False,
                                            grad_reduce_in_fp32=False, micro_batch=2, global_batch=64, seq_len=4096)),
    "zero2_small": ("llama-3.1-8b", 4, dict(tp=1, zero=2, attention="unfused", grad_reduce_in_fp32=False,
                                            micro_batch=2, global_batch=32, seq_len=2048)),
}


@pytest.fixture(scope="module")
def docs() -> dict[str, dict[str, Any]]:
    return {name: make_doc(model, gpus, **plan) for name, (model, gpus, plan) in PLANS.items()}


@pytest.fixture(params=list(PLANS))
def doc(request, docs) -> dict[str, Any]:
    return docs[request.param]


def chunks_of(doc: dict[str, Any]) -> list[int]:
    p = doc["plan"]
    if p["layers_per_chunk"] is not None:
        return list(p["layers_per_chunk"])
    return [len(c) for c in partition_layers(doc["model"]["num_layers"], p["pp"], p["vpp"])]


def stages_of(doc: dict[str, Any]) -> list[int]:
    sizes, pp = chunks_of(doc), doc["plan"]["pp"]
    return [sum(sizes[s::pp]) for s in range(pp)]


# --------------------------------------------------------------------------------------------------
# the documents the exporters read (the schema and the gate are tested with planner.plans)
# --------------------------------------------------------------------------------------------------

def test_documents_pass_the_gate(doc):
    """Plans that fit pass the gate unchanged; one that does not fit memory is refused (the exporters still
    export it when called directly: they trust what they are given)."""
    if not doc["estimate"]["fits"]:
        with pytest.raises(PlannerError, match="GB per GPU by the planner's memory model"):
            check(doc)
        return
    typed = check(doc)
    assert isinstance(typed, TrainingDocument) and typed.to_json() == doc


def _load_error(tmp_path, text: str | None) -> str:
    p = tmp_path / "plan.json"
    if text is not None:
        p.write_text(text)
    with pytest.raises(PlannerError) as e:
        load_plan_document(p)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(str(p)), msg
    return msg


def test_load_round_trip(tmp_path, docs):
    p = tmp_path / "plan.json"
    p.write_text(json.dumps(docs["interleaved"]))
    assert load_plan_document(p) == docs["interleaved"]


def test_load_errors_are_one_line(tmp_path, docs):
    good = docs["base"]
    assert "no such file" in _load_error(tmp_path, None)
    assert "JSON" in _load_error(tmp_path, "{\"schema\": ")
    assert SCHEMA_ID in _load_error(tmp_path, json.dumps({**good, "schema": "something.else"}))
    assert "schema_version" in _load_error(tmp_path, json.dumps({**good, "schema_version": "2.0"}))
    assert "plan.tp" in _load_error(tmp_path, json.dumps({**good, "plan": {**good["plan"], "tp": 0}}))
    assert "plan.recompute" in _load_error(tmp_path, json.dumps({**good, "plan": {**good["plan"], "recompute": "x"}}))
    assert "plan" in _load_error(tmp_path, json.dumps({k: v for k, v in good.items() if k != "plan"}))


def test_exporters_read_the_typed_document_as_its_json(docs):
    """A TrainingDocument (what the gate returns) exports exactly as its JSON object."""
    for d in (docs["base"], docs["moe_fp8_zero3"], docs["full_per_stage"]):
        typed = TrainingDocument.model_validate(d, strict=False)
        for target in EXPORTERS:
            assert export(typed, target) == export(d, target), target
        assert slurm_script(typed, "torchtitan") == slurm_script(d, "torchtitan")


def test_layer_split_helper_is_the_estimators():
    """planner.plans.layers.chunk_sizes (what exporters read) splits layers as the cost model does."""
    for layers in (1, 7, 32, 61, 80, 126):
        for pp in (1, 2, 3, 4, 8):
            for vpp in (1, 2, 3):
                if pp * vpp <= layers:
                    assert chunk_sizes(layers, pp, vpp) == [len(c) for c in partition_layers(layers, pp, vpp)]
    assert chunk_sizes(80, 4, 1, (18, 21, 21, 20)) == [18, 21, 21, 20]


# --------------------------------------------------------------------------------------------------
# Megatron-LM
# --------------------------------------------------------------------------------------------------

def parse_flags(args: list[str], switches: set[str]) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    i = 0
    while i < len(args):
        flag = args[i]
        assert flag.startswith("--"), (flag, args)
        assert flag not in out, f"{flag} given twice"
        if flag in switches:
            out[flag] = None
            i += 1
        else:
            assert i + 1 < len(args) and not args[i + 1].startswith("--"), f"{flag} has no value"
            out[flag] = args[i + 1]
            i += 2
    return out


def test_megatron_flag_constant_has_the_documented_names():
    assert REQUIRED_MEGATRON_FLAGS <= MEGATRON_FLAGS
    assert MEGATRON_SWITCHES <= MEGATRON_FLAGS
    assert all(re.fullmatch(r"--[a-z0-9]+(-[a-z0-9]+)*", f) for f in MEGATRON_FLAGS)


def test_megatron_uses_only_documented_flags(doc):
    flags = parse_flags(megatron_args(doc), MEGATRON_SWITCHES)
    assert set(flags) <= MEGATRON_FLAGS, set(flags) - MEGATRON_FLAGS


def test_megatron_numbers_match_the_plan(doc):
    p, m = doc["plan"], doc["model"]
    f = parse_flags(megatron_args(doc), MEGATRON_SWITCHES)
    tp, pp, cp = int(f["--tensor-model-parallel-size"]), int(f["--pipeline-model-parallel-size"]), int(f["--context-parallel-size"])
    assert (tp, pp, cp, int(f["--expert-model-parallel-size"])) == (p["tp"], p["pp"], p["cp"], p["ep"])
    assert int(f["--micro-batch-size"]) == p["micro_batch"] and int(f["--global-batch-size"]) == p["global_batch"]
    assert int(f["--seq-length"]) == p["seq_len"] <= int(f["--max-position-embeddings"])
    assert (int(f["--num-layers"]), int(f["--hidden-size"]), int(f["--num-attention-heads"])) == \
        (m["num_layers"], m["hidden_size"], m["num_heads"])
    # Megatron derives dp from the world size
    gpus = doc["system"]["num_gpus"]
    assert gpus % (tp * pp * cp) == 0 and gpus // (tp * pp * cp) == p["dp"]
    assert p["dp"] * tp * pp * cp == gpus
    assert p["global_batch"] % (p["micro_batch"] * p["dp"]) == 0
    if m["num_kv_heads"] < m["num_heads"]:
        assert "--group-query-attention" in f and int(f["--num-query-groups"]) == m["num_kv_heads"]
    assert ("--sequence-parallel" in f) == (p["sp"] and p["tp"] > 1)
    if m["is_moe"]:
        assert int(f["--expert-tensor-parallel-size"]) == p["expert_tp"]
        assert int(f["--num-experts"]) == m["num_experts"]
    else:
        assert "--expert-tensor-parallel-size" not in f
    assert ("--bf16" in f) == (p["dtype"] != "fp16") and ("--fp16" in f) == (p["dtype"] == "fp16")
    assert f.get("--fp8-format") == ("hybrid" if p["dtype"] == "fp8" else None)
    assert f["--attention-backend"] == ("flash" if p["attention"] == "flash" else "unfused")
    assert ("--use-distributed-optimizer" in f) == (p["zero"] >= 1)
    assert ("--use-megatron-fsdp" in f) == (p["zero"] >= 2)
    if p["zero"] >= 2:
        assert f["--data-parallel-sharding-strategy"] == {2: "optim_grads", 3: "optim_grads_params"}[p["zero"]]
        assert f["--ckpt-format"] == "fsdp_dtensor"
    assert ("--overlap-grad-reduce" in f) == p["overlap_grad_reduce"]
    if "--overlap-param-gather" in f:  # Megatron asserts both
        assert "--overlap-grad-reduce" in f and ("--use-distributed-optimizer" in f or "--use-megatron-fsdp" in f)
    assert ("--accumulate-allreduce-grads-in-fp32" in f) == p["grad_reduce_in_fp32"]


def megatron_split(f: dict[str, str | None], num_layers: int) -> list[int]:
    """Layers per model chunk as Megatron derives them from the flags (arguments.py / TransformerConfig rules)."""
    pp = int(f["--pipeline-model-parallel-size"])
    if "--pipeline-model-parallel-layout" in f:
        s = f["--pipeline-model-parallel-layout"].replace(",", "")
        s = re.sub(r"\(([^)]+)\)\*(\d+)", lambda x: x.group(1) * int(x.group(2)), s)
        s = re.sub(r"(.)\*(\d+)", lambda x: x.group(1) * int(x.group(2)), s)
        stages = s.split("|")
        assert set("".join(stages)) <= set("EtL")
        assert stages[0].startswith("E") and stages[-1].endswith("L")
        assert s.count("E") == 1 and s.count("L") == 1 and len(stages) % pp == 0
        return [st.count("t") for st in stages]
    if "--num-layers-per-virtual-pipeline-stage" in f:
        n = int(f["--num-layers-per-virtual-pipeline-stage"])
        assert num_layers % pp == 0 and (num_layers // pp) % n == 0
        return [n] * (num_layers // n)
    first, last = f.get("--decoder-first-pipeline-num-layers"), f.get("--decoder-last-pipeline-num-layers")
    if first is None and last is None:
        assert num_layers % pp == 0, "Megatron needs an even split"
        return [num_layers // pp] * pp
    rest, middle = num_layers, pp
    for x in (first, last):
        if x is not None:
            assert int(x) > 0
            rest, middle = rest - int(x), middle - 1
    assert bool(rest) == bool(middle) and (middle == 0 or rest % middle == 0)
    return ([int(first)] if first else []) + [rest // middle if middle else 0] * middle + ([int(last)] if last else [])


def test_megatron_layer_split_is_the_plans(doc):
    f = parse_flags(megatron_args(doc), MEGATRON_SWITCHES)
    p = doc["plan"]
    if p["pp"] == 1:
        return
    assert megatron_split(f, doc["model"]["num_layers"]) == chunks_of(doc)


def test_megatron_split_flags_per_case(docs):
    flags = {k: parse_flags(megatron_args(d), MEGATRON_SWITCHES) for k, d in docs.items()}
    assert flags["interleaved"]["--num-layers-per-virtual-pipeline-stage"] == "4"  # 80 / (4 x 5)
    assert flags["uneven_first_last"]["--decoder-first-pipeline-num-layers"] == "18"
    assert flags["uneven_first_last"]["--decoder-last-pipeline-num-layers"] == "20"
    assert "--pipeline-model-parallel-layout" not in flags["uneven_first_last"]
    assert flags["uneven_layout"]["--pipeline-model-parallel-layout"] == "E,t*19|t*21|t*20|t*20,L"
    assert flags["uneven_interleaved"]["--pipeline-model-parallel-layout"] == "E,t*19|t*21|t*20|t*20,L"
    assert "--decoder-first-pipeline-num-layers" not in flags["uneven_interleaved"]
    for name in ("base", "moe"):
        assert not {"--num-layers-per-virtual-pipeline-stage", "--pipeline-model-parallel-layout",
                    "--decoder-first-pipeline-num-layers", "--decoder-last-pipeline-num-layers"} & set(flags[name])


def test_megatron_recompute(docs):
    f = parse_flags(megatron_args(docs["base"]), MEGATRON_SWITCHES)
    assert f["--recompute-granularity"] == "selective"
    assert "--recompute-method" not in f and "--recompute-num-layers" not in f  # must be None for selective
    f = parse_flags(megatron_args(docs["full_all_cp"]), MEGATRON_SWITCHES)
    assert (f["--recompute-granularity"], f["--recompute-method"], f["--recompute-num-layers"]) == ("full", "uniform", "1")
    # per-stage counts (30, 10) on 2 stages of two 20-layer chunks: 15 per chunk recomputes >= 30 on stage 0
    d = docs["full_per_stage"]
    f = parse_flags(megatron_args(d), MEGATRON_SWITCHES)
    assert (f["--recompute-granularity"], f["--recompute-method"]) == ("full", "block")
    n = int(f["--recompute-num-layers"])
    assert n == 15
    chunks = chunks_of(d)
    for st, want in enumerate(d["plan"]["recompute_per_stage"]):
        assert sum(min(n, c) for c in chunks[st::2]) >= want
    assert "smallest count" in megatron_command(d) and "memory" in megatron_command(d)
    f = parse_flags(megatron_args(docs["zero0_fp16"]), MEGATRON_SWITCHES)
    assert "--recompute-granularity" not in f


def test_megatron_command_is_one_shell_command(docs):
    text = megatron_command(docs["uneven_layout"])
    lines = text.splitlines()
    assert lines[0].startswith("# planner: llama-3.1-70b on 64 x h100-sxm")
    body = [ln for ln in lines if not ln.startswith("#")]
    assert body[0].startswith("torchrun ") and "pretrain_gpt.py" in body[0]
    assert all(ln.endswith(" \\") for ln in body[:-1]) and not body[-1].endswith("\\")
    joined = " ".join(ln.rstrip("\\").strip() for ln in body)
    assert shlex.split(joined.split("pretrain_gpt.py ", 1)[1]) == megatron_args(docs["uneven_layout"])


# --------------------------------------------------------------------------------------------------
# torchtitan
# --------------------------------------------------------------------------------------------------

def toml_sections(data: dict[str, Any], prefix: str = "") -> dict[str, dict[str, Any]]:
    """``{"a.b": {key: value}}`` for the tables of a parsed TOML document."""
    out: dict[str, dict[str, Any]] = {}
    for k, v in data.items():
        assert isinstance(v, dict), f"top-level key {k!r} outside a table"
        name = prefix + k
        leaves = {kk: vv for kk, vv in v.items() if not isinstance(vv, dict)}
        if leaves:
            out[name] = leaves
        for kk, vv in v.items():
            if isinstance(vv, dict):
                out.update(toml_sections({kk: vv}, name + "."))
    return out


def test_torchtitan_constant_matches_job_config():
    for section, keys in TORCHTITAN_KEYS.items():
        assert section in TORCHTITAN_V022_FIELDS, section
        assert keys <= TORCHTITAN_V022_FIELDS[section], (section, keys - TORCHTITAN_V022_FIELDS[section])


def test_torchtitan_uses_only_documented_keys(doc):
    sections = toml_sections(tomllib.loads(torchtitan_toml(doc)))
    for name, keys in sections.items():
        assert name in TORCHTITAN_KEYS, name
        assert set(keys) <= TORCHTITAN_KEYS[name], (name, set(keys) - TORCHTITAN_KEYS[name])


def test_torchtitan_numbers_match_the_plan(doc):
    p, gpus = doc["plan"], doc["system"]["num_gpus"]
    cfg = tomllib.loads(torchtitan_toml(doc))
    par, tr = cfg["parallelism"], cfg["training"]
    assert (par["tensor_parallel_degree"], par["pipeline_parallel_degree"], par["context_parallel_degree"],
            par["expert_parallel_degree"]) == (p["tp"], p["pp"], p["cp"], p["ep"])
    rep, shard = par["data_parallel_replicate_degree"], par["data_parallel_shard_degree"]
    assert rep * shard == p["dp"]
    assert rep * shard * par["tensor_parallel_degree"] * par["pipeline_parallel_degree"] * par["context_parallel_degree"] == gpus
    if p["zero"] == 0:
        assert (rep, shard) == (p["dp"], 1) and "fsdp_reshard_after_forward" not in par
    else:
        assert (rep, shard) == (1, p["dp"])
        assert par["fsdp_reshard_after_forward"] == ("always" if p["zero"] == 3 else "never")
    # torchtitan: accumulation steps = global / (local x dp); with PP, local batch = micro-batches x mbs
    assert tr["global_batch_size"] == p["global_batch"] and tr["seq_len"] == p["seq_len"]
    accumulation = tr["global_batch_size"] // (tr["local_batch_size"] * p["dp"])
    assert accumulation * tr["local_batch_size"] * p["dp"] == p["global_batch"]
    if p["pp"] > 1:
        assert par["pipeline_parallel_microbatch_size"] == p["micro_batch"]
        assert accumulation * tr["local_batch_size"] // p["micro_batch"] == p["num_microbatches"]
        assert par["pipeline_parallel_schedule"] == ("Interleaved1F1B" if p["vpp"] > 1 else "1F1B")
        parts = par["module_fqns_per_model_part"]
        assert len(parts) == p["pp"] * p["vpp"]
        assert [sum(x.startswith("layers.") for x in part) for part in parts] == chunks_of(doc)
        flat = [x for part in parts for x in part]
        assert flat == ["tok_embeddings"] + [f"layers.{i}" for i in range(doc["model"]["num_layers"])] + ["norm", "output"]
    else:
        assert tr["local_batch_size"] == p["micro_batch"] and accumulation == p["num_microbatches"]
        assert "module_fqns_per_model_part" not in par
    if p["ep"] > 1:
        assert par["expert_tensor_parallel_degree"] == p["expert_tp"]
    assert cfg["activation_checkpoint"]["mode"] == p["recompute"]
    if p["recompute"] == "selective":
        assert cfg["activation_checkpoint"]["selective_ac_option"] == "op"
    assert tr["mixed_precision_param"] == ("float32" if p["dtype"] == "fp16" else "bfloat16")
    if p["dtype"] == "fp8":
        assert cfg["model"]["converters"] == ["quantize.linear.float8"]
        assert "float8" in cfg["quantize"]["linear"] and cfg["compile"]["enable"] is True
    else:
        assert "quantize" not in cfg and "converters" not in cfg["model"]


def test_torchtitan_model_names(docs):
    cfg = tomllib.loads(torchtitan_toml(docs["base"]))
    assert (cfg["model"]["name"], cfg["model"]["flavor"]) == ("llama3", "70B")
    assert cfg["model"]["hf_assets_path"] == "./assets/hf/Llama-3.1-70B"
    assert "ships no model for mixtral-8x7b" in torchtitan_toml(docs["moe"])


# --------------------------------------------------------------------------------------------------
# DeepSpeed
# --------------------------------------------------------------------------------------------------

def test_deepspeed_constant_matches_docs():
    for section, keys in DEEPSPEED_KEYS.items():
        assert keys <= DEEPSPEED_DOCUMENTED[section], (section, keys - DEEPSPEED_DOCUMENTED[section])


def test_deepspeed_uses_only_documented_keys(doc):
    cfg = json.loads(deepspeed_json(doc))
    assert cfg == deepspeed_config(doc)
    assert set(cfg) <= DEEPSPEED_KEYS[""], set(cfg) - DEEPSPEED_KEYS[""]
    for k, v in cfg.items():
        if isinstance(v, dict):
            assert set(v) <= DEEPSPEED_KEYS[k], (k, set(v) - DEEPSPEED_KEYS[k])


def test_deepspeed_numbers_match_the_plan(doc):
    p = doc["plan"]
    cfg = json.loads(deepspeed_json(doc))
    assert cfg["train_micro_batch_size_per_gpu"] == p["micro_batch"]
    assert cfg["gradient_accumulation_steps"] == p["global_batch"] // (p["micro_batch"] * p["dp"]) == p["num_microbatches"]
    # DeepSpeed: train_batch_size = micro-batch x accumulation x data-parallel size
    assert cfg["train_batch_size"] == p["global_batch"] == p["micro_batch"] * cfg["gradient_accumulation_steps"] * p["dp"]
    assert cfg["zero_optimization"]["stage"] == p["zero"]
    assert cfg["zero_optimization"]["overlap_comm"] == p["overlap_grad_reduce"]
    assert cfg["bf16"]["enabled"] == (p["dtype"] != "fp16") and cfg["fp16"]["enabled"] == (p["dtype"] == "fp16")
    assert (cfg["data_types"]["grad_accum_dtype"] == "fp32") == p["grad_reduce_in_fp32"]
    assert ("activation_checkpointing" in cfg) == (p["recompute"] == "full")
    if p["recompute"] == "full":
        assert cfg["activation_checkpointing"]["partition_activations"] == (p["tp"] > 1)
        assert 0 < cfg["activation_checkpointing"]["number_checkpoints"] <= max(stages_of(doc))


def test_megatron_deepspeed_args(doc):
    p, m = doc["plan"], doc["model"]
    switches = {"--no-pipeline-parallel", "--sequence-parallel", "--checkpoint-activations",
                "--deepspeed-activation-checkpointing", "--bf16", "--fp16", "--use-flash-attn-v2",
                "--accumulate-allreduce-grads-in-fp32", "--deepspeed"}
    f = parse_flags(megatron_deepspeed_args(doc), switches)
    assert set(f) <= MEGATRON_DEEPSPEED_FLAGS, set(f) - MEGATRON_DEEPSPEED_FLAGS
    assert (int(f["--tensor-model-parallel-size"]), int(f["--pipeline-model-parallel-size"])) == (p["tp"], p["pp"])
    assert int(f["--zero-stage"]) == p["zero"] and f["--deepspeed_config"] == "ds_config.json"
    assert ("--no-pipeline-parallel" in f) == (p["pp"] == 1)
    if m["num_kv_heads"] < m["num_heads"]:
        assert int(f["--num-key-value-heads"]) == m["num_kv_heads"]
    if m["is_moe"]:
        assert int(f["--moe-expert-parallel-size"]) == p["ep"]


# --------------------------------------------------------------------------------------------------
# SLURM
# --------------------------------------------------------------------------------------------------

def sbatch(text: str) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for ln in text.splitlines():
        if ln.startswith("#SBATCH "):
            opt = ln.split(None, 1)[1]
            k, _, v = opt.partition("=")
            out[k] = v or None
    return out


@pytest.mark.parametrize("launcher", ["megatron", "torchtitan", "deepspeed"])
def test_slurm_script(doc, launcher):
    text = slurm_script(doc, launcher)
    s, p = doc["system"], doc["plan"]
    opts = sbatch(text)
    nodes = -(-s["num_gpus"] // s["gpus_per_node"])
    assert int(opts["--nodes"]) == nodes == s["num_nodes"]
    assert opts["--ntasks-per-node"] == "1" and "--exclusive" in opts
    assert int(opts["--gpus-per-node"]) * nodes == s["num_gpus"]
    assert int(opts["--gpus-per-node"]) <= s["gpus_per_node"]
    lines = text.splitlines()
    assert lines[0] == "#!/bin/bash"
    # sbatch stops reading #SBATCH lines at the first command
    first_cmd = next(i for i, ln in enumerate(lines) if ln and not ln.startswith("#"))
    assert all(i < first_cmd for i, ln in enumerate(lines) if ln.startswith("#SBATCH"))
    srun = text[text.index("srun torchrun"):]
    assert '--nnodes "$SLURM_NNODES"' in srun and f"--nproc-per-node {opts['--gpus-per-node']}" in srun
    assert "--rdzv-backend c10d" in srun and '--rdzv-endpoint "$MASTER_ADDR:$MASTER_PORT"' in srun
    args = " ".join(ln.rstrip("\\").strip() for ln in srun.splitlines())
    if launcher == "megatron":
        assert shlex.split(args.split("pretrain_gpt.py ", 1)[1]) == megatron_args(doc)
        assert ("CUDA_DEVICE_MAX_CONNECTIONS=1" in text) == (p["zero"] < 2)
    elif launcher == "torchtitan":
        assert args.endswith("-m torchtitan.train --job.config_file plan.toml")
        toml_text = text.split("<<'PLANNER_EOF'\n", 1)[1].split("\nPLANNER_EOF\n", 1)[0]
        assert tomllib.loads(toml_text) == tomllib.loads(torchtitan_toml(doc))
    else:
        assert shlex.split(args.split("pretrain_gpt.py ", 1)[1]) == megatron_deepspeed_args(doc)
        json_text = text.split("<<'PLANNER_EOF'\n", 1)[1].split("\nPLANNER_EOF\n", 1)[0]
        assert json.loads(json_text) == deepspeed_config(doc)


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash not installed")
@pytest.mark.parametrize("launcher", ["megatron", "torchtitan", "deepspeed"])
def test_slurm_script_is_valid_bash(docs, launcher):
    for d in (docs["moe_fp8_zero3"], docs["uneven_layout"]):
        r = subprocess.run(["bash", "-n"], input=slurm_script(d, launcher), capture_output=True, text=True)
        assert r.returncode == 0, r.stderr


def test_slurm_partial_node(docs):
    opts = sbatch(slurm_script(docs["zero2_small"]))  # 4 GPUs of one 8-GPU node
    assert (opts["--nodes"], opts["--gpus-per-node"]) == ("1", "4")


def test_slurm_unknown_launcher(docs):
    with pytest.raises(ValueError, match="unknown launcher 'nemo'"):
        slurm_script(docs["base"], "nemo")


# --------------------------------------------------------------------------------------------------
# the registry and the provenance line
# --------------------------------------------------------------------------------------------------

def test_exporters_registry(docs):
    assert list(EXPORTERS) == ["megatron", "torchtitan", "deepspeed", "slurm"]
    d = docs["base"]
    assert export(d, "megatron") == megatron_command(d)
    assert export(d, "torchtitan") == torchtitan_toml(d)
    assert export(d, "deepspeed") == deepspeed_json(d)
    assert export(d, "slurm") == slurm_script(d, "megatron")
    with pytest.raises(ValueError) as e:
        export(d, "x")
    assert str(e.value) == "unknown export target 'x'; choose from megatron, torchtitan, deepspeed, slurm"


def test_export_passes_the_gate_first(docs):
    """export() refuses what the gate refuses (one line); the per-launcher renderers do not check."""
    too_big = docs["zero0_fp16"]  # 91 GB per GPU on an 80 GB H100 (its step: fp16 optimizer with fp32 main grads)
    assert megatron_command(too_big).startswith("# planner: ")
    for target in EXPORTERS:
        with pytest.raises(PlannerError, match=r"^saved\.json: plan needs 91\.1 GB per GPU") as e:
            export(too_big, target, where="saved.json")
        assert "\n" not in str(e.value)
    tampered = json.loads(json.dumps(docs["base"]))
    tampered["plan"]["tp"] = 3
    with pytest.raises(PlannerError, match="degrees do not multiply to the GPU count: tp 3 x pp 2"):
        export(tampered, "slurm")


@pytest.mark.parametrize("render", [megatron_command, torchtitan_toml, slurm_script])
def test_exports_start_with_the_planner_line(doc, render):
    lines = render(doc).splitlines()
    first = lines[1] if lines[0].startswith("#!") else lines[0]
    m, s, e = doc["model"], doc["system"], doc["estimate"]
    assert first.startswith("# planner: ")
    assert m["name"] in first and s["name"] in first and f"{s['num_gpus']} x" in first
    assert f"{e['step_time_s']:.3f} s" in first and f"MFU {100 * e['mfu']:.1f}%" in first


def test_exporters_are_pure(docs):
    d = docs["moe_fp8_zero3"]
    before = json.dumps(d, sort_keys=True)
    outs = [export(d, t) for t in EXPORTERS]
    assert json.dumps(d, sort_keys=True) == before
    assert outs == [export(d, t) for t in EXPORTERS]
