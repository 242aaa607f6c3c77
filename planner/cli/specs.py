"""``planner specs list | show | validate``: the built-in catalog and spec files."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Any, Optional

import typer
from rich.table import Table

import planner
from planner import SpecError

from .render import cli_errors, console, fail, gb, model_kind, table

specs_app = typer.Typer(help="Built-in hardware and model specs; check a spec file.", no_args_is_help=True)


class SpecKind(str, Enum):
    gpu = "gpu"
    model = "model"


def _gpu_table() -> Table:
    t = table("Hardware (built-in)", "name", "aliases", "memory GB", "bf16 TFLOPS", "HBM TB/s", "scale-up",
               "$/GPU-h", right=("memory GB", "bf16 TFLOPS", "HBM TB/s", "scale-up", "$/GPU-h"))
    for name in planner.hardware_names():
        s = planner.get_system(name)
        a, n = s.accelerator, s.node
        price = f"{a.price_per_hour_usd:.2f}" if a.price_per_hour_usd is not None else "-"
        t.add_row(name, ", ".join(s.aliases), gb(a.memory_bytes), f"{a.flops('bf16') / 1e12:,.1f}",
                  f"{a.hbm_bandwidth_bytes_per_s / 1e12:.2f}", str(n.scale_up_domain), price)
    return t


def _model_table() -> Table:
    t = table("Models (built-in)", "name", "HF id", "params B", "active B", "layers", "hidden", "kind",
               right=("params B", "active B", "layers", "hidden"))
    for name in planner.model_names():
        m = planner.get_model(name)
        t.add_row(name, m.hf_id or "-", f"{m.total_params / 1e9:,.1f}", f"{m.active_params / 1e9:,.1f}",
                  str(m.num_layers), str(m.hidden_size), model_kind(m))
    return t


@specs_app.command("list")
@cli_errors
def specs_list(
    kind: Optional[SpecKind] = typer.Option(None, "--kind", help="Only GPUs or only models."),
) -> None:
    """List the built-in hardware systems and models."""
    if kind in (None, SpecKind.gpu):
        console.print(_gpu_table())
    if kind in (None, SpecKind.model):
        console.print(_model_table())


def _ranges(values: list[int]) -> str:
    """[3, 4, 5, 9] -> '3-5, 9'."""
    out: list[str] = []
    start = prev = values[0]
    for v in [*values[1:], None]:
        if v is not None and v == prev + 1:
            prev = v
            continue
        out.append(f"{start}-{prev}" if prev > start else str(start))
        if v is not None:
            start = prev = v
    return ", ".join(out)


def _human(key: str, value: Any) -> str:
    """A spec field with its unit made readable (values inside the planner are SI)."""
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, (int, float)):
        if key.endswith("bytes_per_s"):
            return f"{value / 1e9:,.1f} GB/s"
        if key.endswith("_bytes"):
            return f"{value / 1e9:,.2f} GB ({value / 2**30:,.2f} GiB)"
        if key.endswith("_s"):
            return f"{value * 1e6:,.2f} us"
        if ".peak_flops." in f".{key}":
            return f"{value / 1e12:,.1f} TFLOP/s"
        if key.endswith("_w"):
            return f"{value:,.0f} W"
        if isinstance(value, int):
            return f"{value:,}" if value >= 10_000 and "year" not in key else str(value)
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        if not value:
            return "-"
        if all(isinstance(v, int) for v in value) and len(value) > 4:
            return f"{len(value)}: {_ranges(sorted(value))}"
        if all(isinstance(v, str) for v in value) and len(value) > 4 and len(set(value)) < len(value):
            counts: dict[str, int] = {}
            for v in value:
                counts[v] = counts.get(v, 0) + 1
            return ", ".join(f"{k} x {n}" for k, n in counts.items())
        return ", ".join(map(str, value))
    return str(value)


def _flatten(d: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out += _flatten(v, key + ".")
        else:
            out.append((key, v))
    return out


def _show_system(s: planner.System) -> None:
    t = table(f"{s.name}: {s.description}" if s.description else s.name, "field", "value")
    for key, value in _flatten(s.model_dump(exclude={"sources", "description"})):
        t.add_row(key, _human(key, value))
    console.print(t)
    console.print("[bold]sources[/bold]")
    for src in s.sources:
        console.print(f"  - {src}", markup=False)


def _show_model(m: planner.ModelSpec) -> None:
    t = table(f"{m.name} ({m.model_type}, {model_kind(m)})", "field", "value")
    for key, value in _flatten(m.model_dump()):
        t.add_row(key, _human(key, value))
    t.add_section()
    t.add_row("total params", f"{m.total_params:,} ({m.total_params / 1e9:,.2f} B)")
    t.add_row("active params", f"{m.active_params:,} ({m.active_params / 1e9:,.2f} B)")
    t.add_row("KV cache / token (bf16)", f"{m.kv_cache_bytes_per_token(2):,.0f} B")
    console.print(t)


@specs_app.command("show")
@cli_errors
def specs_show(name: str = typer.Argument(..., help="A GPU / system or model: built-in name, alias, HF id or file.")) -> None:
    """Show every field of one GPU system or model."""
    if name.endswith((".yaml", ".yml")):
        return _show_system(planner.get_system(name))
    if name.endswith(".json"):
        return _show_model(planner.get_model(name))
    try:
        system = planner.get_system(name)
    except SpecError as gpu_err:
        try:
            model = planner.get_model(name)
        except SpecError as model_err:
            hint = [s.split("did you mean ", 1)[1].rstrip("?") for s in (str(gpu_err), str(model_err)) if "did you mean" in s]
            fail(f"unknown GPU or model {name!r}" + (f"; did you mean {', '.join(hint)}?" if hint else
                                                     "; see 'planner specs list'"))
        return _show_model(model)
    _show_system(system)


def _system_summary(s: planner.System) -> str:
    a, n = s.accelerator, s.node
    price = f", ${a.price_per_hour_usd:.2f}/GPU-h" if a.price_per_hour_usd is not None else ""
    return (f"{s.name}: {a.name}, {a.memory_bytes / 1e9:.1f} GB ({a.memory_bytes / 2**30:.1f} GiB), "
            f"{a.flops('bf16') / 1e12:,.1f} TFLOPS bf16, {a.hbm_bandwidth_bytes_per_s / 1e12:.2f} TB/s HBM, "
            f"scale-up {n.scale_up_domain} x {n.scale_up_bandwidth_bytes_per_s / 1e9:.0f} GB/s, "
            f"NIC {n.nic_bandwidth_bytes_per_s * 8 / 1e9:.0f} Gb/s per GPU{price}")


def _model_summary(m: planner.ModelSpec) -> str:
    active = f" ({m.active_params / 1e9:,.1f} B active)" if m.is_moe else ""
    return (f"{m.name} ({m.model_type}, {model_kind(m)}): {m.total_params / 1e9:,.2f} B params{active}, "
            f"{m.num_layers} layers, hidden {m.hidden_size}, {m.num_heads} heads / {m.num_kv_heads} KV, "
            f"vocab {m.vocab_size}, KV cache {m.kv_cache_bytes_per_token(2):,.0f} B/token (bf16)")


@specs_app.command("validate")
@cli_errors
def specs_validate(
    file: Path = typer.Argument(..., help="A hardware YAML, or a model config.json (or a folder holding one)."),
    kind: Optional[SpecKind] = typer.Option(None, "--kind", help="Force the kind; default: .json or a folder = model, "
                                                                 ".yaml/.yml = gpu."),
) -> None:
    """Check a spec file: print OK and a summary, or the one-line error (exit 2)."""
    if not file.exists():
        fail(f"{file}: no such file")
    is_model = kind == SpecKind.model or (kind is None and (file.is_dir() or file.suffix == ".json"))
    if is_model:
        typer.echo(f"OK {file}: {_model_summary(planner.load_model_file(file))}")
    else:
        typer.echo(f"OK {file}: {_system_summary(planner.load_system_file(file))}")

