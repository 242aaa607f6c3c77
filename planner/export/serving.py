"""Serving exporters: engine launch commands and Kubernetes manifests for a planned serving deployment.

A :class:`~planner.cost.serving.ServingPlan` (one worker: attention ``tp x dp``, ``pp`` stages, experts as
``ep x moe_tp`` over the ``tp x dp`` GPUs) becomes

* :func:`vllm_command`   - ``vllm serve <model> ...``
* :func:`sglang_command` - ``python3 -m sglang.launch_server --model-path <model> ...``
* :func:`trtllm_command` - ``trtllm-serve <model> ...`` plus its ``--extra_llm_api_options`` YAML (a heredoc)
* :func:`k8s_manifest` / :func:`k8s_manifest_agg` - Deployments + Services (multi-document YAML) for a
  disaggregated prefill / decode pair or for aggregated replicas

and :func:`export_serving` picks the aggregated or disaggregated answer of a
:class:`~planner.search.serving.ServeSearchResult` and dispatches on the target.

How the planner's layout maps onto each engine (the engines' parallel meshes differ):

* **vLLM** - ``--tensor-parallel-size tp --data-parallel-size dp --pipeline-parallel-size pp``: each data
  parallel rank is an engine core of ``tp`` GPUs with its own scheduler, so ``--max-num-seqs`` is per rank
  (``ceil(concurrency / dp)``); ``--enable-expert-parallel`` spreads the experts over all ``tp x dp`` GPUs
  (the planner's ``ep = tp x dp``), without it the experts are tensor-parallel over them (``ep = 1``).
* **SGLang** - with DP attention (MoE, ``dp > 1``) ``--tp-size`` is the whole ``tp x dp`` mesh and
  ``--dp-size dp`` splits attention into ``dp`` groups of ``tp`` GPUs (``--enable-dp-attention``); experts
  over ``--ep-size ep`` (expert TP = tp-size / ep-size). ``--max-running-requests`` is for the whole
  server (SGLang divides it over the DP ranks). Dense ``dp > 1`` is ``--dp-size`` replicas of ``--tp-size tp``.
* **TensorRT-LLM** - attention DP (``enable_attention_dp``) runs attention with TP 1 on every one of the
  ``--tp_size`` ranks, so ``--tp_size`` is ``tp x dp`` and a plan with attention ``tp > 1`` and ``dp > 1``
  is approximated (said in a note); ``--max_batch_size`` is per attention-DP rank; quantization comes from
  the checkpoint (no flag). Options given in the YAML replace the whole CLI-built object (e.g.
  ``kv_cache_config``), so the memory fraction is repeated there.

Disaggregated serving: vLLM ``--kv-transfer-config`` with the NixlConnector (``kv_role: kv_both`` on both
sides), SGLang ``--disaggregation-mode prefill|decode`` (Mooncake transfer, prefill bootstrap port 8998),
TensorRT-LLM ``cache_transceiver_config`` on the workers and a ``trtllm-serve disaggregated -c`` frontend
config. Each needs a router in front (named in the output's comments).

Every flag emitted is listed in :data:`VLLM_FLAGS`, :data:`SGLANG_FLAGS` or :data:`TRTLLM_FLAGS` with the
source file it was checked against.
"""

from __future__ import annotations

import json
import math
import re
import shlex
from dataclasses import dataclass, field
from typing import Any, Literal

import yaml

from ..cost.serving import BACKENDS, MAX_BATCHED_TOKENS, ServingEstimate, ServingPlan, kv_dtype_bytes
from ..search.serving import AggChoice, DisaggChoice, ServeSearchResult
from ..specs.model import ModelSpec

# --------------------------------------------------------------------------------------------------
# documented names
# --------------------------------------------------------------------------------------------------

#: Every flag :func:`vllm_command` may emit. Checked against vllm-project/vllm
#: ``vllm/engine/arg_utils.py`` (commit 99d7eb5d6a51, v0.11 line: ``EngineArgs.add_cli_args`` -
#: ``--tensor-parallel-size``/``--pipeline-parallel-size``/``--data-parallel-size`` in the ParallelConfig
#: group, ``--enable-expert-parallel``, ``--max-num-seqs`` (SchedulerConfig), ``--max-model-len``,
#: ``--quantization``/``--dtype`` (ModelConfig), ``--gpu-memory-utilization``/``--kv-cache-dtype``
#: (CacheConfig), ``--kv-transfer-config`` (VllmConfig)) and ``vllm/entrypoints/openai/cli_args.py``
#: (commit 789340fbad95, ``FrontendArgs.host``/``port``). Values: ``--quantization`` from
#: ``vllm/model_executor/layers/quantization/__init__.py`` (``fp8``, ``modelopt_fp4``), ``--kv-cache-dtype``
#: from ``vllm/config/cache.py`` ``CacheDType`` (``fp8``), the KV connector from ``vllm/config/kv_transfer.py``
#: (``kv_connector``, ``kv_role``) and docs.vllm.ai "NixlConnector Usage Guide".
VLLM_FLAGS: frozenset[str] = frozenset({
    "--host", "--port",
    "--tensor-parallel-size", "--pipeline-parallel-size", "--data-parallel-size", "--enable-expert-parallel",
    "--max-num-seqs", "--max-model-len", "--gpu-memory-utilization",
    "--quantization", "--dtype", "--kv-cache-dtype", "--kv-transfer-config",
})

