"""Sweeps: a grid of training jobs, each searched by :func:`planner.api.search_train`, one row per job.

A grid file (YAML, read by :func:`planner.files.load_yaml`: safe loader, size and depth bounds) lists
``models``, ``gpus`` (GPU types), ``counts`` (GPU counts), ``seq_lens`` and ``objectives``, and fixes the
options every job shares (:data:`GRID_KEYS`). The jobs are the cartesian product, in the order
models x gpus x counts x seq_lens x objectives; job ``i`` is the ``i``-th of that product. Every job runs the
training search (top 1; the partition MILP unless ``refine: false``) and gives ONE row (:data:`COLUMNS`): its
inputs, then the best plan and its predictions (step time, tokens/s, MFU, memory peak per GPU, time, cost and
energy to train), or the one-line reason it has none (``status``: ``ok``, ``infeasible`` when no plan fits or
meets the deadline / budget, ``invalid`` for a job the planner refuses, ``error`` for an internal failure).

Rows do not depend on where or in which order jobs run: :func:`run_job` is a pure function of the job (the
search is deterministic; the partition MILP's 5 s wall-clock limit is the one exception, reached by no job
measured here), and the file is sorted by job index at the end with one float format (``repr``, the shortest
text that reads back to the same float). Backends: in this process (``workers=1``), a local process pool
(:mod:`concurrent.futures`), or Ray (``ray_address``; the optional extra ``planner[ray]``).

Rows are written as jobs finish (CSV; for Parquet, a CSV journal beside the output), so a crash loses only
the jobs running. A rerun with the same grid and output skips the finished jobs (matched by :attr:`SweepJob.
key`, a hash of the job's inputs) and rewrites the file exactly as one uninterrupted run would have; rows of
jobs that failed with an internal error are run again.
"""

from __future__ import annotations

import csv
import hashlib
import io
import itertools
import json
import math
import os
import time
from collections import Counter
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from .errors import PlannerError, one_line
from .limits import (MAX_BATCH, MAX_DEADLINE_S, MAX_GPUS, MAX_NAME_CHARS, MAX_POSITIONS, MAX_TOKENS, MAX_USD,
                     check_int, check_number)

MAX_SWEEP_JOBS = 100_000  # jobs in one grid (about a day on 2 cores at 1 s a job)
MAX_WORKERS = 4096  # processes of the local pool, or Ray tasks in flight
MAX_REASON_CHARS = 1000  # a row's reason, clipped (search messages are one line of ~300 characters)
ROW_BYTES = 4096  # bound of one output row (the reason included), so a file read back is bounded by the grid
OBJECTIVES = ("time", "cost", "deadline")
DTYPES = ("bf16", "fp16", "fp8", "auto")
RECOMPUTE = ("none", "selective", "full")

#: Every key a grid file may hold -> what it means (unknown keys are an error naming the closest).
GRID_KEYS = {
    "models": "built-in model names, Hugging Face ids or config.json paths (a list)",
    "gpus": "GPU types: built-in system names / aliases or hardware YAML paths (a list)",
    "counts": "GPU counts (a list of whole numbers)",
    "seq_lens": "sequence lengths in tokens (a list of whole numbers)",
    "objectives": "time, cost or deadline, as planner train --objective (a list) [default: [time]]",
    "global_batch": "global batch in sequences (or batch_tokens)",
    "batch_tokens": "global batch in tokens, a multiple of every seq_len (16M = 16 x 2^20)",
    "tokens": "tokens to train, for time, cost and energy to train (e.g. 15T) [default: 1T]",
    "deadline": "maximum time to train the tokens (e.g. 30d, 720h)",
    "budget": "maximum cost to train the tokens, dollars (e.g. 2.5M)",
    "dtype": "bf16, fp16, fp8, or auto (bf16 and fp8 where the GPU has it) [default: bf16]",
    "max_memory": "fraction of GPU memory a plan may use [default: 0.95]",
    "price": "dollars per GPU-hour for every GPU type [default: each spec's]",
    "refine": "run the layer-partition MILP on each best plan [default: true, as planner train]",
    "mbs": "micro-batch sizes to try (a list) [default: the search's 1,2,4,8,16]",
    "recompute": "recomputation modes allowed (a list) [default: none, selective, full]",
    "zero": "ZeRO stages to try (a list) [default: 1, 3]",
}

