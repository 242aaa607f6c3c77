"""``planner estimate train`` and ``planner train`` (plan search).

Thin: parses flags, calls :func:`planner.estimate_train` / :func:`planner.search_train`, renders tables or
one JSON object, or prints the chosen plan as launcher input (``--export``). The plan document printed or
exported is the one :func:`planner.search_train` passed through the gate. ``planner export`` of a saved
document is :mod:`.plans`.
"""

from __future__ import annotations

import math
from enum import Enum
from pathlib import Path
from typing import Any, Optional

import typer

import planner
from planner import TrainingPlan
from planner.export import EXPORTERS, export
from planner.search.train_fleet import MAX_GPU_TYPES, FleetTrainResult, search_training_fleet
from planner.search.training import TrainSearchResult

from .render import (LazyProgress, check_artifacts, choice, duration, fail, gb, given, parse_amount, parse_time,
                     print_json, refuse_unused, say, show, si, table, tabular, write_artifacts)
from planner.cost.power import energy_mwh
from planner.cost.training_plan import training_warnings
from planner.limits import (MAX_BATCH, MAX_DEADLINE_S, MAX_GPUS, MAX_LAYERS, MAX_POSITIONS, MAX_TOKENS, MAX_TOP,
                            MAX_USD, check_int, check_number)

def _default(field: str) -> Any:
    """The plan's own default, so the CLI never disagrees with TrainingPlan."""
    return TrainingPlan.model_fields[field].default


Recompute = Enum("Recompute", {v: v for v in ("none", "selective", "full")}, type=str)  # type: ignore[misc]
Dtype = Enum("Dtype", {v: v for v in ("bf16", "fp16", "fp8")}, type=str)  # type: ignore[misc]
Attention = Enum("Attention", {v: v for v in ("flash", "unfused")}, type=str)  # type: ignore[misc]
Zero3Gather = Enum("Zero3Gather", {v: v for v in ("layer", "tensor")}, type=str)  # type: ignore[misc]

#: How the FLOP/s the output reports are counted (the JSON's ``flop_counting``; docs/cli.md says the same).
FLOP_COUNTING = {
    "mfu": "model FLOPs (PaLM, Chowdhery et al. 2022, app. B: 6 x matmul weights + attention, no causal discount; "
           "as the Llama 3 paper counts MFU) per GPU-second over the dtype's dense peak",
    "model_tflops_per_gpu": "model FLOPs per GPU-second",
    "megatron_tflops_per_gpu": "Megatron-LM's 'TFLOP/s per GPU' (Narayanan et al. 2021, Eq. 3): model FLOPs plus "
                               "full recomputation's extra forward (96 vs 72 B s l h^2 for a GPT); selective "
                               "recomputation is not counted",
    "hardware_tflops_per_gpu": "FLOPs executed per GPU-second incl. all recomputation (full: the layers' forward "
                               "again; selective: the attention cores again)",
    "hfu": "hardware FLOPs utilization (Korthikanti et al. 2022): hardware FLOP/s over the dtype's dense peak",
}


def _power_w(est: planner.TrainingEstimate, tdp_w: float) -> float:
    """Watts of the job's GPUs, each at its TDP (:func:`planner.cost.power.training_power_w`: the Llama 3 model
    card's convention, an upper bound)."""
    return tdp_w * est.num_gpus


def _energy_mwh(est: planner.TrainingEstimate, tokens: float, tdp_w: float) -> float:
    """Megawatt-hours to train ``tokens``: power x time to train (:func:`planner.cost.power.energy_mwh`)."""
    return energy_mwh(_power_w(est, tdp_w), est.time_to_train_s(tokens))


def _train_json(est: planner.TrainingEstimate, tokens: float, price: float | None, tdp_w: float) -> dict[str, Any]:
    out = est.model_dump(mode="json")
    out["memory"]["headroom_bytes"] = est.memory.headroom_bytes
    out["tokens"] = tokens
    out["time_to_train_s"] = est.time_to_train_s(tokens)
    out["price_per_gpu_hour_usd"] = price
    out["cost_to_train_usd"] = est.cost_to_train_usd(tokens, price) if price is not None else None
    out["power_kw"] = _power_w(est, tdp_w) / 1e3
    out["energy_to_train_mwh"] = _energy_mwh(est, tokens, tdp_w)
    out["power_convention"] = POWER_CONVENTION
    out["flop_counting"] = FLOP_COUNTING
    return out


#: How the power and energy the output reports are counted (the JSON's ``power_convention``).
POWER_CONVENTION = ("every GPU at its TDP for the whole run (Llama 3 model card: 'peak power capacity per GPU "
                    "device'), an upper bound; energy to train = power x time to train")


def _warn(warnings: list[str]) -> None:
    """Warnings on stderr (table mode): they inform, never fail the command."""
    for w in warnings:
        typer.echo(f"warning: {w}", err=True)


