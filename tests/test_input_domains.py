"""A domain for every input (issue 10): numbers, request traces, routing traces and CSV rows.

Every bad value of the issue's lists is refused with ONE line: through the Python API a
:class:`planner.PlannerError` (never ZeroDivisionError, OverflowError, TypeError, a pydantic error or a
normal return), and through the CLI (in-process, a representative subset) exit 2 with one ``error:`` line
and no traceback. Work that used to run for hours (``--rate nan``, 1e9 decode tokens, 1e30 GPUs, 1e9
synthetic tokens) is refused before it starts, and the simulator stops at its iteration bound.
"""

from __future__ import annotations

import io
import json
import math
import signal
from pathlib import Path

import numpy as np
import pytest

import planner
from cli_in_process import cli
from refusal import refused
from planner.cost.serving import ServingPlan, estimate_serving
from planner.moe.placement import ExpertCluster, Weights, expert_slots
from planner.moe.solver import place_experts
from planner.moe.synthetic import synthetic_trace
from planner.moe.trace import RoutingStats, TraceError, load_routing
from planner.search.serving import search_serving
from planner.simulation import (Request, SimulationError, goodput, poisson_requests, simulate, trace_requests)
from planner.validate.serving_rows import estimate_row, read_rows

NAN, INF = float("nan"), float("inf")


@pytest.fixture(autouse=True)
def time_bound():
    """Each case must finish in 60 s: a hang (the issue's ``--rate nan``) fails instead of blocking the suite."""
    def hang(signum, frame):
        raise TimeoutError("the case ran for more than 60 s")

    old = signal.signal(signal.SIGALRM, hang)
    signal.alarm(60)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)


