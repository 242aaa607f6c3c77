"""``--plot FILE`` and ``--report FILE.html``: an answer's figure (:mod:`planner.plots`) and its self-contained HTML
report (:mod:`planner.report`), written beside the command's usual output.

The paths are checked before any work (a figure ends .png or .svg, a report .html or .htm, and neither may be one
of the command's input files), so a long search never ends in a refused file name. A line on stderr says what was
written (nothing under ``--json``, whose stdout stays one JSON object)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .errors import fail, refuse_overwrite

PLOT_SUFFIXES = (".png", ".svg")
REPORT_SUFFIXES = (".html", ".htm")


def check_artifacts(plot: Path | None, report: Path | None, inputs: dict[str, Any] | None = None) -> None:
    """The ``--plot`` / ``--report`` paths are usable: the right suffix, not an input, a directory that exists."""
    for path, flag, suffixes in ((plot, "--plot", PLOT_SUFFIXES), (report, "--report", REPORT_SUFFIXES)):
        if path is None:
            continue
        if path.suffix.lower() not in suffixes:
            fail(f"{flag} {path}: the file name must end {' or '.join(suffixes)}")
        parent = path.parent if str(path.parent) else Path(".")
        if not parent.is_dir():
            fail(f"{flag} {path}: no directory {parent}")
        if path.exists() and path.is_dir():
            fail(f"{flag} {path} is a directory")
        refuse_overwrite(path, flag, inputs or {})
    if plot is not None and report is not None and plot.resolve() == report.resolve():
        fail("--plot and --report name the same file")


def write_artifacts(result: Any, plot: Path | None, report: Path | None, *, quiet: bool, title: str | None = None,
                    report_only: dict[str, Any] | None = None, **context: Any) -> None:
    """Draw ``result`` to ``plot`` and write its report to ``report`` (``context``: what the answer alone does not
    hold, e.g. ``stages=``, ``stats=`` / ``cluster=``, ``ttft_slo_ms=``; ``report_only``: more of it for the
    report alone, e.g. ``verify=``)."""
    if plot is not None:
        from planner import plots

        fig = plots.plot(result, plot, **context)
        try:
            import matplotlib.pyplot as plt

            plt.close(fig)
        except ImportError:  # pragma: no cover - plots needed matplotlib already
            pass
        if not quiet:
            import typer

            typer.echo(f"wrote {plot}", err=True)
    if report is not None:
        from planner.report import write_report

        write_report(result, report, title, **context, **(report_only or {}))
        if not quiet:
            import typer

            typer.echo(f"wrote {report}", err=True)


__all__ = ["PLOT_SUFFIXES", "REPORT_SUFFIXES", "check_artifacts", "write_artifacts"]
