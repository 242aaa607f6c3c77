"""Property tests of the serving search (issue 12): every plan ``planner.search_serve`` and ``planner serve --json``
return, over random catalog models (dense and MoE), systems, GPU budgets, SLOs, rates and request lengths, is
re-checked here against the serving model's own account, independently of the search and of the gate:

* it fits memory: each worker at its concurrency ``fits`` (:func:`planner.cost.serving.estimate_serving`), the
  prefill workers hold at least one request, and every worker holds one request of the engines' max model length,
  which covers the longest request;
* it stays within ``--gpus`` and serves the rate asked for (the model's requests/s of the chosen workers);
* the SLOs hold per the model (TTFT and TPOT re-estimated; the disaggregated TTFT with the plan's prefill pool);
* its layout is one ``planner estimate serve`` accepts (exit 0 at the plan's concurrency);
* every export target's command (vLLM, SGLang, TensorRT-LLM and the Kubernetes manifest of the plan's engine)
  carries the plan's parallel sizes: the attention tp / dp, pp and ep read back from the engine flags with each
  engine's convention equal the plan's; ``--max-model-len`` (or its engine's name) covers the longest request.
  An engine that cannot launch a layout as planned (TensorRT-LLM's attention DP is TP 1) refuses it in one line;
* an infeasible case is one error line (exit 2), from the API and the CLI alike.

Also: one default backend everywhere, and ``planner simulate`` refuses exactly what ``planner estimate serve``
refuses.
"""

from __future__ import annotations

import inspect
import json
import re

import pytest
import yaml
from cli_in_process import cli
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

import planner
from planner.cli import serve as serve_cli
from planner.cost.serving import ServingPlan, estimate_serving, longest_request_fits, serving_memory
from planner.errors import PlannerError
from planner.export.quoting import ExportError
from planner.export.serving import export_serving
from planner.plans.serving import CONTEXT_ROUNDING
from planner.search.serving import search_serving
from test_export_serving import opt as value
from test_export_serving import parse_shell as shell_commands

TARGETS = ("vllm", "sglang", "trtllm", "k8s")
PROGRAMS = {"vllm": ["vllm", "serve"], "sglang": ["python3", "-m", "sglang.launch_server"],
            "trtllm": ["trtllm-serve"]}
REL = 1e-9  # slack on "<=" between floats (the same functions give the same numbers; JSON round trips)


