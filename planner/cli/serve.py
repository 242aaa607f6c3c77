"""``planner estimate serve``, ``planner serve`` (plan search) and ``planner simulate``."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any, Optional

import typer

import planner
from .render import (BACKENDS, PRECISIONS, ROUTER_NAMES, SERVING_TARGETS, Activity, check_artifacts, choice, fail, gb,
                     print_json, refuse_overwrite, refuse_unused, say, show, slo_ms, table, tabular, write_artifacts)
from planner.limits import (MAX_CONCURRENCY, MAX_GPUS, MAX_RATE, MAX_REQUEST_TOKENS, MAX_REQUESTS, MAX_SEED,
                            check_number)
from planner.cost.power import serving_power_w, wh_per_million_tokens
from planner.cost.serving import ServingPlan, estimate_serving, kv_bytes_per_request_per_gpu
from planner.validate.serving_rows import estimate_row, read_rows


def _plan(tp: int, pp: int, dp: int, ep: Optional[int], precision: str, backend: str) -> ServingPlan:
    return ServingPlan(tp=tp, pp=pp, dp=dp, ep=ep, precision=precision, backend=backend)  # type: ignore[arg-type]


def _worker_power_w(s: planner.System, est: Any, prefill_share: float | None = None, load: float = 1.0) -> float:
    """Watts of one worker's GPUs at its operating point (planner.cost.power.serving_power_w: the decode batch per
    attention-DP group, the share of GPU time prefilling, the fraction ``load`` of the traffic it is sized for)."""
    share = est.breakdown.get("prefill_share", 0.0) if prefill_share is None else prefill_share
    return est.plan.gpus * serving_power_w(s.accelerator, est.concurrency / est.plan.dp, share, load)


def _power_keys(power_w: float, tokens_per_s: float) -> dict[str, Any]:
    """The JSON keys of a serving answer's power: kW and Wh per million output tokens."""
    return {"power_kw": power_w / 1e3, "energy_wh_per_million_tokens": wh_per_million_tokens(power_w, tokens_per_s)}


def _deployment_power(res: Any, s: planner.System, rate: float | None, osl: int) -> dict[str, dict[str, Any]]:
    """Power of each answer of ``planner serve`` at the rate it is sized for (all of its capacity without a rate):
    aggregated replicas at their batch and prefill share; disaggregated decode workers at their batch (no
    prefill), prefill workers busy prefilling for their pool's utilisation (planner.cost.power)."""
    out: dict[str, dict[str, Any]] = {}
    a, d = res.aggregated, res.disaggregated
    if a is not None:
        full = a.gpus * a.estimate.tokens_per_s_per_gpu
        load = min(1.0, rate * osl / full) if rate is not None and full > 0 else 1.0
        out["aggregated"] = _power_keys(a.replicas * _worker_power_w(s, a.estimate, load=load), load * full)
    if d is not None:
        full = d.gpus * d.tokens_per_s_per_gpu
        load = min(1.0, rate * osl / full) if rate is not None and full > 0 else 1.0
        decode_w = d.decode_workers * _worker_power_w(s, d.decode, prefill_share=0.0, load=load)
        busy = min(1.0, d.estimate.breakdown.get("prefill_share", 1.0))  # the prefill pool's utilisation
        prefill_w = d.prefill_workers * d.prefill_plan.gpus * serving_power_w(s.accelerator, 1.0, 1.0, load * busy)
        out["disaggregated"] = _power_keys(decode_w + prefill_w, load * full)
    return out


Precision = choice("Precision", PRECISIONS)
Backend = choice("Backend", BACKENDS)
ServeObjective = choice("ServeObjective", ("throughput", "cost"))
Disagg = choice("Disagg", ("auto", "on", "off"))
ServeTarget = choice("ServeTarget", SERVING_TARGETS)
Router = choice("Router", ROUTER_NAMES)

_PRECISION_HELP = "Weights and KV cache: bf16, fp16, fp8, int4 (weight-only) or fp4 (NVFP4)."
_BACKEND_HELP = "The serving engine whose measured constants apply."


