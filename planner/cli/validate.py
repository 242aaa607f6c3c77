"""``planner validate training`` and ``planner validate serving``: predicted vs measured on the reference suites."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Optional

import typer

from .render import Activity, choice, default_reference, fail, print_json, say, show, signed_pct, table, tabular

Split = choice("Split", ("report", "calibration"))

@tabular("table1", "table2", "layouts", "search", "search-free")
def validate_training(
    reference: Optional[Path] = typer.Option(None, "--reference", "-r", help="The reference folder.",
                                             show_default="../shared/reference"),
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
    with Activity(as_json, "replaying the published runs" + (" and searching each job" if search else "")):
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
                                                           "error %"), key="table1")
    for r in result.table1:
        t1.add_row(r.name, str(r.gpus), str(r.tp), str(r.pp), str(r.vpp), str(r.micro_batch), f"{r.published:.0f}",
                   f"{r.predicted:.0f}", signed_pct(r.error_pct))
    show(t1)
    say(f"Table 1 MAPE {result.table1_mape_pct:.1f} %, max |error| {result.table1_max_abs_error_pct:.1f} %")
    say()
    if result.table2:
        t2 = table("Table 2: days to train on 300B tokens", "method / model", "GPUs", "published", "predicted",
                   "error %", right=("GPUs", "published", "predicted", "error %"), key="table2")
        for r in result.table2:
            t2.add_row(r.name, str(r.gpus), f"{r.published:.1f}", f"{r.predicted:.1f}", signed_pct(r.error_pct))
        show(t2)
        say(f"Table 2 MAPE {result.table2_mape_pct:.1f} %, max |error| {result.table2_max_abs_error_pct:.1f} %")
        say()
    for job in result.layouts:
        tl = table(f"Layouts of {job.name} on {job.gpus} A100 (global batch {job.global_batch}, 800 Gb/s IB per "
                   f"node): iteration time", "t", "d", "p", "mbs", "measured ms", "predicted ms", "error %",
                   right=("t", "d", "p", "mbs", "measured ms", "predicted ms", "error %"), key="layouts")
        for r in sorted(job.rows, key=lambda r: r.measured_ms):
            tl.add_row(str(r.tp), str(r.dp), str(r.pp), str(r.micro_batch), f"{r.measured_ms:.0f}",
                       f"{r.predicted_ms:.0f}", signed_pct(r.error_pct))
        show(tl)
        say(f"{job.name}: {len(job.rows)} layouts, MAPE {job.mape_pct:.1f} %, max |error| "
            f"{job.max_abs_error_pct:.1f} %, Spearman {job.spearman:.2f}; the model's pick {job.pick} "
            f"measured {job.regret_pct:.1f} % slower than the measured best {job.measured_best}")
        say()
    if rows is not None:
        t3 = table("Search vs the published plans (same GPUs, batch and 2021 technology), at the published "
                   "micro-batch: the best plan, how much faster, the published plan's rank", "model", "GPUs",
                   "published", "step s", "best", "faster %", "rank", right=("GPUs", "step s", "faster %", "rank"),
                   key="search")
        t4 = table("... with the micro-batch free", "model", "GPUs", "published", "best", "faster %", "rank",
                   right=("GPUs", "faster %", "rank"), key="search-free")
        for r in rows:
            t3.add_row(r.name, str(r.gpus), r.published_plan, f"{r.published_step_s:.2f}", r.best_plan,
                       f"{r.speedup_pct:+.1f}", "-" if r.published_rank is None else str(r.published_rank))
            t4.add_row(r.name, str(r.gpus), r.published_plan, r.free_best_plan, f"{r.free_speedup_pct:+.1f}",
                       "-" if r.free_published_rank is None else str(r.free_published_rank))
        show(t3)
        show(t4)
        say(f"published (t, p) in the top 5 or within 5 % of the best: {sum(r.accepted for r in rows)} of "
            f"{len(rows)} rows at the published micro-batch, {sum(r.free_accepted for r in rows)} with the "
            f"micro-batch free; the best is never slower than the published plan: "
            f"{all(r.best_step_s <= r.published_step_s * (1 + 1e-9) for r in rows)}")


@tabular("groups")
def validate_serving(
    reference: Optional[Path] = typer.Option(None, "--reference", "-r", help="The reference folder.",
                                             show_default="../shared/reference"),
    split: Split = typer.Option(Split("report"), "--split", case_sensitive=False, help="calibration (H100/H200, "
                                "fitted on) or report (Blackwell, never fitted)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of tables."),
) -> None:
    """Predicted vs measured TTFT and TPOT on measured_serving.csv, by system, mode, backend and kind."""
    from planner.validate.serving import validate_serving as run

    ref = reference if reference is not None else default_reference()
    if not ref.is_dir():
        fail(f"reference folder {ref} not found (give it with --reference DIR)")
    with Activity(as_json, "predicting the measured serving runs"):
        v = run(ref, split.value)  # type: ignore[arg-type]
    if as_json:
        print_json(v.model_dump(mode="json"))
        return
    say(f"[bold]{split.value} split[/bold]: {v.rows} rows, {v.complete_rows} with complete inputs, "
        f"{v.modelled_rows} modelled ({v.coverage_pct:.1f} %); TTFT MAPE {v.ttft_mape_pct:.1f} %, "
        f"TPOT MAPE {v.tpot_mape_pct:.1f} %")
    say()
    t = table(None, "group", "rows", "TTFT MAPE %", "TPOT MAPE %", right=("rows", "TTFT MAPE %", "TPOT MAPE %"),
              key="groups")
    for title, groups in (("system", v.by_system), ("mode", v.by_mode), ("backend", v.by_backend),
                          ("kind", v.by_kind)):
        for k, g in groups.items():
            t.add_row(f"{title}: {k}", str(g.rows), pct(g.ttft_mape_pct), pct(g.tpot_mape_pct))
        t.add_section()
    show(t)
    if v.unmodelled_reasons:
        say("not modelled: " + "; ".join(f"{n} x {k}" for k, n in v.unmodelled_reasons.items()))




def pct(x: float) -> str:
    return "-" if not math.isfinite(x) else f"{x:.1f}"