def _render_train(est: planner.TrainingEstimate, tokens: float, price: float | None, tdp_w: float) -> None:
    p = est.plan
    degrees = f"tp {p.tp} x pp {p.pp} x cp {p.cp} x dp {p.dp}" + (f", vpp {p.vpp}" if p.vpp > 1 else "")
    if p.ep > 1:
        degrees += f", ep {p.ep}, expert tp {p.expert_tp}"
    say(f"[bold]{est.model}[/bold] on [bold]{est.num_gpus} x {est.gpu}[/bold]: {degrees}; "
        f"micro-batch {p.micro_batch}, global batch {p.global_batch} ({p.num_microbatches} micro-batches), "
        f"seq {p.seq_len}, {p.dtype}, recompute {p.recompute}, sp {'on' if p.sp else 'off'}, ZeRO {p.zero}")
    say()
    s = table("Summary", "metric", "value", right=("value",), key="summary")
    s.add_row("step time", f"{est.step_time_s:.3f} s")
    s.add_row("tokens / s", f"{est.tokens_per_s:,.0f}")
    s.add_row("MFU (model FLOPs, PaLM / Llama 3)", f"{100 * est.mfu:.1f} %")
    s.add_row("model TFLOP/s per GPU", f"{est.model_tflops_per_gpu:.1f}")
    s.add_row("Megatron-LM TFLOP/s per GPU (Eq. 3)", f"{est.megatron_tflops_per_gpu:.1f}")
    s.add_row("hardware TFLOP/s per GPU (incl. recompute)", f"{est.hardware_tflops_per_gpu:.1f}")
    s.add_row("HFU (hardware FLOPs)", f"{100 * est.hfu:.1f} %")
    mem = est.memory
    fits = "[green]yes[/green]" if est.fits else "[red]NO[/red]"
    s.add_row("fits in memory", f"{fits} ({gb(mem.peak_bytes)} of {gb(mem.capacity_bytes)} GB)")
    s.add_row(f"time to train {si(tokens)} tokens", duration(est.time_to_train_s(tokens)))
    if price is not None:
        s.add_row(f"cost to train {si(tokens)} tokens", f"${est.cost_to_train_usd(tokens, price):,.0f} "
                                                        f"(at ${price:.2f}/GPU-h)")
    else:
        s.add_row(f"cost to train {si(tokens)} tokens", "- (no price in the GPU spec)")
    _power_rows(s, est, tokens, tdp_w)
    show(s)

    m = table("Memory per GPU (most loaded stage)", "kind", "GB", "% of capacity", right=("GB", "% of capacity"),
              key="memory")
    for label, v in (("weights", mem.weights_bytes), ("gradients", mem.gradients_bytes),
                     ("optimizer", mem.optimizer_bytes), ("activations", mem.activations_bytes),
                     ("other (runtime, logits, buffers)", mem.other_bytes)):
        m.add_row(label, gb(v), f"{100 * v / mem.capacity_bytes:.1f}")
    m.add_section()
    m.add_row("[bold]peak[/bold]", gb(mem.peak_bytes), f"{100 * mem.peak_bytes / mem.capacity_bytes:.1f}")
    m.add_row("capacity", gb(mem.capacity_bytes), "100.0")
    m.add_row("headroom", gb(mem.headroom_bytes), f"{100 * mem.headroom_bytes / mem.capacity_bytes:.1f}")
    show(m)

    b = table("Step breakdown", "component", "seconds", "% of step", right=("seconds", "% of step"), key="breakdown")
    step = est.step_time_s
    notes = {k: v for k, v in est.breakdown.items() if k.endswith("_total")}
    for k, v in est.breakdown.items():
        if k not in notes:
            b.add_row(k, f"{v:.3f}", f"{100 * v / step:.1f}")
    b.add_section()
    b.add_row("[bold]step[/bold]", f"{step:.3f}", "100.0")
    for k, v in notes.items():
        b.add_row(f"[dim]{k} (before overlap)[/dim]", f"[dim]{v:.3f}[/dim]", "")
    show(b)
    say("[dim]assumptions: " + "; ".join(est.assumptions) + "[/dim]")


