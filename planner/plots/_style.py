"""What every plot shares: the lazy matplotlib import, the figure, the one look, safe labels and saving.

Figures are :class:`matplotlib.figure.Figure` objects made directly, never through ``pyplot``: no backend is
selected, no window opens, nothing is kept in pyplot's registry (a notebook that calls a plot a thousand times
keeps no figure alive), and a notebook's own backend is left alone. ``savefig`` renders PNG with Agg and SVG
with matplotlib's SVG writer; both are made byte-reproducible (no date in the metadata, a fixed SVG id salt).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..errors import PlannerError, one_line

#: the formats a plot is saved in (by the path's suffix)
FORMATS = (".png", ".svg")
#: pixels per inch of a saved PNG (a 8 x 4.5 in figure is 800 x 450 px)
DPI = 100
#: the longest label drawn (model / GPU names are user input)
MAX_LABEL_CHARS = 60

#: colours (Okabe & Ito 2008, "Color Universal Design": distinguishable under the common colour-vision deficiencies)
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")
GREY = "#999999"
#: the memory parts, in stacking order, with their colours
MEMORY_COLOURS = {"weights": "#0072B2", "gradients": "#56B4E9", "optimizer": "#009E73", "activations": "#E69F00",
                  "other": "#CC79A7"}
#: pool roles of a GPU mix, with their colours
ROLE_COLOURS = {"aggregated": "#0072B2", "prefill": "#E69F00", "decode": "#009E73"}


class PlotError(PlannerError):
    """A plot that cannot be drawn as asked: matplotlib missing, a file name it cannot be saved as, or a result
    without the data the plot needs."""


def require_matplotlib() -> Any:
    """The ``matplotlib`` module, or one :class:`PlotError` line naming the extra to install."""
    try:
        import matplotlib
        import matplotlib.figure
    except ImportError:
        raise PlotError("plots need matplotlib: pip install 'planner[plot]'") from None
    return matplotlib


def check_path(path: str | os.PathLike | None) -> Path | None:
    """``path`` as a :class:`Path` when it ends in ``.png`` or ``.svg`` (any case); None stays None; anything else
    is one :class:`PlotError` line (checked before any work is done)."""
    if path is None:
        return None
    from ..files import output_path

    return output_path(path, tuple(FORMATS), "plot", PlotError)


def new_figure(width_in: float = 8.0, height_in: float = 4.5, ncols: int = 1) -> tuple[Any, list[Any]]:
    """A figure of ``width_in`` x ``height_in`` inches with ``ncols`` axes side by side (constrained layout)."""
    require_matplotlib()
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width_in, height_in), dpi=DPI, layout="constrained")
    axes = fig.subplots(1, ncols, squeeze=False)[0]
    for ax in axes:
        ax.grid(True, color="#dddddd", linewidth=0.6)
        ax.set_axisbelow(True)
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
    return fig, list(axes)


def finish(fig: Any, path: Path | None) -> Any:
    """Save ``fig`` to ``path`` (already checked by :func:`check_path`) when given; return it.

    Reproducible bytes: PNG and SVG without a date, SVG ids from a fixed salt."""
    if path is None:
        return fig
    import matplotlib

    fmt = path.suffix.lower().lstrip(".")
    if path.is_dir():
        raise PlotError(f"{one_line(str(path))}: is a folder, expected a .{fmt} file name")
    meta = {"Date": None} if fmt == "svg" else {"Software": None}
    try:
        with matplotlib.rc_context({"svg.hashsalt": "planner", "svg.fonttype": "path"}):
            fig.savefig(path, format=fmt, dpi=DPI, metadata=meta)
    except OSError as exc:
        raise PlotError(f"{one_line(str(path))}: cannot write the plot ({exc.strerror or exc})") from None
    return fig


def label(text: object) -> str:
    """A user-given name as plot text: one line (control characters escaped), at most ``MAX_LABEL_CHARS``
    characters, ``$`` escaped (matplotlib would read ``$...$`` as mathematics, and an unbalanced one as an
    error), and never starting with ``_`` (a legend hides such labels)."""
    s = one_line(str(text))
    if len(s) > MAX_LABEL_CHARS:
        s = s[: MAX_LABEL_CHARS - 3] + "..."
    s = s.replace("$", r"\$")
    return " " + s if s.startswith("_") else s


def duration_unit(seconds: list[float]) -> tuple[float, str]:
    """(divisor, unit) that shows the largest of ``seconds`` as a number from about 1 to 1000: s, h or days."""
    top = max(seconds) if seconds else 0.0
    if top >= 3 * 86400:
        return 86400.0, "days"
    if top >= 2 * 3600:
        return 3600.0, "h"
    return 1.0, "s"


def money_unit(usd: list[float]) -> tuple[float, str]:
    """(divisor, unit) for dollar amounts: $, $ thousand or $ million."""
    top = max(usd) if usd else 0.0
    if top >= 3e6:
        return 1e6, "$ million"
    if top >= 3e3:
        return 1e3, "$ thousand"
    return 1.0, "$"


__all__ = [
    "DPI",
    "FORMATS",
    "MEMORY_COLOURS",
    "PALETTE",
    "ROLE_COLOURS",
    "PlotError",
    "check_path",
    "duration_unit",
    "finish",
    "label",
    "money_unit",
    "new_figure",
    "require_matplotlib",
]
