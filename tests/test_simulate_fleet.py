"""The deployment simulator (planner.simulate_fleet): replicas of several GPU types behind a router,
aggregated or disaggregated, checked against the one-worker simulator, closed forms and routing counts."""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import pytest

import planner
from planner.cost.capacity import kv_transfer_s
from planner.cost.serving import BACKENDS, ServingPlan, decode_step_s, prefill_s
from planner.simulation import Request, SimulationError, poisson_requests, simulate, trace_requests
from planner.simulate_fleet import DeploymentPool, shortfalls, simulate_deployment
from refusal import refused as _refused

PLAN = ServingPlan(tp=1, backend="vllm")
L4_PLAN = ServingPlan(tp=1, precision="fp8", backend="vllm")


@pytest.fixture(scope="module")
def m():
    return planner.get_model("llama-3.1-8b")


@pytest.fixture(scope="module")
def gpus():
    return {g: planner.get_system(g) for g in ("h100", "a100", "l4")}


def mixed(rate: float, n: int, seed: int) -> list[Request]:
    """Poisson arrivals, prompts 200-4000 and outputs 20-600 tokens, uniform."""
    rng = np.random.default_rng(seed)
    return [Request(r.arrival, int(rng.integers(200, 4000)), int(rng.integers(20, 600)))
            for r in poisson_requests(rate, n, 1, 1, seed=seed)]


def heavy_tailed(rate: float, n: int, seed: int) -> list[Request]:
    """Poisson arrivals of short chats (prompts 200-500, outputs 50-100) with 5 % long documents (prompts
    30,000-60,000 tokens): bursts of work a replica is stuck with for about a second."""
    rng = np.random.default_rng(seed)
    out = []
    for r in poisson_requests(rate, n, 1, 1, seed=seed):
        if rng.random() < 0.05:
            out.append(Request(r.arrival, int(rng.integers(30000, 60000)), int(rng.integers(5, 20))))
        else:
            out.append(Request(r.arrival, int(rng.integers(200, 500)), int(rng.integers(50, 100))))
    return out


def refused(call, *expected: str) -> str:
    """:func:`refusal.refused` with a :class:`SimulationError`."""
    return _refused(call, *expected, error=SimulationError)


def test_one_replica_is_the_one_worker_simulator(m, gpus):
    """One aggregated pool of one replica gives simulate()'s numbers to the bit, behind every router."""
    reqs = mixed(6.0, 400, 3)
    one = simulate(m, gpus["h100"], PLAN, reqs, 200, 10)
    assert 0.05 < one.attainment < 0.999  # a loaded worker: the SLOs bite
    pool = DeploymentPool("h100", gpus["h100"], PLAN)
    for router in ("bucket", "round-robin", "least-outstanding"):
        d = simulate_deployment(m, [pool], reqs, router=router, ttft_slo_ms=200, tpot_slo_ms=10)
        assert (d.ttft_ms, d.tpot_ms, d.attainment, d.duration_s, d.throughput_tokens_per_s) == \
            (one.ttft_ms, one.tpot_ms, one.attainment, one.duration_s, one.throughput_tokens_per_s)
        (p,) = d.pools
        assert (p.requests, p.ttft_ms, p.attainment) == (400, one.ttft_ms, one.attainment)
        assert d.buckets[0].requests == 400 and d.buckets[0].attainment == one.attainment
    # the requests' order does not matter (sorted by arrival as simulate() does), nor do buckets of one pool
    d = simulate_deployment(m, [pool], reqs[::-1], [i % 3 for i in range(400)], ttft_slo_ms=200, tpot_slo_ms=10)
    assert d.ttft_ms == one.ttft_ms and [b.requests for b in d.buckets] == [134, 133, 133]


