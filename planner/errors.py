"""The planner's one error family.

Every error a user can cause (a bad name, a malformed file, an impossible plan,
an out-of-range number) is a :class:`PlannerError`, itself a ``ValueError``, so
``except planner.PlannerError`` catches exactly the input problems and lets bugs
through. The CLI prints such an error as one line and exits with status 2.
"""

from __future__ import annotations


class PlannerError(ValueError):
    """A problem with the input: one line saying what, where and what was expected."""


__all__ = ["PlannerError"]