def cli_refused(*argv: str, expect: str = "") -> str:
    code, out, err = cli(*argv)
    assert code == 2, (argv, code, out[-500:], err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in out + err and "Warning" not in err
    assert expect in lines[0], (expect, lines[0])
    return lines[0]


@pytest.fixture(scope="module")
def qwen8b():
    return planner.get_model("qwen3-8b")


@pytest.fixture(scope="module")
def h100():
    return planner.get_system("h100")


# ---- numbers through the API -----------------------------------------------------------------------------

@pytest.mark.parametrize("rate", [NAN, INF, 0.0, -1.0, 1e30])
def test_poisson_rate_domain(rate):
    refused(lambda: poisson_requests(rate, 10, 100, 10), "rate")


@pytest.mark.parametrize("kw, expect", [
    ({"n": 0}, "number of requests must be at least 1"),
    ({"n": 10**9}, "number of requests must be at most 1,000,000"),
    ({"isl": 10**12}, "isl must be at most 16,777,216"),
    ({"osl": 2.5}, "osl must be a whole number"),
    ({"seed": -1}, "seed must be at least 0"),
])
def test_poisson_counts_domain(kw, expect):
    args = {"rate": 5.0, "n": 10, "isl": 100, "osl": 10, "seed": 0, **kw}
    refused(lambda: poisson_requests(**args), expect)


def test_simulate_arguments(qwen8b, h100):
    plan = ServingPlan(backend="vllm")
    reqs = poisson_requests(5, 20, 256, 32)
    refused(lambda: simulate(qwen8b, h100, plan, reqs, 0.0, 100), "TTFT SLO (ms) must be positive")
    refused(lambda: simulate(qwen8b, h100, plan, reqs, NAN, 100), "TTFT SLO (ms) must be a finite number")
    refused(lambda: simulate(qwen8b, h100, plan, reqs, 1000, 1e300), "TPOT SLO (ms) must be at most 8.64e+07")
    refused(lambda: simulate(qwen8b, h100, plan, [Request(NAN, 100, 50)]), "request 0 arrival must be a finite")
    refused(lambda: simulate(qwen8b, h100, plan, [Request(0.0, 100, 0)]), "request 0 osl must be at least 1")
    refused(lambda: simulate(qwen8b, h100, plan, []), "no requests")
    refused(lambda: simulate("qwen3-8b", h100, plan, reqs), "takes a ModelSpec")  # not an AttributeError
    refused(lambda: simulate(qwen8b, h100, ServingPlan(tp=3), reqs), "does not divide the 32 attention heads")
    refused(lambda: goodput(qwen8b, h100, plan, reqs, 1000, 100, percentile=0), "percentile must be positive")
    refused(lambda: goodput(qwen8b, h100, plan, reqs, 1000, 100, percentile=NAN), "percentile must be a finite")
    refused(lambda: goodput(qwen8b, h100, plan, reqs, 1000, 100, percentile=101), "percentile must be at most 100")
    # no SLO (math.inf, the default) stays allowed
    assert simulate(qwen8b, h100, plan, reqs).attainment == 1.0


def test_simulation_work_is_bounded(qwen8b, h100):
    plan = ServingPlan(backend="vllm")
    # outputs alone need more iterations than the bound: refused before the loop starts
    huge = [Request(0.0, 100, 2**24) for _ in range(4)]
    msg = refused(lambda: simulate(qwen8b, h100, plan, huge, max_iterations=10**6), "needs at least 67,108,864",
                  "bound of 1,000,000", error=SimulationError)
    assert "scheduler iterations" in msg
    # a run that passes the bound stops there, naming it (10 requests one after another: ~10 x 200 iterations)
    serial = [Request(100.0 * i, 64, 200) for i in range(10)]
    refused(lambda: simulate(qwen8b, h100, plan, serial, max_iterations=500), "passed 500 scheduler iterations",
            error=SimulationError)
    assert simulate(qwen8b, h100, plan, serial, max_iterations=5000).requests == 10


def test_serving_estimate_and_search_domains(qwen8b, h100):
    plan = ServingPlan()
    refused(lambda: estimate_serving(qwen8b, h100, plan, 1024, 256, 10**30), "concurrency must be at most")
    refused(lambda: estimate_serving(qwen8b, h100, plan, NAN, 256, 1), "isl must be a whole number")
    refused(lambda: estimate_serving(qwen8b, h100, ServingPlan(dp=10**30), 10, 10, 1), "GPUs of a worker")
    refused(lambda: estimate_serving(qwen8b, h100, plan, 10, 10, 1, mode="both"), "unknown mode")
    base = {"model": qwen8b, "system": h100, "gpus": 8, "isl": 1024, "osl": 256, "ttft_ms": 500.0, "tpot_ms": 50.0}
    for kw, expect in (({"rate": INF}, "rate (requests/s) must be a finite"), ({"rate": NAN}, "rate"),
                       ({"rate": -2.0}, "rate (requests/s) must be positive"), ({"ttft_ms": 0.0}, "TTFT SLO"),
                       ({"tpot_ms": INF}, "TPOT SLO (ms) must be a finite"), ({"gpus": 10**30}, "gpus must be at most"),
                       ({"isl": 1.5}, "isl must be a whole number"), ({"backend": "tgi"}, "unknown backend"),
                       ({"objective": "speed"}, "unknown objective"), ({"precisions": ("fp3",)}, "unknown precision")):
        refused(lambda: search_serving(**{**base, **kw}), expect)


@pytest.mark.parametrize("kw, expect", [
    ({"gpus": 10**30}, "gpus must be at most 1,048,576"),  # enumerating the divisors of 1e30 never ended
    ({"tokens": NAN}, "tokens must be a finite number"),
    ({"tokens": INF}, "tokens must be a finite number"),
    ({"tokens": 1e30}, "tokens must be at most"),
    ({"budget_usd": NAN, "tokens": 1e12}, "budget (USD) must be a finite number"),
    ({"deadline_s": INF, "tokens": 1e12}, "deadline (s) must be a finite number"),
    ({"price_per_gpu_hour": -1.0}, "price per GPU-hour must be positive"),
    ({"price_per_gpu_hour": NAN}, "price per GPU-hour must be a finite"),
    ({"max_memory_fraction": NAN}, "max memory fraction must be a finite"),
    ({"top": 0}, "top must be at least 1"),
    ({"micro_batches": (0,)}, "micro-batch size must be at least 1"),
    ({"dtypes": "bf16"}, "dtypes must be a non-empty tuple"),
])
def test_training_search_domain(kw, expect):
    args = {"gpus": 8, "seq_len": 4096, "global_batch": 64, **kw}
    refused(lambda: planner.search_train("llama-3.1-8b", "h100", args.pop("gpus"), args.pop("seq_len"),
                                         args.pop("global_batch"), **args), expect, error=planner.PlanError)


@pytest.mark.parametrize("kw, expect", [
    ({"tp": 0}, "tp must be at least 1, got 0"),  # was a pydantic ValidationError
    ({"tp": "8"}, "tp must be a whole number"),
    ({"gpus": 0}, "gpus must be at least 1"),
    ({"gpus": 10**40}, "gpus must be at most"),
    ({"global_batch": 0}, "invalid plan: global_batch"),
    ({"recompute": "most"}, "invalid plan: recompute"),
    ({"seq_len": 10**12}, "sequence length must be at most"),
])
def test_estimate_train_domain(kw, expect):
    args = {"gpus": 64, "tp": 8, "pp": 2, "micro_batch": 1, "global_batch": 512, "seq_len": 8192, **kw}
    refused(lambda: planner.estimate_train("llama-3.1-70b", "h100", **args), expect, error=planner.PlanError)


def test_estimate_training_refuses_huge_degrees():
    m, s = planner.get_model("llama-3.1-8b"), planner.get_system("h100")
    plan = planner.TrainingPlan(dp=10**30, global_batch=64, seq_len=4096)
    refused(lambda: planner.estimate_training(m, s, plan), "dp must be at most", error=planner.PlanError)


# ---- the expert placer ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def mixtral_stats():
    return synthetic_trace(planner.get_model("mixtral-8x7b"), tokens=256, seed=0).stats()


@pytest.mark.parametrize("tokens, expect", [(10**9, "tokens must be at most 16,777,216"), (10**30, "at most"),
                                            (1.5, "whole number"), (1, "at least 2")])
def test_synthetic_tokens_domain(tokens, expect):
    refused(lambda: synthetic_trace(planner.get_model("deepseek-v3"), tokens=tokens), expect, error=TraceError)


def test_synthetic_work_bound_and_parameters():
    ds = planner.get_model("deepseek-v3")
    refused(lambda: synthetic_trace(ds, tokens=100_000), "at most 72,315 tokens for deepseek-v3", error=TraceError)
    refused(lambda: synthetic_trace(ds, tokens=64, skew=NAN), "skew must be a finite number", error=TraceError)
    refused(lambda: synthetic_trace(ds, tokens=64, topic_boost=INF), "topic_boost", error=TraceError)
    refused(lambda: synthetic_trace(ds, tokens=64, seed=-1), "seed must be at least 0", error=TraceError)


def test_cluster_and_slots_domain():
    refused(lambda: ExpertCluster(0, 8, 8), "gpus must be at least 1")
    refused(lambda: ExpertCluster(8, 8, 8, c_node=NAN), "cross-node link cost must be a finite")
    refused(lambda: ExpertCluster(16, 8, 8), "16 GPUs exceed the 8 experts + 0 redundant slots")
    refused(lambda: ExpertCluster(8, 8, 8, redundant=10**30), "redundant slots must be at most")
    refused(lambda: expert_slots(planner.get_model("mixtral-8x7b"), 80e9, 0.0), "bytes per expert parameter must be "
            "positive")  # was a ZeroDivisionError


@pytest.mark.parametrize("kw, expect", [
    ({"time_limit": NAN}, "time limit (s) must be a finite number"),
    ({"time_limit": INF}, "time limit (s) must be a finite number"),
    ({"time_limit": 0.0}, "time limit (s) must be positive"),
    ({"max_imbalance": INF}, "max imbalance (max / mean GPU load) must be a finite"),
    ({"max_imbalance": 1e30}, "must be at most 1,000"),
    ({"max_imbalance": 0.5}, "must be at least 1"),
    ({"weights": Weights(load=NAN)}, "weight load must be a finite"),
    ({"method": "exhaustive"}, "unknown method"),
])
def test_place_experts_domain(mixtral_stats, kw, expect):
    cluster = ExpertCluster(4, 4, 8)
    refused(lambda: place_experts(mixtral_stats, cluster, **kw), expect)


def test_place_experts_refuses_bad_statistics(mixtral_stats):
    load = mixtral_stats.load.copy()
    load[0, 0] = NAN
    bad = RoutingStats(load, mixtral_stats.transitions, 2, 256)
    refused(lambda: place_experts(bad, ExpertCluster(4, 4, 8), time_limit=1), "finite and non-negative")


# ---- routing trace files --------------------------------------------------------------------------------

def _stats_file(tmp_path: Path, name: str = "s.json", **fields) -> Path:
    obj = {"format": "planner.routing.v1", "top_k": 2, "tokens": 10, "load": [[5, 5, 5, 5], [10, 10, 0, 0]],
           "transitions": [[[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 1, 1], [0, 0, 1, 1]]]}
    obj.update(fields)
    obj = {k: v for k, v in obj.items() if v is not None}
    p = tmp_path / name
    p.write_text(json.dumps(obj))
    return p


@pytest.mark.parametrize("fields, expect", [
    ({"tokens": -5}, "'tokens' must be from 1"),
    ({"top_k": 0}, "'top_k' must be from 1 to 4"),
    ({"top_k": 2.5}, "'top_k' must be a whole number"),
    ({"top_k": [2, 2]}, "'top_k' must be a single whole number"),
    ({"load": [[5, -5, 5, 5], [10, 10, 0, 0]]}, "'load' holds negative counts"),
    ({"load": [[5, 5, 5, 5], [10, 10, 0]]}, "'load' must be a numeric array"),
    ({"load": [[5, 5, 5, 5]]}, "'transitions' must be [0, 4, 4]"),
    ({"load": [[0, 0, 0, 0], [0, 0, 0, 0]]}, "every load is zero"),
    ({"transitions": [[[1, 1], [1, 1]]]}, "'transitions' must be [1, 4, 4]"),
    ({"transitions": None}, "needs 'transitions'"),
    ({"format": "other"}, "is not 'planner.routing.v1'"),
    ({"num_experts": 0}, "'num_experts' must be from 1"),
    ({"num_experts": [[1]]}, "'num_experts' must be a single whole number"),
    ({"num_experts": 8}, "declares 8 experts, but 'load' has 4 per layer"),
])
def test_aggregated_routing_trace_domain(tmp_path, fields, expect):
    refused(lambda: load_routing(_stats_file(tmp_path, **fields)), expect, error=TraceError)


def test_routing_trace_nan_and_inf(tmp_path):
    # JSON has no NaN: the loader refuses the literal; an .npz can hold them
    p = tmp_path / "nan.json"
    p.write_text('{"format": "planner.routing.v1", "top_k": 1, "load": [[NaN, 1]], "transitions": []}')
    refused(lambda: load_routing(p), "NaN is not a JSON number", error=TraceError)
    np.savez(tmp_path / "inf.npz", load=np.array([[1.0, INF]]), transitions=np.zeros((0, 2, 2)), top_k=1)
    refused(lambda: load_routing(tmp_path / "inf.npz"), "'load' holds NaN or infinite values", error=TraceError)


@pytest.mark.parametrize("declared, expect", [
    (0, "'num_experts' must be from 1"),
    (-8, "'num_experts' must be from 1"),
    (np.array([8, 8]), "'num_experts' must be a single whole number, got an array of shape (2,)"),
])
def test_per_token_trace_num_experts(tmp_path, declared, expect):
    p = tmp_path / "t.npz"
    np.savez(p, experts=np.zeros((4, 2, 2), dtype=np.int16), num_experts=declared)
    refused(lambda: load_routing(p), expect, error=TraceError)


def test_per_token_trace_ids_and_arrays(tmp_path):
    p = tmp_path / "ids.npz"
    np.savez(p, experts=np.array([[[0, 9]]], dtype=np.int16))
    refused(lambda: load_routing(p, num_experts=8), "expert id 9", "exceeds the model's 8 experts", error=TraceError)
    np.savez(p, experts=np.array([[[0, -1]]], dtype=np.int16))
    refused(lambda: load_routing(p), "negative expert id -1", error=TraceError)
    np.savez(p, experts=np.array([[[0.5, 1.0]]]))
    refused(lambda: load_routing(p), "must hold integer expert ids", error=TraceError)
    np.savez(p, experts=np.array([{"a": 1}], dtype=object))  # never unpickled
    refused(lambda: load_routing(p), "holds Python objects", error=TraceError)
    j = tmp_path / "ragged.json"
    j.write_text('{"experts": [[[0, 1]], [[0]]], "num_experts": 4}')
    refused(lambda: load_routing(j), "ragged", error=TraceError)


def test_npz_array_size_is_checked_before_decompressing(tmp_path):
    """A header claiming a 8 TB array is refused from the header alone (a zip bomb never expands)."""
    import zipfile

    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "<i2", "fortran_order": False, "shape": (2**40, 58, 8)})
    p = tmp_path / "bomb.npz"
    with zipfile.ZipFile(p, "w") as z:
        z.writestr("experts.npy", buf.getvalue())
    refused(lambda: load_routing(p), "'experts' of shape (1099511627776, 58, 8)", "at most", error=TraceError)
    (tmp_path / "bin.json").write_bytes(b"\xff\xfe\x00binary")
    refused(lambda: load_routing(tmp_path / "bin.json"), "bin.json", "not UTF-8", error=TraceError)