@tabular("summary", "memory", "breakdown")
def estimate_train(
    model: str = typer.Option(..., "--model", "-m", help="Built-in name, Hugging Face id, or path to a config.json."),
    gpu: str = typer.Option(..., "--gpu", "-g", help="Built-in system name / alias, or path to a hardware YAML."),
    gpus: int = typer.Option(..., "--gpus", "-n", min=1, max=MAX_GPUS, help="Total number of GPUs."),
    tp: int = typer.Option(_default("tp"), "--tp", min=1, max=MAX_GPUS, help="Tensor parallel size."),
    pp: int = typer.Option(_default("pp"), "--pp", min=1, max=MAX_GPUS, help="Pipeline parallel size."),
    vpp: int = typer.Option(_default("vpp"), "--vpp", min=1, max=MAX_GPUS, help="Virtual pipeline stages (model "
                            "chunks) per rank."),
    cp: int = typer.Option(_default("cp"), "--cp", min=1, max=MAX_GPUS, help="Context parallel size."),
    ep: int = typer.Option(_default("ep"), "--ep", min=1, max=MAX_GPUS, help="Expert parallel size."),
    etp: Optional[int] = typer.Option(None, "--etp", min=1, max=MAX_GPUS, help="Expert tensor parallel size.",
                                      show_default="tp if ep is 1, else 1"),
    mbs: int = typer.Option(_default("micro_batch"), "--mbs", min=1, max=MAX_BATCH, help="Micro-batch size "
                            "(sequences)."),
    gbs: int = typer.Option(..., "--gbs", min=1, max=MAX_BATCH, help="Global batch size (sequences per step)."),
    seq: int = typer.Option(..., "--seq", min=1, max=MAX_POSITIONS, help="Sequence length (tokens)."),
    recompute: Recompute = typer.Option(Recompute(_default("recompute")), "--recompute", help="Activation recomputation."),
    sp: bool = typer.Option(_default("sp"), "--sp/--no-sp", help="Sequence parallelism (with tp > 1)."),
    zero: int = typer.Option(_default("zero"), "--zero", min=0, max=3, help="ZeRO stage (1 = Megatron distributed "
                                                                             "optimizer)."),
    dtype: Dtype = typer.Option(Dtype(_default("dtype")), "--dtype", help="Compute dtype."),
    attention: Attention = typer.Option(Attention(_default("attention")), "--attention", help="Attention kernel: "
                                        "flash (FlashAttention) or unfused (Megatron-LM 2021-2022: QK^T, softmax, "
                                        "dropout and AV as separate kernels, s x s scores kept)."),
    overlap_grad_reduce: bool = typer.Option(_default("overlap_grad_reduce"),
                                             "--overlap-grad-reduce/--no-overlap-grad-reduce",
                                             help="Overlap the data-parallel gradient reduction with the last "
                                             "micro-batch's backward (Megatron's bucketed --overlap-grad-reduce)."),
    async_tp_allreduce: bool = typer.Option(_default("async_tp_allreduce"),
                                            "--async-tp-allreduce/--no-async-tp-allreduce",
                                            help="Without --sp: overlap each backward tensor-parallel all-reduce "
                                            "with the weight gradients of the layers it feeds (Megatron-LM "
                                            "2022-2024 default; 2021 runs had it off)."),
    grad_reduce_in_fp32: bool = typer.Option(_default("grad_reduce_in_fp32"),
                                             "--grad-reduce-in-fp32/--no-grad-reduce-in-fp32",
                                             help="Keep and reduce fp32 main gradients (Megatron's default with "
                                             "bf16); --no-: 16-bit gradients (Megatron 2021 with fp16)."),
    zero3_gather: Zero3Gather = typer.Option(Zero3Gather(_default("zero3_gather")), "--zero3-gather",
                                             help="With --zero 3: layer (one prefetched all-gather per layer, "
                                             "FSDP2) or tensor (one per parameter tensor, on the critical path, "
                                             "DeepSpeed 2021)."),
    layers_per_chunk: Optional[str] = typer.Option(None, "--layers-per-chunk", help="Layers of each model chunk "
                                                   "in order, pp x vpp numbers summing to the model's layers, e.g. "
                                                   "10,12,12,10.", show_default="as even as possible"),
    recompute_per_stage: Optional[str] = typer.Option(None, "--recompute-per-stage", help="With --recompute "
                                                      "full: layers recomputed in each pipeline stage, pp numbers, "
                                                      "e.g. 3,2,0,0.", show_default="all"),
    tokens: str = typer.Option("1T", "--tokens", help="Tokens to train, for the time and cost to train (e.g. 15T, "
                               "2.5e12; k, M, B, T = 1e3 ... 1e12)."),
    plot: Optional[Path] = typer.Option(None, "--plot", help="Also draw the memory per pipeline stage to this file (.png or .svg; "
                                        "needs planner[plot])."),
    report: Optional[Path] = typer.Option(None, "--report", help="Also write a self-contained HTML report "
                                          "(tables and plots) to this file (.html)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of tables."),
) -> None:
    """Estimate step time, MFU, memory and cost of one training plan (Megatron-LM semantics)."""
    check_artifacts(plot, report)
    n_tokens = parse_amount(tokens, "--tokens", MAX_TOKENS)
    extra: dict[str, Any] = {}
    if layers_per_chunk is not None:
        extra["layers_per_chunk"] = _int_list(layers_per_chunk, "--layers-per-chunk", hi=MAX_LAYERS)
    if recompute_per_stage is not None:
        extra["recompute_per_stage"] = _int_list(recompute_per_stage, "--recompute-per-stage", hi=MAX_LAYERS)
    est = planner.estimate_train(
        model, gpu, gpus=gpus, tp=tp, pp=pp, vpp=vpp, cp=cp, ep=ep, etp=etp, micro_batch=mbs, global_batch=gbs,
        seq_len=seq, recompute=recompute.value, sp=sp, zero=zero, dtype=dtype.value, attention=attention.value,
        overlap_grad_reduce=overlap_grad_reduce, async_tp_allreduce=async_tp_allreduce,
        grad_reduce_in_fp32=grad_reduce_in_fp32,
        zero3_gather=zero3_gather.value, **extra,
    )
    system = planner.get_system(gpu)
    acc = system.accelerator
    price = acc.price_per_hour_usd
    warnings = training_warnings(est, n_tokens)
    if plot is not None or report is not None:
        from planner.cost.training import stage_memory

        write_artifacts(est, plot, report, quiet=as_json, title=f"{est.model} on {est.num_gpus} x {est.gpu}",
                        stages=stage_memory(planner.get_model(model), system, est.plan))
    if as_json:
        from planner.api import training_plan_document

        # the plan as a document (after the gate) that `planner check` / `planner export` read; null if it does not fit
        print_json({**_train_json(est, n_tokens, price, acc.tdp_w), "warnings": warnings,
                    "plan_document": training_plan_document(est, model, gpu)})
    else:
        _render_train(est, n_tokens, price, acc.tdp_w)
        _warn(warnings)



