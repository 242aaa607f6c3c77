"""Quoting for every format the exporters write: names come from user files, so assume anything.

A model name, Hugging Face id or system name is read from a ``config.json`` (``_name_or_path``), a hardware
YAML (``name``) or a plan document; it may hold newlines, quotes, ``$(...)``, backticks or TOML / YAML syntax.
Every string that reaches an output goes through one of these:

* :func:`shell_word` - one shell word (``shlex.quote``: single quotes, ``'`` as ``'"'"'``); a NUL byte,
  which no command-line argument can carry, and a lone surrogate, which UTF-8 cannot, are refused.
* :func:`comment` - text for a ``#`` comment line (shell, YAML, TOML): control characters, Unicode line /
  paragraph separators (categories Cc, Zl, Zp), format characters (Cf: bidirectional overrides) and lone
  surrogates (Cs) are shown as ``\\n``, ``\\u2028``... so the text stays on its line.
* :func:`heredoc` - ``cat > FILE <<'DELIM'``: a quoted delimiter (no expansion inside), chosen so that no line
  of the text equals it.
* :func:`toml_string` - a TOML basic string (TOML 1.0: ``"``, ``\\``, control characters, line separators and
  format characters escaped, the latter as ``\\uXXXX``).
* :func:`yaml_text` - ``yaml.dump`` with the safe dumper (PyYAML quotes or escapes any scalar that needs it).
* :func:`slug` - a name reduced to ``[a-z0-9-]`` where a format takes nothing else (Kubernetes object names,
  SLURM job names).

JSON output uses ``json.dumps`` (it escapes control characters itself).
"""

from __future__ import annotations

import re
import shlex
import unicodedata
from typing import Any

import yaml

from ..errors import PlannerError
from ..specs.text import REFUSED_CATEGORIES

_UNSAFE_CATEGORIES = REFUSED_CATEGORIES  # the characters a spec name may not hold, shown as escapes here


class ExportError(PlannerError):
    """A value an output format cannot carry (one line: what, where)."""


def _visible(ch: str) -> str:
    code = ord(ch)
    named = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
    if ch in named:
        return named[ch]
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def comment(text: str) -> str:
    """``text`` safe on one comment line: control, line / paragraph separator and format characters shown as
    escapes (``\\n``, ``\\u2028``, ...), everything else kept."""
    return "".join(_visible(c) if unicodedata.category(c) in _UNSAFE_CATEGORIES else c for c in str(text))


def comment_lines(lines: list[str], prefix: str = "# ") -> list[str]:
    """Each line as one comment line (see :func:`comment`)."""
    return [prefix + comment(line) for line in lines]


def shell_word(value: Any, what: str = "value") -> str:
    """``value`` as one shell word; :class:`ExportError` for a NUL byte (no argument can hold one)."""
    text = str(value)
    if "\x00" in text:
        raise ExportError(f"{what} {comment(text)!r} holds a NUL character: no command line can carry it")
    if any(0xD800 <= ord(c) <= 0xDFFF for c in text):
        raise ExportError(f"{what} {comment(text)!r} holds a lone surrogate: no UTF-8 script can carry it")
    return shlex.quote(text)


def heredoc(path: str, text: str, delimiter: str = "PLANNER_EOF") -> str:
    """``cat > path <<'DELIM'`` writing ``text`` verbatim (the quoted delimiter turns off expansion); the
    delimiter gets a numeric suffix until no line of ``text`` equals it."""
    body = text.rstrip("\n")
    lines = set(body.split("\n"))
    end, n = delimiter, 0
    while end in lines:
        n += 1
        end = f"{delimiter}_{n}"
    return f"cat > {shell_word(path, 'file name')} <<'{end}'\n{body}\n{end}"


def toml_string(value: str) -> str:
    """A TOML basic string: ``"`` and ``\\`` escaped; control characters (the C0 ones TOML requires, and C1),
    Unicode line / paragraph separators and format characters as ``\\uXXXX`` / ``\\UXXXXXXXX``, so the string
    stays on its line for any reader; every other character as itself (TOML files are UTF-8)."""
    out = ['"']
    for ch in value:
        code = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif 0xD800 <= code <= 0xDFFF:  # a lone surrogate is not a Unicode scalar value: TOML cannot hold it
            raise ExportError(f"string {comment(value)!r} holds a lone surrogate: TOML cannot carry it")
        elif unicodedata.category(ch) in _UNSAFE_CATEGORIES:
            out.append(f"\\u{code:04X}" if code < 0x10000 else f"\\U{code:08X}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


class _Dumper(yaml.SafeDumper):
    """Block style, no anchors / aliases, multi-line strings as ``|`` literals where YAML allows it."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _str_representer(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    # PyYAML falls back to a double-quoted scalar when a literal block cannot hold the text exactly
    style = "|" if "\n" in data else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_Dumper.add_representer(str, _str_representer)


def yaml_text(obj: Any) -> str:
    """``obj`` as block-style YAML (safe dumper: plain types only, every string quoted as YAML needs)."""
    return yaml.dump(obj, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=1 << 16,
                     allow_unicode=False)


def slug(text: str, limit: int = 40, default: str = "model") -> str:
    """``text`` lower-cased with every run of characters outside ``[a-z0-9]`` as one ``-`` (at most ``limit``
    characters, no leading / trailing ``-``): a valid Kubernetes name and label value."""
    name = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return name[:limit].rstrip("-") or default


__all__ = ["ExportError", "comment", "comment_lines", "heredoc", "shell_word", "slug", "toml_string", "yaml_text"]
