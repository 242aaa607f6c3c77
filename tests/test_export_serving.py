"""Serving exporters (:mod:`planner.export.serving`): vLLM / SGLang / TensorRT-LLM commands and Kubernetes YAML.

Results are real: ``search_serving`` for Qwen3-32B on 32 H200 and DeepSeek-V3 on 64 B200 (ISL 4000, OSL 500),
both of which give an aggregated and a disaggregated answer. The shell text is parsed back (comments and
heredocs aside) and every emitted flag is checked against the documented constants, the numbers against the
plan; the manifests are parsed with ``yaml.safe_load_all``.
"""

from __future__ import annotations

import json
import math
import re
import shlex
import shutil
import subprocess
from typing import Any

import pytest
import yaml

import planner
from planner.cost.serving import ServingPlan, kv_dtype_bytes
from planner.export.serving import (
    SGLANG_FLAGS, TRTLLM_DISAGG_CONFIG_KEYS, TRTLLM_EXTRA_OPTIONS_KEYS, TRTLLM_FLAGS, VLLM_FLAGS, export_serving,
    k8s_manifest, k8s_manifest_agg, prefill_concurrency, serving_launch, sglang_command, trtllm_command,
    vllm_command,
)
from planner.search.serving import search_serving

ENGINES = ("vllm", "sglang", "trtllm")
FLAGS = {"vllm": VLLM_FLAGS, "sglang": SGLANG_FLAGS, "trtllm": TRTLLM_FLAGS}
PROGRAMS = {"vllm": ["vllm", "serve"], "sglang": ["python3", "-m", "sglang.launch_server"],
            "trtllm": ["trtllm-serve"]}
ISL, OSL = 4000, 500


# --------------------------------------------------------------------------------------------------
# fixtures: real search results (module scope keeps the searches to one each)
# --------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def qwen():
    model = planner.get_model("qwen3-32b")
    return model, search_serving(model, planner.get_system("h200"), 32, ISL, OSL, 300, 10)


@pytest.fixture(scope="module")
def dsv3():
    model = planner.get_model("deepseek-v3")
    return model, search_serving(model, planner.get_system("b200"), 64, ISL, OSL, 300, 20)


@pytest.fixture(params=["qwen", "dsv3"])
def case(request):
    return request.getfixturevalue(request.param)


def test_both_answers_exist(qwen, dsv3):
    for model, r in (qwen, dsv3):
        assert r.aggregated is not None and r.disaggregated is not None, model.name


# --------------------------------------------------------------------------------------------------
# parsing helpers
# --------------------------------------------------------------------------------------------------

def parse_shell(text: str) -> tuple[list[list[str]], dict[str, str]]:
    """(commands as token lists, heredoc files name -> text) of exported shell text."""
    commands: list[list[str]] = []
    files: dict[str, str] = {}
    heredoc: tuple[str, str, list[str]] | None = None
    buf = ""
    for line in text.splitlines():
        if heredoc is not None:
            name, end, body = heredoc
            if line == end:
                files[name] = "\n".join(body) + "\n"
                heredoc = None
            else:
                body.append(line)
            continue
        if not buf and (not line.strip() or line.lstrip().startswith("#")):
            continue
        m = re.fullmatch(r"cat > (\S+) <<'(\w+)'", line)
        if m and not buf:
            heredoc = (m.group(1), m.group(2), [])
            continue
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        commands.append(shlex.split(buf + line))
        buf = ""
    assert heredoc is None and not buf, "unterminated heredoc or continuation"
    return commands, files


def opt(tokens: list[str], flag: str) -> str | None:
    if flag not in tokens:
        return None
    i = tokens.index(flag)
    return tokens[i + 1] if i + 1 < len(tokens) and not tokens[i + 1].startswith("--") else ""


def flags(tokens: list[str]) -> set[str]:
    return {t for t in tokens if t.startswith("--")}


def engine_commands(text: str, engine: str) -> list[list[str]]:
    cmds, _ = parse_shell(text)
    prog = PROGRAMS[engine]
    return [c for c in cmds if c[:len(prog)] == prog and c[len(prog):len(prog) + 1] != ["disaggregated"]]


def check_header(text: str, model, gpu: str) -> None:
    first = text.splitlines()[0]
    assert first.startswith("# planner:"), first
    head = "\n".join(line for line in text.splitlines()[:6] if line.startswith("#"))
    for word in (model.name, gpu, "TTFT", "TPOT", "tok/s/GPU", "tp="):
        assert word in head, (word, head)