Objective = choice("Objective", ("time", "cost", "deadline"))
Target = choice("Target", tuple(EXPORTERS))
SearchDtype = choice("SearchDtype", ("bf16", "fp8", "auto"))


def _parse_amount(text: str | None, what: str, hi: float = MAX_USD) -> float | None:
    """``2.5e6``, ``2.5M``, ``$300k``, ``1T`` -> a positive finite number of at most ``hi``
    (:func:`.render.parse_amount`); None stays None."""
    return None if text is None else parse_amount(text, what, hi)


def _deadline(text: str | None) -> float | None:
    """``30d``, ``720h`` -> seconds, positive, finite and at most a century; a bare number is refused (its unit
    is not obvious)."""
    return None if text is None else parse_time(text, "--deadline", MAX_DEADLINE_S)


def _degrees(p: planner.TrainingPlan) -> str:
    s = f"tp {p.tp} pp {p.pp}" + (f" (vpp {p.vpp})" if p.vpp > 1 else "") + f" cp {p.cp} dp {p.dp}"
    if p.ep > 1:
        s += f" ep {p.ep} etp {p.expert_tp}"
    return s


def _int_list(text: str, flag: str, hi: int = MAX_BATCH) -> tuple[int, ...]:
    parts = [x for x in text.split(",") if x.strip()]
    if len(parts) > MAX_LAYERS:
        raise ValueError(f"{flag} takes at most {MAX_LAYERS} numbers, got {len(parts)}")
    try:
        values = tuple(int(x) for x in parts)
    except ValueError:
        raise ValueError(f"{flag} takes whole numbers separated by commas, got {text[:80]!r}") from None
    if not values:
        raise ValueError(f"{flag} is empty")
    for v in values:
        check_int(v, flag, lo=0, hi=hi)
    return values


def _layout(p: planner.TrainingPlan) -> str:
    """``tp8 pp16/4 dp128`` (pp/vpp), cp and ep only when used."""
    s = f"tp{p.tp} pp{p.pp}" + (f"/{p.vpp}" if p.vpp > 1 else "")
    s += f" cp{p.cp}" if p.cp > 1 else ""
    s += f" ep{p.ep}" + (f" etp{p.expert_tp}" if p.expert_tp > 1 else "") if p.ep > 1 else ""
    return s + f" dp{p.dp}"


def _recompute_label(p: planner.TrainingPlan) -> str:
    if p.recompute != "full" or p.recompute_per_stage is None:
        return p.recompute
    return f"full:{sum(p.recompute_per_stage)}"


def _batch_tokens(text: str) -> int:
    """``16M`` -> 16 x 2^20 tokens (batch sizes are counted in binary units), ``4096K``, ``1048576``."""
    from planner.specs.units import read_token_count

    try:
        v = read_token_count(text)
    except ValueError:
        raise ValueError(f"cannot read {text[:80]!r} as a token count (e.g. 16M = 16 x 2^20, 4194304)") from None
    if not math.isfinite(v) or v <= 0 or v != int(v):
        raise ValueError(f"--batch-tokens must be a positive whole number of tokens, got {text[:80]!r}")
    if v > MAX_BATCH * MAX_POSITIONS:
        raise ValueError(f"--batch-tokens must be at most {MAX_BATCH * MAX_POSITIONS:,} tokens, got {text[:80]!r}")
    return int(v)


def _power_rows(t: Any, est: planner.TrainingEstimate, tokens: float, tdp_w: float) -> None:
    """The power (GPUs x TDP) and energy-to-train rows of a summary table."""
    t.add_row("power (GPUs x TDP)", f"{_sig(_power_w(est, tdp_w) / 1e3)} kW ({est.num_gpus:,} x {tdp_w:,.0f} W)")
    t.add_row(f"energy to train {si(tokens)} tokens", f"{_sig(_energy_mwh(est, tokens, tdp_w))} MWh")


def _sig(x: float) -> str:
    """Three significant figures, without an exponent: ``5.6``, ``15.7``, ``1,536``."""
    return f"{x:,.0f}" if abs(x) >= 100 else f"{x:.3g}"


