"""Refit ``ZERO3_TENSOR_BW_EFF`` (planner/cost/training.py) on Megatron Table 2.

Data: ``<reference>/training/megatron_2021_training_days.csv``, the three
``zero3`` rows (GPT 175B, DeepSpeed ZeRO-3 without model parallelism on 384,
768 and 1536 A100-80GB, global batch 1536, one micro-batch per step). The
reference README allows calibrating on all training rows.

The model of those runs (``zero3_gather="tensor"``): one collective per
parameter tensor, on the critical path, the weights gathered for forward,
recomputation and backward and the gradients reduce-scattered. Its launch
latencies come from the fitted NCCL constants; only the bandwidth efficiency
is fitted here, by a grid search minimising the squared relative error of the
predicted training days.

Usage: python scripts/fit_zero3.py [REFERENCE_DIR]
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from planner.cost import training  # noqa: E402
from planner.validate import validate_training  # noqa: E402

DEFAULT_REFERENCE = ROOT.parent / "shared" / "reference"


def zero3_errors(reference: Path, eff: float) -> list[float]:
    """Relative errors (%) of the ZeRO-3 rows' training days with efficiency ``eff``."""
    saved = training.ZERO3_TENSOR_BW_EFF
    training.ZERO3_TENSOR_BW_EFF = eff
    training.clear_caches()
    try:
        rows = validate_training(reference).table2
    finally:
        training.ZERO3_TENSOR_BW_EFF = saved
        training.clear_caches()
    return [r.error_pct for r in rows if r.name.startswith("zero3")]


def main() -> None:
    reference = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_REFERENCE
    grid = np.round(np.arange(0.30, 1.0001, 0.01), 2)
    scores = [(float(np.sum(np.square(zero3_errors(reference, e)))), float(e)) for e in grid]
    _, best = min(scores)
    errs = zero3_errors(reference, best)
    print(f"ZERO3_TENSOR_BW_EFF = {best:.2f}  (committed: {training.ZERO3_TENSOR_BW_EFF})")
    print("errors % (384, 768, 1536 GPUs): " + ", ".join(f"{e:+.1f}" for e in errs))
    print("with eff = 1 (no fitted constant): " + ", ".join(f"{e:+.1f}" for e in zero3_errors(reference, 1.0)))


if __name__ == "__main__":
    main()
