"""How far can a serving model fitted on H100/H200 rows get on the Blackwell rows? Three
diagnostics on ``serving/measured_serving.csv`` (issue 12). They read the report-only rows
to *measure* the data, never to set a constant: nothing here is written to the planner.

1. GPU-type scaling. For every configuration measured on two systems (every input column
   equal: engine and release, model, precision, layout, isl, osl, concurrency, mode), the
   measured TTFT / TPOT ratio between the systems against the model's. If the model's
   hardware terms are right, the medians agree. B200 and B300 have the same dense FP8 /
   BF16 tensor rate and the same HBM bandwidth (their datasheets differ in memory size and
   FP4), so any model built on those datasheet figures predicts nearly the same for both;
   what their measurements of one configuration disagree by no such model can explain
   (the least it must give up on a pair is ``1 - min / max``, predicting the smaller).

2. Repeats. Rows with every input column equal, including the concurrency recorded in
   ``silicon_data_source``, on one system: the least error any model has on them (one
   prediction per group; the best one is one of the measured values).

3. Ceiling of the model's form. The engine constants of ``planner/cost/serving.py`` fitted
   by ``scripts/fit_serving.py``'s own procedure, but on the report rows themselves, in
   sample: no calibration-only fit of this form can beat it on those rows. Regimes it
   leaves above their target are out of reach of the form (its physics and its named
   waits), whatever the calibration data.

Usage: python scripts/serving_ceiling.py [REFERENCE_DIR]   (default ../shared/reference)
"""

from __future__ import annotations

import collections
import math
import re
import statistics
import sys
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

import fit_serving  # noqa: E402
from planner.cost import serving  # noqa: E402
from planner.validate.serving_rows import estimate_row, read_rows  # noqa: E402

REPORT = ("b200_sxm", "gb200", "b300_sxm", "gb300")
#: (a, b, same dense FP8/BF16 rate and HBM bandwidth on the datasheets)
PAIRS = (("h200_sxm", "b200_sxm", False), ("h100_sxm", "h200_sxm", False), ("b200_sxm", "b300_sxm", True))
_CONC = re.compile(r"silicon_concurrency=(\d+)")


def _input_key(row: dict[str, str], with_system: bool) -> tuple:
    skip = {"id", "silicon_data_source", "silicon_ttft_ms", "silicon_tpot_ms"} | (set() if with_system else {"system"})
    conc = _CONC.findall(row["silicon_data_source"])
    return tuple(v for k, v in row.items() if k not in skip) + (conc[0] if conc else "",)


def _least_group_error(values: list[float]) -> float:
    """min over p of sum |p / m - 1| (convex and piecewise linear in p: the optimum is one of the m)."""
    return min(sum(abs(p / m - 1) for m in values) for p in values)


def scaling(rows: list[dict[str, str]], model_dir: Path) -> None:
    cache: dict = {}
    by: dict[tuple, dict[str, tuple[float, float, float, float]]] = collections.defaultdict(dict)
    for r in rows:
        res = estimate_row(r, model_dir, cache)
        if res.estimate is None:
            continue
        by[_input_key(r, False)][r["system"]] = (float(r["silicon_ttft_ms"]), res.ttft_ms, float(r["silicon_tpot_ms"]),
                                                 res.tpot_ms)
    print("1. GPU-type scaling on configurations measured on both systems (log ratio a / b, medians)")
    for a, b, same in PAIRS:
        pairs = [(v[a], v[b]) for v in by.values() if a in v and b in v]
        if not pairs:
            continue
        med = [statistics.median(math.log(x[i] / y[i]) for x, y in pairs) for i in range(4)]
        slower = sum(1 for x, y in pairs if y[0] > x[0])
        gap_t = statistics.mean(1 - min(x[0], y[0]) / max(x[0], y[0]) for x, y in pairs)
        gap_p = statistics.mean(1 - min(x[2], y[2]) / max(x[2], y[2]) for x, y in pairs)
        print(f"   {a} vs {b}: {len(pairs)} configurations; TTFT measured {med[0]:+.2f} model {med[1]:+.2f}; "
              f"TPOT measured {med[2]:+.2f} model {med[3]:+.2f}; {b} measured slower in TTFT on {slower}"
              + (f"; least error of a datasheet model on them (mean 1 - min/max of the pair): TTFT "
                 f"{100 * gap_t:.1f} %, TPOT {100 * gap_p:.1f} %" if same else ""))


