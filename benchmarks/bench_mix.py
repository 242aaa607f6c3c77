"""The GPU-mix search (issue 13): the whole ``planner mix`` process for Llama-3.1-8B and Llama-3.1-70B over the
Azure (Splitwise) conversation and coding traces with L4, A10G, L40S, A100, H100 and H200 at catalog prices.

Run: ``python benchmarks/bench_mix.py [REPEATS] [REFERENCE_DIR] [--verify]`` (default 3, ``../shared/reference``).
With ``--verify`` each job runs once more with ``planner mix --verify`` and prints the simulator's SLO
attainment of the capacity model's mix (round 0) and of the verified mix (every pool at >= 90 %).
Prints, per job, the chosen mix, its $/hour against the best single type (the saving), the solver's status and
solve time, and the median wall time of the whole process (target <= 5 s). Each trace is replayed at its own
mean rate and at 20x it (a production-sized fleet); SLOs at the 90th percentile: TTFT 1 s / TPOT 50 ms for 8B,
TTFT 2 s / TPOT 60 ms for 70B.
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
GPUS = "l4,a10g,l40s,a100,h100,h200"
MODELS = {"llama-3.1-8b": ("1s", "50ms"), "llama-3.1-70b": ("2s", "60ms")}
TRACES = {"splitwise_conv": 5.5301, "splitwise_code": 2.5664}  # mean requests/s of each trace
SCALES = (1, 20)


def main() -> None:
    argv = [a for a in sys.argv[1:] if a != "--verify"]
    verify = "--verify" in sys.argv[1:]
    n = int(argv[0]) if argv else 3
    ref = Path(argv[1]) if len(argv) > 1 else ROOT.parent / "shared" / "reference"
    if not (ref / "traces").is_dir():
        raise SystemExit(f"no traces in {ref}: pass the reference folder (../shared/reference)")
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    for model, (ttft, tpot) in MODELS.items():
        for trace, mean_rate in TRACES.items():
            for scale in SCALES:
                args = ["--model", model, "--gpus", GPUS, "--trace", str(ref / "traces" / f"{trace}.csv"),
                        "--rate", f"{mean_rate * scale:.4g}", "--ttft", ttft, "--tpot", tpot, "--json", "--timings"]
                times, out = [], {}
                for _ in range(n):
                    t0 = time.perf_counter()
                    r = subprocess.run([sys.executable, "-m", "planner", "mix", *args], env=env, capture_output=True,
                                       text=True)
                    times.append(time.perf_counter() - t0)
                    if r.returncode != 0:
                        raise SystemExit(f"planner mix failed: {r.stderr.strip()}")
                    out = json.loads(r.stdout)
                best = out["best_single"]
                mix = ", ".join(f"{k} x {g}" for g, k in out["gpus"].items())
                print(f"{model} / {trace} at {mean_rate * scale:.3g} req/s: {mix}; ${out['cost_per_hour_usd']:.2f}/h vs "
                      f"best single {best['gpu']} ${best['cost_per_hour_usd']:.2f}/h (saving "
                      f"{100 * out['saving_vs_best_single']:.1f} %); {out['solver']['status']}, solve "
                      f"{out['solver']['solve_time_s']:.2f} s; whole process median {statistics.median(times):.2f} s "
                      f"over {n} (target <= 5 s)", flush=True)
                if verify:
                    t0 = time.perf_counter()
                    r = subprocess.run([sys.executable, "-m", "planner", "mix", *args, "--verify"], env=env,
                                       capture_output=True, text=True)
                    if r.returncode != 0:
                        raise SystemExit(f"planner mix --verify failed: {r.stderr.strip()}")
                    v = json.loads(r.stdout)
                    rounds = v["verify"]["rounds"]
                    worst = min((p["attainment"] for p in v["verify"]["pools"] if p["attainment"] is not None),
                                default=None)
                    print(f"    verify: capacity-model mix ${rounds[0]['cost_per_hour_usd']:.2f}/h meets the SLOs for "
                          f"{100 * rounds[0]['attainment']:.1f} % of requests in the simulator; verified mix "
                          f"{', '.join(f'{k} x {g}' for g, k in v['gpus'].items())} ${v['cost_per_hour_usd']:.2f}/h "
                          f"after {len(rounds) - 1} round(s): every pool >= 90 %: {v['verify']['ok']} (worst pool "
                          f"{100 * worst:.1f} %); burst factor {v['burst_factor']:.2f}; "
                          f"{time.perf_counter() - t0:.1f} s", flush=True)


if __name__ == "__main__":
    main()
