"""Simulated TTFT and TPOT distributions: empirical CDFs of a worker's simulation, percentile points of a fleet's.

With the per-request times (:func:`planner.simulation.simulate` with ``per_request=True``) each panel is the
empirical CDF: the sorted samples ``x_(1) <= ... <= x_(n)`` at heights ``i / n`` (the fraction of requests at or
below each), so the result's p50 / p90 / p99 (numpy's linear-interpolated percentiles of the same samples) sit on
it. Without them (a plain :class:`~planner.simulation.SimResult`, or a
:class:`~planner.simulate_fleet.DeploymentResult` whose pools keep only percentiles) the known points of each
CDF are drawn: (p50, 0.5), (p90, 0.9), (p99, 0.99), one series per pool and one for all requests.
"""

from __future__ import annotations

import math
import os
from typing import Any

from ._style import GREY, PALETTE, PlotError, check_path, finish, label, new_figure

#: the most points a CDF is drawn with (more requests are drawn at this many evenly spaced quantiles)
MAX_CDF_POINTS = 4000
LEVELS = (("p50", 0.5), ("p90", 0.9), ("p99", 0.99))


def cdf_points(samples: list[float]) -> tuple[list[float], list[float]]:
    """(x, F(x)) of the empirical CDF: every sorted sample at ``i / n``; above ``MAX_CDF_POINTS`` samples, the
    order statistics at ``MAX_CDF_POINTS`` evenly spaced ranks (``i = ceil(k n / m)``, exact sample values)."""
    xs = sorted(float(v) for v in samples if math.isfinite(v))
    n = len(xs)
    if n <= MAX_CDF_POINTS:
        return xs, [(i + 1) / n for i in range(n)]
    ranks = [math.ceil((k + 1) * n / MAX_CDF_POINTS) for k in range(MAX_CDF_POINTS)]
    return [xs[r - 1] for r in ranks], [r / n for r in ranks]


def _slo(ax: Any, value: float | None, name: str) -> None:
    if value is not None and math.isfinite(value):
        ax.axvline(value, color=PALETTE[3], linestyle="--", linewidth=1, label=f"{name} SLO {value:g} ms")


def plot_simulation(result: Any, path: str | os.PathLike | None = None, *, ttft_slo_ms: float | None = None,
                    tpot_slo_ms: float | None = None, title: str | None = None) -> Any:
    """TTFT and TPOT distributions of a simulation, side by side (module docstring): a worker's
    (:func:`planner.simulation.simulate`, with ``per_request=True`` for the whole CDF) or a deployment's
    (:func:`planner.simulate_fleet.simulate_deployment`: per pool and overall). ``ttft_slo_ms`` /
    ``tpot_slo_ms`` draw the SLOs. Returns the Figure; ``path`` saves it."""
    p = check_path(path)
    if not (hasattr(result, "ttft_ms") and hasattr(result, "tpot_ms") and hasattr(result, "attainment")):
        raise PlotError(f"plot_simulation draws a simulation result (planner.simulate / planner.simulation.simulate, simulate_deployment), not a "
                        f"{type(result).__name__}")
    fig, axes = new_figure(10.0, 4.2, ncols=2)
    pools = getattr(result, "pools", None)
    for ax, metric, slo in ((axes[0], "ttft", ttft_slo_ms), (axes[1], "tpot", tpot_slo_ms)):
        samples = getattr(result, f"{metric}_ms_per_request", None)
        overall = getattr(result, f"{metric}_ms")
        if samples:
            xs, ys = cdf_points(samples)
            ax.step(xs, ys, where="post", color=PALETTE[0], label=f"{len(samples):,} requests")
            ax.plot([overall[k] for k, _ in LEVELS], [q for _, q in LEVELS], "o", color="black", markersize=4,
                    label="p50 / p90 / p99", linestyle="none")
        else:
            if pools:
                for i, pool in enumerate(pools):
                    d = getattr(pool, f"{metric}_ms")
                    if not d:
                        continue
                    ax.plot([d[k] for k, _ in LEVELS], [q for _, q in LEVELS], "o:", markersize=4,
                            color=PALETTE[(i + 1) % len(PALETTE)],
                            label=f"{label(pool.name)} ({pool.role}, {pool.requests:,} requests)")
            ax.plot([overall[k] for k, _ in LEVELS], [q for _, q in LEVELS], "s:", color="black" if pools else
                    PALETTE[0], markersize=5, label=f"all {result.requests:,} requests (p50 / p90 / p99)")
        ax.axvline(overall["mean"], color=GREY, linestyle=":", linewidth=1, label=f"mean {overall['mean']:,.1f} ms")
        _slo(ax, slo, metric.upper())
        ax.set_xlabel(f"{metric.upper()} (ms)")
        ax.set_ylabel("fraction of requests at or below")
        ax.set_ylim(0, 1.02)
        ax.set_xlim(left=0)
        ax.legend(fontsize=7, loc="lower right")
    head = label(title) if title else (
        f"{result.requests:,} requests at {result.rate:.3g}/s: {100 * result.attainment:.1f} % meet both SLOs"
        + (f" (router {label(result.router)})" if hasattr(result, "router") else ""))
    fig.suptitle(head, fontsize=11)
    return finish(fig, p)


__all__ = ["cdf_points", "plot_simulation"]
