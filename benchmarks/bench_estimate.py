"""Speed of the training estimator (issue 2): one estimate, and 10,000 plan estimates.

Run: ``python benchmarks/bench_estimate.py`` (prints medians over repeats).
Targets: one estimate <= 5 ms in process; 10,000 plan estimates <= 2 s.
"""

from __future__ import annotations

import itertools
import statistics
import time

import planner
from planner.cost.training import TrainingPlan, clear_caches, estimate_training


def one_estimate(repeats: int = 50, cold: bool = False) -> float:
    times = []
    for _ in range(repeats):
        if cold:
            clear_caches()
        t0 = time.perf_counter()
        planner.estimate_train("llama-3.1-405b", "h100", gpus=16384, tp=8, pp=16, micro_batch=1,
                               global_batch=2048, seq_len=8192, zero=1)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def plans(n: int = 10_000) -> list[TrainingPlan]:
    out = []
    grid = itertools.product((1, 2, 4, 8), (1, 2, 4, 8, 16), (1, 2, 4), (1, 2), ("none", "selective", "full"), (0, 1, 2, 3), (256, 512, 1024, 2048))
    for tp, pp, mbs, vpp, rc, zero, gbs in grid:
        dp = 1024 // (tp * pp)
        if gbs % (mbs * dp) or (vpp > 1 and (gbs // (mbs * dp)) % pp) or (pp == 1 and vpp > 1):
            continue
        out.append(TrainingPlan(tp=tp, pp=pp, vpp=vpp, dp=dp, micro_batch=mbs, global_batch=gbs, seq_len=8192,
                                recompute=rc, zero=zero))
    while len(out) < n:
        out += out[: n - len(out)]
    return out[:n]


def many_estimates(repeats: int = 3) -> tuple[float, int]:
    model, system = planner.get_model("llama-3.1-70b"), planner.get_system("h100")
    ps = plans()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for p in ps:
            estimate_training(model, system, p)
        times.append(time.perf_counter() - t0)
    return statistics.median(times), len(ps)


if __name__ == "__main__":
    print(f"one estimate, cold caches (Llama-3.1-405B, 16,384 H100): median {one_estimate(cold=True) * 1e3:.2f} ms  (target <= 5 ms)")
    print(f"one estimate, warm caches: median {one_estimate() * 1e3:.2f} ms")
    t, n = many_estimates()
    print(f"{n:,} plan estimates (Llama-3.1-70B, 1,024 H100): median {t:.2f} s  (target <= 2 s)")
