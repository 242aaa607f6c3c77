"""The planner's one error family.

Every error a user can cause (a bad name, a malformed file, an impossible plan,
an out-of-range number) is a :class:`PlannerError`, itself a ``ValueError``, so
``except planner.PlannerError`` catches exactly the input problems and lets bugs
through. The CLI prints such an error as one line and exits with status 2.
"""

from __future__ import annotations


def one_line(text: str) -> str:
    """``text`` with its control characters escaped (a newline becomes ``\\n``): a message that quotes a
    hostile value (a file name or model name holding a newline) still prints as one line."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() or c == " " else repr(c)[1:-1] for c in text)


class PlannerError(ValueError):
    """A problem with the input: one line saying what, where and what was expected (control characters in
    the message, e.g. from a quoted file name, are escaped so that it stays one line)."""

    def __init__(self, *args: object) -> None:
        if len(args) == 1 and isinstance(args[0], str):
            args = (one_line(args[0]),)
        super().__init__(*args)


__all__ = ["PlannerError", "one_line"]
