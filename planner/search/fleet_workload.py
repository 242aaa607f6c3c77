"""A workload as buckets of (prompt length, output length) for the GPU-mix program.

Mélange buckets requests on a grid of input-length and output-length ranges (its example edges:
1-25, 25-100, 100-250, ...). Here the default edges are powers of four from 64 tokens, a grid of
at most 6 x 6 buckets; a bucket stands for its requests by their mean prompt and output lengths
(what its throughput depends on) and keeps its longest request (what a worker's KV cache must
hold). Two sources:

* a request trace (``arrived_at, num_prefill_tokens, num_decode_tokens``, read by
  :func:`planner.simulation.trace_requests`): each request counted in its bucket; the rate is the
  trace's mean unless one is given;
* a histogram CSV ``isl,osl,weight``: one bucket per row, ``weight`` any non-negative share or
  count (normalised), lengths as given (the longest request of the row is ``isl + osl``).
"""

from __future__ import annotations

import bisect
import csv
import io
import math
from dataclasses import dataclass
from pathlib import Path

from ..errors import PlannerError
from ..limits import MAX_CSV_ROWS, MAX_RATE, MAX_REQUEST_TOKENS, check_number

#: default bucket edges (tokens): a length L falls in the bucket [edge_i, edge_{i+1})
INPUT_EDGES = (1, 64, 256, 1024, 4096, 16384)
OUTPUT_EDGES = (1, 16, 64, 256, 1024, 4096)
MAX_BUCKETS = 400


class WorkloadError(PlannerError):
    """A trace or histogram that cannot be read, or an empty one."""


@dataclass(frozen=True)
class Bucket:
    """Requests of one (prompt, output) length range: ``rate`` requests/s, their mean lengths and the longest."""

    isl: int
    osl: int
    rate: float
    share: float
    longest: int
    requests: int = 0
    isl_range: tuple[int, int] = (0, 0)
    osl_range: tuple[int, int] = (0, 0)

    @property
    def label(self) -> str:
        return f"in {self.isl_range[0]}-{self.isl_range[1]} out {self.osl_range[0]}-{self.osl_range[1]}"


def _edges(edges: tuple[int, ...] | list[int], what: str) -> list[int]:
    e = [int(x) for x in edges]
    if not e or e[0] < 1 or any(b <= a for a, b in zip(e, e[1:])):
        raise WorkloadError(f"{what} bucket edges must be increasing whole numbers from 1, got {list(edges)}")
    return e


def buckets_from_lengths(lengths: list[tuple[int, int]], rate: float, input_edges=INPUT_EDGES,
                         output_edges=OUTPUT_EDGES) -> list[Bucket]:
    """Buckets of ``(isl, osl)`` requests arriving at ``rate`` requests/s in total (non-empty buckets only, by
    prompt length then output length)."""
    if not lengths:
        raise WorkloadError("the workload has no requests")
    rate = check_number(rate, "rate (requests/s)", hi=MAX_RATE)
    ie, oe = _edges(input_edges, "input"), _edges(output_edges, "output")
    groups: dict[tuple[int, int], list[tuple[int, int]]] = {}
    for isl, osl in lengths:
        i = max(0, bisect.bisect_right(ie, isl) - 1)
        j = max(0, bisect.bisect_right(oe, osl) - 1)
        groups.setdefault((i, j), []).append((isl, osl))
    n = len(lengths)
    out = []
    for (i, j), reqs in sorted(groups.items()):
        lo_i, hi_i = ie[i], (ie[i + 1] - 1 if i + 1 < len(ie) else max(r[0] for r in reqs))
        lo_o, hi_o = oe[j], (oe[j + 1] - 1 if j + 1 < len(oe) else max(r[1] for r in reqs))
        out.append(Bucket(isl=max(1, round(sum(r[0] for r in reqs) / len(reqs))),
                          osl=max(1, round(sum(r[1] for r in reqs) / len(reqs))),
                          rate=rate * len(reqs) / n, share=len(reqs) / n, longest=max(r[0] + r[1] for r in reqs),
                          requests=len(reqs), isl_range=(lo_i, hi_i), osl_range=(lo_o, hi_o)))
    return out


def read_trace(path: str | Path):
    """The requests of a trace (:func:`planner.simulation.trace_requests`), as :class:`WorkloadError` on bad input."""
    from ..simulation import SimulationError, trace_requests

    try:
        return trace_requests(path)
    except SimulationError as exc:
        raise WorkloadError(str(exc)) from None


def trace_rate(reqs) -> float:
    """A trace's mean rate: requests after the first over the span of their arrivals."""
    span = reqs[-1].arrival - reqs[0].arrival if reqs else 0.0
    if len(reqs) < 2 or span <= 0:
        raise WorkloadError("a trace needs at least two requests at different times for its rate (or give --rate)")
    return (len(reqs) - 1) / span


def buckets_from_trace(path: str | Path, rate: float | None = None, input_edges=INPUT_EDGES,
                       output_edges=OUTPUT_EDGES) -> tuple[list[Bucket], float]:
    """Buckets of a request trace and the rate used (the trace's mean unless ``rate`` is given)."""
    reqs = read_trace(path)
    if rate is None:
        try:
            rate = trace_rate(reqs)
        except WorkloadError as exc:
            raise WorkloadError(f"{path}: {exc}") from None
    return buckets_from_lengths([(r.isl, r.osl) for r in reqs], rate, input_edges, output_edges), rate


