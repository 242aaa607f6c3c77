"""Compute time of one operator on one accelerator: a roofline with a fitted efficiency.

GEMM ``[m x k] @ [k x n]`` (``batch`` of them), dense peak ``P = acc.flops(dtype)``,
HBM bandwidth ``B``, ``c`` the constants of the accelerator's family::

    flops   = 2 m n k batch
    bytes   = dtype_bytes (m k + k n + m n) batch
    Tn      = 128,  Tm = clip(pow2ceil(m), 16, 128)       output tile (skinny tiles for small m)
    tiles   = ceil(m / Tm) ceil(n / Tn) batch              tile quantization: partial tiles cost a full one
    t_comp  = 2 Tm Tn (k + c.k_half) (tiles + c.tiles_half) / (P c.e_max)
    t_mem   = bytes / (B c.bw_eff)
    t       = c.launch_s + (t_comp^4 + t_mem^4)^(1/4)       a smoothed max(compute, memory)

so the achieved fraction of peak of the compute part is::

    e = c.e_max * [m n / (Tm Tn tiles)] * [k / (k + c.k_half)] * [tiles / (tiles + c.tiles_half)]
               tile fill                per-tile fixed cost    GPU fill (few tiles under-fill it)

A large GEMM whose dimensions are multiples of the tile tends to
``2 m n k / (P e_max)`` from above; the achieved fraction never exceeds
``e_max < 1``; small GEMMs are bound by reading their operands (decode) and by
the launch. The time is non-decreasing in m, n, k and batch. Wave quantization
against the SM count was tried and does not fit the measurements better (cuBLAS
picks split-K / other tiles), so it is left out.

Memory-bound kernels (norms, activations, residual add, RoPE)::

    t = c.mem_launch_s + bytes_moved / (B c.mem_eff)

The constants come from ``scripts/fit_compute.py`` (see ``FAMILY_CONSTANTS``).
All functions are pure, take SI units and accept numpy arrays (broadcast);
scalar inputs give a ``float``.
"""

from __future__ import annotations

import math

import re
from dataclasses import asdict, dataclass
from functools import lru_cache

import numpy as np

from planner.specs.hardware import Accelerator

DTYPE_BYTES: dict[str, float] = {"fp32": 4, "tf32": 4, "bf16": 2, "fp16": 2, "fp8": 1, "int8": 1, "int4": 0.5, "fp4": 0.5}

TILE_N = 128  # output tile width (columns of C) of tensor-core GEMM kernels
TILE_M_MIN, TILE_M_MAX = 16, 128  # tile height: the next power of two >= m, within these bounds
SMOOTH_P = 4.0  # exponent of the smoothed max of compute and memory time


@dataclass(frozen=True)
class ComputeConstants:
    """Efficiency constants of one accelerator family (see the module docstring)."""

    e_max: float  # fraction of dense peak a large, well-shaped GEMM reaches
    k_half: float  # per-tile fixed cost (prologue, epilogue), in units of the reduction depth k
    tiles_half: float  # GPU fill: a GEMM of this many output tiles runs at half the per-tile rate
    bw_eff: float  # fraction of HBM bandwidth a GEMM reaches streaming its operands
    launch_s: float  # fixed time of a GEMM kernel
    mem_eff: float  # fraction of HBM bandwidth a memory-bound kernel reaches
    mem_launch_s: float  # fixed time of a memory-bound kernel
    stream_eff: float = 0.85  # fraction of HBM bandwidth a plain streaming kernel (add, dropout, softmax, copy) reaches