def check_worker(engine: str, tokens: list[str], model, plan: ServingPlan, concurrency: int) -> None:
    """The numbers of one worker command against its plan (the engine mappings of the module doc)."""
    assert flags(tokens) <= FLAGS[engine], flags(tokens) - FLAGS[engine]
    ep, _ = plan.expert_layout(model)
    mesh = plan.tp * plan.dp
    kv8 = kv_dtype_bytes(plan) == 1
    quant = {"fp8": "fp8", "fp4": "modelopt_fp4"}.get(plan.precision)
    model_id = model.hf_id or model.name
    if engine == "vllm":
        assert tokens[2] == model_id
        assert int(opt(tokens, "--tensor-parallel-size")) == plan.tp
        assert int(opt(tokens, "--pipeline-parallel-size")) == plan.pp
        assert int(opt(tokens, "--data-parallel-size")) == plan.dp
        assert ("--enable-expert-parallel" in tokens) == (model.is_moe and ep > 1)
        seqs = int(opt(tokens, "--max-num-seqs"))  # per data-parallel rank
        assert seqs == math.ceil(concurrency / plan.dp) and seqs * plan.dp >= concurrency
        assert int(opt(tokens, "--max-model-len")) >= ISL + OSL
        assert opt(tokens, "--quantization") == quant
        assert opt(tokens, "--kv-cache-dtype") == ("fp8" if kv8 else None)
        gpus = plan.tp * plan.pp * plan.dp
    elif engine == "sglang":
        assert opt(tokens, "--model-path") == model_id
        dp_attention = model.is_moe and plan.dp > 1
        assert ("--enable-dp-attention" in tokens) == dp_attention
        tp_size = int(opt(tokens, "--tp-size"))
        assert tp_size == (mesh if dp_attention else plan.tp)
        assert int(opt(tokens, "--dp-size")) == plan.dp
        assert int(opt(tokens, "--pp-size")) == plan.pp
        assert opt(tokens, "--ep-size") == (str(ep) if model.is_moe and ep > 1 else None)
        assert int(opt(tokens, "--max-running-requests")) == concurrency  # the whole server
        assert int(opt(tokens, "--context-length")) >= ISL + OSL
        assert opt(tokens, "--quantization") == quant
        assert opt(tokens, "--kv-cache-dtype") == ("fp8_e4m3" if kv8 else None)
        gpus = tp_size * plan.pp * (1 if dp_attention else plan.dp)
    else:
        assert tokens[1] == model_id
        attn_dp = model.is_moe and plan.dp > 1
        tp_size = int(opt(tokens, "--tp_size"))
        assert tp_size == (mesh if attn_dp else plan.tp)
        assert int(opt(tokens, "--pp_size")) == plan.pp
        assert opt(tokens, "--ep_size") == (str(ep) if model.is_moe else None)
        batch = int(opt(tokens, "--max_batch_size"))  # per attention-DP rank
        assert batch == (math.ceil(concurrency / mesh) if attn_dp else concurrency)
        assert int(opt(tokens, "--max_seq_len")) >= ISL + OSL
        assert int(opt(tokens, "--max_num_tokens")) >= batch
        gpus = tp_size * plan.pp
    assert gpus == plan.gpus


def check_trtllm_options(path: str, files: dict[str, str], tokens: list[str], model, plan: ServingPlan) -> dict:
    options = yaml.safe_load(files[path])
    assert set(options) <= TRTLLM_EXTRA_OPTIONS_KEYS, set(options) - TRTLLM_EXTRA_OPTIONS_KEYS
    assert options.get("enable_attention_dp", False) == (model.is_moe and plan.dp > 1)
    kv = options["kv_cache_config"]
    assert kv.get("dtype") == ("fp8" if kv_dtype_bytes(plan) == 1 else None)
    # the YAML's kv_cache_config replaces the CLI-built one: the fraction must agree
    assert kv["free_gpu_memory_fraction"] == float(opt(tokens, "--kv_cache_free_gpu_memory_fraction"))
    return options


# --------------------------------------------------------------------------------------------------
# engine commands
# --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("engine", ENGINES)
def test_aggregated_command(case, engine):
    model, r = case
    agg = r.aggregated
    e = agg.estimate
    text = export_serving(r, model, engine, "aggregated")
    check_header(text, model, e.gpu)
    assert f"deploy {agg.replicas} replica" in text
    cmds = engine_commands(text, engine)
    assert len(cmds) == 1
    check_worker(engine, cmds[0], model, e.plan, e.concurrency)
    if engine == "trtllm":
        _, files = parse_shell(text)
        check_trtllm_options(opt(cmds[0], "--extra_llm_api_options"), files, cmds[0], model, e.plan)