# ---- request traces -------------------------------------------------------------------------------------

HEADER = "arrived_at,num_prefill_tokens,num_decode_tokens\n"


@pytest.mark.parametrize("row, expect", [
    ("nan,100,50", "line 3: arrived_at must be a finite number, got 'nan'"),
    ("0,inf,50", "line 3: num_prefill_tokens must be a finite number"),
    ("0,100", "line 3: 2 fields, the header has 3"),
    ("0,100,50,7", "line 3: 4 fields"),
    ("1,-5,50", "num_prefill_tokens must be a whole number from 1 to 16,777,216, got -5"),
    ("1,0,50", "num_prefill_tokens must be a whole number from 1"),
    ("1,100,0", "num_decode_tokens must be a whole number from 1"),
    ("1,100,1e9", "num_decode_tokens must be a whole number from 1 to 16,777,216, got 1e9"),
    ("1,12.5,50", "num_prefill_tokens must be a whole number"),
    ("1,abc,50", "num_prefill_tokens 'abc' is not a number"),
    ("1," + "7" * 5000 + ",50", "a field longer than 4,096 characters"),
    ("1," + "7" * 140_000 + ",50", "not readable as CSV"),
    ("-1,100,50", "line 3: arrived_at must not be negative, got -1"),
])
def test_request_trace_rows(tmp_path, row, expect):
    p = tmp_path / "trace.csv"
    p.write_text(HEADER + "0,100,50\n" + row + "\n")
    refused(lambda: trace_requests(p), expect, error=SimulationError)


