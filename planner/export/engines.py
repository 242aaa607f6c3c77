"""Engine launch flags: one worker of a serving document as a vLLM, SGLang or TensorRT-LLM process.

A pool of a :class:`~planner.plans.documents.ServingDocument` (one worker: attention ``tp x dp``, ``pp``
stages, experts as ``ep x moe_tp`` over the ``tp x dp`` GPUs) becomes a :class:`Launch` (program, arguments,
files it reads, notes, ports):

* :func:`vllm_launch`   - ``vllm serve <model> ...``
* :func:`sglang_launch` - ``python3 -m sglang.launch_server --model-path <model> ...``
* :func:`trtllm_launch` - ``trtllm-serve <model> ...`` plus its ``--extra_llm_api_options`` YAML

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
  is refused (an :class:`ExportError`: launched as attention DP over ``tp x dp`` its weights, KV cache and times
  would not be the plan's; the search proposes no such layout for ``trtllm``); ``--max_batch_size`` is per
  attention-DP rank; quantization comes from the checkpoint (no flag). Options given in the YAML replace the
  whole CLI-built object (e.g. ``kv_cache_config``), so the memory fraction is repeated there.

Disaggregated workers: vLLM ``--kv-transfer-config`` with the NixlConnector (``kv_role: kv_both`` on both
sides), SGLang ``--disaggregation-mode prefill|decode`` (Mooncake transfer, prefill bootstrap port 8998),
TensorRT-LLM ``cache_transceiver_config`` in the options YAML.

Every flag emitted is listed in :data:`VLLM_FLAGS`, :data:`SGLANG_FLAGS` or :data:`TRTLLM_FLAGS` with the
source file it was checked against; the engine releases are :data:`planner.plans.serving.ENGINE_VERSIONS`.
Arguments are plain strings here; the renderers quote them for the shell (:mod:`.serving`) or YAML (:mod:`.k8s`).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, Literal

from ..plans.documents import ServingDocument, ServingPool
from ..plans.refs import model_from_spec
from ..plans.serving import MAX_BATCHED_TOKENS, engine_memory_fraction, kv_cache_fp8
from ..specs.model import ModelSpec
from .quoting import ExportError, yaml_text

# --------------------------------------------------------------------------------------------------
# documented names
# --------------------------------------------------------------------------------------------------

#: Every flag :func:`vllm_launch` may emit. Checked against vllm-project/vllm
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

#: Every flag :func:`sglang_launch` may emit. Checked against sgl-project/sglang
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

#: Every flag :func:`trtllm_launch` (and the disaggregated frontend) may emit. Checked against
#: NVIDIA/TensorRT-LLM ``tensorrt_llm/commands/serve.py`` (commit 4c05a74891e4; click options of ``serve``:
#: ``--host``, ``--port``, ``--backend``, ``--tp_size``, ``--pp_size``, ``--ep_size``, ``--max_batch_size``,
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
#: ``disable_overlap_scheduler``; ``dtype``; ``enable_chunked_prefill``: without it the PyTorch backend refuses
#: a prompt longer than ``max_num_tokens``, ``LLM._check_arguments``, NVIDIA/TensorRT-LLM PR #6259; on by
#: default only from PR #9499).
TRTLLM_EXTRA_OPTIONS_KEYS: frozenset[str] = frozenset({
    "enable_attention_dp", "kv_cache_config", "cache_transceiver_config", "disable_overlap_scheduler", "dtype",
    "enable_chunked_prefill",
})

#: Keys of the ``trtllm-serve disaggregated -c`` file, from ``tensorrt_llm/llmapi/disagg_utils.py``
#: (commit 3e53e4adfea6, ``extract_disagg_cfg`` / ``extract_ctx_gen_cfgs``: ``urls`` as ``host:port``).
TRTLLM_DISAGG_CONFIG_KEYS: frozenset[str] = frozenset({
    "hostname", "port", "backend", "context_servers", "generation_servers", "num_instances", "urls",
})

ENGINES = ("vllm", "sglang", "trtllm")
ENGINE_NAMES = {"vllm": "vLLM", "sglang": "SGLang", "trtllm": "TensorRT-LLM"}
#: the engines' default HTTP ports
DEFAULT_PORTS = {"vllm": 8000, "sglang": 30000, "trtllm": 8000}
SGLANG_BOOTSTRAP_PORT = 8998

Role = Literal["prefill", "decode"]


# --------------------------------------------------------------------------------------------------
# one worker of a document
# --------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Worker:
    """One engine instance of a serving document's pool: what every launcher reads."""

    model: ModelSpec = field(repr=False)  # the architecture (from the document's model.spec)
    model_name: str  # the document's model name (text only: headers, notes)
    model_id: str  # what the engine loads: the Hugging Face id, else the name
    has_hf_id: bool
    gpu: str  # the document's system name
    plan: Any  # planner ServingPlan (tp, dp, pp, ep, moe_tp, precision, kv_dtype, backend)
    concurrency: int
    max_model_len: int
    isl: int
    osl: int
    role: Role | None  # None for an aggregated worker
    workers: int


