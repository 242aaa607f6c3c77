"""``refused``: the test helper for inputs the planner must refuse with one line (shared by the test modules)."""

from __future__ import annotations

import pytest

from planner import PlannerError


def refused(call, *expected: str, error: type[BaseException] = PlannerError) -> str:
    """``call()`` raises ``error`` (a PlannerError) whose message is one line holding ``expected``."""
    with pytest.raises(error) as info:
        call()
    msg = str(info.value)
    assert "\n" not in msg and msg.strip(), msg
    for e in expected:
        assert e in msg, (e, msg)
    return msg
