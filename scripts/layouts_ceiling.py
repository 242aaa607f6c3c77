"""How well can *any* model rank the measured layouts? Two model-free checks on
``training/megatron_a100_layouts.csv`` (issue 11).

1. Consistency bounds. Within one (t, d, p) family only the micro-batch b changes, and
   with 1F1B the iteration is ``T(b) = (m_b + p - 1) f(b) + K``: m_b = global batch /
   (d b) micro-batches, f(b) the time of one pipeline slot, K >= 0 what does not depend
   on b (data-parallel reduction, optimizer). Whatever the hardware, f cannot shrink when
   the micro-batch grows (more work), and f(b)/b cannot grow (bigger GEMMs are no less
   efficient, fixed costs are shared; only memory pressure could break this, and no
   layout here comes near 80 GB). Hence for b < b', with n = m + p - 1 slots::

       min(1, n_b b / (n_b' b'))  <=  T(b) / T(b')  <=  n_b / n_b'

   A measured pair outside these bounds cannot be reproduced by any model of that
   shape; the script lists each such pair and by how much it is out.

2. The least error the broken bounds force: the iteration times closest to the measured
   ones (least mean |log ratio|, a linear program) that obey every bound; its MAPE and
   largest error say how much any 1F1B model must give up.

3. Ceiling. Fit, per family and in-sample, ``T(b) = n_b (c b + o)`` (two free constants
   per family, 24 for the 47 rows of the 39.1B job: far more freedom than the planner
   may use, which must predict from the model, hardware and plan alone). Its MAPE and
   Spearman are an optimistic bound for any model with the 1F1B slot structure.

Usage: python scripts/layouts_ceiling.py [REFERENCE_DIR]   (default ../shared/reference)
"""

from __future__ import annotations

import csv
import math
import sys
from itertools import combinations
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from planner.validate.training import spearman  # noqa: E402

DEFAULT_REFERENCE = ROOT.parent / "shared" / "reference"


def families(rows: list[dict[str, str]]) -> dict[tuple[str, int, int, int], list[tuple[int, int, float]]]:
    """(job, t, d, p) -> [(micro-batch, slots m + p - 1, measured ms)] sorted by micro-batch."""
    out: dict[tuple[str, int, int, int], list[tuple[int, int, float]]] = {}
    for r in rows:
        t, d, p, b = (int(r[k]) for k in ("tp", "dp", "pp", "micro_batch"))
        m = int(r["global_batch"]) // (d * b)
        out.setdefault((r["params_b"], t, d, p), []).append((b, m + p - 1, float(r["iteration_time_ms"])))
    return {k: sorted(v) for k, v in out.items()}


def violations(fams) -> list[tuple[str, str, float, float, float]]:
    """(job, pair, measured ratio, violated bound, % out of bounds) for every pair outside the bounds."""
    out = []
    for (job, t, d, p), pts in fams.items():
        for (b1, n1, y1), (b2, n2, y2) in combinations(pts, 2):
            ratio, lo, hi = y1 / y2, min(1.0, n1 * b1 / (n2 * b2)), n1 / n2
            label = f"t{t} d{d} p{p}: b{b1} / b{b2}"
            if ratio < lo:
                out.append((job, label, ratio, lo, 100 * (lo / ratio - 1)))
            elif ratio > hi:
                out.append((job, label, ratio, hi, 100 * (ratio / hi - 1)))
    return out


def ceiling(fams, job: str) -> tuple[float, float, int]:
    """In-sample per-family fit T = n (c b + o), c, o >= 0: (MAPE %, Spearman, free constants)."""
    meas, pred, k = [], [], 0
    for (j, *_), pts in fams.items():
        if j != job:
            continue
        b = np.array([x[0] for x in pts], float)
        n = np.array([x[1] for x in pts], float)
        y = np.array([x[2] for x in pts])
        X = np.stack([n * b, n], 1)
        if len(pts) >= 3:
            coef, *_ = np.linalg.lstsq(X / y[:, None], np.ones_like(y), rcond=None)  # relative least squares
            fit = X @ np.maximum(coef, 0.0)
            k += 2
        else:  # one or two rows: reproduced exactly (as many constants as rows)
            fit, k = y.copy(), k + len(pts)
        meas += list(y)
        pred += list(fit)
    err = [abs(q / y - 1) for q, y in zip(pred, meas)]
    return 100 * float(np.mean(err)), spearman(pred, meas), k


def least_forced_error(fams, job: str) -> tuple[float, float]:
    """(MAPE %, max error %) of the bound-respecting times nearest the measured ones (LP in log space)."""
    import pulp  # only this check solves an LP

    prob = pulp.LpProblem("nearest_consistent", pulp.LpMinimize)
    x, e, y = {}, {}, {}
    for key, pts in fams.items():
        if key[0] != job:
            continue
        for b, _, t in pts:
            k = (key, b)
            x[k], e[k], y[k] = pulp.LpVariable(f"x{len(x)}"), pulp.LpVariable(f"e{len(e)}", lowBound=0), math.log(t)
            prob += e[k] >= x[k] - y[k]
            prob += e[k] >= y[k] - x[k]
        for (b1, n1, _), (b2, n2, _) in combinations(pts, 2):
            prob += x[key, b1] - x[key, b2] >= math.log(min(1.0, n1 * b1 / (n2 * b2)))
            prob += x[key, b1] - x[key, b2] <= math.log(n1 / n2)
    prob += pulp.lpSum(e.values())
    prob.solve(pulp.PULP_CBC_CMD(msg=0))
    err = [abs(math.exp(x[k].value() - y[k]) - 1) for k in x]
    return 100 * sum(err) / len(err), 100 * max(err)


def main(argv: list[str]) -> int:
    ref = Path(argv[1]) if len(argv) > 1 else DEFAULT_REFERENCE
    path = ref / "training" / "megatron_a100_layouts.csv"
    if not path.is_file():
        print(f"error: {path} not found (give the reference folder)", file=sys.stderr)
        return 2
    with open(path, newline="") as f:
        fams = families(list(csv.DictReader(f)))
    bad = violations(fams)
    print("Pairs of one (t, d, p) family outside the bounds any 1F1B model obeys:")
    for job, label, ratio, bound, out in sorted(bad, key=lambda x: -x[4]):
        print(f"  {job}B {label:24s} measured ratio {ratio:.3f}, bound {bound:.3f}: {out:.1f} % out")
    for job in sorted({k[0] for k in fams}, key=float):
        mape, rho, k = ceiling(fams, job)
        n = sum(len(v) for key, v in fams.items() if key[0] == job)
        forced, worst = least_forced_error(fams, job)
        print(f"{job}B: {n} layouts, {sum(1 for b in bad if b[0] == job)} pairs out of bounds (the nearest times "
              f"within them: MAPE {forced:.1f} %, one row {worst:.0f} % off); per-family in-sample fit ({k} constants): "
              f"MAPE {mape:.1f} %, Spearman {rho:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
