"""Expert load per GPU before and after placement.

A GPU's load at MoE layer ``l`` is the routed tokens its slots take,
``load_g = sum_e load[l, e] F[l, e, g]`` (``F``: the share of expert ``e``'s tokens on GPU ``g``;
:func:`planner.moe.placement.layer_terms`, the evaluator's own term). The left panel shows it per GPU at one
layer (by default the layer where the baseline is most imbalanced), the right panel the imbalance
``max_g load_g / mean_g load_g`` of every layer, for the baseline (round robin: contiguous blocks, no replicas)
and the placement.
"""

from __future__ import annotations

import os
from typing import Any

from ._style import GREY, PALETTE, PlotError, check_path, finish, label, new_figure


def gpu_loads(stats: Any, placement: Any) -> Any:
    """``[L, G]`` routed tokens per GPU and MoE layer of ``placement`` on ``stats``
    (:func:`planner.moe.placement.layer_terms`)."""
    from ..moe.placement import layer_terms

    if placement.num_layers != stats.num_layers or placement.num_experts != stats.num_experts:
        raise PlotError(f"the placement has {placement.num_layers} layers of {placement.num_experts} experts; the "
                        f"routing statistics {stats.num_layers} layers of {stats.num_experts}")
    return layer_terms(stats.load, placement.fractions())[0]


def plot_expert_load(result: Any, path: str | os.PathLike | None = None, *, stats: Any = None, cluster: Any = None,
                     baseline: Any = None, layer: int | None = None, title: str | None = None) -> Any:
    """Tokens per GPU before and after placement (module docstring). ``result``: a
    :class:`~planner.moe.solver.SolveResult` (:func:`planner.place_experts`) or a
    :class:`~planner.moe.placement.Placement`; ``stats``: the routing statistics it is judged on (the fitted
    trace, or a held-out one); ``cluster``: the :class:`~planner.moe.placement.ExpertCluster` (for the round-robin
    baseline); ``baseline``: another placement to compare with instead (e.g. :func:`planner.moe.greedy`);
    ``layer``: the MoE layer of the left panel. Returns the Figure; ``path`` saves it."""
    p = check_path(path)
    placement = getattr(result, "placement", result)
    if not (hasattr(placement, "fractions") and hasattr(placement, "slots")):
        raise PlotError(f"plot_expert_load draws an expert placement (planner.place_experts), not a "
                        f"{type(result).__name__}")
    if stats is None or not hasattr(stats, "load"):
        raise PlotError("plot_expert_load needs the routing statistics the placement is judged on: stats=...")
    if baseline is None:
        if cluster is None:
            raise PlotError("plot_expert_load needs the cluster (cluster=...) for the round-robin baseline, or a "
                            "baseline placement (baseline=...)")
        from ..moe.placement import round_robin

        baseline = round_robin(stats, cluster)
    base_name = label(baseline.meta.get("method", "baseline")).replace("_", " ")
    after = gpu_loads(stats, placement)
    before = gpu_loads(stats, baseline)
    n_layers, gpus = after.shape
    mean_b, mean_a = before.mean(axis=1), after.mean(axis=1)
    imb_b = before.max(axis=1) / (mean_b + (mean_b == 0))
    imb_a = after.max(axis=1) / (mean_a + (mean_a == 0))
    if layer is None:
        layer = int(imb_b.argmax())
    elif not (isinstance(layer, int) and not isinstance(layer, bool) and 0 <= layer < n_layers):
        raise PlotError(f"layer must be a MoE layer index from 0 to {n_layers - 1}, got {layer!r}")
    fig, (ax, ax2) = new_figure(11.0, 4.2, ncols=2)
    xs = list(range(gpus))
    w = 0.4
    ax.bar([x - w / 2 for x in xs], before[layer].tolist(), width=w, color=GREY, label=base_name)
    ax.bar([x + w / 2 for x in xs], after[layer].tolist(), width=w, color=PALETTE[0], label="placed")
    ax.axhline(float(mean_a[layer]), color="black", linestyle="--", linewidth=1,
               label=f"mean {float(mean_a[layer]):,.0f}")
    ax.set_xlabel("GPU")
    ax.set_ylabel("routed tokens (token-expert assignments)")
    ax.set_title(f"MoE layer {layer}: max / mean {imb_b[layer]:.2f} ({base_name}) -> {imb_a[layer]:.2f}",
                 fontsize=10)
    if gpus <= 32:
        ax.set_xticks(xs)
    ax.tick_params(axis="x", labelsize=7)
    ax.legend(fontsize=7, loc="lower right")
    ls = list(range(n_layers))
    ax2.plot(ls, imb_b.tolist(), "o-", color=GREY, markersize=3, label=f"{base_name} (mean {imb_b.mean():.2f})")
    ax2.plot(ls, imb_a.tolist(), "o-", color=PALETTE[0], markersize=3, label=f"placed (mean {imb_a.mean():.2f})")
    ax2.axhline(1.0, color="black", linewidth=0.8)
    ax2.set_xlabel("MoE layer")
    ax2.set_ylabel("max / mean GPU load")
    ax2.set_ylim(bottom=0.9)
    ax2.set_title("load imbalance per layer", fontsize=10)
    ax2.legend(fontsize=7, loc="upper right")
    model = getattr(stats, "model", None)
    fig.suptitle(label(title) if title else f"{label(model) + ': ' if model else ''}expert load on {gpus} GPUs, "
                 f"{stats.num_experts} experts, {stats.tokens:,} tokens", fontsize=11)
    return finish(fig, p)


__all__ = ["gpu_loads", "plot_expert_load"]
