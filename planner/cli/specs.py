"""``planner specs list | show | validate``: the built-in catalog and spec files."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Any, Optional

import typer
import planner
from planner import SpecError

from .render import cli_errors, fail, gb, model_kind, print_json, say, show, table, tabular, width

specs_app = typer.Typer(help="Built-in hardware and model specs; check a spec file.", no_args_is_help=True)


class SpecKind(str, Enum):
    gpu = "gpu"
    model = "model"


def _short_aliases(s: planner.System, room: int = 20) -> str:
    """The aliases that differ from the name once ``_`` / ``-`` and case are ignored (the catalog matches them
    so), shortest first, as many as fit in ``room`` characters, then ``+N`` for the others."""
    own = {s.name.replace("_", "-").lower()}
    names = [a for a in dict.fromkeys(a.replace("_", "-").lower() for a in s.aliases) if a not in own]
    names.sort(key=lambda a: (len(a), a))
    shown: list[str] = []
    for i, a in enumerate(names):
        rest = len(names) - i - 1
        text = ", ".join([*shown, a]) + (f" +{rest}" if rest else "")
        if len(text) > room and shown:
            break
        shown.append(a)
    rest = len(names) - len(shown)
    return (", ".join(shown) + (f" +{rest}" if rest else "")) or "-"


def _gpu_rows() -> list[dict[str, Any]]:
    """One record per built-in system (the JSON of ``specs list``; the table shows them in human units)."""
    out = []
    for name in planner.hardware_names():
        s = planner.get_system(name)
        a, n = s.accelerator, s.node
        out.append({"name": name, "aliases": list(s.aliases), "memory_bytes": a.memory_bytes,
                    "bf16_flops": a.flops("bf16"), "hbm_bandwidth_bytes_per_s": a.hbm_bandwidth_bytes_per_s,
                    "scale_up_domain": n.scale_up_domain, "price_per_hour_usd": a.price_per_hour_usd,
                    "tdp_w": a.tdp_w, "_system": s})
    return out


def _model_rows() -> list[dict[str, Any]]:
    out = []
    for name in planner.model_names():
        m = planner.get_model(name)
        out.append({"name": name, "hf_id": m.hf_id, "total_params": m.total_params, "active_params": m.active_params,
                    "num_layers": m.num_layers, "hidden_size": m.hidden_size, "kind": model_kind(m)})
    return out


def _show_gpus() -> None:
    rows = _gpu_rows()
    cols = ("name", "aliases", "mem GB", "TFLOP/s", "TB/s", "scale-up", "$/GPU-h")
    t = table("Hardware (built-in): memory GB, dense bf16 TFLOP/s, HBM TB/s, scale-up GPUs",
              *cols, right=cols[2:], key="gpus")
    full = []
    for r in rows:
        price = f"{r['price_per_hour_usd']:.2f}" if r["price_per_hour_usd"] is not None else "-"
        cells = [gb(r["memory_bytes"]), f"{r['bf16_flops'] / 1e12:,.1f}", f"{r['hbm_bandwidth_bytes_per_s'] / 1e12:.2f}",
                 str(r["scale_up_domain"]), price]
        t.add_row(r["name"], _short_aliases(r["_system"]), *cells)
        full.append([r["name"], " ".join(r["aliases"]), *cells])
    show(t, csv_rows=(["name", "aliases", "memory_gb", "bf16_tflops", "hbm_tb_per_s", "scale_up_domain",
                       "usd_per_gpu_hour"], full))
    say("[dim]every alias: planner specs show NAME (they match with - or _, in any case)[/dim]")
    say()


def _show_models() -> None:
    rows = _model_rows()
    cols = ("name", "params", "active", "layers", "hidden", "kind")
    t = table("Models (built-in): parameters in billions (total; active per token)", *cols,
              right=("params", "active", "layers", "hidden"), key="models")
    ids = table("Hugging Face ids (any --model takes them, with -Instruct, -FP8, ... suffixes)",
                "name", "Hugging Face id", key="hf-ids")
    full = []
    for r in rows:
        cells = [f"{r['total_params'] / 1e9:,.1f}", f"{r['active_params'] / 1e9:,.1f}", str(r["num_layers"]),
                 str(r["hidden_size"]), r["kind"]]
        t.add_row(r["name"], *cells)
        ids.add_row(r["name"], r["hf_id"] or "-")
        full.append([r["name"], r["hf_id"] or "", *cells])
    show(t, csv_rows=(["name", "hf_id", "params_b", "active_params_b", "layers", "hidden", "kind"], full))
    show(ids)


@specs_app.command("list")
@cli_errors
@tabular("gpus", "models", "hf-ids")
def specs_list(
    kind: Optional[SpecKind] = typer.Option(None, "--kind", help="Only GPUs or only models."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of tables."),
) -> None:
    """List the built-in hardware systems and models."""
    if as_json:
        out: dict[str, Any] = {}
        if kind in (None, SpecKind.gpu):
            out["gpus"] = [{k: v for k, v in r.items() if not k.startswith("_")} for r in _gpu_rows()]
        if kind in (None, SpecKind.model):
            out["models"] = _model_rows()
        print_json(out)
        return
    if kind in (None, SpecKind.gpu):
        _show_gpus()
    if kind in (None, SpecKind.model):
        _show_models()


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


def _pieces(text: str, room: int) -> list[str]:
    """``text`` cut at ``", "`` into pieces of at most ``room`` characters where it can (a list value shown over
    several rows of a table instead of one cell wrapping)."""
    if len(text) <= room or ", " not in text:
        return [text]
    out, line = [], ""
    for item in text.split(", "):
        cand = f"{line}, {item}" if line else item
        if line and len(cand) + 1 > room:
            out.append(line + ",")
            line = item
        else:
            line = cand
    return out + [line]


def _fields(title: str, rows: list[tuple[str, str]], key: str) -> Any:
    """A field / value table; a long list value continues on the rows below its field."""
    t = table(title, "field", "value", key=key)
    keys = max((len(k) for k, _ in rows), default=5)
    room = max(20, width() - keys - 2)
    for k, v in rows:
        for i, piece in enumerate(_pieces(v, room)):
            t.add_row(k if i == 0 else "", piece)
    return t


def _sections(title: str, items: list[tuple[str, Any]]) -> None:
    """Fields grouped by their first dotted part (``accelerator.memory_bytes`` under ``accelerator``), one table
    each; CSV (``--csv``): one table of every field with its full dotted name."""
    groups: dict[str, list[tuple[str, str]]] = {}
    for key, value in items:
        head, _, rest = key.partition(".")
        groups.setdefault(head if rest else "", []).append((rest or key, _human(key, value)))
    full = ["field", "value"], [[k, _human(k, v)] for k, v in items]
    first = True
    for head, rows in groups.items():
        show(_fields(f"{title}" if not head else head, rows, "fields"), csv_rows=full, csv=first)
        first = False


def _show_system(s: planner.System) -> None:
    _sections(f"{s.name}: {s.description}" if s.description else s.name,
              _flatten(s.model_dump(exclude={"sources", "description"})))
    say("[bold]sources[/bold]")
    for src in s.sources:
        say(f"  - {src}", markup=False)


def _show_model(m: planner.ModelSpec) -> None:
    items = _flatten(m.model_dump())
    items += [("total params", f"{m.total_params:,} ({m.total_params / 1e9:,.2f} B)"),
              ("active params", f"{m.active_params:,} ({m.active_params / 1e9:,.2f} B)"),
              ("KV cache / token (bf16)", f"{m.kv_cache_bytes_per_token(2):,.0f} B")]
    _sections(f"{m.name} ({m.model_type}, {model_kind(m)})", items)


def _model_json(m: planner.ModelSpec) -> dict[str, Any]:
    return {"kind": "model", "name": m.name, "spec": m.model_dump(mode="json"), "total_params": m.total_params,
            "active_params": m.active_params, "kv_cache_bytes_per_token_bf16": m.kv_cache_bytes_per_token(2),
            "model_kind": model_kind(m)}


def _system_json(s: planner.System) -> dict[str, Any]:
    return {"kind": "gpu", "name": s.name, "spec": s.model_dump(mode="json")}


def _resolve(name: str) -> planner.System | planner.ModelSpec:
    """``specs show NAME``: a hardware YAML, a model file, or a built-in GPU (aliases), else a model (HF ids)."""
    if name.endswith((".yaml", ".yml")):
        return planner.get_system(name)
    if name.endswith(".json"):
        return planner.get_model(name)
    try:
        return planner.get_system(name)
    except SpecError as gpu_err:
        try:
            return planner.get_model(name)
        except SpecError as model_err:
            hint = [s.split("did you mean ", 1)[1].rstrip("?") for s in (str(gpu_err), str(model_err))
                    if "did you mean" in s]
            fail(f"unknown GPU or model {name!r}" + (f"; did you mean {', '.join(hint)}?" if hint else
                                                     "; see 'planner specs list'"))


@specs_app.command("show")
@cli_errors
@tabular("fields")
def specs_show(
    name: str = typer.Argument(..., help="A GPU / system or model: built-in name, alias, HF id or file."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object (every field, SI units) instead of "
                                 "the table."),
) -> None:
    """Show every field of one GPU system or model."""
    spec = _resolve(name)
    if as_json:
        print_json(_system_json(spec) if isinstance(spec, planner.System) else _model_json(spec))
    elif isinstance(spec, planner.System):
        _show_system(spec)
    else:
        _show_model(spec)


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
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object (ok, kind, summary, the spec) instead "
                                 "of the OK line."),
) -> None:
    """Check a spec file: print OK and a summary, or the one-line error (exit 2)."""
    if not file.exists():
        fail(f"{file}: no such file")
    is_model = kind == SpecKind.model or (kind is None and (file.is_dir() or file.suffix == ".json"))
    if is_model:
        m = planner.load_model_file(file)
        line, doc = _model_summary(m), _model_json(m)
    else:
        system = planner.load_system_file(file)
        line, doc = _system_summary(system), _system_json(system)
    if as_json:
        print_json({"ok": True, "file": str(file), "summary": line, **doc})
    else:
        typer.echo(f"OK {file}: {line}")
