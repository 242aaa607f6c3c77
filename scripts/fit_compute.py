"""Fit the compute-time constants of planner/cost/compute.py to measured operator times.

Data: per-operator CUDA times (milliseconds, fp16) of one transformer layer's
non-attention operators, ``<root>/<gpu>/<model>/mlp.csv`` with gpu in a100,
h100, a40 (microsoft/vidur data/profiling/compute; the reference README allows
calibrating on all its rows). GEMM shapes, with m = num_tokens,
d = n_embd / n_head, tp = num_tensor_parallel_workers::

    attn_pre_proj   k = n_embd               n = (n_head + 2 n_kv_head) d / tp
    attn_post_proj  k = n_head d / tp        n = n_embd
    mlp_up_proj     k = n_embd               n = (2 if gated else 1) n_expanded_embd / tp
    mlp_down_proj   k = n_expanded_embd / tp n = n_embd

Memory-bound operators (fp16 elements moved): input/post-attention norm
2 m n_embd; add 3 m n_embd; mlp_act 3 m n_exp/tp (SiLU-and-mul) or 2 m n_exp/tp
(GELU); attn_rope read + write of q and k, 2 m (n_head + n_kv_head) d / tp.

The fit (numpy only): a coordinate search, in log space, of the five GEMM
constants minimising the mean |log(predicted / measured)| over all rows of the
four projections; then a grid search of the memory-bound efficiency and launch
time minimising the same on each row's *sum* of memory-bound operators (what a
layer's time depends on; single kernels range from ~30-60% of the bandwidth for
the norms to ~85-95% for the residual add, which one efficiency cannot follow). Prints a
FAMILY_CONSTANTS table to paste into compute.py and the MAPE per GPU.

Usage: python scripts/fit_compute.py [OPERATORS_DIR]
"""

from __future__ import annotations

import csv
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from planner.cost.compute import (  # noqa: E402
    FAMILY_CONSTANTS,
    ComputeConstants,
    constants_key,
    gemm_time_s,
    memory_bound_time_s,
)
from planner.specs.hardware import Accelerator  # noqa: E402

DEFAULT_DATA = ROOT.parent / "shared" / "reference" / "operators"

# The measured GPUs, built from their datasheets (dense fp16/bf16 tensor peak, HBM/GDDR bandwidth).
GPUS: dict[str, tuple[str, Accelerator]] = {
    "a100": ("ampere", Accelerator(name="NVIDIA A100 SXM4 80GB", vendor="nvidia", family="ampere", memory_bytes=80e9,
                                   hbm_bandwidth_bytes_per_s=2.039e12, peak_flops={"bf16": 312e12, "fp16": 312e12}, tdp_w=400)),
    "h100": ("hopper", Accelerator(name="NVIDIA H100 SXM5 80GB", vendor="nvidia", family="hopper", memory_bytes=80e9,
                                   hbm_bandwidth_bytes_per_s=3.35e12, peak_flops={"bf16": 989.5e12, "fp16": 989.5e12}, tdp_w=700)),
    "a40": ("ampere-ga102", Accelerator(name="NVIDIA A40", vendor="nvidia", family="ampere", memory_bytes=48e9,
                                        hbm_bandwidth_bytes_per_s=696e9, peak_flops={"bf16": 149.7e12, "fp16": 149.7e12}, tdp_w=300)),
}
assert all(constants_key(acc) == key for key, acc in GPUS.values()), "GPUS keys must match compute.constants_key"
GEMM_OPS = ("attn_pre_proj", "attn_post_proj", "mlp_up_proj", "mlp_down_proj")
MEM_OPS = ("input_layernorm", "post_attention_layernorm", "mlp_act", "attn_rope", "add")