def repeats(rows: list[dict[str, str]]) -> None:
    groups: dict[tuple, list[dict[str, str]]] = collections.defaultdict(list)
    for r in rows:
        groups[_input_key(r, True)].append(r)
    print("2. Repeated configurations: the least error any model has, in MAPE points of each system's rows")
    for system in sorted({r["system"] for r in rows}):
        n = sum(1 for r in rows if r["system"] == system)
        reps = [g for g in groups.values() if g[0]["system"] == system and len(g) > 1]
        t = sum(_least_group_error([float(r["silicon_ttft_ms"]) for r in g]) for g in reps)
        p = sum(_least_group_error([float(r["silicon_tpot_ms"]) for r in g]) for g in reps)
        print(f"   {system}: {sum(len(g) for g in reps)} of {n} rows repeat; TTFT {100 * t / n:.1f}, TPOT {100 * p / n:.1f}")


def ceiling(rows: list[dict[str, str]], model_dir: Path) -> None:
    report = [r for r in rows if r["system"] in REPORT]
    unit = dict(kernel_eff=1.0, moe_eff=1.0, comm_eff=1.0, comm_x_eff=1.0, step_overhead_s=0.0, step_per_request_s=0.0,
                prefill_mix=0.0, ttft_prefill=1.0, ttft_prefill_moe=1.0, ttft_cycle=0.0, ttft_queue=0.0, ttft_admit=0.0,
                ttft_burst=0.0, ttft_overhead_s=0.0, ttft_busy_s=0.0)
    saved, saved_cycle = dict(serving.BACKENDS), dict(serving.RELEASE_CYCLE)
    try:
        for name in serving.BACKENDS:
            serving.BACKENDS[name] = replace(serving.BACKENDS[name], **unit)
        serving._decode_layer_s.cache_clear()
        serving.RELEASE_CYCLE.clear()
        feats = fit_serving.features(report, model_dir)
        for name in list(serving.BACKENDS):
            consts, per_release = fit_serving.fit_backend([f for f in feats if f["backend"] == name])
            serving.BACKENDS[name] = replace(serving.BACKENDS[name], **consts)
            serving.RELEASE_CYCLE.update({(name, rel): v for rel, v in per_release.items()})
        _, modelled, errs = fit_serving.score(report, model_dir)
    finally:
        serving.BACKENDS.clear()
        serving.BACKENDS.update(saved)
        serving.RELEASE_CYCLE.clear()
        serving.RELEASE_CYCLE.update(saved_cycle)
        serving._decode_layer_s.cache_clear()
    print(f"3. Ceiling of the form: constants fitted on the {modelled} report rows themselves (in sample)")
    for key in ("all", "agg", "disagg", *REPORT, "sglang", "trtllm", "vllm"):
        if key in errs:
            n, t, p = errs[key]
            print(f"   {key}: {n} rows, TTFT {t:.1f} %, TPOT {p:.1f} %")


def main() -> None:
    ref = Path(sys.argv[1]) if len(sys.argv) > 1 else fit_serving.DEFAULT_REFERENCE
    path = ref / "serving" / "measured_serving.csv"
    if not path.is_file():
        sys.exit(f"error: no {path}; pass the reference folder")
    rows = read_rows(path)
    model_dir = ref / "model_configs"
    scaling(rows, model_dir)
    repeats(rows)
    ceiling(rows, model_dir)


if __name__ == "__main__":
    main()
