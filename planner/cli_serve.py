"""``planner estimate serve`` and ``planner validate serving`` (registered by :mod:`planner.cli`)."""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any, Optional

import typer

import planner
from planner.cli import _gb, _table, console, fail, print_json
from planner.cost.serving import ServingPlan, estimate_serving
from planner.serving_rows import estimate_row, read_rows


def p_gpus(tp: int, dp: int, pp: int) -> int:
    return tp * dp * pp


def _plan(tp: int, pp: int, dp: int, ep: Optional[int], precision: str, backend: str) -> ServingPlan:
    return ServingPlan(tp=tp, pp=pp, dp=dp, ep=ep, precision=precision, backend=backend)  # type: ignore[arg-type]


def estimate_serve(
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Built-in name, Hugging Face id, or config.json."),
    gpu: Optional[str] = typer.Option(None, "--gpu", "-g", help="Built-in system name / alias, or a hardware YAML."),
    tp: int = typer.Option(1, "--tp", min=1, help="Attention tensor parallel size."),
    pp: int = typer.Option(1, "--pp", min=1, help="Pipeline stages."),
    dp: int = typer.Option(1, "--dp", min=1, help="Attention data parallel size (DP attention)."),
    ep: Optional[int] = typer.Option(None, "--ep", min=1, help="Expert parallel size [default: tp x dp for MoE]."),
    isl: Optional[int] = typer.Option(None, "--isl", min=1, help="Input (prompt) tokens per request."),
    osl: Optional[int] = typer.Option(None, "--osl", min=1, help="Output tokens per request."),
    concurrency: Optional[int] = typer.Option(None, "--concurrency", "-c", min=1, help="Requests in flight (closed loop)."),
    precision: str = typer.Option("bf16", "--precision", help="bf16, fp16, fp8, int4 or fp4 (NVFP4)."),
    backend: str = typer.Option("trtllm", "--backend", help="trtllm, vllm or sglang."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of tables."),
    from_csv: Optional[Path] = typer.Option(None, "--from-csv", help="Estimate every row of a file with the columns "
                                            "of measured_serving.csv."),
    out: Optional[Path] = typer.Option(None, "--out", help="With --from-csv: where to write id,ttft_ms,tpot_ms,reason."),
    model_dir: Optional[Path] = typer.Option(None, "--model-dir", help="Where Hugging Face ids in the file resolve "
                                             "(org--name.json) when they are not built in."),
) -> None:
    """TTFT, TPOT and throughput of one serving worker at a fixed concurrency (or every row of a CSV)."""
    if from_csv is not None:
        _batch(from_csv, out, model_dir)
        return
    missing = [f for f, v in (("--model", model), ("--gpu", gpu), ("--isl", isl), ("--osl", osl),
                              ("--concurrency", concurrency)) if v is None]
    if missing:
        fail(f"missing {', '.join(missing)} (or give --from-csv FILE)")
    if precision not in ("bf16", "fp16", "fp8", "int4", "fp4"):
        fail(f"unknown precision {precision!r}; choose bf16, fp16, fp8, int4 or fp4")
    if backend not in ("trtllm", "vllm", "sglang"):
        fail(f"unknown backend {backend!r}; choose trtllm, vllm or sglang")
    m = planner.get_model(model, model_dir=model_dir)  # type: ignore[arg-type]
    s = planner.get_system(gpu)  # type: ignore[arg-type]
    est = estimate_serving(m, s, _plan(tp, pp, dp, ep, precision, backend), isl, osl, concurrency)  # type: ignore[arg-type]
    if not est.fits:
        mem = est.memory
        if mem.max_concurrency == 0:
            fail(f"{m.name} does not fit on {p_gpus(tp, dp, pp)} x {s.name} at {precision}: the weights alone need "
                 f"{_gb(mem.weights_bytes)} GB per GPU and the KV cache and workspace more; {_gb(mem.usable_bytes)} GB "
                 f"are usable per GPU (try more --tp / --pp or a smaller --precision)")
        fail(f"concurrency {concurrency} does not fit the KV cache: at most {mem.max_concurrency} requests of "
             f"{isl + osl} tokens on this plan ({mem.kv_capacity_tokens:,} KV tokens; weights take "  # type: ignore[operator]
             f"{_gb(mem.weights_bytes)} GB of {_gb(mem.usable_bytes)} GB usable per GPU)")
    if as_json:
        print_json(est.model_dump(mode="json"))
        return
    p = est.plan
    console.print(f"[bold]{m.name}[/bold] on [bold]{p.gpus} x {s.name}[/bold] ({backend}, {precision}): tp {p.tp}, "
                  f"dp {p.dp}, pp {p.pp}" + (f", ep {p.expert_layout(m)[0]}" if m.is_moe else "")
                  + f"; isl {isl}, osl {osl}, concurrency {concurrency}", highlight=False)
    t = _table("Serving estimate", "metric", "value", right=("value",))
    t.add_row("TTFT", f"{est.ttft_ms:,.1f} ms")
    t.add_row("TPOT", f"{est.tpot_ms:,.2f} ms")
    t.add_row("tokens / s per GPU", f"{est.tokens_per_s_per_gpu:,.1f}")
    t.add_row("tokens / s per user", f"{est.tokens_per_s_per_user:,.1f}")
    t.add_row("requests / s", f"{est.requests_per_s:,.2f}")
    mem = est.memory
    t.add_row("weights per GPU", f"{_gb(mem.weights_bytes)} GB")
    t.add_row("KV capacity", f"{mem.kv_capacity_tokens:,} tokens (max concurrency {mem.max_concurrency})")
    console.print(t)
    b = _table("Where the time goes (seconds)", "part", "value", right=("value",))
    for k, v in est.breakdown.items():
        b.add_row(k, f"{v:.5f}")
    console.print(b)
    console.print("[dim]assumptions: " + "; ".join(est.assumptions) + "[/dim]", highlight=False)


def _batch(path: Path, out: Optional[Path], model_dir: Optional[Path]) -> None:
    if not path.is_file():
        fail(f"{path} not found")
    try:
        rows = read_rows(path)
    except (csv.Error, UnicodeDecodeError) as e:
        fail(f"{path}: not a readable CSV ({e})")
    if rows and "id" not in rows[0]:
        fail(f"{path}: no 'id' column (expected the columns of measured_serving.csv)")
    cache: dict = {}
    lines = ["id,ttft_ms,tpot_ms,reason"]
    done = 0
    for r in rows:
        res = estimate_row(r, model_dir, cache)
        if res.ttft_ms is not None:
            done += 1
            lines.append(f"{res.id},{res.ttft_ms:.4f},{res.tpot_ms:.4f},")
        else:
            lines.append(f"{res.id},,,\"{res.reason.replace(chr(34), chr(39))}\"")
    text = "\n".join(lines) + "\n"
    if out is None:
        print(text, end="")
    else:
        out.write_text(text)
        console.print(f"{done} of {len(rows)} rows estimated -> {out}", highlight=False)


def validate_serving(
    reference: Optional[Path] = typer.Option(None, "--reference", "-r", help="The reference folder "
                                             "[default: ../shared/reference]."),
    split: str = typer.Option("report", "--split", help="calibration (H100/H200, fitted on) or report "
                              "(Blackwell, never fitted)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of tables."),
) -> None:
    """Predicted vs measured TTFT and TPOT on measured_serving.csv, by system, mode, backend and kind."""
    from planner.cli import _default_reference
    from planner.validate_serving import validate_serving as run

    ref = reference if reference is not None else _default_reference()
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
    t = _table(None, "group", "rows", "TTFT MAPE %", "TPOT MAPE %", right=("rows", "TTFT MAPE %", "TPOT MAPE %"))
    for title, groups in (("system", v.by_system), ("mode", v.by_mode), ("backend", v.by_backend),
                          ("kind", v.by_kind)):
        for k, g in groups.items():
            t.add_row(f"{title}: {k}", str(g.rows), _pct(g.ttft_mape_pct), _pct(g.tpot_mape_pct))
        t.add_section()
    console.print(t)
    if v.unmodelled_reasons:
        console.print("not modelled: " + "; ".join(f"{n} x {k}" for k, n in v.unmodelled_reasons.items()),
                      highlight=False)


def _pct(x: float) -> str:
    return "-" if not math.isfinite(x) else f"{x:.1f}"


__all__: list[Any] = ["estimate_serve", "validate_serving"]