#: Every flag :func:`sglang_command` may emit. Checked against sgl-project/sglang
#: ``python/sglang/srt/server_args.py`` (commit 001067fffe33; ``ServerArgs`` fields become flags,
#: ``tp_size`` -> ``--tp-size``): ``model_path``, ``host``, ``port``, ``tp_size``, ``dp_size``, ``pp_size``,
#: ``ep_size``, ``enable_dp_attention`` ("the dp size should be equal to the tp size" - tp-size is the whole
#: mesh), ``max_running_requests``, ``context_length``, ``mem_fraction_static``, ``quantization``
#: (``QUANTIZATION_CHOICES``: ``fp8``, ``modelopt_fp4``), ``dtype``, ``kv_cache_dtype`` (``fp8_e4m3``),
#: ``disaggregation_mode`` (``prefill``/``decode``), ``disaggregation_transfer_backend``
#: (``DISAGG_TRANSFER_BACKEND_CHOICES``: ``mooncake``, ``nixl``, ...), ``disaggregation_bootstrap_port`` (8998).
SGLANG_FLAGS: frozenset[str] = frozenset({
    "--model-path", "--host", "--port",
    "--tp-size", "--dp-size", "--pp-size", "--ep-size", "--enable-dp-attention",
    "--max-running-requests", "--context-length", "--mem-fraction-static",
    "--quantization", "--dtype", "--kv-cache-dtype",
    "--disaggregation-mode", "--disaggregation-transfer-backend", "--disaggregation-bootstrap-port",
})

#: Every flag :func:`trtllm_command` may emit. Checked against NVIDIA/TensorRT-LLM
#: ``tensorrt_llm/commands/serve.py`` (commit 4c05a74891e4; click options of ``serve``: ``--host``,
#: ``--port``, ``--backend``, ``--tp_size``, ``--pp_size``, ``--ep_size``, ``--max_batch_size``,
#: ``--max_num_tokens``, ``--max_seq_len``, ``--kv_cache_free_gpu_memory_fraction``,
#: ``--extra_llm_api_options``; of ``disaggregated``: ``-c/--config_file``).
TRTLLM_FLAGS: frozenset[str] = frozenset({
    "--host", "--port", "--backend", "--tp_size", "--pp_size", "--ep_size",
    "--max_batch_size", "--max_num_tokens", "--max_seq_len", "--kv_cache_free_gpu_memory_fraction",
    "--extra_llm_api_options", "--config_file",
})

#: Top-level keys of the ``--extra_llm_api_options`` YAML, fields of the LLM API arguments in
#: ``tensorrt_llm/llmapi/llm_args.py`` (``enable_attention_dp``; ``kv_cache_config`` -> ``KvCacheConfig``
#: with ``dtype`` (PyTorch backend) and ``free_gpu_memory_fraction``; ``cache_transceiver_config`` ->
#: ``CacheTransceiverConfig.backend`` (``DEFAULT``/``UCX``/``NIXL``/``MPI``; lower case in older releases);
#: ``disable_overlap_scheduler``; ``dtype``).
TRTLLM_EXTRA_OPTIONS_KEYS: frozenset[str] = frozenset({
    "enable_attention_dp", "kv_cache_config", "cache_transceiver_config", "disable_overlap_scheduler", "dtype",
})

#: Keys of the ``trtllm-serve disaggregated -c`` file, from ``tensorrt_llm/llmapi/disagg_utils.py``
#: (commit 3e53e4adfea6, ``extract_disagg_cfg`` / ``extract_ctx_gen_cfgs``: ``urls`` as ``host:port``).
TRTLLM_DISAGG_CONFIG_KEYS: frozenset[str] = frozenset({
    "hostname", "port", "backend", "context_servers", "generation_servers", "num_instances", "urls",
})

ENGINES = ("vllm", "sglang", "trtllm")
TARGETS = ("vllm", "sglang", "trtllm", "k8s")
ENGINE_NAMES = {"vllm": "vLLM", "sglang": "SGLang", "trtllm": "TensorRT-LLM"}
#: container images used when none is given (pin a release tag in production)
DEFAULT_IMAGES = {"vllm": "vllm/vllm-openai:latest", "sglang": "lmsysorg/sglang:latest",
                  "trtllm": "nvcr.io/nvidia/tensorrt-llm/release:latest"}
#: the engines' default HTTP ports
DEFAULT_PORTS = {"vllm": 8000, "sglang": 30000, "trtllm": 8000}
SGLANG_BOOTSTRAP_PORT = 8998
#: where the k8s manifests mount the TensorRT-LLM YAML files
K8S_CONFIG_DIR = "/etc/planner/"
#: max context length granularity
CONTEXT_ROUNDING = 256
#: GPUs one pod is assumed to get when the GPU's system cannot be looked up
DEFAULT_GPUS_PER_NODE = 8

Role = Literal["prefill", "decode"]

_ROUTERS = {
    "vllm": ("a prefill/decode proxy in front of both pools (vLLM's disaggregated-serving example proxy, "
             "llm-d or NVIDIA Dynamo): it sends each request to a prefill worker, then to a decode worker "
             "that pulls the KV cache over NIXL"),
    "sglang": ("the SGLang router in PD mode: python3 -m sglang_router.launch_router --pd-disaggregation "
               "--prefill http://<prefill>:30000 8998 --decode http://<decode>:30000 (or its Kubernetes "
               "service discovery with prefill / decode pod selectors)"),
    "trtllm": ("the TensorRT-LLM disaggregated frontend, trtllm-serve disaggregated --config_file "
               "<disagg config> listing the context (prefill) and generation (decode) servers"),
}