# Fitted by scripts/fit_compute.py on all rows of the per-operator CUDA times in
# ../shared/reference/operators/ (microsoft/vidur data/profiling/compute, MIT;
# fp16 PyTorch/cuBLAS kernels): a100 -> "ampere" (A100 SXM 80GB),
# h100 -> "hopper" (H100 SXM), a40 -> "ampere-ga102" (A40, GA102). GEMM
# constants from the QKV, O, MLP-up and MLP-down projections (MAPE 5-8% for
# num_tokens >= 512); mem_eff / mem_launch_s from each measured layer's sum of
# norm + activation + RoPE + residual-add kernels (single kernels range from
# ~30-60% of the bandwidth for the norms to ~85-95% for the add, so one kernel
# alone can be off by up to 2x; a plain streaming kernel beats mem_eff).
# The A100 GEMM constants transfer to the A40 at 7.9% MAPE (its own fit: 6.2%);
# its memory-bound constants do not (52% on the layer sums: GDDR6, other
# kernels). Refit with ``python scripts/fit_compute.py`` and paste its table.
FAMILY_CONSTANTS: dict[str, ComputeConstants] = {
    "ampere": ComputeConstants(e_max=0.751, k_half=70.6, tiles_half=7.7, bw_eff=0.755, launch_s=4.61e-06,
        mem_eff=0.479, mem_launch_s=1.90e-06, stream_eff=0.88),
    "ampere-ga102": ComputeConstants(e_max=0.798, k_half=133.6, tiles_half=7.4, bw_eff=0.743, launch_s=2.14e-06,
        mem_eff=0.723, mem_launch_s=1.70e-06, stream_eff=0.83),
    "hopper": ComputeConstants(e_max=0.733, k_half=23.2, tiles_half=21.3, bw_eff=0.912, launch_s=5.82e-06,
        mem_eff=0.559, mem_launch_s=1.90e-06, stream_eff=0.95),
}
# AMD CDNA 3 (MI300X, MI325X): no operator measurements here. Its tensor rate on real workloads is a published
# measurement, not Hopper's: MI300X sustains ~45 % of its peak FLOPs across FP8, BF16 and FP16 and ~81 % of its
# 5.3 TB/s HBM bandwidth (aiweekly.co, "AMD MI300X hits only 45% of peak FLOPs in practice", summarising the
# measurements in a Yahoo Finance analysis; SemiAnalysis' "MI300X vs H100 vs H200 Benchmark Part 1: Training",
# Dec 2024, likewise found its GEMMs far below the datasheet). So cdna3 takes Hopper's shape constants with
# e_max 0.45 and bw_eff 0.81 (an assumption for the tile and launch terms; the asymptotes are the measurement).
FAMILY_CONSTANTS["cdna3"] = ComputeConstants(e_max=0.45, k_half=23.2, tiles_half=21.3, bw_eff=0.81, launch_s=5.82e-06,
                                             mem_eff=0.559, mem_launch_s=1.90e-06, stream_eff=0.81)

# stream_eff (scripts/fit_compute.py, fit_stream): median achieved bandwidth of the
# measured residual ``add`` kernel (3 x tokens x hidden x 2 bytes, rows moving >= 31 MB)
# in the same data, capped at 0.95 (H100 measures ~0.98, helped by L2 reuse). Fused softmax / dropout / residual /
# permutation / cross-entropy kernels are streaming kernels.

# Families without measurements borrow a measured one (an assumption, not a fit):
# Blackwell -> Hopper (same kind of data-centre part, tensor-core GEMMs reach a
# similar fraction of peak); Ada (L4, L40S: GDDR, consumer-class die) -> the
# A40 / GA102 fit; AMD CDNA 2 / 4 -> the CDNA 3 constants above (published MI300X rates); TPU and Gaudi -> Hopper,
# unmeasured here and possibly optimistic for them (their GEMM libraries may reach a lower fraction).
FAMILY_FALLBACK: dict[str, str] = {
    "blackwell": "hopper",
    "ada": "ampere-ga102",
    "cdna2": "cdna3",
    "cdna4": "cdna3",
    "tpu": "hopper",
    "gaudi": "hopper",
}

# Ampere parts built on GA102/GA10x (GDDR6, fewer SMs) rather than GA100.
_GA10X_NAME = re.compile(r"\b(A40|A10G?|A16|A2|A4000|A4500|A5000|A6000|RTX\s*A\d+|GA10\d)\b", re.IGNORECASE)


