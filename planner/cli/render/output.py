"""Tables on the terminal, or their rows as CSV (``--csv``).

Every command prints through :func:`show` (a table) and :func:`say` (a line), never ``console.print`` of its
own, so that ``--csv`` can replace the whole output with the rows of one table.

Tables fit the terminal without wrapping inside a cell: no column wraps (``no_wrap``); columns sit two spaces
apart with no outer padding; a table wider than the terminal (a narrow window, an unusually long name) is
printed as one block per row (``header: value`` lines) instead of being cut. When stdout is not a terminal,
rich takes the width from ``$COLUMNS``, else 80.
"""

from __future__ import annotations

import csv
import functools
import inspect
import re
import sys
from enum import Enum
from typing import Any, Callable, Optional, TypeVar

import typer
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from .errors import fail

console = Console()


class Sheet(Table):
    """A rich table that remembers its heading (printed above it), its key (what ``--table`` picks) and its
    cells as given (for CSV and the one-block-per-row layout)."""

    def __init__(self, heading: str | None, key: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.heading = heading
        self.key = key
        self.cells: list[tuple[Any, ...]] = []

    def add_row(self, *renderables: Any, **kwargs: Any) -> None:  # type: ignore[override]
        self.cells.append(renderables)
        super().add_row(*renderables, **kwargs)


def _slug(title: str | None) -> str:
    return re.sub(r"[^a-z0-9]+", "-", (title or "table").lower()).strip("-") or "table"


def table(title: str | None = None, *columns: str, right: tuple[str, ...] = (), key: str | None = None) -> Sheet:
    """A table with ``columns`` (those in ``right`` right-aligned); ``key``: its name for ``--table`` (default:
    the title as a slug)."""
    t = Sheet(title, key or _slug(title), box=box.SIMPLE_HEAVY, show_edge=False, pad_edge=False,
              collapse_padding=True, padding=(0, 1))
    for c in columns:
        t.add_column(c, justify="right" if c in right else "left", no_wrap=True, overflow="ellipsis")
    return t


def plain(cell: Any) -> str:
    """A cell's text without rich markup."""
    if isinstance(cell, Text):
        return cell.plain
    if isinstance(cell, str):
        try:
            return Text.from_markup(cell).plain
        except Exception:  # not markup after all (a bracket in a name)
            return cell
    return "" if cell is None else str(cell)


# ---------------------------------------------------------------------------
# CSV mode
# ---------------------------------------------------------------------------

class _Sink:
    """The tables a command showed, kept for CSV instead of printed."""

    def __init__(self) -> None:
        self.tables: list[tuple[str, str | None, list[str], list[list[str]]]] = []


_sink: _Sink | None = None

_GROUPED = re.compile(r"[+-]?\d{1,3}(,\d{3})+(\.\d+)?")


def _csv_cell(cell: Any) -> str:
    """A cell as CSV: markup dropped, a number's thousands separators too (``722,053`` -> ``722053``)."""
    text = plain(cell).strip()
    return text.replace(",", "") if _GROUPED.fullmatch(text) else text


def say(*objects: Any, **kwargs: Any) -> None:
    """Print a line (rich markup) on stdout; nothing in CSV mode, where stdout holds only the rows."""
    if _sink is None:
        kwargs.setdefault("highlight", False)
        console.print(*objects, **kwargs)


def width() -> int:
    """The terminal's width in characters (``$COLUMNS``, or 80 when stdout is not a terminal)."""
    return console.width


def natural_width(t: Table) -> int:
    """The width ``t`` takes with no cell wrapped or cut (rich's measure, unbounded by the terminal)."""
    return console.measure(t, options=console.options.update_width(1_000_000)).maximum


def show(t: Sheet, csv_rows: tuple[list[str], list[list[Any]]] | None = None, csv: bool = True) -> None:
    """Print a table under its heading, or (too wide for the terminal) one block per row; in CSV mode keep its
    rows instead (``csv_rows``: (header, rows) to keep in place of the table's own, e.g. with fields the
    terminal view leaves out; ``csv=False``: a table whose rows another one's ``csv_rows`` already hold)."""
    if _sink is not None:
        if not csv:
            return
        header, rows = csv_rows if csv_rows is not None else ([plain(c.header) for c in t.columns], t.cells)
        _sink.tables.append((t.key, t.heading, [plain(h) for h in header],
                             [[_csv_cell(c) for c in row] for row in rows]))
        return
    if t.heading:
        console.print(Text(t.heading, style="bold"))
    if natural_width(t) <= console.width:
        console.print(t)
    else:
        _blocks(t)
    console.print()


def _blocks(t: Sheet) -> None:
    """The table as one block per row: the first cell, then ``header: value`` for the others (text lines that
    the terminal may wrap between words, never a cell cut in two)."""
    headers = [plain(c.header) for c in t.columns]
    for row in t.cells:
        first = plain(row[0]) if row else ""
        console.print(Text(first or "-", style="bold"))
        for h, cell in zip(headers[1:], row[1:]):
            value = plain(cell)
            if value:
                console.print(Text(f"  {h}: {value}" if h else f"  {value}"))


def _write_csv(key: str, keys: tuple[str, ...], explicit: bool) -> None:
    """The rows of the tables kept under ``key`` (several: a leading ``table`` column with each one's heading)
    as CSV on stdout."""
    assert _sink is not None
    shown = [k for k in dict.fromkeys(k for k, *_ in _sink.tables)]
    if key not in shown:
        if explicit or not shown:
            fail(f"--table {key}: this command printed no {key} table" + (f" (it printed {', '.join(shown)})"
                                                                          if shown else ""))
        key = next((k for k in keys if k in shown), shown[0])
    picked = [t for t in _sink.tables if t[0] == key]
    out = csv.writer(sys.stdout, lineterminator="\n")
    if len(picked) == 1:
        _, _, header, rows = picked[0]
        out.writerow(header)
        out.writerows(rows)
        return
    columns = list(dict.fromkeys(h for _, _, header, _ in picked for h in header))
    out.writerow(["table", *columns])
    for _, heading, header, rows in picked:
        for row in rows:
            cells = dict(zip(header, row))
            out.writerow([heading or key, *(cells.get(c, "") for c in columns)])


F = TypeVar("F", bound=Callable[..., Any])


def tabular(*keys: str) -> Callable[[F], F]:
    """Give a command ``--csv``: the rows of its main table (``keys[0]``, or the first of ``keys`` it printed)
    as CSV on stdout instead of the tables; with several ``keys``, ``--table KEY`` picks another.

    Numbers keep the precision the table shows (``--json`` has them all); units are in the headers."""
    picks = Enum("Table", {k: k for k in keys}, type=str) if len(keys) > 1 else None  # type: ignore[misc]

    def decorate(fn: F) -> F:
        sig = inspect.signature(fn, eval_str=True)

        @functools.wraps(fn)
        def wrapper(*args: Any, csv_out: bool = False, csv_table: Any = None, **kwargs: Any) -> Any:
            global _sink
            if not csv_out:
                if csv_table is not None:
                    fail("--table does nothing without --csv")
                return fn(*args, **kwargs)
            clash = [f for f, name in (("--json", "as_json"), ("--export", "export_to")) if kwargs.get(name)]
            if clash:
                fail(f"--csv and {clash[0]} each replace the output; give one")
            _sink = _Sink()
            try:
                fn(*args, **kwargs)
                _write_csv(csv_table.value if csv_table is not None else keys[0], keys, csv_table is not None)
            finally:
                _sink = None

        extra = [inspect.Parameter("csv_out", inspect.Parameter.KEYWORD_ONLY, annotation=bool, default=typer.Option(
            False, "--csv", help=f"Print the rows of the {keys[0]} table as CSV instead of the tables (numbers as "
            "shown, units in the headers)" + (", or with --table those of another." if picks else ".")))]
        if picks is not None:
            extra.append(inspect.Parameter("csv_table", inspect.Parameter.KEYWORD_ONLY, annotation=Optional[picks],
                                           default=typer.Option(None, "--table", case_sensitive=False,
                                                                help="With --csv: the table whose rows to print.")))
        params = list(sig.parameters.values()) + extra
        wrapper.__signature__ = sig.replace(parameters=params)  # type: ignore[attr-defined]
        wrapper.__annotations__ = {p.name: p.annotation for p in params}
        return wrapper  # type: ignore[return-value]

    return decorate
