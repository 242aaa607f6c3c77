"""The fleet capacity model against the simulator, one bucket alone on one worker.

For each (prompt, output) bucket: the requests/s one aggregated worker sustains within the SLOs at the 90th
percentile by :func:`planner.cost.capacity.aggregated_capacity`, then :func:`planner.simulation.simulate` of that
worker on Poisson arrivals at that rate (4,000 requests, seeded): the share of requests within both SLOs (the
capacity model means 90 %) and the simulated p90s.

It shows where the capacity model is optimistic: its TPOT quantile uses the mean slowdown from prefills mixed
into the decode iterations, while a short output lives through a few iterations that, inside a prefill busy
period, each carry a whole prompt. Run: ``python scripts/capacity_vs_simulation.py [MODEL] [GPU]``
(default Llama-3.1-70B on H200, SLOs TTFT 2 s / TPOT 60 ms: the coding trace's jobs of ``benchmarks/bench_mix.py``).
"""

from __future__ import annotations

import sys

import planner
from planner.cost.capacity import aggregated_capacity
from planner.cost.serving import ServingPlan
from planner.simulation import poisson_requests, simulate

BUCKETS = ((35, 10), (150, 10), (660, 10), (641, 112), (2091, 29), (2139, 10), (6129, 10))  # splitwise_code's


def main() -> None:
    model = planner.get_model(sys.argv[1] if len(sys.argv) > 1 else "llama-3.1-70b")
    system = planner.get_system(sys.argv[2] if len(sys.argv) > 2 else "h200")
    ttft_ms, tpot_ms = 2000.0, 60.0
    print(f"{model.name} on {system.name}; SLOs at p90: TTFT {ttft_ms:g} ms, TPOT {tpot_ms:g} ms")
    print(f"{'tp':>3} {'isl':>5} {'osl':>4} {'capacity/s':>10} {'simulated within SLOs':>21} {'TTFT p90':>9} "
          f"{'TPOT p90':>9}")
    for tp in (2, 4):
        plan = ServingPlan(tp=tp, precision="bf16", backend="trtllm")
        for isl, osl in BUCKETS:
            cap = aggregated_capacity(model, system, plan, isl, osl, isl + osl, ttft_ms, tpot_ms)
            if cap.rate_rps <= 0:
                print(f"{tp:>3} {isl:>5} {osl:>4} {'none':>10}  ({cap.reason})")
                continue
            res = simulate(model, system, plan, poisson_requests(cap.rate_rps, 4000, isl, osl, 1), ttft_ms, tpot_ms)
            print(f"{tp:>3} {isl:>5} {osl:>4} {cap.rate_rps:>10.2f} {100 * res.attainment:>20.1f}% "
                  f"{res.ttft_ms['p90']:>9.0f} {res.tpot_ms['p90']:>9.1f}")


if __name__ == "__main__":
    main()
