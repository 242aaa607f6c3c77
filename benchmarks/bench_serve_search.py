"""Speed of the serving plan search (issue 4): the whole `planner serve` process.

Run: ``python benchmarks/bench_serve_search.py [REPEATS]`` (default 5). Target:
<= 1 s median wall time for each job (issue 12; it was 10 s), with aggregated and disaggregated answers.
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

JOBS = {
    "Qwen3-32B on 32 H200 (isl 4000, osl 500, TTFT <= 300 ms, TPOT <= 10 ms)":
        ["--model", "qwen3-32b", "--gpu", "h200", "--gpus", "32", "--isl", "4000", "--osl", "500",
         "--ttft", "300ms", "--tpot", "10ms"],
    "DeepSeek-V3 on 64 B200 (isl 4000, osl 500, TTFT <= 300 ms, TPOT <= 20 ms)":
        ["--model", "deepseek-v3", "--gpu", "b200", "--gpus", "64", "--isl", "4000", "--osl", "500",
         "--ttft", "300ms", "--tpot", "20ms"],
}

if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    for name, args in JOBS.items():
        times, out = [], {}
        for _ in range(n):
            t0 = time.perf_counter()
            r = subprocess.run([sys.executable, "-m", "planner", "serve", *args, "--json"], env=env,
                               capture_output=True, text=True)
            times.append(time.perf_counter() - t0)
            if r.returncode != 0:
                raise SystemExit(f"planner serve failed: {r.stderr.strip()}")
            out = json.loads(r.stdout)
        both = out["aggregated"] is not None and out["disaggregated"] is not None
        print(f"{name}: median {statistics.median(times):.2f} s over {n} runs (target <= 1 s); "
              f"aggregated and disaggregated answers: {both}; best {out['best']}")
