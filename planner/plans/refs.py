"""What every plan check shares: its error, names without control characters, and the model and hardware a
document embeds, re-validated like any hostile input.

A document's ``spec`` objects go through :class:`~planner.specs.model.ModelSpec` /
:class:`~planner.specs.hardware.System` strictly (JSON mode: ``"num_heads": "64"`` is refused). A spec seen
before (same canonical JSON) returns the same object, so the estimator's caches, keyed by object, are reused
when a search checks its own answers and the gate never grows them without bound.
"""

from __future__ import annotations

import json
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from ..cost.training_plan import PlanError
from ..specs.hardware import System
from ..specs.model import ModelSpec
from ..specs.text import REFUSED_CATEGORIES, first_refused


class PlanCheckError(PlanError):
    """A plan document the gate refuses: one line starting with where the document came from and naming the
    field."""


#: Unicode categories refused in names that reach scripts and manifests: the spec files' (control, format, line
#: and paragraph separators, surrogates) and private use.
_BAD_CATEGORIES = REFUSED_CATEGORIES | {"Co"}


def check_name(value: str | None, field: str, where: str) -> None:
    """Refuse a name holding a control or invisible formatting character (one line naming the field)."""
    found = None if value is None else first_refused(value, _BAD_CATEGORIES)
    if found is not None:
        i, ch = found
        raise PlanCheckError(f"{where}: {field}: control character {ch!r} at position {i} in {value[:60]!r}; "
                             f"names must be printable")


def short(value: Any, limit: int = 60) -> str:
    """``repr(value)`` cut to ``limit`` characters (hostile values can be long)."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def validation_line(err: ValidationError, where: str, prefix: str = "") -> str:
    """The first problem of a pydantic error as ``where: field.path: message (got value)``."""
    errors = err.errors(include_url=False)
    if not errors:
        return f"{where}: {' '.join(str(err).split())}"
    e = errors[0]
    loc = ".".join(str(p) for p in (prefix.split(".") if prefix else []) + list(e.get("loc", ())))
    kind = e.get("type", "")
    msg = " ".join(str(e.get("msg", "invalid value")).replace("Value error, ", "").split())
    if kind == "missing":
        msg = "missing field"
    elif kind == "extra_forbidden":
        msg = "unknown field"
    elif "input" in e and not isinstance(e["input"], (dict, list)) and "got " not in msg:
        msg += f" (got {short(e['input'])})"
    more = f" (and {len(errors) - 1} more problems)" if len(errors) > 1 else ""
    return f"{where}: {loc + ': ' if loc else ''}{msg}{more}"


S = TypeVar("S", bound=BaseModel)
_SEEN: dict[tuple[str, str], BaseModel] = {}
_MAX_SEEN = 256


def _canonical(data: Any) -> str:
    return json.dumps(data, sort_keys=True, allow_nan=False, separators=(",", ":"))


def _spec(cls: type[S], data: Any, field: str, where: str) -> S:
    if not isinstance(data, dict):
        raise PlanCheckError(f"{where}: {field}: expected an object, got {type(data).__name__}")
    try:
        key = (cls.__name__, _canonical(data))
    except (TypeError, ValueError):
        raise PlanCheckError(f"{where}: {field}: not a JSON object of finite numbers") from None
    hit = _SEEN.get(key)
    if hit is not None:
        return hit  # type: ignore[return-value]
    try:
        obj = cls.model_validate_json(key[1], strict=True)
    except ValidationError as exc:
        raise PlanCheckError(validation_line(exc, where, field)) from None
    except ValueError as exc:  # a spec validator's own PlannerError
        raise PlanCheckError(f"{where}: {field}: {' '.join(str(exc).split())}") from None
    if len(_SEEN) >= _MAX_SEEN:
        _SEEN.clear()
    _SEEN[key] = obj
    return obj


def model_from_spec(data: Any, where: str, field: str = "model.spec") -> ModelSpec:
    """The :class:`ModelSpec` a document embeds, re-validated (strict)."""
    m = _spec(ModelSpec, data, field, where)
    check_name(m.name, f"{field}.name", where)
    check_name(m.hf_id, f"{field}.hf_id", where)
    return m


def system_from_spec(data: Any, where: str, field: str = "system.spec") -> System:
    """The :class:`System` a document embeds, re-validated (strict)."""
    s = _spec(System, data, field, where)
    check_name(s.name, f"{field}.name", where)
    check_name(s.accelerator.name, f"{field}.accelerator.name", where)
    return s


def remember(*specs: ModelSpec | System) -> None:
    """Let the gate reuse these objects for documents embedding them (a search checking its own answers keeps
    the estimator's caches warm). Each is re-validated from its dump once; one that does not round-trip is not
    remembered."""
    for obj in specs:
        try:
            data = obj.model_dump(mode="json")
            key = (type(obj).__name__, _canonical(data))
        except (TypeError, ValueError):
            continue
        if key in _SEEN:
            continue
        try:
            again = type(obj).model_validate_json(key[1], strict=True)
        except ValueError:
            continue
        if again == obj:
            if len(_SEEN) >= _MAX_SEEN:
                _SEEN.clear()
            _SEEN[key] = obj


def builtin_model(name: str, where: str) -> ModelSpec:
    """A built-in catalog model by its exact catalog name (1.0 documents embed no spec); never a path."""
    from ..catalog import get_model, model_names

    if name not in model_names():
        raise PlanCheckError(f"{where}: model.name: {short(name)} is not a built-in model; a schema_version 1.0 "
                             f"document can only name built-in models (re-run the search for a 1.1 document)")
    return get_model(name)


def builtin_system(name: str, where: str) -> System:
    """A built-in catalog system by its exact catalog name (1.0 documents embed no spec); never a path."""
    from ..catalog import get_system, hardware_names

    if name not in hardware_names():
        raise PlanCheckError(f"{where}: system.name: {short(name)} is not a built-in system; a schema_version 1.0 "
                             f"document can only name built-in systems (re-run the search for a 1.1 document)")
    return get_system(name)


def close(claimed: float, actual: float, rel: float = 0.01) -> bool:
    """Whether ``claimed`` is within ``rel`` of ``actual`` (relative to the larger magnitude)."""
    return abs(claimed - actual) <= rel * max(abs(claimed), abs(actual), 1e-300)


__all__ = ["PlanCheckError", "builtin_model", "builtin_system", "check_name", "close", "model_from_spec",
           "remember", "short", "system_from_spec", "validation_line"]