@tabular("estimate", "breakdown")
def estimate_serve(
    ctx: typer.Context,
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Built-in name, Hugging Face id, or config.json."),
    gpu: Optional[str] = typer.Option(None, "--gpu", "-g", help="Built-in system name / alias, or a hardware YAML."),
    tp: int = typer.Option(1, "--tp", min=1, max=MAX_GPUS, help="Attention tensor parallel size."),
    pp: int = typer.Option(1, "--pp", min=1, max=MAX_GPUS, help="Pipeline stages."),
    dp: int = typer.Option(1, "--dp", min=1, max=MAX_GPUS, help="Attention data parallel size (DP attention)."),
    ep: Optional[int] = typer.Option(None, "--ep", min=1, max=MAX_GPUS, help="Expert parallel size.",
                                     show_default="tp x dp for MoE"),
    isl: Optional[int] = typer.Option(None, "--isl", min=1, max=MAX_REQUEST_TOKENS, help="Input (prompt) tokens per "
                                      "request."),
    osl: Optional[int] = typer.Option(None, "--osl", min=1, max=MAX_REQUEST_TOKENS, help="Output tokens per request."),
    concurrency: Optional[int] = typer.Option(None, "--concurrency", "-c", min=1, max=MAX_CONCURRENCY,
                                              help="Requests in flight (closed loop: a finished request is "
                                              "replaced at once, as benchmarks run)."),
    rate: Optional[float] = typer.Option(None, "--rate", min=0.0, max=MAX_RATE, help="Instead of --concurrency: "
                                         "requests/s arriving at random (open loop, Poisson), as traffic does."),
    precision: Precision = typer.Option(Precision("bf16"), "--precision", case_sensitive=False, help=_PRECISION_HELP),
    backend: Backend = typer.Option(Backend("trtllm"), "--backend", case_sensitive=False, help=_BACKEND_HELP),
    engine_version: Optional[str] = typer.Option(None, "--engine-version", help="The engine release, when it is "
                                                 "one whose scheduler was measured apart (older releases wait "
                                                 "longer under load).", show_default="current releases"),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of tables."),
    from_csv: Optional[Path] = typer.Option(None, "--from-csv", help="Estimate every row of a file with the columns "
                                            "of measured_serving.csv."),
    out: Optional[Path] = typer.Option(None, "--out", help="With --from-csv: where to write id,ttft_ms,tpot_ms,reason."),
    model_dir: Optional[Path] = typer.Option(None, "--model-dir", help="Where Hugging Face ids in the file resolve "
                                             "(org--name.json) when they are not built in."),
) -> None:
    """TTFT, TPOT and throughput of one serving worker at a fixed concurrency (or every row of a CSV)."""
    precision, backend = precision.value, backend.value
    if from_csv is not None:
        refuse_unused(ctx, "with --from-csv (every row gives its own)", "model", "gpu", "tp", "pp", "dp", "ep", "isl",
                      "osl", "concurrency", "rate", "precision", "backend", "engine_version", "as_json", "csv_out")
        refuse_overwrite(out, "--out", {"--from-csv": from_csv})
        _batch(from_csv, out, model_dir)
        return
    refuse_unused(ctx, "without --from-csv", "out")
    missing = [f for f, v in (("--model", model), ("--gpu", gpu), ("--isl", isl), ("--osl", osl)) if v is None]
    if concurrency is None and rate is None:
        missing.append("--concurrency (or --rate)")
    if missing:
        fail(f"missing {', '.join(missing)} (or give --from-csv FILE)")
    if concurrency is not None and rate is not None:
        fail("give --concurrency (closed loop) or --rate (open loop), not both")
    if rate is not None and rate <= 0:
        fail(f"--rate must be positive, got {rate:g}")
    if engine_version is not None and rate is not None:
        fail("--engine-version changes the closed loop only; with --rate it does nothing")
    if precision not in ("bf16", "fp16", "fp8", "int4", "fp4"):
        fail(f"unknown precision {precision!r}; choose bf16, fp16, fp8, int4 or fp4")
    if backend not in ("trtllm", "vllm", "sglang"):
        fail(f"unknown backend {backend!r}; choose trtllm, vllm or sglang")
    m = _model(model, model_dir)  # type: ignore[arg-type]
    s = planner.get_system(gpu)  # type: ignore[arg-type]
    longest = isl + osl  # type: ignore[operator]
    # estimate_serving refuses, as the search, simulate and the plan gate do, a request beyond the model's
    # context and fp4 without FP4 tensor cores
    if rate is not None:
        from planner.cost.serving import estimate_serving_at_rate

        est = estimate_serving_at_rate(m, s, _plan(tp, pp, dp, ep, precision, backend), isl, osl, rate)  # type: ignore[arg-type]
        concurrency = est.concurrency
    else:
        est = estimate_serving(m, s, _plan(tp, pp, dp, ep, precision, backend), isl, osl, concurrency,  # type: ignore[arg-type]
                               engine_version=engine_version)
    if not est.fits and rate is not None:
        mem = est.memory
        fail(f"{rate:g} requests/s keeps {est.breakdown['in_flight_mean']:.0f} requests in flight on average "
             f"({est.breakdown['in_flight_p99']:.0f} at the 99th percentile); the KV cache holds "
             f"{mem.max_concurrency} of {longest} tokens: use more workers or a lower --rate")
    if not est.fits:
        mem = est.memory
        if mem.max_concurrency == 0 and mem.weights_bytes + mem.workspace_bytes > mem.usable_bytes:
            fail(f"{m.name} does not fit on {est.plan.gpus} x {s.name} at {precision}: the weights alone need "
                 f"{gb(mem.weights_bytes)} GB per GPU and the KV cache and workspace more; {gb(mem.usable_bytes)} GB "
                 f"are usable per GPU (try more --tp / --pp or a smaller --precision)")
        if mem.max_concurrency == 0:
            kv = kv_bytes_per_request_per_gpu(m, est.plan, longest)
            fail(f"{m.name} does not fit on {est.plan.gpus} x {s.name} at {precision}: weights "
                 f"{gb(mem.weights_bytes)} GB + workspace {gb(mem.workspace_bytes)} GB + the KV cache of one request "
                 f"of {longest} tokens {gb(kv)} GB per GPU exceed the {gb(mem.usable_bytes)} GB usable (try more "
                 f"--tp / --pp, a smaller --precision or a shorter --isl / --osl)")
        fail(f"concurrency {concurrency} does not fit the KV cache: at most {mem.max_concurrency} requests of "
             f"{isl + osl} tokens on this plan ({mem.kv_capacity_tokens:,} KV tokens; weights take "  # type: ignore[operator]
             f"{gb(mem.weights_bytes)} GB of {gb(mem.usable_bytes)} GB usable per GPU)")
    if as_json:
        from planner.api import serving_plan_document

        # plan documents carry closed-loop predictions for current engine releases (what the gate re-estimates)
        why = ("open-loop (--rate) estimates are not plan documents; planner serve --rate sizes a deployment for "
               "a rate" if rate is not None else "estimates for an older engine release (--engine-version) are "
               "not plan documents: plans target current releases" if engine_version is not None else None)
        power = _power_keys(_worker_power_w(s, est), est.tokens_per_s_per_gpu * est.plan.gpus)
        if why:
            print_json({**est.model_dump(mode="json"), **power, "plan_document": None, "plan_document_reason": why})
            return
        # the worker as a document (after the gate) that `planner check` / `planner export` read
        print_json({**est.model_dump(mode="json"), **power, "plan_document": serving_plan_document(est, m, s)})
        return
    p = est.plan
    say(f"[bold]{m.name}[/bold] on [bold]{p.gpus} x {s.name}[/bold] ({backend}, {precision}): tp {p.tp}, "
        f"dp {p.dp}, pp {p.pp}" + (f", ep {p.expert_layout(m)[0]}" if m.is_moe else "")
        + f"; isl {isl}, osl {osl}, "
        + (f"{rate:g} requests/s at random (open loop; {est.breakdown['in_flight_mean']:.1f} in flight on "
           f"average)" if rate is not None else f"concurrency {concurrency} (closed loop)"))
    say()
    t = table("Serving estimate", "metric", "value", right=("value",), key="estimate")
    t.add_row("TTFT", f"{est.ttft_ms:,.1f} ms")
    t.add_row("TPOT", f"{est.tpot_ms:,.2f} ms")
    t.add_row("tokens / s per GPU", f"{est.tokens_per_s_per_gpu:,.1f}")
    t.add_row("tokens / s per user", f"{est.tokens_per_s_per_user:,.1f}")
    t.add_row("requests / s", f"{est.requests_per_s:,.2f}")
    mem = est.memory
    t.add_row("weights per GPU", f"{gb(mem.weights_bytes)} GB")
    t.add_row("KV capacity", f"{mem.kv_capacity_tokens:,} tokens (max concurrency {mem.max_concurrency})")
    power = _power_keys(_worker_power_w(s, est), est.tokens_per_s_per_gpu * p.gpus)
    t.add_row("power (worker)", f"{power['power_kw']:,.2f} kW")
    wh = power["energy_wh_per_million_tokens"]
    t.add_row("energy per million output tokens", "-" if wh is None else f"{wh:,.1f} Wh")
    show(t)
    b = table("Where the time goes (seconds)", "part", "value", right=("value",), key="breakdown")
    for k, v in est.breakdown.items():
        b.add_row(k, f"{v:.5f}")
    show(b)
    say("[dim]assumptions: " + "; ".join(est.assumptions) + "[/dim]")


