"""``planner validate training`` and ``planner validate serving``: predicted vs measured on the reference suites."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Optional

import typer

from .render import console, default_reference, fail, print_json, signed_pct, table

def validate_training(
    reference: Optional[Path] = typer.Option(None, "--reference", "-r", help="The reference folder "
                                             "[default: ../shared/reference]."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of tables."),
    search: bool = typer.Option(False, "--search", help="Also search each Table 1 job and compare the planner's "
                                "best plan with the published (t, p) plan."),
) -> None:
    """Predicted vs published Megatron-LM runs (Narayanan et al. 2021, Tables 1 and 2)."""
    from planner.validate import validate_training as run
    from planner.validate import validate_training_search

    ref = reference if reference is not None else default_reference()
    if not ref.is_dir():
        fail(f"reference folder {ref} not found (give it with --reference DIR; it is shared/reference beside "
             f"the checkout)")
    result = run(ref)
    rows = validate_training_search(ref) if search else None
    if as_json:
        out = result.model_dump(mode="json")
        if rows is not None:
            out["search"] = [r.model_dump(mode="json") for r in rows]
        print_json(out)
        return
    t1 = table("Table 1: per-GPU TFLOP/s (weak scaling, A100-80GB)", "model", "GPUs", "t", "p", "vpp", "mbs",
                "published", "predicted", "error %", right=("GPUs", "t", "p", "vpp", "mbs", "published", "predicted",
                                                            "error %"))
    for r in result.table1:
        t1.add_row(r.name, str(r.gpus), str(r.tp), str(r.pp), str(r.vpp), str(r.micro_batch), f"{r.published:.0f}",
                   f"{r.predicted:.0f}", signed_pct(r.error_pct))
    console.print(t1)
    console.print(f"Table 1 MAPE {result.table1_mape_pct:.1f} %, max |error| {result.table1_max_abs_error_pct:.1f} %",
                  highlight=False)
    if result.table2:
        t2 = table("Table 2: days to train on 300B tokens", "method / model", "GPUs", "published", "predicted",
                    "error %", right=("GPUs", "published", "predicted", "error %"))
        for r in result.table2:
            t2.add_row(r.name, str(r.gpus), f"{r.published:.1f}", f"{r.predicted:.1f}", signed_pct(r.error_pct))
        console.print(t2)
        console.print(f"Table 2 MAPE {result.table2_mape_pct:.1f} %, max |error| "
                      f"{result.table2_max_abs_error_pct:.1f} %", highlight=False)
    for job in result.layouts:
        tl = table(f"Layouts of {job.name} on {job.gpus} A100 (global batch {job.global_batch}, 800 Gb/s IB per "
                   f"node): iteration time", "t", "d", "p", "mbs", "measured ms", "predicted ms", "error %",
                   right=("t", "d", "p", "mbs", "measured ms", "predicted ms", "error %"))
        for r in sorted(job.rows, key=lambda r: r.measured_ms):
            tl.add_row(str(r.tp), str(r.dp), str(r.pp), str(r.micro_batch), f"{r.measured_ms:.0f}",
                       f"{r.predicted_ms:.0f}", signed_pct(r.error_pct))
        console.print(tl)
        console.print(f"{job.name}: {len(job.rows)} layouts, MAPE {job.mape_pct:.1f} %, max |error| "
                      f"{job.max_abs_error_pct:.1f} %, Spearman {job.spearman:.2f}; the model's pick {job.pick} "
                      f"measured {job.regret_pct:.1f} % slower than the measured best {job.measured_best}",
                      highlight=False)
    if rows is not None:
        t3 = table("Search vs the published plans (same GPUs, batch and 2021 technology)", "model", "GPUs",
                    "published", "step s", "best at its mbs", "faster %", "rank", "best, any mbs", "faster %",
                    "rank", right=("GPUs", "step s", "faster %", "rank"))
        for r in rows:
            t3.add_row(r.name, str(r.gpus), r.published_plan, f"{r.published_step_s:.2f}", r.best_plan,
                       f"{r.speedup_pct:+.1f}", "-" if r.published_rank is None else str(r.published_rank),
                       r.free_best_plan, f"{r.free_speedup_pct:+.1f}",
                       "-" if r.free_published_rank is None else str(r.free_published_rank))
        console.print(t3)
        console.print(f"published (t, p) in the top 5 or within 5 % of the best: {sum(r.accepted for r in rows)} of "
                      f"{len(rows)} rows at the published micro-batch, {sum(r.free_accepted for r in rows)} with the "
                      f"micro-batch free; the best is never slower than the published plan: "
                      f"{all(r.best_step_s <= r.published_step_s * (1 + 1e-9) for r in rows)}", highlight=False)




def validate_serving(
    reference: Optional[Path] = typer.Option(None, "--reference", "-r", help="The reference folder "
                                             "[default: ../shared/reference]."),
    split: str = typer.Option("report", "--split", help="calibration (H100/H200, fitted on) or report "
                              "(Blackwell, never fitted)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of tables."),
) -> None:
    """Predicted vs measured TTFT and TPOT on measured_serving.csv, by system, mode, backend and kind."""
    from planner.validate.serving import validate_serving as run

    ref = reference if reference is not None else default_reference()
    if not ref.is_dir():
        fail(f"reference folder {ref} not found (give it with --reference DIR)")
    if split not in ("calibration", "report"):
        fail(f"unknown split {split!r}; choose calibration or report")
    v = run(ref, split)  # type: ignore[arg-type]
    if as_json:
        print_json(v.model_dump(mode="json"))
        return
    console.print(f"[bold]{split} split[/bold]: {v.rows} rows, {v.complete_rows} with complete inputs, "
                  f"{v.modelled_rows} modelled ({v.coverage_pct:.1f} %); TTFT MAPE {v.ttft_mape_pct:.1f} %, "
                  f"TPOT MAPE {v.tpot_mape_pct:.1f} %", highlight=False)
    t = table(None, "group", "rows", "TTFT MAPE %", "TPOT MAPE %", right=("rows", "TTFT MAPE %", "TPOT MAPE %"))
    for title, groups in (("system", v.by_system), ("mode", v.by_mode), ("backend", v.by_backend),
                          ("kind", v.by_kind)):
        for k, g in groups.items():
            t.add_row(f"{title}: {k}", str(g.rows), pct(g.ttft_mape_pct), pct(g.tpot_mape_pct))
        t.add_section()
    console.print(t)
    if v.unmodelled_reasons:
        console.print("not modelled: " + "; ".join(f"{n} x {k}" for k, n in v.unmodelled_reasons.items()),
                      highlight=False)




def pct(x: float) -> str:
    return "-" if not math.isfinite(x) else f"{x:.1f}"


