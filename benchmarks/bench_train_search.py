"""Speed of the training plan search (issue 3): the whole `planner train` process.

Run: ``python benchmarks/bench_train_search.py [REPEATS]`` (default 5). Prints
the median wall time of the full command (interpreter start, imports, spec
loading, search, partition MILP, output) for each job, and the in-process
search time. Target: <= 2 s median for each job on 2 cores.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

JOBS = {
    "GPT 1T on 3,072 A100 (seq 2048, batch 3072)":
        ["--model", "gpt-1t", "--gpu", "a100-sxm-80gb", "--gpus", "3072", "--seq", "2048", "--gbs", "3072"],
    "Llama-3.1-405B on 16,384 H100 (seq 8192, 16M tokens)":
        ["--model", "llama-3.1-405b", "--gpu", "h100", "--gpus", "16384", "--seq", "8192", "--batch-tokens", "16M"],
}


def whole_process(args: list[str], repeats: int) -> tuple[float, float]:
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        r = subprocess.run([sys.executable, "-m", "planner", "train", *args, "--json"], env=env, capture_output=True,
                           text=True)
        times.append(time.perf_counter() - t0)
        if r.returncode != 0:
            raise SystemExit(f"planner train failed: {r.stderr.strip()}")
    return statistics.median(times), min(times)


def in_process(args: list[str], repeats: int) -> float:
    import planner
    from planner.cost.training import clear_caches

    opts = dict(zip(args[::2], args[1::2]))
    seq = int(opts["--seq"])
    gbs = int(opts["--gbs"]) if "--gbs" in opts else 16 * 2**20 // seq
    times = []
    for _ in range(repeats):
        clear_caches()
        t0 = time.perf_counter()
        planner.search_train(opts["--model"], opts["--gpu"], int(opts["--gpus"]), seq, gbs)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    for name, args in JOBS.items():
        med, best = whole_process(args, n)
        print(f"{name}: `planner train` whole process median {med:.2f} s (min {best:.2f} s, {n} runs; target <= 2 s); "
              f"search in process median {in_process(args, n):.2f} s")