def _best_json(est: planner.TrainingEstimate, doc: dict[str, Any], tokens: float, price: float | None,
               tdp_w: float) -> dict[str, Any]:
    out = _train_json(est, tokens, price, tdp_w)
    p = est.plan
    out.update({k: getattr(p, k) for k in ("tp", "pp", "vpp", "cp", "ep", "dp", "micro_batch", "recompute", "zero",
                                          "dtype", "sp")})
    out["etp"] = p.expert_tp
    out["plan_document"] = doc
    return out


def _short_layout(p: planner.TrainingPlan) -> str:
    """A table's layout: ``tp8 pp16/4 dp128`` with the degrees of 1 left out (dp always shown)."""
    parts = [f"tp{p.tp}" if p.tp > 1 else "", f"pp{p.pp}" + (f"/{p.vpp}" if p.vpp > 1 else "") if p.pp > 1 else "",
             f"cp{p.cp}" if p.cp > 1 else "", f"ep{p.ep}" if p.ep > 1 else "",
             f"etp{p.expert_tp}" if p.ep > 1 and p.expert_tp > 1 else "", f"dp{p.dp}"]
    return " ".join(x for x in parts if x)


def _short_recompute(p: planner.TrainingPlan) -> str:
    """``none``, ``sel`` (selective), ``full`` or ``full:N`` (N layers recomputed over the stages)."""
    return "sel" if p.recompute == "selective" else _recompute_label(p)


def _step(seconds: float) -> str:
    """A step time in at most 6 characters: ``2.904``, ``11.62``, ``108.7``."""
    return f"{seconds:.3f}" if seconds < 10 else f"{seconds:.2f}" if seconds < 100 else f"{seconds:.1f}"


def _render(res: TrainSearchResult, model: planner.ModelSpec, tokens: float, tdp_w: float) -> None:
    best = res.best
    price = res.price_per_gpu_hour
    say(f"[bold]{model.name}[/bold] on [bold]{best.num_gpus} x {best.gpu}[/bold], objective "
        f"[bold]{res.objective}[/bold]: best plan {_degrees(best.plan)}, micro-batch {best.plan.micro_batch}, "
        f"recompute {_recompute_label(best.plan)}, ZeRO {best.plan.zero}, {best.plan.dtype}")
    say()
    s = table("Best plan", "metric", "value", right=("value",), key="best")
    s.add_row("step time", f"{best.step_time_s:.3f} s")
    s.add_row("tokens / s", f"{best.tokens_per_s:,.0f}")
    s.add_row("MFU (model FLOPs, PaLM / Llama 3)", f"{100 * best.mfu:.1f} %")
    s.add_row("hardware TFLOP/s per GPU (incl. recompute)", f"{best.hardware_tflops_per_gpu:.1f}")
    s.add_row("memory", f"{gb(best.memory.peak_bytes)} of {gb(best.memory.capacity_bytes)} GB per GPU")
    s.add_row(f"time to train {si(tokens)} tokens", duration(tokens / best.tokens_per_s))
    cpm = res.cost_per_million_tokens(best)
    if cpm is not None:
        s.add_row("cost per million tokens", f"${cpm:,.3f} (at ${price:.2f}/GPU-h)")
        s.add_row(f"cost to train {si(tokens)} tokens", f"${cpm * tokens / 1e6:,.0f}")
    _power_rows(s, best, tokens, tdp_w)
    if best.plan.layers_per_chunk is not None:
        s.add_row("layers per chunk", ",".join(map(str, best.plan.layers_per_chunk)))
    if best.plan.recompute_per_stage is not None:
        s.add_row("recomputed layers per stage", ",".join(map(str, best.plan.recompute_per_stage)))
    show(s)

    plans = [best] + res.alternatives
    many_counts = len({e.num_gpus for e in plans}) > 1
    many_dtypes = len({e.plan.dtype for e in plans}) > 1
    cols = ["#"] + (["GPUs"] if many_counts else []) + ["layout", "mbs", "recomp", "ZeRO"] + (
        ["dtype"] if many_dtypes else []) + ["step s", "MFU %", "free GB", "$/M tok"]
    t = table(f"Top {len(plans)} plans (free GB: memory left per GPU; $/M tok: dollars per million tokens)", *cols,
              right=("#", "GPUs", "mbs", "ZeRO", "step s", "MFU %", "free GB", "$/M tok"), key="top")
    for i, e in enumerate(plans, start=1):
        p = e.plan
        c = res.cost_per_million_tokens(e)
        row = [str(i)] + ([f"{e.num_gpus:,}"] if many_counts else []) + [
            _short_layout(p), str(p.micro_batch), _short_recompute(p), str(p.zero)] + (
            [p.dtype] if many_dtypes else []) + [
            _step(e.step_time_s), f"{100 * e.mfu:.1f}", gb(e.memory.headroom_bytes), "-" if c is None else f"{c:.3f}"]
        t.add_row(*row)
    show(t)
    if res.pareto:
        f = table(f"Pareto front: time vs cost over GPU counts (days to train {si(tokens)} tokens)", "GPUs", "layout",
                  "tokens/s", "days", "$/M tok", right=("GPUs", "tokens/s", "days", "$/M tok"), key="pareto")
        for e in res.pareto:
            c = res.cost_per_million_tokens(e)
            f.add_row(f"{e.num_gpus:,}", _short_layout(e.plan), f"{e.tokens_per_s:,.0f}",
                      f"{tokens / e.tokens_per_s / 86400:,.1f}", "-" if c is None else f"{c:.3f}")
        show(f)
    if res.binding:
        say("[bold]binding constraints[/bold]: " + "; ".join(res.binding))
    if res.partition is not None:
        pi = res.partition
        say(f"[bold]layer partition MILP[/bold]: {pi.status}, {pi.solve_time_s * 1e3:.0f} ms, pipeline "
            f"{pi.objective_s:.3f} s vs balanced bound {pi.bound_s:.3f} s (gap {100 * pi.gap:.1f} %), "
            f"{'kept' if pi.improved else 'no faster than the even split'}")
    pruned = ", ".join(f"{v} {k}" for k, v in sorted(res.pruned.items(), key=lambda kv: -kv[1]))
    say(f"[dim]searched {res.shapes} layouts over {len(res.gpu_counts)} GPU count(s), estimated "
        f"{res.estimated} plans in {res.elapsed_s:.2f} s; pruned: {pruned}[/dim]")