def test_request_trace_order_columns_and_size(tmp_path, monkeypatch):
    p = tmp_path / "trace.csv"
    p.write_text(HEADER + "0,100,50\n5,100,50\n3,100,50\n")
    refused(lambda: trace_requests(p), "line 4: arrived_at 3 is earlier than the row before (5)", "sort the trace",
            error=SimulationError)
    p.write_text("time,prompt,output\n0,1,1\n")
    refused(lambda: trace_requests(p), "missing arrived_at, num_prefill_tokens, num_decode_tokens",
            error=SimulationError)
    p.write_text(HEADER)
    refused(lambda: trace_requests(p), "no requests", error=SimulationError)
    import planner.simulation as sim

    monkeypatch.setattr(sim, "MAX_TRACE_REQUESTS", 3)
    p.write_text(HEADER + "".join(f"{i},10,10\n" for i in range(5)))
    refused(lambda: trace_requests(p), "more than 3 requests", error=SimulationError)
    assert len(trace_requests(p, limit=3)) == 3  # the first rows of a long trace are fine
    p.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    refused(lambda: trace_requests(p), "trace.csv", "not UTF-8")
    refused(lambda: trace_requests("/dev/zero"), "not a regular file")


def test_messages_stay_one_line_for_hostile_paths():
    refused(lambda: trace_requests("x\ny.csv"), "x\\ny.csv: no such file")
    refused(lambda: load_routing("x\ny"), "x\\ny: unknown routing file type")