def worker(doc: ServingDocument, pool: ServingPool | None = None) -> Worker:
    """The :class:`Worker` of ``pool`` (default: the document's first pool)."""
    pool = doc.pools[0] if pool is None else pool
    model = model_from_spec(doc.model.spec, "serving plan")
    return Worker(model=model, model_name=doc.model.name, model_id=doc.model.hf_id or doc.model.name,
                  has_hf_id=bool(doc.model.hf_id), gpu=doc.system.name, plan=pool.plan,
                  concurrency=pool.concurrency, max_model_len=pool.max_model_len, isl=doc.traffic.isl,
                  osl=doc.traffic.osl, role=None if pool.role == "aggregated" else pool.role, workers=pool.workers)


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


def _fraction(engine: str, memory_fraction: float | None) -> float:
    return engine_memory_fraction(engine) if memory_fraction is None else float(memory_fraction)


def _common_notes(engine: str, w: Worker) -> list[str]:
    notes = []
    if w.plan.backend != engine:
        notes.append(f"the plan was estimated with the {ENGINE_NAMES[w.plan.backend]} engine constants; "
                     f"{ENGINE_NAMES[engine]} timings will differ")
    if not w.has_hf_id:
        notes.append(f"{w.model_name} has no Hugging Face id: replace {w.model_name!r} with the checkpoint path")
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


def _precision_flags(a: _Args, notes: list[str], engine: str, plan: Any, kv_fp8: str) -> None:
    """vLLM's and SGLang's shared weight / KV precision flags (``--quantization``, ``--dtype``,
    ``--kv-cache-dtype``; the fp8 KV value is spelled per engine) and their notes."""
    if plan.precision in _QUANT_FLAG:
        a.add("--quantization", _QUANT_FLAG[plan.precision])
    if plan.precision == "fp16":
        a.add("--dtype", "float16")
    notes += _quant_notes(engine, plan.precision)
    if kv_cache_fp8(plan):
        a.add("--kv-cache-dtype", kv_fp8)


# --------------------------------------------------------------------------------------------------
# the three engines
# --------------------------------------------------------------------------------------------------