def props(examples: int):
    return settings(max_examples=examples, derandomize=True, database=None, deadline=None, print_blob=True,
                    phases=[Phase.explicit, Phase.generate],
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def le(a: float, b: float) -> bool:
    return a <= b * (1 + REL) + 1e-12


# --------------------------------------------------------------------------------------------------
# reading exported commands back
# --------------------------------------------------------------------------------------------------

def layout_of(engine: str, tokens: list[str], options: dict | None, moe: bool) -> dict[str, int]:
    """The worker layout an engine runs, read back from its flags with the engine's own conventions:
    attention tp and dp, pp, ep (1 when the experts are not split), and the max model length."""
    if engine == "vllm":
        tp, dp = int(value(tokens, "--tensor-parallel-size")), int(value(tokens, "--data-parallel-size"))
        ep = tp * dp if "--enable-expert-parallel" in tokens else 1  # vLLM's EP spans all tp x dp GPUs
        return {"tp": tp, "dp": dp, "pp": int(value(tokens, "--pipeline-parallel-size")), "ep": ep,
                "len": int(value(tokens, "--max-model-len"))}
    if engine == "sglang":
        size, dp = int(value(tokens, "--tp-size")), int(value(tokens, "--dp-size"))
        tp = size // dp if "--enable-dp-attention" in tokens else size  # DP attention: tp-size is the whole mesh
        return {"tp": tp, "dp": dp, "pp": int(value(tokens, "--pp-size")), "ep": int(value(tokens, "--ep-size") or 1),
                "len": int(value(tokens, "--context-length"))}
    size = int(value(tokens, "--tp_size"))
    attn_dp = bool(options and options.get("enable_attention_dp"))
    ep = int(value(tokens, "--ep_size") or 1)
    return {"tp": 1 if attn_dp else size, "dp": size if attn_dp else 1, "pp": int(value(tokens, "--pp_size")),
            "ep": ep if moe else 1, "len": int(value(tokens, "--max_seq_len"))}


def expected_layout(model: planner.ModelSpec, plan: ServingPlan) -> dict[str, int]:
    return {"tp": plan.tp, "dp": plan.dp, "pp": plan.pp, "ep": plan.expert_layout(model)[0] if model.is_moe else 1}


def exported_workers(target: str, engine: str, text: str) -> list[tuple[dict[str, int], int | None, int | None]]:
    """(layout, replicas, GPUs per replica) of every engine worker in an export, in order (prefill first);
    replicas and GPUs only from a manifest."""
    out = []
    if target == "k8s":
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
        maps = {d["metadata"]["name"]: d["data"] for d in docs if d["kind"] == "ConfigMap"}
        for dep in (d for d in docs if d["kind"] == "Deployment"):
            spec = dep["spec"]["template"]["spec"]
            (container,) = spec["containers"]
            tokens = [str(t) for t in container["command"] + container["args"]]
            options = None
            if engine == "trtllm":
                path = value(tokens, "--extra_llm_api_options")
                volumes = {v["name"]: v for v in spec.get("volumes", [])}
                (mount,) = [m for m in container["volumeMounts"] if m["name"] == "planner-config"]
                data = maps[volumes["planner-config"]["configMap"]["name"]]
                options = yaml.safe_load(data[path.removeprefix(mount["mountPath"] + "/")])
            out.append((tokens, options, dep["spec"]["replicas"], container["resources"]["limits"]["nvidia.com/gpu"]))
    else:
        commands, files = shell_commands(text)
        prog = PROGRAMS[engine]
        for c in commands:
            if c[:len(prog)] != prog or c[len(prog):len(prog) + 1] == ["disaggregated"]:
                continue
            options = yaml.safe_load(files[value(c, "--extra_llm_api_options")]) if engine == "trtllm" else None
            out.append((c, options, None, None))
    return out


def check_exports(doc: dict, model: planner.ModelSpec) -> None:
    """Every target: the parallel sizes of each worker command equal its pool's plan (or a one-line refusal
    where the engine cannot launch the layout as planned)."""
    pools = doc["pools"]  # prefill before decode, as the exporters print them
    plans = [ServingPlan.model_validate(p["plan"]) for p in pools]
    for target in TARGETS:
        engine = doc["engine"]["name"] if target == "k8s" else target
        unlaunchable = engine == "trtllm" and any(model.is_moe and p.tp > 1 and p.dp > 1 for p in plans)
        if unlaunchable:
            with pytest.raises(ExportError) as err:
                export_serving(doc, target)
            msg = str(err.value)
            assert "\n" not in msg and "cannot launch the plan's attention tp" in msg, msg
            continue
        text = export_serving(doc, target)
        workers = exported_workers(target, engine, text)
        assert len(workers) == len(pools), (target, len(workers))
        for (tokens, options, replicas, gpus), pool, plan in zip(workers, pools, plans):
            got = layout_of(engine, tokens, options, model.is_moe)
            assert got.pop("len") == pool["max_model_len"] >= doc["traffic"]["max_request_tokens"], (target, got)
            assert got == expected_layout(model, plan), (target, pool["role"], got, plan)
            if target == "k8s":
                assert replicas == pool["workers"] and gpus == plan.gpus, (replicas, gpus, pool)


# --------------------------------------------------------------------------------------------------
# the plan checks (the serving model's own account; nothing read from the search's numbers but the plan)
# --------------------------------------------------------------------------------------------------

def accepted_by_estimate_serve(model: str, gpu: str, plan: ServingPlan, isl: int, osl: int, concurrency: int) -> None:
    argv = ["estimate", "serve", "-m", model, "-g", gpu, "--tp", str(plan.tp), "--dp", str(plan.dp), "--pp",
            str(plan.pp), "--precision", plan.precision, "--backend", plan.backend, "--isl", str(isl), "--osl",
            str(osl), "-c", str(concurrency), "--json"]
    if plan.ep is not None:
        argv += ["--ep", str(plan.ep)]
    code, out, err = cli(*argv)
    assert code == 0, (" ".join(argv), err)
    assert json.loads(out)["plan_document"] is not None  # it fits, and its document passed the gate


def holds_longest(m: planner.ModelSpec, s: planner.System, plan: ServingPlan, isl: int, osl: int, pool: dict,
                  longest: int) -> None:
    length = pool["max_model_len"]
    assert longest <= length < longest + CONTEXT_ROUNDING or length == m.max_seq_len, (longest, length)
    assert longest_request_fits(m, plan, serving_memory(m, s, plan, isl, osl), length), (plan, length)


def check_plan(doc: dict, m: planner.ModelSpec, s: planner.System, gpus: int, isl: int, osl: int, ttft_ms: float,
               tpot_ms: float, rate: float | None, longest: int, model_name: str, gpu_name: str) -> None:
    pools = {p["role"]: p for p in doc["pools"]}
    total = sum(p["workers"] * ServingPlan.model_validate(p["plan"]).gpus for p in doc["pools"])
    assert total == doc["gpus"] <= gpus == doc["gpu_budget"], (total, doc["gpus"], gpus)
    assert doc["traffic"]["max_request_tokens"] == longest and doc["traffic"]["rate_rps"] == rate
    if doc["mode"] == "aggregated":
        pool = pools["aggregated"]
        plan = ServingPlan.model_validate(pool["plan"])
        c = pool["concurrency"]
        est = estimate_serving(m, s, plan, isl, osl, c)
        assert est.fits and c <= est.memory.max_concurrency, (plan, c, est.memory.max_concurrency)
        assert le(est.ttft_ms, ttft_ms) and le(est.tpot_ms, tpot_ms), (est.ttft_ms, est.tpot_ms)
        # what the plan says it sustains (the CLI's "requests/s sustained") is what its replicas sustain
        assert doc["prediction"]["requests_per_s"] == pytest.approx(pool["workers"] * est.requests_per_s, rel=1e-6)
        if rate is not None:
            assert le(rate, pool["workers"] * est.requests_per_s), (rate, pool["workers"], est.requests_per_s)
        holds_longest(m, s, plan, isl, osl, pool, longest)
        accepted_by_estimate_serve(model_name, gpu_name, plan, isl, osl, c)
        return
    pre, dec = pools["prefill"], pools["decode"]
    pplan, dplan = ServingPlan.model_validate(pre["plan"]), ServingPlan.model_validate(dec["plan"])
    groups = dec["workers"]  # one decode worker per group, its prefill workers beside it
    assert pre["workers"] % groups == 0, (pre["workers"], groups)
    d = estimate_serving(m, s, dplan, isl, osl, dec["concurrency"], mode="disagg")
    assert d.fits and le(d.tpot_ms, tpot_ms), (dplan, d.tpot_ms)
    group = estimate_serving(m, s, dplan, isl, osl, dec["concurrency"], mode="disagg", prefill_plan=pplan,
                             prefill_workers=pre["workers"] // groups, decode_workers=1)
    assert le(group.ttft_ms, ttft_ms), (pplan, group.ttft_ms)
    # a group completes what its decode worker decodes, C / ((osl - 1) TPOT + prefill), and its prefill workers
    # prefill at least as many (pw dp / T_prefill): a saturated prompt queue is not a plan for a rate
    decoded = dec["concurrency"] / (max(0, osl - 1) * d.tpot_ms / 1e3 + d.breakdown["prefill_s"])
    prefilled = pre["workers"] // groups * pplan.dp / group.breakdown["prefill_s"]
    assert le(decoded, prefilled), (decoded, prefilled, pplan, pre["workers"], groups)
    # what the plan says it sustains is what its pools sustain
    assert doc["prediction"]["requests_per_s"] == pytest.approx(groups * min(decoded, prefilled), rel=1e-6)
    if rate is not None:
        assert le(rate, groups * min(decoded, prefilled)), (rate, groups, decoded, prefilled)
    pmem = serving_memory(m, s, pplan, isl, osl)
    assert 1 <= pre["concurrency"] <= pmem.max_concurrency, (pre["concurrency"], pmem.max_concurrency)
    for pool, plan in ((pre, pplan), (dec, dplan)):
        holds_longest(m, s, plan, isl, osl, pool, longest)
        accepted_by_estimate_serve(model_name, gpu_name, plan, isl, osl, pool["concurrency"])


# --------------------------------------------------------------------------------------------------
# the search, over random inputs
# --------------------------------------------------------------------------------------------------

MODELS = tuple(planner.model_names())
MOE_MODELS = tuple(n for n in MODELS if planner.get_model(n).is_moe)
DENSE_MODELS = tuple(n for n in MODELS if n not in MOE_MODELS)
SYSTEMS = tuple(planner.hardware_names())
BIG_SYSTEMS = tuple(n for n in SYSTEMS if planner.get_system(n).accelerator.memory_bytes > 1e11)  # > 100 GB


@st.composite
def serve_case(draw):
    model = draw(st.sampled_from(draw(st.sampled_from((DENSE_MODELS, MOE_MODELS)))))  # half dense, half MoE
    m = planner.get_model(model)
    ctx = m.max_seq_len or 1 << 20
    if draw(st.sampled_from((False,) * 11 + (True,))):  # now and then a request longer than the context
        isl = draw(st.integers(min(ctx // 2, 1 << 20), min(ctx, 1 << 20)))
        osl = max(1, ctx - isl) + draw(st.integers(1, 500))
    else:
        isl = draw(st.integers(16, min(ctx * 3 // 4, 12000)))
        osl = draw(st.integers(4, max(4, min(ctx - isl, 2000))))
    return {
        "model": model,
        "gpu": draw(st.sampled_from(draw(st.sampled_from((SYSTEMS, BIG_SYSTEMS, BIG_SYSTEMS))))),
        "gpus": draw(st.sampled_from((1, 2, 3, 4, 6, 8, 8, 12, 16, 16, 24, 32, 32, 64, 72, 128))),
        "isl": isl,
        "osl": osl,
        "ttft": f"{draw(st.sampled_from((80, 300, 1000, 2500, 6000))) * draw(st.integers(80, 125)) / 100:g}ms",
        "tpot": f"{draw(st.sampled_from((8, 20, 40, 80, 200))) * draw(st.integers(80, 125)) / 100:g}ms",
        "rate": draw(st.one_of(st.none(), st.floats(0.02, 80.0))),
        "backend": draw(st.sampled_from(("trtllm", "vllm", "sglang"))),
        "disagg": draw(st.sampled_from(("auto", "auto", "off", "on"))),
        "objective": draw(st.sampled_from(("throughput", "cost"))),
        "export": draw(st.sampled_from(TARGETS)),
    }


def serve_argv(case: dict) -> list[str]:
    argv = ["serve", "-m", case["model"], "-g", case["gpu"], "--gpus", str(case["gpus"]), "--isl", str(case["isl"]),
            "--osl", str(case["osl"]), "--ttft", case["ttft"], "--tpot", case["tpot"],
            "--backend", case["backend"], "--disagg", case["disagg"], "--objective", case["objective"]]
    return argv + (["--rate", repr(case["rate"])] if case["rate"] is not None else [])


OUTCOMES: dict[str, int] = {}


def test_every_returned_plan_is_valid():
    """API and CLI: every plan fits, stays within --gpus, serves the rate, meets the SLOs by the model, is
    accepted by estimate serve, and exports with its own parallel sizes; a refusal is one line, exit 2."""

    @props(180)
    @given(serve_case())
    def run(case):
        m, s = planner.get_model(case["model"]), planner.get_system(case["gpu"])
        kw = {k: case[k] for k in ("backend", "disagg", "objective")}
        # the SLOs as the CLI reads its flags, so the API's and the CLI's documents are the same bytes
        case["ttft_ms"], case["tpot_ms"] = serve_cli._ms(case["ttft"], "--ttft"), serve_cli._ms(case["tpot"], "--tpot")
        argv = serve_argv(case)
        try:
            res = planner.search_serve(m, s, case["gpus"], case["isl"], case["osl"], case["ttft_ms"], case["tpot_ms"],
                                       rate=case["rate"], **kw)
        except PlannerError as exc:
            msg = str(exc)
            assert msg and "\n" not in msg
            code, out, err = cli(*argv, "--json")
            assert (code, out, err) == (2, "", f"error: {msg}\n"), (argv, code, err)
            OUTCOMES["refused"] = OUTCOMES.get("refused", 0) + 1
            return
        docs = res.plan_documents
        assert docs and res.plan_document == docs[res.best] and set(docs) == {
            c for c in ("aggregated", "disaggregated") if getattr(res, c) is not None}
        if case["disagg"] == "off":
            assert set(docs) == {"aggregated"}
        if case["disagg"] == "on":
            assert set(docs) == {"disaggregated"}
        longest = case["isl"] + case["osl"]
        for choice, doc in docs.items():
            assert doc["mode"] == choice and doc["engine"]["name"] == case["backend"]
            check_plan(doc, m, s, case["gpus"], case["isl"], case["osl"], case["ttft_ms"], case["tpot_ms"],
                       case["rate"], longest, case["model"], case["gpu"])
            for p in doc["pools"]:  # the search proposes only layouts its engine launches as planned
                plan = ServingPlan.model_validate(p["plan"])
                assert plan.backend == case["backend"]
                assert not (case["backend"] == "trtllm" and m.is_moe and plan.tp > 1 and plan.dp > 1), plan
            check_exports(doc, m)
            OUTCOMES[choice] = OUTCOMES.get(choice, 0) + 1
        # the CLI: the same documents, and its --export gives what export_serving gives for the best plan
        target = case["export"]
        code, out, err = cli(*argv, "--json", "--export", target)
        try:
            want = export_serving(res.plan_document, target)
        except ExportError as exc:
            assert (code, out, err) == (2, "", f"error: {exc}\n"), (argv, target, err)
        else:
            assert code == 0 and err == "", (argv, err)
            got = json.loads(out)
            assert got["plan_documents"] == json.loads(json.dumps(docs))
            assert got["export"] == {"target": target, "text": want}

    run()
    print("outcomes", OUTCOMES)
    # the draws reached every kind of answer
    assert OUTCOMES.get("refused", 0) >= 3 and OUTCOMES.get("aggregated", 0) >= 10, OUTCOMES
    assert OUTCOMES.get("disaggregated", 0) >= 5, OUTCOMES


def test_plans_from_a_trace_hold_its_longest_request(reference_dir):
    """--trace: every worker and every export holds the trace's longest request (prompt + output), not its
    mean (splitwise_conv.csv: 19,366 requests, the longest 14,089 tokens, the mean ~1,366)."""
    trace = reference_dir / "traces" / "splitwise_conv.csv"
    code, out, err = cli("serve", "-m", "llama-3.1-70b", "-g", "h100", "--gpus", "16", "--ttft", "1s", "--tpot",
                         "50ms", "--trace", str(trace), "--json")
    assert code == 0, err
    res = json.loads(out)
    m, s = planner.get_model("llama-3.1-70b"), planner.get_system("h100")
    for doc in res["plan_documents"].values():
        t = doc["traffic"]
        assert t["source"] == "trace" and t["max_request_tokens"] == 14089 and t["isl"] + t["osl"] < 2000
        assert 1.0 < t["rate_rps"] < 20.0
        for p in doc["pools"]:
            assert p["max_model_len"] == 14336  # 14,089 rounded up to 256
        check_plan(doc, m, s, 16, t["isl"], t["osl"], 1000.0, 50.0, t["rate_rps"], 14089, "llama-3.1-70b", "h100")
        check_exports(doc, m)


def test_workers_hold_the_engines_max_model_len():
    """The exported max model length is the longest request rounded up to 256 tokens, and vLLM refuses to start
    when its KV cache cannot hold one request of that length: a worker that holds the longest request but not
    the rounded length is not proposed. Llama-3.1-8B on one L4 in bf16 holds ~30,000 tokens of KV cache."""
    m, s = planner.get_model("llama-3.1-8b"), planner.get_system("l4")
    plan = ServingPlan(tp=1, precision="bf16")
    cap = serving_memory(m, s, plan, 1000, 100).kv_capacity_tokens
    assert 20_000 < cap < 40_000 and cap % CONTEXT_ROUNDING, cap
    below = cap // CONTEXT_ROUNDING * CONTEXT_ROUNDING  # rounds to itself: fits
    mem = serving_memory(m, s, plan, 1000, 100)
    assert longest_request_fits(m, plan, mem, below + 1) and not longest_request_fits(m, plan, mem, below + 256)
    slo = {"ttft_ms": 600_000.0, "tpot_ms": 1000.0, "precisions": ("bf16",)}
    res = planner.search_serve(m, s, 1, below - 100, 100, **slo)
    (pool,) = res.plan_documents["aggregated"]["pools"]
    assert pool["max_model_len"] == below and pool["plan"]["tp"] == 1
    with pytest.raises(PlannerError, match=f"one request of {below + CONTEXT_ROUNDING} tokens"):
        planner.search_serve(m, s, 1, below - 99, 100, **slo)  # the longest request (below + 1) fits; its 256-round does not


# --------------------------------------------------------------------------------------------------
# clear refusals
# --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("argv, message", [
    (["-m", "llama-3.1-70b", "-g", "h100", "--gpus", "8", "--isl", "1000", "--osl", "100", "--ttft", "1s",
      "--tpot", "50ms", "--rate", "1000"],
     r"serving 1000 requests/s of llama-3\.1-70b within the SLOs needs at least \d+ x h100-sxm; --gpus is 8"),
    (["-m", "llama-3.1-70b", "-g", "h100", "--gpus", "8", "--isl", "1000", "--osl", "100", "--ttft", "10ms",
      "--tpot", "5ms"], r"no plan for llama-3\.1-70b on h100-sxm meets TPOT <= 5 ms: the fastest plan reaches "),
    (["-m", "llama-3.1-405b", "-g", "h100", "--gpus", "4", "--isl", "1000", "--osl", "100", "--ttft", "1s",
      "--tpot", "50ms"], r"no worker layout of up to 4 x h100-sxm \(bf16, fp8\) holds llama-3\.1-405b's weights"),
    (["-m", "llama-2-7b", "-g", "h100", "--gpus", "8", "--isl", "4000", "--osl", "200", "--ttft", "1s",
      "--tpot", "50ms"], r"isl \+ osl \(4200 tokens, prompt \+ output\) exceeds llama-2-7b's 4096-token context"),
])
def test_infeasible_is_one_error_line(argv, message):
    for extra in ([], ["--json"], ["--export", "vllm"]):
        code, out, err = cli("serve", *argv, *extra)
        assert code == 2 and out == "" and err.count("\n") == 1 and re.fullmatch(f"error: {message}.*\n", err), err


def test_trtllm_refuses_a_layout_it_cannot_launch():
    """TensorRT-LLM's attention DP is TP 1: an SGLang plan of attention tp 2 x dp 2 is refused (one line) rather
    than launched as dp 4, and the trtllm search never proposes one (here it does for sglang)."""
    kw = {"gpus": 16, "isl": 4000, "osl": 1000, "ttft_ms": 1000.0, "tpot_ms": 40.0, "rate": 5.0}
    res = planner.search_serve("qwen3-235b-a22b", "h200", **kw, backend="sglang")
    mixed = [d for d in res.plan_documents.values()
             if any(p["plan"]["tp"] > 1 and p["plan"]["dp"] > 1 for p in d["pools"])]
    assert mixed, "the sglang search no longer proposes a tp x dp layout; pick another case"
    with pytest.raises(ExportError, match=r"^TensorRT-LLM's attention DP runs attention with TP 1 .* cannot launch "
                                          r"the plan's attention tp 2 x dp \d+; plan with --backend trtllm"):
        export_serving(mixed[0], "trtllm")
    m, s = planner.get_model("qwen3-235b-a22b"), planner.get_system("h200")
    trt = search_serving(m, s, kw["gpus"], kw["isl"], kw["osl"], kw["ttft_ms"], kw["tpot_ms"], rate=kw["rate"],
                         backend="trtllm")
    plans = [e.plan for e in trt.pareto]
    plans += [trt.aggregated.estimate.plan] if trt.aggregated else []
    plans += [trt.disaggregated.prefill_plan, trt.disaggregated.decode.plan] if trt.disaggregated else []
    assert plans and all(p.tp == 1 or p.dp == 1 for p in plans), plans


# --------------------------------------------------------------------------------------------------
# one default backend; simulate refuses what estimate serve refuses
# --------------------------------------------------------------------------------------------------

def _option_default(fn, name: str):
    return inspect.signature(fn).parameters[name].default.default  # a typer OptionInfo


def test_one_default_backend_everywhere():
    defaults = {
        "ServingPlan": ServingPlan.model_fields["backend"].default,
        "search_serving": inspect.signature(search_serving).parameters["backend"].default,
        "estimate serve": _option_default(serve_cli.estimate_serve, "backend"),
        "serve": _option_default(serve_cli.serve, "backend"),
        "simulate": _option_default(serve_cli.simulate_cmd, "backend"),
    }
    assert set(defaults.values()) == {"trtllm"}, defaults
    # and what a user sees: the help text of each command says the same default
    for argv in (["serve", "--help"], ["simulate", "--help"], ["estimate", "serve", "--help"]):
        code, out, _ = cli(*argv)
        assert code == 0 and re.search(r"\[default:\s*trtllm\]", out), argv


@st.composite
def worker_case(draw):
    model = draw(st.sampled_from(("llama-3.1-8b", "llama-3.1-70b", "qwen3-32b", "mixtral-8x7b", "qwen3-30b-a3b",
                                  "gpt-oss-20b", "llama-2-7b", "deepseek-v3")))
    return {
        "model": model,
        "gpu": draw(st.sampled_from(("h100", "a100", "l40s", "h200", "b200", "mi300x"))),
        "tp": draw(st.sampled_from((1, 2, 3, 4, 8))),
        "dp": draw(st.sampled_from((1, 1, 2))),
        "ep": draw(st.sampled_from((None, None, 1, 2, 4, 16))),
        "precision": draw(st.sampled_from(("bf16", "fp8", "int4", "fp4"))),
        "backend": draw(st.sampled_from(("trtllm", "vllm", "sglang"))),
        "isl": draw(st.sampled_from((128, 2000, 30000, 120000, 200000))),
        "osl": draw(st.integers(2, 24)),
    }


def test_simulate_refuses_what_estimate_serve_refuses():
    """The same worker and request length: ``estimate serve -c 1`` exits 2 exactly when ``simulate`` does (both
    one line); layouts the model does not allow, requests beyond the context, a worker that cannot hold one
    request."""
    seen = {0: 0, 2: 0}

    @props(80)
    @given(worker_case())
    def run(c):
        common = ["-m", c["model"], "-g", c["gpu"], "--tp", str(c["tp"]), "--dp", str(c["dp"]), "--precision",
                  c["precision"], "--backend", c["backend"]] + (["--ep", str(c["ep"])] if c["ep"] is not None else [])
        est = cli("estimate", "serve", *common, "--isl", str(c["isl"]), "--osl", str(c["osl"]), "-c", "1", "--json")
        sim = cli("simulate", *common, "--rate", "1", "--isl", str(c["isl"]), "--osl", str(c["osl"]), "--requests",
                  "2", "--json")
        assert est[0] in (0, 2) and sim[0] == est[0], (c, est[2], sim[2])
        if est[0] == 2:
            for _, out, err in (est, sim):
                assert out == "" and err.startswith("error: ") and err.count("\n") == 1, err
        seen[est[0]] += 1

    run()
    assert seen[0] >= 5 and seen[2] >= 5, seen


def test_simulate_and_estimate_serve_agree_on_named_cases():
    """Hand-picked: Llama-3.1-70B on one H100 (weights 141 GB), on two H100 with a 51,000-token request (weights
    fit, the request's KV cache does not), and a 200,000-token request (past its 131,072-token context)."""
    for extra, says in ((["--tp", "1"], "does not fit on 1 x h100-sxm"),
                        (["--tp", "2", "--isl", "50000", "--osl", "1000"], "does not fit on 2 x h100-sxm"),
                        (["--tp", "8", "--isl", "199000", "--osl", "1000"], "131072-token context")):
        est = cli("estimate", "serve", "-m", "llama-3.1-70b", "-g", "h100", "-c", "1",
                  *(extra if "--isl" in extra else [*extra, "--isl", "1024", "--osl", "256"]))
        sim = cli("simulate", "-m", "llama-3.1-70b", "-g", "h100", "--rate", "1", "--requests", "2", *extra)
        for code, out, err in (est, sim):
            assert code == 2 and out == "" and err.count("\n") == 1 and says in err, err
    # the request's own KV cache is named when the weights fit
    _, _, err = cli("simulate", "-m", "llama-3.1-70b", "-g", "h100", "--tp", "2", "--isl", "50000", "--osl", "1000",
                    "--rate", "1", "--requests", "2")
    assert re.search(r"the KV cache of one request of 51000 tokens \d+\.\d GB per GPU exceed", err), err