def _model(model: str, model_dir: Optional[Path]) -> planner.ModelSpec:
    """``--model``, resolved through ``--model-dir`` only when it is neither built in nor a file (a
    ``--model-dir`` that resolves nothing would be silently ignored: it is an error)."""
    if model_dir is None:
        return planner.get_model(model)
    try:
        m = planner.get_model(model)
    except planner.SpecError:
        return planner.get_model(model, model_dir=model_dir)
    fail(f"--model-dir does nothing: --model {model} is {'a file' if Path(model).exists() else 'built in'} "
         f"({m.name})")


def _batch(path: Path, out: Optional[Path], model_dir: Optional[Path]) -> None:
    """Every row of a CSV -> ``id,ttft_ms,tpot_ms,reason`` (a row the model cannot take, or a malformed one,
    gets its reason; the file itself is read by :func:`planner.validate.serving_rows.read_rows`)."""
    import io

    rows = read_rows(path)
    if not rows:
        fail(f"{path}: no rows (expected a header and rows with the columns of measured_serving.csv)")
    if "id" not in rows[0]:
        fail(f"{path}: no 'id' column (expected the columns of measured_serving.csv)")
    cache: dict = {}
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["id", "ttft_ms", "tpot_ms", "reason"])
    done = 0
    for r in rows:
        res = estimate_row(r, model_dir, cache)
        if res.ttft_ms is not None:
            done += 1
            writer.writerow([res.id, f"{res.ttft_ms:.4f}", f"{res.tpot_ms:.4f}", ""])
        else:
            writer.writerow([res.id, "", "", res.reason])
    text = buf.getvalue()
    if out is None:
        print(text, end="")
    else:
        out.write_text(text)
        say(f"{done} of {len(rows)} rows estimated -> {out}")


