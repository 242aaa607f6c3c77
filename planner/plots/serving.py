"""The serving front: output tokens/s per GPU against tokens/s per user, one series per worker layout.

The points are the search's own Pareto front (:func:`planner.search.serving.search_serving`: the best aggregated
layouts over the concurrencies meeting the SLOs, none beaten on both axes); tokens/s per user is ``1 / TPOT``
(the speed a user reads at), tokens/s per GPU the worker's output throughput over its GPUs
(:class:`~planner.cost.serving.ServingEstimate`). Throughput is the cost side (GPUs per token), tokens/s per
user the latency side: moving right along the front trades throughput for speed.
"""

from __future__ import annotations

import os
from typing import Any

from ._style import PALETTE, PlotError, check_path, finish, label, new_figure

#: tokens/s per GPU spanning more than this factor over the front are drawn on a log axis
LOG_RATIO = 30.0


def layout_label(plan: Any) -> str:
    """A worker layout in a few characters: ``tp4 fp8``, ``tp2 dp4 ep8 fp8``, ``tp8 pp2 bf16``."""
    parts = [f"tp{plan.tp}"]
    if plan.dp > 1:
        parts.append(f"dp{plan.dp}")
    if plan.pp > 1:
        parts.append(f"pp{plan.pp}")
    if plan.ep is not None and plan.ep > 1:
        parts.append(f"ep{plan.ep}")
    parts.append(str(plan.precision))
    return " ".join(parts)


def plot_serving_front(result: Any, path: str | os.PathLike | None = None, *, title: str | None = None) -> Any:
    """The serving search's front (:func:`planner.search_serve` -> ``pareto``): tokens/s per GPU vs tokens/s per
    user, one series per worker layout (its points in order of concurrency, each point labelled with it at the
    ends of the series), the chosen aggregated answer and, when the search found one, the disaggregated answer
    (one prefill + decode group's tokens/s per GPU and per user). Returns the Figure; ``path`` saves it."""
    p = check_path(path)
    if not (hasattr(result, "pareto") and hasattr(result, "aggregated") and hasattr(result, "disaggregated")):
        raise PlotError(f"plot_serving_front draws a serving search result (planner.search_serve), not a "
                        f"{type(result).__name__}")
    series: dict[str, list[Any]] = {}
    for e in result.pareto:
        series.setdefault(layout_label(e.plan), []).append(e)
    fig, (ax,) = new_figure()
    for i, (name, pts) in enumerate(series.items()):
        pts = sorted(pts, key=lambda e: e.tokens_per_s_per_user)
        colour = PALETTE[i % len(PALETTE)]
        ax.plot([e.tokens_per_s_per_user for e in pts], [e.tokens_per_s_per_gpu for e in pts], "o-", color=colour,
                label=label(name), markersize=5)
        for e in (pts[0], pts[-1]) if len(pts) > 1 else (pts[0],):
            ax.annotate(f"c={e.concurrency}", (e.tokens_per_s_per_user, e.tokens_per_s_per_gpu),
                        textcoords="offset points", xytext=(4, 4), fontsize=7, color=colour)
    agg = result.aggregated
    if agg is not None:
        e = agg.estimate
        ax.plot([e.tokens_per_s_per_user], [e.tokens_per_s_per_gpu], "*", markersize=16, color=PALETTE[3],
                linestyle="none", label=f"aggregated answer: {label(layout_label(e.plan))} at c={e.concurrency}",
                zorder=5)
    dis = result.disaggregated
    if dis is not None:
        ax.plot([dis.tokens_per_s_per_user], [dis.tokens_per_s_per_gpu], "D", markersize=9, color=PALETTE[4],
                linestyle="none", zorder=5,
                label=f"disaggregated answer: {dis.prefill_workers} prefill ({label(layout_label(dis.prefill_plan))})"
                      f" + {dis.decode_workers} decode ({label(layout_label(dis.decode.plan))})")
    ax.set_xlabel("output tokens/s per user (1 / TPOT)")
    ax.set_ylabel("output tokens/s per GPU")
    ys = [e.tokens_per_s_per_gpu for e in result.pareto if e.tokens_per_s_per_gpu > 0]
    if ys and max(ys) > LOG_RATIO * min(ys):  # layouts decades apart: a log axis shows every series
        ax.set_yscale("log")
    else:
        ax.set_ylim(bottom=0)
    ax.set_xlim(left=0)
    first = result.pareto[0] if result.pareto else (agg.estimate if agg is not None else dis.decode if dis else None)
    if title:
        ax.set_title(label(title), fontsize=11)
    elif first is not None:
        ax.set_title(f"{label(first.model)} on {label(first.gpu)}: isl {first.isl}, osl {first.osl}", fontsize=11)
    ax.legend(fontsize=7, loc="best")
    return finish(fig, p)


__all__ = ["layout_label", "plot_serving_front"]