@pytest.mark.parametrize("engine", ENGINES)
def test_disaggregated_commands(case, engine):
    model, r = case
    dis = r.disaggregated
    text = export_serving(r, model, engine, "disaggregated")
    check_header(text, model, dis.decode.gpu)
    assert "# ===== prefill worker =====" in text and "# ===== decode worker =====" in text
    assert text.index("prefill worker =====") < text.index("decode worker =====")
    prefill, decode = engine_commands(text, engine)
    check_worker(engine, prefill, model, dis.prefill_plan, prefill_concurrency(dis))
    check_worker(engine, decode, model, dis.decode.plan, dis.decode.concurrency)
    assert prefill_concurrency(dis) * dis.prefill_workers >= dis.decode.concurrency * dis.decode_workers
    cmds, files = parse_shell(text)
    if engine == "vllm":
        for tokens in (prefill, decode):
            cfg = json.loads(opt(tokens, "--kv-transfer-config"))
            assert cfg == {"kv_connector": "NixlConnector", "kv_role": "kv_both"}
        assert opt(prefill, "--port") != opt(decode, "--port")
    elif engine == "sglang":
        assert opt(prefill, "--disaggregation-mode") == "prefill"
        assert opt(decode, "--disaggregation-mode") == "decode"
        assert opt(prefill, "--disaggregation-bootstrap-port") == "8998"
    else:
        p_opts = check_trtllm_options(opt(prefill, "--extra_llm_api_options"), files, prefill, model, dis.prefill_plan)
        d_opts = check_trtllm_options(opt(decode, "--extra_llm_api_options"), files, decode, model, dis.decode.plan)
        assert p_opts["cache_transceiver_config"] == d_opts["cache_transceiver_config"] == {"backend": "DEFAULT"}
        assert p_opts["disable_overlap_scheduler"] is True
        frontend = [c for c in cmds if c[:2] == ["trtllm-serve", "disaggregated"]]
        assert len(frontend) == 1 and flags(frontend[0]) <= TRTLLM_FLAGS
        cfg = yaml.safe_load(files[opt(frontend[0], "--config_file")])
        keys = set(cfg) | set(cfg["context_servers"]) | set(cfg["generation_servers"])
        assert keys <= TRTLLM_DISAGG_CONFIG_KEYS
        assert cfg["context_servers"]["urls"] == [f"localhost:{opt(prefill, '--port')}"]
        assert cfg["generation_servers"]["urls"] == [f"localhost:{opt(decode, '--port')}"]


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash not installed")
@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("choice", ["aggregated", "disaggregated"])
def test_shell_syntax(dsv3, engine, choice):
    model, r = dsv3
    text = export_serving(r, model, engine, choice)
    subprocess.run(["bash", "-n"], input=text, text=True, check=True)


def test_best_choice(qwen, dsv3):
    for model, r in (qwen, dsv3):
        for target in ("vllm", "k8s"):
            assert export_serving(r, model, target) == export_serving(r, model, target, r.best)


# --------------------------------------------------------------------------------------------------
# Kubernetes
# --------------------------------------------------------------------------------------------------

def _container_tokens(dep: dict[str, Any]) -> list[str]:
    (container,) = dep["spec"]["template"]["spec"]["containers"]
    return [*container["command"], *container["args"]]