def _simulate_fleet(plan_file: Path, trace: Optional[Path], router: str, requests: int, seed: int,
                    as_json: bool) -> None:
    """``planner simulate --plan FLEET``: the fleet's pools replayed on the trace (or Poisson arrivals drawn from
    its buckets at its mean rate) behind ``router`` (:func:`planner.fleet_verify.simulate_mix`)."""
    from planner.fleet_verify import simulate_mix
    from planner.plans import FleetDocument, check_file

    doc = check_file(plan_file)
    if not isinstance(doc, FleetDocument):
        fail(f"{plan_file}: --plan takes a fleet plan (planner mix --json); this is a {doc.schema_} document")
    with Activity(as_json, f"simulating the fleet ({requests:,} requests)"):
        rep = simulate_mix(doc, trace=str(trace) if trace is not None else None, router=router, requests=requests,
                           seed=seed)
    if as_json:
        print_json(rep, timings=False)
        return
    t = table(f"{doc.model.name}: {rep['requests']:,} requests at {rep['rate_rps']:.3g}/s, {router} router (ms)",
              "pool", "TTFT p90", "TPOT p90", "met", right=("TTFT p90", "TPOT p90", "met"), key="pools")
    for p in rep["pools"]:
        met = "-" if p["attainment"] is None else f"{100 * p['attainment']:.0f}%"
        t.add_row(p["name"], "-" if p["ttft_ms"] is None else f"{p['ttft_ms']['p90']:,.0f}",
                  "-" if p["tpot_ms"] is None else f"{p['tpot_ms']['p90']:,.1f}", met)
    show(t)
    say(f"{100 * rep['attainment']:.1f} % of requests meet the plan's SLOs (TTFT <= {doc.slo.ttft_ms:g} ms, "
        f"TPOT <= {doc.slo.tpot_ms:g} ms at p90); "
        + ("every pool at >= 90 %" if rep["ok"] else "short: " + "; ".join(rep["short"][:3])))