def vllm_launch(w: Worker, memory_fraction: float | None = None, *, port: int | None = None,
                config_dir: str = "") -> Launch:
    """The ``vllm serve`` process for one worker (see the module doc for the mapping)."""
    del config_dir  # vLLM reads no files
    plan, model = w.plan, w.model
    notes = _common_notes("vllm", w)
    port = DEFAULT_PORTS["vllm"] if port is None else port
    mesh = plan.tp * plan.dp
    ep, moe_tp = plan.expert_layout(model)
    per_rank = max(1, math.ceil(w.concurrency / plan.dp))
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
                     f"{w.concurrency} concurrent requests")
    a.add("--max-model-len", w.max_model_len)
    a.add("--gpu-memory-utilization", _fraction("vllm", memory_fraction))
    _precision_flags(a, notes, "vllm", plan, kv_fp8="fp8")
    if w.role is not None:
        a.add("--kv-transfer-config", json.dumps({"kv_connector": "NixlConnector", "kv_role": "kv_both"},
                                                 separators=(",", ":")))
        notes.append("the NixlConnector needs the nixl package (and UCX-capable NICs across nodes)")
    return Launch("vllm", ["vllm", "serve"], [w.model_id, *a.tokens], notes, {}, port)


def sglang_launch(w: Worker, memory_fraction: float | None = None, *, port: int | None = None,
                  config_dir: str = "") -> Launch:
    """The ``python3 -m sglang.launch_server`` process for one worker."""
    del config_dir
    plan, model = w.plan, w.model
    notes = _common_notes("sglang", w)
    port = DEFAULT_PORTS["sglang"] if port is None else port
    mesh = plan.tp * plan.dp
    ep, _ = plan.expert_layout(model)
    dp_attention = model.is_moe and plan.dp > 1
    a = _Args()
    a.add("--model-path", w.model_id)
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
    a.add("--max-running-requests", w.concurrency)
    a.add("--context-length", w.max_model_len)
    a.add("--mem-fraction-static", _fraction("sglang", memory_fraction))
    _precision_flags(a, notes, "sglang", plan, kv_fp8="fp8_e4m3")
    extra: dict[str, int] = {}
    if w.role is not None:
        a.add("--disaggregation-mode", w.role)
        a.add("--disaggregation-transfer-backend", "mooncake")
        if w.role == "prefill":
            a.add("--disaggregation-bootstrap-port", SGLANG_BOOTSTRAP_PORT)
            extra["bootstrap"] = SGLANG_BOOTSTRAP_PORT
        notes.append("the Mooncake transfer engine needs RDMA NICs (--disaggregation-transfer-backend nixl is the "
                     "alternative)")
    return Launch("sglang", ["python3", "-m", "sglang.launch_server"], a.tokens, notes, {}, port, extra)


