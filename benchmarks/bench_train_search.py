"""Speed of the training plan search (issues 3 and 11): the whole `planner train` process.

Run: ``python benchmarks/bench_train_search.py [REPEATS]`` (default 5). Prints

1. the median wall time of the full command (interpreter start, imports, spec
   loading, search, partition MILP, the gate, output) for each job, against its
   target (issue 11: GPT-1T on 3,072 A100 and Llama-3.1-405B on 16,384 H100
   <= 1 s; Llama-3.1-405B on 131,072 H100 and on 1,820 GB200 NVL72 racks <= 2 s;
   medians on 2 cores), and the in-process search time;
2. how the search grows from 1K to 131K H100 for Llama-3.1-405B at a fixed
   16M-token batch (one line per GPU count: layouts searched, plans estimated,
   median seconds of the whole process): it grows with the divisors of the GPU
   count and the batch, not with the GPU count;
3. the cost and deadline objectives over GPU counts up to 131,072 (a geometric
   grid: the node size times powers of two, plus the count given).

Batches: the Llama 3 paper's 16M tokens (2,048 sequences of 8,192) throughout.
131,040 GB200 GPUs (1,820 racks x 72) admit no layout of 2,048 sequences (the
odd factor 4,095 = 3^2 * 5 * 7 * 13 can go neither to tp / cp, powers of two,
nor wholly to pp <= 126 layers, and dp must divide the batch); `planner train`
says so and names the nearest batches that have one, 2,030 and 2,065 sequences:
that job takes 2,030 (16.6M tokens).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

LLAMA = ["--model", "llama-3.1-405b", "--seq", "8192", "--batch-tokens", "16M"]
JOBS = {  # name: (arguments, target seconds)
    "GPT 1T on 3,072 A100 (seq 2048, batch 3072)":
        (["--model", "gpt-1t", "--gpu", "a100-sxm-80gb", "--gpus", "3072", "--seq", "2048", "--gbs", "3072"], 1.0),
    "Llama-3.1-405B on 16,384 H100 (seq 8192, 16M tokens)": ([*LLAMA, "--gpu", "h100", "--gpus", "16384"], 1.0),
    "Llama-3.1-405B on 131,072 H100 (seq 8192, 16M tokens)": ([*LLAMA, "--gpu", "h100", "--gpus", "131072"], 2.0),
    "Llama-3.1-405B on 1,820 GB200 NVL72 = 131,040 GPUs (seq 8192, 2,030 seqs = 16.6M tokens)":
        (["--model", "llama-3.1-405b", "--gpu", "gb200-nvl72", "--gpus", "131040", "--seq", "8192", "--gbs", "2030"],
         2.0),
}
GROWTH = [1024, 4096, 16384, 65536, 131072]
OBJECTIVES = {
    "cost (cheapest per token over counts <= 131,072, 15T tokens)":
        [*LLAMA, "--gpu", "h100", "--gpus", "131072", "--objective", "cost", "--tokens", "15T"],
    "cost with --pareto":
        [*LLAMA, "--gpu", "h100", "--gpus", "131072", "--objective", "cost", "--tokens", "15T", "--pareto"],
    "deadline (fewest GPUs <= 131,072 that train 15T tokens in 60 days)":
        [*LLAMA, "--gpu", "h100", "--gpus", "131072", "--objective", "deadline", "--tokens", "15T",
         "--deadline", "60d"],
}


def whole_process(args: list[str], repeats: int) -> tuple[float, float, dict]:
    """(median, min) wall seconds of ``planner train ARGS --json``, and the last run's JSON."""
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    times = []
    out: dict = {}
    for _ in range(repeats):
        t0 = time.perf_counter()
        r = subprocess.run([sys.executable, "-m", "planner", "train", *args, "--json"], env=env, capture_output=True,
                           text=True)
        times.append(time.perf_counter() - t0)
        if r.returncode != 0:
            raise SystemExit(f"planner train {' '.join(args)} failed: {r.stderr.strip()}")
        out = json.loads(r.stdout)
    return statistics.median(times), min(times), out


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


def _best_step(out: dict) -> float:
    return float(out.get("best", {}).get("step_time_s", float("nan")))


def _search(out: dict) -> dict:
    return out.get("search", {})


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    print(f"whole `planner train` process, medians of {n} runs")
    for name, (args, target) in JOBS.items():
        med, best, out = whole_process(args, n)
        step = _best_step(out)
        print(f"{name}: median {med:.2f} s (min {best:.2f} s; target <= {target:.0f} s"
              f"{'' if med <= target else ', MISSED'}); search in process median {in_process(args, n):.2f} s; "
              f"best step {step:.3f} s")
    print("\ngrowth, Llama-3.1-405B on H100, 16M tokens:")
    print(f"{'GPUs':>8} {'layouts':>8} {'estimated':>10} {'median s':>9}")
    for gpus in GROWTH:
        med, _, out = whole_process([*LLAMA, "--gpu", "h100", "--gpus", str(gpus)], n)
        s = _search(out)
        print(f"{gpus:>8} {s.get('shapes', 0):>8} {s.get('estimated', 0):>10} {med:>9.2f}")
    print("\nobjectives over GPU counts (Llama-3.1-405B, H100, 16M tokens):")
    for name, args in OBJECTIVES.items():
        med, best, out = whole_process(args, max(1, n // 2))
        s = _search(out)
        print(f"{name}: median {med:.2f} s (min {best:.2f} s) over {len(s.get('gpu_counts', []))} GPU counts, "
              f"{s.get('shapes', 0)} layouts, {s.get('estimated', 0)} plans estimated")