__all__ = ["estimate_serve", "serve", "simulate_cmd"]


def _ms(text: str, flag: str) -> float:
    """An SLO flag in milliseconds (:func:`.render.slo_ms`)."""
    return slo_ms(text, flag)


def _with_power(out: dict[str, Any], power: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """A ``planner serve --json`` object with each answer's power keys added (none removed or renamed)."""
    for answer, keys in power.items():
        if isinstance(out.get(answer), dict):
            out[answer].update(keys)
    return out


def _trace_rate(path: Path) -> tuple[float, float, float, int]:
    """(requests/s, mean prompt tokens, mean output tokens, the longest request's prompt + output tokens) of a
    request trace (read by :func:`planner.simulation.trace_requests`)."""
    from planner.simulation import trace_requests

    reqs = trace_requests(path)
    span = reqs[-1].arrival - reqs[0].arrival
    if len(reqs) < 2 or span <= 0:
        fail(f"{path}: needs at least two requests at different times")
    return ((len(reqs) - 1) / span, sum(r.isl for r in reqs) / len(reqs), sum(r.osl for r in reqs) / len(reqs),
            max(r.isl + r.osl for r in reqs))


@tabular("plans", "pareto")
def serve(
    ctx: typer.Context,
    model: str = typer.Option(..., "--model", "-m", help="Built-in name, Hugging Face id, or config.json."),
    gpu: str = typer.Option(..., "--gpu", "-g", help="Built-in system name / alias, or a hardware YAML."),
    gpus: int = typer.Option(..., "--gpus", "-n", min=1, max=MAX_GPUS, help="GPUs available."),
    isl: Optional[int] = typer.Option(None, "--isl", min=1, max=MAX_REQUEST_TOKENS, help="Prompt tokens per "
                                      "request.", show_default="the trace's mean"),
    osl: Optional[int] = typer.Option(None, "--osl", min=1, max=MAX_REQUEST_TOKENS, help="Output tokens per "
                                      "request.", show_default="the trace's mean"),
    ttft: str = typer.Option(..., "--ttft", help="TTFT SLO: a time (300ms, 0.3s; a bare number is ms)."),
    tpot: str = typer.Option(..., "--tpot", help="TPOT SLO: a time (20ms, 0.02s; a bare number is ms)."),
    rate: Optional[float] = typer.Option(None, "--rate", help="Requests per second to serve (sizes the replicas)."),
    trace: Optional[Path] = typer.Option(None, "--trace", help="A request trace (arrived_at, num_prefill_tokens, "
                                         "num_decode_tokens): its mean rate and lengths."),
    objective: ServeObjective = typer.Option(ServeObjective("throughput"), "--objective", case_sensitive=False,
                                             help="throughput: the most tokens/s per GPU; cost: the fewest dollars "
                                             "per token."),
    disagg: Disagg = typer.Option(Disagg("auto"), "--disagg", case_sensitive=False, help="Disaggregated prefill / "
                                  "decode: auto (both kinds of plan), on (only disaggregated) or off."),
    backend: Backend = typer.Option(Backend("trtllm"), "--backend", case_sensitive=False, help=_BACKEND_HELP),
    plot: Optional[Path] = typer.Option(None, "--plot", help="Also draw the throughput-vs-speed front of the "
                                        "layouts to this file (.png or .svg; needs planner[plot])."),
    report: Optional[Path] = typer.Option(None, "--report", help="Also write a self-contained HTML report "
                                          "(tables and plots) to this file (.html)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of tables."),
    export_to: Optional[ServeTarget] = typer.Option(None, "--export", case_sensitive=False, help="Print the best "
                                                    "plan as launch commands of an engine, or a k8s manifest."),
    timings: bool = typer.Option(False, "--timings", help="With --json: include the search's wall-clock time "
                                 "(left out by default so the same input gives the same bytes)."),
) -> None:
    """The best aggregated and disaggregated serving plans under TTFT / TPOT SLOs."""
    refuse_unused(ctx, "without --json", *(() if as_json else ("timings",)))
    check_artifacts(plot, report, {"--trace": trace})
    objective_name, disagg_name, backend_name = objective.value, disagg.value, backend.value
    target = export_to.value if export_to is not None else None
    if rate is not None:
        check_number(rate, "--rate (requests/s)", hi=MAX_RATE)
    longest: int | None = None  # a trace's longest request (prompt + output): what max-model-len must hold
    if trace is not None:
        if rate is not None:
            fail("give --rate or --trace, not both")
        rate, mean_isl, mean_osl, longest = _trace_rate(trace)
        isl = isl or max(1, round(mean_isl))
        osl = osl or max(1, round(mean_osl))
    if isl is None or osl is None:
        fail("give --isl and --osl (or a --trace)")
    m, s = planner.get_model(model), planner.get_system(gpu)
    # every answer comes back with its plan document, checked by the gate (res.plan_documents / plan_document)
    with Activity(as_json or target is not None, "searching serving plans"):
        res = planner.search_serve(m, s, gpus, isl, osl, _ms(ttft, "--ttft"), _ms(tpot, "--tpot"), rate=rate,
                                   max_request_tokens=longest, source="trace" if trace is not None else "flags",
                                   backend=backend_name, disagg=disagg_name, objective=objective_name)
    power = _deployment_power(res, s, rate, osl)
    write_artifacts(res, plot, report, quiet=as_json or target is not None, title=f"{m.name} on up to {gpus} x {s.name}")
    if target is not None:
        from planner.export.serving import export_serving

        text = export_serving(res.plan_document, target)
        if as_json:
            print_json({**_with_power(res.model_dump(mode="json"), power), "export": {"target": target,
                                                                                       "text": text}},
                       timings=timings)
        else:
            print(text)
        return
    if as_json:
        print_json(_with_power(res.model_dump(mode="json"), power), timings=timings)
        return
    _render_serve(res, m, s, gpus, isl, osl, ttft, tpot, rate, trace, backend_name, power)


def _render_serve(res: Any, m: planner.ModelSpec, s: planner.System, gpus: int, isl: int, osl: int, ttft: str,
                  tpot: str, rate: float | None, trace: Optional[Path], backend: str,
                  power: dict[str, dict[str, Any]]) -> None:
    say(f"[bold]{m.name}[/bold] on up to [bold]{gpus} x {s.name}[/bold] ({backend}); isl {isl}, osl {osl}; "
        f"SLO TTFT <= {ttft}, TPOT <= {tpot}; "
        + (f"sized for {rate:.3g} requests/s" + (" (the trace's mean rate)" if trace is not None else "")
           if rate is not None else "no --rate: as many replicas as --gpus holds"))
    say()
    t = table("Best plans", "metric", "aggregated", "disaggregated", key="plans")
    a, d = res.aggregated, res.disaggregated

    def cell(v: Any) -> str:
        return "-" if v is None else str(v)

    ae = a.estimate if a else None
    t.add_row("worker layout", cell(ae and f"tp {ae.plan.tp} dp {ae.plan.dp} {ae.plan.precision}"),
              cell(d and f"decode tp {d.decode.plan.tp} dp {d.decode.plan.dp} {d.decode.plan.precision}"))
    t.add_row("workers per replica", cell(a and 1), cell(d and f"{d.prefill_workers} prefill + {d.decode_workers} "
                                                              f"decode"))
    t.add_row("prefill worker layout", "-", cell(d and f"tp {d.prefill_plan.tp} dp {d.prefill_plan.dp}"))
    t.add_row("concurrency per worker", cell(ae and ae.concurrency), cell(d and d.decode.concurrency))
    t.add_row("TTFT ms", cell(ae and f"{ae.ttft_ms:.0f}"), cell(d and f"{d.ttft_ms:.0f}"))
    t.add_row("TPOT ms", cell(ae and f"{ae.tpot_ms:.1f}"), cell(d and f"{d.tpot_ms:.1f}"))
    t.add_row("tokens/s per GPU", cell(ae and f"{ae.tokens_per_s_per_gpu:,.0f}"), cell(d and f"{d.tokens_per_s_per_gpu:,.0f}"))
    t.add_row("tokens/s per user", cell(ae and f"{ae.tokens_per_s_per_user:,.0f}"), cell(d and f"{d.tokens_per_s_per_user:,.0f}"))
    t.add_row("replicas / GPUs", cell(a and f"{a.replicas} / {a.gpus}"), cell(d and f"{d.groups} / {d.gpus}"))
    docs = res.plan_documents or {}
    t.add_row("requests/s sustained", *(cell(c in docs and f"{docs[c]['prediction']['requests_per_s']:,.3g}")
                                        for c in ("aggregated", "disaggregated")))
    t.add_row("$ per million tokens", cell(a and a.cost_per_million_tokens_usd and f"{a.cost_per_million_tokens_usd:.3f}"),
              cell(d and d.cost_per_million_tokens_usd and f"{d.cost_per_million_tokens_usd:.3f}"))
    t.add_row("power kW", *(cell(c in power and f"{power[c]['power_kw']:,.2f}") for c in ("aggregated", "disaggregated")))
    t.add_row("Wh per million tokens", *(cell(c in power and power[c]["energy_wh_per_million_tokens"] is not None
                                              and f"{power[c]['energy_wh_per_million_tokens']:,.1f}")
                                         for c in ("aggregated", "disaggregated")))
    show(t)
    say(f"best: [bold]{res.best}[/bold]")
    say()
    if res.pareto:
        f = table("Pareto front, aggregated: tokens/s per GPU vs per user", "layout", "concurrency",
                  "tokens/s/GPU", "tokens/s/user", right=("concurrency", "tokens/s/GPU", "tokens/s/user"), key="pareto")
        for e in res.pareto[:10]:
            f.add_row(f"tp {e.plan.tp} dp {e.plan.dp} {e.plan.precision}", str(e.concurrency),
                      f"{e.tokens_per_s_per_gpu:,.0f}", f"{e.tokens_per_s_per_user:,.0f}")
        show(f)
    say(f"[dim]{res.layouts} worker layouts, {res.estimates} estimates, {res.elapsed_s:.2f} s[/dim]")


@tabular("latency", "pools")
def simulate_cmd(
    ctx: typer.Context,
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Built-in name, Hugging Face id, or config.json."),
    gpu: Optional[str] = typer.Option(None, "--gpu", "-g", help="Built-in system name / alias, or a hardware YAML."),
    plan_file: Optional[Path] = typer.Option(None, "--plan", help="Instead of one worker: a fleet plan (planner mix "
                                             "--json) simulated whole, its pools behind --router."),
    router: Router = typer.Option(Router("bucket"), "--router", case_sensitive=False, help="With --plan: bucket "
                                  "(the plan's split by request length), round-robin or least-outstanding."),
    tp: int = typer.Option(1, "--tp", min=1, max=MAX_GPUS, help="Attention tensor parallel size."),
    dp: int = typer.Option(1, "--dp", min=1, max=MAX_GPUS, help="Attention data parallel size."),
    ep: Optional[int] = typer.Option(None, "--ep", min=1, max=MAX_GPUS, help="Expert parallel size."),
    precision: Precision = typer.Option(Precision("bf16"), "--precision", case_sensitive=False, help=_PRECISION_HELP),
    backend: Backend = typer.Option(Backend("trtllm"), "--backend", case_sensitive=False, help=_BACKEND_HELP),
    trace: Optional[Path] = typer.Option(None, "--trace", help="Request trace CSV (arrived_at, num_prefill_tokens, "
                                         "num_decode_tokens)."),
    rate: Optional[float] = typer.Option(None, "--rate", help="Poisson arrivals at this many requests per second "
                                         "instead."),
    isl: int = typer.Option(1024, "--isl", min=1, max=MAX_REQUEST_TOKENS, help="Prompt tokens (Poisson mode)."),
    osl: int = typer.Option(256, "--osl", min=1, max=MAX_REQUEST_TOKENS, help="Output tokens (Poisson mode)."),
    requests: int = typer.Option(2000, "--requests", min=1, max=MAX_REQUESTS, help="Requests simulated (the first "
                                 "ones of a trace)."),
    seed: int = typer.Option(0, "--seed", min=0, max=MAX_SEED, help="Seed of the Poisson arrivals."),
    ttft: str = typer.Option("1s", "--ttft", help="TTFT SLO: a time (300ms, 0.3s; a bare number is ms)."),
    tpot: str = typer.Option("100ms", "--tpot", help="TPOT SLO: a time (a bare number is ms)."),
    percentile: float = typer.Option(90.0, "--percentile", help="Goodput: the share of requests that must meet "
                                     "both SLOs, in %."),
    plot: Optional[Path] = typer.Option(None, "--plot", help="Also draw the TTFT and TPOT distributions to this file (.png or .svg; "
                                        "needs planner[plot])."),
    report: Optional[Path] = typer.Option(None, "--report", help="Also write a self-contained HTML report "
                                          "(tables and plots) to this file (.html)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of tables."),
) -> None:
    """Simulate one serving worker (or with --plan a whole fleet) on a trace or Poisson arrivals."""
    from planner.simulation import goodput, poisson_requests, simulate, trace_requests

    precision, backend, router = precision.value, backend.value, router.value
    check_artifacts(plot, report, {"--trace": trace, "--plan": plan_file})
    if plan_file is not None:
        refuse_unused(ctx, "with --plan (planner mix --json has the fleet's own plot and report)", "plot", "report")
        refuse_unused(ctx, "with --plan (the plan gives the model, GPUs, layouts and SLOs)", "model", "gpu", "tp", "dp",
                      "ep", "precision", "backend", "isl", "osl", "ttft", "tpot", "percentile", "rate")
        _simulate_fleet(plan_file, trace, router, requests, seed, as_json)
        return
    refuse_unused(ctx, "without --plan", "router")
    missing = [f for f, v in (("--model", model), ("--gpu", gpu)) if v is None]
    if missing:
        fail(f"missing {', '.join(missing)} (or give a fleet --plan)")
    if (trace is None) == (rate is None):
        fail("give exactly one of --trace FILE or --rate R")
    if trace is not None:
        refuse_unused(ctx, "with --trace (the trace gives the arrivals and lengths)", "isl", "osl", "seed")
    else:
        check_number(rate, "--rate (requests/s)", hi=MAX_RATE)
    check_number(percentile, "--percentile", hi=100.0)
    t_ms, p_ms = _ms(ttft, "--ttft"), _ms(tpot, "--tpot")
    m, s = planner.get_model(model), planner.get_system(gpu)  # type: ignore[arg-type]
    plan = ServingPlan(tp=tp, dp=dp, ep=ep, precision=precision, backend=backend)  # type: ignore[arg-type]
    reqs = trace_requests(trace, requests) if trace is not None else poisson_requests(rate, requests, isl, osl, seed)  # type: ignore[arg-type]
    with Activity(as_json, f"simulating {len(reqs):,} requests, then the goodput walk over rates"):
        res = simulate(m, s, plan, reqs, t_ms, p_ms, per_request=plot is not None or report is not None)
        good = goodput(m, s, plan, reqs, t_ms, p_ms, percentile)
    write_artifacts(res, plot, report, quiet=as_json, title=f"{m.name} on {plan.gpus} x {s.name}: simulation",
                    ttft_slo_ms=t_ms, tpot_slo_ms=p_ms)
    if as_json:
        print_json({"simulation": res.model_dump(mode="json"), "goodput": good.model_dump(mode="json")})
        return
    t = table(f"{m.name} on {plan.gpus} x {s.name} ({backend}, {precision}): {res.requests} requests at "
              f"{res.rate:.2f}/s", "metric", "p50", "p90", "p99", "mean", right=("p50", "p90", "p99", "mean"),
              key="latency")
    for name, d in (("TTFT ms", res.ttft_ms), ("TPOT ms", res.tpot_ms)):
        t.add_row(name, *(f"{d[k]:,.1f}" for k in ("p50", "p90", "p99", "mean")))
    show(t)
    say(f"SLO attainment (TTFT <= {ttft}, TPOT <= {tpot}): {100 * res.attainment:.1f} %; output "
        f"{res.throughput_tokens_per_s:,.0f} tokens/s; goodput at p{percentile:g}: "
        f"{good.goodput_rps:.2f} requests/s")
