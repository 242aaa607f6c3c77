"""What every command module shares: one-line errors, tables (or CSV), JSON, number formats, progress and the
choices flags take.

Command modules import from here (never from each other); :mod:`planner.cli` assembles them into one app.

* :mod:`.errors`   - ``error: ...`` and exit 2 (:func:`fail`, :func:`cli_errors`), options that do nothing
* :mod:`.output`   - :func:`table`, :func:`show`, :func:`say`, ``--csv`` (:func:`tabular`)
* :mod:`.formats`  - numbers for people, JSON for programs, amounts flags take (``15T``, ``60d``, ``300ms``)
* :mod:`.progress` - a bar or a spinner on stderr for work longer than a second
* :mod:`.options`  - choices (shown in help, completed by the shell) and help metavars
* :mod:`.artifacts` - ``--plot FILE`` and ``--report FILE.html`` (figures and HTML reports of an answer)
"""

from __future__ import annotations

from .artifacts import check_artifacts, write_artifacts
from .errors import (EXIT_INTERNAL, EXIT_USAGE, USER_ERRORS, cli_errors, fail, format_error,
                     format_validation_error, given, refuse_overwrite, refuse_unused, squash, usage_error)
from .formats import (TIMING_KEYS, default_reference, duration, gb, json_safe, model_kind, parse_amount, parse_time,
                      print_json, si, signed_pct, slo_ms)
from .options import (BACKENDS, PLACEMENT_TARGETS, PRECISIONS, ROUTER_NAMES, SERVING_TARGETS, TRAINING_TARGETS,
                      choice, polish_help)
from .output import Sheet, console, natural_width, plain, say, show, table, tabular, width
from .progress import Activity, LazyProgress

__all__ = [
    "BACKENDS", "PLACEMENT_TARGETS", "PRECISIONS", "ROUTER_NAMES", "SERVING_TARGETS", "TRAINING_TARGETS",
    "EXIT_INTERNAL", "EXIT_USAGE", "TIMING_KEYS", "USER_ERRORS", "Activity", "LazyProgress", "Sheet", "choice",
    "cli_errors", "console", "default_reference", "duration", "fail", "format_error", "format_validation_error",
    "gb", "given", "json_safe", "model_kind", "parse_amount", "parse_time", "plain", "polish_help", "print_json",
    "refuse_overwrite", "refuse_unused", "say", "show", "si", "signed_pct", "slo_ms", "squash", "table", "tabular",
    "natural_width", "width",
    "usage_error", "check_artifacts", "write_artifacts",
]