def buckets_from_histogram(path: str | Path, rate: float) -> list[Bucket]:
    """Buckets of a histogram CSV with columns ``isl,osl,weight`` (module docstring)."""
    from ..files import FileInputError, read_text

    try:
        text = read_text(Path(path), "a histogram CSV (isl,osl,weight)")
    except FileInputError as exc:
        raise WorkloadError(str(exc)) from None
    rate = check_number(rate, "rate (requests/s)", hi=MAX_RATE)
    rows = []
    reader = csv.DictReader(io.StringIO(text))
    need = {"isl", "osl", "weight"}
    if reader.fieldnames is None or not need <= {f.strip() for f in reader.fieldnames}:
        raise WorkloadError(f"{path}: a histogram needs the columns isl,osl,weight; got {reader.fieldnames}")
    for k, r in enumerate(reader, start=2):
        if k > MAX_CSV_ROWS:
            raise WorkloadError(f"{path}: more than {MAX_CSV_ROWS:,} rows")
        r = {(key or "").strip(): (v or "").strip() for key, v in r.items()}
        try:
            isl, osl, w = int(r["isl"]), int(r["osl"]), float(r["weight"])
        except ValueError:
            raise WorkloadError(f"{path}, line {k}: isl and osl must be whole numbers and weight a number") from None
        if not (1 <= isl <= MAX_REQUEST_TOKENS and 1 <= osl <= MAX_REQUEST_TOKENS):
            raise WorkloadError(f"{path}, line {k}: isl and osl must be within 1..{MAX_REQUEST_TOKENS:,}")
        if not math.isfinite(w) or w < 0:
            raise WorkloadError(f"{path}, line {k}: weight must be a finite number >= 0, got {r['weight']}")
        rows.append((isl, osl, w))
    return buckets_from_weights(rows, rate, str(path))


def buckets_from_weights(rows, rate: float, where: str = "histogram") -> list[Bucket]:
    """Buckets of ``(isl, osl, weight)`` rows sharing ``rate`` requests/s by weight (a histogram in memory)."""
    rate = check_number(rate, "rate (requests/s)", hi=MAX_RATE)
    try:
        rows = [(r[0], r[1], r[2]) for r in rows]
    except (TypeError, IndexError, KeyError):
        raise WorkloadError(f"{where}: give (isl, osl, weight) rows") from None
    if len(rows) > MAX_BUCKETS:
        raise WorkloadError(f"{where}: {len(rows)} rows; at most {MAX_BUCKETS} buckets")
    for k, (isl, osl, w) in enumerate(rows):
        if isinstance(isl, bool) or isinstance(osl, bool) or not (isinstance(isl, int) and isinstance(osl, int)):
            raise WorkloadError(f"{where}, row {k}: isl and osl must be whole numbers, got {isl!r}, {osl!r}")
        if not (1 <= isl <= MAX_REQUEST_TOKENS and 1 <= osl <= MAX_REQUEST_TOKENS):
            raise WorkloadError(f"{where}, row {k}: isl and osl must be within 1..{MAX_REQUEST_TOKENS:,}")
        if isinstance(w, bool) or not isinstance(w, (int, float)) or not math.isfinite(w) or w < 0:
            raise WorkloadError(f"{where}, row {k}: weight must be a finite number >= 0, got {w!r}")
    total = sum(w for _, _, w in rows)
    if not rows or total <= 0:
        raise WorkloadError(f"{where}: the histogram is empty (no row with a positive weight)")
    return [Bucket(isl=isl, osl=osl, rate=rate * w / total, share=w / total, longest=isl + osl,
                   isl_range=(isl, isl), osl_range=(osl, osl)) for isl, osl, w in rows if w > 0]


#: windows (seconds) over which a trace's bursts are measured (:func:`burst_factor`)
BURST_WINDOWS_S = (0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0)


def burst_factor(arrivals_s, rate: float, slo_s: float, quantile: float = 0.9) -> tuple[float, float]:
    """How much more than its mean rate a trace must be served at for a TTFT SLO of ``slo_s`` to hold for the
    ``quantile`` of its requests: ``(factor >= 1, the window in seconds that sets it)``.

    During a burst of length ``w`` at rate ``lam_w`` above the capacity ``mu``, a request's wait grows as
    ``t (lam_w / mu - 1)`` for the ``t`` seconds into the burst it arrives (the fluid approximation of a queue);
    it stays within ``s`` over the whole burst when ``mu >= lam_w w / (w + s)``. Each request sees the
    arrival rate of the ``w`` seconds before it; the capacity must cover the ``quantile`` of that over the
    requests, for every window: ``factor = max(1, max_w q(lam_w) w / (w + s) / rate)``. Short bursts are
    absorbed by the queue (``w << s``), long windows tend to the mean; a Poisson stream gives about 1 (its own
    randomness is in the capacities' quantile, :mod:`planner.cost.capacity`). ``arrivals_s`` in seconds at
    the mean ``rate`` the mix is sized for."""
    import numpy as np

    t = np.sort(np.asarray(arrivals_s, dtype=float))
    if t.size < 2 or rate <= 0 or slo_s <= 0:
        return 1.0, 0.0
    span = t[-1] - t[0]
    best, at = 1.0, 0.0
    for w in BURST_WINDOWS_S:
        if w > span / 2:
            break
        lo = np.searchsorted(t, t - w, side="left")
        seen = (np.arange(t.size) - lo + 1) / w  # arrivals in the w seconds up to each request (itself included)
        need = float(np.quantile(seen, quantile)) * w / (w + slo_s) / rate
        if need > best:
            best, at = need, w
    return best, at


__all__ = ["BURST_WINDOWS_S", "Bucket", "burst_factor", "INPUT_EDGES", "OUTPUT_EDGES", "WorkloadError", "buckets_from_histogram",
           "buckets_from_lengths", "buckets_from_trace"]
