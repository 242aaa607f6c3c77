"""The GPU mix: GPUs per type and pool role, and the mix's $/hour against each type alone.

Numbers are the :class:`~planner.search.fleet.MixResult`'s: a pool's GPUs are ``replicas x GPUs per worker``
(``MixPool.gpus``), a pool's $/hour ``GPUs x price``; each single type's $/hour is the same program restricted to
that type (``singles``; None when that type alone cannot serve the workload), the best of them
``best_single``, and the saving ``1 - mix / best single``.
"""

from __future__ import annotations

import os
from typing import Any

from ._style import (
    GREY,
    PALETTE,
    ROLE_COLOURS,
    PlotError,
    check_path,
    finish,
    label,
    new_figure,
)


def _gpus(n: int) -> str:
    return f"{n:g} GPU" + ("" if n == 1 else "s")


def gpus_by_role(result: Any) -> tuple[list[str], dict[str, list[int]]]:
    """(GPU types offered, role -> GPUs of that role per type) of a mix."""
    types = list(result.gpus_offered)
    for p in result.pools:  # a pool on a type not in the list (never, but draw it rather than drop it)
        if p.gpu not in types:
            types.append(p.gpu)
    out = {r: [0] * len(types) for r in ROLE_COLOURS}
    for p in result.pools:
        out.setdefault(p.role, [0] * len(types))[types.index(p.gpu)] += p.gpus
    return types, out


def plot_mix(result: Any, path: str | os.PathLike | None = None, *, title: str | None = None) -> Any:
    """A GPU mix (:func:`planner.mix`): left, GPUs per type stacked by pool role (aggregated, prefill, decode);
    right, $/hour of the mix beside each GPU type alone (the best single type marked; a type that cannot serve
    the workload alone is named as such). Returns the Figure; ``path`` saves it."""
    p = check_path(path)
    if not (hasattr(result, "pools") and hasattr(result, "singles") and hasattr(result, "gpus_offered")):
        raise PlotError(f"plot_mix draws a GPU mix (planner.mix), not a {type(result).__name__}")
    types, roles = gpus_by_role(result)
    fig, (ax, ax2) = new_figure(11.0, 4.2, ncols=2)
    xs = list(range(len(types)))
    bottom = [0] * len(types)
    for role, counts in roles.items():
        if not any(counts):
            continue
        ax.bar(xs, counts, bottom=bottom, color=ROLE_COLOURS.get(role, GREY), label=role, width=0.6)
        bottom = [b + c for b, c in zip(bottom, counts)]
    for x, total in zip(xs, bottom):
        if total:
            ax.annotate(f"{total}", (x, total), textcoords="offset points", xytext=(0, 3), ha="center", fontsize=8)
    ax.set_xticks(xs, [label(t) for t in types], fontsize=8, rotation=20 if len(types) > 4 else 0)
    from matplotlib.ticker import MaxNLocator

    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("GPUs")
    ax.set_ylim(0, max(bottom + [1]) * 1.3)
    ax.set_title(f"the mix: {_gpus(sum(bottom))}, ${result.cost_per_hour_usd:,.2f}/hour", fontsize=10)
    ax.legend(fontsize=8, loc="upper center", ncols=3)

    names = ["mix"] + [label(s.gpu) + " alone" for s in result.singles]
    costs = [result.cost_per_hour_usd] + [s.cost_per_hour_usd for s in result.singles]
    best = result.best_single.gpu if result.best_single is not None else None
    colours = [PALETTE[0]] + [PALETTE[1] if s.gpu == best else GREY for s in result.singles]
    ys = list(range(len(names)))
    ax2.barh(ys, [c if c is not None else 0.0 for c in costs], color=colours, height=0.6)
    top = max([c for c in costs if c is not None] + [1e-9])
    for y, c, s in zip(ys, costs, [None] + list(result.singles)):
        text = f"${c:,.2f}/h" + (f" ({_gpus(s.gpus)})" if s is not None and s.gpus else "") if c is not None \
            else "cannot serve alone"
        ax2.annotate(text, (c or 0.0, y), textcoords="offset points", xytext=(4, -3), fontsize=8)
    ax2.set_yticks(ys, names, fontsize=8)
    ax2.invert_yaxis()
    ax2.set_xlim(0, top * 1.45)
    ax2.set_xlabel("$ per hour")
    saving = result.saving_vs_best_single
    ax2.set_title(f"vs one type: saves {100 * saving:.1f} % against {label(best)}" if saving is not None and best
                  else "vs one type: no single type serves the workload", fontsize=10)
    fig.suptitle(label(title) if title else
                 f"{label(result.model)}: {result.rate_rps:,.3g} requests/s, TTFT <= {result.ttft_ms:g} ms, "
                 f"TPOT <= {result.tpot_ms:g} ms (p{100 * result.quantile:g})", fontsize=11)
    return finish(fig, p)


__all__ = ["gpus_by_role", "plot_mix"]
