"""Names in spec files: one printable line, of bounded length.

A model or system name travels far: into tables, plan documents, launch
scripts and manifests. Exporters quote what they write; this is the input side
of the same defence: a name holding a line break (``\\n``, ``\\r``, ``\\u2028``,
``\\u2029``), a tab, NUL, any other control character, or an invisible format
character (a bidirectional override, a zero-width space) is refused when the
spec is read. Everything else is kept, in particular the characters of a
Hugging Face id (letters, digits, ``/``, ``-``, ``_``, ``.``).
"""

from __future__ import annotations

import unicodedata

#: Unicode categories refused in names: control (Cc: NUL, tab, newline, CR, DEL...), format (Cf: bidi
#: overrides, zero-width characters), line and paragraph separators (Zl, Zp: U+2028, U+2029), surrogates (Cs).
#: The exporters show the same characters as escapes on comment lines; the plan gate also refuses private use (Co).
REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})

MAX_LABEL_CHARS = 256  # a name, alias or Hugging Face id
MAX_TEXT_CHARS = 4096  # a description or a source line


def first_refused(text: str, categories: frozenset[str] = REFUSED_CATEGORIES) -> tuple[int, str] | None:
    """(position, character) of the first character of ``text`` in one of ``categories``, or None."""
    for i, ch in enumerate(text):
        if unicodedata.category(ch) in categories:
            return i, ch
    return None


def bad_character(text: str) -> str | None:
    """The first refused character of ``text`` as ``U+000A``-style text, or None when the text is clean."""
    found = first_refused(text)
    return None if found is None else f"U+{ord(found[1]):04X}"


def line_problem(value: object, max_chars: int = MAX_LABEL_CHARS) -> str | None:
    """Why ``value`` is not a string of one printable line of at most ``max_chars`` characters (a message
    without a subject, for the caller to prefix with the field), or None when it is."""
    if not isinstance(value, str):
        return f"must be a string, got {type(value).__name__}"
    if len(value) > max_chars:
        return f"is {len(value):,} characters long; at most {max_chars:,} accepted"
    bad = bad_character(value)
    if bad:
        return f"contains a control character ({bad}); expected one printable line"
    return None


def check_line(value: object, max_chars: int = MAX_LABEL_CHARS) -> str:
    """``value`` if :func:`line_problem` finds nothing; else a ``ValueError`` saying why (a pydantic
    validator's error: pydantic names the field)."""
    problem = line_problem(value, max_chars)
    if problem:
        raise ValueError(problem)
    return value  # type: ignore[return-value]


__all__ = ["MAX_LABEL_CHARS", "MAX_TEXT_CHARS", "REFUSED_CATEGORIES", "bad_character", "check_line", "first_refused",
           "line_problem"]