def load(root: Path) -> dict[str, dict[str, np.ndarray]]:
    """Per GPU: GEMM rows (m, n, k, t_s, op index) and memory-bound rows (bytes, t_s, op index)."""
    out = {}
    for gpu in GPUS:
        g = {"m": [], "n": [], "k": [], "t": [], "op": [], "mb": [], "mt": [], "mop": [], "mrow": []}
        row = 0
        for path in sorted((root / gpu).glob("*/mlp.csv")):
            with open(path, newline="") as f:
                for r in csv.DictReader(f):
                    m, tp = float(r["num_tokens"]), float(r["num_tensor_parallel_workers"])
                    nh, nkv, ne, nx = (float(r[c]) for c in ("n_head", "n_kv_head", "n_embd", "n_expanded_embd"))
                    gated = r["use_gated_mlp"].strip().lower() == "true"
                    d = ne / nh
                    shapes = {
                        "attn_pre_proj": (ne, (nh + 2 * nkv) * d / tp),
                        "attn_post_proj": (nh * d / tp, ne),
                        "mlp_up_proj": (ne, (2 if gated else 1) * nx / tp),
                        "mlp_down_proj": (nx / tp, ne),
                    }
                    for i, op in enumerate(GEMM_OPS):
                        k, n = shapes[op]
                        g["m"].append(m), g["n"].append(n), g["k"].append(k), g["op"].append(i)
                        g["t"].append(float(r[f"time_stats.{op}.median"]) * 1e-3)
                    elems = {
                        "input_layernorm": 2 * m * ne,
                        "post_attention_layernorm": 2 * m * ne,
                        "mlp_act": (3 if gated else 2) * m * nx / tp,
                        "attn_rope": 2 * m * (nh + nkv) * d / tp,
                        "add": 3 * m * ne,
                    }
                    for i, op in enumerate(MEM_OPS):
                        t = r.get(f"time_stats.{op}.median")  # phi-2 has no post_attention_layernorm
                        if t:
                            g["mb"].append(2.0 * elems[op]), g["mop"].append(i), g["mt"].append(float(t) * 1e-3)
                            g["mrow"].append(row)
                    row += 1
        if g["t"]:
            out[gpu] = {k: np.asarray(v) for k, v in g.items()}
    return out


def gemm_pred(d, acc, c):
    return gemm_time_s(d["m"], d["n"], d["k"], acc, "fp16", constants=c)


def mape(pred, meas):
    return float(np.mean(np.abs(pred / meas - 1.0))) * 100.0


def fit_gemm(d, acc, c0: ComputeConstants) -> ComputeConstants:
    """Coordinate search of (e_max, k_half, tiles_half, bw_eff, launch_s) on mean |log(pred/meas)|."""
    logt = np.log(d["t"])

    def loss(c):
        return float(np.mean(np.abs(np.log(gemm_pred(d, acc, c)) - logt)))

    best, best_loss = c0, loss(c0)
    names = ("e_max", "k_half", "tiles_half", "bw_eff", "launch_s")
    span = 0.7
    for _ in range(14):
        for name in names:
            v0 = max(getattr(best, name), 1e-3 if name != "launch_s" else 1e-7)
            for f in np.exp(np.linspace(-span, span, 25)):
                v = float(v0 * f)
                if name in ("e_max", "bw_eff"):
                    v = min(v, 0.99)
                c = replace(best, **{name: v})
                lc = loss(c)
                if lc < best_loss - 1e-12:
                    best, best_loss = c, lc
        span *= 0.6
    return best


def layer_sums(d, pred=None):
    """Per row: measured sum of the memory-bound operators, bytes summed, operator count (and predicted sum)."""
    rows, inv = np.unique(d["mrow"], return_inverse=True)
    t = np.bincount(inv, d["mt"])
    b = np.bincount(inv, d["mb"])
    n = np.bincount(inv)
    p = None if pred is None else np.bincount(inv, pred)
    return t, b, n, p


def fit_stream(d, acc, cap: float = 0.95) -> float:
    """stream_eff: median achieved bandwidth of the residual ``add`` kernel (num_tokens >= 2048
    are the rows whose ``add`` moves >= tens of MB), capped at ``cap`` (L2 reuse inflates it)."""
    add = np.asarray(d["mop"]) == MEM_OPS.index("add")
    big = add & (np.asarray(d["mb"]) >= 2.0 * 3 * 2048 * 2560)
    if not big.any():
        return 0.85
    bw = d["mb"][big] / d["mt"][big] / acc.hbm_bandwidth_bytes_per_s
    return float(min(cap, np.median(bw)))