@tabular("top", "best", "pareto", "frontier")
def train(
    ctx: typer.Context,
    model: str = typer.Option(..., "--model", "-m", help="Built-in name, Hugging Face id, or path to a config.json."),
    gpu: str = typer.Option(..., "--gpu", "-g", help="Built-in system name / alias, or path to a hardware YAML; "
                            "several separated by commas (h100,h200,b200,mi300x): the cheapest type to train on."),
    gpus: int = typer.Option(..., "--gpus", "-n", min=1, max=MAX_GPUS, help="GPUs available (the exact count for "
                             "--objective time; the maximum for cost / deadline), of each type."),
    seq: int = typer.Option(..., "--seq", min=1, max=MAX_POSITIONS, help="Sequence length (tokens)."),
    gbs: Optional[int] = typer.Option(None, "--gbs", min=1, max=MAX_BATCH, help="Global batch size (sequences per "
                                      "step)."),
    batch_tokens: Optional[str] = typer.Option(None, "--batch-tokens", help="Global batch in tokens instead of "
                                               "--gbs (16M = 16 x 2^20); a multiple of --seq."),
    objective: Optional[Objective] = typer.Option(None, "--objective", case_sensitive=False,
                                                  help="time: fastest at --gpus; cost: cheapest per token up to "
                                                  "--gpus; deadline: fewest GPUs that train --tokens by --deadline. "
                                                  "With several types it picks each type's plan; the cheapest to "
                                                  "train of those wins.", show_default="time; with several --gpu "
                                                  "types, cost"),
    tokens: str = typer.Option("1T", "--tokens", help="Tokens to train, for the time and cost to train (e.g. 15T, "
                               "2.5e12; k, M, B, T = 1e3 ... 1e12)."),
    budget: Optional[str] = typer.Option(None, "--budget", help="Maximum cost to train --tokens, dollars (e.g. 2.5M)."),
    deadline: Optional[str] = typer.Option(None, "--deadline", help="Maximum time to train --tokens, with its unit "
                                           "(e.g. 60d, 720h, 2w)."),
    top: int = typer.Option(5, "--top", min=1, max=MAX_TOP, help="How many plans to list."),
    dtype: SearchDtype = typer.Option(SearchDtype("bf16"), "--dtype", case_sensitive=False, help="Compute dtype; "
                                      "auto: bf16, and fp8 where the GPU has FP8 tensor cores."),
    pareto: bool = typer.Option(False, "--pareto", help="Also show the time vs cost front over GPU counts."),
    max_memory: float = typer.Option(0.95, "--max-memory", help="Fraction of GPU memory a plan may use (the rest "
                                     "is left for allocator fragmentation and framework buffers the model does not "
                                     "count)."),
    price: Optional[float] = typer.Option(None, "--price", show_default="the GPU spec's", help="Dollars per "
                                          "GPU-hour; "
                                          "with several --gpu types, for every type."),
    no_refine: bool = typer.Option(False, "--no-refine", help="Skip the layer-partition MILP."),
    mbs: Optional[str] = typer.Option(None, "--mbs", help="Micro-batch sizes to try (sequences), e.g. 1,2.",
                                      show_default="1,2,4,8,16"),
    recompute: Optional[str] = typer.Option(None, "--recompute", help="Recomputation modes allowed, e.g. "
                                            "selective,full.", show_default="none,selective,full"),
    zero: Optional[str] = typer.Option(None, "--zero", help="ZeRO stages to try, e.g. 1.", show_default="1,3"),
    plot: Optional[Path] = typer.Option(None, "--plot", help="Also draw the time-vs-cost front (or the several GPU types' frontier) to this file (.png or .svg; "
                                        "needs planner[plot])."),
    report: Optional[Path] = typer.Option(None, "--report", help="Also write a self-contained HTML report "
                                          "(tables and plots) to this file (.html)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of tables."),
    export_to: Optional[Target] = typer.Option(None, "--export", case_sensitive=False,
                                               help="Print the best plan as launcher input."),
    timings: bool = typer.Option(False, "--timings", help="With --json: include the search's and the MILP's "
                                 "wall-clock times (left out by default so the same input gives the same bytes)."),
) -> None:
    """Search the parallel plans of a training job and show the best ones."""
    refuse_unused(ctx, "without --json", *(() if as_json else ("timings",)))
    check_artifacts(plot, report)
    dtype_name: str = dtype.value
    check_number(max_memory, "--max-memory (a fraction of GPU memory)", hi=1.0)
    if price is not None:
        check_number(price, "--price (dollars per GPU-hour)", hi=MAX_USD)
    m = planner.get_model(model)
    types = _gpu_types(gpu)
    if len(types) > 1:
        systems = [planner.get_system(g) for g in types]  # an unknown name: one line naming it
        s = systems[0]
    else:
        s = planner.get_system(types[0])
    if (gbs is None) == (batch_tokens is None):
        fail("give the global batch as exactly one of --gbs (sequences) or --batch-tokens")
    if gbs is None:
        bt = _batch_tokens(batch_tokens)
        if seq <= 0 or bt % seq:
            fail(f"--batch-tokens {batch_tokens} ({bt:,} tokens) is not a multiple of --seq {seq}")
        gbs = bt // seq
    if gbs <= 0 or seq <= 0 or gpus <= 0:
        fail("--gbs, --seq and --gpus must be positive")
    n_tokens = parse_amount(tokens, "--tokens", MAX_TOKENS)
    tokens_given = bool(given(ctx, "tokens"))
    options: dict[str, Any] = {}
    if mbs is not None:
        options["micro_batches"] = _int_list(mbs, "--mbs")
    if recompute is not None:
        options["recompute"] = tuple(x.strip() for x in recompute.split(",") if x.strip())
    if zero is not None:
        options["zero_stages"] = _int_list(zero, "--zero")
    budget_usd, deadline_s = _parse_amount(budget, "--budget"), _deadline(deadline)
    progress = LazyProgress(quiet=as_json or export_to is not None, segments=len(types))
    if len(types) > 1:
        try:  # each type's search is planner.search_train's: its plans passed the gate
            fleet = search_training_fleet(
                m, systems, gpus, seq, gbs, tokens=n_tokens, objective=(objective or Objective("cost")).value,
                deadline_s=deadline_s, budget_usd=budget_usd, price_per_gpu_hour=price, top=top, pareto=pareto,
                refine=not no_refine, max_memory_fraction=max_memory, progress=progress, search=planner.search_train,
                dtypes="auto" if dtype_name == "auto" else (dtype_name,), **options)
        finally:
            progress.close()
        _answer_fleet(fleet, m, [x.name for x in systems], n_tokens, as_json, export_to, timings)
        write_artifacts(fleet, plot, report, quiet=as_json or export_to is not None,
                        title=f"{m.name}: training over {', '.join(x.name for x in systems)}")
        return
    try:
        res = planner.search_train(
            m, s, gpus, seq, gbs, objective=(objective or Objective("time")).value,
            tokens=n_tokens if (tokens_given or budget or deadline) else None, budget_usd=budget_usd,
            deadline_s=deadline_s,
            top=top, dtypes=_dtypes(dtype_name, s), pareto=pareto, refine=not no_refine, max_memory_fraction=max_memory,
            price_per_gpu_hour=price, progress=progress, **options,
        )
    finally:
        progress.close()
    doc = res.plan_document  # the best plan's document, checked by the gate
    assert doc is not None
    warnings = training_warnings(res.best, n_tokens)  # the tokens shown (1T unless --tokens)
    write_artifacts(res, plot, report, quiet=as_json or export_to is not None,
                    title=f"{m.name} on up to {gpus} x {s.name}")
    if export_to is not None and not as_json:
        print(export(doc, export_to.value))
        _warn(warnings)
        return
    if as_json:
        print_json(_search_json(res, doc, n_tokens, s.accelerator.tdp_w, warnings, export_to), timings=timings)
        return
    _render(res, m, n_tokens, s.accelerator.tdp_w)
    _warn(warnings)


