"""Serving cost model: KV capacity closed forms, invariants, the CSV batch form and the CLI."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

import planner
from planner.cost.serving import (
    BACKENDS,
    ServingPlan,
    estimate_serving,
    kv_bytes_per_token_per_gpu,
    serving_memory,
    weight_bytes_per_gpu,
)
from planner.validate.serving_rows import estimate_row
from test_cli import assert_one_line_error, run


@pytest.fixture(scope="module")
def llama70b():
    return planner.get_model("llama-3.1-70b")


# ---- KV capacity: closed forms ------------------------------------------------------------

@pytest.mark.parametrize("gpu", ["h100", "h200"])
@pytest.mark.parametrize("kv, per_token", [("bf16", 327_680), ("fp8", 163_840)])
def test_llama70b_kv_capacity_closed_form(llama70b, gpu, kv, per_token):
    """80 layers x 8 KV heads x 128 x (K, V) x bytes = 327,680 B/token in bf16, split over tp 8;
    capacity = (memory fraction x HBM - weights - workspace) / bytes per token per GPU."""
    system = planner.get_system(gpu)
    plan = ServingPlan(tp=8, precision="fp8", kv_dtype=kv, backend="vllm")
    assert kv_bytes_per_token_per_gpu(llama70b, plan) == per_token / 8
    mem = serving_memory(llama70b, system, plan, 1024, 1024)
    free = system.accelerator.memory_bytes * BACKENDS["vllm"].mem_fraction - mem.weights_bytes - mem.workspace_bytes
    assert mem.kv_capacity_tokens == math.floor(free / (per_token / 8))
    assert mem.max_concurrency == mem.kv_capacity_tokens // 2048
    # fp8 weights: 1 B per linear parameter, 16-bit embeddings and LM head
    linear = llama70b.total_params - llama70b.embedding_params - llama70b.lm_head_params
    assert mem.weights_bytes == pytest.approx(linear / 8 + (llama70b.embedding_params + llama70b.lm_head_params) / 8 * 2)


def test_deepseek_v3_mla_kv_capacity_on_h200():
    """MLA caches the 512 + 64 latent per layer: 61 x 576 x 2 = 70,272 B/token in bf16, replicated
    on every tensor-parallel GPU; attention DP splits the requests instead."""
    m, system = planner.get_model("deepseek-v3"), planner.get_system("h200")
    tp8 = ServingPlan(tp=8, precision="fp8", kv_dtype="bf16", backend="sglang")
    dp8 = ServingPlan(tp=1, dp=8, precision="fp8", kv_dtype="bf16", backend="sglang")
    assert kv_bytes_per_token_per_gpu(m, tp8) == 70_272
    a, b = serving_memory(m, system, tp8, 1024, 1024), serving_memory(m, system, dp8, 1024, 1024)
    free = system.accelerator.memory_bytes * BACKENDS["sglang"].mem_fraction - a.weights_bytes - a.workspace_bytes
    assert a.kv_capacity_tokens == math.floor(free / 70_272)
    assert b.kv_capacity_tokens > 5 * a.kv_capacity_tokens  # each DP rank holds its own requests' latents


def test_quantization_shrinks_weights(llama70b):
    sizes = [weight_bytes_per_gpu(llama70b, ServingPlan(tp=8, precision=p)) for p in ("bf16", "fp8", "fp4", "int4")]
    assert sizes[0] > sizes[1] > sizes[2] > sizes[3]  # NVFP4 scales (1/16 B) cost more than int4 group scales
    assert sizes[1] == pytest.approx(sizes[0] / 2, rel=0.05)


# ---- invariants ---------------------------------------------------------------------------------

def test_latency_grows_with_load_and_prompt(llama70b):
    h100 = planner.get_system("h100")
    plan = ServingPlan(tp=8, precision="fp8", backend="trtllm")
    tpots = [estimate_serving(llama70b, h100, plan, 2048, 512, c).tpot_ms for c in (1, 8, 32, 128)]
    assert tpots == sorted(tpots)
    ttfts = [estimate_serving(llama70b, h100, plan, isl, 512, 16).ttft_ms for isl in (512, 2048, 8192)]
    assert ttfts == sorted(ttfts)
    tput = [estimate_serving(llama70b, h100, plan, 2048, 512, c).tokens_per_s_per_gpu for c in (1, 8, 32)]
    assert tput == sorted(tput)  # batching raises throughput per GPU


def test_more_tensor_parallelism_lowers_tpot_at_small_batch(llama70b):
    h200 = planner.get_system("h200")
    t4 = estimate_serving(llama70b, h200, ServingPlan(tp=4, precision="fp8"), 1024, 256, 1).tpot_ms
    t8 = estimate_serving(llama70b, h200, ServingPlan(tp=8, precision="fp8"), 1024, 256, 1).tpot_ms
    assert t8 < t4


def test_bad_plans(llama70b):
    h100 = planner.get_system("h100")
    with pytest.raises(planner.PlannerError, match="isl must be at least 1, got 0"):
        estimate_serving(llama70b, h100, ServingPlan(tp=8), 0, 10, 1)
    with pytest.raises(ValueError, match="no experts"):
        estimate_serving(llama70b, h100, ServingPlan(tp=8, ep=8), 10, 10, 1)
    with pytest.raises(ValueError, match="FP8"):
        estimate_serving(llama70b, planner.get_system("a100-sxm-80gb"), ServingPlan(tp=8, precision="fp8"), 10, 10, 1)
    with pytest.raises(ValueError, match="does not divide the 64 attention heads"):
        estimate_serving(llama70b, h100, ServingPlan(tp=3), 10, 10, 1)


def test_wide_expert_parallelism_gets_redundant_slots():
    """ep 36 over DeepSeek's 256 experts: ceil(256 / 36) = 8 expert slots per GPU (the
    spare ones hold replicas of hot experts), so the expert weights on a GPU are 8 / 256 of
    all of them, the same as ep 32."""
    ds = planner.get_model("deepseek-v3")
    w36 = weight_bytes_per_gpu(ds, ServingPlan(dp=36, ep=36, moe_tp=1, precision="fp8"))
    w32 = weight_bytes_per_gpu(ds, ServingPlan(dp=32, ep=32, moe_tp=1, precision="fp8"))
    assert w36 == pytest.approx(w32)
    with pytest.raises(ValueError, match="exceeds the 256 experts"):
        estimate_serving(ds, planner.get_system("h100"), ServingPlan(dp=512, ep=512, moe_tp=1), 10, 10, 1)


def test_prompts_arriving_together_lengthen_the_first_token():
    """The burst term: with the constant on, TTFT at concurrency C grows by
    ttft_burst (C - 1) / 2 x the packed prefill time per request; at C = 1 it adds nothing."""
    from dataclasses import replace

    from planner.cost.serving import closed_loop

    c = replace(BACKENDS["vllm"], ttft_burst=0.0)
    on = replace(c, ttft_burst=0.5)
    assert closed_loop(0.1, 0.01, 100, 1, on, t_burst=0.05)[0] == pytest.approx(closed_loop(0.1, 0.01, 100, 1, c)[0])
    base, burst = closed_loop(0.1, 0.01, 100, 9, c, t_burst=0.05), closed_loop(0.1, 0.01, 100, 9, on, t_burst=0.05)
    assert burst[0] > base[0] + 0.5 * 8 / 2 * 0.05 * 0.9  # at least ~the burst wait (the loop slows a little)


# ---- rows of measured_serving.csv ---------------------------------------------------------------

ROW = {"id": "r1", "model_path": "meta-llama/Llama-3.1-70B", "system": "h100_sxm", "backend": "trtllm",
       "precision": "fp8", "mode": "agg", "isl": "1024", "osl": "128", "batch_size": "16", "tp_size": "8",
       "pp_size": "1", "attention_dp_size": "1", "moe_tp_size": "", "moe_ep_size": ""}


def test_row_estimates_and_reasons():
    ok = estimate_row(ROW)
    assert ok.ttft_ms and ok.tpot_ms and not ok.reason
    assert estimate_row({**ROW, "model_path": "nobody/NoSuchModel"}).reason.startswith("unknown model")
    assert "batch sizes" in estimate_row({**ROW, "mode": "disagg", "batch_size": ""}).reason
    assert "backend" in estimate_row({**ROW, "backend": "tgi"}).reason
    # a malformed value is the row's reason, never a crash nor a silent default
    bad = estimate_row({**ROW, "tp_size": "banana"})
    assert bad.ttft_ms is None and bad.reason == "tp_size 'banana' is not a number"
    assert "isl must be a whole number" in estimate_row({**ROW, "isl": "inf"}).reason
    assert "batch_size must be a whole number from 0 to 1,048,576" in estimate_row({**ROW, "batch_size": "1e9"}).reason
    assert estimate_row({**ROW, "pp_size": "0"}).ttft_ms == ok.ttft_ms  # 0 means "not set", as in the reference
    # the same architecture under a re-packaged, quantized name
    assert estimate_row({**ROW, "model_path": "nvidia/Llama-3.1-70B-FP8"}).ttft_ms is not None


def test_rows_with_a_tp_that_cannot_split_the_heads_are_attention_dp():
    """A DeepSeek row on 36 GPUs with tp 36 (128 heads) and moe_tp 36 (2048-wide experts):
    neither split exists, so the worker is 36-way attention DP with 36-way expert parallelism."""
    row = {**ROW, "model_path": "deepseek-ai/DeepSeek-R1", "system": "gb200", "precision": "fp4", "tp_size": "36",
           "moe_tp_size": "36", "moe_ep_size": "1", "batch_size": "512"}
    res = estimate_row(row)
    assert res.estimate is not None, res.reason
    plan = res.estimate.plan
    assert (plan.tp, plan.dp, plan.ep, plan.moe_tp) == (1, 36, 36, 1)
    # a tp that divides the heads is kept as written
    keep = estimate_row({**row, "tp_size": "8", "moe_tp_size": "1", "moe_ep_size": "8"}).estimate
    assert keep is not None and (keep.plan.tp, keep.plan.dp) == (8, 1)


def test_csv_batch_form(tmp_path: Path):
    src = tmp_path / "rows.csv"
    cols = list(ROW)
    lines = [",".join(cols), ",".join(ROW[c] for c in cols),
             ",".join({**ROW, "id": "r2", "model_path": "nobody/Nope"}[c] for c in cols)]
    src.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out.csv"
    r = run("estimate", "serve", "--from-csv", str(src), "--out", str(out))
    assert r.returncode == 0, r.stderr
    got = out.read_text().splitlines()
    assert got[0] == "id,ttft_ms,tpot_ms,reason"
    assert got[1].startswith("r1,") and got[1].endswith(",")
    assert got[2].startswith("r2,,,") and "unknown model" in got[2]


def test_estimate_serve_json():
    r = run("estimate", "serve", "--model", "qwen3-32b", "--gpu", "h200", "--tp", "4", "--isl", "4000", "--osl", "500",
            "--concurrency", "16", "--precision", "fp8", "--json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert {"ttft_ms", "tpot_ms", "tokens_per_s_per_gpu", "tokens_per_s_per_user", "memory", "fits"} <= set(d)
    assert d["fits"] and d["ttft_ms"] > 0 and d["tpot_ms"] > 0


def test_estimate_serve_errors():
    base = ["estimate", "serve", "--model", "llama-3.1-8b", "--gpu", "h100", "--isl", "4000", "--osl", "500"]
    assert_one_line_error(run(*base, "--concurrency", "5000"), "does not fit the KV cache", "at most")
    assert_one_line_error(run(*base, "--concurrency", "8", "--precision", "fp3"), "unknown precision")
    assert_one_line_error(run(*base), "missing --concurrency")
    assert_one_line_error(run("estimate", "serve", "--model", "llama-3.1-70b", "--gpu", "h100", "--isl", "10", "--osl",
                              "10", "-c", "1"), "weights alone need")


def test_validate_serving(reference_dir: Path):
    from planner.validate.serving import validate_serving

    cal = validate_serving(reference_dir, "calibration")
    rep = validate_serving(reference_dir, "report")
    assert cal.coverage_pct >= 90 and rep.coverage_pct >= 90
    assert cal.ttft_mape_pct < 34 and cal.tpot_mape_pct < 21  # fitted split (32.5 / 20.5)
    assert rep.ttft_mape_pct < 42 and rep.tpot_mape_pct < 20  # never fitted (41.1 / 19.8): guards regressions
    r = run("validate", "serving", "--reference", str(reference_dir), "--split", "calibration", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["split"] == "calibration"


# ---- serving plan search --------------------------------------------------------------------

def test_serve_search_gives_both_answers_within_slos():
    from planner.search.serving import search_serving

    m, s = planner.get_model("qwen3-32b"), planner.get_system("h200")
    res = search_serving(m, s, 32, 4000, 500, ttft_ms=300, tpot_ms=10)
    a, d = res.aggregated, res.disaggregated
    assert a is not None and d is not None
    assert a.estimate.ttft_ms <= 300 and a.estimate.tpot_ms <= 10 and a.gpus <= 32
    assert d.ttft_ms <= 300 and d.tpot_ms <= 10 and d.gpus <= 32
    best = max(a.estimate.tokens_per_s_per_gpu, d.tokens_per_s_per_gpu)
    assert res.best == ("aggregated" if a.estimate.tokens_per_s_per_gpu == best else "disaggregated")
    # the front is non-dominated: faster per user means less per GPU
    f = res.pareto
    assert all(x.tokens_per_s_per_user >= y.tokens_per_s_per_user and x.tokens_per_s_per_gpu < y.tokens_per_s_per_gpu
               for x, y in zip(f, f[1:]))


def test_looser_slo_never_lowers_throughput():
    from planner.search.serving import search_serving

    m, s = planner.get_model("llama-3.1-8b"), planner.get_system("h100")
    tight = search_serving(m, s, 8, 2000, 300, ttft_ms=300, tpot_ms=10, disagg="off")
    loose = search_serving(m, s, 8, 2000, 300, ttft_ms=600, tpot_ms=20, disagg="off")
    assert loose.aggregated.estimate.tokens_per_s_per_gpu >= tight.aggregated.estimate.tokens_per_s_per_gpu


def test_rate_sizes_the_replicas():
    from planner.search.serving import search_serving

    m, s = planner.get_model("llama-3.1-8b"), planner.get_system("h100")
    res = search_serving(m, s, 64, 2000, 300, ttft_ms=500, tpot_ms=20, rate=20.0, disagg="off")
    a = res.aggregated
    assert a.replicas == math.ceil(20.0 / a.estimate.requests_per_s)


def test_unmeetable_slo_says_which_and_the_best_value():
    r = run("serve", "--model", "qwen3-32b", "--gpu", "h200", "--gpus", "32", "--isl", "4000", "--osl", "500",
            "--ttft", "300ms", "--tpot", "1ms")
    line = assert_one_line_error(r, "TPOT <= 1 ms", "reaches")
    assert "TTFT" not in line
    r = run("serve", "--model", "qwen3-32b", "--gpu", "h200", "--gpus", "32", "--isl", "4000", "--osl", "500",
            "--ttft", "5ms", "--tpot", "50ms")
    assert_one_line_error(r, "TTFT <= 5 ms")


def test_serve_cli_json():
    r = run("serve", "--model", "qwen3-32b", "--gpu", "h200", "--gpus", "32", "--isl", "4000", "--osl", "500",
            "--ttft", "300ms", "--tpot", "10ms", "--json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["aggregated"] and d["disaggregated"] and d["best"] in ("aggregated", "disaggregated")


# ---- traffic simulation ---------------------------------------------------------------------

def _sim_setup():
    from planner.simulation import poisson_requests

    m, s = planner.get_model("llama-3.1-8b"), planner.get_system("h100")
    return m, s, ServingPlan(tp=1, backend="vllm"), poisson_requests(4.0, 300, 1000, 200, seed=7)


def test_simulation_is_reproducible_and_consistent():
    from planner.simulation import poisson_requests, simulate

    m, s, plan, reqs = _sim_setup()
    a = simulate(m, s, plan, reqs, 500, 50)
    b = simulate(m, s, plan, poisson_requests(4.0, 300, 1000, 200, seed=7), 500, 50)
    assert a == b
    assert a.ttft_ms["p50"] <= a.ttft_ms["p90"] <= a.ttft_ms["p99"]
    assert 0 <= a.attainment <= 1
    # an idle worker: the first token is one prefill away, tokens one decode step apart
    lone = simulate(m, s, plan, poisson_requests(0.01, 3, 1000, 200, seed=1))
    step = estimate_serving(m, s, plan, 1000, 200, 1).breakdown["decode_step_s"] * 1e3
    assert lone.tpot_ms["p50"] == pytest.approx(step, rel=0.15)


def test_more_load_means_slower_requests():
    from planner.simulation import scale_rate, simulate

    m, s, plan, reqs = _sim_setup()
    slow = simulate(m, s, plan, scale_rate(reqs, 8.0))
    fast = simulate(m, s, plan, reqs)
    assert slow.ttft_ms["p90"] >= fast.ttft_ms["p90"] and slow.tpot_ms["mean"] >= fast.tpot_ms["mean"]


def test_goodput_reproducible_and_monotone_in_the_slo():
    from planner.simulation import goodput

    m, s, plan, reqs = _sim_setup()
    tight = goodput(m, s, plan, reqs, 200, 15)
    again = goodput(m, s, plan, reqs, 200, 15)
    loose = goodput(m, s, plan, reqs, 400, 30)
    assert tight.goodput_rps == again.goodput_rps > 0
    assert loose.goodput_rps >= tight.goodput_rps


def test_goodput_on_the_splitwise_trace(reference_dir: Path):
    """Acceptance: Llama-3.1-8B on one H100 with splitwise_conv: the same number twice, and
    a looser SLO never lowers it."""
    from planner.simulation import goodput, trace_requests

    m, s = planner.get_model("llama-3.1-8b"), planner.get_system("h100")
    plan = ServingPlan(tp=1, backend="vllm")
    reqs = trace_requests(reference_dir / "traces" / "splitwise_conv.csv", limit=600)
    g1 = goodput(m, s, plan, reqs, 500, 50)
    g2 = goodput(m, s, plan, reqs, 500, 50)
    g3 = goodput(m, s, plan, reqs, 1000, 100)
    assert g1.goodput_rps == g2.goodput_rps > 0
    assert g3.goodput_rps >= g1.goodput_rps


def test_simulate_cli():
    r = run("simulate", "--model", "llama-3.1-8b", "--gpu", "h100", "--rate", "3", "--requests", "100", "--json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert {"p50", "p90", "p99"} <= set(d["simulation"]["ttft_ms"]) and d["goodput"]["goodput_rps"] > 0
    assert_one_line_error(run("simulate", "--model", "llama-3.1-8b", "--gpu", "h100"), "exactly one of --trace")


@pytest.mark.parametrize("target, marker", [("vllm", "vllm serve"), ("sglang", "sglang.launch_server"),
                                            ("trtllm", "trtllm-serve"), ("k8s", "kind: Deployment")])
def test_serve_export(target, marker):
    r = run("serve", "--model", "qwen3-32b", "--gpu", "h200", "--gpus", "32", "--isl", "4000", "--osl", "500",
            "--ttft", "300ms", "--tpot", "10ms", "--export", target)
    assert r.returncode == 0, r.stderr
    assert marker in r.stdout


def test_sliding_window_layers_keep_only_the_window():
    from planner.cost.serving import kv_bytes_per_request_per_gpu

    m = planner.get_model("gpt-oss-120b")  # alternating sliding (128) and full attention layers
    plan = ServingPlan(tp=4, precision="fp4")
    full = kv_bytes_per_token_per_gpu(m, plan)
    sliding = sum(1 for k in m.layer_attention if k == "sliding")
    assert sliding and m.sliding_window
    req = kv_bytes_per_request_per_gpu(m, plan, 9216)
    per_layer = full / sum(1 for k in m.layer_attention if k != "linear")
    assert req == pytest.approx(full * 9216 - per_layer * sliding * (9216 - m.sliding_window))
    mem = serving_memory(m, planner.get_system("h100"), plan, 8192, 1024)
    assert mem.max_concurrency > mem.kv_capacity_tokens // 9216  # more requests fit than full layers suggest


def test_closed_network_wait_limits():
    """Schweitzer MVA of the disaggregated loop: one client never waits; a light load
    barely waits; a saturated prefill pool serves 1 / S requests per second and the wait
    approaches N S - Z (Little's law on the closed loop)."""
    from planner.cost.serving import closed_network_wait

    assert closed_network_wait(1, 0.1, 5.0) == (0.0, pytest.approx(1 / 5.0))
    wait, x = closed_network_wait(10, 0.01, 10.0)
    assert wait < 0.01 and x == pytest.approx(10 / 10.0, rel=0.02)
    wait, x = closed_network_wait(1000, 0.1, 10.0)
    assert x == pytest.approx(1 / 0.1, rel=0.01)
    assert wait == pytest.approx(1000 * 0.1 - (10.0 - 0.1) - 0.1, rel=0.02)


# ---- TTFT terms: waits only from requests that exist (issue 12) -----------------------------

@pytest.mark.parametrize("backend", ["trtllm", "vllm", "sglang"])
def test_concurrency_one_is_prefill_plus_the_engine_overhead(llama70b, backend):
    """Alone, a request waits for nobody: TTFT = the engine's prefill + its named overhead, and
    TPOT = the decode step (no prefills of other requests to interleave)."""
    system = planner.get_system("h100-sxm")
    plan = ServingPlan(tp=4, precision="fp8", backend=backend)
    e = estimate_serving(llama70b, system, plan, 1000, 200, 1)
    b, c = e.breakdown, BACKENDS[backend]
    assert b["ttft_prefill_s"] == pytest.approx(c.ttft_prefill * b["prefill_s"])
    assert b["ttft_overhead_s"] == pytest.approx(c.ttft_overhead_s)
    for wait in ("ttft_queue_s", "ttft_admit_s", "ttft_cycle_s", "ttft_burst_s", "ttft_wait_s"):
        assert b[wait] == 0.0, wait
    assert e.ttft_ms == pytest.approx(1e3 * (b["ttft_prefill_s"] + b["ttft_overhead_s"]))
    assert e.tpot_ms == pytest.approx(1e3 * b["decode_step_s"])
    # with others in flight the named terms still add up to TTFT, and the waits appear
    e8 = estimate_serving(llama70b, system, plan, 1000, 200, 8)
    terms = [k for k in e8.breakdown if k.startswith("ttft_") and k != "ttft_wait_s"]
    assert e8.ttft_ms == pytest.approx(1e3 * sum(e8.breakdown[k] for k in terms))
    assert e8.breakdown["ttft_wait_s"] > 0 and e8.tpot_ms > 1e3 * e8.breakdown["decode_step_s"]


def test_disaggregated_prefill_pool_capacity_counts_attention_dp_once():
    """A prefill worker prefills prefill_batch requests (spread over its attention-DP groups) in
    T_pf: the pool serves workers x prefill_batch / T_pf requests/s. Clients beyond what that
    rate sustains queue for prefill (the closed-network wait grows as N S - Z)."""
    model, system = planner.get_model("deepseek-v3"), planner.get_system("b200")
    pplan = ServingPlan(tp=1, dp=4, precision="fp8")
    dplan = ServingPlan(tp=1, dp=8, precision="fp8")
    kw = dict(mode="disagg", prefill_plan=pplan, prefill_batch=4, prefill_workers=1, decode_workers=1)
    light = estimate_serving(model, system, dplan, 1024, 1024, 64, **kw)
    t_pf = light.breakdown["prefill_s"]
    capacity = 4 / t_pf  # one worker, 4 requests per prefill pass
    assert light.requests_per_s < capacity and light.breakdown["ttft_queue_s"] < t_pf
    heavy = estimate_serving(model, system, dplan, 1024, 1024, 4096, **kw)
    assert heavy.requests_per_s == pytest.approx(capacity, rel=0.05)  # the prefill pool is the bottleneck
    b = heavy.breakdown
    own_cycle = heavy.ttft_ms / 1e3 - b["ttft_queue_s"] - b["ttft_burst_s"] + 1023 * heavy.tpot_ms / 1e3
    assert b["ttft_queue_s"] == pytest.approx(4096 / capacity - own_cycle, rel=0.1)


# ---- open loop: requests at a rate (issue 12) --------------------------------------------------

def test_open_loop_closed_forms_and_limits(llama70b):
    """Poisson arrivals on one worker: the prompt queue is M/D/1 (Pollaczek-Khinchine), the in-flight
    count obeys Little's law, a vanishing rate leaves the prefill alone, and a rate the worker cannot
    prefill or decode is a clear error."""
    from planner.cost.serving import ServingError, estimate_serving_at_rate

    system = planner.get_system("h100-sxm")
    plan = ServingPlan(tp=4, precision="fp8", backend="vllm")
    low = estimate_serving_at_rate(llama70b, system, plan, 1000, 200, 1e-3)
    alone = estimate_serving(llama70b, system, plan, 1000, 200, 1)
    assert low.ttft_ms == pytest.approx(alone.ttft_ms, rel=1e-3)
    assert low.tpot_ms == pytest.approx(alone.tpot_ms, rel=1e-3)
    last = None
    for rate in (0.5, 2.0, 5.0):
        e = estimate_serving_at_rate(llama70b, system, plan, 1000, 200, rate)
        b = e.breakdown
        rho, t_pf = b["prefill_share"], b["prefill_s"]
        assert rho == pytest.approx(rate * t_pf)
        assert b["ttft_queue_s"] == pytest.approx(rho * t_pf / (2 * (1 - rho)))
        n = b["in_flight_mean"]
        assert n == pytest.approx(rate * (e.ttft_ms + 199 * e.tpot_ms) / 1e3, rel=1e-6)
        assert e.requests_per_s == rate and e.tokens_per_s_per_gpu == pytest.approx(rate * 200 / 4)
        if last is not None:  # more traffic never makes a request faster
            assert e.ttft_ms >= last.ttft_ms and e.tpot_ms >= last.tpot_ms
        last = e
    with pytest.raises(ServingError, match="exceeds what one worker can prefill"):
        estimate_serving_at_rate(llama70b, system, plan, 1000, 200, 2.0 / alone.breakdown["prefill_s"])
    with pytest.raises(ServingError, match="cannot sustain"):
        estimate_serving_at_rate(llama70b, system, plan, 1000, 4000, 0.9 / alone.breakdown["prefill_s"])


def test_open_loop_agrees_with_the_simulator():
    """The analytic open loop and the iteration-level simulator (the same kernels, Poisson arrivals)
    agree on TPOT within 10 % from light to heavy load, and the TTFT waits within a factor 2."""
    from planner.cost.serving import estimate_serving_at_rate
    from planner.simulation import poisson_requests, simulate

    model, system = planner.get_model("llama-3.1-8b"), planner.get_system("h100")
    plan = ServingPlan(tp=1, backend="vllm")
    for rate in (5.0, 15.0):
        e = estimate_serving_at_rate(model, system, plan, 1000, 200, rate)
        sim = simulate(model, system, plan, poisson_requests(rate, 1500, 1000, 200, seed=1))
        assert sim.tpot_ms["mean"] == pytest.approx(e.tpot_ms, rel=0.10)
        sim_wait = sim.ttft_ms["mean"] - e.breakdown["prefill_s"] * 1e3
        model_wait = e.breakdown["ttft_wait_s"] * 1e3
        assert 0.5 <= model_wait / sim_wait <= 2.0, (rate, model_wait, sim_wait)


def test_engine_release_cycle_wait():
    """A release with its own fitted cycle wait uses it; no release, or one without enough rows, the engine's."""
    from planner.cost.serving import RELEASE_CYCLE, release_constants

    assert release_constants("trtllm", None) is BACKENDS["trtllm"]
    assert release_constants("trtllm", "9.9.9") is BACKENDS["trtllm"]
    assert release_constants("trtllm", "1.0.0rc3").ttft_cycle == RELEASE_CYCLE[("trtllm", "1.0.0rc3")] > 0
    model, system = planner.get_model("llama-3.1-8b"), planner.get_system("h100")
    plan = ServingPlan(tp=1, backend="trtllm")
    now = estimate_serving(model, system, plan, 1024, 512, 8)
    old = estimate_serving(model, system, plan, 1024, 512, 8, engine_version="1.0.0rc3")
    assert old.breakdown["ttft_cycle_s"] > 0 == now.breakdown["ttft_cycle_s"]
    assert old.ttft_ms > now.ttft_ms


def test_constants_fitted_on_h100_alone_carry_to_h200(reference_dir: Path):
    """scripts/fit_serving.py --fit-on=h100_sxm scores the H200 rows it never saw. Issue 12 asks for
    within 5 points of the both-system fit; today TTFT is ~55 % (both: ~36 %) and TPOT ~31 % (both: ~22 %).
    Before the per-release cycle wait the TTFT was 117 %: this guards that gain."""
    import re
    import subprocess
    import sys

    script = Path(__file__).parents[1] / "scripts" / "fit_serving.py"
    out = subprocess.run([sys.executable, str(script), str(reference_dir), "--fit-on=h100_sxm"], capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    held = next(line for line in out.stdout.splitlines() if line.startswith("calibration systems held out"))
    ttft, tpot = map(float, re.search(r"h200_sxm n=\d+ TTFT ([\d.]+)% TPOT ([\d.]+)%", held).groups())
    assert ttft < 60 and tpot < 35, held


def test_python_api_refuses_what_the_cli_refuses(llama70b):
    """fp4 without FP4 tensor cores and a request beyond the context are errors from the Python API too."""
    from planner.cost.serving import ServingError, estimate_serving_at_rate

    h100 = planner.get_system("h100")
    with pytest.raises(ServingError, match="has no FP4 tensor cores"):
        estimate_serving(llama70b, h100, ServingPlan(tp=4, precision="fp4"), 1000, 100, 1)
    with pytest.raises(ServingError, match="exceeds .*131072-token context"):
        estimate_serving(llama70b, h100, ServingPlan(tp=4, precision="fp8"), 131000, 100, 1)
    with pytest.raises(ServingError, match="exceeds .*131072-token context"):
        estimate_serving_at_rate(llama70b, h100, ServingPlan(tp=4, precision="fp8"), 131000, 100, 0.1)
    assert estimate_serving(llama70b, planner.get_system("b200"), ServingPlan(tp=4, precision="fp4"), 1000, 100, 1).fits


def test_estimate_serve_rate_and_engine_version_flags():
    base = ("estimate", "serve", "-m", "llama-3.1-8b", "-g", "h100", "--isl", "1000", "--osl", "200")
    r = run(*base, "--rate", "5", "--backend", "vllm", "--json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["requests_per_s"] == 5 and d["plan_document"] is None and "open-loop" in d["plan_document_reason"]
    assert d["breakdown"]["ttft_queue_s"] > 0 and d["concurrency"] == round(d["breakdown"]["in_flight_mean"])
    assert_one_line_error(run(*base, "--rate", "5", "-c", "4"), "give --concurrency (closed loop) or --rate")
    assert_one_line_error(run(*base, "--rate", "1000"), "exceeds what one worker can prefill")
    assert_one_line_error(run(*base), "missing --concurrency (or --rate)")
    assert_one_line_error(run(*base, "--rate", "5", "--engine-version", "1.0.0rc3"), "--engine-version changes")
    old = json.loads(run(*base, "-c", "8", "--engine-version", "1.0.0rc3", "--json").stdout)
    now = json.loads(run(*base, "-c", "8", "--json").stdout)
    assert old["ttft_ms"] > now["ttft_ms"] and old["plan_document"] is None and now["plan_document"] is not None


def test_disaggregated_first_wave_queues_at_the_prefill_pool():
    """A benchmark's clients arrive together: a share (ttft_burst) of the requests waits, on average, for
    (clients - 1) / 2 requests ahead at the prefill pool's time per request; the named terms add up."""
    model, system = planner.get_model("deepseek-v3"), planner.get_system("b200")
    pplan, dplan = ServingPlan(tp=1, dp=4, precision="fp8"), ServingPlan(tp=1, dp=8, precision="fp8")
    e = estimate_serving(model, system, dplan, 1024, 1024, 256, mode="disagg", prefill_plan=pplan, prefill_batch=4,
                         prefill_workers=2, decode_workers=1)
    b = e.breakdown
    assert b["prefill_service_s"] == pytest.approx(b["prefill_s"] / (2 * 4))
    assert b["ttft_burst_s"] == pytest.approx(BACKENDS["trtllm"].ttft_burst * 255 / 2 * b["prefill_service_s"])
    parts = ("ttft_prefill_s", "kv_transfer_s", "ttft_overhead_s", "ttft_busy_s", "ttft_queue_s", "ttft_burst_s")
    assert e.ttft_ms == pytest.approx(1e3 * sum(b[k] for k in parts))
    one = estimate_serving(model, system, dplan, 1024, 1024, 1, mode="disagg", prefill_plan=pplan, prefill_batch=4,
                           prefill_workers=2, decode_workers=1)
    assert one.breakdown["ttft_burst_s"] == 0.0 and one.breakdown["ttft_busy_s"] == 0.0


def test_chunked_prefill_rides_the_others_decode_iterations(llama70b):
    """Under chunked prefill a prompt takes ceil(isl / (budget - running decodes)) iterations, each also
    running the others' decode step; alone, none."""
    from planner.cost.serving import MAX_BATCHED_TOKENS, prefill_chunks

    assert prefill_chunks(1000, 1) == 1 and prefill_chunks(MAX_BATCHED_TOKENS + 1, 1) == 2
    assert prefill_chunks(8000, 512) == math.ceil(8000 / (MAX_BATCHED_TOKENS - 511))
    assert prefill_chunks(8000, 512, groups=8) == math.ceil(8000 / (MAX_BATCHED_TOKENS - 63))
    system, plan = planner.get_system("h100"), ServingPlan(tp=4, precision="fp8", backend="vllm")
    alone = estimate_serving(llama70b, system, plan, 16000, 100, 1)
    assert alone.breakdown["ttft_chunk_s"] == 0.0
    busy = estimate_serving(llama70b, system, plan, 16000, 100, 32)
    assert busy.breakdown["ttft_chunk_s"] == pytest.approx(prefill_chunks(16000, 32) * busy.breakdown["decode_step_s"])


def test_decode_step_terms_closed_form(llama70b):
    """The decode step is the engine's constants times the raw kernel, expert and collective times, plus a
    fixed and a per-running-request host cost (requests per attention-DP group)."""
    from planner.cost.serving import decode_step_s

    system = planner.get_system("h100")
    for backend in ("trtllm", "vllm", "sglang"):
        c = BACKENDS[backend]
        for batch in (1, 64):
            d = decode_step_s(llama70b, system, ServingPlan(tp=4, precision="fp8", backend=backend), batch, 2000)
            assert d["requests_per_group"] == batch
            assert d["step"] == pytest.approx(c.kernel_eff * d["kernels_raw"] + c.moe_eff * d["moe_raw"]
                                              + c.comm_eff * d["comm_raw"] + c.comm_x_eff * d["comm_x_raw"]
                                              + c.step_overhead_s + c.step_per_request_s * batch)
