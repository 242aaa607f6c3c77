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

if TYPE_CHECKING:
    from .search.training import TrainSearchResult

__version__ = "0.1.0"

from . import moe  # noqa: E402  (expert placement: traces, baselines, evaluator)
from .moe.solver import SolveResult, place_experts  # noqa: E402


def search_train(model: str | ModelSpec, gpu: str | System, gpus: int, seq_len: int, global_batch: int,
                 **options: object) -> "TrainSearchResult":
    """Search the training plans of a job (:func:`planner.search.training.search_training`).

    ``global_batch`` is in sequences. ``options``: ``objective`` ("time",
    "cost", "deadline"), ``tokens``, ``budget_usd``, ``deadline_s``, ``top``,
    ``dtypes``, ``pareto``, ``refine``, ``max_memory_fraction``,
    ``price_per_gpu_hour``, ``recompute``, ``partial_recompute``,
    ``zero_stages``, ``base``, ``progress``. Returns the best plan, the next
    ones, the binding constraints and the partition solver's status.
    """
    from .search.training import search_training

    return search_training(get_model(model), get_system(gpu), gpus, seq_len, global_batch, **options)  # type: ignore[arg-type]


def estimate_train(model: str | ModelSpec, gpu: str | System, gpus: int | None = None, **plan: object) -> TrainingEstimate:
    """Estimate one training plan.

    ``plan`` takes the :class:`TrainingPlan` fields (``tp``, ``pp``, ``vpp``,
    ``cp``, ``ep``, ``etp``, ``micro_batch``, ``global_batch``, ``seq_len``,
    ``recompute``, ``sp``, ``zero``, ``dtype``, ...). ``dp`` defaults to
    ``gpus / (tp * pp * cp)``; a GPU count the degrees do not divide is an error.
    """
    m = get_model(model)
    s = get_system(gpu)
    tp, pp, cp = (int(plan.get(k, 1) or 1) for k in ("tp", "pp", "cp"))  # type: ignore[arg-type]
    if gpus is not None and "dp" not in plan:
        per = tp * pp * cp
        if gpus <= 0 or gpus % per:
            raise PlanError(f"degrees do not multiply to the GPU count: tp {tp} x pp {pp} x cp {cp} = {per} does not divide {gpus} GPUs")
        plan = {**plan, "dp": gpus // per}
    p = TrainingPlan(**plan)  # type: ignore[arg-type]
    return estimate_training(m, s, p, gpus)


__all__ = [
    "Accelerator", "Cluster", "ModelSpec", "Node", "PlanError", "SpecError", "System", "TrainingEstimate",
    "TrainingPlan", "UnsupportedArchitecture", "estimate_train", "estimate_training", "from_hf_config",
    "get_model", "get_system", "hardware_names", "load_model_file", "load_system_file", "model_names",
    "moe", "place_experts", "SolveResult",
]
