"""Run the ``planner`` command line in this process (much faster than a subprocess per case)."""

from __future__ import annotations

import contextlib
import io

from planner.cli import main


def cli(*argv: str) -> tuple[int, str, str]:
    """Run ``planner argv`` in-process: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(list(argv))
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 1
    return code, out.getvalue(), err.getvalue()
