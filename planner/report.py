"""A self-contained HTML report of one answer: its main tables and its plots, in one file.

:func:`write_report` takes what a search or estimate returned (a training search, a training fleet, a training
estimate, a serving search, a GPU mix, an expert placement, a simulation of a worker or of a deployment) and
writes one HTML file that needs nothing else: the styles are inline, the plots are PNG images inside the file
(base64 ``data:`` URLs, drawn by :mod:`planner.plots`), and a Content-Security-Policy forbids every script and
every network fetch, so the file opens the same offline, in a mail attachment or in a sandbox.

Every string in the file is escaped (``html.escape`` after :func:`planner.errors.one_line`): a model or GPU name
is user input, and ``<script>`` in one shows as text. The same answer gives the same bytes (no wall-clock time
is written: the searches' ``elapsed_s`` is left out; the PNGs carry no date).
"""

from __future__ import annotations

import base64
import html
import io
import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .errors import PlannerError, one_line

#: the suffixes a report is written as
SUFFIXES = (".html", ".htm")

STYLE = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2em auto; max-width: 1150px;
       color: #222; line-height: 1.4; padding: 0 1em; }
h1 { font-size: 1.5em; margin-bottom: 0.2em; } h2 { font-size: 1.15em; margin-top: 1.8em;
     border-bottom: 1px solid #ddd; padding-bottom: 0.2em; }
p.meta { color: #666; margin-top: 0; font-size: 0.9em; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 0.88em; }
th, td { border: 1px solid #ddd; padding: 0.25em 0.6em; text-align: left; white-space: nowrap; }
th { background: #f3f5f7; } td.n { text-align: right; font-variant-numeric: tabular-nums; }
table.kv th { width: 16em; } figure { margin: 1em 0; } figure img { max-width: 100%; height: auto; }
figcaption { color: #555; font-size: 0.85em; } ul.notes { font-size: 0.9em; } footer { color: #888;
font-size: 0.8em; margin-top: 3em; border-top: 1px solid #eee; padding-top: 0.5em; }
"""

CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"


class ReportError(PlannerError):
    """A report that cannot be written: a file name that is not .html, an unwritable place, or an answer of a kind
    the report does not know."""


# ---------------------------------------------------------------------------
# HTML pieces (every value escaped here and nowhere else)
# ---------------------------------------------------------------------------

def esc(value: object) -> str:
    """``value`` as HTML text: one line (control and bidi-format characters escaped), then ``html.escape``."""
    return html.escape(one_line(str(value)), quote=True)


def fmt(value: object) -> str:
    """A table cell's text: integers with thousands separators, floats to 4 significant digits (whole numbers
    from 10,000 up), None as "-", booleans as yes / no."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if not math.isfinite(value):
            return "-"
        return f"{value:,.0f}" if abs(value) >= 1e4 else f"{value:.4g}"
    return str(value)


def _is_num(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def table(columns: Sequence[str], rows: Sequence[Sequence[object]], cls: str = "") -> str:
    """An HTML table (numbers right-aligned); an empty ``rows`` gives a "none" paragraph."""
    if not rows:
        return "<p>none</p>"
    head = "".join(f"<th>{esc(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f'<td class="n">{esc(fmt(v))}</td>' if _is_num(v) else f"<td>{esc(fmt(v))}</td>"
                                    for v in r) + "</tr>" for r in rows)
    attr = f' class="{esc(cls)}"' if cls else ""
    return f"<table{attr}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def key_values(pairs: Sequence[tuple[str, object]]) -> str:
    """A two-column table of (what, value)."""
    body = "".join(f"<tr><th>{esc(k)}</th>" + (f'<td class="n">{esc(fmt(v))}</td>' if _is_num(v) else
                                             f"<td>{esc(fmt(v))}</td>") + "</tr>" for k, v in pairs)
    return f'<table class="kv"><tbody>{body}</tbody></table>'


def notes(lines: Sequence[str]) -> str:
    return '<ul class="notes">' + "".join(f"<li>{esc(x)}</li>" for x in lines) + "</ul>" if lines else ""


def figure(fig: Any, caption: str) -> str:
    """A matplotlib Figure as an inline PNG (``data:image/png;base64``) with its caption."""
    from .plots._style import DPI

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    return (f'<figure><img alt="{esc(caption)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{esc(caption)}</figcaption></figure>")


Section = tuple[str, str]  # (heading, HTML body)


# ---------------------------------------------------------------------------
# training
# ---------------------------------------------------------------------------

PLAN_COLUMNS = ("GPUs", "tp", "pp", "vpp", "cp", "ep", "dp", "micro-batch", "recompute", "ZeRO", "dtype",
                "step time (s)", "tokens/s", "MFU (%)", "peak memory (GB)")


def _plan_row(e: Any) -> list[object]:
    p = e.plan
    return [e.num_gpus, p.tp, p.pp, p.vpp, p.cp, p.ep, p.dp, p.micro_batch, p.recompute, p.zero, p.dtype,
            e.step_time_s, e.tokens_per_s, 100 * e.mfu, e.memory.peak_bytes / 1e9]


def _estimate_sections(e: Any, context: dict) -> list[Section]:
    """A training estimate: its plan, memory by kind, step time by component, assumptions, the memory plot."""
    from .plots import plot_memory

    m = e.memory
    summary = key_values([("model", e.model), ("GPU", e.gpu), ("GPUs", e.num_gpus), ("step time (s)", e.step_time_s),
                          ("tokens/s", e.tokens_per_s), ("MFU (%)", 100 * e.mfu),
                          ("model TFLOP/s per GPU", e.model_tflops_per_gpu), ("fits in memory", e.fits)])
    plan = table(PLAN_COLUMNS, [_plan_row(e)])
    mem = table(("part", "GB per GPU (most loaded stage)"),
                [("weights", m.weights_bytes / 1e9), ("gradients", m.gradients_bytes / 1e9),
                 ("optimizer states", m.optimizer_bytes / 1e9), ("activations", m.activations_bytes / 1e9),
                 ("other (runtime reserve, logits, buffers)", m.other_bytes / 1e9), ("peak", m.peak_bytes / 1e9),
                 ("capacity", m.capacity_bytes / 1e9)])
    steps = table(("component", "seconds per step"), sorted(e.breakdown.items(), key=lambda kv: -kv[1]))
    fig = figure(plot_memory(e, stages=context.get("stages")), "memory per GPU by kind and pipeline stage, "
                 "against the GPU's capacity")
    return [("Plan", summary + plan), ("Memory", mem + fig), ("Step time", steps),
            ("Assumptions", notes(list(e.assumptions)))]


def _train_search_sections(r: Any, context: dict) -> list[Section]:
    from .plots import plot_train_pareto

    b = r.best
    cpm = r.cost_per_million_tokens(b)
    pairs: list[tuple[str, object]] = [
        ("model", b.model), ("GPU", b.gpu), ("objective", r.objective),
        ("GPU counts searched", ", ".join(str(n) for n in r.gpu_counts)), ("layouts (shapes)", r.shapes),
        ("plans estimated", r.estimated), ("price per GPU-hour ($)", r.price_per_gpu_hour),
        ("tokens to train", r.tokens), ("best: GPUs", b.num_gpus), ("best: step time (s)", b.step_time_s),
        ("best: MFU (%)", 100 * b.mfu), ("best: $ per million tokens", cpm)]
    if r.tokens is not None:
        t = r.tokens / b.tokens_per_s
        pairs.append(("best: time to train (days)", t / 86400))
        if r.price_per_gpu_hour is not None:
            pairs.append(("best: cost to train ($)", t / 3600 * b.num_gpus * r.price_per_gpu_hour))
    if r.partition is not None:
        pairs.append(("layer partition (MILP)", f"{r.partition.status}, gap {100 * r.partition.gap:.2f} %"))
    out: list[Section] = [("Answer", key_values(pairs) + notes([f"binding: {x}" for x in r.binding]
                                                               + [f"warning: {x}" for x in r.warnings]))]
    plans = [b, *r.alternatives]
    out.append(("Best plan and alternatives", table(("rank", *PLAN_COLUMNS, "$ per million tokens"),
                                                    [[i, *_plan_row(e), r.cost_per_million_tokens(e)]
                                                     for i, e in enumerate(plans)])))
    if r.pareto:
        out.append(("Pareto front over GPU counts", table((*PLAN_COLUMNS, "$ per million tokens"),
                                                          [[*_plan_row(e), r.cost_per_million_tokens(e)]
                                                           for e in sorted(r.pareto, key=lambda e: e.num_gpus)])))
    out.append(("Time vs cost", figure(plot_train_pareto(r), "time vs cost over GPU counts (the best plan starred)")))
    out += _estimate_sections(b, context)[1:]
    return out


def _train_fleet_sections(r: Any, context: dict) -> list[Section]:
    from .plots import plot_train_pareto

    c = r.cheapest
    pairs = [("model", c.result.best.model), ("objective", r.objective), ("tokens to train", r.tokens),
             ("deadline (days)", None if r.deadline_s is None else r.deadline_s / 86400), ("budget ($)", r.budget_usd),
             ("cheapest", f"{c.num_gpus} x {c.gpu}"), ("cheapest: time to train (days)", c.time_to_train_s / 86400),
             ("cheapest: cost to train ($)", c.cost_to_train_usd)]
    rows = [[t.gpu, t.num_gpus, t.time_to_train_s / 86400, t.cost_to_train_usd, t.price_per_gpu_hour_usd,
             t.power_w / 1e3, t.energy_to_train_mwh, t.pareto] for t in r.frontier]
    out: list[Section] = [
        ("Answer", key_values(pairs)),
        ("GPU types", table(("GPU", "GPUs", "time to train (days)", "cost to train ($)", "$ per GPU-hour", "power (kW)",
                             "energy (MWh)", "Pareto"), rows)),
        ("Types that cannot", table(("GPU", "reason"), [[t.gpu, t.reason] for t in r.infeasible])),
        ("Time vs cost", figure(plot_train_pareto(r), "time vs cost to train, one point per GPU type")),
    ]
    out += [(f"Cheapest type's plan: {c.gpu}", table(PLAN_COLUMNS, [_plan_row(c.result.best)]))]
    return out + _estimate_sections(c.result.best, context)[1:2]


# ---------------------------------------------------------------------------
# serving
# ---------------------------------------------------------------------------

SERVE_COLUMNS = ("layout", "GPUs per worker", "concurrency", "TTFT (ms)", "TPOT (ms)", "tokens/s per GPU",
                 "tokens/s per user", "requests/s")


def _serve_row(e: Any) -> list[object]:
    from .plots.serving import layout_label

    return [layout_label(e.plan), e.plan.gpus, e.concurrency, e.ttft_ms, e.tpot_ms, e.tokens_per_s_per_gpu,
            e.tokens_per_s_per_user, e.requests_per_s]


def _serve_search_sections(r: Any, context: dict) -> list[Section]:
    from .plots import plot_serving_front

    out: list[Section] = [("Answer", key_values([("best", r.best), ("layouts tried", r.layouts),
                                                 ("estimates", r.estimates)]))]
    if r.aggregated is not None:
        a = r.aggregated
        out.append(("Aggregated", table((*SERVE_COLUMNS, "replicas", "GPUs", "$ per million tokens"),
                                        [[*_serve_row(a.estimate), a.replicas, a.gpus, a.cost_per_million_tokens_usd]])))
    if r.disaggregated is not None:
        d = r.disaggregated
        from .plots.serving import layout_label

        out.append(("Disaggregated", table(
            ("prefill layout", "decode layout", "prefill workers", "decode workers", "groups", "GPUs", "TTFT (ms)",
             "TPOT (ms)", "tokens/s per GPU", "tokens/s per user", "$ per million tokens"),
            [[layout_label(d.prefill_plan), layout_label(d.decode.plan), d.prefill_workers, d.decode_workers,
              d.groups, d.gpus, d.ttft_ms, d.tpot_ms, d.tokens_per_s_per_gpu, d.tokens_per_s_per_user,
              d.cost_per_million_tokens_usd]])))
    out.append(("Pareto front", table(SERVE_COLUMNS, [_serve_row(e) for e in r.pareto])))
    out.append(("Throughput vs speed per user", figure(plot_serving_front(r), "tokens/s per GPU vs tokens/s per "
                                                       "user, one series per worker layout")))
    return out


def _mix_sections(r: Any, context: dict) -> list[Section]:
    from .plots import plot_mix
    from .plots.serving import layout_label

    best = r.best_single
    pairs = [("model", r.model), ("GPU types offered", ", ".join(r.gpus_offered)),
             ("rate sized for (requests/s)", r.rate_rps), ("mean rate (requests/s)", r.mean_rate_rps),
             ("TTFT SLO (ms)", r.ttft_ms), ("TPOT SLO (ms)", r.tpot_ms), ("quantile", r.quantile),
             ("GPUs", ", ".join(f"{n} x {g}" for g, n in r.gpus.items())), ("$ per hour", r.cost_per_hour_usd),
             ("$ per million output tokens", r.cost_per_million_tokens_usd), ("power (kW)", r.power_kw),
             ("energy (Wh per million output tokens)", r.energy_wh_per_million_tokens),
             ("best single type", None if best is None else f"{best.gpu}: ${fmt(best.cost_per_hour_usd)}/h"),
             ("saving vs best single type (%)", None if r.saving_vs_best_single is None
              else 100 * r.saving_vs_best_single),
             ("solver", f"{r.solver.get('name', '')} {r.solver.get('status', '')}, gap {r.solver.get('gap', '-')}")]
    pools = [[p.gpu, p.role, layout_label(p.plan), p.replicas, p.gpus, ", ".join(r.buckets[j].label for j in p.buckets
                                                                                 if 0 <= j < len(r.buckets)),
              100 * p.traffic_share, 100 * p.utilization, p.cost_per_hour_usd, p.power_w / 1e3] for p in r.pools]
    buckets = [[b.label, b.isl, b.osl, b.rate_rps, 100 * b.share, b.longest] for b in r.buckets]
    singles = [[s.gpu, s.cost_per_hour_usd, s.gpus, s.reason] for s in r.singles]
    out = [("Answer", key_values(pairs)),
           ("Pools", table(("GPU", "role", "layout", "replicas", "GPUs", "buckets", "traffic (%)", "utilization (%)",
                            "$ per hour", "power (kW)"), pools)),
           ("Workload buckets", table(("bucket", "isl", "osl", "requests/s", "share (%)", "longest"), buckets)),
           ("Each type alone", table(("GPU", "$ per hour", "GPUs", "why not"), singles)),
           ("The mix", figure(plot_mix(r), "GPUs per type and role; $/hour against each type alone"))]
    v = context.get("verify")
    if isinstance(v, dict) and isinstance(v.get("pools"), list):  # planner mix --verify's report
        rows = [[p.get("name"), (p.get("ttft_ms") or {}).get("p90"), (p.get("tpot_ms") or {}).get("p90"),
                 None if p.get("attainment") is None else 100 * p["attainment"], "yes" if p.get("ok") else "no"]
                for p in v["pools"]]
        lines = [f"{v.get('requests', 0):,} requests replayed behind the {v.get('router', '?')} router; target: "
                 f"{100 * float(v.get('target', 0)):.0f} % of each pool's requests within both SLOs."]
        rounds = v.get("rounds") or []
        if v.get("repaired") and rounds:
            lines.append(f"The capacity model's mix (${fmt(rounds[0].get('cost_per_hour_usd'))}/h) met the SLOs "
                         f"for {fmt(100 * float(rounds[0].get('attainment', 0)))} % of requests; after "
                         f"{len(rounds) - 1} round(s) of lowering the short pools' capacities the mix above is "
                         f"the answer.")
        out.insert(2, ("Verified by simulation", notes(lines) + table(
            ("pool", "TTFT p90 (ms)", "TPOT p90 (ms)", "within SLOs (%)", "meets the target"), rows)))
    return out


def _pct(d: dict | None) -> list[object]:
    return [None] * 4 if not d else [d.get("p50"), d.get("p90"), d.get("p99"), d.get("mean")]


def _simulation_sections(r: Any, context: dict) -> list[Section]:
    from .plots import plot_simulation

    pairs = [("requests", r.requests), ("arrival rate (requests/s)", r.rate),
             ("SLO attainment (%)", 100 * r.attainment), ("output tokens/s", r.throughput_tokens_per_s),
             ("duration (s)", r.duration_s)]
    if hasattr(r, "router"):
        pairs.insert(0, ("router", r.router))
    out: list[Section] = [("Answer", key_values(pairs)),
                          ("Percentiles", table(("metric", "p50", "p90", "p99", "mean"),
                                                [["TTFT (ms)", *_pct(r.ttft_ms)], ["TPOT (ms)", *_pct(r.tpot_ms)]]))]
    pools = getattr(r, "pools", None)
    if pools:
        out.append(("Pools", table(("pool", "role", "GPU", "replicas", "GPUs", "requests", "TTFT p50 (ms)",
                                    "TTFT p90 (ms)", "TTFT p99 (ms)", "TPOT p50 (ms)", "TPOT p90 (ms)",
                                    "TPOT p99 (ms)", "attainment (%)"),
                                   [[p.name, p.role, p.gpu, p.replicas, p.gpus, p.requests, *_pct(p.ttft_ms)[:3],
                                     *_pct(p.tpot_ms)[:3], None if p.attainment is None else 100 * p.attainment]
                                    for p in pools])))
    kw = {k: context[k] for k in ("ttft_slo_ms", "tpot_slo_ms") if k in context}
    out.append(("Distributions", figure(plot_simulation(r, **kw), "TTFT and TPOT: fraction of requests at or "
                                        "below each value")))
    return out


# ---------------------------------------------------------------------------
# expert placement
# ---------------------------------------------------------------------------

def _placement_sections(r: Any, context: dict) -> list[Section]:
    from .plots import plot_expert_load

    placement = getattr(r, "placement", r)
    pairs: list[tuple[str, object]] = [("GPUs", placement.gpus), ("MoE layers", placement.num_layers),
                                       ("experts", placement.num_experts)]
    if hasattr(r, "method"):
        pairs += [("method", r.method), ("status", r.status), ("objective", r.objective), ("bound", r.bound),
                  ("gap (%)", 100 * r.gap), ("subproblems", r.subproblems)]
    out: list[Section] = [("Answer", key_values(pairs) + notes(list(getattr(r, "notes", []))))]
    stats, cluster = context.get("stats"), context.get("cluster")
    if stats is None or (cluster is None and context.get("baseline") is None):
        out.append(("Load per GPU", ("<p>give the routing statistics and the cluster (stats=, cluster=) for the "
                                     "evaluation and the load plot</p>")))
        return out
    from .moe.placement import evaluate, round_robin

    base = context.get("baseline") or round_robin(stats, cluster)
    rows = []
    if cluster is not None:
        ev_b, ev_a = evaluate(stats, base, cluster), evaluate(stats, placement, cluster)
        for k, name in (("load_imbalance", "load imbalance (mean max / mean)"),
                        ("worst_layer_imbalance", "worst layer imbalance"),
                        ("cross_gpu_tokens", "cross-GPU tokens"), ("cross_node_tokens", "cross-node tokens"),
                        ("comm_skew", "communication skew"), ("objective", "objective")):
            rows.append([name, getattr(ev_b, k), getattr(ev_a, k)])
    base_name = str(base.meta.get("method", "baseline")).replace("_", " ")
    kw = {k: context[k] for k in ("layer",) if k in context}
    out.append(("Evaluation", table(("metric", base_name, "placed"), rows)))
    out.append(("Load per GPU", figure(plot_expert_load(r, stats=stats, cluster=cluster, baseline=base, **kw),
                                       f"routed tokens per GPU, {base_name} vs placed")))
    return out


# ---------------------------------------------------------------------------
# the report
# ---------------------------------------------------------------------------

def _kind(result: Any) -> tuple[str, Callable[[Any, dict], list[Section]]]:
    """(what the answer is, its sections), by the fields it has."""
    if hasattr(result, "frontier") and hasattr(result, "cheapest"):
        return "training plan over GPU types", _train_fleet_sections
    if hasattr(result, "best") and hasattr(result, "price_per_gpu_hour") and hasattr(result, "alternatives"):
        return "training plan search", _train_search_sections
    if hasattr(result, "memory") and hasattr(result, "step_time_s") and hasattr(result, "plan"):
        return "training estimate", _estimate_sections
    if hasattr(result, "aggregated") and hasattr(result, "disaggregated") and hasattr(result, "pareto"):
        return "serving plan search", _serve_search_sections
    if hasattr(result, "pools") and hasattr(result, "singles"):
        return "GPU mix", _mix_sections
    if hasattr(result, "ttft_ms") and hasattr(result, "attainment"):
        return ("deployment simulation" if hasattr(result, "pools") else "serving simulation"), _simulation_sections
    if hasattr(getattr(result, "placement", result), "fractions"):
        return "expert placement", _placement_sections
    raise ReportError(f"no report for a {type(result).__name__} (a training or serving search, a training "
                      f"estimate, a GPU mix, an expert placement or a simulation)")


def _default_title(result: Any, kind: str) -> str:
    for probe in (lambda r: r.best.model, lambda r: r.cheapest.result.best.model, lambda r: r.model,
                  lambda r: r.pareto[0].model, lambda r: r.aggregated.estimate.model,
                  lambda r: r.disaggregated.decode.model):
        try:
            name = probe(result)
        except (AttributeError, IndexError, TypeError):
            continue
        if isinstance(name, str):
            return f"{name}: {kind}"
    return kind[0].upper() + kind[1:]


def render_report(result: Any, title: str | None = None, **context: Any) -> str:
    """The report's HTML text (:func:`write_report`)."""
    from .version import __version__
    from .plots._style import require_matplotlib

    kind, sections = _kind(result)
    require_matplotlib()
    parts = sections(result, context)
    head = title if title is not None else _default_title(result, kind)
    body = "".join(f"<section><h2>{esc(h)}</h2>{content}</section>" for h, content in parts)
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta http-equiv=\"Content-Security-Policy\" content=\"{CSP}\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{esc(head)}</title><style>{STYLE}</style></head>\n<body><h1>{esc(head)}</h1>"
            f"<p class=\"meta\">{esc(kind)}: planner {esc(__version__)}</p>\n{body}\n"
            "<footer>Every number is the planner's prediction (its cost model, searches and simulators), not a "
            "measurement; the assumptions are listed with each estimate.</footer></body></html>\n")


def write_report(result: Any, path: str | os.PathLike, title: str | None = None, **context: Any) -> Path:
    """Write the HTML report of ``result`` to ``path`` (ending .html or .htm) and return the path.

    ``context``: what the answer alone does not hold. ``stages`` (a training estimate's per-stage memory,
    :func:`planner.cost.training.stage_memory`); ``stats``, ``cluster``, ``baseline``, ``layer`` (an expert
    placement's routing statistics, cluster, the placement it is compared with [round robin], the layer shown);
    ``ttft_slo_ms``, ``tpot_slo_ms`` (a simulation's SLOs, drawn on its CDFs); ``verify`` (a mix's verification,
    :func:`planner.fleet_verify.verify_mix`'s report)."""
    from .files import output_path

    p = output_path(path, tuple(SUFFIXES), "report", ReportError)
    if p.is_dir():
        raise ReportError(f"{one_line(str(p))}: is a folder, expected an .html file name")
    text = render_report(result, title, **context)
    try:
        p.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise ReportError(f"{one_line(str(p))}: cannot write the report ({exc.strerror or exc})") from None
    return p


__all__ = ["ReportError", "render_report", "write_report"]
