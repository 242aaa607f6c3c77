"""Rows of ``measured_serving.csv`` (or a file with its columns) -> serving estimates.

Columns read: ``id, model_path, system, backend, precision, mode, isl, osl,
batch_size, tp_size, pp_size, attention_dp_size, moe_tp_size, moe_ep_size`` and,
in disaggregated mode, ``prefill_*`` / ``decode_*`` (batch size, worker count,
tp, pp, attention dp, moe tp, moe ep). A row the model cannot take (unknown
model or system, missing disaggregated inputs, an impossible layout) gives a
reason instead of numbers; it never raises.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

from ..catalog import SpecError, get_model, get_system
from ..errors import PlannerError
from ..files import FileInputError, read_text
from ..limits import MAX_CONCURRENCY, MAX_CSV_FIELD_CHARS, MAX_CSV_ROWS, MAX_GPUS, MAX_REQUEST_TOKENS
from ..cost.serving import ServingError, ServingEstimate, ServingPlan, estimate_serving
from ..specs.model import ModelSpec

_PRECISION = {"bf16": "bf16", "fp16": "fp16", "": "bf16", "fp8": "fp8", "fp4": "fp4", "nvfp4": "fp4", "int4": "int4"}
_SUFFIXES = ("-instruct", "-fp8", "-nvfp4", "-fp4", "-awq", "-int4")


@dataclass
class RowResult:
    id: str
    ttft_ms: float | None
    tpot_ms: float | None
    reason: str = ""
    estimate: ServingEstimate | None = None
    model: ModelSpec | None = None


class RowError(PlannerError):
    """A row that cannot be read (a malformed value); it becomes the row's reason, never a crash."""


def _int(v: str | None, default: int = 1, column: str = "value", hi: int = MAX_GPUS) -> int:
    """A count column: empty or 0 means "not set" (``default``); otherwise a whole number from 1 to ``hi``,
    else :class:`RowError` naming the column."""
    if v is None or not str(v).strip():
        return default
    try:
        x = float(v)
    except ValueError:
        raise RowError(f"{column} {str(v)[:40]!r} is not a number") from None
    if not math.isfinite(x) or x != int(x) or not 0 <= x <= hi:
        raise RowError(f"{column} must be a whole number from 0 to {hi:,}, got {str(v)[:40]!r}")
    return int(x) if x > 0 else default


def resolve_model(path: str, model_dir: str | Path | None, cache: dict[str, ModelSpec | str]) -> ModelSpec | str:
    """The model of a ``model_path``: the catalog or ``model_dir``, then the same
    name without a quantization / instruct suffix or the ``nvidia/`` re-packaging
    (the architecture is the same)."""
    if path in cache:
        return cache[path]
    candidates = [path]
    org, _, name = path.partition("/")
    base = name
    for _ in range(3):
        for suf in _SUFFIXES:
            if base.lower().endswith(suf):
                base = base[: -len(suf)]
    if base != name:
        candidates.append(f"{org}/{base}")
    if org == "nvidia":
        for real in ("deepseek-ai", "Qwen", "meta-llama", "moonshotai", "zai-org"):
            candidates.append(f"{real}/{base}")
    if org == "zhipuai":  # the organisation was renamed on Hugging Face
        candidates += [f"zai-org/{name}", f"zai-org/{base}"]
    if name.startswith("Llama-3.1"):
        candidates.append(f"meta-llama/Meta-{base}")
    result: ModelSpec | str = f"unknown model {path}"
    for c in candidates:
        try:
            result = get_model(c, model_dir=model_dir)
            break
        except (SpecError, ValueError):
            continue
    cache[path] = result
    return result


def _col(row: dict[str, str], column: str, default: int = 1, hi: int = MAX_GPUS) -> int:
    return _int(row.get(column), default, column, hi)


def _plan(row: dict[str, str], prefix: str, precision: str, backend: str, model: ModelSpec) -> ServingPlan:
    tp = _col(row, f"{prefix}tp_size")
    dp = _col(row, f"{prefix}attention_dp_size")
    ep = _col(row, f"{prefix}moe_ep_size")
    moe_tp = _col(row, f"{prefix}moe_tp_size")
    moe = model.is_moe
    # No engine splits attention heads unevenly: a tp that does not divide the heads
    # is the world size of a worker with attention data parallelism (TensorRT-LLM's
    # enable_attention_dp, SGLang's --enable-dp-attention with dp = tp), each rank
    # attending for its own requests. Experts that cannot be split moe_tp ways are
    # then spread as expert parallelism.
    if tp > 1 and model.num_heads % tp:
        dp, tp = dp * tp, 1
        if moe and model.moe.expert_intermediate_size % moe_tp:  # type: ignore[union-attr]
            ep, moe_tp = ep * moe_tp, 1
    # The expert mesh and the attention mesh are the same GPUs: when a row gives a
    # larger expert mesh, the difference is data-parallel attention (vLLM's DP +
    # EP); a smaller one is spread as expert parallelism.
    if not moe:
        ep, moe_tp = 1, 1
    elif ep * moe_tp > tp * dp and (ep * moe_tp) % tp == 0:
        dp = ep * moe_tp // tp
    elif ep * moe_tp < tp * dp and (tp * dp) % moe_tp == 0:
        ep = tp * dp // moe_tp
    return ServingPlan(tp=tp, dp=dp, pp=_col(row, f"{prefix}pp_size"), ep=ep if moe else None,
                       moe_tp=moe_tp if moe else None,
                       precision=precision, backend=backend)  # type: ignore[arg-type]