@pytest.mark.parametrize("engine", ENGINES)
def test_k8s_disaggregated(case, engine):
    model, r = case
    dis = r.disaggregated
    text = export_serving(r, model, "k8s", "disaggregated", backend=engine)
    assert text == k8s_manifest(model, dis, engine)
    check_header(text, model, dis.decode.gpu)
    docs = [d for d in yaml.safe_load_all(text) if d is not None]
    kinds = [d["kind"] for d in docs]
    assert kinds.count("Deployment") == 2 and kinds.count("Service") == 2
    assert set(kinds) <= {"Deployment", "Service", "ConfigMap"}
    deps = {d["metadata"]["labels"]["app.kubernetes.io/component"]: d for d in docs if d["kind"] == "Deployment"}
    svcs = {d["metadata"]["labels"]["app.kubernetes.io/component"]: d for d in docs if d["kind"] == "Service"}
    assert set(deps) == set(svcs) == {"prefill", "decode"}
    expected = {"prefill": (dis.prefill_workers, dis.prefill_plan, prefill_concurrency(dis)),
                "decode": (dis.decode_workers, dis.decode.plan, dis.decode.concurrency)}
    config_maps = {d["metadata"]["name"]: d["data"] for d in docs if d["kind"] == "ConfigMap"}
    for role, (replicas, plan, conc) in expected.items():
        dep = deps[role]
        assert dep["spec"]["replicas"] == replicas
        (container,) = dep["spec"]["template"]["spec"]["containers"]
        assert container["resources"]["limits"]["nvidia.com/gpu"] == plan.gpus
        assert dep["spec"]["selector"]["matchLabels"] == dep["spec"]["template"]["metadata"]["labels"]
        assert svcs[role]["spec"]["selector"] == dep["spec"]["selector"]["matchLabels"]
        assert svcs[role]["spec"]["clusterIP"] == "None"
        tokens = [str(t) for t in _container_tokens(dep)]
        check_worker(engine, tokens, model, plan, conc)
        port = int(container["ports"][0]["containerPort"])
        assert svcs[role]["spec"]["ports"][0]["port"] == port
        ann = dep["metadata"]["annotations"]
        assert ("planner/predicted-ttft-ms" if role == "prefill" else "planner/predicted-tpot-ms") in ann
        if engine == "sglang":
            assert opt(tokens, "--disaggregation-mode") == role
        if engine == "vllm":
            assert json.loads(opt(tokens, "--kv-transfer-config"))["kv_connector"] == "NixlConnector"
        if engine == "trtllm":
            path = opt(tokens, "--extra_llm_api_options")
            volumes = {v["name"]: v for v in dep["spec"]["template"]["spec"]["volumes"]}
            data = config_maps[volumes["planner-config"]["configMap"]["name"]]
            (mount,) = [m for m in container["volumeMounts"] if m["name"] == "planner-config"]
            name = path.removeprefix(mount["mountPath"] + "/")
            check_trtllm_options(name, data, tokens, model, plan)
    if engine == "trtllm":
        (frontend,) = [v for k, v in config_maps.items() if k.endswith("disagg-config")]
        cfg = yaml.safe_load(frontend["disagg-config.yaml"])
        assert cfg["context_servers"]["urls"][0].startswith(svcs["prefill"]["metadata"]["name"] + ":")
        assert cfg["generation_servers"]["urls"][0].startswith(svcs["decode"]["metadata"]["name"] + ":")


