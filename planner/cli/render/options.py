"""The values flags take, as help shows them: choices (typer Enums: listed in ``--help``, completed by the
shell, an unknown one refused with the closest) and metavars that say what a value is and in which unit
(``--rate REQ/S``, ``--ttft TIME``) instead of typer's ``<str>`` / ``<bool>``."""

from __future__ import annotations

from enum import Enum
from typing import Any, get_args


from planner.cost.serving import Precision
from planner.export import EXPORTERS

PRECISIONS: tuple[str, ...] = get_args(Precision)
BACKENDS = ("trtllm", "vllm", "sglang")
TRAINING_TARGETS: tuple[str, ...] = tuple(EXPORTERS)
SERVING_TARGETS = ("vllm", "sglang", "trtllm", "k8s")
PLACEMENT_TARGETS = ("json",)
#: planner.simulate_fleet.ROUTERS (not imported: the simulator loads only when a command simulates; a test checks
#: the two agree).
ROUTER_NAMES = ("bucket", "round-robin", "least-outstanding")


def choice(name: str, values: tuple[str, ...] | list[str]) -> Any:
    """An Enum of ``values`` (its members' values are the strings; a command reads ``.value``)."""
    return Enum(name, {v: v for v in values}, type=str)  # type: ignore[misc]


#: Long option -> metavar: what the value is, with its unit where it has one.
METAVARS = {
    "--model": "MODEL", "--gpu": "GPU", "--gpus": "N", "--tp": "N", "--pp": "N", "--dp": "N", "--vpp": "N",
    "--cp": "N", "--ep": "N", "--etp": "N", "--mbs": "SEQS", "--gbs": "SEQS", "--seq": "TOKENS", "--isl": "TOKENS",
    "--osl": "TOKENS", "--tokens": "TOKENS", "--batch-tokens": "TOKENS", "--budget": "USD", "--deadline": "TIME",
    "--ttft": "TIME", "--tpot": "TIME", "--rate": "REQ/S", "--price": "USD/GPU-H", "--max-memory": "FRACTION",
    "--top": "K", "--zero": "STAGE", "--concurrency": "REQUESTS", "--requests": "N", "--seed": "INT",
    "--percentile": "PERCENT", "--time-limit": "SECONDS", "--max-imbalance": "RATIO", "--node-cost": "RATIO",
    "--weight-bytes": "BYTES", "--gpus-per-node": "N", "--redundant": "SLOTS", "--attainment": "FRACTION",
    "--power-budget": "POWER", "--power-cap": "FRACTION", "--slice-factor": "N", "--max": "GPU=N,...",
    "--engine-version": "VERSION", "--layers-per-chunk": "LIST", "--recompute-per-stage": "LIST",
    "--trace": "FILE", "--histogram": "FILE", "--prices": "FILE", "--capacity-table": "FILE", "--plan": "FILE",
    "--from-csv": "FILE", "--out": "FILE", "--export": "FILE", "--model-dir": "DIR", "--reference": "DIR",
}
#: For options with a list of values (``--mbs 1,2``) the metavar says so.
LIST_OPTIONS = {"--mbs": "LIST", "--zero": "LIST", "--recompute": "LIST"}


def _long(param: Any) -> str:
    return max(getattr(param, "opts", None) or [""], key=len)


def choices_of(param: Any) -> list[str]:
    """The values a choice parameter takes (typer's Enum choices, or a click Choice's), else []."""
    desc = getattr(param, "type_descriptor", None)
    if desc is not None and getattr(desc, "is_choice", False):
        return [str(getattr(c, "value", c)) for c in desc.choices or ()]
    return [str(c) for c in getattr(getattr(param, "type", None), "choices", None) or ()]


def _value_type(param: Any) -> Any:
    desc = getattr(param, "type_descriptor", None)
    return getattr(desc, "annotation", None)


def _metavar(param: Any) -> None:
    if getattr(param, "param_type_name", "") == "argument":
        if _value_type(param) is str:  # typer would show <str> beside it: its name and help say more
            param.display_type_rich = lambda ctx: None
        return
    if getattr(param, "param_type_name", "") != "option" or param.metavar is not None:
        return
    if getattr(param, "is_flag", False) or getattr(param, "count", False):
        param.metavar = ""
        return
    if choices_of(param):
        return  # typer lists the choices
    name = _long(param)
    kind = _value_type(param)
    if name in LIST_OPTIONS and kind is str:
        param.metavar = LIST_OPTIONS[name]
    elif name in METAVARS:
        param.metavar = METAVARS[name]
    else:
        param.metavar = {int: "INT", float: "NUMBER"}.get(kind, "PATH" if "Path" in str(kind) else "TEXT")


def polish_help(command: Any) -> Any:
    """Give every option of ``command`` and its subcommands (the help option included) a metavar; returns it."""
    params = list(getattr(command, "params", []))
    make = getattr(command, "context_class", None)
    if make is not None and hasattr(command, "get_help_option"):
        helper = command.get_help_option(make(command))
        if helper is not None:
            params.append(helper)
    for p in params:
        _metavar(p)
    for sub in getattr(command, "commands", {}).values():
        polish_help(sub)
    return command
