"""``planner sweep GRID.yaml``: a grid of training jobs, one CSV / Parquet row per job with its best plan.

Thin: reads the grid (:func:`planner.sweep.load_grid`), runs it (:func:`planner.sweep.run_sweep`: in this
process, a local process pool, or Ray), shows progress over the jobs on stderr and prints a summary (or one
JSON object). The rows are :data:`planner.sweep.COLUMNS`; docs/cli.md has an example grid.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .render import (EXIT_INTERNAL, LazyProgress, fail, print_json, refuse_overwrite, refuse_unused, say, show, table,
                     tabular)


@tabular("sweep", "best")
def sweep(
    ctx: typer.Context,
    grid: Path = typer.Argument(..., metavar="GRID", help="The grid, a YAML file: lists of models, gpus (GPU "
                                "types), counts, seq_lens and objectives, whose product is the jobs, and the "
                                "options every job shares: global_batch or batch_tokens, tokens, deadline, budget, "
                                "dtype, max_memory, price, refine, mbs, recompute, zero (docs/cli.md)."),
    address: Optional[str] = typer.Argument(None, metavar="ADDRESS", show_default="a local Ray runtime",
                                            help="With --ray: the Ray cluster's address (auto, host:6379, "
                                            "ray://host:10001)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", metavar="FILE", show_default="the grid's name with .csv",
                                       help="Output file, .csv or .parquet. Rows are written as jobs finish; a rerun "
                                       "skips the jobs already in it and ends with the same file."),
    workers: Optional[int] = typer.Option(None, "--workers", "-j", min=1, max=4096, metavar="N",
                                          show_default="one per CPU", help="Local processes (1: run in this "
                                          "process); with --ray, the CPUs of a local Ray runtime and the tasks in "
                                          "flight."),
    ray: bool = typer.Option(False, "--ray", help="Run the jobs as Ray tasks, on the cluster at ADDRESS or on a "
                             "local Ray runtime (pip install 'planner\\[ray]'); the rows are the "
                             "same."),
    restart: bool = typer.Option(False, "--restart", help="Discard the rows already in the output and run every "
                                 "job again."),
    show_rows: int = typer.Option(20, "--show", min=0, max=1000, metavar="N", help="Jobs shown in the table of "
                                  "best plans (the first N by job; 0: none). Every row is in the output file."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object (the summary) instead of a table."),
    timings: bool = typer.Option(False, "--timings", help="With --json: include the wall time (left out by "
                                 "default so the same input gives the same bytes)."),
) -> None:
    """Run a grid of training searches (models x GPU types x counts x sequence lengths x objectives): one row
    per job with its best plan, in a CSV or Parquet file."""
    from planner.sweep import load_grid, run_sweep

    refuse_unused(ctx, "without --json", *(() if as_json else ("timings",)))
    refuse_unused(ctx, "with --json (it prints the summary)", *(("show_rows",) if as_json else ()))
    if address is not None and not ray:
        fail(f"ADDRESS {address[:80]!r} given without --ray (write: planner sweep GRID --ray [ADDRESS])")
    g = load_grid(grid)
    target = out if out is not None else grid.with_suffix(".csv")
    refuse_overwrite(target, "--out", {"GRID": grid})
    progress = LazyProgress(quiet=as_json, label="sweep jobs")
    try:
        summary = run_sweep(g, target, workers=workers, ray_address=(address or "local") if ray else None,
                            restart=restart, progress=progress)
    finally:
        progress.close()
    shape = {"models": len(g.models), "gpus": len(g.gpus), "counts": len(g.counts), "seq_lens": len(g.seq_lens),
             "objectives": len(g.objectives)}
    if as_json:
        print_json({"grid": str(grid), "output": summary.output, "format": summary.format,
                    "backend": summary.backend, "workers": summary.workers, "jobs": summary.jobs,
                    "grid_shape": shape, "done": summary.done, "skipped": summary.skipped, "ok": summary.ok,
                    "infeasible": summary.infeasible, "invalid": summary.invalid, "failed": summary.failed,
                    "elapsed_s": summary.elapsed_s}, timings=timings)
    else:
        sizes = " x ".join(f"{n} {k}" for k, n in shape.items())
        t = table(f"{grid.name}: {sizes}", "jobs", "count", right=("count",), key="sweep")
        for label, n in (("in the grid", summary.jobs), ("run now", summary.done),
                         ("finished before (skipped)", summary.skipped), ("with a plan", summary.ok),
                         ("infeasible (no plan fits the limits)", summary.infeasible),
                         ("refused (invalid job)", summary.invalid), ("failed (internal error)", summary.failed)):
            t.add_row(label, f"{n:,}")
        show(t)
        if show_rows:
            _best_plans(summary.output, show_rows)
        how = {"serial": "in this process", "pool": f"on {summary.workers} local processes",
               "ray": "as Ray tasks"}[summary.backend]
        say(f"wrote {summary.output} ({summary.format}, one row per job, sorted by job); ran {how} in "
            f"{summary.elapsed_s:.1f} s", soft_wrap=True)
    if summary.failed:
        fail(f"{summary.failed} job(s) failed with an internal error (status 'error' in {summary.output}); a rerun "
             "runs them again (planner train on one job with PLANNER_DEBUG=1 shows the traceback)", EXIT_INTERNAL)


def _best_plans(path: str, limit: int) -> None:
    """The first ``limit`` rows of the output: each job's best plan (or why it has none)."""
    from planner.sweep import read_rows

    rows = read_rows(path)
    t = table(f"Best plans (first {min(limit, len(rows)):,} of {len(rows):,} jobs; tp.pp.dp, step time, MFU)", "job",
              "model", "GPU", "GPUs", "seq", "objective", "layout", "step s", "MFU", right=("job", "GPUs", "seq",
                                                                                         "step s", "MFU"), key="best")
    for r in rows[:limit]:
        if r["status"] == "ok":
            layout = f"{r['tp']}.{r['pp']}.{r['dp']}" + (f" cp{r['cp']}" if (r.get("cp") or 1) > 1 else "") + \
                (f" ep{r['ep']}" if (r.get("ep") or 1) > 1 else "")
            step, mfu = f"{r['step_time_s']:.3g}", f"{100 * r['mfu']:.1f}%"
        else:
            layout, step, mfu = r["status"], "-", "-"
        t.add_row(str(r["job"]), str(r["model"]), str(r["gpu"]), f"{r['gpus']:,}", f"{r['seq_len']:,}",
                  str(r["objective"]), layout, step, mfu)
    show(t)

