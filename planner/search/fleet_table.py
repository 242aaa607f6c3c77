"""The GPU mix from Mélange's own input: a capacity table measured (profiled) elsewhere.

The JSON object Mélange's solver reads (``melange/config/example.json`` in tyler-griggs/melange-release)::

    {"gpu_info": {"A10G": {"cost": 1.01, "tputs": [[2, 1], [5, 2]]}, ...},   # $/hour; max requests/s per bucket
     "workload_distribution": [[0.2, 0.1], [0.5, 0.2]],                     # share of requests per bucket
     "total_request_rate": 30,                                               # requests/s
     "slice_factor": 4}

Buckets are the cells of the matrices (rows: input-length ranges, columns: output-length ranges); a ``tputs``
cell of 0 means the GPU cannot serve that bucket within the SLO. The answer is the program of
:mod:`planner.search.fleet_ilp` with one single-GPU unit per type (Mélange's formulation), plus the best single
type and the saving against it. Optional: ``"max"`` per GPU (instances available), the same as ``--max``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from ..limits import MAX_RATE
from .fleet import MixError, SingleType
from .fleet_ilp import MixInfeasible, Unit, solve_mix

MAX_TABLE_TYPES = 64
MAX_TABLE_BUCKETS = 400


class TableResult(BaseModel):
    gpus: dict[str, int] = Field(description="instances of each GPU type")
    cost_per_hour_usd: float
    assignment: dict[str, dict[str, int]] = Field(description="bucket 'i,j' -> slices per GPU type")
    best_single: SingleType | None
    saving_vs_best_single: float | None
    singles: list[SingleType]
    rate_rps: float
    slice_factor: int
    solver: dict[str, Any]


def _matrix(value: Any, what: str, shape: tuple[int, int] | None = None) -> list[list[float]]:
    if not isinstance(value, list) or not value or not all(isinstance(r, list) and r for r in value):
        raise MixError(f"{what} must be a non-empty 2D list of numbers")
    rows = [[x for x in r] for r in value]
    if len({len(r) for r in rows}) != 1:
        raise MixError(f"{what}: its rows have different lengths ({', '.join(str(len(r)) for r in rows)})")
    if shape is not None and (len(rows), len(rows[0])) != shape:
        raise MixError(f"{what} is {len(rows)} x {len(rows[0])}; the workload_distribution is {shape[0]} x {shape[1]}")
    for i, r in enumerate(rows):
        for j, x in enumerate(r):
            if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x) or x < 0:
                raise MixError(f"{what}[{i}][{j}] must be a finite number >= 0, got {x!r}"[:200])
    if len(rows) * len(rows[0]) > MAX_TABLE_BUCKETS:
        raise MixError(f"{what}: {len(rows) * len(rows[0])} buckets; at most {MAX_TABLE_BUCKETS}")
    return [[float(x) for x in r] for r in rows]


def parse_table(data: Any, where: str = "capacity table") -> tuple[dict[str, dict], list[list[float]], float, int]:
    """``(gpu_info, workload_distribution, total_request_rate, slice_factor)`` of a Mélange input, checked."""
    if not isinstance(data, dict):
        raise MixError(f"{where}: a JSON object with gpu_info, workload_distribution, total_request_rate, slice_factor")
    missing = [k for k in ("gpu_info", "workload_distribution", "total_request_rate") if k not in data]
    if missing:
        raise MixError(f"{where}: missing {', '.join(missing)}")
    unknown = sorted(set(data) - {"gpu_info", "workload_distribution", "total_request_rate", "slice_factor"})
    if unknown:
        raise MixError(f"{where}: unknown key(s) {', '.join(repr(k) for k in unknown)}"[:200])
    dist = _matrix(data["workload_distribution"], f"{where}: workload_distribution")
    total = sum(map(sum, dist))
    if abs(total - 1.0) > 1e-3:
        raise MixError(f"{where}: workload_distribution sums to {total:.6g}; it is the share of requests per bucket "
                       f"and must sum to 1")
    rate = data["total_request_rate"]
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not (math.isfinite(rate) and 0 < rate <= MAX_RATE):
        raise MixError(f"{where}: total_request_rate must be a positive number of requests/s up to {MAX_RATE:g}, "
                       f"got {rate!r}"[:200])
    sf = data.get("slice_factor", 1)
    if isinstance(sf, bool) or not isinstance(sf, int) or not 1 <= sf <= 64:
        raise MixError(f"{where}: slice_factor must be a whole number in 1..64, got {sf!r}"[:200])
    info = data["gpu_info"]
    if not isinstance(info, dict) or not info:
        raise MixError(f"{where}: gpu_info must map GPU names to {{cost, tputs}}")
    if len(info) > MAX_TABLE_TYPES:
        raise MixError(f"{where}: {len(info)} GPU types; at most {MAX_TABLE_TYPES}")
    shape = (len(dist), len(dist[0]))
    out = {}
    for name, g in info.items():
        if not isinstance(name, str) or not name.strip() or len(name) > 100 or not name.isprintable():
            raise MixError(f"{where}: gpu_info: a GPU name must be a printable string, got {name!r}"[:200])
        if not isinstance(g, dict) or "cost" not in g or "tputs" not in g:
            raise MixError(f"{where}: gpu_info[{name!r}] needs cost ($/hour) and tputs"[:200])
        extra = sorted(set(g) - {"cost", "tputs", "max"})
        if extra:
            raise MixError(f"{where}: gpu_info[{name!r}]: unknown key(s) {', '.join(map(repr, extra))}"[:200])
        cost = g["cost"]
        if isinstance(cost, bool) or not isinstance(cost, (int, float)) or not (math.isfinite(cost) and cost > 0):
            raise MixError(f"{where}: gpu_info[{name!r}].cost must be a positive number of $/hour, got {cost!r}"[:200])
        mx = g.get("max")
        if mx is not None and (isinstance(mx, bool) or not isinstance(mx, int) or mx < 0):
            raise MixError(f"{where}: gpu_info[{name!r}].max must be a whole number >= 0, got {mx!r}"[:200])
        out[name] = {"cost": float(cost), "tputs": _matrix(g["tputs"], f"{where}: gpu_info[{name!r}].tputs", shape),
                     "max": mx}
    return out, dist, float(rate), sf


def solve_table(data: Any, where: str = "capacity table", max_gpus: dict[str, int] | None = None,
                slice_factor: int | None = None, time_limit_s: float = 10.0) -> TableResult:
    """The cheapest mix for a Mélange capacity table (module docstring); ``max_gpus`` adds to / overrides the
    table's ``max``; ``slice_factor`` overrides the table's."""
    info, dist, rate, sf = parse_table(data, where)
    sf = slice_factor or sf
    names = list(info)
    limits = {n: g["max"] for n, g in info.items() if g["max"] is not None}
    for n, v in (max_gpus or {}).items():
        if n not in info:
            raise MixError(f"--max names {n!r}; the table's GPU types are {', '.join(names)}"[:300])
        limits[n] = v
    cells = [(i, j) for i in range(len(dist)) for j in range(len(dist[0]))]
    loads = [dist[i][j] * rate for i, j in cells]
    units = [Unit(gpu=n, gpus=1, cost_per_hour=info[n]["cost"]) for n in names]
    cap = [[info[n]["tputs"][i][j] for i, j in cells] for n in names]
    for b, (i, j) in enumerate(cells):
        if loads[b] > 0 and all(cap[u][b] <= 0 for u in range(len(units))):
            raise MixError(f"{where}: bucket [{i}][{j}] ({100 * dist[i][j]:.3g} % of requests) has no GPU type with a "
                           f"throughput above 0 for it")
    try:
        sol = solve_mix(units, loads, cap, sf, limits or None, None, time_limit_s)
    except MixInfeasible as exc:
        raise MixError(f"{where}: {exc}") from None
    singles = []
    for u, n in enumerate(names):
        try:
            one = solve_mix([units[u]], loads, [cap[u]], sf, limits or None, None, time_limit_s)
            singles.append(SingleType(gpu=n, cost_per_hour_usd=one.cost_per_hour, gpus=one.counts[0]))
        except MixInfeasible as exc:
            singles.append(SingleType(gpu=n, cost_per_hour_usd=None, reason=str(exc)))
    feasible = [x for x in singles if x.cost_per_hour_usd is not None]
    best = min(feasible, key=lambda x: x.cost_per_hour_usd) if feasible else None  # type: ignore[arg-type,return-value]
    assignment = {f"{i},{j}": {names[u]: sol.slices[b][u] for u in range(len(names)) if sol.slices[b][u]}
                  for b, (i, j) in enumerate(cells) if loads[b] > 0}
    return TableResult(
        gpus={n: c for n, c in zip(names, sol.counts)}, cost_per_hour_usd=sol.cost_per_hour, assignment=assignment,
        best_single=best, saving_vs_best_single=(1 - sol.cost_per_hour / best.cost_per_hour_usd
                                                 if best and best.cost_per_hour_usd else None),
        singles=singles, rate_rps=rate, slice_factor=sf,
        solver={"name": "CBC (pulp)", "status": sol.status, "gap": sol.gap, "solve_time_s": sol.solve_time_s,
                "variables": sol.variables, "constraints": sol.constraints})


def solve_table_file(path: str | Path, **kw: Any) -> TableResult:
    """:func:`solve_table` on a JSON file (read through :func:`planner.files.load_json`: bounded size and depth)."""
    from ..files import FileInputError, load_json

    try:
        data = load_json(path, "a Mélange capacity table (JSON)")
    except FileInputError as exc:
        raise MixError(str(exc)) from None
    return solve_table(data, where=str(path), **kw)


__all__ = ["TableResult", "parse_table", "solve_table", "solve_table_file"]
