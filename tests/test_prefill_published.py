"""Concurrency-1 prefill and TTFT against published single-request first-token latencies (issue 12).

Every published point below is a *batch-1, single-request* measurement on a GPU outside the
serving calibration set (the H100 / H200 rows of ``shared/reference/serving``), cited at its row.
Two kinds:

* ``forward``: TensorRT-LLM's ``gptSessionBenchmark --batch_size 1 --input_output_len ISL,1``, the
  C++ session in-process (no server, no HTTP, static batching): the context phase of one request
  plus sampling its one token. Compared with the planner's pure prefill kernel time
  ``breakdown["prefill_s"]``.
* ``engine``: LMDeploy's static-inference benchmark (``profile_generation``), first token of one
  request streamed from the in-process engine API: the prefill plus the engine's per-request
  overhead, still no HTTP. Its own ``prompt_tokens = 1`` rows put that overhead plus a one-token
  step at 11 ms (7B) and 31 ms (70B, tp 4), so it is compared with TTFT only.

The TTFT comparisons (``ttft_ms`` at concurrency 1 against the same published first-token
latencies) hold within 20 % at every point but four, marked ``xfail(strict=True)`` with their
reason (``TTFT_XFAIL``): at concurrency 1 the planner's TTFT is the prefill alone (issue 12: every
wait and the engine's busy latency come from other requests, and no fixed per-request cost is
fitted), so a 128-token prompt on a 7B model misses the few ms of per-request work a benchmark
times around its forward pass.

The last test holds the linear-layer GEMM terms of the serving model (prefill: the operators of
:func:`planner.cost.ops.layer_ops`; decode: :func:`planner.cost.serving.decode_step_s`) against the
measured per-operator CUDA times of ``shared/reference/operators`` (vidur profiling, fp16) on A100
and A40. Those times are what ``planner.cost.compute``'s constants were fitted on, so this checks the
shapes the serving model builds (GQA heads, gated MLP, tensor-parallel splits), not the fit.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

import planner
from planner.cost.compute import gemm_time_s
from planner.cost.ops import LayerShape, layer_ops
from planner.cost.serving import ServingEstimate, ServingPlan, decode_step_s, estimate_serving
from planner.specs.hardware import Accelerator

TOLERANCE = 0.20  # issue 12: within 20 % of published single-request prefill latencies
CALIBRATION_GPUS = {"h100-sxm", "h200-sxm"}  # shared/reference/README.md: serving calibration split

# ---- sources ---------------------------------------------------------------------------------

SOURCES = {
    # NVIDIA/TensorRT-LLM, docs/source/performance.md as released with v0.9.0, section "Low Latency"
    # ("All data was generated using version 0.9.0"; "reference data at batch size 1 for first token
    # latency"), tables "A100 GPUs (FP16)" and "L40S GPUs (FP8)". Method (same file, "Reproducing
    # First Token Latency"): gptSessionBenchmark --warm_up 1 --num_runs 5 --input_output_len ISL,1,
    # engines built with context FMHA and the GPT attention plugin (fp8 KV cache on FP8 GPUs).
    # https://github.com/NVIDIA/TensorRT-LLM/blob/v0.9.0/docs/source/performance.md
    "trtllm-0.9": "TensorRT-LLM v0.9.0 docs/source/performance.md, Low Latency tables",
    # NVIDIA/TensorRT-LLM, docs/source/performance.md at commit 138f96d45f90 (docs of v0.6.1), section
    # "Low Latency" ("The following data is from TensorRT-LLM v0.5"), same method as above.
    "trtllm-0.5": "TensorRT-LLM docs/source/performance.md @138f96d45f90, Low Latency (v0.5 data)",
    # InternLM/lmdeploy, docs/en/benchmark/a100_fp16.md at commit 3e391df46733 ("tested on (x8)
    # A100-80G CUDA 11.8", lmdeploy v0.1.0a1), "Static Inference Benchmark", batch 1 rows, FTL(ave).
    "lmdeploy-0.1": "LMDeploy v0.1.0a1 docs/en/benchmark/a100_fp16.md, static inference, batch 1",
}


@dataclass(frozen=True)
class Point:
    source: str
    model: str  # built-in model name
    gpu: str  # built-in system name
    tp: int
    precision: str
    isl: int
    ms: float  # published first-token latency of one request

    @property
    def kind(self) -> str:
        """``forward`` (TensorRT-LLM session benchmark) or ``engine`` (LMDeploy): module docstring."""
        return "engine" if self.source.startswith("lmdeploy") else "forward"

    @property
    def id(self) -> str:
        return f"{self.source}-{self.gpu}-{self.model}-tp{self.tp}-{self.precision}-isl{self.isl}"


# "LLaMA 7B" / "LLaMA 70B" in the TensorRT-LLM tables are Llama-2-7b / Llama-2-70b (the same file's
# build commands: Llama2-7b n_layer 32 inter_size 11008; Llama2-70b n_kv_head 8 inter_size 28672).
# "A100" there is read as the A100 SXM4 80 GB (its throughput rows run LLaMA 70B at batch 1280 on tp 4).
POINTS = [
    # trtllm-0.9, A100 GPUs (FP16) table
    Point("trtllm-0.9", "llama-2-7b", "a100-sxm-80gb", 1, "fp16", 128, 16.2),
    Point("trtllm-0.9", "llama-2-7b", "a100-sxm-80gb", 1, "fp16", 2048, 132.4),
    Point("trtllm-0.9", "mistral-7b-v0.1", "a100-sxm-80gb", 1, "fp16", 128, 16.3),
    Point("trtllm-0.9", "mistral-7b-v0.1", "a100-sxm-80gb", 1, "fp16", 2048, 139.6),
    Point("trtllm-0.9", "llama-2-70b", "a100-sxm-80gb", 4, "fp16", 128, 45.6),
    Point("trtllm-0.9", "llama-2-70b", "a100-sxm-80gb", 8, "fp16", 2048, 249.2),
    # trtllm-0.9, L40S GPUs (FP8) table
    Point("trtllm-0.9", "llama-2-7b", "l40s", 1, "fp8", 128, 14.1),
    Point("trtllm-0.9", "llama-2-7b", "l40s", 1, "fp8", 2048, 80.1),
    Point("trtllm-0.9", "mistral-7b-v0.1", "l40s", 1, "fp8", 128, 15.4),
    Point("trtllm-0.9", "mistral-7b-v0.1", "l40s", 1, "fp8", 2048, 87.3),
    Point("trtllm-0.9", "llama-2-70b", "l40s", 8, "fp8", 128, 70.4),
    Point("trtllm-0.9", "llama-2-70b", "l40s", 4, "fp8", 2048, 673.3),
    # trtllm-0.5, A100 GPUs (FP16) and L40S GPUs (FP8) tables
    Point("trtllm-0.5", "llama-2-7b", "a100-sxm-80gb", 1, "fp16", 128, 16.0),
    Point("trtllm-0.5", "llama-2-7b", "a100-sxm-80gb", 1, "fp16", 2048, 133.0),
    Point("trtllm-0.5", "llama-2-70b", "a100-sxm-80gb", 4, "fp16", 128, 47.0),
    Point("trtllm-0.5", "llama-2-70b", "a100-sxm-80gb", 4, "fp16", 2048, 377.0),
    Point("trtllm-0.5", "llama-2-7b", "l40s", 1, "fp8", 128, 14.0),
    Point("trtllm-0.5", "llama-2-7b", "l40s", 1, "fp8", 2048, 73.0),
    # lmdeploy-0.1, llama2-7b and llama2-70b tables, rows batch 1, output_tokens 128, FTL(ave) in s
    Point("lmdeploy-0.1", "llama-2-7b", "a100-sxm-80gb", 1, "fp16", 128, 22.0),
    Point("lmdeploy-0.1", "llama-2-7b", "a100-sxm-80gb", 1, "fp16", 2048, 139.0),
    Point("lmdeploy-0.1", "llama-2-70b", "a100-sxm-80gb", 4, "fp16", 128, 74.0),
    Point("lmdeploy-0.1", "llama-2-70b", "a100-sxm-80gb", 4, "fp16", 2048, 402.0),
]
FORWARD = [p for p in POINTS if p.kind == "forward"]

# Forward-pass points the prefill kernel model misses by more than the tolerance today. The 128-token
# prompts on A100 are ~3.6 ms short (12.5 ms vs 16.2 / 16.0 ms): at that length the forward pass is
# near the weight-read floor (13.5 GB / 2.04 TB/s = 6.6 ms) and the per-request work the benchmark
# times around it (engine setup, sampling, host copies) is a visible share; the same gap shows on
# H100 (4.3 vs 6.3 ms, not tested here: calibration GPU).
PREFILL_XFAIL = {
    "trtllm-0.9-a100-sxm-80gb-llama-2-7b-tp1-fp16-isl128": "prefill 12.5 ms vs 16.2 ms published (-23%)",
    "trtllm-0.5-a100-sxm-80gb-llama-2-7b-tp1-fp16-isl128": "prefill 12.5 ms vs 16.0 ms published (-22%)",
}

TTFT_XFAIL = {
    **PREFILL_XFAIL,
    "lmdeploy-0.1-a100-sxm-80gb-llama-2-7b-tp1-fp16-isl128": "TTFT 12.5 ms vs 22 ms published (-43%): the "
    "engine's per-request overhead (11 ms by its own 1-token rows) is not modelled at concurrency 1",
    "lmdeploy-0.1-a100-sxm-80gb-llama-2-70b-tp4-fp16-isl128": "TTFT 42.5 ms vs 74 ms published (-43%): the "
    "engine's per-request overhead (31 ms by its own 1-token rows) is not modelled at concurrency 1",
}


def _param(p: Point, xfail: dict[str, str] | None = None):
    marks = [pytest.mark.xfail(strict=True, reason=xfail[p.id])] if xfail and p.id in xfail else []
    return pytest.param(p, id=p.id, marks=marks)


_CACHE: dict[Point, ServingEstimate] = {}


def _estimate(p: Point) -> ServingEstimate:
    """The planner at concurrency 1 (osl 2: the first token and one more), closest engine: trtllm
    (TensorRT-LLM itself; LMDeploy's TurboMind is also a C++ FasterTransformer-lineage engine)."""
    if p not in _CACHE:
        plan = ServingPlan(tp=p.tp, precision=p.precision, backend="trtllm")  # type: ignore[arg-type]
        _CACHE[p] = estimate_serving(planner.get_model(p.model), planner.get_system(p.gpu), plan, p.isl, 2, 1)
    return _CACHE[p]


# ---- the published table itself -------------------------------------------------------------

def test_published_points_are_outside_calibration_and_cover_two_gpus():
    assert all(p.source in SOURCES for p in POINTS)
    assert not {p.gpu for p in POINTS} & CALIBRATION_GPUS
    assert len({p.gpu for p in FORWARD}) >= 2
    # first-token latency grows with the prompt in every (source, gpu, model, tp) series
    series: dict[tuple, list[Point]] = {}
    for p in POINTS:
        series.setdefault((p.source, p.gpu, p.model, p.tp), []).append(p)
    for pts in series.values():
        pts.sort(key=lambda q: q.isl)
        assert all(a.ms < b.ms for a, b in zip(pts, pts[1:]))


# ---- prefill kernel time vs forward-pass measurements ----------------------------------------

@pytest.mark.parametrize("p", [_param(p, PREFILL_XFAIL) for p in FORWARD])
def test_prefill_kernel_within_20pct_of_published_forward_pass(p: Point):
    est = _estimate(p)
    assert est.fits, f"{p.model} tp {p.tp} {p.precision} should fit on {p.gpu}"
    pred_ms = est.breakdown["prefill_s"] * 1e3
    err = pred_ms / p.ms - 1
    assert abs(err) <= TOLERANCE, f"{p.id}: prefill {pred_ms:.1f} ms vs published {p.ms} ms ({err:+.0%})"


def test_prefill_error_overall_and_per_gpu():
    """Mean absolute error over every forward-pass point (the misses included), and at least two GPUs
    outside calibration with at least three points each within 20 %."""
    errs = {p: _estimate(p).breakdown["prefill_s"] * 1e3 / p.ms - 1 for p in FORWARD}
    mape = float(np.mean([abs(e) for e in errs.values()]))
    assert mape <= 0.12, f"prefill MAPE over {len(errs)} published points is {mape:.1%}"
    within = {g: sum(1 for p, e in errs.items() if p.gpu == g and abs(e) <= TOLERANCE) for g in {p.gpu for p in FORWARD}}
    assert sum(1 for n in within.values() if n >= 3) >= 2, within
    # prefill time grows with the prompt, roughly linearly at these lengths: 16x the tokens is 5-17x the time
    # (the published ratios 2048 / 128 span 8.2x on A100 to 5.2x on L40S for the 7B models)
    for p in FORWARD:
        if p.isl == 2048:
            short = [q for q in FORWARD if q.isl == 128 and (q.source, q.gpu, q.model, q.tp) == (p.source, p.gpu, p.model, p.tp)]
            for q in short:
                ratio = _estimate(p).breakdown["prefill_s"] / _estimate(q).breakdown["prefill_s"]
                assert 5.0 <= ratio <= 17.0, (p.id, ratio)


# ---- TTFT at concurrency 1 -------------------------------------------------------------------

@pytest.mark.parametrize("p", [pytest.param(p, id=p.id) for p in POINTS])
def test_ttft_at_concurrency_1_is_at_least_the_prefill(p: Point):
    est = _estimate(p)
    assert est.concurrency == 1
    assert est.ttft_ms >= est.breakdown["prefill_s"] * 1e3 > 0


@pytest.mark.parametrize("p", [_param(p, TTFT_XFAIL) for p in POINTS])
def test_ttft_within_20pct_of_published_first_token_latency(p: Point):
    est = _estimate(p)
    err = est.ttft_ms / p.ms - 1
    assert abs(err) <= TOLERANCE, f"{p.id}: TTFT {est.ttft_ms:.1f} ms vs published {p.ms} ms ({err:+.0%})"


# ---- linear-layer kernel terms vs measured operators (vidur profiling) -----------------------

# NVIDIA A40 datasheet (nvidia.com/en-us/data-center/a40/; the figures as reproduced by resellers):
# FP16 / BF16 tensor 149.7 TFLOPS dense (299.4 with sparsity), TF32 74.8, FP32 37.4; 48 GB GDDR6
# at 696 GB/s; 300 W. Not in the catalog (no cited node facts); only the GEMM terms use it here.
A40 = Accelerator(name="NVIDIA A40", vendor="nvidia", family="ampere", memory_bytes=48e9,
                  hbm_bandwidth_bytes_per_s=696e9,
                  peak_flops={"bf16": 149.7e12, "fp16": 149.7e12, "tf32": 74.8e12, "fp32": 37.4e12}, tdp_w=300)

# vidur model directory -> built-in model with the same layer shape
VIDUR_MODELS = {"Llama-2-7b-hf": "llama-2-7b", "Llama-2-70b-hf": "llama-2-70b", "Meta-Llama-3-8B": "llama-3.1-8b"}
VIDUR_LINEAR = ("attn_pre_proj", "attn_post_proj", "mlp_up_proj", "mlp_down_proj")  # QKV, O, MLP up (gate+up), down
PLANNER_LINEAR = ("qkv_proj", "out_proj", "mlp_up", "mlp_down")


def _system(gpu: str):
    a100 = planner.get_system("a100-sxm-80gb")
    # the A40 in an A100 node: only the accelerator enters the GEMM terms compared here
    return a100 if gpu == "a100" else a100.model_copy(update={"name": "a40-gemm-only", "accelerator": A40})


@pytest.mark.parametrize("gpu", ["a100", "a40"])
@pytest.mark.parametrize("vidur_model", list(VIDUR_MODELS))
def test_linear_layer_kernels_match_measured_operators(reference_dir: Path, gpu: str, vidur_model: str):
    path = reference_dir / "operators" / gpu / vidur_model / "mlp.csv"
    if not path.is_file():
        pytest.skip(f"no {vidur_model} operator times for {gpu} in {path.parent.parent}")
    model = planner.get_model(VIDUR_MODELS[vidur_model])
    system = _system(gpu)
    acc = system.accelerator
    pre, dec = [], []
    with open(path, newline="") as f:
        for r in csv.DictReader(f):
            # the measured layer is the built-in model's layer
            assert (int(r["n_head"]), int(r["n_kv_head"]), int(r["n_embd"]), int(r["n_expanded_embd"])) == (
                model.num_heads, model.num_kv_heads, model.hidden_size, model.intermediate_size)
            tokens, tp = int(r["num_tokens"]), int(r["num_tensor_parallel_workers"])
            measured = sum(float(r[f"time_stats.{op}.median"]) for op in VIDUR_LINEAR) * 1e-3
            if tokens >= 512:  # prefill: the operators the serving prefill times (one layer, one GPU)
                ops = [o for o in layer_ops(model, 0, LayerShape(micro_batch=1, seq_len=tokens, tp=tp))
                       if o.name in PLANNER_LINEAR]
                assert len(ops) == 4
                pred = sum(float(gemm_time_s(o.m, o.n, o.k, acc, "fp16", o.batch)) for o in ops)
                pre.append(pred / measured - 1)
            if tokens <= 128:  # decode at batch = tokens: the decode step's GEMMs less the LM head, per layer
                step = decode_step_s(model, system, ServingPlan(tp=tp, precision="fp16"), tokens, 1024)
                head = float(gemm_time_s(tokens, -(-model.vocab_size // tp), model.hidden_size, acc, "bf16"))
                dec.append((step["decode_gemm"] - head) / model.num_layers / measured - 1)
    pre_a, dec_a = np.abs(pre), np.abs(dec)
    assert len(pre) >= 700 and len(dec) >= 70
    # measured today (MAPE / worst row): prefill 2.5-5.0 % / 11-33 %, decode 3.3-7.2 % / 10-23 %
    assert pre_a.mean() <= 0.08, f"{gpu} {vidur_model}: prefill linear-layer MAPE {pre_a.mean():.1%}"
    assert dec_a.mean() <= 0.10, f"{gpu} {vidur_model}: decode linear-layer MAPE {dec_a.mean():.1%}"
    assert abs(float(np.mean(pre))) <= 0.05 and abs(float(np.mean(dec))) <= 0.06  # no systematic bias
    assert pre_a.max() <= 0.40 and dec_a.max() <= 0.35
    assert math.isfinite(pre_a.max())