#: The output's columns and their kinds, in order: the job's inputs, the status, the best plan, its predictions,
#: and the reason a job has no plan. SI units (seconds, bytes) except where the name says kW, MWh or USD.
COLUMNS: tuple[tuple[str, str], ...] = (
    ("job", "int"), ("job_key", "str"), ("model", "str"), ("gpu", "str"), ("gpus", "int"), ("seq_len", "int"),
    ("global_batch", "int"), ("objective", "str"), ("tokens", "float"), ("deadline_s", "float"),
    ("budget_usd", "float"),
    ("status", "str"),
    ("num_gpus", "int"), ("tp", "int"), ("pp", "int"), ("vpp", "int"), ("cp", "int"), ("ep", "int"), ("etp", "int"),
    ("dp", "int"), ("micro_batch", "int"), ("recompute", "str"), ("zero", "int"), ("dtype", "str"), ("sp", "bool"),
    ("layers_per_chunk", "str"), ("recompute_per_stage", "str"), ("partition", "str"),
    ("step_time_s", "float"), ("tokens_per_s", "float"), ("mfu", "float"), ("memory_peak_bytes", "float"),
    ("memory_capacity_bytes", "float"), ("time_to_train_s", "float"), ("price_per_gpu_hour_usd", "float"),
    ("cost_to_train_usd", "float"), ("power_kw", "float"), ("energy_to_train_mwh", "float"),
    ("reason", "str"),
)
COLUMN_NAMES = tuple(name for name, _ in COLUMNS)
INPUT_COLUMNS = ("model", "gpu", "gpus", "seq_len", "global_batch", "objective", "tokens", "deadline_s", "budget_usd")
STATUSES = ("ok", "infeasible", "invalid", "error")


class SweepError(PlannerError):
    """A grid that cannot be run as given, or an output file that is not this grid's: one line."""


# ---------------------------------------------------------------------------------------------------------------
# the grid
# ---------------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class JobOptions:
    """What every job of a grid shares (the grid file's scalar keys, read and checked)."""

    tokens: float = 1e12
    deadline_s: float | None = None
    budget_usd: float | None = None
    dtype: str = "bf16"
    max_memory: float = 0.95
    price: float | None = None
    refine: bool = True
    mbs: tuple[int, ...] | None = None
    recompute: tuple[str, ...] | None = None
    zero: tuple[int, ...] | None = None


