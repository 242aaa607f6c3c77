"""Expert placement benchmark (issue 5): wall time and placement quality of ``planner experts``.

* DeepSeek-V3-shaped synthetic trace (58 MoE layers, 256 experts, top-8, 8,192 tokens)
  on 64 GPUs, 8 per node, 32 redundant slots per layer, solver time limit 50 s.
* Mixtral-8x7B-shaped trace (32 layers, 8 experts, top-2) on 8 GPUs, 4 per node, time limit 1.5 s.

Each case runs the whole CLI process ``--runs`` times (default 3) and prints the median
wall time with the figures of the last run: max / mean GPU load, cross-node tokens vs
round-robin (fitted on the first half of the trace, and on the held-out second half), the
combined objective vs greedy (EPLB), and the solver's status and gap.

Usage: python benchmarks/bench_experts.py [--runs N]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CASES = [
    ("DeepSeek-V3 on 64 GPUs (8 per node, 32 redundant)", ["--model", "deepseek-v3", "--gpus", "64", "--gpus-per-node",
                                                            "8", "--redundant", "32", "--time-limit", "50"], 60.0),
    ("Mixtral-8x7B on 8 GPUs (4 per node)", ["--model", "mixtral-8x7b", "--gpus", "8", "--gpus-per-node", "4",
                                             "--time-limit", "1.5"], 2.0),
]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    for label, flags, target in CASES:
        times, d = [], {}
        for _ in range(args.runs):
            t = time.perf_counter()
            r = subprocess.run([sys.executable, "-m", "planner", "experts", "--synthetic", "--json", "--timings", *flags],
                               cwd=ROOT, capture_output=True, text=True, check=True)
            times.append(time.perf_counter() - t)
            d = json.loads(r.stdout)
        s, g, rr, h = d["solver"], d["greedy"], d["round_robin"], d["held_out"]
        gain_in = d["gain_vs_round_robin"]["cross_node_tokens"]
        print(f"{label}: median wall {statistics.median(times):.1f} s over {args.runs} runs (solver "
              f"{s['time_s']:.1f} s, target <= {target:g} s for the solve); max/mean load {s['load_imbalance']:.3f} "
              f"(greedy {g['load_imbalance']:.3f}, round-robin {rr['load_imbalance']:.3f}); cross-node tokens "
              f"{-100 * gain_in:+.1f} % vs round-robin in sample, "
              f"{-100 * h['gain_vs_round_robin']['cross_node_tokens']:+.1f} % held out "
              f"({100 * h['gain_vs_round_robin']['kept_share_of_in_sample_gain']:.0f} % of the gain kept); objective "
              f"{s['objective']:.3f} vs greedy {g['objective']:.3f}; {s['method']} {s['status']}, gap to the "
              f"bound {100 * s['gap']:.1f} % (subproblems {100 * s['subproblem_gap']:.1f} %)", flush=True)


if __name__ == "__main__":
    main()
