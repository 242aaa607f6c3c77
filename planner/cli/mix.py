"""``planner mix``: the cheapest GPU-type mix for a workload under TTFT / TPOT SLOs (or for a Mélange capacity
table), with ``--verify`` replaying the workload through the chosen mix in the simulator."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Optional

import typer

import planner
from planner.limits import MAX_RATE, MAX_REQUESTS, check_number

from .render import (BACKENDS, PRECISIONS, ROUTER_NAMES, SERVING_TARGETS, Activity, LazyProgress, check_artifacts,
                     choice, fail, given, print_json, refuse_unused, say, show, slo_ms, table, tabular,
                     write_artifacts)

PRICE_TIERS = ("on_demand", "reserved", "spot")
PriceTier = choice("PriceTier", PRICE_TIERS)
MixDisagg = choice("MixDisagg", ("off", "auto", "on"))
Backend = choice("Backend", BACKENDS)
Precision = choice("Precision", PRECISIONS)
Router = choice("Router", ROUTER_NAMES)
FleetTarget = choice("FleetTarget", SERVING_TARGETS)


def _pairs(text: str, flag: str) -> dict[str, int]:
    """``h100=64,a100=8`` -> {"h100": 64, "a100": 8}."""
    out: dict[str, int] = {}
    for part in text.split(","):
        name, sep, value = part.partition("=")
        name = name.strip()
        if not sep or not name:
            fail(f"{flag} takes GPU=COUNT pairs separated by commas (e.g. h100=64,a100=8), got {part!r}"[:200])
        try:
            n = int(value.strip())
        except ValueError:
            fail(f"{flag} {name}: {value.strip()!r} is not a whole number of GPUs"[:200])
        if n < 0:
            fail(f"{flag} {name}: the count must be 0 or more, got {n}")
        if name in out:
            fail(f"{flag} names {name} twice")
        out[name] = n
    return out


def _prices(path: Path, tier: str) -> dict[str, float]:
    """A price file: JSON or YAML mapping GPU -> $/GPU-hour, or GPU -> {on_demand, reserved, spot}."""
    from planner.files import load_json, load_yaml

    data = load_yaml(path, "a price table (GPU: $/GPU-hour)") if path.suffix.lower() in (".yaml", ".yml") \
        else load_json(path, "a price table (JSON: GPU -> $/GPU-hour)")
    if not isinstance(data, dict) or not data:
        fail(f"{path}: a price table maps GPU names to $/GPU-hour (or to {{{', '.join(PRICE_TIERS)}}})")
    out = {}
    for name, v in data.items():
        if isinstance(v, dict):
            unknown = sorted(set(v) - set(PRICE_TIERS))
            if unknown:
                fail(f"{path}: {name}: unknown price tier(s) {', '.join(map(repr, unknown))}; use "
                     f"{', '.join(PRICE_TIERS)}"[:200])
            if tier not in v:
                fail(f"{path}: {name} has no {tier} price (--price-tier); it has {', '.join(v) or 'none'}"[:200])
            v = v[tier]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not (math.isfinite(v) and v > 0):
            fail(f"{path}: the price of {name} must be a positive number of $/GPU-hour, got {v!r}"[:200])
        out[str(name)] = float(v)
    return out


def _power_kw(text: str) -> float:
    """``20kW``, ``20000 W``, ``1.5MW`` or a bare number of kW -> kW."""
    from planner.specs.units import parse_watts

    try:
        w = parse_watts(text if any(c.isalpha() for c in text) else f"{text} kW")
    except (ValueError, OverflowError):
        fail(f"--power-budget: cannot read {text!r} as power (e.g. 20kW, 1.5MW)")
    if not (math.isfinite(w) and w > 0):
        fail(f"--power-budget must be a positive power, got {text!r}")
    return w / 1e3


@tabular("pools", "fleet", "verified", "mix")
def mix(
    ctx: typer.Context,
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Built-in name, Hugging Face id, or config.json."),
    gpus: Optional[str] = typer.Option(None, "--gpus", "-g", help="GPU types to mix, comma-separated (e.g. "
                                       "h100,a100,l4)."),
    trace: Optional[Path] = typer.Option(None, "--trace", help="A request trace CSV (arrived_at, num_prefill_tokens, "
                                         "num_decode_tokens)."),
    histogram: Optional[Path] = typer.Option(None, "--histogram", help="A histogram CSV (isl,osl,weight); needs "
                                             "--rate."),
    rate: Optional[float] = typer.Option(None, "--rate", help="Requests per second to serve.",
                                         show_default="the trace's mean"),
    ttft: Optional[str] = typer.Option(None, "--ttft", help="TTFT SLO at the 90th percentile: a time (1s, 800ms; "
                                       "a bare number is ms)."),
    tpot: Optional[str] = typer.Option(None, "--tpot", help="TPOT SLO at the 90th percentile: a time (50ms)."),
    power_budget: Optional[str] = typer.Option(None, "--power-budget", help="Power for the whole fleet (20kW, "
                                               "1.5MW; a bare number is kW)."),
    max_gpus: Optional[str] = typer.Option(None, "--max", help="GPUs available per type, e.g. h100=64,a100=8."),
    prices: Optional[Path] = typer.Option(None, "--prices", help="JSON/YAML: GPU -> $/GPU-hour (or -> "
                                          "{on_demand, reserved, spot}) over the catalog's."),
    price_tier: PriceTier = typer.Option(PriceTier("on_demand"), "--price-tier", case_sensitive=False,
                                         help="The price of a tiered --prices file to use."),
    power_cap: Optional[float] = typer.Option(None, "--power-cap", help="Cap every GPU at this fraction of its "
                                              "TDP (0.2..1; compute-bound work slows, POLCA)."),
    disagg: MixDisagg = typer.Option(MixDisagg("off"), "--disagg", case_sensitive=False, help="off, auto (also "
                                     "prefill / decode pools, possibly on different types) or on (only those)."),
    slice_factor: int = typer.Option(4, "--slice-factor", help="Slices per bucket (Mélange): a bucket's requests "
                                     "may split over this many pools."),
    backend: Backend = typer.Option(Backend("trtllm"), "--backend", case_sensitive=False, help="The serving engine "
                                    "whose measured constants apply."),
    precision: Precision = typer.Option(Precision("bf16"), "--precision", case_sensitive=False, help="Weights and KV "
                                        "cache, the same on every type."),
    capacity_table: Optional[Path] = typer.Option(None, "--capacity-table", help="Mélange's input JSON (gpu_info, "
                                                  "workload_distribution, total_request_rate, slice_factor) instead "
                                                  "of a model and a workload."),
    verify: bool = typer.Option(False, "--verify", help="Replay the workload through the chosen mix in the "
                                "simulator and report SLO attainment per pool."),
    router: Router = typer.Option(Router("bucket"), "--router", case_sensitive=False, help="With --verify: bucket "
                                  "(the mix's split), round-robin or least-outstanding."),
    attainment: float = typer.Option(0.9, "--attainment", help="With --verify: the share of requests (a fraction "
                                     "in (0, 1]) that must meet both SLOs in every pool."),
    requests: int = typer.Option(20000, "--requests", min=1, max=MAX_REQUESTS, help="With --verify: requests "
                                 "replayed (the trace's first ones, or Poisson from the buckets)."),
    plot: Optional[Path] = typer.Option(None, "--plot", help="Also draw the mix (GPUs per type and pool against "
                                        "the best single type) to this file (.png or .svg; needs planner[plot])."),
    report_path: Optional[Path] = typer.Option(None, "--report", help="Also write a self-contained HTML report "
                                          "(tables and plots) to this file (.html)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of tables."),
    export_to: Optional[FleetTarget] = typer.Option(None, "--export", case_sensitive=False, help="Print every "
                                                    "pool's workers as engine commands (prefill / decode pools with "
                                                    "their router), or the aggregated pools' k8s manifests."),
    timings: bool = typer.Option(False, "--timings", help="With --json: include wall-clock times."),
) -> None:
    """The cheapest mix of GPU types (counts, pools, traffic split) serving a workload within SLOs."""
    price_tier, disagg, backend, precision, router = (  # type: ignore[assignment]
        price_tier.value, disagg.value, backend.value, precision.value, router.value)
    target = export_to.value if export_to is not None else None
    refuse_unused(ctx, "without --json", *(() if as_json else ("timings",)))
    refuse_unused(ctx, "without --verify", *(() if verify else ("router", "attainment", "requests")))
    if prices is None:
        refuse_unused(ctx, "without a tiered --prices file", "price_tier")
    if price_tier not in PRICE_TIERS:
        fail(f"--price-tier takes {', '.join(PRICE_TIERS)}, got {price_tier!r}")
    limits = _pairs(max_gpus, "--max") if max_gpus is not None else None
    if capacity_table is not None:
        refuse_unused(ctx, "with --capacity-table (the table gives GPUs, costs, workload and rate)", "model", "gpus",
                      "trace", "histogram", "rate", "ttft", "tpot", "power_budget", "prices", "power_cap", "disagg",
                      "backend", "precision", "verify", "export_to", "plot", "report_path")
        _table(capacity_table, limits, slice_factor if given(ctx, "slice_factor") else None, as_json, timings)
        return
    missing = [f for f, v in (("--model", model), ("--gpus", gpus), ("--ttft", ttft), ("--tpot", tpot)) if v is None]
    if missing:
        fail(f"missing {', '.join(missing)} (or give --capacity-table)")
    if (trace is None) == (histogram is None):
        fail("give the workload as --trace FILE or --histogram FILE (with --rate)")
    if rate is not None:
        check_number(rate, "--rate (requests/s)", hi=MAX_RATE)
    names = [g.strip() for g in (gpus or "").split(",")]
    if not all(names):
        fail(f"--gpus takes GPU names separated by commas, got {gpus!r}"[:200])
    if verify and not 0 < attainment <= 1:
        fail(f"--attainment is a share of requests in (0, 1], got {attainment:g}")
    check_artifacts(plot, report_path, {"--trace": trace, "--histogram": histogram, "--prices": prices})
    price_map = _prices(prices, price_tier) if prices is not None else None
    budget = _power_kw(power_budget) if power_budget is not None else None
    progress = LazyProgress(quiet=as_json or target is not None, label="searching mixes")
    try:
        res = planner.mix(model, names, slo_ms(ttft, "--ttft"), slo_ms(tpot, "--tpot"),  # type: ignore[arg-type]
                          trace=str(trace) if trace is not None else None,
                          histogram=str(histogram) if histogram is not None else None, rate=rate, prices=price_map,
                          max_gpus=limits, power_budget_kw=budget, slice_factor=slice_factor, backend=backend,
                          precision=precision, disagg=disagg, power_cap=power_cap, progress=progress)
    finally:
        progress.close()
    report = None
    if verify:
        from planner.fleet_verify import verify_mix

        with Activity(as_json or target is not None, f"verifying the mix in the simulator ({requests:,} requests)"):
            res, report = verify_mix(res, trace=str(trace) if trace is not None else None, router=router,
                                     attainment=attainment, requests=requests)
    out: dict[str, Any] = res.model_dump(mode="json")
    if report is not None:
        out["verify"] = report
    write_artifacts(res, plot, report_path, quiet=as_json or target is not None,
                    title=f"{res.model}: GPU-type mix for {res.rate_rps:.3g} requests/s",
                    report_only={"verify": report} if report is not None else None)
    if target is not None:
        from planner.export.fleet import export_fleet

        text = export_fleet(res.plan_document, target)
        if as_json:
            out["export"] = {"target": target, "text": text}
            print_json(out, timings=timings)
        else:
            print(text, end="")
        return
    if as_json:
        print_json(out, timings=timings)
        return
    _render(res, report)


def _render(res: Any, report: dict | None) -> None:
    say(f"[bold]{res.model}[/bold] over {', '.join(res.gpus_offered)} ({res.backend}, {res.precision}); "
        f"{res.rate_rps:.3g} requests/s in {len(res.buckets)} buckets; SLOs at p90: TTFT <= "
        f"{res.ttft_ms:g} ms, TPOT <= {res.tpot_ms:g} ms")
    say()
    t = table("Pools (share: of the traffic; load: of the pool's capacity)", "GPU", "role", "layout", "replicas",
              "share", "load", "$/h", right=("replicas", "share", "load", "$/h"), key="pools")
    for p in res.pools:
        t.add_row(p.gpu, p.role, f"tp{p.plan.tp} dp{p.plan.dp}", str(p.replicas), f"{100 * p.traffic_share:.0f}%",
                  f"{100 * p.utilization:.0f}%", f"{p.cost_per_hour_usd:,.2f}")
    show(t)
    s = table("Fleet", "metric", "value", right=("value",), key="fleet")
    s.add_row("GPUs", ", ".join(f"{n} x {g}" for g, n in res.gpus.items()))
    s.add_row("$ per hour", f"{res.cost_per_hour_usd:,.2f}")
    s.add_row("$ per million output tokens", f"{res.cost_per_million_tokens_usd:,.3f}")
    s.add_row("power", f"{res.power_kw:,.2f} kW")
    s.add_row("energy per million output tokens", f"{res.energy_wh_per_million_tokens:,.0f} Wh")
    if res.best_single is not None:
        s.add_row("best single type", f"{res.best_single.gpu}: ${res.best_single.cost_per_hour_usd:,.2f}/h")
        s.add_row("saving", f"{100 * (res.saving_vs_best_single or 0):.1f}%")
    else:
        s.add_row("best single type", "none serves it alone")
    s.add_row("solver", f"{res.solver['status']} (gap {res.solver['gap']:.0e}), {res.solver['solve_time_s']:.2f} s")
    show(s)
    if report is not None:
        v = table(f"Verified by simulation ({report['router']} router, {report['requests']:,} requests; ms)", "pool",
                  "TTFT p90", "TPOT p90", "met", right=("TTFT p90", "TPOT p90", "met"), key="verified")
        for p in report["pools"]:
            v.add_row(p["name"], f"{p['ttft_ms']['p90']:,.0f}", f"{p['tpot_ms']['p90']:,.1f}",
                      f"{100 * p['attainment']:.0f}%" + ("" if p["ok"] else " !"))
        show(v)
        if report["repaired"]:
            first = report["rounds"][0]
            say(f"the capacity model's mix (${first['cost_per_hour_usd']:,.2f}/h, "
                f"{100 * first['attainment']:.0f} % of requests within the SLOs) fell short in the "
                f"simulator; after {len(report['rounds']) - 1} round(s) of lowering the short pools' "
                f"capacities the mix above is the answer")
        say(f"every pool meets the target ({100 * report['target']:.0f} %)" if report["ok"] else
            "[bold]short of the target:[/bold] " + "; ".join(report["short"][:5]))
    say(f"[dim]{res.units} replica kinds, {res.capacity_evaluations} capacities, {res.elapsed_s:.2f} s[/dim]")


def _table(path: Path, limits: dict[str, int] | None, slice_factor: int | None, as_json: bool, timings: bool) -> None:
    from planner.search.fleet_table import solve_table_file

    res = solve_table_file(path, max_gpus=limits, slice_factor=slice_factor)
    if as_json:
        print_json(res.model_dump(mode="json"), timings=timings)
        return
    t = table(f"Mix for {res.rate_rps:g} requests/s (slice factor {res.slice_factor})", "GPU", "count",
              right=("count",), key="mix")
    for g, n in res.gpus.items():
        t.add_row(g, str(n))
    show(t)
    say(f"${res.cost_per_hour_usd:,.2f} per hour; " + (
        f"best single type {res.best_single.gpu} ${res.best_single.cost_per_hour_usd:,.2f} (saving "
        f"{100 * (res.saving_vs_best_single or 0):.1f}%)" if res.best_single else "no single type serves it alone")
        + f"; {res.solver['status']}")


__all__ = ["mix"]
