"""The ``planner`` command line: parse, call the public API, render with rich.

The CLI holds no modelling logic. Every command calls what ``import planner``
exposes (``get_model``, ``get_system``, ``estimate_train``, ...) or
``planner.validate``, then renders the result as rich tables or, with
``--json``, as exactly one JSON object on stdout.

A bad input (unknown name, malformed spec file, impossible plan, bad flag)
prints ONE line on stderr, ``error: ...``, and exits with status 2; never a
traceback. An unexpected internal failure prints one line and exits 1 (set
``PLANNER_DEBUG=1`` to see the traceback).

Command groups: ``specs``, ``estimate``, ``validate``; commands ``train``
(plan search) and ``export`` (in :mod:`planner.cli_train`). Later groups
(``serve``, ``experts``) are added the same way.
"""

from __future__ import annotations

import functools
import json
import math
import os
import sys
from enum import Enum
from pathlib import Path
from typing import Any, Callable, NoReturn, Optional, TypeVar

import typer
from pydantic import ValidationError
from rich import box
from rich.console import Console
from rich.table import Table

import planner
from planner import PlanError, SpecError, TrainingPlan, UnsupportedArchitecture

EXIT_USAGE = 2  # bad input: one line on stderr
EXIT_INTERNAL = 1  # a bug: one line on stderr (PLANNER_DEBUG=1 for the traceback)

