"""planner.cost.compute: closed forms, bad input, and measured operator times."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from planner.cost.compute import (
    DTYPE_BYTES,
    FAMILY_CONSTANTS,
    compute_constants,
    constants_for,
    constants_key,
    gemm_efficiency,
    gemm_time_s,
    memory_bound_time_s,
)
from planner.specs.hardware import Accelerator, System

PROJECT = Path(__file__).parents[1]
OPERATORS = Path(__file__).parents[1].parent / "shared" / "reference" / "operators"


def _acc(name: str, family: str, bf16_tflops: float, bw_tb_s: float) -> Accelerator:
    return Accelerator(name=name, vendor="nvidia", family=family, memory_bytes=80e9,
                       hbm_bandwidth_bytes_per_s=bw_tb_s * 1e12,
                       peak_flops={"bf16": bf16_tflops * 1e12, "fp16": bf16_tflops * 1e12, "fp8": 2 * bf16_tflops * 1e12,
                                   "fp32": bf16_tflops / 16 * 1e12},
                       tdp_w=500)


def _h100() -> Accelerator:
    spec = yaml.safe_load((PROJECT / "hardware_specs" / "h100-sxm.yaml").read_text())
    return System.model_validate(spec).accelerator


A100 = _acc("NVIDIA A100 SXM4 80GB", "ampere", 312, 2.039)  # A100 datasheet: 312 TFLOPS dense bf16, 2.039 TB/s
A40 = _acc("NVIDIA A40", "ampere", 149.7, 0.696)  # A40 datasheet: 149.7 TFLOPS dense fp16 tensor, 696 GB/s
H100 = _h100()
B200 = _acc("NVIDIA B200", "blackwell", 2250, 8.0)
ALL = [A100, A40, H100, B200]


# --- closed forms ---------------------------------------------------------------------------------

@pytest.mark.parametrize("acc", ALL, ids=lambda a: a.name)
@pytest.mark.parametrize("dtype", ["bf16", "fp16", "fp8", "fp32"])
def test_efficiency_never_exceeds_e_max(acc, dtype):
    dims = np.array([1, 7, 64, 128, 129, 1000, 4096, 8192, 65536, 131072], dtype=float)
    m, n, k = np.meshgrid(dims, dims, dims, indexing="ij")
    e = gemm_efficiency(m, n, k, acc, dtype)
    assert np.all(e > 0)
    assert np.all(e <= constants_for(acc).e_max + 1e-12)
    assert np.all(e < 1.0)


@pytest.mark.parametrize("acc", ALL, ids=lambda a: a.name)
def test_large_gemm_approaches_peak_times_e_max(acc):
    m = n = k = 2**16
    ideal = 2.0 * m * n * k / (acc.flops("bf16") * constants_for(acc).e_max)
    t = gemm_time_s(m, n, k, acc, "bf16")
    assert ideal <= t <= 1.01 * ideal
    # A training-size GEMM (100k tokens) is within a few percent of it too.
    e = gemm_efficiency(100_000, 8192, 8192, acc, "bf16")
    assert 0.97 * constants_for(acc).e_max <= e <= constants_for(acc).e_max


@pytest.mark.parametrize("acc", ALL, ids=lambda a: a.name)
def test_roofline_lower_bounds(acc):
    """No GEMM beats the dense peak or reads its operands faster than the HBM bandwidth."""
    rng = np.random.default_rng(0)
    m, n, k = (rng.integers(1, 50_000, 2000).astype(float) for _ in range(3))
    t = gemm_time_s(m, n, k, acc, "bf16")
    assert np.all(t >= 2 * m * n * k / acc.flops("bf16"))
    assert np.all(t >= 2 * (m * k + k * n + m * n) / acc.hbm_bandwidth_bytes_per_s)


@pytest.mark.parametrize("acc", ALL, ids=lambda a: a.name)
def test_time_monotone_in_each_dimension(acc):
    x = np.arange(1, 6000, dtype=float)
    for m, n, k in [(x, 4096, 4096), (4096, x, 4096), (4096, 4096, x), (x, 128, 8192), (1, x, 8192), (256, 8192, x)]:
        t = gemm_time_s(m, n, k, acc, "bf16")
        assert np.all(np.diff(t) >= 0), (m if np.ndim(m) == 0 else "m", n if np.ndim(n) == 0 else "n")
    b = np.arange(1, 200, dtype=float)
    assert np.all(np.diff(gemm_time_s(512, 128, 128, acc, "bf16", batch=b)) >= 0)


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 200_000), st.integers(1, 60_000), st.integers(1, 60_000), st.integers(1, 4096),
       st.sampled_from(["m", "n", "k"]))
def test_monotone_property(m, n, k, step, dim):
    bigger = {"m": (m + step, n, k), "n": (m, n + step, k), "k": (m, n, k + step)}[dim]
    assert gemm_time_s(*bigger, H100) >= gemm_time_s(m, n, k, H100)


def test_decode_gemm_is_bandwidth_bound():
    """m = 1 (decode): the time is set by reading the weights, not by the FLOPs."""
    for acc in ALL:
        k, n = 8192, 28672
        weights_s = 2 * k * n / acc.hbm_bandwidth_bytes_per_s
        t = gemm_time_s(1, n, k, acc, "bf16")
        assert weights_s <= t <= 1.6 * weights_s
        assert gemm_efficiency(1, n, k, acc, "bf16") < 0.01


@pytest.mark.parametrize("acc", ALL, ids=lambda a: a.name)
def test_memory_bound_at_least_bytes_over_bandwidth(acc):
    b = np.logspace(0, 11, 50)
    t = memory_bound_time_s(b, acc)
    assert np.all(t >= b / acc.hbm_bandwidth_bytes_per_s)
    assert np.all(np.diff(t) > 0)
    assert t[0] >= constants_for(acc).mem_launch_s  # a tiny kernel costs its launch


def test_fp8_halves_operand_bytes_and_uses_fp8_peak():
    assert DTYPE_BYTES["fp8"] * 2 == DTYPE_BYTES["bf16"]
    # A large GEMM on a part with fp8 tensor cores runs about twice as fast in fp8.
    ratio = gemm_time_s(16384, 16384, 16384, H100, "bf16") / gemm_time_s(16384, 16384, 16384, H100, "fp8")
    assert 1.9 < ratio < 2.1


def test_scalars_give_float_arrays_broadcast():
    assert isinstance(gemm_time_s(4096, 4096, 4096, H100), float)
    assert isinstance(gemm_efficiency(4096, 4096, 4096, H100), float)
    assert isinstance(memory_bound_time_s(1e6, H100), float)
    t = gemm_time_s(np.array([[1], [512]]), np.array([1024, 2048, 4096]), 4096, H100)
    assert t.shape == (2, 3)
    assert np.array_equal(t[1], [gemm_time_s(512, n, 4096, H100) for n in (1024, 2048, 4096)])
    assert gemm_time_s(0, 4096, 4096, H100) == 0.0 and memory_bound_time_s(0, H100) == 0.0


def test_batched_gemm_costs_at_most_batch_times_one():
    one = gemm_time_s(2048, 128, 2048, H100)
    many = gemm_time_s(2048, 128, 2048, H100, batch=64)
    assert one < many <= 64 * one


# --- bad input --------------------------------------------------------------------------------------

@pytest.mark.parametrize("args,word", [((-1, 8, 8), "m"), ((8, -2, 8), "n"), ((8, 8, -3), "k"),
                                       ((float("nan"), 8, 8), "m"), ((np.array([4, -4]), 8, 8), "m")])
def test_negative_or_nan_dims_raise(args, word):
    with pytest.raises(ValueError, match=rf"gemm_time_s: {word} must be a finite number >= 0"):
        gemm_time_s(*args, H100)


def test_other_bad_inputs_raise():
    with pytest.raises(ValueError, match="batch must be a finite number >= 0"):
        gemm_time_s(8, 8, 8, H100, batch=-1)
    with pytest.raises(ValueError, match="unknown dtype 'bf8'"):
        gemm_time_s(8, 8, 8, H100, "bf8")
    with pytest.raises(ValueError, match="bytes_moved must be a finite number >= 0"):
        memory_bound_time_s(-5, H100)
    with pytest.raises(ValueError, match="must be a number"):
        memory_bound_time_s("lots", H100)


# --- constants --------------------------------------------------------------------------------------

def test_constants_selection_and_report():
    assert constants_key(A100) == "ampere"
    assert constants_key(A40) == "ampere-ga102"
    assert constants_key(H100) == "hopper"
    assert constants_key(B200) == "hopper"
    assert constants_key(_acc("AMD MI300X", "cdna3", 1307, 5.3)) == "cdna3"
    assert constants_key(_acc("NVIDIA L40S", "ada", 362, 0.864)) == "ampere-ga102"
    for key, c in FAMILY_CONSTANTS.items():
        assert 0.3 < c.e_max < 1 and 0.2 < c.bw_eff <= 1 and 0.1 < c.mem_eff <= 1, key
        assert c.k_half >= 0 and c.tiles_half >= 0 and 0 <= c.launch_s < 50e-6 and 0 <= c.mem_launch_s < 50e-6, key
    rep = compute_constants(B200)
    assert rep["constants_key"] == "hopper" and "borrows" in rep["source"]
    assert rep["e_max"] == FAMILY_CONSTANTS["hopper"].e_max
    assert "fitted" in compute_constants(H100)["source"]


# --- measured operator times (vidur profiling, fp16) ------------------------------------------------

def _gemm_rows(gpu_dir: Path):
    m, n, k, t = [], [], [], []
    for path in sorted(gpu_dir.glob("*/mlp.csv")):
        with open(path, newline="") as f:
            for r in csv.DictReader(f):
                tokens, tp = float(r["num_tokens"]), float(r["num_tensor_parallel_workers"])
                nh, nkv, ne, nx = (float(r[c]) for c in ("n_head", "n_kv_head", "n_embd", "n_expanded_embd"))
                d = ne / nh
                up = (2 if r["use_gated_mlp"].strip().lower() == "true" else 1) * nx / tp
                for op, kk, nn in [("attn_pre_proj", ne, (nh + 2 * nkv) * d / tp), ("attn_post_proj", nh * d / tp, ne),
                                   ("mlp_up_proj", ne, up), ("mlp_down_proj", nx / tp, ne)]:
                    m.append(tokens), n.append(nn), k.append(kk), t.append(float(r[f"time_stats.{op}.median"]) * 1e-3)
    return tuple(np.array(x) for x in (m, n, k, t))


@pytest.mark.parametrize("gpu,acc", [("a100", A100), ("h100", H100), ("a40", A40)])
def test_gemm_mape_against_measured_operators(gpu, acc):
    if not (OPERATORS / gpu).is_dir():
        pytest.skip(f"reference operator times not found at {OPERATORS / gpu} (shared/ must sit beside the checkout)")
    m, n, k, t = _gemm_rows(OPERATORS / gpu)
    assert len(t) > 1000
    big = m >= 512
    pred = gemm_time_s(m, n, k, acc, "fp16")
    mape_big = np.mean(np.abs(pred[big] / t[big] - 1))
    mape_all = np.mean(np.abs(pred / t - 1))
    # Implied throughput of the measurements stays below the dense peak (shapes are read right).
    assert np.all(2 * m * n * k / t < acc.flops("fp16"))
    assert mape_big <= 0.15, f"{gpu}: GEMM MAPE for num_tokens >= 512 is {mape_big:.1%}"
    assert mape_all <= 0.20, f"{gpu}: GEMM MAPE over all rows is {mape_all:.1%}"


def test_scalar_fast_path_matches_the_array_formula():
    import numpy as np

    from planner.cost.compute import gemm_time_s, memory_bound_time_s

    from planner import get_system

    acc = get_system("h100").accelerator
    shapes = [(1, 4096, 4096), (512, 12288, 4096), (8192, 3 * 12288, 12288), (3, 5, 7), (0, 10, 10)]
    for m, n, k in shapes:
        scalar = gemm_time_s(m, n, k, acc, "bf16", 2)
        array = gemm_time_s(np.array([m]), n, k, acc, "bf16", 2)[0]
        assert scalar == pytest.approx(float(array), rel=1e-12, abs=0)
    for b in (0, 1e3, 1e9):
        for streaming in (False, True):
            assert memory_bound_time_s(b, acc, streaming=streaming) == pytest.approx(
                float(memory_bound_time_s(np.array([b]), acc, streaming=streaming)[0]), rel=1e-12, abs=0)