def fit_memory(d, acc, c: ComputeConstants) -> ComputeConstants:
    """Grid search of (mem_eff, mem_launch_s) on mean |log| of each row's summed memory-bound time."""
    t, b, n, _ = layer_sums(d)
    bw = acc.hbm_bandwidth_bytes_per_s
    best = (np.inf, 0.0, 0.0)
    for launch in np.linspace(0.0, 10e-6, 101):
        for eff in np.linspace(0.2, 1.0, 801):
            loss = float(np.mean(np.abs(np.log((n * launch + b / (bw * eff)) / t))))
            if loss < best[0]:
                best = (loss, float(eff), float(launch))
    return replace(c, mem_eff=best[1], mem_launch_s=best[2])


def report(data, consts) -> None:
    print("\nGEMM MAPE (attn_pre_proj, attn_post_proj, mlp_up_proj, mlp_down_proj):")
    allp, allt, allbig = [], [], []
    for gpu, d in data.items():
        key, acc = GPUS[gpu]
        p = gemm_pred(d, acc, consts[key])
        big = d["m"] >= 512
        per_op = ", ".join(f"{op} {mape(p[big & (d['op'] == i)], d['t'][big & (d['op'] == i)]):.1f}%"
                           for i, op in enumerate(GEMM_OPS))
        print(f"  {gpu:5s} num_tokens>=512: {mape(p[big], d['t'][big]):5.1f}%   all rows: {mape(p, d['t']):5.1f}%"
              f"   ({per_op})")
        allp.append(p), allt.append(d["t"]), allbig.append(big)
    p, t, big = np.concatenate(allp), np.concatenate(allt), np.concatenate(allbig)
    print(f"  {'all':5s} num_tokens>=512: {mape(p[big], t[big]):5.1f}%   all rows: {mape(p, t):5.1f}%")
    print("\nMemory-bound MAPE (all rows; the fit targets each row's sum):")
    for gpu, d in data.items():
        key, acc = GPUS[gpu]
        p = memory_bound_time_s(d["mb"], acc, constants=consts[key])
        per_op = ", ".join(f"{op} {mape(p[d['mop'] == i], d['mt'][d['mop'] == i]):.0f}%" for i, op in enumerate(MEM_OPS))
        t, _, _, ps = layer_sums(d, p)
        print(f"  {gpu:5s} per row's sum {mape(ps, t):5.1f}%   per kernel {mape(p, d['mt']):5.1f}%   ({per_op})")


START = ComputeConstants(e_max=0.75, k_half=64.0, tiles_half=16.0, bw_eff=0.8, launch_s=4e-6, mem_eff=0.6, mem_launch_s=3e-6)


def main(argv: list[str]) -> int:
    root = Path(argv[1]) if len(argv) > 1 else DEFAULT_DATA
    if not root.is_dir():
        print(f"error: operator data not found at {root} (pass the operators/ directory as the argument)", file=sys.stderr)
        return 1
    data = load(root)
    if not data:
        print(f"error: no <gpu>/<model>/mlp.csv files under {root}", file=sys.stderr)
        return 1
    fitted = dict(FAMILY_CONSTANTS)
    for gpu, d in data.items():
        key, acc = GPUS[gpu]
        fitted[key] = replace(fit_memory(d, acc, fit_gemm(d, acc, START)), stream_eff=fit_stream(d, acc))
    print(f"# Fitted by scripts/fit_compute.py on {root}")
    print("FAMILY_CONSTANTS: dict[str, ComputeConstants] = {")
    for key in sorted(fitted):
        c = fitted[key]
        print(f'    "{key}": ComputeConstants(e_max={c.e_max:.3f}, k_half={c.k_half:.1f}, tiles_half={c.tiles_half:.1f}, '
              f"bw_eff={c.bw_eff:.3f}, launch_s={c.launch_s:.2e},\n"
              f"        mem_eff={c.mem_eff:.3f}, mem_launch_s={c.mem_launch_s:.2e}, stream_eff={c.stream_eff:.2f}),")
    print("}")
    print("\n== with the constants just fitted ==")
    report(data, fitted)
    print("\n== with the constants now in planner/cost/compute.py ==")
    report(data, FAMILY_CONSTANTS)
    if "a40" in data:
        print("\n== transfer: the A100 ('ampere') constants used for the A40 ==")
        report({"a40": data["a40"]}, {**fitted, "ampere-ga102": fitted["ampere"]})
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