def constants_key(acc: Accelerator) -> str:
    """The row of ``FAMILY_CONSTANTS`` used for ``acc``."""
    return _constants_key(acc.family, acc.name)


@lru_cache(maxsize=256)
def _constants_key(family: str, name: str) -> str:
    if family == "ampere":
        return "ampere-ga102" if _GA10X_NAME.search(name) else "ampere"
    return family if family in FAMILY_CONSTANTS else FAMILY_FALLBACK.get(family, "hopper")


def constants_for(acc: Accelerator) -> ComputeConstants:
    return FAMILY_CONSTANTS[constants_key(acc)]


def compute_constants(acc: Accelerator) -> dict:
    """The constants used for ``acc``, for breakdown reporting."""
    key = constants_key(acc)
    measured = acc.family in ("ampere", "hopper")
    return {
        "constants_key": key,
        "family": acc.family,
        "source": ("fitted by scripts/fit_compute.py on shared/reference/operators (vidur, fp16)" if measured
                   else "published MI300X rates (45 % of peak FLOPs, 81 % of HBM bandwidth) on Hopper's shape"
                   if key == "cdna3" else f"no measurements for family {acc.family!r}: borrows the {key!r} fit"),
        **asdict(FAMILY_CONSTANTS[key]),
        "tile_n": TILE_N,
        "tile_m_range": (TILE_M_MIN, TILE_M_MAX),
        "smooth_p": SMOOTH_P,
    }


def _dims(name: str, **values) -> list[np.ndarray]:
    out = []
    for key, v in values.items():
        try:
            a = np.asarray(v, dtype=float)
        except (TypeError, ValueError):
            raise ValueError(f"{name}: {key} must be a number or an array of numbers, got {v!r}") from None
        bad = a[~np.isfinite(a) | (a < 0)]
        if bad.size:
            raise ValueError(f"{name}: {key} must be a finite number >= 0, got {bad.flat[0]:g}")
        out.append(a)
    return out


def _ret(x: np.ndarray, *inputs) -> float | np.ndarray:
    return float(x) if all(np.ndim(i) == 0 for i in inputs) else x


def _dtype_bytes(dtype: str) -> float:
    try:
        return DTYPE_BYTES[dtype]
    except KeyError:
        raise ValueError(f"unknown dtype {dtype!r}; expected one of {', '.join(DTYPE_BYTES)}") from None


_SCALARS = (int, float)


def _all_scalars(*values) -> bool:
    """Plain finite non-negative Python numbers (the estimator's common case)."""
    return all(type(v) in _SCALARS and 0 <= v < math.inf for v in values)


def _gemm_time_scalar(m: float, n: float, k: float, batch: float, acc: Accelerator, dtype: str,
                      c: ComputeConstants, weight_bytes: float | None = None) -> float:
    """:func:`gemm_time_s` for one GEMM shape, the same formula in ``math`` (about
    30x faster than numpy on scalars; a test checks both paths agree)."""
    if m * n * k * batch <= 0:
        return 0.0
    dtype_bytes = _dtype_bytes(dtype)
    tile_m = min(max(2.0 ** math.ceil(math.log2(max(m, 1.0))), TILE_M_MIN), TILE_M_MAX)
    tiles = math.ceil(m / tile_m) * math.ceil(n / TILE_N) * math.ceil(batch)
    t_comp = 2.0 * tile_m * TILE_N * (k + c.k_half) * (tiles + c.tiles_half) / (acc.flops(dtype) * c.e_max)
    wb = dtype_bytes if weight_bytes is None else weight_bytes
    t_mem = (dtype_bytes * (m * k + m * n) + wb * k * n) * batch / (acc.hbm_bandwidth_bytes_per_s * c.bw_eff)
    hi, lo = max(t_comp, t_mem), min(t_comp, t_mem)
    return c.launch_s + hi * (1.0 + (lo / hi) ** SMOOTH_P) ** (1.0 / SMOOTH_P)


