"""``planner experts``: place MoE experts on GPUs from routing statistics."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

import planner
from .render import (Activity, check_artifacts, fail, print_json, refuse_overwrite, refuse_unused, say, show, table,
                     tabular, write_artifacts)
from planner.limits import (MAX_BYTES_PER_PARAM, MAX_EXPERTS, MAX_GPUS, MAX_IMBALANCE, MAX_LINK_COST,
                            MAX_ROUTING_TOKENS, MAX_SEED, MAX_TIME_LIMIT_S, check_number)
from planner.moe.placement import ExpertCluster, Weights, evaluate, expert_slots, greedy, round_robin
from planner.moe.synthetic import moe_shape, synthetic_trace
from planner.moe.trace import RoutingStats, RoutingTrace, check_stats, load_routing, widen

#: The placement document's schema id (:class:`planner.plans.PlacementDocument`; it replaces the
#: "planner.expert-placement.v1" format of earlier releases).
EXPORT_FORMAT = "planner.expert-placement"


def _gain(base: float, new: float) -> float | None:
    return None if base <= 0 else 1.0 - new / base


def placement_report(model, stats_fit: RoutingStats, stats_eval: RoutingStats | None, cluster: ExpertCluster, system,
                     time_limit: float, max_imbalance: float | None, weights: Weights | None = None,
                     quiet: bool = True) -> tuple[dict, object]:
    """The ``--json`` object (sections per method, the solver's status, bound and gap, and the
    held-out replay) and the solver's placement. Unless ``quiet``, a spinner with the elapsed time shows on
    stderr while CP-SAT solves (its limit counts deterministic seconds, about one core's)."""
    w = weights or Weights()
    from planner.moe.solver import place_experts  # OR-Tools loads only when a placement is solved

    with Activity(quiet, "placing experts", limit_s=time_limit):
        res = place_experts(stats_fit, cluster, w, time_limit=time_limit, max_imbalance=max_imbalance)
    methods = {"solver": res.placement, "round_robin": round_robin(stats_fit, cluster),
               "greedy": res.greedy if res.greedy is not None else greedy(stats_fit, cluster)}
    out: dict = {}
    for name, pl in methods.items():
        out[name] = evaluate(stats_fit, pl, cluster, w, model, system).summary()
    out["solver"].update(res.summary())
    rr, sv = out["round_robin"], out["solver"]
    out["gain_vs_round_robin"] = {"cross_node_tokens": _gain(rr["cross_node_tokens"], sv["cross_node_tokens"]),
                                  "cross_gpu_tokens": _gain(rr["cross_gpu_tokens"], sv["cross_gpu_tokens"]),
                                  "objective": _gain(rr["objective"], sv["objective"])}
    if stats_eval is not None:
        held = {name: evaluate(stats_eval, pl, cluster, w, model, system).summary() for name, pl in methods.items()}
        g_in = out["gain_vs_round_robin"]["cross_node_tokens"]
        g_out = _gain(held["round_robin"]["cross_node_tokens"], held["solver"]["cross_node_tokens"])
        held["gain_vs_round_robin"] = {"cross_node_tokens": g_out,
                                       "kept_share_of_in_sample_gain": (g_out / g_in) if g_in and g_out is not None else None}
        out["held_out"] = held
    return out, res.placement


@tabular("methods")
def experts(
    ctx: typer.Context,
    model: str = typer.Option(..., "--model", "-m", help="Built-in MoE model, Hugging Face id, or config.json."),
    trace: Optional[Path] = typer.Option(None, "--trace", help="Routing trace (.npz or .json; docs/moe-routing-format.md)."),
    synthetic: bool = typer.Option(False, "--synthetic", help="Generate a seeded synthetic trace shaped like the model."),
    tokens: int = typer.Option(8192, "--tokens", min=2, max=MAX_ROUTING_TOKENS, help="Tokens of the synthetic trace."),
    seed: int = typer.Option(0, "--seed", min=0, max=MAX_SEED, help="Seed of the synthetic trace."),
    gpus: int = typer.Option(..., "--gpus", min=1, max=MAX_GPUS, help="GPUs the experts go on (the expert-parallel "
                             "size)."),
    gpus_per_node: int = typer.Option(8, "--gpus-per-node", min=1, max=MAX_GPUS, help="GPUs per node."),
    redundant: int = typer.Option(0, "--redundant", min=0, max=MAX_EXPERTS, help="Redundant expert slots per layer "
                                  "(replicas of hot experts)."),
    time_limit: float = typer.Option(60.0, "--time-limit", help="Solver time limit in CP-SAT deterministic seconds "
                                     "(about seconds of one core; the same input gives the same placement)."),
    max_imbalance: float = typer.Option(1.05, "--max-imbalance", help="Target max / mean GPU load (a ratio, at "
                                        "least 1)."),
    node_cost: float = typer.Option(4.0, "--node-cost", help="Cost of a token crossing nodes, relative to crossing "
                                    "GPUs in a node (= 1)."),
    gpu: str = typer.Option("h100", "--gpu", "-g", help="System for the memory check and the MoE layer time."),
    weight_bytes: float = typer.Option(1.0, "--weight-bytes", help="Bytes per expert parameter (1 = fp8, 2 = bf16)."),
    holdout: bool = typer.Option(True, "--holdout/--no-holdout", help="Fit on the first half of a per-token trace, "
                                 "report the second half too."),
    plot: Optional[Path] = typer.Option(None, "--plot", help="Also draw the expert load per GPU before and after "
                                        "placement to this file (.png or .svg; needs planner[plot])."),
    report_path: Optional[Path] = typer.Option(None, "--report", help="Also write a self-contained HTML report "
                                               "(tables and plots) to this file (.html)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of tables."),
    export: Optional[Path] = typer.Option(None, "--export", help="Write the placement (physical slot -> expert) as JSON."),
    timings: bool = typer.Option(False, "--timings", help="With --json: include the solver's wall-clock time "
                                 "(left out by default so the same input gives the same bytes)."),
) -> None:
    """Place an MoE model's experts (and replicas) on GPUs: CP-SAT vs round-robin and greedy (EPLB)."""
    if (trace is None) == (not synthetic):
        fail("give exactly one of --trace FILE or --synthetic")
    if trace is not None:
        refuse_unused(ctx, "with --trace (used only by --synthetic)", "tokens", "seed")
    refuse_unused(ctx, "without --json", *(() if as_json else ("timings",)))
    check_artifacts(plot, report_path, {"--trace": trace, "--export": export})
    check_number(time_limit, "--time-limit", hi=MAX_TIME_LIMIT_S)
    check_number(max_imbalance, "--max-imbalance (max / mean GPU load)", lo=1.0, lo_open=False, hi=MAX_IMBALANCE)
    check_number(node_cost, "--node-cost (relative to a same-node GPU hop = 1)", lo=1.0, lo_open=False,
                 hi=MAX_LINK_COST)
    check_number(weight_bytes, "--weight-bytes", hi=MAX_BYTES_PER_PARAM)
    refuse_overwrite(export, "--export", {"--trace": trace, "--model": model, "--gpu": gpu})
    m = planner.get_model(model)
    if m.moe is None:
        fail(f"{m.name} has no experts")
    system = planner.get_system(gpu)
    n_layers, e, k = moe_shape(m)
    cluster = ExpertCluster(gpus=gpus, gpus_per_node=min(gpus_per_node, gpus), num_experts=e, redundant=redundant,
                      c_node=node_cost)
    fits = expert_slots(m, system.accelerator.memory_bytes, weight_bytes)
    if cluster.slots > fits:
        per_slot = m.moe.expert_intermediate_size * m.hidden_size * (3 if m.gated_mlp else 2) * weight_bytes * n_layers
        fail(f"{gpus} GPUs need {cluster.slots} expert slots per GPU per layer ({cluster.slots * per_slot / 1e9:.0f} GB "
             f"of expert weights over {n_layers} MoE layers); a {system.accelerator.name} holds at most {fits} "
             f"({system.accelerator.memory_bytes / 2**30:.0f} GiB, half kept for attention, KV cache and activations); "
             f"use at least {-(-(e + redundant) // max(1, fits))} GPUs")
    if synthetic:
        data: RoutingTrace | RoutingStats = synthetic_trace(m, tokens=tokens, seed=seed)
    else:
        data = load_routing(trace, num_experts=e)  # type: ignore[arg-type]
    if not isinstance(data, RoutingTrace):
        refuse_unused(ctx, "with an aggregated trace (only a per-token trace splits into halves)", "holdout")
    if isinstance(data, RoutingTrace):
        fit_t, eval_t = data.halves() if holdout else (data, None)
        fit = fit_t.stats()
        held = eval_t.stats() if eval_t is not None else None
    else:
        fit, held = data, None
    where = trace.name if trace is not None else "synthetic trace"
    check_stats(fit, num_experts=e, top_k=k, moe_layers=n_layers, where=where)
    fit = widen(fit, e)
    held = widen(held, e) if held is not None else None
    report, placement = placement_report(m, fit, held, cluster, system, time_limit, max_imbalance, quiet=as_json)
    report = {"model": m.name, "gpus": gpus, "gpus_per_node": cluster.gpus_per_node, "redundant": redundant,
              "slots_per_gpu": cluster.slots, "moe_layers": n_layers, "experts": e, "top_k": k,
              "trace": {"source": where, "tokens_fit": fit.tokens, "tokens_held_out": held.tokens if held else 0,
                        "expert_skew_mean": float(fit.skew().mean())}, **report}
    from planner.api import placement_plan  # the placement document, through the gate

    solver = {k: report["solver"][k] for k in ("method", "status", "objective", "bound", "gap")}
    doc = placement_plan(placement, m, cluster, system=system, weight_bytes_per_param=weight_bytes, solver=solver)
    report["plan_document"] = doc.model_dump(mode="json", by_alias=True)
    if export is not None:
        export.write_text(json.dumps(report["plan_document"]))
    write_artifacts(placement, plot, None, quiet=as_json, stats=held if held is not None else fit, cluster=cluster)
    if report_path is not None:
        write_artifacts(placement, None, report_path, quiet=as_json, title=f"{m.name}: experts on {gpus} GPUs",
                        stats=held if held is not None else fit, cluster=cluster)
    if as_json:
        print_json(report, timings=timings)
        return
    _render(report, export)


def _render(r: dict, export: Optional[Path]) -> None:
    say(f"[bold]{r['model']}[/bold]: {r['experts']} experts x {r['moe_layers']} MoE layers, top-{r['top_k']}, "
        f"on {r['gpus']} GPUs ({r['gpus_per_node']} per node, {r['slots_per_gpu']} slots each, "
        f"{r['redundant']} redundant per layer); trace {r['trace']['source']}, "
        f"{r['trace']['tokens_fit']} tokens fitted")
    say()
    cols = ("method", "max/mean", "cross-GPU", "cross-node", "skew", "objective", "MoE ms")
    t = table("In sample: GPU load, tokens crossing GPUs / nodes between consecutive layers, objective (lower is "
              "better), MoE layer time", *cols, right=cols[1:], key="methods")
    for name in ("solver", "greedy", "round_robin"):
        s = r[name]
        t.add_row(name.replace("_", "-"), f"{s['load_imbalance']:.3f}", f"{s['cross_gpu_tokens']:,.0f}",
                  f"{s['cross_node_tokens']:,.0f}", f"{s['comm_skew']:.3f}", f"{s['objective']:.3f}",
                  f"{s['moe_layer_time_s'] * 1e3:.2f}" if s.get("moe_layer_time_s") else "-")
    show(t)
    s = r["solver"]
    say(f"solver: {s['method']}, {s['status']}, objective {s['objective']:.4f}, bound {s['bound']:.4f} "
        f"(gap {100 * s['gap']:.1f} %; subproblems' gap {100 * s['subproblem_gap']:.1f} %), {s['time_s']:.1f} s")
    g = r["gain_vs_round_robin"]["cross_node_tokens"]
    if g is not None:
        say(f"cross-node tokens vs round-robin: {-100 * g:+.1f} %")
    if "held_out" in r:
        h = r["held_out"]
        hg = h["gain_vs_round_robin"]
        say(f"held-out half: solver max/mean {h['solver']['load_imbalance']:.3f}, cross-node tokens vs "
            f"round-robin {-100 * (hg['cross_node_tokens'] or 0):+.1f} % "
            f"({100 * (hg['kept_share_of_in_sample_gain'] or 0):.0f} % of the in-sample gain kept)")
    if export is not None:
        say(f"placement written to {export}")


__all__ = ["EXPORT_FORMAT", "experts", "placement_report"]
