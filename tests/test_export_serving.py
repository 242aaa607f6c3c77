"""Serving plan documents (:mod:`planner.plans.serving`) and their exporters (:mod:`planner.export.serving`,
:mod:`planner.export.engines`, :mod:`planner.export.k8s`): vLLM / SGLang / TensorRT-LLM commands and Kubernetes YAML.

Results are real: ``search_serving`` for Qwen3-32B on 32 H200 and DeepSeek-V3 on 64 B200 (ISL 4000, OSL 500),
both of which give an aggregated and a disaggregated answer, turned into documents by ``serving_document``. The
shell text is parsed back (comments and heredocs aside) and every emitted flag is checked against the documented
constants, the numbers against the document; the manifests are parsed with ``yaml.safe_load_all``.
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
from planner.cost.serving import ServingError, ServingPlan, estimate_serving, kv_dtype_bytes, serving_memory
from planner.errors import PlannerError
from planner.export.engines import (
    SGLANG_FLAGS, TRTLLM_DISAGG_CONFIG_KEYS, TRTLLM_EXTRA_OPTIONS_KEYS, TRTLLM_FLAGS, VLLM_FLAGS, serving_launch,
    worker,
)
from planner.export.k8s import k8s_manifest
from planner.export.serving import (
    disaggregated_commands, export_serving, sglang_command, trtllm_command, vllm_command,
)
from planner.plans.documents import SLO, ServingDocument, Traffic
from planner.plans.serving import (
    ENGINE_VERSIONS, max_model_len, prefill_concurrency, serving_document, serving_document_from_estimate,
)
from planner.search.serving import search_serving

ENGINES = ("vllm", "sglang", "trtllm")
FLAGS = {"vllm": VLLM_FLAGS, "sglang": SGLANG_FLAGS, "trtllm": TRTLLM_FLAGS}
PROGRAMS = {"vllm": ["vllm", "serve"], "sglang": ["python3", "-m", "sglang.launch_server"],
            "trtllm": ["trtllm-serve"]}
ISL, OSL = 4000, 500
TRAFFIC = Traffic(isl=ISL, osl=OSL, max_request_tokens=ISL + OSL)
CHOICES = ("aggregated", "disaggregated")


# --------------------------------------------------------------------------------------------------
# fixtures: real search results and their documents (module scope keeps the searches to one each)
# --------------------------------------------------------------------------------------------------

def _case(model_name: str, gpu: str, gpus: int, ttft_ms: float, tpot_ms: float):
    model, system = planner.get_model(model_name), planner.get_system(gpu)
    result = search_serving(model, system, gpus, ISL, OSL, ttft_ms, tpot_ms)
    slo = SLO(ttft_ms=float(ttft_ms), tpot_ms=float(tpot_ms))
    docs = {c: serving_document(result, model, system, choice=c, gpu_budget=gpus, traffic=TRAFFIC, slo=slo)
            for c in CHOICES}
    return model, system, result, docs


@pytest.fixture(scope="module")
def qwen():
    return _case("qwen3-32b", "h200", 32, 300, 10)


@pytest.fixture(scope="module")
def dsv3():
    return _case("deepseek-v3", "b200", 64, 300, 20)


@pytest.fixture(params=["qwen", "dsv3"])
def case(request):
    return request.getfixturevalue(request.param)


def test_both_answers_exist(qwen, dsv3):
    for model, _, r, _ in (qwen, dsv3):
        assert r.aggregated is not None and r.disaggregated is not None, model.name


def pool(doc: ServingDocument, role: str):
    (p,) = [p for p in doc.pools if p.role == role]
    return p


# --------------------------------------------------------------------------------------------------
# the document builder
# --------------------------------------------------------------------------------------------------

def test_aggregated_document(case):
    model, system, r, docs = case
    doc, agg = docs["aggregated"], r.aggregated
    e = agg.estimate
    assert doc.mode == "aggregated" and [p.role for p in doc.pools] == ["aggregated"]
    (p,) = doc.pools
    assert p.plan == e.plan and p.workers == agg.replicas and p.concurrency == e.concurrency
    assert p.gpus_per_worker == e.plan.gpus and p.gpus == doc.gpus == agg.gpus == agg.replicas * e.plan.gpus
    assert doc.gpus <= doc.gpu_budget == (32 if model.name == "qwen3-32b" else 64)
    assert doc.engine.name == e.plan.backend and doc.engine.version == ENGINE_VERSIONS[e.plan.backend]
    assert p.max_model_len == 4608  # 4500 tokens rounded up to 256
    assert p.predicted.ttft_ms == e.ttft_ms and p.predicted.tpot_ms == e.tpot_ms
    assert doc.prediction.requests_per_s == pytest.approx(e.requests_per_s * agg.replicas)
    assert doc.prediction.cost_per_million_tokens_usd == agg.cost_per_million_tokens_usd
    assert doc.prediction.cost_per_hour_usd == pytest.approx(doc.gpus * system.accelerator.price_per_hour_usd)
    # memory by the planner's own model: the search's concurrency fits
    mem = serving_memory(model, system, e.plan, ISL, OSL)
    assert p.predicted.max_concurrency == mem.max_concurrency >= p.concurrency
    assert p.predicted.weights_bytes == mem.weights_bytes
    assert p.predicted.capacity_bytes == pytest.approx(system.accelerator.memory_bytes * 0.9)
    assert mem.weights_bytes + mem.workspace_bytes < p.predicted.peak_bytes <= p.predicted.capacity_bytes


def test_disaggregated_document(case):
    model, system, r, docs = case
    doc, dis = docs["disaggregated"], r.disaggregated
    assert doc.mode == "disaggregated" and [p.role for p in doc.pools] == ["prefill", "decode"]
    pre, dec = pool(doc, "prefill"), pool(doc, "decode")
    assert pre.plan == dis.prefill_plan and pre.workers == dis.prefill_workers
    assert dec.plan == dis.decode.plan and dec.workers == dis.decode_workers
    assert dec.concurrency == dis.decode.concurrency
    # every decode slot holds at most one request in prefill, spread over the prefill workers
    assert pre.concurrency == math.ceil(dis.decode_workers * dis.decode.concurrency / dis.prefill_workers)
    assert pre.concurrency * pre.workers >= dec.concurrency * dec.workers
    assert doc.gpus == dis.gpus == pre.gpus + dec.gpus
    assert doc.prediction.ttft_ms == dis.ttft_ms and doc.prediction.tpot_ms == dis.tpot_ms
    # requests/s of the deployment = output tokens/s / OSL; the decode pool carries them all
    assert doc.prediction.requests_per_s == pytest.approx(dis.tokens_per_s_per_gpu * dis.gpus / OSL)
    assert dec.predicted.requests_per_s * dec.workers == pytest.approx(doc.prediction.requests_per_s)
    assert dec.predicted.tokens_per_s_per_gpu * dec.gpus == pytest.approx(dis.tokens_per_s_per_gpu * dis.gpus)
    for p in (pre, dec):
        assert p.max_model_len == 4608
        assert p.predicted.peak_bytes <= p.predicted.capacity_bytes


def test_document_round_trips_through_json(dsv3):
    _, _, _, docs = dsv3
    for doc in docs.values():
        text = json.dumps(doc.model_dump(mode="json", by_alias=True))
        back = ServingDocument.model_validate_json(text)
        assert back == doc and back.model_dump(mode="json", by_alias=True)["schema"] == "planner.serving-plan"
        assert planner.ModelSpec.model_validate(back.model.spec) == planner.get_model("deepseek-v3")


def test_documents_pass_the_gate(qwen, dsv3):
    """What the builder makes is what the gate accepts (memory, GPU counts, predictions, SLOs)."""
    from planner.plans import check

    for _, _, _, docs in (qwen, dsv3):
        for doc in docs.values():
            assert check(doc) == doc


def test_best_choice(qwen):
    model, system, r, docs = qwen
    best = serving_document(r, model, system, gpu_budget=32, traffic=TRAFFIC, slo=None)
    assert best == docs[r.best].model_copy(update={"slo": None})


def test_builder_errors(qwen):
    model, system, r, _ = qwen
    with pytest.raises(ServingError, match="unknown plan choice 'fastest'"):
        serving_document(r, model, system, choice="fastest", gpu_budget=32, traffic=TRAFFIC, slo=None)
    no_disagg = r.model_copy(update={"disaggregated": None, "best": "aggregated"})
    with pytest.raises(ServingError, match="no disaggregated plan"):
        serving_document(no_disagg, model, system, choice="disaggregated", gpu_budget=32, traffic=TRAFFIC, slo=None)


def test_max_model_len_rounds_up_and_stops_at_the_model():
    model = planner.get_model("qwen3-32b")  # 40960 positions
    assert max_model_len(model, 4500) == 4608 and max_model_len(model, 4608) == 4608
    assert max_model_len(model, model.max_seq_len - 100) == model.max_seq_len
    with pytest.raises(PlannerError, match="requests of 41000 tokens .* exceed qwen3-32b's 40960-token context"):
        max_model_len(model, 41000)


def test_prefill_concurrency():
    assert prefill_concurrency(3, 100, 4) == 75 and prefill_concurrency(1, 7, 2) == 4
    assert prefill_concurrency(1, 1, 8) == 1


def test_document_from_estimate():
    model, system = planner.get_model("qwen3-32b"), planner.get_system("h200")
    plan = ServingPlan(tp=2, precision="fp8", backend="vllm")
    est = estimate_serving(model, system, plan, ISL, OSL, 16)
    doc = serving_document_from_estimate(est, model, system, gpu_budget=8, traffic=TRAFFIC)
    (p,) = doc.pools
    assert (doc.mode, doc.engine.name, doc.gpus, doc.gpu_budget) == ("aggregated", "vllm", 2, 8)
    assert (p.workers, p.concurrency, p.gpus_per_worker) == (1, 16, 2)
    tokens_per_hour = est.tokens_per_s_per_gpu * 2 * 3600
    assert doc.prediction.cost_per_million_tokens_usd == pytest.approx(
        2 * system.accelerator.price_per_hour_usd / tokens_per_hour * 1e6)


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


def check_worker(engine: str, tokens: list[str], model, p) -> None:
    """The numbers of one worker command against its pool (the engine mappings of planner.export.engines)."""
    plan, concurrency = p.plan, p.concurrency
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
        assert int(opt(tokens, "--max-model-len")) == p.max_model_len >= ISL + OSL
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
        assert int(opt(tokens, "--context-length")) == p.max_model_len
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
        assert int(opt(tokens, "--max_seq_len")) == p.max_model_len
        assert int(opt(tokens, "--max_num_tokens")) >= batch
        gpus = tp_size * plan.pp
    assert gpus == plan.gpus == p.gpus_per_worker


def check_trtllm_options(path: str, files: dict[str, str], tokens: list[str], model, plan: ServingPlan) -> dict:
    options = yaml.safe_load(files[path])
    assert set(options) <= TRTLLM_EXTRA_OPTIONS_KEYS, set(options) - TRTLLM_EXTRA_OPTIONS_KEYS
    assert options.get("enable_attention_dp", False) == (model.is_moe and plan.dp > 1)
    kv = options["kv_cache_config"]
    assert kv.get("dtype") == ("fp8" if kv_dtype_bytes(plan) == 1 else None)
    # the YAML's kv_cache_config replaces the CLI-built one: the fraction must agree
    assert kv["free_gpu_memory_fraction"] == float(opt(tokens, "--kv_cache_free_gpu_memory_fraction"))
    # the PyTorch backend refuses a prompt longer than --max_num_tokens unless chunked prefill is on
    # (LLM._check_arguments, NVIDIA/TensorRT-LLM PR #6259; decode workers get no prompts)
    longest = int(opt(tokens, "--max_seq_len"))
    decode = options.get("cache_transceiver_config") is not None and "disable_overlap_scheduler" not in options
    if not decode:
        assert options.get("enable_chunked_prefill", False) == (longest > int(opt(tokens, "--max_num_tokens")))
    return options


def test_trtllm_chunks_prompts_longer_than_one_step():
    """A 32K-token context on a step of 8K tokens: chunked prefill on, and the note says why; 2K: off."""
    from planner.export.engines import Worker, serving_launch

    m = planner.get_model("llama-3.1-8b")
    for max_len, chunked in ((32768, True), (2048, False)):
        w = Worker(model=m, model_name=m.name, model_id="meta-llama/Llama-3.1-8B", has_hf_id=True, gpu="h100-sxm",
                   plan=ServingPlan(tp=1), concurrency=8, max_model_len=max_len, isl=1000, osl=200, role=None,
                   workers=1)
        launch = serving_launch("trtllm", w)
        options = yaml.safe_load(next(iter(launch.files.values())))
        assert options.get("enable_chunked_prefill", False) is chunked
        assert any("chunked prefill on" in n for n in launch.notes) is chunked
        decode = serving_launch("trtllm", Worker(**{**w.__dict__, "role": "decode", "max_model_len": 32768}))
        assert "enable_chunked_prefill" not in yaml.safe_load(next(iter(decode.files.values())))


# --------------------------------------------------------------------------------------------------
# engine commands
# --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("engine", ENGINES)
def test_aggregated_command(case, engine):
    model, system, _, docs = case
    doc = docs["aggregated"]
    (p,) = doc.pools
    text = export_serving(doc, engine)
    check_header(text, model, system.name)
    assert f"deploy {p.workers} replica(s) of this worker ({p.gpus} GPUs in all)" in text
    cmds = engine_commands(text, engine)
    assert len(cmds) == 1
    check_worker(engine, cmds[0], model, p)
    if engine == "trtllm":
        _, files = parse_shell(text)
        check_trtllm_options(opt(cmds[0], "--extra_llm_api_options"), files, cmds[0], model, p.plan)


@pytest.mark.parametrize("engine", ENGINES)
def test_disaggregated_commands(case, engine):
    model, system, _, docs = case
    doc = docs["disaggregated"]
    pre, dec = pool(doc, "prefill"), pool(doc, "decode")
    text = export_serving(doc, engine)
    check_header(text, model, system.name)
    assert f"{pre.workers} prefill worker(s) + {dec.workers} decode worker(s)" in text.splitlines()[0]
    assert "# ===== prefill worker =====" in text and "# ===== decode worker =====" in text
    assert text.index("prefill worker =====") < text.index("decode worker =====")
    prefill, decode = engine_commands(text, engine)
    check_worker(engine, prefill, model, pre)
    check_worker(engine, decode, model, dec)
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
        p_opts = check_trtllm_options(opt(prefill, "--extra_llm_api_options"), files, prefill, model, pre.plan)
        d_opts = check_trtllm_options(opt(decode, "--extra_llm_api_options"), files, decode, model, dec.plan)
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
@pytest.mark.parametrize("choice", CHOICES)
def test_shell_syntax(dsv3, engine, choice):
    text = export_serving(dsv3[3][choice], engine)
    subprocess.run(["bash", "-n"], input=text, text=True, check=True)


def test_exporters_take_the_document_json(qwen):
    doc = qwen[3]["disaggregated"]
    as_json = json.loads(json.dumps(doc.model_dump(mode="json", by_alias=True)))
    for target in ("vllm", "k8s"):
        assert export_serving(as_json, target) == export_serving(doc, target)


# --------------------------------------------------------------------------------------------------
# Kubernetes
# --------------------------------------------------------------------------------------------------

def _container_tokens(dep: dict[str, Any]) -> list[str]:
    (container,) = dep["spec"]["template"]["spec"]["containers"]
    return [*container["command"], *container["args"]]


@pytest.mark.parametrize("engine", ENGINES)
def test_k8s_disaggregated(case, engine):
    model, system, _, docs = case
    doc = docs["disaggregated"]
    text = k8s_manifest(doc, engine=engine)
    if engine == doc.engine.name:
        assert text == export_serving(doc, "k8s")
    check_header(text, model, system.name)
    manifests = [d for d in yaml.safe_load_all(text) if d is not None]
    kinds = [d["kind"] for d in manifests]
    assert kinds.count("Deployment") == 2 and kinds.count("Service") == 2
    assert set(kinds) <= {"Deployment", "Service", "ConfigMap"}
    deps = {d["metadata"]["labels"]["app.kubernetes.io/component"]: d for d in manifests if d["kind"] == "Deployment"}
    svcs = {d["metadata"]["labels"]["app.kubernetes.io/component"]: d for d in manifests if d["kind"] == "Service"}
    assert set(deps) == set(svcs) == {"prefill", "decode"}
    config_maps = {d["metadata"]["name"]: d["data"] for d in manifests if d["kind"] == "ConfigMap"}
    for role in ("prefill", "decode"):
        p = pool(doc, role)
        dep = deps[role]
        assert dep["spec"]["replicas"] == p.workers
        (container,) = dep["spec"]["template"]["spec"]["containers"]
        assert container["resources"]["limits"]["nvidia.com/gpu"] == p.gpus_per_worker
        assert dep["spec"]["selector"]["matchLabels"] == dep["spec"]["template"]["metadata"]["labels"]
        assert svcs[role]["spec"]["selector"] == dep["spec"]["selector"]["matchLabels"]
        assert svcs[role]["spec"]["clusterIP"] == "None"
        tokens = [str(t) for t in _container_tokens(dep)]
        check_worker(engine, tokens, model, p)
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
            check_trtllm_options(name, data, tokens, model, p.plan)
    if engine == "trtllm":
        (frontend,) = [v for k, v in config_maps.items() if k.endswith("disagg-config")]
        cfg = yaml.safe_load(frontend["disagg-config.yaml"])
        assert cfg["context_servers"]["urls"][0].startswith(svcs["prefill"]["metadata"]["name"] + ":")
        assert cfg["generation_servers"]["urls"][0].startswith(svcs["decode"]["metadata"]["name"] + ":")


@pytest.mark.parametrize("engine", ENGINES)
def test_k8s_aggregated(case, engine):
    model, system, _, docs = case
    doc = docs["aggregated"]
    (p,) = doc.pools
    text = k8s_manifest(doc, engine=engine)
    check_header(text, model, system.name)
    manifests = [d for d in yaml.safe_load_all(text) if d is not None]
    (dep,) = [d for d in manifests if d["kind"] == "Deployment"]
    (svc,) = [d for d in manifests if d["kind"] == "Service"]
    assert dep["spec"]["replicas"] == p.workers
    assert dep["metadata"]["name"] == model.name.replace(".", "-")
    (container,) = dep["spec"]["template"]["spec"]["containers"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == p.gpus_per_worker
    assert svc["spec"]["selector"] == dep["spec"]["selector"]["matchLabels"]
    check_worker(engine, [str(t) for t in _container_tokens(dep)], model, p)


def test_k8s_multi_node_worker_note():
    model, system = planner.get_model("deepseek-v3"), planner.get_system("h100")  # 8 GPUs per node
    plan = ServingPlan(tp=8, dp=2, ep=16, moe_tp=1, precision="fp8", backend="sglang")
    est = estimate_serving(model, system, plan, ISL, OSL, 32)
    doc = serving_document_from_estimate(est, model, system, gpu_budget=16, traffic=TRAFFIC)
    assert "a worker of 16 GPUs spans 2 nodes of 8" in export_serving(doc, "k8s")
    small = serving_document_from_estimate(estimate_serving(model, planner.get_system("b200"),
                                                            ServingPlan(tp=8, precision="fp8", backend="sglang"),
                                                            ISL, OSL, 32),
                                           model, planner.get_system("b200"), gpu_budget=8, traffic=TRAFFIC)
    assert "spans" not in export_serving(small, "k8s")


def test_k8s_default_engine_and_image(qwen):
    doc = qwen[3]["disaggregated"]
    text = export_serving(doc, "k8s", image="registry.example/engine:1.0")
    manifests = [d for d in yaml.safe_load_all(text) if d is not None]
    for d in manifests:
        if d["kind"] == "Deployment":
            (container,) = d["spec"]["template"]["spec"]["containers"]
            assert container["image"] == "registry.example/engine:1.0"
            assert container["name"] == doc.engine.name


# --------------------------------------------------------------------------------------------------
# errors
# --------------------------------------------------------------------------------------------------

def test_export_errors_are_one_line(qwen):
    doc = qwen[3]["aggregated"]
    cases = [
        (lambda: export_serving(doc, "x"), "unknown export target 'x'; choose from vllm, sglang, trtllm, k8s"),
        (lambda: export_serving(doc, "vllm", image="img:1"), "--image is for the k8s target"),
        (lambda: k8s_manifest(doc, engine="tgi"), "unknown serving engine 'tgi'; choose from vllm, sglang, trtllm"),
        (lambda: disaggregated_commands(doc.model_copy(update={"mode": "disaggregated"}), "sglang"),
         "a disaggregated serving plan needs pools decode, prefill; it has aggregated"),
        # export_serving passes the gate first: a tampered document is refused before anything is rendered
        (lambda: export_serving(doc.model_copy(update={"mode": "disaggregated"}), "sglang", where="p.json"),
         "p.json: pools: a disaggregated plan has decode and prefill pool(s), got aggregated"),
        (lambda: export_serving(doc.model_copy(update={"gpus": doc.gpus + 1}), "vllm", where="p.json"),
         "p.json: gpus is"),
    ]
    for call, message in cases:
        with pytest.raises(PlannerError) as err:
            call()
        assert str(err.value).startswith(message) and "\n" not in str(err.value)


# --------------------------------------------------------------------------------------------------
# hand-made plans: precisions, KV dtype, dense data parallelism, pipeline stages
# --------------------------------------------------------------------------------------------------

COMMAND_FNS = {"vllm": vllm_command, "sglang": sglang_command, "trtllm": trtllm_command}


def one_worker(model_name: str, plan: ServingPlan, concurrency: int, gpu: str = "h200") -> tuple[Any, ServingDocument]:
    model, system = planner.get_model(model_name), planner.get_system(gpu)
    est = estimate_serving(model, system, plan, ISL, OSL, concurrency)
    return model, serving_document_from_estimate(est, model, system, gpu_budget=plan.gpus, traffic=TRAFFIC)


def _tokens(engine: str, text: str) -> list[str]:
    (tokens,) = engine_commands(text, engine)
    return tokens


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("precision", ["bf16", "fp16", "fp8", "int4", "fp4"])
def test_precisions(engine, precision):
    model, doc = one_worker("qwen3-32b", ServingPlan(tp=2, precision=precision, backend=engine), 16, gpu="b200")
    text = COMMAND_FNS[engine](doc)
    tokens = _tokens(engine, text)
    check_worker(engine, tokens, model, doc.pools[0])
    assert text.splitlines()[2].startswith("# predicted at concurrency 16, ISL 4000, OSL 500: TTFT")
    if precision == "int4":
        assert "AWQ" in text and "--quantization" not in tokens
    if precision == "fp4" and engine != "trtllm":
        assert "ModelOpt" in text
    if engine == "trtllm":
        _, files = parse_shell(text)
        opts = check_trtllm_options(opt(tokens, "--extra_llm_api_options"), files, tokens, model, doc.pools[0].plan)
        assert opts.get("dtype") == ("float16" if precision == "fp16" else None)
    else:
        assert opt(tokens, "--dtype") == ("float16" if precision == "fp16" else None)


@pytest.mark.parametrize("engine", ENGINES)
def test_explicit_fp8_kv_cache(engine):
    model, doc = one_worker("qwen3-32b", ServingPlan(tp=1, precision="bf16", kv_dtype="fp8", backend="vllm"), 8)
    tokens = _tokens(engine, COMMAND_FNS[engine](doc))
    check_worker(engine, tokens, model, doc.pools[0])
    if engine == "vllm":
        assert opt(tokens, "--kv-cache-dtype") == "fp8"
    if engine == "sglang":
        assert opt(tokens, "--kv-cache-dtype") == "fp8_e4m3"
    if engine != "vllm":
        assert "estimated with the vLLM engine constants" in COMMAND_FNS[engine](doc)


def test_dense_data_parallel_and_pipeline():
    model, doc = one_worker("qwen3-32b", ServingPlan(tp=2, dp=2, pp=2, precision="bf16", backend="sglang"), 30)
    for engine in ("vllm", "sglang"):
        check_worker(engine, _tokens(engine, COMMAND_FNS[engine](doc)), model, doc.pools[0])
    s = _tokens("sglang", sglang_command(doc))
    assert "--enable-dp-attention" not in s and opt(s, "--tp-size") == "2"
    t_text = trtllm_command(doc)
    t = _tokens("trtllm", t_text)
    assert opt(t, "--tp_size") == "2" and opt(t, "--pp_size") == "2" and opt(t, "--max_batch_size") == "15"
    assert "run 2 of these servers" in t_text


def test_moe_partial_expert_parallel_note():
    model, doc = one_worker("deepseek-v3", ServingPlan(tp=2, dp=4, ep=4, moe_tp=2, precision="fp8", backend="vllm"),
                            64, gpu="b200")
    text = vllm_command(doc)
    assert "--enable-expert-parallel" in _tokens("vllm", text) and "runs as ep 8" in text
    s = _tokens("sglang", sglang_command(doc))
    assert opt(s, "--ep-size") == "4" and opt(s, "--tp-size") == "8"  # expert TP = tp-size / ep-size = 2


def test_memory_fraction_override():
    model, doc = one_worker("qwen3-32b", ServingPlan(tp=4, precision="fp8", backend="trtllm"), 8)
    assert opt(_tokens("vllm", vllm_command(doc, memory_fraction=0.85)), "--gpu-memory-utilization") == "0.85"
    assert opt(_tokens("sglang", sglang_command(doc)), "--mem-fraction-static") == "0.88"
    text = trtllm_command(doc, memory_fraction=0.8)
    tokens = _tokens("trtllm", text)
    _, files = parse_shell(text)
    check_trtllm_options(opt(tokens, "--extra_llm_api_options"), files, tokens, model, doc.pools[0].plan)
    assert opt(tokens, "--kv_cache_free_gpu_memory_fraction") == "0.8"


def test_launch_value_and_flags():
    _, doc = one_worker("qwen3-32b", ServingPlan(tp=8, precision="bf16", backend="vllm"), 4)
    launch = serving_launch("vllm", worker(doc))
    assert launch.value("--max-model-len") == "4608" and launch.value("--tensor-parallel-size") == "8"
    assert launch.value("--enable-expert-parallel") is None and "--max-num-seqs" in launch.flags
