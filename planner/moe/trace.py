"""MoE routing traces: per-token expert choices and the statistics a placer needs.

A *routing trace* records, for each token and each MoE layer, the ``top_k``
experts the router chose (``experts[token, layer, slot]``). A placer needs
only two aggregates of it (:class:`RoutingStats`):

* ``load[l, e]``: how many tokens chose expert ``e`` at MoE layer ``l``
  (each token counts once per chosen expert, so a layer's loads sum to
  ``tokens x top_k``);
* ``transitions[l, a, b]``: how many tokens chose ``a`` at layer ``l`` *and*
  ``b`` at layer ``l + 1`` (``top_k ** 2`` pairs per token and layer boundary).
  The activations of a token that leave expert ``a``'s GPU for expert ``b``'s
  GPU are ``1 / top_k`` of a token per pair, so token transfers are pair
  counts divided by ``top_k``.

File formats (documented in ``docs/moe-routing-format.md``):

* ``.npz``: either a per-token ``experts`` integer array ``[tokens, layers,
  top_k]`` (optional ``num_experts`` scalar and ``model`` string), or the
  aggregates ``load [layers, E]``, ``transitions [layers - 1, E, E]`` and
  ``top_k`` (optional ``tokens``).
* ``.json``: one object with ``"format": "planner.routing.v1"``, ``num_experts``,
  ``top_k`` and either ``experts`` (nested lists) or ``load`` and
  ``transitions``.

Anything else raises :class:`TraceError` with one line naming the file and
what is wrong.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import PlannerError
from ..limits import MAX_EXPERTS, MAX_LAYERS, MAX_ROUTING_ARRAY_BYTES, MAX_ROUTING_TOKENS

FORMAT = "planner.routing.v1"


class TraceError(PlannerError):
    """A routing trace that cannot be read or does not fit the model."""


@dataclass(frozen=True)
class RoutingStats:
    """Aggregated routing over a stream of ``tokens`` tokens (see the module docstring)."""

    load: np.ndarray  # [L, E] tokens per expert per MoE layer
    transitions: np.ndarray  # [L - 1, E, E] tokens with a at layer l and b at layer l + 1
    top_k: int
    tokens: int
    model: str | None = None

    @property
    def num_layers(self) -> int:
        return int(self.load.shape[0])

    @property
    def num_experts(self) -> int:
        return int(self.load.shape[1])

    def skew(self) -> np.ndarray:
        """Busiest expert / mean expert load, per layer."""
        mean = self.load.mean(axis=1)
        return self.load.max(axis=1) / np.where(mean > 0, mean, 1.0)


@dataclass(frozen=True)
class RoutingTrace:
    """Per-token routing: ``experts[token, layer, slot]`` in ``[0, num_experts)``."""

    experts: np.ndarray
    num_experts: int
    model: str | None = None

    @property
    def tokens(self) -> int:
        return int(self.experts.shape[0])

    @property
    def num_layers(self) -> int:
        return int(self.experts.shape[1])

    @property
    def top_k(self) -> int:
        return int(self.experts.shape[2])

    def slice(self, start: int, stop: int) -> RoutingTrace:
        return RoutingTrace(self.experts[start:stop], self.num_experts, self.model)

    def halves(self) -> tuple[RoutingTrace, RoutingTrace]:
        """The first and second half of the token stream (fit on one, evaluate on the other)."""
        mid = self.tokens // 2
        if mid == 0:
            raise TraceError("a trace needs at least 2 tokens to split into halves")
        return self.slice(0, mid), self.slice(mid, self.tokens)

    def stats(self) -> RoutingStats:
        """Loads and consecutive-layer transitions (one ``bincount`` per layer)."""
        t, n_layers, k = self.experts.shape
        e = self.num_experts
        ex = self.experts.astype(np.int64)
        load = np.stack([np.bincount(ex[:, l, :].ravel(), minlength=e) for l in range(n_layers)]).astype(np.float64)
        trans = np.zeros((max(0, n_layers - 1), e, e))
        for l in range(n_layers - 1):
            pair = (ex[:, l, :, None] * e + ex[:, l + 1, None, :]).ravel()
            trans[l] = np.bincount(pair, minlength=e * e).reshape(e, e)
        return RoutingStats(load=load, transitions=trans, top_k=k, tokens=t, model=self.model)


def check_trace(experts: np.ndarray, num_experts: int, where: str = "trace") -> None:
    """Shape, dtype and range checks with one-line messages."""
    if experts.ndim != 3:
        raise TraceError(f"{where}: 'experts' must be [tokens, layers, top_k], got {experts.ndim} dimensions")
    if experts.size == 0:
        raise TraceError(f"{where}: 'experts' is empty")
    if not np.issubdtype(experts.dtype, np.integer):
        raise TraceError(f"{where}: 'experts' must hold integer expert ids, got {experts.dtype}")
    lo, hi = int(experts.min()), int(experts.max())
    if lo < 0:
        raise TraceError(f"{where}: negative expert id {lo}")
    if hi >= num_experts:
        tok, lay, _ = np.argwhere(experts == hi)[0]
        raise TraceError(f"{where}: expert id {hi} (token {tok}, layer {lay}) exceeds the model's {num_experts} "
                         f"experts (ids 0-{num_experts - 1})")


def check_stats(stats: RoutingStats, num_experts: int | None = None, top_k: int | None = None,
                moe_layers: int | None = None, where: str = "trace") -> None:
    """A trace against a model: expert count, top-k and MoE layer count must match."""
    if num_experts is not None and stats.num_experts > num_experts:
        raise TraceError(f"{where}: {stats.num_experts} experts per layer exceed the model's {num_experts}")
    if top_k is not None and stats.top_k != top_k:
        raise TraceError(f"{where}: top-{stats.top_k} routing, but the model routes each token to {top_k} experts")
    if moe_layers is not None and stats.num_layers != moe_layers:
        raise TraceError(f"{where}: {stats.num_layers} MoE layers, but the model has {moe_layers}")


def widen(stats: RoutingStats, num_experts: int) -> RoutingStats:
    """The same statistics over ``num_experts`` experts (trailing experts never chosen)."""
    e = stats.num_experts
    if e == num_experts:
        return stats
    load = np.zeros((stats.num_layers, num_experts))
    load[:, :e] = stats.load
    trans = np.zeros((stats.transitions.shape[0], num_experts, num_experts))
    trans[:, :e, :e] = stats.transitions
    return RoutingStats(load, trans, stats.top_k, stats.tokens, stats.model)


def _scalar(value, name: str, where: str, lo: int, hi: int) -> int:
    """A whole number stored as a JSON number or a 0-d (or one-element) array, in ``[lo, hi]``."""
    arr = np.asarray(value)
    if arr.size != 1 or arr.ndim > 1:
        raise TraceError(f"{where}: '{name}' must be a single whole number, got an array of shape {arr.shape}")
    v = arr.reshape(()).item()
    if isinstance(v, bool) or not isinstance(v, (int, float)) or (isinstance(v, float) and not np.isfinite(v)) \
            or v != int(v):
        raise TraceError(f"{where}: '{name}' must be a whole number, got {v!r}"[:200])
    v = int(v)
    if not lo <= v <= hi:
        raise TraceError(f"{where}: '{name}' must be from {lo} to {hi:,}, got {v:,}")
    return v


def _counts(value, name: str, where: str) -> np.ndarray:
    """An array of token counts: numeric, finite, non-negative."""
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise TraceError(f"{where}: '{name}' must be a numeric array (ragged or non-numeric values)") from None
    if not np.isfinite(arr).all():
        raise TraceError(f"{where}: '{name}' holds NaN or infinite values")
    if (arr < 0).any():
        raise TraceError(f"{where}: '{name}' holds negative counts")
    return arr


def _from_arrays(get, where: str, num_experts: int | None) -> RoutingTrace | RoutingStats:
    """A trace or its statistics from the named arrays of a file (``get(name)``: the value or ``None``), every
    value checked: shapes, finite non-negative counts, expert ids and counts in range."""
    experts = get("experts")
    model = get("model")
    if model is not None:
        model = np.asarray(model)
        if model.size != 1 or model.dtype.kind not in "US":
            raise TraceError(f"{where}: 'model' must be a string")
        model = str(model.reshape(()).item())[:200]
    if experts is not None:
        try:
            experts = np.asarray(experts)
        except (TypeError, ValueError):
            raise TraceError(f"{where}: 'experts' must be a [tokens, layers, top_k] array (ragged lists)") from None
        declared = get("num_experts")
        declared = _scalar(declared, "num_experts", where, 1, MAX_EXPERTS) if declared is not None else None
        if declared is not None and num_experts is not None and declared > num_experts:
            raise TraceError(f"{where}: declares {declared} experts, but the model has {num_experts}")
        if experts.ndim == 3 and experts.shape[0] > MAX_ROUTING_TOKENS:
            raise TraceError(f"{where}: {experts.shape[0]:,} tokens; at most {MAX_ROUTING_TOKENS:,} are read")
        if experts.ndim == 3 and experts.shape[1] > MAX_LAYERS:
            raise TraceError(f"{where}: {experts.shape[1]:,} layers; at most {MAX_LAYERS:,}")
        if experts.ndim == 3 and experts.size and np.issubdtype(experts.dtype, np.integer):
            e = num_experts or declared or min(int(experts.max()) + 1, MAX_EXPERTS)
        else:
            e = num_experts or declared or 1
        check_trace(experts, e, where)
        if experts.shape[2] > e:
            raise TraceError(f"{where}: top-{experts.shape[2]} routing over {e} experts")
        return RoutingTrace(experts.astype(np.int32), e, model)
    load, trans, k = get("load"), get("transitions"), get("top_k")
    if load is None:
        raise TraceError(f"{where}: needs either 'experts' [tokens, layers, top_k] or 'load' and 'transitions'")
    if trans is None or k is None:
        missing = "transitions" if trans is None else "top_k"
        raise TraceError(f"{where}: aggregated routing needs '{missing}' beside 'load'")
    load, trans = _counts(load, "load", where), _counts(trans, "transitions", where)
    if load.ndim != 2 or 0 in load.shape:
        raise TraceError(f"{where}: 'load' must be [layers, experts], got shape {load.shape}")
    n_layers, e = load.shape
    if n_layers > MAX_LAYERS or e > MAX_EXPERTS:
        raise TraceError(f"{where}: 'load' of shape {load.shape}; at most {MAX_LAYERS} layers and {MAX_EXPERTS} experts")
    if trans.shape != (max(0, n_layers - 1), e, e):
        raise TraceError(f"{where}: 'transitions' must be [{n_layers - 1}, {e}, {e}], got {trans.shape}")
    if num_experts is not None and e > num_experts:
        raise TraceError(f"{where}: {e} experts per layer exceed the model's {num_experts}")
    declared = get("num_experts")
    if declared is not None and _scalar(declared, "num_experts", where, 1, MAX_EXPERTS) != e:
        raise TraceError(f"{where}: declares {_scalar(declared, 'num_experts', where, 1, MAX_EXPERTS)} experts, but "
                         f"'load' has {e} per layer")
    k = _scalar(k, "top_k", where, 1, e)
    tokens = get("tokens")
    if tokens is not None:
        tokens = _scalar(tokens, "tokens", where, 1, MAX_ROUTING_TOKENS)
    else:
        tokens = int(round(load[0].sum() / k))
        if not 1 <= tokens <= MAX_ROUTING_TOKENS:
            raise TraceError(f"{where}: the loads count {tokens:,} tokens; expected 1 to {MAX_ROUTING_TOKENS:,}")
    if load.sum() <= 0:
        raise TraceError(f"{where}: every load is zero (no routed tokens)")
    return RoutingStats(load, trans, k, tokens, model)


def _npz_arrays(data: bytes, where: str) -> dict[str, np.ndarray]:
    """The arrays of an ``.npz`` file's bytes, each header read first so that no array larger than
    ``MAX_ROUTING_ARRAY_BYTES`` is decompressed (a small compressed file can expand enormously), no
    pickled object loaded."""
    import io
    import zipfile

    out: dict[str, np.ndarray] = {}
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            members = z.infolist()
            if len(members) > 64:
                raise TraceError(f"{where}: {len(members)} arrays; a routing trace has at most 6")
            for info in members:
                name = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
                with z.open(info) as f:
                    version = np.lib.format.read_magic(f)
                    read_header = {(1, 0): np.lib.format.read_array_header_1_0,
                                   (2, 0): np.lib.format.read_array_header_2_0}.get(version)
                    if read_header is None:
                        raise TraceError(f"{where}: '{name}' uses .npy format version {version}; expected 1.0 or 2.0")
                    shape, _, dtype = read_header(f)
                    if dtype.hasobject:
                        raise TraceError(f"{where}: '{name}' holds Python objects; expected numbers")
                    nbytes = int(np.prod(shape, dtype=object)) * dtype.itemsize
                    if nbytes > MAX_ROUTING_ARRAY_BYTES:
                        raise TraceError(f"{where}: '{name}' of shape {shape} is {nbytes / 1e9:,.1f} GB; at most "
                                         f"{MAX_ROUTING_ARRAY_BYTES / 1e9:,.1f} GB per array")
                with z.open(info) as f:
                    out[name] = np.lib.format.read_array(f, allow_pickle=False)
    except TraceError:
        raise
    except Exception as e:  # zipfile / format errors of a malformed file
        raise TraceError(f"{where}: not a readable .npz file ({type(e).__name__})") from None
    return out


def load_routing(path: str | Path, num_experts: int | None = None) -> RoutingTrace | RoutingStats:
    """Read a routing trace (``.npz`` or ``.json``); ``num_experts`` checks the ids against a model.

    The file is read through :mod:`planner.files` (regular file, size bound, UTF-8 and nesting bound for
    JSON); every error is a one-line :class:`TraceError` naming the file."""
    from ..files import FileInputError, parse_json, read_bytes, read_text

    if not isinstance(path, (str, os.PathLike)):
        raise TraceError(f"a routing trace path must be a str or Path, got {type(path).__name__}")
    p = Path(path)
    where = p.name
    if num_experts is not None:
        num_experts = _scalar(num_experts, "num_experts", "model", 1, MAX_EXPERTS)
    try:
        if p.suffix == ".npz":
            data = _npz_arrays(read_bytes(p, "a routing trace (.npz)"), where)
            return _from_arrays(lambda k: data.get(k), where, num_experts)
        if p.suffix == ".json":
            obj = parse_json(read_text(p, "a routing trace (.json)"), where)
        else:
            raise TraceError(f"{where}: unknown routing file type {p.suffix or '(none)'}; use .npz or .json")
    except FileInputError as e:
        raise TraceError(str(e)) from None
    if not isinstance(obj, dict):
        raise TraceError(f"{where}: expected a JSON object with 'experts' or 'load'")
    fmt = obj.get("format", FORMAT)
    if fmt != FORMAT:
        raise TraceError(f"{where}: format {str(fmt)[:80]!r} is not {FORMAT!r}")
    try:
        return _from_arrays(lambda k: obj.get(k), where, num_experts)
    except (TypeError, ValueError, OverflowError) as e:
        if isinstance(e, TraceError):
            raise
        raise TraceError(f"{where}: ragged or non-numeric arrays ({type(e).__name__})") from None


def save_routing(obj: RoutingTrace | RoutingStats, path: str | Path) -> None:
    """Write a trace or its statistics as ``.npz`` (or ``.json`` for small ones)."""
    p = Path(path)
    if isinstance(obj, RoutingTrace):
        arrays = {"experts": obj.experts, "num_experts": np.int64(obj.num_experts)}
    else:
        arrays = {"load": obj.load, "transitions": obj.transitions, "top_k": np.int64(obj.top_k),
                  "tokens": np.int64(obj.tokens)}
    if obj.model:
        arrays["model"] = np.array(obj.model)
    if p.suffix == ".json":
        out = {"format": FORMAT, **{k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in arrays.items()}}
        out = {k: (int(v) if isinstance(v, np.integer) else v) for k, v in out.items()}
        if isinstance(obj, RoutingStats):
            out["num_experts"] = obj.num_experts
        else:
            out["top_k"] = obj.top_k
        p.write_text(json.dumps(out))
    else:
        np.savez_compressed(p, **arrays)


__all__ = ["FORMAT", "RoutingStats", "RoutingTrace", "TraceError", "check_stats", "check_trace", "load_routing",
           "save_routing", "widen"]