def test_request_trace_shifted_to_zero(tmp_path):
    p = tmp_path / "trace.csv"
    p.write_text(HEADER + "10,100,50\n10.5,200,20\n\n12,1,1\n")
    reqs = trace_requests(p)
    assert [(r.arrival, r.isl, r.osl) for r in reqs] == [(0.0, 100, 50), (0.5, 200, 20), (2.0, 1, 1)]


# ---- --from-csv rows ------------------------------------------------------------------------------------

def test_csv_rows_give_reasons_and_files_are_bounded(tmp_path, monkeypatch):
    p = tmp_path / "rows.csv"
    p.write_text("id,isl,osl\nr1,10\nr2,10,10,10\nr3,abc,10\n")
    rows = read_rows(p)
    assert [estimate_row(r).reason for r in rows[:2]] == ["the row has more or fewer fields than the header"] * 2
    assert estimate_row(rows[2]).ttft_ms is None  # unknown model first; never a crash
    p.write_text("id,isl\nr1," + "9" * 5000 + "\n")
    refused(lambda: read_rows(p), "line 2: a field longer than 4,096 characters")
    p.write_text("id,isl\n" + "".join(f"r{i},1\n" for i in range(5)))
    import planner.validate.serving_rows as rows_mod

    monkeypatch.setattr(rows_mod, "MAX_CSV_ROWS", 3)
    refused(lambda: read_rows(p), "more than 3 rows")