def test_replicas_behind_round_robin_at_n_times_the_rate(m, gpus):
    """Three replicas at three times the Poisson rate: each sees every third arrival (Erlang-3 gaps, smoother
    than Poisson), so attainment is never below one replica's at the rate, and close to it at light load."""
    pool = DeploymentPool("h100", gpus["h100"], PLAN, replicas=3)
    for rate, close in ((3.0, 0.03), (4.0, 0.12)):
        one = simulate(m, gpus["h100"], PLAN, mixed(rate, 1500, 1), 200, 10)
        three = simulate_deployment(m, [pool], mixed(3 * rate, 4500, 1), router="round-robin", ttft_slo_ms=200,
                                    tpot_slo_ms=10)
        assert one.attainment - 0.01 <= three.attainment <= one.attainment + close, (rate, one, three)
        assert [p.requests for p in three.pools] == [4500]
        assert three.tpot_ms["p50"] == pytest.approx(one.tpot_ms["p50"], rel=0.1)
        assert one.attainment >= 0.95 or rate > 3.0


@pytest.mark.parametrize("router", ["round-robin", "least-outstanding", "bucket"])
def test_each_replica_is_the_one_worker_simulator_on_its_requests(m, gpus, router):
    """Replicas share nothing but the router: whatever it decided, each one-replica pool's numbers are
    simulate()'s on the requests it got, to the bit (the event loop keeps every replica's time right)."""
    pools = [DeploymentPool(g, gpus[g], L4_PLAN if g == "l4" else PLAN) for g in ("h100", "a100", "l4")]
    reqs = mixed(5.0, 450, 6)
    buckets = [i % 2 for i in range(len(reqs))]
    keep: list = []
    d = simulate_deployment(m, pools, reqs, buckets, router=router, ttft_slo_ms=300, tpot_slo_ms=30, _keep=keep)
    fleet = keep[0]
    by_arrival = sorted(reqs, key=lambda r: r.arrival)
    for p, (pool, res) in enumerate(zip(pools, d.pools)):
        mine = [r for r, e in zip(by_arrival, fleet.entry_pool) if e == p]
        assert len(mine) == res.requests > 20
        alone = simulate(m, pool.system, pool.plan, mine, 300, 30)
        assert (res.ttft_ms, res.tpot_ms, res.attainment) == (alone.ttft_ms, alone.tpot_ms, alone.attainment)
    if router == "round-robin":
        assert [p.requests for p in d.pools] == [150, 150, 150]


def test_least_outstanding_beats_round_robin_on_heavy_tailed_traffic(m, gpus):
    """Long documents stall a replica for about a second; round robin keeps sending it a quarter of the
    traffic, least-outstanding routes around it: lower mean and p90 TTFT on every seed."""
    pool = DeploymentPool("h100", gpus["h100"], PLAN, replicas=4)
    for seed in range(3):
        reqs = heavy_tailed(20.0, 600, seed)
        rr = simulate_deployment(m, [pool], reqs, router="round-robin")
        lo = simulate_deployment(m, [pool], reqs, router="least-outstanding")
        assert lo.ttft_ms["mean"] < 0.8 * rr.ttft_ms["mean"], (seed, lo.ttft_ms, rr.ttft_ms)
        assert lo.ttft_ms["p90"] <= rr.ttft_ms["p90"]
        assert lo.tpot_ms["mean"] <= rr.tpot_ms["mean"]


def test_least_outstanding_favours_the_faster_pool(m, gpus):
    """An H100 empties its queue sooner than an L4: least-outstanding sends it more of the traffic, round
    robin splits it evenly and the L4's requests miss the TPOT SLO."""
    pools = [DeploymentPool("h100", gpus["h100"], PLAN), DeploymentPool("l4", gpus["l4"], L4_PLAN)]
    reqs = mixed(4.0, 600, 2)
    rr = simulate_deployment(m, pools, reqs, router="round-robin", tpot_slo_ms=40)
    lo = simulate_deployment(m, pools, reqs, router="least-outstanding", tpot_slo_ms=40)
    assert [p.requests for p in rr.pools] == [300, 300]
    h, l4 = lo.pools
    assert h.requests > 1.5 * l4.requests
    assert lo.attainment > rr.attainment
    # where round robin falls short: the L4 pool (and both buckets), named with its attainment
    lines = shortfalls(rr, 0.9)
    assert lines[0].startswith("pool l4 (1 x l4, aggregated): ") and "below 90%" in lines[0]
    assert not any(line.startswith("pool h100") for line in lines)
    assert "0.0% of 300 requests meet the TTFT and TPOT SLOs" in lines[0]
    assert shortfalls(lo, 0.01) == []  # its worst: the L4 pool at 1.9 %


