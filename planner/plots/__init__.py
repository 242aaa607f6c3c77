"""Plots of the planner's answers (matplotlib, the optional extra ``pip install 'planner[plot]'``).

Each function takes an answer, returns a :class:`matplotlib.figure.Figure` and, given ``path`` ending in
``.png`` or ``.svg``, saves it there (any other name is one :class:`PlotError` line, before any drawing)::

    import planner
    from planner import plots
    res = planner.search_train("llama-3.1-70b", "h100", 256, 8192, 512, pareto=True, objective="cost")
    plots.plot_train_pareto(res, "front.png")         # time vs cost over GPU counts
    plots.plot_memory(res.best, "memory.svg")         # memory per stage against the capacity

| function | answer | what it draws |
|---|---|---|
| :func:`plot_train_pareto` | :func:`planner.search_train` (``pareto=True``), :func:`planner.search_train_fleet` | time vs cost front over GPU counts / over GPU types |
| :func:`plot_memory` | a :class:`~planner.TrainingEstimate` | memory per pipeline stage by kind against capacity |
| :func:`plot_serving_front` | :func:`planner.search_serve` | tokens/s per GPU vs tokens/s per user, one series per layout |
| :func:`plot_simulation` | :func:`planner.simulation.simulate`, :func:`planner.simulate_fleet.simulate_deployment` | TTFT / TPOT CDFs |
| :func:`plot_expert_load` | :func:`planner.place_experts` (with its routing stats) | tokens per GPU before / after placement |
| :func:`plot_mix` | :func:`planner.mix` | GPUs per type and role; $/hour vs each type alone |

Importing this package does not import matplotlib; each function does, when called.
"""

from __future__ import annotations

import os
from typing import Any

from ._style import PlotError
from .experts import plot_expert_load
from .fleet import plot_mix
from .serving import plot_serving_front
from .simulate import plot_simulation
from .training import plot_memory, plot_train_pareto


def plot(result: Any, path: str | os.PathLike | None = None, **options: Any) -> Any:
    """The default plot of an answer, chosen by what it is (the table in the module docstring); ``options`` go to
    that function (e.g. ``stats=`` and ``cluster=`` for an expert placement)."""
    if hasattr(result, "frontier") or (hasattr(result, "best") and hasattr(result, "price_per_gpu_hour")):
        return plot_train_pareto(result, path, **options)
    if hasattr(result, "memory") and hasattr(result, "step_time_s"):
        return plot_memory(result, path, **options)
    if hasattr(result, "pareto") and hasattr(result, "aggregated"):
        return plot_serving_front(result, path, **options)
    if hasattr(result, "pools") and hasattr(result, "singles"):
        return plot_mix(result, path, **options)
    if hasattr(result, "ttft_ms") and hasattr(result, "attainment"):
        return plot_simulation(result, path, **options)
    if hasattr(getattr(result, "placement", result), "fractions"):
        return plot_expert_load(result, path, **options)
    raise PlotError(f"no plot for a {type(result).__name__}")


__all__ = ["PlotError", "plot", "plot_expert_load", "plot_memory", "plot_mix", "plot_serving_front",
           "plot_simulation", "plot_train_pareto"]