# ---- the CLI: one line, exit 2 ------------------------------------------------------------------------------

SIM = ("simulate", "-m", "qwen3-8b", "-g", "h100")
TRAIN = ("train", "-m", "llama-3.1-8b", "-g", "h100", "--seq", "4096", "--gbs", "64")
EXPERTS = ("experts", "-m", "qwen3-30b-a3b", "--synthetic", "--gpus", "8", "--tokens", "64")
SERVE = ("serve", "-m", "qwen3-8b", "-g", "h100", "-n", "8", "--isl", "1024", "--osl", "256", "--ttft", "500ms",
         "--tpot", "50ms")


@pytest.mark.parametrize("argv, expect", [
    (SIM + ("--rate", "nan", "--requests", "200"), "--rate (requests/s) must be a finite number, got nan"),
    (SIM + ("--rate", "inf"), "--rate (requests/s) must be a finite number, got inf"),
    (SIM + ("--rate", "5", "--isl", "1000000000000"), "--isl"),
    (SIM + ("--rate", "5", "--requests", "100000000"), "--requests"),
    (SIM + ("--rate", "5", "--ttft", "0s"), "--ttft must be a positive time"),
    (SIM + ("--rate", "5", "--tpot", "1e400s"), "--tpot"),
    (SIM + ("--rate", "5", "--percentile", "nan"), "--percentile must be a finite number"),
    (SIM + ("--rate", "5", "--seed", "-1"), "--seed"),
    (TRAIN + ("-n", "1" + "0" * 30), "--gpus"),
    (TRAIN + ("-n", "8", "--tokens", "nan"), "--tokens must be a positive finite number, got 'nan'"),
    (TRAIN + ("-n", "8", "--tokens", "inf"), "--tokens must be a positive finite number"),
    (TRAIN + ("-n", "8", "--tokens", "1e400"), "--tokens must be a positive finite number, got '1e400'"),
    (TRAIN + ("-n", "8", "--tokens", "1e30"), "--tokens must be at most 1e+16"),
    (TRAIN + ("-n", "8", "--tokens", "1T", "--budget", "nan"), "--budget must be a positive finite number"),
    (TRAIN + ("-n", "8", "--tokens", "1T", "--deadline", "1e400d"), "--deadline"),
    (TRAIN + ("-n", "8", "--price", "-1"), "--price (dollars per GPU-hour) must be positive"),
    (TRAIN + ("-n", "8", "--price", "nan"), "--price (dollars per GPU-hour) must be a finite number"),
    (TRAIN + ("-n", "8", "--price", "inf"), "--price (dollars per GPU-hour) must be a finite number"),
    (TRAIN + ("-n", "8", "--max-memory", "1.5"), "--max-memory (a fraction of GPU memory) must be at most 1"),
    (TRAIN + ("-n", "8", "--top", "0"), "--top"),
    (("train", "-m", "llama-3.1-8b", "-g", "h100", "--seq", "4096", "-n", "8", "--batch-tokens", "inf"),
     "--batch-tokens must be a positive whole number of tokens, got 'inf'"),
    (EXPERTS + ("--time-limit", "nan"), "--time-limit must be a finite number"),
    (EXPERTS + ("--time-limit", "inf"), "--time-limit must be a finite number"),
    (EXPERTS + ("--max-imbalance", "inf"), "--max-imbalance (max / mean GPU load) must be a finite number"),
    (EXPERTS + ("--max-imbalance", "1e30"), "--max-imbalance (max / mean GPU load) must be at most 1,000"),
    (EXPERTS + ("--node-cost", "nan"), "--node-cost (relative to a same-node GPU hop = 1) must be a finite number"),
    (EXPERTS + ("--weight-bytes", "0"), "--weight-bytes must be positive"),
    (("experts", "-m", "qwen3-30b-a3b", "--synthetic", "--gpus", "8", "--tokens", "1e30"), "--tokens"),
    (("experts", "-m", "qwen3-30b-a3b", "--synthetic", "--gpus", "8", "--tokens", "1" + "0" * 30), "--tokens"),
    (SERVE + ("--rate", "inf"), "--rate (requests/s) must be a finite number, got inf"),
    (SERVE + ("--ttft", "1e400s"), "--ttft"),
    (("estimate", "serve", "-m", "qwen3-8b", "-g", "h100", "--isl", "100", "--osl", "100", "-c", "1" + "0" * 20),
     "--concurrency"),
    (("estimate", "train", "-m", "llama-3.1-8b", "-g", "h100", "-n", "8", "--gbs", "64", "--seq", "4096",
      "--tokens", "nan"), "--tokens must be a positive finite number, got 'nan'"),
])
def test_cli_refuses_bad_numbers(argv, expect):
    cli_refused(*argv, expect=expect)