@dataclass(frozen=True)
class SweepJob:
    """One job of a grid: its place in the product, what it searches and the shared options."""

    index: int
    model: str
    gpu: str
    gpus: int
    seq_len: int
    global_batch: int  # sequences
    objective: str
    options: JobOptions

    def inputs(self) -> dict[str, Any]:
        """Everything that determines the job's row (its index aside): the source of :attr:`key`."""
        o = self.options
        return {"model": self.model, "gpu": self.gpu, "gpus": self.gpus, "seq_len": self.seq_len,
                "global_batch": self.global_batch, "objective": self.objective, "tokens": o.tokens,
                "deadline_s": o.deadline_s, "budget_usd": o.budget_usd, "dtype": o.dtype, "max_memory": o.max_memory,
                "price": o.price, "refine": o.refine, "mbs": o.mbs, "recompute": o.recompute, "zero": o.zero}

    @cached_property
    def key(self) -> str:
        """16 hex digits of SHA-256 over the canonical JSON of :meth:`inputs`: stable across runs and
        machines, and the same whatever the job's place in the grid."""
        text = json.dumps(self.inputs(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def input_row(self) -> dict[str, Any]:
        """The row's input columns (the plan columns empty)."""
        row: dict[str, Any] = {name: None for name in COLUMN_NAMES}
        row.update({k: v for k, v in self.inputs().items() if k in INPUT_COLUMNS})
        row["job"], row["job_key"] = self.index, self.key
        return row


@dataclass(frozen=True)
class SweepGrid:
    """A checked grid: the lists whose product is the jobs, and the shared options."""

    models: tuple[str, ...]
    gpus: tuple[str, ...]
    counts: tuple[int, ...]
    seq_lens: tuple[int, ...]
    objectives: tuple[str, ...]
    options: JobOptions
    global_batch: int | None = None  # sequences, or
    batch_tokens: int | None = None  # tokens (global batch = batch_tokens / seq_len)

    def __len__(self) -> int:
        return len(self.models) * len(self.gpus) * len(self.counts) * len(self.seq_lens) * len(self.objectives)

    def jobs(self) -> list[SweepJob]:
        """The product models x gpus x counts x seq_lens x objectives, job ``i`` the ``i``-th."""
        out = []
        product = itertools.product(self.models, self.gpus, self.counts, self.seq_lens, self.objectives)
        for i, (m, g, n, s, obj) in enumerate(product):
            gbs = self.global_batch if self.global_batch is not None else self.batch_tokens // s  # type: ignore
            out.append(SweepJob(i, m, g, n, s, gbs, obj, self.options))
        return out


def _err(where: str, key: str, message: str) -> SweepError:
    return SweepError(f"{where}: {key}: {message}")


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _closest(name: str, known: Iterable[str]) -> str:
    import difflib

    near = difflib.get_close_matches(str(name), list(known), n=1)
    return f" (did you mean {near[0]!r}?)" if near else ""


def _as_list(data: dict[str, Any], key: str, where: str, default: list | None = None) -> list:
    """A grid list: a YAML list (a scalar is a list of one), not empty, no value twice."""
    value = data.get(key, default)
    if value is None:
        raise _err(where, key, f"missing; give {GRID_KEYS[key]}")
    if not isinstance(value, list):
        if isinstance(value, dict):
            raise _err(where, key, "expected a list, got a mapping")
        value = [value]
    if not value:
        raise _err(where, key, "is empty; give at least one value")
    if len(value) > MAX_SWEEP_JOBS:
        raise _err(where, key, f"lists {len(value):,} values; a grid runs at most {MAX_SWEEP_JOBS:,} jobs")
    return value


def _no_repeats(values: list, key: str, where: str) -> None:
    seen: set = set()
    for i, v in enumerate(values):
        if v in seen:
            raise _err(where, f"{key}[{i}]", f"{_show(v)} is listed twice")
        seen.add(v)


def _name(value: Any, key: str, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _err(where, key, f"expected a name, got {_show(value)}")
    if len(value) > MAX_NAME_CHARS:
        raise _err(where, key, f"a name of {len(value):,} characters; at most {MAX_NAME_CHARS:,}")
    return value.strip()


def _whole(value: Any, key: str, where: str, hi: int, lo: int = 1) -> int:
    try:
        return check_int(value, key, lo=lo, hi=hi)
    except PlannerError as exc:
        raise SweepError(f"{where}: {exc}") from None


def _amount(value: Any, key: str, where: str, hi: float) -> float:
    """A positive finite number, or text with a decimal suffix: ``2.5e6``, ``2.5M``, ``$300k``, ``15T``."""
    if isinstance(value, str):
        s = value.strip().lstrip("$").replace(",", "").replace("_", "")
        scale = {"k": 1e3, "K": 1e3, "M": 1e6, "B": 1e9, "G": 1e9, "T": 1e12}
        mult = scale.get(s[-1:], 1.0)
        try:
            value = float(s[:-1] if s[-1:] in scale else s) * mult
        except ValueError:
            raise _err(where, key, f"cannot read {_show(value)} as a number (e.g. 1e12, 15T, 2.5M)") from None
    try:
        return float(check_number(value, key, hi=hi))
    except PlannerError as exc:
        raise SweepError(f"{where}: {exc}") from None


def _batch_tokens(value: Any, where: str) -> int:
    """``16M`` -> 16 x 2^20 tokens (batches are counted in binary units, as ``planner train --batch-tokens``)."""
    if isinstance(value, str):
        from .specs.units import read_token_count

        try:
            v = read_token_count(value)
        except ValueError:
            raise _err(where, "batch_tokens", f"cannot read {_show(value)} as a token count (e.g. 16M = 16 x "
                       "2^20, 4194304)") from None
        if not math.isfinite(v) or v != int(v):
            raise _err(where, "batch_tokens", f"must be a whole number of tokens, got {_show(value)}")
        value = int(v)
    return _whole(value, "batch_tokens", where, hi=MAX_BATCH * MAX_POSITIONS)


def _deadline(value: Any, where: str) -> float:
    from .specs.units import parse_seconds

    if isinstance(value, (int, float)) and not isinstance(value, bool):
        raise _err(where, "deadline", f"give units, e.g. 30d or 720h (got {_show(value)})")
    try:
        v = parse_seconds(value)
    except (ValueError, OverflowError):
        raise _err(where, "deadline", f"cannot read {_show(value)} as a time (e.g. 30d, 720h)") from None
    if not 0 < v <= MAX_DEADLINE_S:
        raise _err(where, "deadline", f"must be a positive time of at most {MAX_DEADLINE_S / 86400 / 365:g} "
                   f"years, got {_show(value)}")
    return v


def _choices(values: list, key: str, where: str, allowed: tuple) -> tuple:
    for i, v in enumerate(values):
        if v not in allowed:
            raise _err(where, f"{key}[{i}]", f"{_show(v)} is not one of {', '.join(map(str, allowed))}")
    return tuple(values)


def parse_grid(data: Any, where: str = "grid", resolve: bool = True) -> SweepGrid:
    """A parsed grid document -> :class:`SweepGrid`; each problem one :class:`SweepError` line naming the key.

    ``resolve``: look every model and GPU name up in the catalog now (an unknown name fails the grid before any
    job runs, with the closest known name)."""
    if not isinstance(data, dict):
        raise SweepError(f"{where}: expected a mapping of grid keys ({', '.join(GRID_KEYS)}), got "
                         f"{type(data).__name__}")
    for k in data:
        if k not in GRID_KEYS:
            raise _err(where, _show(k) if not isinstance(k, str) else k[:40], f"unknown key{_closest(k, GRID_KEYS)}; "
                       f"the keys are {', '.join(GRID_KEYS)}")
    lists = {k: _as_list(data, k, where, ["time"] if k == "objectives" else None)
             for k in ("models", "gpus", "counts", "seq_lens", "objectives")}
    n_jobs = math.prod(len(v) for v in lists.values())
    if n_jobs > MAX_SWEEP_JOBS:
        sizes = " x ".join(f"{len(v):,} {k}" for k, v in lists.items())
        raise SweepError(f"{where}: {sizes} = {n_jobs:,} jobs; a grid runs at most {MAX_SWEEP_JOBS:,}")
    models = tuple(_name(v, f"models[{i}]", where) for i, v in enumerate(lists["models"]))
    gpus = tuple(_name(v, f"gpus[{i}]", where) for i, v in enumerate(lists["gpus"]))
    counts = tuple(_whole(v, f"counts[{i}]", where, hi=MAX_GPUS) for i, v in enumerate(lists["counts"]))
    seq_lens = tuple(_whole(v, f"seq_lens[{i}]", where, hi=MAX_POSITIONS) for i, v in enumerate(lists["seq_lens"]))
    objectives = _choices(lists["objectives"], "objectives", where, OBJECTIVES)
    for key, values in (("models", models), ("gpus", gpus), ("counts", counts), ("seq_lens", seq_lens),
                        ("objectives", objectives)):
        _no_repeats(list(values), key, where)

    if ("global_batch" in data) == ("batch_tokens" in data):
        raise SweepError(f"{where}: give the global batch as exactly one of global_batch (sequences) or "
                         "batch_tokens (tokens)")
    global_batch = batch_tokens = None
    if "global_batch" in data:
        global_batch = _whole(data["global_batch"], "global_batch", where, hi=MAX_BATCH)
    else:
        batch_tokens = _batch_tokens(data["batch_tokens"], where)
        for i, s in enumerate(seq_lens):
            if batch_tokens % s:
                raise _err(where, "batch_tokens", f"{batch_tokens:,} tokens is not a multiple of seq_lens[{i}] = {s}")
            if batch_tokens // s > MAX_BATCH:
                raise _err(where, "batch_tokens", f"{batch_tokens // s:,} sequences of seq_lens[{i}] = {s}; at most "
                           f"{MAX_BATCH:,}")

    opts: dict[str, Any] = {}
    if data.get("tokens") is not None:
        opts["tokens"] = _amount(data["tokens"], "tokens", where, MAX_TOKENS)
    if data.get("deadline") is not None:
        opts["deadline_s"] = _deadline(data["deadline"], where)
    if data.get("budget") is not None:
        opts["budget_usd"] = _amount(data["budget"], "budget", where, MAX_USD)
    if data.get("price") is not None:
        opts["price"] = _amount(data["price"], "price", where, MAX_USD)
    if data.get("dtype") is not None:
        opts["dtype"] = _choices([data["dtype"]], "dtype", where, DTYPES)[0]
    if data.get("max_memory") is not None:
        opts["max_memory"] = _amount(data["max_memory"], "max_memory", where, 1.0)
    if data.get("refine") is not None:
        if not isinstance(data["refine"], bool):
            raise _err(where, "refine", f"expected true or false, got {_show(data['refine'])}")
        opts["refine"] = data["refine"]
    if data.get("mbs") is not None:
        mbs = _as_list(data, "mbs", where)
        opts["mbs"] = tuple(_whole(v, f"mbs[{i}]", where, hi=MAX_BATCH) for i, v in enumerate(mbs))
        _no_repeats(list(opts["mbs"]), "mbs", where)
    if data.get("recompute") is not None:
        opts["recompute"] = _choices(_as_list(data, "recompute", where), "recompute", where, RECOMPUTE)
        _no_repeats(list(opts["recompute"]), "recompute", where)
    if data.get("zero") is not None:
        zero = _as_list(data, "zero", where)
        opts["zero"] = tuple(_whole(v, f"zero[{i}]", where, hi=3, lo=0) for i, v in enumerate(zero))
        _no_repeats(list(opts["zero"]), "zero", where)
    options = JobOptions(**opts)
    if "deadline" in objectives and options.deadline_s is None:
        raise _err(where, "objectives", "deadline needs a deadline key (e.g. deadline: 30d)")

    if resolve:
        from .catalog import get_model, get_system

        for key, names, get in (("models", models, get_model), ("gpus", gpus, get_system)):
            for i, name in enumerate(names):
                try:
                    get(name)
                except (PlannerError, OSError) as exc:
                    raise _err(where, f"{key}[{i}]", one_line(" ".join(str(exc).split()))) from None
    return SweepGrid(models, gpus, counts, seq_lens, objectives, options, global_batch, batch_tokens)


def load_grid(path: str | Path) -> SweepGrid:
    """A grid YAML file -> :class:`SweepGrid` (:func:`planner.files.load_yaml`, then :func:`parse_grid`)."""
    from .files import load_yaml

    return parse_grid(load_yaml(path, "a sweep grid (YAML)"), str(path))


# ---------------------------------------------------------------------------------------------------------------
# one job
# ---------------------------------------------------------------------------------------------------------------

def search_options(job: SweepJob) -> dict[str, Any]:
    """The keyword arguments of :func:`planner.search_train` for ``job`` (top 1: only the best plan is kept)."""
    from .catalog import get_system

    o = job.options
    dtypes: tuple[str, ...] = (o.dtype,)
    if o.dtype == "auto":
        dtypes = ("bf16", "fp8") if get_system(job.gpu).accelerator.has_native("fp8") else ("bf16",)
    kw: dict[str, Any] = {"objective": job.objective, "tokens": o.tokens, "budget_usd": o.budget_usd,
                          "deadline_s": o.deadline_s, "top": 1, "dtypes": dtypes, "refine": o.refine,
                          "max_memory_fraction": o.max_memory, "price_per_gpu_hour": o.price}
    if o.mbs is not None:
        kw["micro_batches"] = o.mbs
    if o.recompute is not None:
        kw["recompute"] = o.recompute
    if o.zero is not None:
        kw["zero_stages"] = o.zero
    return kw


def _search(job: SweepJob) -> Any:
    """The job's training search: :func:`planner.api.search_train` (its best plan passed the gate)."""
    from .api import search_train

    return search_train(job.model, job.gpu, job.gpus, job.seq_len, job.global_batch, **search_options(job))


def _reason(exc: BaseException) -> str:
    text = one_line(" ".join(str(exc).replace("Value error, ", "").split())) or type(exc).__name__
    return text if len(text) <= MAX_REASON_CHARS else text[: MAX_REASON_CHARS - 3] + "..."


def run_job(job: SweepJob) -> dict[str, Any]:
    """One job -> its row (:data:`COLUMNS`). Never raises: a job without a plan says why in ``reason``.

    Predictions are the search's best plan's (:class:`planner.TrainingEstimate`): time to train = tokens /
    (tokens/s); cost = GPUs x $/GPU-hour x hours; power = GPUs x TDP (:func:`planner.cost.power.
    training_power_w`, the Llama 3 model card's convention, an upper bound); energy = power x time to train."""
    from .catalog import get_system
    from .cost.power import energy_mwh, training_power_w
    from .search.training import InfeasibleError

    row = job.input_row()
    try:
        res = _search(job)
    except InfeasibleError as exc:
        return {**row, "status": "infeasible", "reason": _reason(exc)}
    except ValueError as exc:  # PlannerError, pydantic's ValidationError: the planner refuses the job
        return {**row, "status": "invalid", "reason": _reason(exc)}
    except Exception as exc:  # a bug: recorded, and run again by the next resume
        return {**row, "status": "error", "reason": _reason(f"{type(exc).__name__}: {exc}")}
    best, tokens = res.best, job.options.tokens
    p = best.plan
    price = res.price_per_gpu_hour
    power_w = training_power_w(get_system(job.gpu).accelerator, best.num_gpus)
    t_train = float(best.time_to_train_s(tokens))
    row.update({
        "status": "ok", "num_gpus": best.num_gpus, "tp": p.tp, "pp": p.pp, "vpp": p.vpp, "cp": p.cp, "ep": p.ep,
        "etp": p.expert_tp, "dp": p.dp, "micro_batch": p.micro_batch, "recompute": p.recompute, "zero": p.zero,
        "dtype": p.dtype, "sp": bool(p.sp),
        "layers_per_chunk": ",".join(map(str, p.layers_per_chunk)) if p.layers_per_chunk else None,
        "recompute_per_stage": ",".join(map(str, p.recompute_per_stage)) if p.recompute_per_stage else None,
        "partition": res.partition.status if res.partition is not None else None,
        "step_time_s": best.step_time_s, "tokens_per_s": best.tokens_per_s, "mfu": best.mfu,
        "memory_peak_bytes": best.memory.peak_bytes, "memory_capacity_bytes": best.memory.capacity_bytes,
        "time_to_train_s": t_train, "price_per_gpu_hour_usd": price,
        "cost_to_train_usd": best.cost_to_train_usd(tokens, price) if price is not None else None,
        "power_kw": power_w / 1e3, "energy_to_train_mwh": energy_mwh(power_w, t_train),
    })
    return normalise(row)


def normalise(row: dict[str, Any]) -> dict[str, Any]:
    """Every cell as its column's Python type (numpy scalars and ints in float columns converted)."""
    out = {}
    for name, kind in COLUMNS:
        v = row.get(name)
        if v is not None:
            v = {"int": int, "float": float, "str": str, "bool": bool}[kind](v)
        out[name] = v
    return out


# ---------------------------------------------------------------------------------------------------------------
# rows as text (CSV) and back
# ---------------------------------------------------------------------------------------------------------------

def cell(value: Any, kind: str) -> str:
    """One CSV cell: empty for none, ``repr`` for floats (reads back to the same float), true / false."""
    if value is None:
        return ""
    if kind == "bool":
        return "true" if value else "false"
    if kind == "float":
        return repr(float(value))
    return str(value)


def parse_cell(text: str, kind: str) -> Any:
    """:func:`cell` inverted; a value that is not its column's kind raises ``ValueError``."""
    if text == "":
        return None
    if kind == "int":
        if len(text) > 20:
            raise ValueError(text)
        return int(text)
    if kind == "float":
        v = float(text)
        if not math.isfinite(v):
            raise ValueError(text)
        return v
    if kind == "bool":
        return {"true": True, "false": False}[text]
    return text


def _csv_text(fields: Iterable[Iterable[str]]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(fields)
    return buf.getvalue()


HEADER = _csv_text([COLUMN_NAMES])


def line(row: dict[str, Any]) -> str:
    """One row as a CSV line (with its newline): the form rows are kept in, written and compared."""
    return _csv_text([[cell(row.get(name), kind) for name, kind in COLUMNS]])


def _parse_fields(fields: list[str]) -> dict[str, Any] | None:
    if len(fields) != len(COLUMNS):
        return None
    try:
        return {name: parse_cell(t, kind) for (name, kind), t in zip(COLUMNS, fields)}
    except (ValueError, KeyError):
        return None


def _foreign(path: Path) -> SweepError:
    return SweepError(f"{path}: not a sweep output of this planner (its columns differ); choose another --out, or "
                      "--restart to replace it")


def _iter_csv_rows(path: Path, max_bytes: int) -> Iterator[dict[str, Any]]:
    """The well-formed rows of a sweep CSV (a crash's partial last line and unreadable rows dropped: their jobs
    run again); a file with other columns is an error."""
    from .files import read_text

    text = read_text(path, "a sweep output (CSV)", max_bytes=max_bytes)
    complete = text if text.endswith("\n") else text[: text.rfind("\n") + 1]
    reader = csv.reader(io.StringIO(complete))
    header = next(reader, None)
    if header is None:  # empty, or only a partial header line
        return
    if tuple(header) != COLUMN_NAMES:
        raise _foreign(path)
    for fields in reader:
        row = _parse_fields(fields)
        if row is not None:
            yield row


def _parquet() -> tuple[Any, Any]:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise SweepError("Parquet output needs pyarrow: pip install 'planner[parquet]' (or write --out FILE.csv)"
                         ) from None
    return pa, pq


def _arrow_schema(pa: Any) -> Any:
    kinds = {"int": pa.int64(), "float": pa.float64(), "str": pa.string(), "bool": pa.bool_()}
    return pa.schema([(name, kinds[kind]) for name, kind in COLUMNS])


def _iter_parquet_rows(path: Path, max_bytes: int) -> Iterator[dict[str, Any]]:
    from .files import read_bytes

    pa, pq = _parquet()
    data = read_bytes(path, "a sweep output (Parquet)", max_bytes=max_bytes)
    try:
        table = pq.read_table(pa.BufferReader(data))
    except Exception as exc:  # pyarrow's errors are ArrowInvalid, OSError, ...: the file is not Parquet
        raise SweepError(f"{path}: not a Parquet file ({_reason(exc)[:120]}); choose another --out, or --restart "
                         "to replace it") from None
    if tuple(table.column_names) != COLUMN_NAMES:
        raise _foreign(path)
    for batch in table.to_batches():
        for r in batch.to_pylist():
            try:  # through the text form, so a row read back is checked as a CSV row is
                row = _parse_fields([cell(r[name], kind) for name, kind in COLUMNS])
            except (ValueError, TypeError):
                row = None
            if row is not None:
                yield row


def _replace(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (a file beside it, then a rename)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _parquet_bytes(lines: list[str]) -> bytes:
    """The rows (CSV lines) as a Parquet file: one typed column per :data:`COLUMNS` entry."""
    pa, pq = _parquet()
    columns: dict[str, list] = {name: [] for name in COLUMN_NAMES}
    for fields in csv.reader(io.StringIO("".join(lines))):
        for (name, kind), t in zip(COLUMNS, fields):
            columns[name].append(parse_cell(t, kind))
    table = pa.Table.from_pydict(columns, schema=_arrow_schema(pa))
    buf = pa.BufferOutputStream()
    pq.write_table(table, buf)
    return buf.getvalue().to_pybytes()


# ---------------------------------------------------------------------------------------------------------------
# the output file: journal while running, sorted at the end
# ---------------------------------------------------------------------------------------------------------------

class SweepOutput:
    """A sweep's output file: ``.csv`` (the journal is the file itself) or ``.parquet`` (a CSV journal beside
    it, ``FILE.parquet.partial.csv``, removed once the Parquet file is written)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        suffix = self.path.suffix.lower()
        if suffix not in (".csv", ".parquet"):
            raise SweepError(f"--out {self.path}: the file must end in .csv or .parquet")
        self.format = suffix[1:]
        if self.format == "parquet":
            _parquet()  # the missing extra fails before any job runs
        self.journal = self.path if self.format == "csv" else self.path.with_name(self.path.name + ".partial.csv")
        self._file: Any = None

    def read(self, max_rows: int) -> Iterator[dict[str, Any]]:
        """The rows already written (file, then journal), in file order."""
        bound = ROW_BYTES * (max_rows + 1)
        if self.format == "parquet" and self.path.exists():
            yield from _iter_parquet_rows(self.path, bound)
        if self.journal.exists():
            yield from _iter_csv_rows(self.journal, bound)

    def begin(self, lines: dict[int, str]) -> None:
        """Start the journal afresh with ``lines`` (job index -> CSV line: the finished jobs kept), then keep it
        open for appending."""
        _replace(self.journal, (HEADER + "".join(lines[i] for i in sorted(lines))).encode())
        self._file = open(self.journal, "a", encoding="utf-8", newline="")

    def add(self, text: str) -> None:
        """Append one finished row (a CSV line) to the journal, flushed: a crash loses only the jobs running."""
        self._file.write(text)
        self._file.flush()

    def finish(self, lines: dict[int, str]) -> None:
        """Write every row sorted by job index; the same rows give the same bytes."""
        self.close()
        ordered = [lines[i] for i in sorted(lines)]
        if self.format == "csv":
            _replace(self.path, (HEADER + "".join(ordered)).encode())
        else:
            _replace(self.path, _parquet_bytes(ordered))
            self.journal.unlink(missing_ok=True)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def _lock(path: Path) -> Any:
    """An exclusive lock on ``path``'s sweep (a ``.NAME.lock`` file beside it, locked with ``flock``: released
    when the process ends, however it ends), so two sweeps never write one output; None where there is no
    ``fcntl``."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover  (Windows)
        return None
    lock = path.with_name(f".{path.name}.lock")
    f = open(lock, "a")
    try:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        f.close()
        raise SweepError(f"{path}: another planner sweep is writing it; wait for it to end or choose another "
                         "--out") from None
    return f


def _unlock(f: Any, path: Path) -> None:
    if f is not None:
        path.with_name(f".{path.name}.lock").unlink(missing_ok=True)
        f.close()


def _kept_rows(previous: Iterable[dict[str, Any]], jobs: list[SweepJob], path: Path) -> dict[str, dict]:
    """The rows of a previous run to keep, by job key: finished (not ``error``), of a job of this grid with the
    same inputs, the first of duplicates; re-indexed to the job's place in this grid."""
    by_key = {j.key: j for j in jobs}
    kept: dict[str, dict] = {}
    strangers = 0
    for r in previous:
        job = by_key.get(r.get("job_key"))  # type: ignore[arg-type]
        if job is None:
            strangers += 1
            continue
        if r["job_key"] in kept or r.get("status") not in STATUSES or r["status"] == "error":
            continue
        mine = job.input_row()
        if any(r.get(k) != mine[k] for k in INPUT_COLUMNS):
            continue  # tampered or damaged: run it again
        kept[job.key] = {**r, "job": job.index}
    if strangers:
        raise SweepError(f"{path}: holds {strangers:,} row(s) of jobs not in this grid (another grid's output?); "
                         "choose another --out, or --restart to replace it")
    return kept


# ---------------------------------------------------------------------------------------------------------------
# backends: each yields rows as jobs finish
# ---------------------------------------------------------------------------------------------------------------

def _serial(jobs: list[SweepJob]) -> Iterator[dict[str, Any]]:
    for job in jobs:
        yield run_job(job)


def _ignore_sigint() -> None:
    """Pool workers leave Ctrl-C to the parent (which stops the sweep; the rows written stay)."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _pool(jobs: list[SweepJob], workers: int) -> Iterator[dict[str, Any]]:
    """A local process pool; at most ``4 x workers`` jobs submitted at a time (memory bounded by the window,
    not the grid)."""
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    pending = iter(jobs)
    window = 4 * workers
    ex = ProcessPoolExecutor(max_workers=min(workers, len(jobs)), initializer=_ignore_sigint)
    try:
        running = {ex.submit(run_job, j) for j in itertools.islice(pending, window)}
        while running:
            done, running = wait(running, return_when=FIRST_COMPLETED)
            for f in sorted(done, key=lambda f: f.result()["job"]):
                yield f.result()
            running |= {ex.submit(run_job, j) for j in itertools.islice(pending, len(done))}
    finally:
        ex.shutdown(wait=True, cancel_futures=True)


def ray_missing() -> SweepError:
    return SweepError("--ray needs Ray: pip install 'planner[ray]'")


RAY_CONNECT_TIMEOUT_S = 5.0  # a cluster address must accept a TCP connection within this (Ray itself retries for minutes)


def _reachable(address: str, timeout_s: float = RAY_CONNECT_TIMEOUT_S) -> None:
    """A ``host:port`` or ``ray://host:port`` address accepts a TCP connection, else one :class:`SweepError` line
    (``auto`` and ``local`` are Ray's own lookups and pass)."""
    import socket

    if address in ("auto", "local"):
        return
    rest = address[len("ray://"):] if address.startswith("ray://") else address
    host, sep, port = rest.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise SweepError(f"--ray {address!r:.80}: give auto, local, HOST:PORT or ray://HOST:PORT")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s):
            pass
    except OSError as exc:
        raise SweepError(f"--ray {address:.80}: nothing answers at {host}:{port} within {timeout_s:g} s "
                         f"({exc.strerror or exc.__class__.__name__})") from None


def _ray(jobs: list[SweepJob], address: str, workers: int | None) -> Iterator[dict[str, Any]]:
    """Ray tasks, one per job (``num_cpus=1``), at most ``2 x`` the cluster's CPUs (or ``workers``) in flight.

    ``address``: ``"local"`` starts a local Ray runtime (``workers`` CPUs, default all) for this sweep; any
    other value is passed to ``ray.init(address=...)`` (``auto``, ``ray://host:10001``, ``host:6379``). A
    runtime already initialised in this process is used as it is."""
    try:
        import ray
    except ImportError:
        raise ray_missing() from None
    import logging

    started = False
    if not ray.is_initialized():
        kw: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.ERROR,
                              "configure_logging": True}
        try:
            if address == "local":
                ray.init(address="local", num_cpus=workers, **kw)
            else:
                ray.init(address=address, **kw)
        except SweepError:
            raise
        except Exception as exc:  # ConnectionError, ValueError, RuntimeError: Ray's words for "cannot reach it"
            raise SweepError(f"--ray {address}: cannot start or reach a Ray runtime ({_reason(exc)[:160]})") from None
        started = True
    try:
        cpus = int(ray.cluster_resources().get("CPU", 1))
        window = 2 * (workers if workers is not None else max(1, cpus))
        task = ray.remote(num_cpus=1)(run_job)
        pending = iter(jobs)
        running = {task.remote(j): j for j in itertools.islice(pending, window)}
        while running:
            ready, _ = ray.wait(list(running), num_returns=1)
            for ref in ready:
                job = running.pop(ref)
                try:
                    row = ray.get(ref)
                except Exception as exc:  # the worker died (out of memory, node lost): recorded, run again later
                    row = {**job.input_row(), "status": "error", "reason": _reason(f"ray: {exc}")}
                yield row
            for j in itertools.islice(pending, len(ready)):
                running[task.remote(j)] = j
    finally:
        if started:
            ray.shutdown()


# ---------------------------------------------------------------------------------------------------------------
# the sweep
# ---------------------------------------------------------------------------------------------------------------

@dataclass
class SweepSummary:
    """What a sweep did: jobs in the grid, run now (``done``), found finished (``skipped``), and the rows by
    status in the file written."""

    output: str
    format: str
    backend: str
    workers: int | None
    jobs: int
    done: int
    skipped: int
    ok: int
    infeasible: int
    invalid: int
    failed: int
    elapsed_s: float

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def run_sweep(grid: SweepGrid, out: str | Path, *, workers: int | None = 1, ray_address: str | None = None,
              restart: bool = False, progress: Callable[[int, int], None] | None = None) -> SweepSummary:
    """Run every job of ``grid`` not already finished in ``out``; write ``out`` sorted by job index.

    ``workers``: 1 runs the jobs in this process, more a local process pool of that many (None: one per CPU);
    with ``ray_address`` (``"local"`` or a cluster address) the jobs are Ray tasks and ``workers`` caps the CPUs
    of a local runtime and the tasks in flight (None: the cluster's CPUs). ``restart``: ignore (and replace) the
    rows already in ``out``. ``progress(done, total)`` is called as jobs finish."""
    t0 = time.perf_counter()
    if workers is None and ray_address is None:
        workers = os.cpu_count() or 1
    if workers is not None:
        workers = check_int(workers, "--workers", hi=MAX_WORKERS)
    output = SweepOutput(out)
    lock = _lock(output.path)
    try:
        return _run_locked(grid, output, workers, ray_address, restart, progress, t0)
    finally:
        _unlock(lock, output.path)


def _run_locked(grid: SweepGrid, output: SweepOutput, workers: int | None, ray_address: str | None, restart: bool,
                progress: Callable[[int, int], None] | None, t0: float) -> SweepSummary:
    jobs = grid.jobs()
    kept = {} if restart else _kept_rows(output.read(len(jobs)), jobs, output.path)
    todo = [j for j in jobs if j.key not in kept]
    lines = {r["job"]: line(r) for r in kept.values()}
    count = Counter(r["status"] for r in kept.values())
    del kept
    if ray_address is not None:
        backend = "ray"
        try:
            import ray  # (fail before touching the output)
        except ImportError:
            raise ray_missing() from None
        if todo and not ray.is_initialized():
            _reachable(ray_address)  # an address nothing answers at: one line now, not minutes of Ray's retries
        stream = _ray(todo, ray_address, workers) if todo else iter(())
    elif workers == 1 or len(todo) <= 1:
        backend, stream = "serial", _serial(todo)
    else:
        backend, stream = "pool", _pool(todo, workers)
    output.begin(lines)
    skipped = len(lines)
    try:
        if progress is not None:
            progress(0, len(todo))
        for i, row in enumerate(stream, start=1):
            text = line(row)
            lines[row["job"]] = text
            count[row["status"]] += 1
            output.add(text)
            if progress is not None:
                progress(i, len(todo))
    finally:
        output.close()
    output.finish(lines)
    return SweepSummary(output=str(output.path), format=output.format, backend=backend, workers=workers,
                        jobs=len(jobs), done=len(todo), skipped=skipped, ok=count["ok"],
                        infeasible=count["infeasible"], invalid=count["invalid"], failed=count["error"],
                        elapsed_s=time.perf_counter() - t0)


def read_rows(path: str | Path) -> list[dict[str, Any]]:
    """The rows of a finished sweep output (CSV or Parquet) as typed dicts, in file order."""
    p = Path(path)
    if p.suffix.lower() == ".parquet":
        return list(_iter_parquet_rows(p, ROW_BYTES * (MAX_SWEEP_JOBS + 1)))
    return list(_iter_csv_rows(p, ROW_BYTES * (MAX_SWEEP_JOBS + 1)))


__all__ = ["COLUMNS", "COLUMN_NAMES", "GRID_KEYS", "MAX_SWEEP_JOBS", "JobOptions", "SweepError", "SweepGrid",
           "SweepJob", "SweepOutput", "SweepSummary", "load_grid", "parse_grid", "read_rows", "run_job",
           "run_sweep", "search_options"]
