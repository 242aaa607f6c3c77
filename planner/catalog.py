"""Built-in names -> spec files. The only module that reads spec files.

Hardware: ``hardware_specs/*.yaml`` (one :class:`~planner.specs.hardware.System`
each). Models: ``model_specs/*.json`` (Hugging Face ``config.json``) or
``*.yaml`` (the same keys). In a source checkout the folders sit at the top of
the repository; an installed wheel carries them as ``planner/hardware_specs``
and ``planner/model_specs``.

A model may be named by its built-in name (``llama-3.1-70b``), a path to a
``config.json``, or a Hugging Face id (``meta-llama/Llama-3.1-70B``, matched
against the catalog's ``_name_or_path`` and, case-insensitively, the name
after the organisation). The id of a variant of a catalog model resolves to it
too: an organisation of its own, a ``Meta-`` prefix and fine-tune or
quantization suffixes (``RedHatAI/Meta-Llama-3.1-8B-Instruct-FP8`` ->
``llama-3.1-8b``; the architecture is the same, the precision is the command's
own flag). An unknown name says which catalog model is closest.

Spec files are read through :mod:`planner.files`: regular files only (a
folder, FIFO or ``/dev/zero``, or a link to one, is refused before it is
read), at most ``limits.MAX_SPEC_FILE_BYTES``, UTF-8, bounded nesting, YAML's
safe loader with aliases refused. Names and paths given to :func:`get_model` /
:func:`get_system` are checked too (a string, not empty, not longer than
``limits.MAX_NAME_CHARS``, one printable line). Every problem is one
:class:`SpecError` line naming the file or the name.
"""

from __future__ import annotations

import difflib
import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from .errors import PlannerError
from .files import FileInputError, parse_json, parse_yaml, read_text
from .limits import MAX_NAME_CHARS, MAX_SPEC_FILE_BYTES
from .specs.hardware import System
from .specs.model import ModelSpec, from_hf_config
from .specs.text import bad_character

_PKG = Path(__file__).resolve().parent


class SpecError(PlannerError):
    """A spec that cannot be found or read: the message is one line for the user (control characters
    of a quoted name or path are escaped, as in every :class:`~planner.errors.PlannerError`)."""


def _clip(text: str, n: int = 60) -> str:
    return text if len(text) <= n else text[: n - 3] + "..."


def _name_arg(name: object, what: str, strip: bool = True) -> str:
    """A name or path argument as a clean string (stripped unless ``strip=False``: a file's own name); else one
    :class:`SpecError` line (never a TypeError or an AttributeError)."""
    if isinstance(name, os.PathLike):
        name = os.fspath(name)
    if not isinstance(name, str):
        raise SpecError(f"{what} must be a name or a path (a string), got {type(name).__name__}")
    s = name.strip()
    if not s:
        raise SpecError(f"{what} name is empty; `planner specs list` shows the built-in ones")
    if len(s) > MAX_NAME_CHARS:
        raise SpecError(f"{what} name is {len(s):,} characters long; at most {MAX_NAME_CHARS:,} accepted")
    bad = bad_character(s)
    if bad:
        raise SpecError(f"{what} name {_clip(s)!r} contains a control character ({bad})")
    return s if strip else name


def _probe(path: Path, test: str) -> bool:
    """``path.exists()`` / ``is_file()`` / ``is_dir()`` that answer False instead of raising (a name too
    long for the file system, a component that is not a folder, no permission)."""
    try:
        return bool(getattr(path, test)())
    except (OSError, ValueError):
        return False


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
    elif e["type"] != "value_error" and isinstance(e.get("input"), (int, float, str)):  # ours say what they got
        msg += f" (got {_clip(repr(e['input']), 40)})"
    more = f" (and {len(err.errors()) - 1} more problems)" if len(err.errors()) > 1 else ""
    return f"{where}: {loc}: {msg}{more}"


def _read_mapping(path: Path, what: str = "a spec file") -> dict[str, Any]:
    """A spec file's top-level mapping: JSON for ``*.json``, YAML otherwise (through :mod:`planner.files`)."""
    try:
        text = read_text(path, what, MAX_SPEC_FILE_BYTES)
        # a config.json may hold Infinity in fields the planner does not read (Nemotron-H's time_step_limit);
        # from_hf_config checks every field it uses
        data = (parse_json(text, str(path), allow_non_finite=True) if path.suffix == ".json"
                else parse_yaml(text, str(path)))
    except FileInputError as exc:
        raise SpecError(str(exc)) from None
    if not isinstance(data, dict):
        raise SpecError(f"{path}: expected a mapping of fields at the top level")
    return data


# ---- hardware ----------------------------------------------------------------

def load_system_file(path: str | Path) -> System:
    """Read and validate one hardware spec YAML."""
    p = Path(_name_arg(path, "hardware spec path", strip=False))
    data = _read_mapping(p, "a hardware spec (YAML)")
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
    s = _name_arg(name, "GPU")
    p = Path(s)
    if s.endswith((".yaml", ".yml")) or "/" in s or os.sep in s or (_probe(p, "exists") and not _probe(p, "is_dir")):
        return load_system_file(s)  # a path (a folder or special file is refused there, not read)
    own = _data_dir("hardware_specs") / f"{s}.yaml"
    if "/" not in s and os.sep not in s and _probe(own, "is_file"):  # a built-in file name: no alias lookup needed
        return _system_file_cached(str(own))
    by_name, alias = _systems()
    key = alias.get(_norm(s))
    if key is None:
        raise SpecError(f"unknown GPU {_clip(s)!r}{_suggest(s[:200], sorted(alias))}")
    return by_name[key]


