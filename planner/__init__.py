"""planner: an analytical capacity planner and auto-parallelism optimizer for LLMs.

The public API (what a notebook imports)::

    import planner
    m = planner.get_model("llama-3.1-70b")          # built-in name, HF id or config.json path
    g = planner.get_system("h100")                  # built-in name / alias or YAML path
    est = planner.estimate_train("llama-3.1-70b", "h100", gpus=64, tp=8, pp=2,
                                 micro_batch=1, global_batch=512, seq_len=8192)
    est.step_time_s, est.mfu, est.memory.peak_bytes, est.breakdown
    res = planner.search_train("llama-3.1-70b", "h100", 1024, 8192, 1024)   # plan search
    res.best.plan, res.best.mfu, res.alternatives, res.binding
    tr = planner.moe.synthetic_trace(planner.get_model("deepseek-v3"))   # MoE routing
    res = planner.place_experts(tr.halves()[0].stats(), planner.moe.ExpertCluster(64, 8, 256, 32))
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .catalog import SpecError, get_model, get_system, hardware_names, load_model_file, load_system_file, model_names
from .cost.training import PlanError, TrainingEstimate, TrainingPlan, estimate_training
from .specs.hardware import Accelerator, Cluster, Node, System
from .specs.model import ModelSpec, UnsupportedArchitecture, from_hf_config
from .errors import PlannerError
from .plans import GateFailure, PlanCheckError, check

if TYPE_CHECKING:
    from .search.fleet import MixResult
    from .search.train_fleet import FleetTrainResult
    from .search.serving import ServeSearchResult
    from .search.training import TrainSearchResult

from .version import __version__  # noqa: E402

from . import moe  # noqa: E402  (expert placement: traces, baselines, evaluator)


def __dir__() -> list[str]:
    """The public API (``__all__``), not the module's helpers."""
    return sorted(__all__)


def __getattr__(name: str) -> object:
    """The expert placer loads OR-Tools (and with it pandas, ~0.2 s): only when first used."""
    if name in ("place_experts", "SolveResult"):
        from .moe import solver

        return getattr(solver, name)
    if name == "write_report":
        from .report import write_report

        return write_report
    if name == "plot":
        from .plots import plot

        return plot
    raise AttributeError(f"module 'planner' has no attribute {name!r}")


def search_train(model: str | ModelSpec, gpu: str | System, gpus: int, seq_len: int, global_batch: int,
                 **options: object) -> "TrainSearchResult":
    """Search the training plans of a job (:func:`planner.search.training.search_training`).

    ``global_batch`` is in sequences. ``options``: ``objective`` ("time",
    "cost", "deadline"), ``tokens``, ``budget_usd``, ``deadline_s``, ``top``,
    ``dtypes``, ``pareto``, ``refine``, ``max_memory_fraction``,
    ``price_per_gpu_hour``, ``recompute``, ``partial_recompute``,
    ``zero_stages``, ``base``, ``progress``. Returns the best plan, the next
    ones, the binding constraints, the partition solver's status and the best
    plan's document (``plan_document``), every plan passed through the gate
    (:func:`planner.plans.check`; :func:`planner.api.search_train`).
    """
    from .api import search_train as _search_train

    return _search_train(model, gpu, gpus, seq_len, global_batch, **options)


def search_serve(model: str | ModelSpec, gpu: str | System, gpus: int, isl: int, osl: int, ttft_ms: float,
                 tpot_ms: float, rate: float | None = None, **options: object) -> "ServeSearchResult":
    """Search the serving plans of a deployment under TTFT / TPOT SLOs (milliseconds): the best aggregated and
    disaggregated answers, each with its plan document after the gate (:func:`planner.api.search_serve`;
    ``options``: ``max_request_tokens``, ``source``, ``precisions``, ``backend``, ``disagg``, ``objective``)."""
    from .api import search_serve as _search_serve

    return _search_serve(model, gpu, gpus, isl, osl, ttft_ms, tpot_ms, rate, **options)  # type: ignore[arg-type]


def mix(model: str | ModelSpec, gpus: list, ttft_ms: float, tpot_ms: float, **options: object) -> "MixResult":
    """The cheapest GPU-type mix serving a workload within TTFT / TPOT SLOs at the 90th percentile (milliseconds):
    counts per type and pool, the traffic split, $/hour, $ and Wh per million output tokens, kW, the saving
    against the best single type, the solver's status, and the fleet plan document after the gate
    (:func:`planner.api.mix`; ``options``: ``trace``, ``histogram``, ``buckets``, ``rate``, ``prices``,
    ``max_gpus``, ``power_budget_kw``, ``slice_factor``, ``backend``, ``precision``, ``disagg``, ``power_cap``,
    ``time_limit_s``, ``progress``, ``input_edges``, ``output_edges``)."""
    from .api import mix as _mix

    return _mix(model, gpus, ttft_ms, tpot_ms, **options)  # type: ignore[arg-type]


def estimate_serve(model: str | ModelSpec, gpu: str | System, isl: int, osl: int, **options: object):
    """TTFT, TPOT and throughput of one serving worker at a ``concurrency`` (closed loop) or a ``rate`` (open
    loop): :func:`planner.api.estimate_serve` (``options``: ``concurrency`` or ``rate``, ``tp``, ``dp``, ``pp``,
    ``ep``, ``precision``, ``backend``, ``engine_version``). Returns a ``ServingEstimate``."""
    from .api import estimate_serve as _f

    return _f(model, gpu, isl, osl, **options)  # type: ignore[arg-type]