def _rank_batches(row: dict[str, str], prefix: str) -> int:
    """How many batches of ``batch_size`` a worker runs: with attention data parallelism
    stated in the row, the batch size is per attention-DP rank (AIConfigurator's
    convention), so the worker holds ``batch_size x attention_dp_size`` requests."""
    return _col(row, f"{prefix}attention_dp_size")


def estimate_row(row: dict[str, str], model_dir: str | Path | None = None,
                 cache: dict[str, ModelSpec | str] | None = None) -> RowResult:
    """One row -> its estimate, or a one-line reason (unknown model or system, a malformed or out-of-range
    value, a row with more or fewer fields than the header, an impossible layout)."""
    rid = row.get("id") or ""
    cache = cache if cache is not None else {}
    if row.get(EXTRA_FIELDS) or any(v is None for k, v in row.items() if k != EXTRA_FIELDS):
        return RowResult(rid, None, None, "the row has more or fewer fields than the header")
    model = resolve_model(row.get("model_path", ""), model_dir, cache)
    if isinstance(model, str):
        return RowResult(rid, None, None, model)
    try:
        system = get_system(row.get("system", ""))
    except SpecError as e:
        return RowResult(rid, None, None, str(e))
    precision = _PRECISION.get((row.get("precision") or "").lower())
    backend = (row.get("backend") or "").lower()
    if precision is None:
        return RowResult(rid, None, None, f"unknown precision {row.get('precision')!r}")
    if backend not in ("trtllm", "vllm", "sglang"):
        return RowResult(rid, None, None, f"unknown backend {backend!r}")
    if precision == "fp4" and not system.accelerator.has_native("fp4"):
        precision = "fp8"  # NVFP4 checkpoints run as fp8 math where there are no FP4 tensor cores
    mode = row.get("mode", "agg")
    try:
        isl, osl = _col(row, "isl", 0, MAX_REQUEST_TOKENS), _col(row, "osl", 0, MAX_REQUEST_TOKENS)
        if mode == "disagg":
            pb, pw = row.get("prefill_batch_size"), row.get("prefill_num_workers")
            db, dw = row.get("decode_batch_size"), row.get("decode_num_workers")
            if not (pb and pw and db and dw):
                return RowResult(rid, None, None, "disaggregated row without batch sizes and worker counts")
            dplan = _plan(row, "decode_", precision, backend, model)
            pplan = _plan(row, "prefill_", precision, backend, model)
            est = estimate_serving(model, system, dplan, isl, osl,
                                   _col(row, "decode_batch_size", hi=MAX_CONCURRENCY) * _rank_batches(row, "decode_"),
                                   mode="disagg", prefill_plan=pplan,
                                   prefill_batch=_col(row, "prefill_batch_size", hi=MAX_CONCURRENCY)
                                   * _rank_batches(row, "prefill_"),
                                   prefill_workers=_col(row, "prefill_num_workers"),
                                   decode_workers=_col(row, "decode_num_workers"),
                                   engine_version=(row.get("backend_version") or "").strip() or None)
        else:
            if not row.get("batch_size"):
                return RowResult(rid, None, None, "no concurrency (batch_size)")
            plan = _plan(row, "", precision, backend, model)
            est = estimate_serving(model, system, plan, isl, osl,
                                   _col(row, "batch_size", hi=MAX_CONCURRENCY) * _rank_batches(row, ""),
                                   engine_version=(row.get("backend_version") or "").strip() or None)
    except (ServingError, ValueError) as e:  # RowError, PlannerError and pydantic's errors are ValueErrors
        return RowResult(rid, None, None, (str(e).splitlines() or [type(e).__name__])[0])
    return RowResult(rid, est.ttft_ms, est.tpot_ms, "", est, model)


EXTRA_FIELDS = "\x00extra"  # the key under which csv.DictReader puts a row's fields beyond the header's


def read_rows(path: str | Path) -> list[dict[str, str]]:
    """The rows of a CSV with a header (lines starting with ``#`` skipped), read through
    :func:`planner.files.read_text` (regular file, size bound, UTF-8). A field longer than
    ``MAX_CSV_FIELD_CHARS``, more than ``MAX_CSV_ROWS`` rows or text that is not CSV refuse the file
    (one line naming it and the line); a row with more or fewer fields than the header is kept for
    :func:`estimate_row` to give its reason."""
    import io

    p = Path(path)
    text = read_text(p, "a CSV file with the columns of measured_serving.csv")
    # comment lines become empty lines (skipped like blank ones) so that line numbers stay the file's
    lines = ["\n" if line.startswith("#") else line for line in io.StringIO(text, newline="")]
    reader = csv.reader(lines)
    header: list[str] | None = None
    rows: list[dict[str, str]] = []
    try:
        for fields in reader:
            if any(len(x) > MAX_CSV_FIELD_CHARS for x in fields):
                raise FileInputError(f"{p} line {reader.line_num}: a field longer than {MAX_CSV_FIELD_CHARS:,} "
                                     f"characters")
            if not fields:
                continue
            if header is None:
                header = fields
                continue
            if len(rows) >= MAX_CSV_ROWS:
                raise FileInputError(f"{p}: more than {MAX_CSV_ROWS:,} rows")
            row: dict = dict(zip(header, fields))
            if len(fields) < len(header):
                row.update({h: None for h in header[len(fields):]})  # as csv.DictReader: missing fields are None
            elif len(fields) > len(header):
                row[EXTRA_FIELDS] = fields[len(header):]
            rows.append(row)
    except csv.Error as exc:
        raise FileInputError(f"{p} line {reader.line_num}: not readable as CSV ({exc})") from None
    return rows


__all__ = ["RowError", "RowResult", "estimate_row", "read_rows", "resolve_model"]
