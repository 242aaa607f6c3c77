"""The GPU-mix search (issue 13): Mélange's program against exhaustive search, its invariants, the capacities it
rests on, the workload buckets, and bad input through the API and the CLI."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import planner
from cli_in_process import cli
from planner.cost.capacity import aggregated_capacity, decode_capacity, prefill_capacity, quantile_wait
from planner.cost.serving import ServingPlan
from planner.search.fleet import MixError
from planner.search.fleet_ilp import MixInfeasible, Unit, exhaustive_mix, solve_mix
from planner.search.fleet_table import solve_table
from planner.search.fleet_workload import Bucket, WorkloadError, buckets_from_lengths

# Mélange's example (issue 13; tyler-griggs/melange-release README / melange/config): A10G $1.01/h and
# A100-80GB $3.67/h with their profiled max requests/s per (input, output) bucket, 30 requests/s.
MELANGE = {"gpu_info": {"A10G": {"cost": 1.01, "tputs": [[2, 1], [5, 2]]},
                        "A100-80GB": {"cost": 3.67, "tputs": [[20, 20], [40, 20]]}},
           "workload_distribution": [[0.2, 0.1], [0.5, 0.2]], "total_request_rate": 30}


def _flat(table: dict) -> tuple[list[float], list[float], list[list[float]]]:
    names = list(table["gpu_info"])
    dist = table["workload_distribution"]
    cells = [(i, j) for i in range(len(dist)) for j in range(len(dist[0]))]
    loads = [dist[i][j] * table["total_request_rate"] for i, j in cells]
    cap = [[table["gpu_info"][n]["tputs"][i][j] for i, j in cells] for n in names]
    return [table["gpu_info"][n]["cost"] for n in names], loads, cap


@pytest.mark.parametrize("slice_factor, cost, counts", [(1, 6.70, [3, 1]), (4, 5.69, [2, 1])])
def test_melange_example_is_the_true_optimum(slice_factor, cost, counts):
    # exhaustive: every slice of every bucket assigned to each type in turn (2 ** 16 assignments at slice factor 4)
    costs, loads, cap = _flat(MELANGE)
    best, best_counts = exhaustive_mix(costs, loads, cap, slice_factor)
    assert best == pytest.approx(cost) and best_counts == counts
    res = solve_table({**MELANGE, "slice_factor": slice_factor})
    assert res.solver["status"] == "optimal"
    assert res.cost_per_hour_usd == pytest.approx(best, abs=1e-9)
    assert list(res.gpus.values()) == counts
    # the best single type: A100 alone needs ceil(6/20 + 3/20 + 15/40 + 6/20) = 2 at $7.34
    assert res.best_single.gpu == "A100-80GB" and res.best_single.cost_per_hour_usd == pytest.approx(7.34)
    assert res.saving_vs_best_single == pytest.approx(1 - cost / 7.34)


def test_capacity_table_through_the_cli(tmp_path, capsys):
    path = tmp_path / "melange.json"
    path.write_text(json.dumps({**MELANGE, "slice_factor": 4}))
    code, text, _ = cli("mix", "--capacity-table", str(path), "--json")
    out = json.loads(text)
    assert code == 0
    assert out["gpus"] == {"A10G": 2, "A100-80GB": 1} and out["cost_per_hour_usd"] == pytest.approx(5.69)
    assert "solve_time_s" not in out["solver"]  # the same command gives the same bytes
    code, text, _ = cli("mix", "--capacity-table", str(path), "--slice-factor", "1", "--json")
    assert code == 0 and json.loads(text)["cost_per_hour_usd"] == pytest.approx(6.70)


_problem = st.tuples(
    st.lists(st.floats(0.5, 5.0), min_size=2, max_size=3),                      # costs per type
    st.lists(st.floats(0.0, 8.0), min_size=1, max_size=3),                      # bucket loads
    st.integers(1, 2),                                                          # slice factor
    st.data(),
)


@settings(max_examples=40, deadline=None, derandomize=True)
@given(_problem)
def test_the_program_matches_exhaustive_search_and_its_invariants(problem):
    costs, loads, S, data = problem
    T, B = len(costs), len(loads)
    cap = [[data.draw(st.sampled_from([0.0, 0.5, 1.0, 2.0, 3.5, 6.0])) for _ in range(B)] for _ in range(T)]
    for b in range(B):  # every bucket with load has a type serving it
        if loads[b] > 0 and all(cap[t][b] <= 0 for t in range(T)):
            cap[0][b] = 1.0
    units = [Unit(gpu=f"g{t}", gpus=1, cost_per_hour=costs[t], idle_w=50.0, active_w=300.0 + 100 * t)
             for t in range(T)]
    sol = solve_mix(units, loads, cap, S)
    best, _ = exhaustive_mix(costs, loads, cap, S)
    assert sol.status == "optimal" and sol.cost_per_hour == pytest.approx(best, abs=1e-6)
    # a mix never costs more than the best single type that can serve the whole load
    for t in range(T):
        if all(cap[t][b] > 0 or loads[b] <= 0 for b in range(B)):
            alone = solve_mix([units[t]], loads, [cap[t]], S)
            assert sol.cost_per_hour <= alone.cost_per_hour + 1e-9
    # raising an availability limit or the power budget never raises the cost
    counts = sol.counts
    tight = {f"g{t}": max(0, counts[t] - 1) for t in range(T)}
    try:
        low = solve_mix(units, loads, cap, S, max_gpus=tight)
        high = solve_mix(units, loads, cap, S, max_gpus={g: n + 2 for g, n in tight.items()})
        assert high.cost_per_hour <= low.cost_per_hour + 1e-9
    except MixInfeasible as exc:
        assert "cannot carry the load" in str(exc)
    budget = sol.power_w
    if budget > 0:
        at = solve_mix(units, loads, cap, S, power_budget_w=budget * 1.0001)
        more = solve_mix(units, loads, cap, S, power_budget_w=budget * 2)
        assert more.cost_per_hour <= at.cost_per_hour + 1e-9 and at.power_w <= budget * 1.0001 + 1e-6


def test_an_infeasible_power_budget_says_how_much_the_load_needs():
    costs, loads, cap = _flat(MELANGE)
    units = [Unit(gpu="A10G", gpus=1, cost_per_hour=1.01, idle_w=30, active_w=150),
             Unit(gpu="A100", gpus=1, cost_per_hour=3.67, idle_w=50, active_w=400)]
    with pytest.raises(MixInfeasible) as e:
        solve_mix(units, loads, cap, 1, power_budget_w=100.0)
    assert "power budget of 0.10 kW is below the" in str(e.value) and "kW the least power-hungry mix" in str(e.value)


# --------------------------------------------------------------------------------------------------
# capacities from the serving model
# --------------------------------------------------------------------------------------------------

def test_quantile_wait_closed_form():
    # exponential tail: P(W > t) = rho exp(-t rho / W): the 0.9 quantile at rho 0.5, mean 10 ms is 20 ln 5 ms
    assert quantile_wait(0.010, 0.5) == pytest.approx(0.020 * math.log(5))
    assert quantile_wait(0.010, 0.05) == 0.0  # P(wait) = rho < 0.1: most requests do not wait


def test_capacity_falls_with_a_tighter_slo_and_rises_with_a_faster_gpu():
    m = planner.get_model("llama-3.1-8b")
    p = ServingPlan(tp=1, precision="bf16")
    a100, h100 = planner.get_system("a100"), planner.get_system("h100")
    loose = aggregated_capacity(m, a100, p, 1000, 200, 2000, 1000, 50)
    tight = aggregated_capacity(m, a100, p, 1000, 200, 2000, 1000, 30)
    fast = aggregated_capacity(m, h100, p, 1000, 200, 2000, 1000, 50)
    assert 0 < tight.rate_rps < loose.rate_rps < fast.rate_rps
    assert loose.tpot_ms <= 50 and loose.ttft_ms <= 1000 and tight.tpot_ms <= 30
    # prefill capacity: never above the prefill-bound rate dp / T_pf; decode capacity: within the TPOT SLO
    pre = prefill_capacity(m, a100, p, 1000, 200, 2000, 500)
    t_pf = planner.cost.serving.prefill_s(m, a100, p, 1, 1000)
    assert 0 < pre.rate_rps < 1 / t_pf and pre.ttft_ms <= 500
    dec = decode_capacity(m, a100, p, 1000, 200, 2000, 50)
    assert dec.rate_rps > loose.rate_rps and dec.tpot_ms <= 50  # no prefill interference
    unreachable = aggregated_capacity(m, a100, p, 1000, 200, 2000, 1000, 1)
    assert unreachable.rate_rps == 0 and "best reachable TPOT" in unreachable.reason


def test_workload_buckets_add_up():
    lengths = [(100, 20), (100, 30), (3000, 500), (50, 5)]
    bk = buckets_from_lengths(lengths, 8.0)
    assert sum(b.rate for b in bk) == pytest.approx(8.0) and sum(b.requests for b in bk) == 4
    first = next(b for b in bk if b.isl_range[0] == 64)
    assert (first.isl, first.osl, first.longest, first.requests) == (100, 25, 130, 2)
    with pytest.raises(WorkloadError):
        buckets_from_lengths([], 1.0)


# --------------------------------------------------------------------------------------------------
# model-based mixes: invariants over SLOs and limits
# --------------------------------------------------------------------------------------------------

BUCKETS = [Bucket(isl=512, osl=128, rate=12.0, share=0.6, longest=700, isl_range=(256, 1023), osl_range=(64, 255)),
           Bucket(isl=4000, osl=200, rate=8.0, share=0.4, longest=4400, isl_range=(1024, 4095), osl_range=(64, 255))]
GPUS = ["l4", "a100", "h100"]


@pytest.fixture(scope="module")
def base():
    return planner.mix("llama-3.1-8b", GPUS, 1000, 50, buckets=BUCKETS)


def test_a_mix_never_costs_more_than_the_best_single_type(base):
    singles = [s.cost_per_hour_usd for s in base.singles if s.cost_per_hour_usd is not None]
    assert singles and base.cost_per_hour_usd <= min(singles) + 1e-9
    assert base.saving_vs_best_single == pytest.approx(1 - base.cost_per_hour_usd / min(singles))
    # every bucket fully served; every pool's load within its replicas' capacity
    for j, b in enumerate(base.buckets):
        served = sum(r for p in base.pools for bb, r in zip(p.buckets, p.rate_rps) if bb == j)
        assert served == pytest.approx(b.rate_rps)
    for p in base.pools:
        assert sum(r / c for r, c in zip(p.rate_rps, p.capacity_rps)) <= p.replicas + 1e-9
    assert base.cost_per_million_tokens_usd == pytest.approx(
        base.cost_per_hour_usd / (sum(b.rate * b.osl for b in BUCKETS) * 3600 / 1e6))


def test_tightening_an_slo_never_lowers_the_cost(base):
    tighter_tpot = planner.mix("llama-3.1-8b", GPUS, 1000, 35, buckets=BUCKETS)
    tighter_ttft = planner.mix("llama-3.1-8b", GPUS, 400, 50, buckets=BUCKETS)
    assert tighter_tpot.cost_per_hour_usd >= base.cost_per_hour_usd - 1e-9
    assert tighter_ttft.cost_per_hour_usd >= base.cost_per_hour_usd - 1e-9


def test_limits_bind_and_loosening_them_never_raises_the_cost(base):
    used = base.gpus
    g = max(used, key=lambda k: used[k])
    limited = planner.mix("llama-3.1-8b", GPUS, 1000, 50, buckets=BUCKETS, max_gpus={g: used[g] - 1})
    assert limited.gpus.get(g, 0) <= used[g] - 1 and limited.cost_per_hour_usd >= base.cost_per_hour_usd - 1e-9
    looser = planner.mix("llama-3.1-8b", GPUS, 1000, 50, buckets=BUCKETS, max_gpus={g: used[g] + 4})
    assert looser.cost_per_hour_usd <= limited.cost_per_hour_usd + 1e-9
    budget_kw = base.power_kw * 0.97
    try:
        capped = planner.mix("llama-3.1-8b", GPUS, 1000, 50, buckets=BUCKETS, power_budget_kw=budget_kw)
        assert capped.power_kw <= budget_kw + 1e-9 and capped.cost_per_hour_usd >= base.cost_per_hour_usd - 1e-9
    except MixError as exc:
        assert "power budget" in str(exc)
    roomy = planner.mix("llama-3.1-8b", GPUS, 1000, 50, buckets=BUCKETS, power_budget_kw=base.power_kw * 2)
    assert roomy.cost_per_hour_usd == pytest.approx(base.cost_per_hour_usd)


def test_prices_drive_the_choice():
    # make H100 nearly free: it takes everything
    cheap = planner.mix("llama-3.1-8b", GPUS, 1000, 50, buckets=BUCKETS, prices={"h100": 0.01})
    assert set(cheap.gpus) == {"h100-sxm"} and cheap.prices["h100-sxm"] == 0.01


# --------------------------------------------------------------------------------------------------
# bad input: one clear line each, exit 2
# --------------------------------------------------------------------------------------------------

def _cli_error(capsys, *args: str) -> str:
    code, _, err = cli("mix", *args)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), (code, err)
    return lines[0]


def test_bad_input_is_one_line(tmp_path, capsys):
    hist = tmp_path / "h.csv"
    hist.write_text("isl,osl,weight\n512,128,1\n")
    base = ["-m", "llama-3.1-8b", "--histogram", str(hist), "--rate", "5", "--ttft", "1s", "--tpot", "50ms"]
    assert "unknown" in _cli_error(capsys, *base, "--gpus", "h100,nosuchgpu").lower()
    empty = tmp_path / "empty.csv"
    empty.write_text("arrived_at,num_prefill_tokens,num_decode_tokens\n")
    assert "no requests" in _cli_error(capsys, "-m", "llama-3.1-8b", "--gpus", "h100", "--trace", str(empty),
                                       "--ttft", "1s", "--tpot", "50ms")
    prices = tmp_path / "p.json"
    prices.write_text('{"h100": -2}')
    assert "positive number" in _cli_error(capsys, *base, "--gpus", "h100", "--prices", str(prices))
    msg = _cli_error(capsys, *base, "--gpus", "h100,a100", "--power-budget", "0.05kW")
    assert "power budget of 0.05 kW is below the" in msg
    msg = _cli_error(capsys, "-m", "llama-3.1-8b", "--gpus", "l4,a10g", "--histogram", str(hist), "--rate", "5",
                     "--ttft", "1s", "--tpot", "5ms")
    assert "bucket" in msg and "best reachable" in msg and "TPOT" in msg
    assert "--max" in _cli_error(capsys, *base, "--gpus", "h100", "--max", "h100")
    bad_table = tmp_path / "t.json"
    bad_table.write_text(json.dumps({**MELANGE, "workload_distribution": [[0.2, 0.1], [0.5, 0.5]]}))
    assert "sums to 1.3" in _cli_error(capsys, "--capacity-table", str(bad_table))
    assert "give the workload" in _cli_error(capsys, "-m", "llama-3.1-8b", "--gpus", "h100", "--ttft", "1s",
                                             "--tpot", "50ms")


def test_the_cli_answers_with_a_checked_document(tmp_path, capsys):
    hist = tmp_path / "h.csv"
    hist.write_text("isl,osl,weight\n512,128,3\n4096,256,1\n")
    code, text, _ = cli("mix", "-m", "llama-3.1-8b", "--gpus", "a100,h100", "--histogram", str(hist), "--rate", "10",
                        "--ttft", "1s", "--tpot", "50ms", "--json")
    assert code == 0
    saved = tmp_path / "fleet.json"
    saved.write_text(text)
    code, text, _ = cli("check", str(saved))
    assert code == 0 and text.startswith(f"OK {saved}: fleet plan 2.0: llama-3.1-8b at 10 requests/s"), text
    code, text, _ = cli("export", str(saved), "--to", "vllm")
    assert code == 0 and "vllm serve meta-llama/Llama-3.1-8B" in text and "# pool 0:" in text


def test_prefill_and_decode_pools_export_as_role_workers_in_groups(tmp_path):
    """A disaggregated mix (pools on A100 and H200) renders every pool: one worker command per pool in the
    engine's disaggregated mode, sized for its buckets, the router table by bucket, and the group's router /
    frontend listing every server (a pool's replicas each)."""
    import re

    from planner.errors import PlannerError
    from planner.export.fleet import export_fleet, role_groups, role_worker
    from planner.plans import check

    hist = tmp_path / "h.csv"
    hist.write_text("isl,osl,weight\n512,128,3\n4096,256,1\n")
    res = planner.mix("llama-3.1-70b", ["h100", "a100", "h200"], 1000, 50, histogram=str(hist), rate=10,
                      disagg="on")
    doc = check(res.plan_document)
    roles = [p.role for p in doc.pools]
    assert "prefill" in roles and "decode" in roles and "aggregated" not in roles
    groups = role_groups(doc)
    assert sorted(i for g in groups for i in g) == list(range(len(doc.pools)))
    for g in groups:  # every bucket of a group is prefilled and decoded inside it, its slices complete
        for role in ("prefill", "decode"):
            slices: dict[int, int] = {}
            for i in g:
                if doc.pools[i].role == role:
                    for load in doc.pools[i].loads:
                        slices[load.bucket] = slices.get(load.bucket, 0) + load.slices
            assert set(slices.values()) == {doc.slice_factor}
    for i, pool in enumerate(doc.pools):
        w = role_worker(doc, i)
        assert w.role == pool.role and w.gpu == pool.system.name and w.workers == pool.replicas
        assert all(doc.buckets[l.bucket].longest <= w.max_model_len for l in pool.loads)
        assert w.concurrency >= 1
    servers = sum(p.replicas for p in doc.pools)
    trt = export_fleet(doc, "trtllm")
    assert len(re.findall(r"^trtllm-serve meta-llama/Llama-3.1-70B", trt, re.M)) == len(doc.pools)
    assert len(re.findall(r"^trtllm-serve disaggregated --config_file", trt, re.M)) == len(groups)
    assert len(re.findall(r"^  - <pool \d+ (?:prefill|decode) host \d+>:\d+$", trt, re.M)) == servers
    ports = re.findall(r"--port (\d+)", trt)
    assert len(ports) == len(set(ports)) == len(doc.pools)  # one port per pool
    sgl = export_fleet(doc, "sglang")
    assert sgl.count("--disaggregation-mode prefill") == roles.count("prefill")
    assert sgl.count("--disaggregation-mode decode") == roles.count("decode")
    assert len(re.findall(r"^python3 -m sglang_router.launch_router", sgl, re.M)) == len(groups)
    assert sgl.count("--prefill 'http://") == sum(p.replicas for p in doc.pools if p.role == "prefill")
    vll = export_fleet(doc, "vllm")
    assert vll.count('--kv-transfer-config \'{"kv_connector":"NixlConnector","kv_role":"kv_both"}\'') \
        == len(doc.pools)
    for b in doc.buckets:  # the router table names every bucket
        assert f"#   {b.label}: prefill on pool" in vll
    with pytest.raises(PlannerError, match="not rendered as manifests"):
        export_fleet(doc, "k8s")
    with pytest.raises(PlannerError, match="--image is for the k8s target"):
        export_fleet(doc, "vllm", image="x")


# --------------------------------------------------------------------------------------------------
# power cap, price tiers, bursts, and the simulator's check
# --------------------------------------------------------------------------------------------------

def test_a_power_cap_lowers_the_draw_and_never_raises_capacity():
    m, h100 = planner.get_model("llama-3.1-8b"), planner.get_system("h100")
    p = ServingPlan(tp=1, precision="bf16")
    free = aggregated_capacity(m, h100, p, 2000, 200, 2400, 1000, 50)
    capped = aggregated_capacity(m, h100, p, 2000, 200, 2400, 1000, 50, cap_fraction=0.5)
    assert capped.rate_rps <= free.rate_rps and capped.power_w <= 0.5 * 700 + 1e-9 < free.power_w
    # the clock a cap leaves (cube law): (0.5 - idle) / (busy - idle) of the dynamic power
    from planner.cost.power import BUSY, IDLE, capped_clock

    assert capped_clock(BUSY, 0.5) == pytest.approx(((0.5 - IDLE) / (BUSY - IDLE)) ** (1 / 3))


def test_price_tiers_from_a_file(tmp_path, capsys):
    prices = tmp_path / "prices.yaml"
    prices.write_text("h100: {on_demand: 3.99, spot: 0.5}\na100: {on_demand: 2.79, spot: 2.5}\n")
    hist = tmp_path / "h.csv"
    hist.write_text("isl,osl,weight\n512,128,1\n")
    args = ["mix", "-m", "llama-3.1-8b", "--gpus", "a100,h100", "--histogram", str(hist), "--rate", "20",
            "--ttft", "1s", "--tpot", "50ms", "--prices", str(prices), "--json"]
    code, spot, _ = cli(*args, "--price-tier", "spot")
    code2, demand, _ = cli(*args)
    assert code == code2 == 0
    spot, demand = json.loads(spot), json.loads(demand)
    assert spot["prices"] == {"a100-sxm-80gb": 2.5, "h100-sxm": 0.5} and set(spot["gpus"]) == {"h100-sxm"}
    assert demand["prices"]["h100-sxm"] == 3.99
    bad = tmp_path / "bad.yaml"
    bad.write_text("h100: {on_demand: 3.99}\n")
    assert "no spot price" in _cli_error(capsys, *args[1:-1], "--prices", str(bad), "--price-tier", "spot")


def test_burst_factor_is_one_for_poisson_and_large_for_bursts():
    import numpy as np

    from planner.search.fleet_workload import burst_factor

    rng = np.random.default_rng(0)
    poisson = np.cumsum(rng.exponential(0.1, 20000))
    f, _ = burst_factor(poisson, 10.0, 1.0)
    assert 1.0 <= f < 1.15
    # the same number of requests in bursts: 100 at once every 10 s (mean 10/s); a burst of 100 within 1 s needs
    # lam_w w / (w + s) = 100 / 2 = 50 requests/s at w = 1 s, s = 1 s: 5x the mean
    bursty = np.concatenate([k * 10 + np.linspace(0, 0.999, 100) for k in range(200)])
    f, w = burst_factor(bursty, 10.0, 1.0)
    assert f == pytest.approx(5.0, rel=0.1) and w == 1.0


def test_verify_replays_the_mix_and_repairs_a_short_pool(tmp_path):
    # a bursty trace: 40 requests at once every 4 s (mean 10/s): the capacity model's mix (sized for the bursts'
    # fluid bound) is checked by the simulator, and every pool of the answer meets 90 %
    from planner.fleet_verify import simulate_mix, verify_mix

    rows = ["arrived_at,num_prefill_tokens,num_decode_tokens"]
    for k in range(60):
        rows += [f"{4.0 * k + 0.01 * j:.3f},{600 + 40 * (j % 5)},{100 + 10 * (j % 3)}" for j in range(40)]
    trace = tmp_path / "bursty.csv"
    trace.write_text("\n".join(rows) + "\n")
    res = planner.mix("llama-3.1-8b", ["a100", "h100"], 1000, 50, trace=str(trace))
    assert res.burst_factor > 2
    final, report = verify_mix(res, trace=str(trace), requests=2400)
    assert report["ok"] and all(p["attainment"] >= 0.9 for p in report["pools"])
    assert final.cost_per_hour_usd >= res.cost_per_hour_usd
    assert report["rounds"][0]["cost_per_hour_usd"] == res.cost_per_hour_usd
    planner.check(final.plan_document)  # a repaired mix's document passes the gate (derated capacities)
    again = simulate_mix(final, trace=str(trace), requests=2400)
    assert again["attainment"] == pytest.approx(report["attainment"])  # deterministic


def test_simulate_a_saved_fleet(tmp_path):
    hist = tmp_path / "h.csv"
    hist.write_text("isl,osl,weight\n512,128,3\n3000,200,1\n")
    code, text, _ = cli("mix", "-m", "llama-3.1-8b", "--gpus", "l40s,h100", "--histogram", str(hist), "--rate", "8",
                        "--ttft", "1s", "--tpot", "50ms", "--json")
    assert code == 0
    saved = tmp_path / "fleet.json"
    saved.write_text(text)
    code, out, err = cli("simulate", "--plan", str(saved), "--requests", "800", "--json")
    assert code == 0, err
    rep = json.loads(out)
    assert rep["requests"] == 800 and rep["router"] == "bucket"
    assert sum(p["requests"] for p in rep["pools"] if p["role"] != "decode") == 800
    code, _, err = cli("simulate", "--plan", str(saved), "--tp", "2")
    assert code == 2 and "does nothing with --plan" in err
