"""Training plots: the time-vs-cost front over GPU counts (or over GPU types) and the memory per pipeline stage.

Every number drawn is the result's own: time per step is ``TrainingEstimate.step_time_s``, time to train is
``tokens / tokens_per_s``, cost is ``num_gpus x price per GPU-hour x time`` (the search's own ``cost_of``,
:func:`planner.search.training.search_training`), memory is the estimator's
:class:`~planner.cost.training_plan.MemoryBreakdown` (:mod:`planner.cost.memory`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from ._style import (
    GREY,
    MEMORY_COLOURS,
    PALETTE,
    PlotError,
    check_path,
    duration_unit,
    finish,
    label,
    money_unit,
    new_figure,
)

GB = 1e9  # memory is shown in GB (10^9 bytes), as the CLI's tables


def _train_axes(result: Any) -> tuple[str, str, Any, Any]:
    """(x label, y label, x of an estimate, y of an estimate) for a training search result: time to train and
    cost to train when the search had ``tokens`` (and a price), else step time and $ (or GPU-hours) per million
    tokens."""
    price, tokens = result.price_per_gpu_hour, result.tokens
    if tokens is not None:
        x_of = lambda e: tokens / e.tokens_per_s
        x_label = "time to train"
    else:
        x_of = lambda e: e.step_time_s
        x_label = "step time"
    if price is not None and tokens is not None:
        y_of = lambda e: e.num_gpus * price * tokens / e.tokens_per_s / 3600.0
        y_label = "cost to train"
    elif price is not None:
        y_of = lambda e: e.num_gpus * price / 3600.0 / e.tokens_per_s * 1e6
        y_label = "$ per million tokens"
    else:
        y_of = lambda e: e.num_gpus / e.tokens_per_s * 1e6 / 3600.0
        y_label = "GPU-hours per million tokens (no price)"
    return x_label, y_label, x_of, y_of


def plot_train_pareto(result: Any, path: str | os.PathLike | None = None, *, title: str | None = None) -> Any:
    """Time vs cost of a training search (:func:`planner.search_train`, ``pareto=True``): the Pareto front over
    GPU counts (the fastest plan at each count that no other count beats on both time and cost per token), the
    other plans found, and the chosen plan. For a training fleet (:func:`planner.search_train_fleet`): one point
    per GPU type (its plan's time and cost to train), the Pareto types joined, the cheapest marked.

    Axes: with ``tokens``, time to train (s, h or days) and cost to train ($); without, step time (s) and $ per
    million tokens (GPU-hours per million tokens without a price). Returns the Figure; ``path`` (.png / .svg)
    saves it."""
    p = check_path(path)
    if hasattr(result, "frontier") and hasattr(result, "cheapest"):
        return finish(_fleet_front(result, title), p)
    if not (hasattr(result, "best") and hasattr(result, "alternatives") and hasattr(result, "price_per_gpu_hour")):
        raise PlotError(f"plot_train_pareto draws a training search result (planner.search_train or "
                        f"planner.search_train_fleet), not a {type(result).__name__}")
    x_label, y_label, x_of, y_of = _train_axes(result)
    front = sorted(result.pareto or [], key=x_of)
    others = [e for e in result.alternatives if all(e.plan != f.plan for f in front)]
    xs_all = [x_of(e) for e in [result.best, *front, *others]]
    ys_all = [y_of(e) for e in [result.best, *front, *others]]
    tdiv, tunit = duration_unit(xs_all) if result.tokens is not None else (1.0, "s")
    cdiv, cunit = money_unit(ys_all) if y_label == "cost to train" else (1.0, "")
    fig, (ax,) = new_figure()
    if others:
        ax.scatter([x_of(e) / tdiv for e in others], [y_of(e) / cdiv for e in others], s=22, color=GREY,
                   label="other plans found", zorder=2)
    if front:
        ax.plot([x_of(e) / tdiv for e in front], [y_of(e) / cdiv for e in front], "o-", color=PALETTE[0],
                label="Pareto front over GPU counts", zorder=3)
        for e in front:
            ax.annotate(f"{e.num_gpus} GPUs", (x_of(e) / tdiv, y_of(e) / cdiv), textcoords="offset points",
                        xytext=(6, 5), fontsize=8)
    ax.plot([x_of(result.best) / tdiv], [y_of(result.best) / cdiv], "*", markersize=16, color=PALETTE[3],
            label=f"best ({label(result.objective)}): {result.best.num_gpus} GPUs", zorder=4, linestyle="none")
    if not front:
        ax.text(0.02, 0.02, "no front: search with pareto=True (--pareto)", transform=ax.transAxes, fontsize=8,
                color="#555555")
    ax.set_xlabel(f"{x_label} ({tunit})")
    ax.set_ylabel(y_label + (f" ({cunit})" if cunit else ""))
    b = result.best
    ax.set_title(label(title) if title else f"{label(b.model)} on {label(b.gpu)}: time vs cost", fontsize=11)
    ax.legend(fontsize=8, loc="best")
    return finish(fig, p)


def _fleet_front(result: Any, title: str | None) -> Any:
    """One point per GPU type of a :class:`~planner.search.train_fleet.FleetTrainResult`."""
    pts = list(result.frontier)
    tdiv, tunit = duration_unit([t.time_to_train_s for t in pts])
    cdiv, cunit = money_unit([t.cost_to_train_usd for t in pts])
    fig, (ax,) = new_figure()
    front = sorted((t for t in pts if t.pareto), key=lambda t: t.time_to_train_s)
    rest = [t for t in pts if not t.pareto]
    if front:
        ax.plot([t.time_to_train_s / tdiv for t in front], [t.cost_to_train_usd / cdiv for t in front], "o-",
                color=PALETTE[0], label="Pareto types", zorder=3)
    if rest:
        ax.scatter([t.time_to_train_s / tdiv for t in rest], [t.cost_to_train_usd / cdiv for t in rest], s=40,
                   facecolors="none", edgecolors=PALETTE[0], label="beaten types", zorder=3)
    for t in pts:
        ax.annotate(f"{label(t.gpu)} x {t.num_gpus}", (t.time_to_train_s / tdiv, t.cost_to_train_usd / cdiv),
                    textcoords="offset points", xytext=(6, 5), fontsize=8)
    c = result.cheapest
    ax.plot([c.time_to_train_s / tdiv], [c.cost_to_train_usd / cdiv], "*", markersize=16, color=PALETTE[3],
            label=f"cheapest: {label(c.gpu)} x {c.num_gpus}", zorder=4, linestyle="none")
    if result.deadline_s is not None:
        ax.axvline(result.deadline_s / tdiv, color=PALETTE[3], linestyle="--", linewidth=1, label="deadline")
    if result.budget_usd is not None:
        ax.axhline(result.budget_usd / cdiv, color=PALETTE[1], linestyle="--", linewidth=1, label="budget")
    ax.set_xlabel(f"time to train {result.tokens:.3g} tokens ({tunit})")
    ax.set_ylabel(f"cost to train ({cunit})")
    ax.set_title(label(title) if title else f"{label(c.result.best.model)}: GPU types, time vs cost", fontsize=11)
    ax.legend(fontsize=8, loc="best")
    return fig


def _parts(m: Any) -> dict[str, float]:
    """The stacked parts of a MemoryBreakdown, in GB."""
    return {"weights": m.weights_bytes / GB, "gradients": m.gradients_bytes / GB,
            "optimizer": m.optimizer_bytes / GB, "activations": m.activations_bytes / GB, "other": m.other_bytes / GB}


def plot_memory(estimate: Any, path: str | os.PathLike | None = None, *, stages: Sequence[Any] | None = None,
                usable_fraction: float | None = 0.95, title: str | None = None) -> Any:
    """Memory per GPU of a training plan (:func:`planner.estimate_train`, or a search's ``best``), stacked by kind
    (weights, gradients, optimizer states, activations, other: runtime reserve, logits, buffers), per pipeline
    stage, against the GPU's capacity (solid) and the share of it a search lets a plan use (dashed,
    ``usable_fraction``: the search's ``max_memory_fraction``, 0.95 by default; None: no line).

    The estimate itself carries the breakdown of its most loaded stage (``estimate.memory``) and, when estimated
    with ``per_stage_memory=True``, every stage's peak (``stage_peak_bytes``, drawn grey where the breakdown is
    not known). ``stages``: every stage's breakdown
    (:func:`planner.cost.training.stage_memory`), drawn stacked. A black tick marks each stage's peak: the sum of
    the parts, or less when 16-bit gradients make the fp32 main gradients exist only outside the backward pass
    (:func:`planner.cost.memory.phase_peak_bytes`)."""
    p = check_path(path)
    if not (hasattr(estimate, "memory") and hasattr(estimate, "plan") and hasattr(estimate.memory, "peak_bytes")):
        raise PlotError(f"plot_memory draws a training estimate (planner.estimate_train, a search's best), not a "
                        f"{type(estimate).__name__}")
    if usable_fraction is not None and not (isinstance(usable_fraction, (int, float)) and 0 < usable_fraction <= 1):
        raise PlotError(f"usable_fraction must be in (0, 1], got {usable_fraction!r}")
    mem = estimate.memory
    pp = estimate.plan.pp
    if stages is not None:
        stages = list(stages)
        if len(stages) != pp:
            raise PlotError(f"stages has {len(stages)} breakdowns; the plan has pp = {pp} pipeline stages")
        known = {s: _parts(m) for s, m in enumerate(stages)}
        peaks = [m.peak_bytes / GB for m in stages]
    elif estimate.stage_peak_bytes is not None and len(estimate.stage_peak_bytes) == pp:
        peaks = [b / GB for b in estimate.stage_peak_bytes]
        hot = max(range(pp), key=lambda s: peaks[s])
        known = {hot: _parts(mem)}
    else:
        peaks = [mem.peak_bytes / GB]
        known = {0: _parts(mem)}
    n = len(peaks)
    names = [f"stage {s}" for s in range(n)] if n > 1 or stages is not None or estimate.stage_peak_bytes else \
        ["most loaded stage"]
    fig, (ax,) = new_figure(max(5.0, min(12.0, 3.0 + 0.5 * n)), 4.5)
    xs = list(range(n))
    bottom = [0.0] * n
    for part, colour in MEMORY_COLOURS.items():
        h = [known[s][part] if s in known else 0.0 for s in xs]
        ax.bar(xs, h, bottom=bottom, color=colour, label=part, width=0.7)
        bottom = [b + v for b, v in zip(bottom, h)]
    unknown = [s for s in xs if s not in known]
    if unknown:
        ax.bar(unknown, [peaks[s] for s in unknown], color=GREY, width=0.7, label="peak (breakdown not computed)")
    ax.plot(xs, peaks, "_", color="black", markersize=28, markeredgewidth=2, label="peak", linestyle="none")
    cap = mem.capacity_bytes / GB
    ax.axhline(cap, color="black", linewidth=1.2, label=f"capacity {cap:,.0f} GB")
    if usable_fraction is not None and usable_fraction < 1:
        ax.axhline(cap * usable_fraction, color="black", linewidth=1, linestyle="--",
                   label=f"usable by a search ({100 * usable_fraction:g} %)")
    ax.set_xticks(xs, names, fontsize=8 if n > 8 else 10)
    ax.set_ylabel("memory per GPU (GB, 10^9 bytes)")
    ax.set_ylim(0, max(cap, max(peaks), max(bottom)) * 1.12)
    pl = estimate.plan
    ax.set_title(label(title) if title else
                 f"{label(estimate.model)} on {estimate.num_gpus} x {label(estimate.gpu)}: tp {pl.tp} pp {pl.pp} "
                 f"dp {pl.dp}, {pl.recompute} recompute, ZeRO {pl.zero}", fontsize=10)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return finish(fig, p)


__all__ = ["plot_memory", "plot_train_pareto"]