@pytest.mark.parametrize("engine", ENGINES)
def test_k8s_aggregated(case, engine):
    model, r = case
    agg = r.aggregated
    text = k8s_manifest_agg(model, agg, engine)
    assert text == export_serving(r, model, "k8s", "aggregated", backend=engine)
    check_header(text, model, agg.estimate.gpu)
    docs = [d for d in yaml.safe_load_all(text) if d is not None]
    (dep,) = [d for d in docs if d["kind"] == "Deployment"]
    (svc,) = [d for d in docs if d["kind"] == "Service"]
    assert dep["spec"]["replicas"] == agg.replicas
    (container,) = dep["spec"]["template"]["spec"]["containers"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == agg.estimate.plan.gpus
    assert svc["spec"]["selector"] == dep["spec"]["selector"]["matchLabels"]
    check_worker(engine, [str(t) for t in _container_tokens(dep)], model, agg.estimate.plan, agg.estimate.concurrency)


def test_k8s_default_backend_and_image(qwen):
    model, r = qwen
    text = export_serving(r, model, "k8s", "disaggregated", image="registry.example/engine:1.0")
    docs = [d for d in yaml.safe_load_all(text) if d is not None]
    for d in docs:
        if d["kind"] == "Deployment":
            (container,) = d["spec"]["template"]["spec"]["containers"]
            assert container["image"] == "registry.example/engine:1.0"
            assert container["name"] == r.disaggregated.decode.plan.backend


# --------------------------------------------------------------------------------------------------
# errors
# --------------------------------------------------------------------------------------------------

def test_unknown_target(qwen):
    model, r = qwen
    with pytest.raises(ValueError, match=re.escape("unknown export target 'x'; choose from vllm, sglang, trtllm, k8s")):
        export_serving(r, model, "x")


def test_unknown_choice_and_missing_answer(qwen):
    model, r = qwen
    with pytest.raises(ValueError, match="unknown plan choice"):
        export_serving(r, model, "vllm", "fastest")
    no_disagg = r.model_copy(update={"disaggregated": None, "best": "aggregated"})
    with pytest.raises(ValueError, match="no disaggregated plan"):
        export_serving(no_disagg, model, "sglang", "disaggregated")
    with pytest.raises(ValueError, match="unknown serving engine"):
        k8s_manifest(model, r.disaggregated, "tgi")


# --------------------------------------------------------------------------------------------------
# hand-made plans: precisions, KV dtype, dense data parallelism, pipeline stages
# --------------------------------------------------------------------------------------------------

COMMAND_FNS = {"vllm": vllm_command, "sglang": sglang_command, "trtllm": trtllm_command}


def _tokens(engine: str, text: str) -> list[str]:
    (tokens,) = engine_commands(text, engine)
    return tokens


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("precision", ["bf16", "fp16", "fp8", "int4", "fp4"])
def test_precisions(engine, precision):
    model = planner.get_model("qwen3-32b")
    plan = ServingPlan(tp=2, precision=precision, backend=engine)
    text = COMMAND_FNS[engine](model, plan, 16, ISL, OSL)
    tokens = _tokens(engine, text)
    check_worker(engine, tokens, model, plan, 16)
    assert "no estimate given" in text.splitlines()[2]
    if precision == "int4":
        assert "AWQ" in text and "--quantization" not in tokens
    if precision == "fp4" and engine != "trtllm":
        assert "ModelOpt" in text
    if engine == "trtllm":
        _, files = parse_shell(text)
        opts = check_trtllm_options(opt(tokens, "--extra_llm_api_options"), files, tokens, model, plan)
        assert opts.get("dtype") == ("float16" if precision == "fp16" else None)
    else:
        assert opt(tokens, "--dtype") == ("float16" if precision == "fp16" else None)


@pytest.mark.parametrize("engine", ENGINES)
def test_explicit_fp8_kv_cache(engine):
    model = planner.get_model("qwen3-32b")
    plan = ServingPlan(tp=1, precision="bf16", kv_dtype="fp8", backend="vllm")
    tokens = _tokens(engine, COMMAND_FNS[engine](model, plan, 8, ISL, OSL))
    check_worker(engine, tokens, model, plan, 8)
    if engine == "vllm":
        assert opt(tokens, "--kv-cache-dtype") == "fp8"
    if engine == "sglang":
        assert opt(tokens, "--kv-cache-dtype") == "fp8_e4m3"


def test_dense_data_parallel_and_pipeline():
    model = planner.get_model("qwen3-32b")
    plan = ServingPlan(tp=2, dp=2, pp=2, precision="bf16", backend="sglang")
    for engine in ("vllm", "sglang"):
        tokens = _tokens(engine, COMMAND_FNS[engine](model, plan, 30, ISL, OSL))
        check_worker(engine, tokens, model, plan, 30)
    s = _tokens("sglang", sglang_command(model, plan, 30, ISL, OSL))
    assert "--enable-dp-attention" not in s and opt(s, "--tp-size") == "2"
    t_text = trtllm_command(model, plan, 30, ISL, OSL)
    t = _tokens("trtllm", t_text)
    assert opt(t, "--tp_size") == "2" and opt(t, "--pp_size") == "2" and opt(t, "--max_batch_size") == "15"
    assert "run 2 of these servers" in t_text


def test_moe_partial_expert_parallel_note():
    model = planner.get_model("deepseek-v3")
    plan = ServingPlan(tp=2, dp=4, ep=4, moe_tp=2, precision="fp8", backend="vllm")
    text = vllm_command(model, plan, 64, ISL, OSL)
    assert "--enable-expert-parallel" in _tokens("vllm", text) and "runs as ep 8" in text
    s = _tokens("sglang", sglang_command(model, plan, 64, ISL, OSL))
    assert opt(s, "--ep-size") == "4" and opt(s, "--tp-size") == "8"  # expert TP = tp-size / ep-size = 2


def test_context_length_capped_by_model():
    model = planner.get_model("qwen3-32b")
    plan = ServingPlan(tp=8, precision="bf16", backend="vllm")
    launch = serving_launch("vllm", model, plan, 1, model.max_seq_len - 100, 90)
    assert int(launch.value("--max-model-len")) == model.max_seq_len
    over = serving_launch("vllm", model, plan, 1, model.max_seq_len, 500)
    assert int(over.value("--max-model-len")) == model.max_seq_len + 500
    assert any("exceeds" in n for n in over.notes)


def test_memory_fraction_override():
    model = planner.get_model("qwen3-32b")
    plan = ServingPlan(tp=4, precision="fp8", backend="trtllm")
    assert opt(_tokens("vllm", vllm_command(model, plan, 8, ISL, OSL, 0.85)), "--gpu-memory-utilization") == "0.85"
    assert opt(_tokens("sglang", sglang_command(model, plan, 8, ISL, OSL)), "--mem-fraction-static") == "0.88"
    text = trtllm_command(model, plan, 8, ISL, OSL, 0.8)
    tokens = _tokens("trtllm", text)
    _, files = parse_shell(text)
    check_trtllm_options(opt(tokens, "--extra_llm_api_options"), files, tokens, model, plan)
    assert opt(tokens, "--kv_cache_free_gpu_memory_fraction") == "0.8"