def _search_json(res: TrainSearchResult, doc: dict[str, Any], n_tokens: float, tdp_w: float, warnings: list[str],
                 export_to: Optional[Target]) -> dict[str, Any]:
    """One search's answer as the JSON object of ``planner train --json``."""
    price = res.price_per_gpu_hour
    out = {
        "objective": res.objective,
        "best": _best_json(res.best, doc, n_tokens, price, tdp_w),
        "alternatives": [_train_json(e, n_tokens, price, tdp_w) for e in res.alternatives],
        "pareto": [_train_json(e, n_tokens, price, tdp_w) for e in res.pareto] if res.pareto else None,
        "binding": res.binding,
        "warnings": warnings,
        "partition": res.partition.model_dump(mode="json") if res.partition else None,
        "search": {"gpu_counts": res.gpu_counts, "shapes": res.shapes, "estimated": res.estimated,
                   "pruned": res.pruned, "elapsed_s": res.elapsed_s},
    }
    if export_to is not None:
        out["export"] = {"target": export_to.value, "text": export(doc, export_to.value)}
    return out


def _gpu_types(text: str) -> list[str]:
    """``--gpu``: one name or spec path, or several names separated by commas (a path that exists is one, even
    with a comma in it)."""
    if "," not in text:
        return [text]
    try:
        if Path(text).exists():
            return [text]
    except (OSError, ValueError):  # too long, NUL: not a file (get_system says what is wrong with it)
        pass
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if not parts:
        fail(f"--gpu {text[:80]!r} names no GPU type (expected names separated by commas, e.g. h100,h200,b200)")
    if len(parts) > MAX_GPU_TYPES:
        fail(f"--gpu lists {len(parts)} GPU types; at most {MAX_GPU_TYPES}")
    return parts