def test_cli_refuses_bad_traces(tmp_path):
    trace = tmp_path / "t.csv"
    for row, expect in (("nan,100,50", "arrived_at must be a finite number"), ("0,inf,50", "must be a finite"),
                        ("0,100", "2 fields"), ("0,100,1000000000", "num_decode_tokens must be a whole number")):
        trace.write_text(HEADER + "0,100,50\n" + row + "\n")
        cli_refused(*SIM, "--trace", str(trace), expect=expect)
        cli_refused(*SERVE[:-4], "--ttft", "1s", "--tpot", "100ms", "--trace", str(trace), expect=expect)
    routing = _stats_file(tmp_path, tokens=-5)
    cli_refused("experts", "-m", "qwen3-30b-a3b", "--trace", str(routing), "--gpus", "4", expect="'tokens' must be")


def test_cli_csv_rows_get_reasons(tmp_path):
    src = tmp_path / "rows.csv"
    src.write_text("id,model_path,system,backend,precision,mode,isl,osl,batch_size,tp_size\n"
                   "ok,Qwen/Qwen3-8B,h100_sxm,vllm,bf16,agg,1024,128,8,1\n"
                   "short,Qwen/Qwen3-8B,h100_sxm\n"
                   "nonnum,Qwen/Qwen3-8B,h100_sxm,vllm,bf16,agg,1024,128,8,two\n"
                   '"a,b ""quoted""",Qwen/Qwen3-8B,h100_sxm,vllm,bf16,agg,inf,128,8,1\n')
    code, out, err = cli("estimate", "serve", "--from-csv", str(src))
    assert code == 0, err
    import csv

    got = {r["id"]: r for r in csv.DictReader(io.StringIO(out))}
    assert float(got["ok"]["ttft_ms"]) > 0 and got["ok"]["reason"] == ""
    assert got["short"]["reason"] == "the row has more or fewer fields than the header"
    assert got["nonnum"]["reason"] == "tp_size 'two' is not a number"
    assert "isl must be a whole number" in got['a,b "quoted"']["reason"]  # ids and reasons stay CSV
    src.write_text("id,isl\nr1," + "9" * 200_000 + "\n")
    cli_refused("estimate", "serve", "--from-csv", str(src), expect="rows.csv line 2: not readable as CSV")
    src.write_text("")
    cli_refused("estimate", "serve", "--from-csv", str(src), expect="rows.csv: no rows")


def test_cli_no_warning_text_on_a_degenerate_input(tmp_path):
    """A trace whose requests all arrive at once: no RuntimeWarning (division by a zero span) reaches stderr."""
    trace = tmp_path / "t.csv"
    trace.write_text(HEADER + "0,100,50\n0,100,50\n")
    code, out, err = cli(*SIM, "--trace", str(trace), "--json")
    assert code == 0 and err == "", err
    assert math.isfinite(json.loads(out)["simulation"]["ttft_ms"]["p50"])