def gemm_time_s(m, n, k, acc: Accelerator, dtype: str = "bf16", batch=1,
                constants: ComputeConstants | None = None, weight_bytes: float | None = None) -> float | np.ndarray:
    """Time of ``batch`` GEMMs ``[m x k] @ [k x n]`` (formula in the module docstring).

    ``constants`` overrides the family's fitted constants (for fitting);
    ``weight_bytes`` the bytes per element of the ``[k x n]`` weight when it
    differs from ``dtype`` (weight-only quantization: int4 weights, bf16 math)."""
    c = constants or constants_for(acc)
    if _all_scalars(m, n, k, batch):
        return _gemm_time_scalar(float(m), float(n), float(k), float(batch), acc, dtype, c, weight_bytes)
    mm, nn, kk, bb = _dims("gemm_time_s", m=m, n=n, k=k, batch=batch)
    dtype_bytes = _dtype_bytes(dtype)
    peak, bw = acc.flops(dtype), acc.hbm_bandwidth_bytes_per_s
    tile_m = np.clip(2.0 ** np.ceil(np.log2(np.maximum(mm, 1.0))), TILE_M_MIN, TILE_M_MAX)
    tiles = np.ceil(mm / tile_m) * np.ceil(nn / TILE_N) * np.ceil(bb)
    t_comp = 2.0 * tile_m * TILE_N * (kk + c.k_half) * (tiles + c.tiles_half) / (peak * c.e_max)
    wb = dtype_bytes if weight_bytes is None else weight_bytes
    t_mem = (dtype_bytes * (mm * kk + mm * nn) + wb * kk * nn) * bb / (bw * c.bw_eff)
    hi, lo = np.maximum(t_comp, t_mem), np.minimum(t_comp, t_mem)
    smooth_max = hi * (1.0 + (lo / hi) ** SMOOTH_P) ** (1.0 / SMOOTH_P)  # (t_comp^p + t_mem^p)^(1/p)
    t = np.where(mm * nn * kk * bb > 0, c.launch_s + smooth_max, 0.0)
    return _ret(t, m, n, k, batch)


def gemm_efficiency(m, n, k, acc: Accelerator, dtype: str = "bf16", batch=1,
                    constants: ComputeConstants | None = None) -> float | np.ndarray:
    """Achieved fraction of dense peak: ``2 m n k batch / (P gemm_time_s)`` (0 for an empty GEMM)."""
    t = np.asarray(gemm_time_s(m, n, k, acc, dtype, batch, constants))
    flops = 2.0 * np.asarray(m, float) * np.asarray(n, float) * np.asarray(k, float) * np.asarray(batch, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        e = np.where(t > 0, flops / (acc.flops(dtype) * t), 0.0)
    return _ret(e, m, n, k, batch)


def memory_bound_time_s(bytes_moved, acc: Accelerator,
                        constants: ComputeConstants | None = None, streaming: bool = False) -> float | np.ndarray:
    """Norm / activation kernel: ``mem_launch_s + bytes / (B mem_eff)`` (0 for no bytes);
    a plain streaming kernel (``streaming=True``) uses ``stream_eff`` instead of ``mem_eff``."""
    c = constants or constants_for(acc)
    if _all_scalars(bytes_moved):
        if bytes_moved <= 0:
            return 0.0
        return c.mem_launch_s + bytes_moved / (acc.hbm_bandwidth_bytes_per_s * (c.stream_eff if streaming else c.mem_eff))
    (b,) = _dims("memory_bound_time_s", bytes_moved=bytes_moved)
    eff = c.stream_eff if streaming else c.mem_eff
    t = np.where(b > 0, c.mem_launch_s + b / (acc.hbm_bandwidth_bytes_per_s * eff), 0.0)
    return _ret(t, bytes_moved)


__all__ = [
    "DTYPE_BYTES", "ComputeConstants", "FAMILY_CONSTANTS", "FAMILY_FALLBACK",
    "compute_constants", "constants_for", "constants_key",
    "gemm_efficiency", "gemm_time_s", "memory_bound_time_s",
]
