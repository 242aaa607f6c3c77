"""``planner train`` (plan search) and ``planner export`` (a saved plan to a launcher).

Thin: parses flags, calls :func:`planner.search_train`, renders tables or one
JSON object, or prints the chosen plan as launcher input (``--export``).
"""

from __future__ import annotations

import time
from enum import Enum
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

import planner
from planner.cli import _duration, _gb, _table, _train_json, console, fail, print_json
from planner.export import EXPORTERS, export
from planner.plan_doc import check_plan_document, plan_document
from planner.search.training import TrainSearchResult
from planner.specs.units import parse_seconds

Objective = Enum("Objective", {v: v for v in ("time", "cost", "deadline")}, type=str)  # type: ignore[misc]
Target = Enum("Target", {v: v for v in EXPORTERS}, type=str)  # type: ignore[misc]


class _LazyProgress:
    """A progress bar on stderr that appears only once a search has run for a second."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.start = time.perf_counter()
        self.bar: Progress | None = None
        self.task = None

    def __call__(self, done: int, total: int) -> None:
        if self.quiet:
            return
        if self.bar is None:
            if time.perf_counter() - self.start < 1.0 or done >= total:
                return
            self.bar = Progress(TextColumn("searching plans"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                                TimeElapsedColumn(), console=Console(stderr=True), transient=True)
            self.bar.start()
            self.task = self.bar.add_task("search", total=total)
        self.bar.update(self.task, completed=done, total=total)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


def _parse_amount(text: str | None, what: str) -> float | None:
    """``2.5e6``, ``2.5M``, ``$300k``, ``1T`` -> a number."""
    if text is None:
        return None
    s = text.strip().lstrip("$").replace(",", "").replace("_", "")
    scale = {"k": 1e3, "K": 1e3, "M": 1e6, "B": 1e9, "G": 1e9, "T": 1e12}
    mult = scale.get(s[-1:], 1.0)
    if s[-1:] in scale:
        s = s[:-1]
    try:
        v = float(s) * mult
    except ValueError:
        raise ValueError(f"cannot read {text!r} as {what} (e.g. 1e12, 15T, 2.5M)") from None
    if v <= 0:
        raise ValueError(f"{what} must be positive, got {text!r}")
    return v


def _degrees(p: planner.TrainingPlan) -> str:
    s = f"tp {p.tp} pp {p.pp}" + (f" (vpp {p.vpp})" if p.vpp > 1 else "") + f" cp {p.cp} dp {p.dp}"
    if p.ep > 1:
        s += f" ep {p.ep} etp {p.expert_tp}"
    return s


def _int_list(text: str, flag: str) -> tuple[int, ...]:
    try:
        values = tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise ValueError(f"{flag} takes whole numbers separated by commas, got {text!r}") from None
    if not values:
        raise ValueError(f"{flag} is empty")
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
    t = text.strip().replace(",", "").replace("_", "")
    mult = {"K": 2**10, "k": 2**10, "M": 2**20}.get(t[-1:], 1)
    if mult > 1:
        t = t[:-1]
    try:
        v = float(t) * mult
    except ValueError:
        raise ValueError(f"cannot read {text!r} as a token count (e.g. 16M = 16 x 2^20, 4194304)") from None
    if v <= 0 or v != int(v):
        raise ValueError(f"--batch-tokens must be a positive whole number of tokens, got {text!r}")
    return int(v)


def _best_json(est: planner.TrainingEstimate, doc: dict[str, Any], tokens: float, price: float | None) -> dict[str, Any]:
    out = _train_json(est, tokens, price)
    p = est.plan
    out.update({k: getattr(p, k) for k in ("tp", "pp", "vpp", "cp", "ep", "dp", "micro_batch", "recompute", "zero",
                                          "dtype", "sp")})
    out["etp"] = p.expert_tp
    out["plan_document"] = doc
    return out


def _render(res: TrainSearchResult, model: planner.ModelSpec, tokens: float) -> None:
    best = res.best
    price = res.price_per_gpu_hour
    console.print(f"[bold]{model.name}[/bold] on [bold]{best.num_gpus} x {best.gpu}[/bold], objective "
                  f"[bold]{res.objective}[/bold]: best plan {_degrees(best.plan)}, micro-batch {best.plan.micro_batch}, "
                  f"recompute {_recompute_label(best.plan)}, ZeRO {best.plan.zero}, {best.plan.dtype}", highlight=False)
    s = _table("Best plan", "metric", "value", right=("value",))
    s.add_row("step time", f"{best.step_time_s:.3f} s")
    s.add_row("tokens / s", f"{best.tokens_per_s:,.0f}")
    s.add_row("MFU", f"{100 * best.mfu:.1f} %")
    s.add_row("memory", f"{_gb(best.memory.peak_bytes)} of {_gb(best.memory.capacity_bytes)} GB per GPU")
    s.add_row(f"time to train {tokens:.3g} tokens", _duration(tokens / best.tokens_per_s))
    cpm = res.cost_per_million_tokens(best)
    if cpm is not None:
        s.add_row("cost per million tokens", f"${cpm:,.3f} (at ${price:.2f}/GPU-h)")
        s.add_row(f"cost to train {tokens:.3g} tokens", f"${cpm * tokens / 1e6:,.0f}")
    if best.plan.layers_per_chunk is not None:
        s.add_row("layers per chunk", ",".join(map(str, best.plan.layers_per_chunk)))
    if best.plan.recompute_per_stage is not None:
        s.add_row("recomputed layers per stage", ",".join(map(str, best.plan.recompute_per_stage)))
    console.print(s)

    plans = [best] + res.alternatives
    many_counts = len({e.num_gpus for e in plans}) > 1
    many_dtypes = len({e.plan.dtype for e in plans}) > 1
    cols = ["#"] + (["GPUs"] if many_counts else []) + ["layout", "mbs", "recompute", "ZeRO"] + (
        ["dtype"] if many_dtypes else []) + ["step s", "MFU %", "free GB", "$/M tok"]
    t = _table(f"Top {len(plans)} plans", *cols, right=("#", "GPUs", "mbs", "ZeRO", "step s", "MFU %", "free GB",
                                                         "$/M tok"))
    for i, e in enumerate(plans, start=1):
        p = e.plan
        c = res.cost_per_million_tokens(e)
        row = [str(i)] + ([str(e.num_gpus)] if many_counts else []) + [
            _layout(p), str(p.micro_batch), _recompute_label(p), str(p.zero)] + ([p.dtype] if many_dtypes else []) + [
            f"{e.step_time_s:.3f}", f"{100 * e.mfu:.1f}", _gb(e.memory.headroom_bytes), "-" if c is None else f"{c:.3f}"]
        t.add_row(*row)
    console.print(t)
    if res.pareto:
        f = _table("Pareto front: time vs cost (best plan per GPU count)", "GPUs", "plan", "tokens/s",
                   f"days for {tokens:.3g}", "$/M tok", right=("GPUs", "tokens/s", f"days for {tokens:.3g}", "$/M tok"))
        for e in res.pareto:
            c = res.cost_per_million_tokens(e)
            f.add_row(str(e.num_gpus), _degrees(e.plan), f"{e.tokens_per_s:,.0f}", f"{tokens / e.tokens_per_s / 86400:,.1f}",
                      "-" if c is None else f"{c:.3f}")
        console.print(f)
    if res.binding:
        console.print("[bold]binding constraints[/bold]: " + "; ".join(res.binding), highlight=False)
    if res.partition is not None:
        pi = res.partition
        console.print(f"[bold]layer partition MILP[/bold]: {pi.status}, {pi.solve_time_s * 1e3:.0f} ms, pipeline "
                      f"{pi.objective_s:.3f} s vs balanced bound {pi.bound_s:.3f} s (gap {100 * pi.gap:.1f} %), "
                      f"{'kept' if pi.improved else 'no faster than the even split'}", highlight=False)
    pruned = ", ".join(f"{v} {k}" for k, v in sorted(res.pruned.items(), key=lambda kv: -kv[1]))
    console.print(f"[dim]searched {res.shapes} layouts over {len(res.gpu_counts)} GPU count(s), estimated "
                  f"{res.estimated} plans in {res.elapsed_s:.2f} s; pruned: {pruned}[/dim]", highlight=False)


def train(
    model: str = typer.Option(..., "--model", "-m", help="Built-in name, Hugging Face id, or path to a config.json."),
    gpu: str = typer.Option(..., "--gpu", "-g", help="Built-in system name / alias, or path to a hardware YAML."),
    gpus: int = typer.Option(..., "--gpus", "-n", help="GPUs available (the exact count for --objective time; "
                                                       "the maximum for cost / deadline)."),
    seq: int = typer.Option(..., "--seq", help="Sequence length (tokens)."),
    gbs: Optional[int] = typer.Option(None, "--gbs", help="Global batch size (sequences per step)."),
    batch_tokens: Optional[str] = typer.Option(None, "--batch-tokens", help="Global batch in tokens instead of "
                                               "--gbs (16M = 16 x 2^20); a multiple of --seq."),
    objective: Objective = typer.Option(Objective("time"), "--objective", help="time: fastest at --gpus; cost: "
                                        "cheapest per token up to --gpus; deadline: fewest GPUs that train --tokens "
                                        "by --deadline."),
    tokens: Optional[str] = typer.Option(None, "--tokens", help="Tokens to train (e.g. 15T) for time and cost to "
                                         "train [default: 1T]."),
    budget: Optional[str] = typer.Option(None, "--budget", help="Maximum cost to train --tokens, dollars (e.g. 2.5M)."),
    deadline: Optional[str] = typer.Option(None, "--deadline", help="Maximum time to train --tokens (e.g. 30d, 720h)."),
    top: int = typer.Option(5, "--top", help="How many plans to list."),
    dtype: str = typer.Option("bf16", "--dtype", help="bf16, fp8, or auto (bf16 and fp8 where the GPU has it)."),
    pareto: bool = typer.Option(False, "--pareto", help="Also show the time vs cost front over GPU counts."),
    max_memory: float = typer.Option(0.95, "--max-memory", help="Fraction of GPU memory a plan may use (the rest "
                                     "is left for allocator fragmentation and framework buffers the model does not "
                                     "count)."),
    price: Optional[float] = typer.Option(None, "--price", help="Dollars per GPU-hour [default: the GPU spec's]."),
    no_refine: bool = typer.Option(False, "--no-refine", help="Skip the layer-partition MILP."),
    mbs: Optional[str] = typer.Option(None, "--mbs", help="Micro-batch sizes to try, e.g. 1,2 [default: 1,2,4,8,16]."),
    recompute: Optional[str] = typer.Option(None, "--recompute", help="Recomputation modes allowed, e.g. "
                                            "selective,full [default: none,selective,full]."),
    zero: Optional[str] = typer.Option(None, "--zero", help="ZeRO stages to try, e.g. 1 [default: 1,3]."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of tables."),
    export_to: Optional[Target] = typer.Option(None, "--export", help="Print the best plan as launcher input."),
) -> None:
    """Search the parallel plans of a training job and show the best ones."""
    m = planner.get_model(model)
    s = planner.get_system(gpu)
    if (gbs is None) == (batch_tokens is None):
        fail("give the global batch as exactly one of --gbs (sequences) or --batch-tokens")
    if gbs is None:
        bt = _batch_tokens(batch_tokens)
        if seq <= 0 or bt % seq:
            fail(f"--batch-tokens {batch_tokens} ({bt:,} tokens) is not a multiple of --seq {seq}")
        gbs = bt // seq
    if gbs <= 0 or seq <= 0 or gpus <= 0:
        fail("--gbs, --seq and --gpus must be positive")
    n_tokens = _parse_amount(tokens, "--tokens") if tokens is not None else 1e12
    dtypes = ("bf16", "fp8") if dtype == "auto" and s.accelerator.has_native("fp8") else (
        ("bf16",) if dtype == "auto" else (dtype,))
    options: dict[str, Any] = {}
    if mbs is not None:
        options["micro_batches"] = _int_list(mbs, "--mbs")
    if recompute is not None:
        options["recompute"] = tuple(x.strip() for x in recompute.split(",") if x.strip())
    if zero is not None:
        options["zero_stages"] = _int_list(zero, "--zero")
    progress = _LazyProgress(quiet=as_json or export_to is not None)
    try:
        res = planner.search_train(
            m, s, gpus, seq, gbs, objective=objective.value, tokens=n_tokens if (tokens or budget or deadline) else None,
            budget_usd=_parse_amount(budget, "--budget"), deadline_s=parse_seconds(deadline) if deadline else None,
            top=top, dtypes=dtypes, pareto=pareto, refine=not no_refine, max_memory_fraction=max_memory,
            price_per_gpu_hour=price, progress=progress, **options,
        )
    finally:
        progress.close()
    doc = plan_document(res.best, m, s)
    if export_to is not None and not as_json:
        print(export(doc, export_to.value))
        return
    if as_json:
        out = {
            "objective": res.objective,
            "best": _best_json(res.best, doc, n_tokens, res.price_per_gpu_hour),
            "alternatives": [_train_json(e, n_tokens, res.price_per_gpu_hour) for e in res.alternatives],
            "pareto": [_train_json(e, n_tokens, res.price_per_gpu_hour) for e in res.pareto] if res.pareto else None,
            "binding": res.binding,
            "partition": res.partition.model_dump(mode="json") if res.partition else None,
            "search": {"gpu_counts": res.gpu_counts, "shapes": res.shapes, "estimated": res.estimated,
                       "pruned": res.pruned, "elapsed_s": res.elapsed_s},
        }
        if export_to is not None:
            out["export"] = {"target": export_to.value, "text": export(doc, export_to.value)}
        print_json(out)
        return
    _render(res, m, n_tokens)


def export_plan(
    plan_file: Path = typer.Argument(..., help="A plan document (from `planner train --json`: its best.plan_document, "
                                               "or a file holding just that object)."),
    to: Target = typer.Option(..., "--to", help="Launcher format."),
) -> None:
    """Export a saved plan document for a launcher."""
    import json

    try:
        data = json.loads(plan_file.read_text())
    except FileNotFoundError:
        fail(f"plan file {plan_file} not found")
    except json.JSONDecodeError as e:
        fail(f"{plan_file}: not valid JSON (line {e.lineno}: {e.msg})")
    if isinstance(data, dict) and isinstance(data.get("best"), dict) and "plan_document" in data["best"]:
        data = data["best"]["plan_document"]  # the output of `planner train --json`
    print(export(check_plan_document(data, str(plan_file)), to.value))