def trtllm_launch(w: Worker, memory_fraction: float | None = None, *, port: int | None = None,
                  config_dir: str = "") -> Launch:
    """The ``trtllm-serve`` process for one worker and its extra LLM API options file."""
    plan, model, concurrency, role = w.plan, w.model, w.concurrency, w.role
    notes = _common_notes("trtllm", w)
    port = DEFAULT_PORTS["trtllm"] if port is None else port
    mesh = plan.tp * plan.dp
    ep, moe_tp = plan.expert_layout(model)
    attn_dp = model.is_moe and plan.dp > 1
    if attn_dp:
        if plan.tp > 1:  # launched as attention dp tp x dp it would not be the plan (weights, KV and times differ)
            raise ExportError(f"TensorRT-LLM's attention DP runs attention with TP 1 on each of its ranks: it cannot "
                              f"launch the plan's attention tp {plan.tp} x dp {plan.dp}; plan with --backend trtllm "
                              f"(its layouts have tp 1 or dp 1) or export to vllm or sglang")
        tp_size, per_rank = mesh, max(1, math.ceil(concurrency / mesh))
        notes.append(f"--max_batch_size is per attention-DP rank: {per_rank} x {mesh} ranks for {concurrency} "
                     "concurrent requests")
    elif plan.dp > 1:
        tp_size, per_rank = plan.tp, max(1, math.ceil(concurrency / plan.dp))
        notes.append(f"TensorRT-LLM serves a dense model without in-server data parallelism: run {plan.dp} of these "
                     f"servers (tp {plan.tp}, --max_batch_size {per_rank} each) behind a load balancer")
    else:
        tp_size, per_rank = plan.tp, concurrency
    if role == "prefill":
        num_tokens = max(MAX_BATCHED_TOKENS, w.isl)
    elif role == "decode":
        num_tokens = max(256, per_rank)
    else:
        num_tokens = max(MAX_BATCHED_TOKENS, w.isl + per_rank)
    num_tokens = -(-num_tokens // 256) * 256
    frac = _fraction("trtllm", memory_fraction)
    options: dict[str, Any] = {}
    if attn_dp:
        options["enable_attention_dp"] = True
    kv: dict[str, Any] = {"free_gpu_memory_fraction": frac}  # the YAML object replaces the CLI-built one
    if kv_cache_fp8(plan):
        kv["dtype"] = "fp8"
    options["kv_cache_config"] = kv
    if plan.precision == "fp16":
        options["dtype"] = "float16"
    if role != "decode" and w.max_model_len > num_tokens:  # a prompt may be longer than one step's tokens
        options["enable_chunked_prefill"] = True
        notes.append(f"chunked prefill on: a prompt may exceed --max_num_tokens {num_tokens} (requests up to "
                     f"{w.max_model_len} tokens)")
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
    a.add("--max_seq_len", w.max_model_len)
    a.add("--kv_cache_free_gpu_memory_fraction", frac)
    a.add("--extra_llm_api_options", name)
    notes += _quant_notes("trtllm", plan.precision)
    return Launch("trtllm", ["trtllm-serve"], [w.model_id, *a.tokens], notes, {name: yaml_text(options)}, port)


LAUNCHERS = {"vllm": vllm_launch, "sglang": sglang_launch, "trtllm": trtllm_launch}


def serving_launch(engine: str, w: Worker, memory_fraction: float | None = None, **kw: Any) -> Launch:
    """:class:`Launch` of ``engine`` ("vllm", "sglang" or "trtllm") for the worker ``w``."""
    if engine not in LAUNCHERS:
        raise ExportError(f"unknown serving engine {engine!r}; choose from {', '.join(ENGINES)}")
    return LAUNCHERS[engine](w, memory_fraction, **kw)


def trtllm_disagg_config(prefill_urls: list[str], decode_urls: list[str], port: int = 8000) -> str:
    """The ``trtllm-serve disaggregated --config_file`` YAML (``host:port`` urls)."""
    cfg = {"hostname": "0.0.0.0", "port": port, "backend": "pytorch",
           "context_servers": {"num_instances": len(prefill_urls), "urls": prefill_urls},
           "generation_servers": {"num_instances": len(decode_urls), "urls": decode_urls}}
    return yaml_text(cfg)


def plan_text(model: ModelSpec, plan: Any) -> str:
    """The layout of one worker in one line (``tp=8 dp=1 pp=1, fp8 weights, fp8 KV cache (8 GPUs per worker)``)."""
    ep, moe_tp = plan.expert_layout(model)
    parts = [f"tp={plan.tp}", f"dp={plan.dp}", f"pp={plan.pp}"]
    if model.is_moe:
        parts += [f"ep={ep}", f"moe_tp={moe_tp}"]
    return (" ".join(parts) + f", {plan.precision} weights, {'fp8' if kv_cache_fp8(plan) else '16-bit'} KV cache"
            f" ({plan.gpus} GPU{'s' if plan.gpus != 1 else ''} per worker)")


__all__ = [
    "DEFAULT_PORTS",
    "ENGINES",
    "ENGINE_NAMES",
    "LAUNCHERS",
    "SGLANG_BOOTSTRAP_PORT",
    "SGLANG_FLAGS",
    "TRTLLM_DISAGG_CONFIG_KEYS",
    "TRTLLM_EXTRA_OPTIONS_KEYS",
    "TRTLLM_FLAGS",
    "VLLM_FLAGS",
    "Launch",
    "Worker",
    "plan_text",
    "serving_launch",
    "sglang_launch",
    "trtllm_disagg_config",
    "trtllm_launch",
    "vllm_launch",
    "worker",
]
