"""Built-in names -> spec files. The only module that reads spec files.

Hardware: ``hardware_specs/*.yaml`` (one :class:`~planner.specs.hardware.System`
each). Models: ``model_specs/*.json`` (Hugging Face ``config.json``) or
``*.yaml`` (the same keys). In a source checkout the folders sit at the top of
the repository; an installed wheel carries them as ``planner/hardware_specs``
and ``planner/model_specs``.

A model may be named by its built-in name (``llama-3.1-70b``), a path to a
``config.json``, or a Hugging Face id (``meta-llama/Llama-3.1-70B``, matched
against the catalog's ``_name_or_path`` and, case-insensitively, the name
after the organisation).
"""

from __future__ import annotations

import difflib
import json
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from .errors import PlannerError
from .specs.hardware import System
from .specs.model import ModelSpec, from_hf_config

_PKG = Path(__file__).resolve().parent


class SpecError(PlannerError):
    """A spec that cannot be found or read: the message is one line for the user."""


def _data_dir(kind: str) -> Path:
    for cand in (_PKG / kind, _PKG.parent / kind):
        if cand.is_dir():
            return cand
    raise SpecError(f"built-in {kind} folder not found next to the planner package")


def _norm(name: str) -> str:
    return re.sub(r"[\s_]+", "-", name.strip().lower())


def _suggest(name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(_norm(name), known, n=3, cutoff=0.5)
    if not close:
        close = [k for k in known if _norm(name) in k][:3]
    return f"; did you mean {', '.join(close)}?" if close else ""


def _format_validation(err: ValidationError, where: str) -> str:
    e = err.errors()[0]
    loc = ".".join(str(p) for p in e["loc"]) or "(top level)"
    msg = e["msg"].removeprefix("Value error, ")
    if e["type"] == "extra_forbidden":
        msg = "unknown field"
    elif e["type"] == "missing":
        msg = "missing field"
    more = f" (and {len(err.errors()) - 1} more problems)" if len(err.errors()) > 1 else ""
    return f"{where}: {loc}: {msg}{more}"


#: libyaml's safe loader when PyYAML was built with it (about 10x faster), else the pure-Python one.
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _read_mapping(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
    except OSError as exc:
        raise SpecError(f"{path}: cannot read ({exc.strerror})") from None
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.load(text, Loader=_YAML_LOADER)
    except json.JSONDecodeError as exc:
        raise SpecError(f"{path}: malformed JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise SpecError(f"{path}: malformed YAML{where}: {getattr(exc, 'problem', exc)}") from None
    if not isinstance(data, dict):
        raise SpecError(f"{path}: expected a mapping of fields at the top level")
    return data


# ---- hardware ----------------------------------------------------------------

def load_system_file(path: str | Path) -> System:
    """Read and validate one hardware spec YAML."""
    p = Path(path)
    data = _read_mapping(p)
    try:
        return System.model_validate(data)
    except ValidationError as err:
        raise SpecError(_format_validation(err, str(p))) from None


@lru_cache(maxsize=64)
def _system_file_cached(path: str) -> System:
    return load_system_file(path)


@lru_cache(maxsize=1)
def _systems() -> tuple[dict[str, System], dict[str, str]]:
    by_name: dict[str, System] = {}
    alias: dict[str, str] = {}
    for f in sorted(_data_dir("hardware_specs").glob("*.yaml")):
        s = _system_file_cached(str(f))
        by_name[s.name] = s
        for a in [s.name, *s.aliases]:
            alias[_norm(a)] = s.name
    return by_name, alias


def hardware_names() -> list[str]:
    return sorted(_systems()[0])


def get_system(name: str | System) -> System:
    """A built-in system by name or alias (``h100``, ``h100_sxm``, ``gb200``), or a YAML path."""
    if isinstance(name, System):
        return name
    if str(name).endswith((".yaml", ".yml")) or Path(str(name)).is_file():
        return load_system_file(name)
    own = _data_dir("hardware_specs") / f"{name}.yaml"
    if own.is_file() and "/" not in str(name):  # a built-in file name: no need to read the catalog for aliases
        return _system_file_cached(str(own))
    by_name, alias = _systems()
    key = alias.get(_norm(str(name)))
    if key is None:
        raise SpecError(f"unknown GPU {name!r}{_suggest(str(name), sorted(alias))}")
    return by_name[key]


# ---- models ------------------------------------------------------------------

def load_model_file(path: str | Path, name: str | None = None) -> ModelSpec:
    """Read a Hugging Face ``config.json`` (or YAML with the same keys)."""
    p = Path(path)
    if p.is_dir():
        p = p / "config.json"
    data = _read_mapping(p)
    stem = p.parent.name if p.name == "config.json" else p.stem
    try:
        return from_hf_config(data, name=name or _norm(stem))
    except ValidationError as err:
        raise SpecError(_format_validation(err, str(p))) from None
    except ValueError as err:
        raise SpecError(f"{p}: {err}") from None


@lru_cache(maxsize=1)
def _model_files() -> tuple[dict[str, Path], dict[str, str]]:
    files: dict[str, Path] = {}
    ids: dict[str, str] = {}
    for f in sorted(_data_dir("model_specs").glob("*.json")) + sorted(_data_dir("model_specs").glob("*.yaml")):
        files[f.stem] = f
        try:
            hf = _read_mapping(f).get("_name_or_path")
        except SpecError:
            hf = None
        if hf:
            ids[hf.lower()] = f.stem
            ids.setdefault(hf.split("/")[-1].lower(), f.stem)
    return files, ids


def model_names() -> list[str]:
    return sorted(_model_files()[0])


@lru_cache(maxsize=256)
def _builtin_model(stem: str) -> ModelSpec:
    return load_model_file(_model_files()[0][stem], name=stem)


def get_model(name: str | ModelSpec, model_dir: str | Path | None = None) -> ModelSpec:
    """A model by built-in name, Hugging Face id, or path to a config.json.

    With ``model_dir``, a Hugging Face id ``org/name`` is also looked up as
    ``model_dir/org--name.json`` or ``model_dir/org/name/config.json``.
    """
    if isinstance(name, ModelSpec):
        return name
    s = str(name).strip()
    if s.endswith((".json", ".yaml", ".yml")) or Path(s).is_dir() and (Path(s) / "config.json").is_file():
        return load_model_file(s)
    files, ids = _model_files()
    key = _norm(s)
    if key in files:
        return _builtin_model(key)
    low = s.lower()
    for cand in (low, low.split("/")[-1]):
        if cand in ids:
            return _builtin_model(ids[cand])
    if model_dir is not None:
        d = Path(model_dir)
        for cand in (d / (s.replace("/", "--") + ".json"), d / s / "config.json"):
            if cand.is_file():
                return load_model_file(cand, name=_norm(s.split("/")[-1]))
    raise SpecError(f"unknown model {s!r}{_suggest(s.split('/')[-1], sorted(files))}")