# ---- models ------------------------------------------------------------------

def load_model_file(path: str | Path, name: str | None = None) -> ModelSpec:
    """Read a Hugging Face ``config.json`` (or YAML with the same keys)."""
    p = Path(_name_arg(path, "model config path", strip=False))
    if _probe(p, "is_dir"):
        p = p / "config.json"
    data = _read_mapping(p, "a model config (config.json)")
    stem = p.parent.name if p.name == "config.json" else p.stem
    try:
        return from_hf_config(data, name=name or _norm(stem) or "model")
    except ValidationError as err:
        raise SpecError(_format_validation(err, str(p))) from None
    except PlannerError as err:
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
        if hf and isinstance(hf, str):
            ids[hf.lower()] = f.stem
            ids.setdefault(hf.split("/")[-1].lower(), f.stem)
    return files, ids


def model_names() -> list[str]:
    return sorted(_model_files()[0])


#: Parts of Hugging Face repository names that name a variant of the same architecture: fine-tuned
#: (``-Instruct``, ``-Chat``, ``-it``), converted (``-hf``) or quantized (``-FP8``, ``-AWQ``, ...) checkpoints,
#: and release dates (``-2507``, ``-0324``). Dropped to find the catalog model; the precision a command uses is
#: its own flag.
_VARIANT_PARTS = frozenset({"instruct", "chat", "it", "hf", "base", "fp8", "dynamic", "block", "nvfp4", "fp4",
                            "int4", "int8", "awq", "gptq", "gguf", "w4a16", "w8a8", "w8a16", "bnb", "4bit", "8bit"})
_DATE = re.compile(r"\d{4}")
_VERSION = re.compile(r"v\d+(\.\d+)*")


def _variant_keys(name: str) -> list[str]:
    """The names a Hugging Face id of a variant of a catalog model may reduce to, nearest first:
    ``RedHatAI/Meta-Llama-3.1-8B-Instruct-FP8`` -> ``meta-llama-3.1-8b-instruct-fp8``, ``meta-llama-3.1-8b``,
    ``llama-3.1-8b``; ``mistralai/Mixtral-8x7B-Instruct-v0.1`` -> ..., ``mixtral-8x7b-v0.1``, ``mixtral-8x7b``
    (lower case, without the organisation, without the variant parts and a trailing date, then without the
    version and a ``meta-`` prefix)."""
    key = _norm(name.split("/")[-1])
    parts = key.split("-")
    kept = [p for i, p in enumerate(parts) if p not in _VARIANT_PARTS and not (i > 0 and i == len(parts) - 1
                                                                               and _DATE.fullmatch(p))]
    undated = "-".join(parts[:-1]) if len(parts) > 1 and _DATE.fullmatch(parts[-1]) else key
    keys = [key, undated, "-".join(kept)]
    if len(kept) > 1 and _VERSION.fullmatch(kept[-1]):
        keys.append("-".join(kept[:-1]))
    keys += [k.removeprefix("meta-") for k in keys if k.startswith("meta-")]
    return [k for k in dict.fromkeys(keys) if k]


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
    s = _name_arg(name, "model")
    p = Path(s)
    if (s.endswith((".json", ".yaml", ".yml")) or (_probe(p, "is_dir") and _probe(p / "config.json", "exists"))
            or (_probe(p, "exists") and not _probe(p, "is_dir"))):
        return load_model_file(s)  # a path (a special file is refused there, not read)
    files, ids = _model_files()
    key = _norm(s)
    if key in files:
        return _builtin_model(key)
    low = s.lower()
    for cand in (low, low.split("/")[-1]):
        if cand in ids:
            return _builtin_model(ids[cand])
    if model_dir is not None:
        found = _in_model_dir(s, model_dir)
        if found is not None:
            return found
    for cand in _variant_keys(s):  # a variant of a built-in model: -Instruct, -FP8, an organisation, ...
        if cand in files:
            return _builtin_model(cand)
        if cand in ids:
            return _builtin_model(ids[cand])
    raise SpecError(f"unknown model {_clip(s)!r}{_closest(s, sorted(files))}")


def _in_model_dir(s: str, model_dir: str | Path) -> ModelSpec | None:
    """``org/name`` as ``model_dir/org--name.json`` or ``model_dir/org/name/config.json``, else None."""
    d = Path(_name_arg(model_dir, "model folder"))
    for cand in (d / (s.replace("/", "--") + ".json"), d / s / "config.json"):
        if _probe(cand, "exists"):
            return load_model_file(cand, name=_norm(s.split("/")[-1]))
    return None


def _closest(name: str, known: list[str]) -> str:
    """``; did you mean X?``: the closest catalog names to ``name`` as typed, else to its variant-free form
    (``Llama-3.3-70B-Instruct`` -> ``llama-3.1-70b``)."""
    keys = _variant_keys(name[:200])
    return (_suggest(keys[-1], known) if len(keys) > 1 else "") or _suggest(name.split("/")[-1][:200], known)