def simulate(model: str | ModelSpec, gpu: str | System, **options: object):
    """Simulate one serving worker on a ``trace`` or Poisson arrivals at a ``rate``: :func:`planner.api.simulate`
    (``options``: ``trace`` or ``rate``, ``isl``, ``osl``, ``requests``, ``seed``, ``tp``, ``dp``, ``ep``,
    ``precision``, ``backend``, ``ttft_ms``, ``tpot_ms``). Returns a ``SimResult``."""
    from .api import simulate as _f

    return _f(model, gpu, **options)  # type: ignore[arg-type]


def search_train_fleet(model: str | ModelSpec, gpu_types: list, gpus: int, seq_len: int, global_batch: int,
                       **options: object) -> "FleetTrainResult":
    """The cheapest of several GPU types for a training job within a deadline / budget: the winner's plan, the
    time / cost / energy frontier over the types and the types that cannot (:func:`planner.api.
    search_train_fleet`; ``options``: ``tokens`` (required), ``objective``, ``deadline_s``, ``budget_usd``,
    ``price_per_gpu_hour``, ``dtypes``, and :func:`search_train`'s)."""
    from .api import search_train_fleet as _f

    return _f(model, gpu_types, gpus, seq_len, global_batch, **options)  # type: ignore[arg-type]


def run_sweep(grid: object, out: str, **options: object):
    """Run a grid of training jobs (:func:`planner.sweep.run_sweep`): ``grid`` is a dict of grid keys
    (``models``, ``gpus``, ``counts``, ``seq_lens``, ``objectives``, ``global_batch`` or ``batch_tokens``, ...;
    ``planner sweep``'s YAML as a dict) or a YAML path; ``out`` a .csv or .parquet file, one row per job,
    resumable. ``options``: ``workers``, ``ray_address``, ``restart``, ``progress``. Returns a ``SweepSummary``;
    :func:`planner.sweep.read_rows` reads the rows back."""
    import os

    from .sweep import SweepGrid, load_grid, parse_grid
    from .sweep import run_sweep as _run

    if isinstance(grid, (str, os.PathLike)):
        grid = load_grid(grid)
    elif not isinstance(grid, SweepGrid):
        grid = parse_grid(grid)
    return _run(grid, out, **options)  # type: ignore[arg-type]


def estimate_train(model: str | ModelSpec, gpu: str | System, gpus: int | None = None, **plan: object) -> TrainingEstimate:
    """Estimate one training plan.

    ``plan`` takes the :class:`TrainingPlan` fields (``tp``, ``pp``, ``vpp``,
    ``cp``, ``ep``, ``etp``, ``micro_batch``, ``global_batch``, ``seq_len``,
    ``recompute``, ``sp``, ``zero``, ``dtype``, ...). ``dp`` defaults to
    ``gpus / (tp * pp * cp)``; a GPU count the degrees do not divide is an error.
    """
    from pydantic import ValidationError

    from .limits import MAX_GPUS, check_int

    m = get_model(model)
    s = get_system(gpu)
    try:
        if gpus is not None:
            gpus = check_int(gpus, "gpus", hi=MAX_GPUS)
        tp, pp, cp = (check_int(plan.get(k, 1), k, hi=MAX_GPUS) for k in ("tp", "pp", "cp"))
    except PlannerError as exc:
        raise PlanError(str(exc)) from None
    if gpus is not None and "dp" not in plan:
        per = tp * pp * cp
        if gpus % per:
            raise PlanError(f"degrees do not multiply to the GPU count: tp {tp} x pp {pp} x cp {cp} = {per} does not divide {gpus} GPUs")
        plan = {**plan, "dp": gpus // per}
    try:
        p = TrainingPlan(**plan)  # type: ignore[arg-type]
    except ValidationError as exc:  # one line naming the field, as every PlannerError
        e = exc.errors()[0]
        where = ".".join(str(x) for x in e.get("loc", ())) or "plan"
        got = e.get("input")
        shown = f" (got {got!r})"[:120] if isinstance(got, (int, float, str)) else ""
        more = f" (and {len(exc.errors()) - 1} more problems)" if len(exc.errors()) > 1 else ""
        raise PlanError(f"invalid plan: {where}: {e.get('msg', 'invalid value')}{shown}{more}") from None
    est = estimate_training(m, s, p, gpus)

    def document() -> dict | None:  # to_dict(): the training plan document, after the gate
        from .api import training_plan_document

        return training_plan_document(est, m, s)

    est._document = document
    return est


__all__ = [
    "Accelerator", "Cluster", "ModelSpec", "Node", "PlanError", "SpecError", "System", "TrainingEstimate",
    "TrainingPlan", "UnsupportedArchitecture", "estimate_train", "estimate_training", "from_hf_config",
    "get_model", "get_system", "hardware_names", "load_model_file", "load_system_file", "model_names",
    "moe", "place_experts", "SolveResult", "PlannerError", "PlanCheckError", "GateFailure", "check", "search_serve",
    "search_train", "mix", "search_train_fleet", "estimate_serve", "simulate", "run_sweep", "write_report", "plot",
]