app = typer.Typer(
    name="planner",
    help="Analytical capacity planner for LLM training and serving.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
specs_app = typer.Typer(help="Built-in hardware and model specs; check a spec file.", no_args_is_help=True)
estimate_app = typer.Typer(help="Predict time, memory and cost of one explicit plan.", no_args_is_help=True)
validate_app = typer.Typer(help="Predicted vs published measurements on the reference suites.", no_args_is_help=True)
app.add_typer(specs_app, name="specs")
app.add_typer(estimate_app, name="estimate")
app.add_typer(validate_app, name="validate")

console = Console()


# ---------------------------------------------------------------------------
# errors: one line, exit 2
# ---------------------------------------------------------------------------

USER_ERRORS: tuple[type[BaseException], ...] = (
    SpecError, PlanError, UnsupportedArchitecture, ValidationError, ValueError, FileNotFoundError, OSError,
)

#: TrainingPlan field -> the flag the user typed, so errors name what they wrote.
_FLAG = {
    "micro_batch": "--mbs", "global_batch": "--gbs", "seq_len": "--seq", "tp": "--tp", "pp": "--pp", "vpp": "--vpp",
    "cp": "--cp", "ep": "--ep", "etp": "--etp", "dp": "dp", "recompute": "--recompute", "sp": "--sp",
    "zero": "--zero", "dtype": "--dtype",
}


def _squash(text: str) -> str:
    """Collapse a message to one line (and drop pydantic's "Value error, " prefix)."""
    return " ".join(str(text).replace("Value error, ", "").split())


def format_validation_error(err: ValidationError) -> str:
    """The first problem of a pydantic error as one line: ``where: field: message (got value)``."""
    errors = err.errors()
    if not errors:
        return _squash(str(err))
    e = errors[0]
    loc = ".".join(_FLAG.get(str(p), str(p)) for p in e.get("loc", ()))
    msg = str(e.get("msg", "invalid value"))
    if e.get("type") == "extra_forbidden":
        msg = "unknown field"
    elif e.get("type") == "missing":
        msg = "missing field"
    got = e.get("input")
    if loc and e.get("type") not in ("missing", "extra_forbidden") and isinstance(got, (int, float, str)):
        msg += f" (got {got!r})"
    what = "plan" if err.title == "TrainingPlan" else err.title
    more = f" (and {len(errors) - 1} more problems)" if len(errors) > 1 else ""
    return _squash(f"invalid {what}: {loc + ': ' if loc else ''}{msg}{more}")


def format_error(exc: BaseException) -> str:
    """Any user-facing exception as one line."""
    if isinstance(exc, ValidationError):
        return format_validation_error(exc)
    if isinstance(exc, OSError) and exc.strerror and exc.filename:
        return _squash(f"{exc.filename}: {exc.strerror}")
    return _squash(str(exc) or type(exc).__name__)


def fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    """Print ``error: message`` as one line on stderr and exit."""
    typer.echo(f"error: {_squash(message)}", err=True)
    raise typer.Exit(code)


F = TypeVar("F", bound=Callable[..., Any])


def cli_errors(fn: F) -> F:
    """Turn the planner's input errors into one line and exit 2 at the CLI boundary."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (typer.Exit, BrokenPipeError):
            raise
        except USER_ERRORS as exc:
            fail(format_error(exc))
        except Exception as exc:  # a bug, not the user's input
            if os.environ.get("PLANNER_DEBUG"):
                raise
            fail(f"internal error: {type(exc).__name__}: {format_error(exc)} (set PLANNER_DEBUG=1 for the traceback)",
                 EXIT_INTERNAL)

    return wrapper  # type: ignore[return-value]


# ---------------------------------------------------------------------------
# small formatting helpers
# ---------------------------------------------------------------------------

def _gb(n: float) -> str:
    return f"{n / 1e9:,.1f}"


def _duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "-"
    if seconds < 120:
        return f"{seconds:.3g} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.3g} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.3g} h"
    return f"{seconds / 86400:,.1f} days"


def _json_safe(obj: Any) -> Any:
    """NaN / inf -> null so the output is strict JSON."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    return obj


def print_json(obj: Any) -> None:
    """Exactly one JSON object on stdout (plain print: rich would wrap and colour it)."""
    print(json.dumps(_json_safe(obj), indent=2, allow_nan=False))


def _table(title: str | None = None, *columns: str, right: tuple[str, ...] = ()) -> Table:
    t = Table(title=title, box=box.SIMPLE_HEAVY, title_justify="left", title_style="bold")
    for c in columns:
        t.add_column(c, justify="right" if c in right else "left", overflow="fold")
    return t


def _model_kind(m: planner.ModelSpec) -> str:
    tags = []
    if m.mla is not None:
        tags.append("MLA")
    if m.is_moe:
        tags.append("MoE")
    if "linear" in m.layer_attention:
        tags.append("hybrid-linear")
    elif "sliding" in m.layer_attention:
        tags.append("sliding")
    return " ".join(tags) if tags else "dense"


# ---------------------------------------------------------------------------
# version
# ---------------------------------------------------------------------------

def _version(value: bool) -> None:
    if value:
        typer.echo(f"planner {planner.__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
) -> None:
    """Analytical capacity planner for LLM training and serving.

    Specs (hardware YAML, Hugging Face config.json) -> cost model -> plan.
    """


# ---------------------------------------------------------------------------
# planner specs ...
# ---------------------------------------------------------------------------

class SpecKind(str, Enum):
    gpu = "gpu"
    model = "model"


def _gpu_table() -> Table:
    t = _table("Hardware (built-in)", "name", "aliases", "memory GB", "bf16 TFLOPS", "HBM TB/s", "scale-up",
               "$/GPU-h", right=("memory GB", "bf16 TFLOPS", "HBM TB/s", "scale-up", "$/GPU-h"))
    for name in planner.hardware_names():
        s = planner.get_system(name)
        a, n = s.accelerator, s.node
        price = f"{a.price_per_hour_usd:.2f}" if a.price_per_hour_usd is not None else "-"
        t.add_row(name, ", ".join(s.aliases), _gb(a.memory_bytes), f"{a.flops('bf16') / 1e12:,.1f}",
                  f"{a.hbm_bandwidth_bytes_per_s / 1e12:.2f}", str(n.scale_up_domain), price)
    return t


def _model_table() -> Table:
    t = _table("Models (built-in)", "name", "HF id", "params B", "active B", "layers", "hidden", "kind",
               right=("params B", "active B", "layers", "hidden"))
    for name in planner.model_names():
        m = planner.get_model(name)
        t.add_row(name, m.hf_id or "-", f"{m.total_params / 1e9:,.1f}", f"{m.active_params / 1e9:,.1f}",
                  str(m.num_layers), str(m.hidden_size), _model_kind(m))
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
    t = _table(f"{s.name}: {s.description}" if s.description else s.name, "field", "value")
    for key, value in _flatten(s.model_dump(exclude={"sources", "description"})):
        t.add_row(key, _human(key, value))
    console.print(t)
    console.print("[bold]sources[/bold]")
    for src in s.sources:
        console.print(f"  - {src}", markup=False)


def _show_model(m: planner.ModelSpec) -> None:
    t = _table(f"{m.name} ({m.model_type}, {_model_kind(m)})", "field", "value")
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
    return (f"{m.name} ({m.model_type}, {_model_kind(m)}): {m.total_params / 1e9:,.2f} B params{active}, "
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


# ---------------------------------------------------------------------------
# planner estimate train
# ---------------------------------------------------------------------------

def _default(field: str) -> Any:
    """The plan's own default, so the CLI never disagrees with TrainingPlan."""
    return TrainingPlan.model_fields[field].default


Recompute = Enum("Recompute", {v: v for v in ("none", "selective", "full")}, type=str)  # type: ignore[misc]
Dtype = Enum("Dtype", {v: v for v in ("bf16", "fp16", "fp8")}, type=str)  # type: ignore[misc]


def _train_json(est: planner.TrainingEstimate, tokens: float, price: float | None) -> dict[str, Any]:
    out = est.model_dump(mode="json")
    out["memory"]["headroom_bytes"] = est.memory.headroom_bytes
    out["tokens"] = tokens
    out["time_to_train_s"] = est.time_to_train_s(tokens)
    out["price_per_gpu_hour_usd"] = price
    out["cost_to_train_usd"] = est.cost_to_train_usd(tokens, price) if price is not None else None
    return out


def _render_train(est: planner.TrainingEstimate, tokens: float, price: float | None) -> None:
    p = est.plan
    degrees = f"tp {p.tp} x pp {p.pp} x cp {p.cp} x dp {p.dp}" + (f", vpp {p.vpp}" if p.vpp > 1 else "")
    if p.ep > 1:
        degrees += f", ep {p.ep}, expert tp {p.expert_tp}"
    console.print(f"[bold]{est.model}[/bold] on [bold]{est.num_gpus} x {est.gpu}[/bold]: {degrees}; "
                  f"micro-batch {p.micro_batch}, global batch {p.global_batch} ({p.num_microbatches} micro-batches), "
                  f"seq {p.seq_len}, {p.dtype}, recompute {p.recompute}, sp {'on' if p.sp else 'off'}, ZeRO {p.zero}",
                  highlight=False)

    s = _table("Summary", "metric", "value", right=("value",))
    s.add_row("step time", f"{est.step_time_s:.3f} s")
    s.add_row("tokens / s", f"{est.tokens_per_s:,.0f}")
    s.add_row("MFU", f"{100 * est.mfu:.1f} %")
    s.add_row("model TFLOP/s per GPU", f"{est.model_tflops_per_gpu:.1f}")
    s.add_row("hardware TFLOP/s per GPU", f"{est.hardware_tflops_per_gpu:.1f}")
    mem = est.memory
    fits = "[green]yes[/green]" if est.fits else "[red]NO[/red]"
    s.add_row("fits in memory", f"{fits} ({_gb(mem.peak_bytes)} of {_gb(mem.capacity_bytes)} GB)")
    s.add_row(f"time to train {tokens:.3g} tokens", _duration(est.time_to_train_s(tokens)))
    if price is not None:
        s.add_row(f"cost to train {tokens:.3g} tokens", f"${est.cost_to_train_usd(tokens, price):,.0f} "
                                                        f"(at ${price:.2f}/GPU-h)")
    else:
        s.add_row(f"cost to train {tokens:.3g} tokens", "- (no price in the GPU spec)")
    console.print(s)

    m = _table("Memory per GPU (most loaded stage)", "kind", "GB", "% of capacity", right=("GB", "% of capacity"))
    for label, v in (("weights", mem.weights_bytes), ("gradients", mem.gradients_bytes),
                     ("optimizer", mem.optimizer_bytes), ("activations", mem.activations_bytes),
                     ("other (runtime, logits, buffers)", mem.other_bytes)):
        m.add_row(label, _gb(v), f"{100 * v / mem.capacity_bytes:.1f}")
    m.add_section()
    m.add_row("[bold]peak[/bold]", _gb(mem.peak_bytes), f"{100 * mem.peak_bytes / mem.capacity_bytes:.1f}")
    m.add_row("capacity", _gb(mem.capacity_bytes), "100.0")
    m.add_row("headroom", _gb(mem.headroom_bytes), f"{100 * mem.headroom_bytes / mem.capacity_bytes:.1f}")
    console.print(m)

    b = _table("Step breakdown", "component", "seconds", "% of step", right=("seconds", "% of step"))
    step = est.step_time_s
    notes = {k: v for k, v in est.breakdown.items() if k.endswith("_total")}
    for k, v in est.breakdown.items():
        if k not in notes:
            b.add_row(k, f"{v:.3f}", f"{100 * v / step:.1f}")
    b.add_section()
    b.add_row("[bold]step[/bold]", f"{step:.3f}", "100.0")
    for k, v in notes.items():
        b.add_row(f"[dim]{k} (before overlap)[/dim]", f"[dim]{v:.3f}[/dim]", "")
    console.print(b)
    console.print("[dim]assumptions: " + "; ".join(est.assumptions) + "[/dim]", highlight=False)


@estimate_app.command("train")
@cli_errors
def estimate_train(
    model: str = typer.Option(..., "--model", "-m", help="Built-in name, Hugging Face id, or path to a config.json."),
    gpu: str = typer.Option(..., "--gpu", "-g", help="Built-in system name / alias, or path to a hardware YAML."),
    gpus: int = typer.Option(..., "--gpus", "-n", min=1, help="Total number of GPUs."),
    tp: int = typer.Option(_default("tp"), "--tp", min=1, help="Tensor parallel size."),
    pp: int = typer.Option(_default("pp"), "--pp", min=1, help="Pipeline parallel size."),
    vpp: int = typer.Option(_default("vpp"), "--vpp", min=1, help="Virtual pipeline stages (model chunks) per rank."),
    cp: int = typer.Option(_default("cp"), "--cp", min=1, help="Context parallel size."),
    ep: int = typer.Option(_default("ep"), "--ep", min=1, help="Expert parallel size."),
    etp: Optional[int] = typer.Option(None, "--etp", min=1, help="Expert tensor parallel size [default: tp if ep is 1, "
                                                                  "else 1]."),
    mbs: int = typer.Option(_default("micro_batch"), "--mbs", min=1, help="Micro-batch size (sequences)."),
    gbs: int = typer.Option(..., "--gbs", min=1, help="Global batch size (sequences per step)."),
    seq: int = typer.Option(..., "--seq", min=1, help="Sequence length (tokens)."),
    recompute: Recompute = typer.Option(Recompute(_default("recompute")), "--recompute", help="Activation recomputation."),
    sp: bool = typer.Option(_default("sp"), "--sp/--no-sp", help="Sequence parallelism (with tp > 1)."),
    zero: int = typer.Option(_default("zero"), "--zero", min=0, max=3, help="ZeRO stage (1 = Megatron distributed "
                                                                             "optimizer)."),
    dtype: Dtype = typer.Option(Dtype(_default("dtype")), "--dtype", help="Compute dtype."),
    tokens: float = typer.Option(1e12, "--tokens", min=0, help="Training tokens for time and cost to train."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of tables."),
) -> None:
    """Estimate step time, MFU, memory and cost of one training plan (Megatron-LM semantics)."""
    est = planner.estimate_train(
        model, gpu, gpus=gpus, tp=tp, pp=pp, vpp=vpp, cp=cp, ep=ep, etp=etp, micro_batch=mbs, global_batch=gbs,
        seq_len=seq, recompute=recompute.value, sp=sp, zero=zero, dtype=dtype.value,
    )
    price = planner.get_system(gpu).accelerator.price_per_hour_usd
    if as_json:
        print_json(_train_json(est, tokens, price))
    else:
        _render_train(est, tokens, price)


# ---------------------------------------------------------------------------
# planner validate training
# ---------------------------------------------------------------------------

def _default_reference() -> Path:
    """``../shared/reference`` from the working directory (the project root), or, in a
    source checkout run from elsewhere, the one beside the checkout."""
    from planner.validate import DEFAULT_REFERENCE

    if DEFAULT_REFERENCE.is_dir():
        return DEFAULT_REFERENCE
    beside = Path(planner.__file__).resolve().parents[2] / "shared" / "reference"
    return beside if beside.is_dir() else DEFAULT_REFERENCE


def _pct(x: float) -> str:
    return f"{x:+.1f}" if math.isfinite(x) else "-"


@validate_app.command("training")
@cli_errors
def validate_training(
    reference: Optional[Path] = typer.Option(None, "--reference", "-r", help="The reference folder "
                                             "[default: ../shared/reference]."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of tables."),
    search: bool = typer.Option(False, "--search", help="Also search each Table 1 job and compare the planner's "
                                "best plan with the published (t, p) plan."),
) -> None:
    """Predicted vs published Megatron-LM runs (Narayanan et al. 2021, Tables 1 and 2)."""
    from planner.validate import validate_training as run
    from planner.validate import validate_training_search

    ref = reference if reference is not None else _default_reference()
    if not ref.is_dir():
        fail(f"reference folder {ref} not found (give it with --reference DIR; it is shared/reference beside "
             f"the checkout)")
    result = run(ref)
    rows = validate_training_search(ref) if search else None
    if as_json:
        out = result.model_dump(mode="json")
        if rows is not None:
            out["search"] = [r.model_dump(mode="json") for r in rows]
        print_json(out)
        return
    t1 = _table("Table 1: per-GPU TFLOP/s (weak scaling, A100-80GB)", "model", "GPUs", "t", "p", "vpp", "mbs",
                "published", "predicted", "error %", right=("GPUs", "t", "p", "vpp", "mbs", "published", "predicted",
                                                            "error %"))
    for r in result.table1:
        t1.add_row(r.name, str(r.gpus), str(r.tp), str(r.pp), str(r.vpp), str(r.micro_batch), f"{r.published:.0f}",
                   f"{r.predicted:.0f}", _pct(r.error_pct))
    console.print(t1)
    console.print(f"Table 1 MAPE {result.table1_mape_pct:.1f} %, max |error| {result.table1_max_abs_error_pct:.1f} %",
                  highlight=False)
    if result.table2:
        t2 = _table("Table 2: days to train on 300B tokens", "method / model", "GPUs", "published", "predicted",
                    "error %", right=("GPUs", "published", "predicted", "error %"))
        for r in result.table2:
            t2.add_row(r.name, str(r.gpus), f"{r.published:.1f}", f"{r.predicted:.1f}", _pct(r.error_pct))
        console.print(t2)
        console.print(f"Table 2 MAPE {result.table2_mape_pct:.1f} %, max |error| "
                      f"{result.table2_max_abs_error_pct:.1f} %", highlight=False)
    if rows is not None:
        t3 = _table("Search vs the published plans (same GPUs, batch and 2021 technology)", "model", "GPUs",
                    "published", "step s", "best at its mbs", "faster %", "rank", "best, any mbs", "faster %",
                    "rank", right=("GPUs", "step s", "faster %", "rank"))
        for r in rows:
            t3.add_row(r.name, str(r.gpus), r.published_plan, f"{r.published_step_s:.2f}", r.best_plan,
                       f"{r.speedup_pct:+.1f}", "-" if r.published_rank is None else str(r.published_rank),
                       r.free_best_plan, f"{r.free_speedup_pct:+.1f}",
                       "-" if r.free_published_rank is None else str(r.free_published_rank))
        console.print(t3)
        console.print(f"published (t, p) in the top 5 or within 5 % of the best: {sum(r.accepted for r in rows)} of "
                      f"{len(rows)} rows at the published micro-batch, {sum(r.free_accepted for r in rows)} with the "
                      f"micro-batch free; the best is never slower than the published plan: "
                      f"{all(r.best_step_s <= r.published_step_s * (1 + 1e-9) for r in rows)}", highlight=False)


# ---------------------------------------------------------------------------
# planner train / planner export (in cli_train.py; registered here)
# ---------------------------------------------------------------------------

from planner import cli_experts as _cli_experts  # noqa: E402  (uses the helpers above)
from planner import cli_serve as _cli_serve  # noqa: E402
from planner import cli_train as _cli_train  # noqa: E402

app.command("train")(cli_errors(_cli_train.train))
app.command("export")(cli_errors(_cli_train.export_plan))
estimate_app.command("serve")(cli_errors(_cli_serve.estimate_serve))
validate_app.command("serving")(cli_errors(_cli_serve.validate_serving))
app.command("serve")(cli_errors(_cli_serve.serve))
app.command("simulate")(cli_errors(_cli_serve.simulate_cmd))
app.command("experts")(cli_errors(_cli_experts.experts))


# ---------------------------------------------------------------------------
# entry point
# ---------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> None:
    """``planner`` console script: run the app, usage errors as one line, exit 2."""
    command = typer.main.get_command(app)
    try:
        rv = command.main(args=argv, prog_name="planner", standalone_mode=False)
    except BrokenPipeError:  # `planner ... | head`: stop quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        sys.exit(EXIT_INTERNAL)
    except Exception as exc:
        # Click's usage errors (typer vendors click in recent releases: duck-type them).
        if hasattr(exc, "exit_code") and hasattr(exc, "format_message"):
            ctx = getattr(exc, "ctx", None)
            if type(exc).__name__ == "NoArgsIsHelpError":
                # rich help is printed when the error is built; plain help is its message
                text = exc.format_message()
                if text and text.strip() and text.strip() != "None":
                    typer.echo(text)
                sys.exit(0)
            hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
            typer.echo(f"error: {_squash(exc.format_message())}{hint}", err=True)
            sys.exit(exc.exit_code)
        if type(exc).__name__ == "Abort":
            typer.echo("error: aborted", err=True)
            sys.exit(EXIT_INTERNAL)
        raise
    sys.exit(rv if isinstance(rv, int) else 0)


if __name__ == "__main__":  # pragma: no cover
    main()
