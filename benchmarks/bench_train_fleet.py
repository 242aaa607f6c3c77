"""The training fleet (issue 13): the cheapest of H100, H200, B200 and MI300X to train Llama-3.1-70B on 15T
tokens within 90 days, with the time / cost frontier over the types; the whole ``planner train`` process.

Run: ``python benchmarks/bench_train_fleet.py [REPEATS]`` (default 3). Prints the answer (the cheapest type, its
GPUs, plan, days, $ and MWh), the frontier (each type's cheapest plan within the deadline, Pareto-optimal ones
marked, the types that cannot meet it), and the median wall time of the whole multi-type process (interpreter
start, imports, four training searches, the gate, output) against the target of 3 s, with the in-process search
time. Job: the Llama 3 paper's batch (16M tokens: 2,048 sequences of 8,192), at most 16,384 GPUs of each type
(Llama 3's cluster), catalog prices (hardware_specs/*.yaml), bf16.
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
TARGET_S = 3.0
ARGS = ["train", "--model", "llama-3.1-70b", "--gpu", "h100,h200,b200,mi300x", "--gpus", "16384", "--seq", "8192",
        "--batch-tokens", "16M", "--tokens", "15T", "--deadline", "90d", "--json", "--timings"]


def run_once() -> tuple[float, dict]:
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "planner", *ARGS], cwd=ROOT, env=env, capture_output=True, text=True,
                       timeout=120)
    wall = time.perf_counter() - t0
    if r.returncode != 0:
        sys.exit(f"planner failed ({r.returncode}): {r.stderr.strip()}")
    return wall, json.loads(r.stdout)


def main() -> None:
    repeats = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    walls, out = [], {}
    for _ in range(repeats):
        wall, out = run_once()
        walls.append(wall)
    best = out["best"]
    print(f"planner {' '.join(ARGS[:-2])}")
    print(f"cheapest: {out['cheapest_gpu']}, {best['num_gpus']:,} GPUs, tp {best['tp']} pp {best['pp']} "
          f"(vpp {best['vpp']}) dp {best['dp']}, {best['time_to_train_s'] / 86400:.1f} days, "
          f"${best['cost_to_train_usd'] / 1e6:.2f}M, {best['power_kw']:,.0f} kW, {best['energy_to_train_mwh']:,.0f} MWh")
    print("frontier (each type's cheapest plan within the deadline; * Pareto-optimal):")
    print(f"  {'':1} {'GPU':<10} {'GPUs':>6} {'plan':<17} {'MFU %':>6} {'days':>6} {'$M':>7} {'$/GPU-h':>8} "
          f"{'MWh':>7}")
    for f in out["frontier"]:
        print(f"  {'*' if f['pareto'] else ' '} {f['gpu']:<10} {f['num_gpus']:>6,} {f['layout']:<17} "
              f"{100 * f['mfu']:>6.1f} {f['time_to_train_s'] / 86400:>6.1f} {f['cost_to_train_usd'] / 1e6:>7.2f} "
              f"{f['price_per_gpu_hour_usd']:>8.2f} {f['energy_to_train_mwh']:>7,.0f}")
    for r in out["infeasible"]:
        print(f"  cannot: {r['gpu']}: {r['reason']}")
    med = statistics.median(walls)
    print(f"whole process: median {med:.2f} s over {repeats} runs (min {min(walls):.2f} s; target <= {TARGET_S:g} s: "
          f"{'met' if med <= TARGET_S else 'MISSED'}); in-process multi-type search "
          f"{out['fleet_search']['elapsed_s']:.2f} s")


if __name__ == "__main__":
    main()