# --------------------------------------------------------------------------------------------------
# one engine launch
# --------------------------------------------------------------------------------------------------

@dataclass
class Launch:
    """One engine process: ``program + args`` (the model then flags with their values), files it reads
    (name -> text, written before the launch), notes for the reader and the ports it listens on."""

    engine: str
    program: list[str]
    args: list[str]
    notes: list[str] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)
    port: int = 8000
    extra_ports: dict[str, int] = field(default_factory=dict)

    @property
    def flags(self) -> list[str]:
        return [a for a in self.args if a.startswith("--")]

    def value(self, flag: str) -> str | None:
        """The value following ``flag`` (None if absent or a bare switch)."""
        if flag not in self.args:
            return None
        i = self.args.index(flag)
        nxt = self.args[i + 1] if i + 1 < len(self.args) else None
        return None if nxt is None or nxt.startswith("--") else nxt


class _Args:
    def __init__(self) -> None:
        self.tokens: list[str] = []

    def add(self, flag: str, value: Any = None) -> None:
        self.tokens.append(flag)
        if value is not None:
            self.tokens.append(value if isinstance(value, str) else f"{value:g}" if isinstance(value, float)
                               else str(value))


def _model_id(model: ModelSpec) -> str:
    return model.hf_id or model.name


def _max_len(model: ModelSpec, isl: int, osl: int, notes: list[str]) -> int:
    """``isl + osl`` rounded up to :data:`CONTEXT_ROUNDING`, not beyond the model's context."""
    need = isl + osl
    length = -(-need // CONTEXT_ROUNDING) * CONTEXT_ROUNDING
    cap = model.max_seq_len
    if cap and length > cap:
        length = max(cap, need)
        if need > cap:
            notes.append(f"isl + osl = {need} exceeds {model.name}'s {cap}-token context")
    return length


def _kv_fp8(plan: ServingPlan) -> bool:
    return kv_dtype_bytes(plan) == 1


def _fraction(engine: str, memory_fraction: float | None) -> float:
    return BACKENDS[engine].mem_fraction if memory_fraction is None else float(memory_fraction)


def _common_notes(engine: str, model: ModelSpec, plan: ServingPlan) -> list[str]:
    notes = []
    if plan.backend != engine:
        notes.append(f"the plan was estimated with the {ENGINE_NAMES[plan.backend]} engine constants; "
                     f"{ENGINE_NAMES[engine]} timings will differ")
    if model.hf_id is None:
        notes.append(f"{model.name} has no Hugging Face id: replace {model.name!r} with the checkpoint path")
    return notes


def _quant_notes(engine: str, precision: str) -> list[str]:
    eng = ENGINE_NAMES[engine]
    if engine == "trtllm":
        return {
            "fp8": [f"{eng} takes the quantization from the checkpoint: fp8 weights need an FP8 checkpoint "
                    "(NVIDIA ModelOpt export, or a natively FP8 model such as DeepSeek-V3)"],
            "fp4": [f"{eng} takes the quantization from the checkpoint: fp4 weights need an NVFP4 checkpoint "
                    "(NVIDIA ModelOpt export)"],
            "int4": [f"{eng} takes the quantization from the checkpoint: int4 weights need an int4 AWQ / GPTQ "
                     "(W4A16) checkpoint"],
        }.get(precision, [])
    return {
        "fp8": ["--quantization fp8 quantizes a 16-bit checkpoint to FP8 at load; a pre-quantized FP8 checkpoint "
                "is read as such (if its config names another method, e.g. compressed-tensors or modelopt, pass "
                "that method instead)"],
        "fp4": ["--quantization modelopt_fp4 needs an NVFP4 checkpoint exported by NVIDIA ModelOpt "
                "(a 16-bit checkpoint must be quantized first)"],
        "int4": [f"int4 weights need an AWQ or GPTQ checkpoint; {eng} reads the method from its "
                 "quantization_config (no --quantization flag emitted)"],
    }.get(precision, [])


_QUANT_FLAG = {"fp8": "fp8", "fp4": "modelopt_fp4"}  # vLLM and SGLang --quantization values


def _precision_flags(a: "_Args", notes: list[str], engine: str, plan: ServingPlan, kv_fp8: str) -> None:
    """vLLM's and SGLang's shared weight / KV precision flags (``--quantization``, ``--dtype``,
    ``--kv-cache-dtype``; the fp8 KV value is spelled per engine) and their notes."""
    if plan.precision in _QUANT_FLAG:
        a.add("--quantization", _QUANT_FLAG[plan.precision])
    if plan.precision == "fp16":
        a.add("--dtype", "float16")
    notes += _quant_notes(engine, plan.precision)
    if _kv_fp8(plan):
        a.add("--kv-cache-dtype", kv_fp8)


def vllm_launch(model: ModelSpec, plan: ServingPlan, concurrency: int, isl: int, osl: int,
                memory_fraction: float | None = None, *, role: Role | None = None, port: int | None = None,
                config_dir: str = "") -> Launch:
    """The ``vllm serve`` process for one worker of ``plan`` (see the module doc for the mapping)."""
    del config_dir  # vLLM reads no files
    notes = _common_notes("vllm", model, plan)
    port = DEFAULT_PORTS["vllm"] if port is None else port
    mesh = plan.tp * plan.dp
    ep, moe_tp = plan.expert_layout(model)
    per_rank = max(1, math.ceil(concurrency / plan.dp))
    a = _Args()
    a.add("--host", "0.0.0.0")
    a.add("--port", port)
    a.add("--tensor-parallel-size", plan.tp)
    a.add("--pipeline-parallel-size", plan.pp)
    a.add("--data-parallel-size", plan.dp)
    if model.is_moe and ep > 1:
        a.add("--enable-expert-parallel")
        if ep != mesh:
            notes.append(f"vLLM's expert parallelism spans all tp x dp = {mesh} GPUs: the plan's ep {ep} x "
                         f"moe_tp {moe_tp} runs as ep {mesh}")
    elif model.is_moe and mesh > 1:
        notes.append(f"experts tensor-parallel over the tp x dp = {mesh} GPUs (the plan's ep = 1)")
    a.add("--max-num-seqs", per_rank)
    if plan.dp > 1:
        notes.append(f"--max-num-seqs is per data-parallel rank: {per_rank} x {plan.dp} ranks for "
                     f"{concurrency} concurrent requests")
    a.add("--max-model-len", _max_len(model, isl, osl, notes))
    a.add("--gpu-memory-utilization", _fraction("vllm", memory_fraction))
    _precision_flags(a, notes, "vllm", plan, kv_fp8="fp8")
    if role is not None:
        a.add("--kv-transfer-config", json.dumps({"kv_connector": "NixlConnector", "kv_role": "kv_both"},
                                                 separators=(",", ":")))
        notes.append("the NixlConnector needs the nixl package (and UCX-capable NICs across nodes)")
    return Launch("vllm", ["vllm", "serve"], [_model_id(model), *a.tokens], notes, {}, port)


def sglang_launch(model: ModelSpec, plan: ServingPlan, concurrency: int, isl: int, osl: int,
                  memory_fraction: float | None = None, *, role: Role | None = None, port: int | None = None,
                  config_dir: str = "") -> Launch:
    """The ``python3 -m sglang.launch_server`` process for one worker of ``plan``."""
    del config_dir
    notes = _common_notes("sglang", model, plan)
    port = DEFAULT_PORTS["sglang"] if port is None else port
    mesh = plan.tp * plan.dp
    ep, _ = plan.expert_layout(model)
    dp_attention = model.is_moe and plan.dp > 1
    a = _Args()
    a.add("--model-path", _model_id(model))
    a.add("--host", "0.0.0.0")
    a.add("--port", port)
    a.add("--tp-size", mesh if dp_attention else plan.tp)
    a.add("--dp-size", plan.dp)
    if dp_attention:
        a.add("--enable-dp-attention")
        notes.append(f"with DP attention SGLang's --tp-size is the whole tp x dp = {mesh}-GPU mesh; attention "
                     f"runs TP {plan.tp} in each of the {plan.dp} DP groups")
    elif plan.dp > 1:
        notes.append(f"--dp-size {plan.dp}: {plan.dp} replicas of tp {plan.tp} behind SGLang's data-parallel "
                     "controller")
    a.add("--pp-size", plan.pp)
    if model.is_moe and ep > 1:
        a.add("--ep-size", ep)
    a.add("--max-running-requests", concurrency)
    a.add("--context-length", _max_len(model, isl, osl, notes))
    a.add("--mem-fraction-static", _fraction("sglang", memory_fraction))
    _precision_flags(a, notes, "sglang", plan, kv_fp8="fp8_e4m3")
    extra: dict[str, int] = {}
    if role is not None:
        a.add("--disaggregation-mode", role)
        a.add("--disaggregation-transfer-backend", "mooncake")
        if role == "prefill":
            a.add("--disaggregation-bootstrap-port", SGLANG_BOOTSTRAP_PORT)
            extra["bootstrap"] = SGLANG_BOOTSTRAP_PORT
        notes.append("the Mooncake transfer engine needs RDMA NICs (--disaggregation-transfer-backend nixl is the "
                     "alternative)")
    return Launch("sglang", ["python3", "-m", "sglang.launch_server"], a.tokens, notes, {}, port, extra)


class _Dumper(yaml.SafeDumper):
    """Block style, no anchors / aliases, multi-line strings as ``|`` literals."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _str_representer(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    style = "|" if "\n" in data else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_Dumper.add_representer(str, _str_representer)


def _yaml(obj: Any) -> str:
    return yaml.dump(obj, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=1 << 16)


def _trtllm_yaml(options: dict[str, Any]) -> str:
    return _yaml(options)


def trtllm_launch(model: ModelSpec, plan: ServingPlan, concurrency: int, isl: int, osl: int,
                  memory_fraction: float | None = None, *, role: Role | None = None, port: int | None = None,
                  config_dir: str = "") -> Launch:
    """The ``trtllm-serve`` process for one worker of ``plan`` and its extra LLM API options file."""
    notes = _common_notes("trtllm", model, plan)
    port = DEFAULT_PORTS["trtllm"] if port is None else port
    mesh = plan.tp * plan.dp
    ep, moe_tp = plan.expert_layout(model)
    attn_dp = model.is_moe and plan.dp > 1
    if attn_dp:
        tp_size, per_rank = mesh, max(1, math.ceil(concurrency / mesh))
        if plan.tp > 1:
            notes.append(f"TensorRT-LLM's attention DP runs attention with TP 1 on each of the {mesh} ranks: the "
                         f"plan's attention tp {plan.tp} x dp {plan.dp} runs as dp {mesh}")
        notes.append(f"--max_batch_size is per attention-DP rank: {per_rank} x {mesh} ranks for {concurrency} "
                     "concurrent requests")
    elif plan.dp > 1:
        tp_size, per_rank = plan.tp, max(1, math.ceil(concurrency / plan.dp))
        notes.append(f"TensorRT-LLM serves a dense model without in-server data parallelism: run {plan.dp} of these "
                     f"servers (tp {plan.tp}, --max_batch_size {per_rank} each) behind a load balancer")
    else:
        tp_size, per_rank = plan.tp, concurrency
    if role == "prefill":
        num_tokens = max(MAX_BATCHED_TOKENS, isl)
    elif role == "decode":
        num_tokens = max(256, per_rank)
    else:
        num_tokens = max(MAX_BATCHED_TOKENS, isl + per_rank)
    num_tokens = -(-num_tokens // 256) * 256
    frac = _fraction("trtllm", memory_fraction)
    options: dict[str, Any] = {}
    if attn_dp:
        options["enable_attention_dp"] = True
    kv: dict[str, Any] = {"free_gpu_memory_fraction": frac}  # the YAML object replaces the CLI-built one
    if _kv_fp8(plan):
        kv["dtype"] = "fp8"
    options["kv_cache_config"] = kv
    if plan.precision == "fp16":
        options["dtype"] = "float16"
    if role is not None:
        options["cache_transceiver_config"] = {"backend": "DEFAULT"}
        if role == "prefill":
            options["disable_overlap_scheduler"] = True
    name = f"{config_dir}{role + '-' if role else ''}extra-llm-api-options.yaml"
    a = _Args()
    a.add("--host", "0.0.0.0")
    a.add("--port", port)
    a.add("--backend", "pytorch")
    a.add("--tp_size", tp_size)
    a.add("--pp_size", plan.pp)
    if model.is_moe:
        a.add("--ep_size", ep)
        if moe_tp > 1:
            notes.append(f"expert TP {moe_tp} = tp_size / ep_size")
    a.add("--max_batch_size", per_rank)
    a.add("--max_num_tokens", num_tokens)
    a.add("--max_seq_len", _max_len(model, isl, osl, notes))
    a.add("--kv_cache_free_gpu_memory_fraction", frac)
    a.add("--extra_llm_api_options", name)
    notes += _quant_notes("trtllm", plan.precision)
    return Launch("trtllm", ["trtllm-serve"], [_model_id(model), *a.tokens], notes, {name: _trtllm_yaml(options)}, port)


LAUNCHERS = {"vllm": vllm_launch, "sglang": sglang_launch, "trtllm": trtllm_launch}


def serving_launch(engine: str, model: ModelSpec, plan: ServingPlan, concurrency: int, isl: int, osl: int,
                   memory_fraction: float | None = None, **kw: Any) -> Launch:
    """:class:`Launch` of ``engine`` ("vllm", "sglang" or "trtllm")."""
    if engine not in LAUNCHERS:
        raise ValueError(f"unknown serving engine {engine!r}; choose from {', '.join(ENGINES)}")
    return LAUNCHERS[engine](model, plan, concurrency, isl, osl, memory_fraction, **kw)


# --------------------------------------------------------------------------------------------------
# text
# --------------------------------------------------------------------------------------------------

def plan_text(model: ModelSpec, plan: ServingPlan) -> str:
    ep, moe_tp = plan.expert_layout(model)
    parts = [f"tp={plan.tp}", f"dp={plan.dp}", f"pp={plan.pp}"]
    if model.is_moe:
        parts += [f"ep={ep}", f"moe_tp={moe_tp}"]
    return (" ".join(parts) + f", {plan.precision} weights, {'fp8' if _kv_fp8(plan) else '16-bit'} KV cache"
            f" ({plan.gpus} GPU{'s' if plan.gpus != 1 else ''} per worker)")


def _prediction(est: ServingEstimate) -> str:
    return (f"predicted at concurrency {est.concurrency}, ISL {est.isl}, OSL {est.osl}: TTFT {est.ttft_ms:.1f} ms, "
            f"TPOT {est.tpot_ms:.2f} ms, {est.tokens_per_s_per_gpu:.1f} output tok/s/GPU, "
            f"{est.tokens_per_s_per_user:.1f} tok/s/user ({est.plan.backend} engine constants)")


def _header(engine: str, model: ModelSpec, plan: ServingPlan, gpu: str | None, role: str | None,
            predicted: list[str]) -> list[str]:
    what = f"{role} worker" if role else "worker"
    return [f"planner: {ENGINE_NAMES[engine]} {what} for {model.name} ({_model_id(model)}) on {gpu or 'unknown GPU'}",
            f"plan: {plan_text(model, plan)}", *predicted]


def _heredoc(name: str, text: str) -> str:
    return f"cat > {shlex.quote(name)} <<'EOF'\n{text.rstrip()}\nEOF"


def _format_command(tokens: list[str]) -> str:
    """One flag (with its value) per continuation line."""
    lines: list[list[str]] = [[]]
    for t in tokens:
        if t.startswith("--") and lines[-1]:
            lines.append([])
        lines[-1].append(shlex.quote(t))
    return " \\\n  ".join(" ".join(line) for line in lines)


def render_launch(launch: Launch, header: list[str]) -> str:
    out = [f"# {h}" for h in header]
    out += [f"# note: {n}" for n in launch.notes]
    out += [_heredoc(name, text) for name, text in launch.files.items()]
    out.append(_format_command(launch.program + launch.args))
    return "\n".join(out) + "\n"


def _command(engine: str, model: ModelSpec, plan: ServingPlan, concurrency: int, isl: int, osl: int,
             memory_fraction: float | None, role: Role | None, estimate: ServingEstimate | None,
             port: int | None) -> str:
    launch = serving_launch(engine, model, plan, concurrency, isl, osl, memory_fraction, role=role, port=port)
    predicted = [_prediction(estimate)] if estimate is not None else [
        f"concurrency {concurrency}, ISL {isl}, OSL {osl} (no estimate given: no predicted TTFT / TPOT)"]
    gpu = estimate.gpu if estimate is not None else None
    return render_launch(launch, _header(engine, model, plan, gpu, role, predicted))


def vllm_command(model: ModelSpec, plan: ServingPlan, concurrency: int, isl: int, osl: int,
                 memory_fraction: float | None = None, *, role: Role | None = None,
                 estimate: ServingEstimate | None = None, port: int | None = None) -> str:
    """A ``vllm serve`` command for one worker of ``plan`` at ``concurrency`` requests of ``isl + osl`` tokens
    (``memory_fraction`` defaults to the planner's vLLM assumption, 0.9; ``estimate`` adds the predictions to
    the header; ``role`` makes it a disaggregated prefill / decode worker)."""
    return _command("vllm", model, plan, concurrency, isl, osl, memory_fraction, role, estimate, port)


def sglang_command(model: ModelSpec, plan: ServingPlan, concurrency: int, isl: int, osl: int,
                   memory_fraction: float | None = None, *, role: Role | None = None,
                   estimate: ServingEstimate | None = None, port: int | None = None) -> str:
    """A ``python3 -m sglang.launch_server`` command (as :func:`vllm_command`; memory fraction default 0.88)."""
    return _command("sglang", model, plan, concurrency, isl, osl, memory_fraction, role, estimate, port)


def trtllm_command(model: ModelSpec, plan: ServingPlan, concurrency: int, isl: int, osl: int,
                   memory_fraction: float | None = None, *, role: Role | None = None,
                   estimate: ServingEstimate | None = None, port: int | None = None) -> str:
    """A ``trtllm-serve`` command with its ``--extra_llm_api_options`` YAML written by a heredoc first."""
    return _command("trtllm", model, plan, concurrency, isl, osl, memory_fraction, role, estimate, port)


COMMANDS = {"vllm": vllm_command, "sglang": sglang_command, "trtllm": trtllm_command}


# --------------------------------------------------------------------------------------------------
# aggregated and disaggregated answers
# --------------------------------------------------------------------------------------------------

def prefill_concurrency(dis: DisaggChoice) -> int:
    """Requests one prefill worker may hold at once: every decode slot has at most one request in prefill,
    spread over the prefill workers (the planner's prefill batch is 1; this is a cap, not a target)."""
    return max(1, math.ceil(dis.decode_workers * dis.decode.concurrency / max(1, dis.prefill_workers)))


def _disagg_summary(model: ModelSpec, dis: DisaggChoice, engine: str) -> list[str]:
    d = dis.decode
    return [
        f"planner: disaggregated {ENGINE_NAMES[engine]} serving of {model.name} ({_model_id(model)}) on "
        f"{dis.gpus} x {d.gpu}: {dis.prefill_workers} prefill worker(s) + {dis.decode_workers} decode worker(s) "
        f"in {dis.groups} group(s)",
        f"prefill plan: {plan_text(model, dis.prefill_plan)}",
        f"decode plan: {plan_text(model, d.plan)}",
        f"predicted at decode batch {d.concurrency}, ISL {d.isl}, OSL {d.osl}: TTFT {dis.ttft_ms:.1f} ms, "
        f"TPOT {dis.tpot_ms:.2f} ms, {dis.tokens_per_s_per_gpu:.1f} output tok/s/GPU, "
        f"{dis.tokens_per_s_per_user:.1f} tok/s/user ({d.plan.backend} engine constants)",
        f"router: {_ROUTERS[engine]}",
    ]


def _role_predictions(dis: DisaggChoice, role: str) -> list[str]:
    b = dis.estimate.breakdown
    if role == "prefill":
        return [f"run {dis.prefill_workers} of these; predicted TTFT {dis.ttft_ms:.1f} ms (prefill "
                f"{1e3 * b.get('prefill_s', 0.0):.1f} ms, KV transfer {1e3 * b.get('kv_transfer_s', 0.0):.1f} ms, "
                f"queueing {1e3 * b.get('ttft_wait_s', 0.0):.1f} ms)"]
    d = dis.decode
    return [f"run {dis.decode_workers} of these; predicted TPOT {d.tpot_ms:.2f} ms at batch {d.concurrency}, "
            f"{d.tokens_per_s_per_gpu:.1f} output tok/s/GPU of the decode pool"]


def _role_launches(model: ModelSpec, dis: DisaggChoice, engine: str, config_dir: str, same_port: bool
                   ) -> dict[str, Launch]:
    d = dis.decode
    base = DEFAULT_PORTS[engine]
    ports = {"prefill": base if same_port else base + 1, "decode": base if same_port else base + 2}
    return {
        "prefill": serving_launch(engine, model, dis.prefill_plan, prefill_concurrency(dis), d.isl, d.osl,
                                  role="prefill", port=ports["prefill"], config_dir=config_dir),
        "decode": serving_launch(engine, model, d.plan, d.concurrency, d.isl, d.osl,
                                 role="decode", port=ports["decode"], config_dir=config_dir),
    }


def trtllm_disagg_config(prefill_urls: list[str], decode_urls: list[str], port: int = 8000) -> str:
    """The ``trtllm-serve disaggregated --config_file`` YAML (``host:port`` urls)."""
    cfg = {"hostname": "0.0.0.0", "port": port, "backend": "pytorch",
           "context_servers": {"num_instances": len(prefill_urls), "urls": prefill_urls},
           "generation_servers": {"num_instances": len(decode_urls), "urls": decode_urls}}
    return _yaml(cfg)


def aggregated_commands(model: ModelSpec, agg: AggChoice, engine: str) -> str:
    """The command of one aggregated worker, its header naming the replicas to run."""
    e = agg.estimate
    launch = serving_launch(engine, model, e.plan, e.concurrency, e.isl, e.osl)
    replicas = (f"deploy {agg.replicas} replica(s) of this worker ({agg.gpus} GPUs in all) behind a load balancer"
                + (f"; ${agg.cost_per_million_tokens_usd:.3f} per million output tokens"
                   if agg.cost_per_million_tokens_usd is not None else ""))
    return render_launch(launch, _header(engine, model, e.plan, e.gpu, None, [_prediction(e), replicas]))


def disaggregated_commands(model: ModelSpec, dis: DisaggChoice, engine: str) -> str:
    """The prefill and the decode worker commands one after the other (TensorRT-LLM: and its frontend)."""
    launches = _role_launches(model, dis, engine, "", same_port=False)
    plans = {"prefill": dis.prefill_plan, "decode": dis.decode.plan}
    out = [f"# {line}" for line in _disagg_summary(model, dis, engine)]
    for role, launch in launches.items():
        out += ["", f"# ===== {role} worker =====",
                render_launch(launch, _header(engine, model, plans[role], dis.decode.gpu, role,
                                              _role_predictions(dis, role))).rstrip("\n")]
    if engine == "trtllm":
        cfg = trtllm_disagg_config([f"localhost:{launches['prefill'].port}"], [f"localhost:{launches['decode'].port}"])
        out += ["", "# ===== disaggregated frontend =====",
                "# list every prefill (context) and decode (generation) server in the urls, host:port each",
                _heredoc("disagg-config.yaml", cfg), "trtllm-serve disaggregated --config_file disagg-config.yaml"]
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------------------------------
# Kubernetes
# --------------------------------------------------------------------------------------------------

def _k8s_name(text: str) -> str:
    name = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")
    return (name[:40].rstrip("-")) or "model"


def _gpus_per_node(gpu: str) -> int:
    try:
        from ..catalog import get_system
        return int(get_system(gpu).node.accelerators_per_node)
    except Exception:  # a GPU name the catalog does not know
        return DEFAULT_GPUS_PER_NODE


def _dump(docs: list[tuple[list[str], dict[str, Any]]], header: list[str]) -> str:
    out = [f"# {h}" for h in header]
    for comments, doc in docs:
        out.append("---")
        out += [f"# {c}" for c in comments]
        out.append(_yaml(doc).rstrip("\n"))
    return "\n".join(out) + "\n"


def _workload(name: str, component: str, model: ModelSpec, launch: Launch, replicas: int, gpus: int,
              image: str, annotations: dict[str, str], headless: bool
              ) -> list[tuple[list[str], dict[str, Any]]]:
    """(ConfigMap for the launch's files,) Deployment and Service of one pool."""
    labels = {"app.kubernetes.io/name": _k8s_name(model.name), "app.kubernetes.io/component": component,
              "app.kubernetes.io/managed-by": "planner"}
    ports = [{"name": "http", "containerPort": launch.port}]
    ports += [{"name": k, "containerPort": v} for k, v in launch.extra_ports.items()]
    mounts: list[dict[str, Any]] = [{"name": "dshm", "mountPath": "/dev/shm"}]
    volumes: list[dict[str, Any]] = [{"name": "dshm", "emptyDir": {"medium": "Memory"}}]
    docs: list[tuple[list[str], dict[str, Any]]] = []
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


def _multi_node_note(gpus: int, gpu: str) -> list[str]:
    per_node = _gpus_per_node(gpu)
    if gpus > per_node:
        return [f"a worker of {gpus} GPUs spans {math.ceil(gpus / per_node)} nodes of {per_node}: one pod cannot "
                "hold it, run it as a multi-node group (e.g. a LeaderWorkerSet) instead of the Deployment below"]
    return []


def _annotations(plan: str, **predicted: float) -> dict[str, str]:
    out = {"planner/plan": plan}
    out.update({f"planner/predicted-{k.replace('_', '-')}": str(v) if isinstance(v, int) else f"{v:.2f}"
                for k, v in predicted.items()})
    return out


def k8s_manifest(model: ModelSpec, result_disagg: DisaggChoice, backend: str, image: str | None = None) -> str:
    """Kubernetes YAML for a disaggregated pair: a Deployment and a (headless) Service for the prefill and for
    the decode pool (replicas = worker counts, ``nvidia.com/gpu`` = GPUs per worker), ConfigMaps for
    TensorRT-LLM's option files and its disaggregated frontend config."""
    if backend not in ENGINES:
        raise ValueError(f"unknown serving engine {backend!r}; choose from {', '.join(ENGINES)}")
    dis = result_disagg
    image = image or DEFAULT_IMAGES[backend]
    base = _k8s_name(model.name)
    launches = _role_launches(model, dis, backend, K8S_CONFIG_DIR, same_port=True)
    plans = {"prefill": dis.prefill_plan, "decode": dis.decode.plan}
    counts = {"prefill": dis.prefill_workers, "decode": dis.decode_workers}
    header = _disagg_summary(model, dis, backend)
    header += ["gated checkpoints: add an HF_TOKEN env var from a Secret to the containers; mount a model cache "
               "volume to avoid downloading per pod"]
    for role in ("prefill", "decode"):
        header += [f"{role}: {n}" for n in _multi_node_note(plans[role].gpus, dis.decode.gpu)]
    docs: list[tuple[list[str], dict[str, Any]]] = []
    for role in ("prefill", "decode"):
        plan = plans[role]
        ann = (_annotations(plan_text(model, plan), ttft_ms=dis.ttft_ms) if role == "prefill" else
               _annotations(plan_text(model, plan), tpot_ms=dis.tpot_ms, batch=dis.decode.concurrency,
                            output_tokens_per_s_per_gpu=dis.decode.tokens_per_s_per_gpu))
        docs += _workload(f"{base}-{role}", role, model, launches[role], counts[role], plan.gpus, image, ann,
                          headless=True)
    if backend == "trtllm":
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


def k8s_manifest_agg(model: ModelSpec, agg: AggChoice, backend: str, image: str | None = None) -> str:
    """Kubernetes YAML for aggregated serving: one Deployment of ``agg.replicas`` workers and its Service."""
    if backend not in ENGINES:
        raise ValueError(f"unknown serving engine {backend!r}; choose from {', '.join(ENGINES)}")
    e = agg.estimate
    image = image or DEFAULT_IMAGES[backend]
    base = _k8s_name(model.name)
    launch = serving_launch(backend, model, e.plan, e.concurrency, e.isl, e.osl, config_dir=K8S_CONFIG_DIR)
    header = [f"planner: aggregated {ENGINE_NAMES[backend]} serving of {model.name} ({_model_id(model)}) on "
              f"{agg.gpus} x {e.gpu}: {agg.replicas} replica(s)",
              f"plan: {plan_text(model, e.plan)}", _prediction(e),
              "the Service spreads requests over the replicas; gated checkpoints: add an HF_TOKEN env var from a "
              "Secret", *_multi_node_note(e.plan.gpus, e.gpu)]
    ann = _annotations(plan_text(model, e.plan), ttft_ms=e.ttft_ms, tpot_ms=e.tpot_ms, concurrency=e.concurrency,
                       output_tokens_per_s_per_gpu=e.tokens_per_s_per_gpu)
    docs = _workload(base, "worker", model, launch, agg.replicas, e.plan.gpus, image, ann, headless=False)
    return _dump(docs, header)


# --------------------------------------------------------------------------------------------------
# dispatch
# --------------------------------------------------------------------------------------------------

def export_serving(result: ServeSearchResult, model: ModelSpec, target: str, choice: str = "best", *,
                   backend: str | None = None, image: str | None = None) -> str:
    """The text of the chosen plan (``choice`` "best", "aggregated" or "disaggregated") for ``target``:
    an engine command ("vllm", "sglang", "trtllm"; a disaggregated answer prints the prefill and the decode
    command one after the other) or Kubernetes YAML ("k8s", for the engine ``backend``, default the one the
    plan was estimated with)."""
    if target not in TARGETS:
        raise ValueError(f"unknown export target {target!r}; choose from {', '.join(TARGETS)}")
    which = result.best if choice == "best" else choice
    if which not in ("aggregated", "disaggregated"):
        raise ValueError(f"unknown plan choice {choice!r}; choose from best, aggregated, disaggregated")
    picked = getattr(result, which)
    if picked is None:
        raise ValueError(f"the search found no {which} plan to export")
    if target == "k8s":
        if which == "aggregated":
            return k8s_manifest_agg(model, picked, backend or picked.estimate.plan.backend, image)
        return k8s_manifest(model, picked, backend or picked.decode.plan.backend, image)
    if which == "aggregated":
        return aggregated_commands(model, picked, target)
    return disaggregated_commands(model, picked, target)


__all__ = ["COMMANDS", "DEFAULT_IMAGES", "DEFAULT_PORTS", "ENGINES", "Launch", "SGLANG_FLAGS", "TARGETS",
           "TRTLLM_DISAGG_CONFIG_KEYS", "TRTLLM_EXTRA_OPTIONS_KEYS", "TRTLLM_FLAGS", "VLLM_FLAGS",
           "aggregated_commands", "disaggregated_commands", "export_serving", "k8s_manifest", "k8s_manifest_agg",
           "plan_text", "prefill_concurrency", "render_launch", "serving_launch", "sglang_command",
           "sglang_launch", "trtllm_command", "trtllm_disagg_config", "trtllm_launch", "vllm_command",
           "vllm_launch"]