def test_disaggregated_ttft_is_prefill_plus_transfer(m, gpus):
    """At a very low rate nothing queues: TTFT = the prompt's prefill (prefill_s x prefill_mix) plus the KV
    transfer (kv_transfer_s) exactly, and TPOT the decode step of one request on the decode GPU."""
    h100, a100 = gpus["h100"], gpus["a100"]
    isl, osl = 2048, 101  # a whole number of the simulator's 256-token prefill cells
    reqs = poisson_requests(0.02, 6, isl, osl, seed=1)
    pools = [DeploymentPool("pf", h100, PLAN, role="prefill"), DeploymentPool("dec", a100, PLAN, role="decode")]
    d = simulate_deployment(m, pools, reqs)
    prefill = prefill_s(m, h100, PLAN, 1, isl) * BACKENDS["vllm"].prefill_mix
    transfer = kv_transfer_s(m, h100, PLAN, a100, PLAN, isl)
    assert transfer > 0.005  # 256 MB of KV over a 50 GB/s NIC
    assert d.ttft_ms["p99"] == pytest.approx((prefill + transfer) * 1e3, rel=1e-9)
    assert d.ttft_ms["p50"] == pytest.approx((prefill + transfer) * 1e3, rel=1e-9)
    step = decode_step_s(m, a100, PLAN, 1, isl + osl // 2)["step"]
    assert d.tpot_ms["mean"] == pytest.approx(step * 1e3, rel=0.03)
    pf, dec = d.pools
    assert (pf.role, pf.requests, dec.role, dec.requests) == ("prefill", 6, "decode", 6)
    assert pf.iterations == 6 and dec.iterations == 6 * (osl - 1)
    # the same prompts aggregated on the H100: the first token without the transfer
    agg = simulate_deployment(m, [DeploymentPool("agg", h100, PLAN)], reqs)
    assert agg.ttft_ms["p50"] == pytest.approx(prefill * 1e3, rel=1e-9)


def test_disaggregated_under_load_queues_and_attains(m, gpus):
    """Under load the prefill queue adds to TTFT beyond prefill + transfer; the per-pool attainment counts
    only its own SLO (prefill: TTFT, decode: TPOT); a one-token request never reaches the decode pool."""
    h100, a100 = gpus["h100"], gpus["a100"]
    reqs = mixed(15.0, 600, 4) + [Request(5.0, 1000, 1)]
    pools = [DeploymentPool("pf", h100, PLAN, role="prefill"),
             DeploymentPool("dec", a100, PLAN, replicas=3, role="decode")]
    d = simulate_deployment(m, pools, reqs, ttft_slo_ms=150, tpot_slo_ms=25)
    pf, dec = d.pools
    assert pf.requests == 601 and dec.requests == 600
    assert pf.ttft_ms["p99"] > 1.5 * pf.ttft_ms["p50"]  # queueing
    assert d.attainment <= min(pf.attainment, dec.attainment)
    assert 0 < d.attainment < 1


def test_bucket_routing_follows_the_split(m, gpus):
    """Bucket 0 split 1:3 between an H100 and an A100 pool, bucket 1 to an L4 pool only, bucket 2 prefilled
    on the H100s and decoded 1:1 on two A100 pools: every request lands only on pools serving its bucket, in
    the given proportions (each count within 2 of share x requests)."""
    h100, a100, l4 = gpus["h100"], gpus["a100"], gpus["l4"]
    rng = np.random.default_rng(5)
    reqs = [Request(r.arrival, 500, 50) for r in poisson_requests(6.0, 900, 1, 1, seed=5)]
    buckets = [int(b) for b in rng.integers(0, 3, len(reqs))]
    n = [buckets.count(b) for b in range(3)]
    pools = [DeploymentPool("h100", h100, PLAN, 2, weights={0: 1.0}),
             DeploymentPool("a100", a100, PLAN, 1, weights={0: 3.0}),
             DeploymentPool("l4", l4, L4_PLAN, 2, buckets={1}),
             DeploymentPool("pf", h100, PLAN, 1, "prefill", buckets={2}),
             DeploymentPool("dec-a", a100, PLAN, 1, "decode", weights={2: 0.5}),
             DeploymentPool("dec-b", a100, PLAN, 2, "decode", weights={2: 0.5})]
    for seed in (0, 1):
        d = simulate_deployment(m, pools, reqs, buckets, seed=seed)
        got = {p.name: p.requests for p in d.pools}
        assert got["h100"] + got["a100"] == n[0] and got["l4"] == n[1] and got["pf"] == n[2]
        assert abs(got["h100"] - n[0] / 4) <= 2 and abs(got["a100"] - 3 * n[0] / 4) <= 2
        assert got["dec-a"] + got["dec-b"] == n[2] and abs(got["dec-a"] - n[2] / 2) <= 2
        assert [b.requests for b in d.buckets] == n
    # the callable form gives the same result; the same seed gives the same result
    again = simulate_deployment(m, pools, reqs, lambda i: buckets[i], seed=1)
    assert again == d == simulate_deployment(m, pools, reqs, np.array(buckets), seed=1)
    # round robin ignores the buckets: every entry replica (2 + 1 + 2 + 1) gets a sixth of the requests
    rr = simulate_deployment(m, pools, reqs, buckets, router="round-robin")
    got = {p.name: p.requests for p in rr.pools}
    assert got["h100"] == got["l4"] == 300 and got["a100"] == got["pf"] == 150
    assert got["dec-a"] + got["dec-b"] == 150


def test_bad_deployments_are_one_line_errors(m, gpus):
    h100 = gpus["h100"]
    reqs = poisson_requests(2.0, 20, 500, 50, seed=1)
    ok = DeploymentPool("a", h100, PLAN)
    refused(lambda: simulate_deployment(m, [], reqs), "at least one pool")
    refused(lambda: DeploymentPool("a", h100, PLAN, replicas=0), "pool a replicas must be at least 1")
    refused(lambda: DeploymentPool("a", h100, PLAN, replicas=True), "whole number")
    refused(lambda: DeploymentPool("a", h100, PLAN, role="both"), "role must be one of")
    refused(lambda: DeploymentPool("a", h100, PLAN, buckets=set()), "serves no bucket")
    refused(lambda: DeploymentPool("a", h100, PLAN, weights={0: -1.0}), "weight of bucket 0")
    refused(lambda: DeploymentPool("a", h100, PLAN, weights={0: math.nan}), "finite")
    refused(lambda: DeploymentPool("a", h100, PLAN, buckets={1}, weights={0: 1.0}), "does not serve")
    refused(lambda: DeploymentPool("", h100, PLAN), "pool name")
    refused(lambda: DeploymentPool("a", "h100", PLAN), "takes a System and a ServingPlan")
    refused(lambda: simulate_deployment(m, [ok], reqs, router="random"), "router must be one of")
    refused(lambda: simulate_deployment(m, [ok, ok], reqs), "unique")
    refused(lambda: simulate_deployment(m, [DeploymentPool("a", h100, PLAN, buckets={0})], reqs, [1] * 20),
            "bucket 1 (20 requests) has no aggregated or prefill pool")
    refused(lambda: simulate_deployment(m, [ok], reqs, [0] * 19), "19 buckets for 20 requests")
    refused(lambda: simulate_deployment(m, [ok], reqs, [-1] * 20), "bucket of request 0 must be at least 0")
    refused(lambda: simulate_deployment(m, [DeploymentPool("p", h100, PLAN, role="prefill")], reqs),
            "a disaggregated deployment needs prefill and decode pools")
    refused(lambda: simulate_deployment(m, [ok, DeploymentPool("p", h100, PLAN, role="prefill")], reqs),
            "prefill pools without a decode pool")
    pools = [ok, DeploymentPool("p", h100, PLAN, role="prefill", buckets={1}),
             DeploymentPool("d", h100, PLAN, role="decode", buckets={0})]
    refused(lambda: simulate_deployment(m, pools, reqs, [0, 1] * 10), "bucket 1 goes to prefill pool p but no decode")
    refused(lambda: simulate_deployment(m, [DeploymentPool("x", h100, ServingPlan(tp=3))], reqs),
            "pool x: tp 3 does not divide")
    # a worker that cannot hold the longest request it may get: named with the pool and the request's length
    big = planner.get_model("llama-3.1-70b")
    refused(lambda: simulate_deployment(big, [DeploymentPool("small", gpus["l4"], L4_PLAN)], reqs),
            "pool small: llama-3.1-70b does not fit on 1 x l4", "550 tokens")
    # the work bound, summed over the replicas, is named
    refused(lambda: simulate_deployment(m, [DeploymentPool("a", h100, PLAN, 2)], reqs, max_iterations=300),
            "passed 300 scheduler iterations (its bound, summed over the replicas)")
    refused(lambda: simulate_deployment(m, [ok], reqs, max_iterations=10), "at least 50 scheduler iterations")


def test_a_bucket_only_a_big_pool_can_hold_is_routed_there(m, gpus):
    """Bucket routing checks each pool against the longest request of its own buckets: 100k-token prompts on
    an H100 pool and short ones on L4s is a valid deployment; round robin would send long ones to the L4s."""
    h100, l4 = gpus["h100"], gpus["l4"]
    reqs = [Request(0.0, 500, 20), Request(0.5, 100_000, 20), Request(1.0, 400, 20)]
    pools = [DeploymentPool("long", h100, PLAN, buckets={1}), DeploymentPool("short", l4, L4_PLAN, buckets={0})]
    d = simulate_deployment(m, pools, reqs, [0, 1, 0])
    assert [p.requests for p in d.pools] == [1, 2]
    refused(lambda: simulate_deployment(m, pools, reqs, router="round-robin"), "pool short:", "100020 tokens")


def test_splitwise_conv_through_a_three_pool_deployment(m, gpus, reference_dir: Path):
    """The Azure conversation trace (19,366 requests, ~5.5 req/s) through L4s for short prompts and an H100 +
    A100 pair for long ones (bucket router), and disaggregated: practical wall time, every request served."""
    reqs = trace_requests(reference_dir / "traces" / "splitwise_conv.csv")
    assert len(reqs) == 19366
    buckets = [0 if r.isl <= 1024 else 1 for r in reqs]
    pools = [DeploymentPool("l4-short", gpus["l4"], L4_PLAN, 3, buckets={0}),
             DeploymentPool("h100-long", gpus["h100"], PLAN, 1, buckets={1}),
             DeploymentPool("a100-long", gpus["a100"], PLAN, 1, buckets={1})]
    t0 = time.perf_counter()
    d = simulate_deployment(m, pools, reqs, buckets, ttft_slo_ms=1000, tpot_slo_ms=50)
    wall = time.perf_counter() - t0
    print(f"\nsplitwise_conv, 3 pools / 5 replicas: {wall:.2f} s wall, {d.iterations:,} iterations, "
          f"attainment {d.attainment:.3f}")
    assert wall < 30, wall  # ~1 s on one free core
    assert sum(p.requests for p in d.pools) == 19366 and d.requests == 19366
    assert d.pools[1].requests + d.pools[2].requests == buckets.count(1)
    assert d.attainment > 0.95 and all(p.attainment > 0.95 for p in d.pools)
    assert d.duration_s == pytest.approx(3500, rel=0.01)
    disagg = [DeploymentPool("pf", gpus["h100"], PLAN, 1, "prefill"),
              DeploymentPool("dec", gpus["a100"], PLAN, 2, "decode")]
    t0 = time.perf_counter()
    d2 = simulate_deployment(m, disagg, reqs, router="least-outstanding", ttft_slo_ms=1000, tpot_slo_ms=50)
    print(f"splitwise_conv, disaggregated 1 + 2: {time.perf_counter() - t0:.2f} s wall, attainment "
          f"{d2.attainment:.3f}")
    assert d2.pools[0].requests == 19366 and d2.attainment > 0.95
