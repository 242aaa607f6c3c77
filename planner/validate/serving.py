"""Predicted vs measured serving runs (``shared/reference/serving/measured_serving.csv``).

The protocol of the reference README: constants are fitted on the
``calibration`` split (``h100_sxm``, ``h200_sxm``) only; the ``report`` split
(Blackwell: ``b200_sxm``, ``gb200``, ``b300_sxm``, ``gb300``) is scored, never
fitted. A row has *complete inputs* unless it is a disaggregated row without
prefill / decode batch sizes and worker counts (those cannot be modelled by
anyone); coverage is counted over complete rows.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Literal

from pydantic import BaseModel

from .serving_rows import estimate_row, read_rows

CALIBRATION_SYSTEMS = ("h100_sxm", "h200_sxm")
REPORT_SYSTEMS = ("b200_sxm", "gb200", "b300_sxm", "gb300")


class Group(BaseModel):
    rows: int
    ttft_mape_pct: float
    tpot_mape_pct: float


class ServingValidation(BaseModel):
    split: str
    rows: int
    complete_rows: int
    modelled_rows: int
    coverage_pct: float  # modelled / complete
    ttft_mape_pct: float
    tpot_mape_pct: float
    by_system: dict[str, Group]
    by_mode: dict[str, Group]
    by_backend: dict[str, Group]
    by_kind: dict[str, Group]  # dense vs moe
    unmodelled_reasons: dict[str, int]


def complete(row: dict[str, str]) -> bool:
    if row.get("mode") != "disagg":
        return True
    return all(row.get(k) for k in ("prefill_batch_size", "prefill_num_workers", "decode_batch_size",
                                    "decode_num_workers"))


def _group(errs: list[tuple[float, float]]) -> Group:
    if not errs:
        return Group(rows=0, ttft_mape_pct=math.nan, tpot_mape_pct=math.nan)
    return Group(rows=len(errs), ttft_mape_pct=100 * sum(a for a, _ in errs) / len(errs),
                 tpot_mape_pct=100 * sum(b for _, b in errs) / len(errs))


def validate_serving(reference_dir: str | Path, split: Literal["calibration", "report"] = "report",
                     model_dir: str | Path | None = None) -> ServingValidation:
    ref = Path(reference_dir)
    path = ref / "serving" / "measured_serving.csv"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found (give the reference folder with --reference)")
    if split not in ("calibration", "report"):
        raise ValueError(f"unknown split {split!r}; choose calibration or report")
    systems = CALIBRATION_SYSTEMS if split == "calibration" else REPORT_SYSTEMS
    rows = [r for r in read_rows(path) if r.get("system") in systems]
    mdir = model_dir if model_dir is not None else ref / "model_configs"
    cache: dict = {}
    groups: dict[str, dict[str, list[tuple[float, float]]]] = {"system": {}, "mode": {}, "backend": {}, "kind": {}}
    all_errs: list[tuple[float, float]] = []
    reasons: dict[str, int] = {}
    n_complete = 0
    for r in rows:
        if not complete(r):
            continue
        n_complete += 1
        res = estimate_row(r, mdir, cache)
        if res.ttft_ms is None or res.estimate is None:
            key = res.reason.split(":")[0][:80]
            reasons[key] = reasons.get(key, 0) + 1
            continue
        err = (abs(res.ttft_ms / float(r["silicon_ttft_ms"]) - 1), abs(res.tpot_ms / float(r["silicon_tpot_ms"]) - 1))
        all_errs.append(err)
        kind = "moe" if res.model is not None and res.model.is_moe else "dense"
        for g, key in (("system", r["system"]), ("mode", r["mode"]), ("backend", r["backend"]), ("kind", kind)):
            groups[g].setdefault(key, []).append(err)
    total = _group(all_errs)
    return ServingValidation(
        split=split, rows=len(rows), complete_rows=n_complete, modelled_rows=len(all_errs),
        coverage_pct=100 * len(all_errs) / n_complete if n_complete else math.nan,
        ttft_mape_pct=total.ttft_mape_pct, tpot_mape_pct=total.tpot_mape_pct,
        by_system={k: _group(v) for k, v in sorted(groups["system"].items())},
        by_mode={k: _group(v) for k, v in sorted(groups["mode"].items())},
        by_backend={k: _group(v) for k, v in sorted(groups["backend"].items())},
        by_kind={k: _group(v) for k, v in sorted(groups["kind"].items())},
        unmodelled_reasons=dict(sorted(reasons.items(), key=lambda kv: -kv[1])),
    )


__all__ = ["CALIBRATION_SYSTEMS", "REPORT_SYSTEMS", "ServingValidation", "complete", "validate_serving"]