def _dtypes(dtype: str, s: planner.System) -> tuple[str, ...]:
    """``--dtype``: auto is bf16, and fp8 too where the GPU has FP8 tensor cores."""
    if dtype != "auto":
        return (dtype,)
    return ("bf16", "fp8") if s.accelerator.has_native("fp8") else ("bf16",)


def _money(usd: float) -> str:
    """``$5.41M``, ``$812k``, ``$950``: three significant figures."""
    for scale, unit in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if usd >= scale:
            return f"${usd / scale:.3g}{unit}"
    return f"${usd:.3g}"


def _answer_fleet(fleet: FleetTrainResult, m: planner.ModelSpec, names: list[str], n_tokens: float, as_json: bool,
                  export_to: Optional[Target], timings: bool) -> None:
    """Print a multi-type answer: the cheapest type's answer (as for one type), the frontier and the refusals."""
    win = fleet.cheapest
    res = win.result
    doc = res.plan_document
    assert doc is not None
    tdp = {p.gpu: p.power_w / p.num_gpus for p in fleet.frontier}
    warnings = training_warnings(res.best, n_tokens)
    if export_to is not None and not as_json:
        print(export(doc, export_to.value))
        _warn(warnings)
        return
    if as_json:
        out = _search_json(res, doc, n_tokens, tdp[win.gpu], warnings, export_to)
        out.update({
            "gpu_types": names,
            "cheapest_gpu": win.gpu,
            "frontier": [{"gpu": p.gpu, "num_gpus": p.num_gpus, "layout": _layout(p.result.best.plan),
                          "plan": p.result.best.plan.model_dump(mode="json"), "mfu": p.result.best.mfu,
                          "tokens_per_s": p.result.best.tokens_per_s, "time_to_train_s": p.time_to_train_s,
                          "cost_to_train_usd": p.cost_to_train_usd, "price_per_gpu_hour_usd": p.price_per_gpu_hour_usd,
                          "power_kw": p.power_w / 1e3, "energy_to_train_mwh": p.energy_to_train_mwh,
                          "pareto": p.pareto} for p in fleet.frontier],
            "infeasible": [r.model_dump(mode="json") for r in fleet.infeasible],
            "fleet_search": {"objective": fleet.objective, "tokens": fleet.tokens, "deadline_s": fleet.deadline_s,
                             "budget_usd": fleet.budget_usd, "elapsed_s": fleet.elapsed_s},
        })
        print_json(out, timings=timings)
        return
    within = ([f"{fleet.deadline_s / 86400:,.1f} days"] if fleet.deadline_s is not None else []) + (
        [_money(fleet.budget_usd)] if fleet.budget_usd is not None else [])
    limits = f" within {' and '.join(within)}" if within else ""
    say(f"[bold]{m.name}[/bold], {si(n_tokens)} tokens{limits}: cheapest of {len(fleet.frontier)} feasible "
        f"GPU type(s) is [bold]{win.gpu}[/bold], {win.num_gpus:,} GPUs, {win.time_to_train_s / 86400:,.1f} "
        f"days, {_money(win.cost_to_train_usd)}, {_sig(win.energy_to_train_mwh)} MWh")
    say()
    f = table("Time / cost frontier over GPU types (* Pareto-optimal)", "*", "GPU", "GPUs", "layout", "days",
              "$ to train", "MWh", right=("GPUs", "days", "$ to train", "MWh"), key="frontier")
    for p in fleet.frontier:
        plan = p.result.best.plan
        f.add_row("*" if p.pareto else "", p.gpu, f"{p.num_gpus:,}", _short_layout(plan) + (
                  "" if plan.dtype == "bf16" else f" {plan.dtype}"),
                  f"{p.time_to_train_s / 86400:,.1f}", _money(p.cost_to_train_usd), _sig(p.energy_to_train_mwh))
    show(f)
    for r in fleet.infeasible:
        say(f"[yellow]not feasible[/yellow] {r.gpu}: {r.reason}")
    say(f"[dim]{len(fleet.frontier) + len(fleet.infeasible)} GPU types searched in {fleet.elapsed_s:.2f} s; "
        f"the cheapest type's answer follows[/dim]")
    say()
    _render(res, m, n_tokens, tdp[win.gpu])
    _warn(warnings)

