"""What every answer object offers a notebook: a short ``repr``, an HTML table, its plan document as a dict or
JSON, a pandas DataFrame of its main table, and a plot.

:class:`ResultMixin` is mixed into the answer types (training and serving estimates and searches, simulations,
GPU mixes, expert placements). Each type says what it is in one line (``_summary``) and which rows make its
main table (``_rows``); the rest is here. The module imports nothing of the planner's, so the cost and search
layers can use it; pandas and matplotlib are imported when asked for (``planner[frame]``, ``planner[plot]``).
"""

from __future__ import annotations

import html
import importlib
import json
import math
from typing import Any


def _clean(obj: Any) -> Any:
    """NaN / inf -> None, so JSON is strict."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    return obj


def _cell(v: Any) -> str:
    if isinstance(v, float):
        if not math.isfinite(v):
            return "-"
        return f"{v:,.4g}" if abs(v) < 1e6 else f"{v:,.0f}"
    if v is None:
        return "-"
    return str(v)


def fmt_s(seconds: float) -> str:
    """A duration for a one-line summary."""
    if seconds < 1:
        return f"{seconds * 1e3:.3g} ms"
    if seconds < 120:
        return f"{seconds:.3g} s"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.3g} h"
    return f"{seconds / 86400:.3g} days"


class ResultMixin:
    """``repr`` / ``_repr_html_`` / ``to_dict`` / ``to_json`` / ``to_frame`` / ``plot`` for an answer type (module
    docstring). A subclass defines ``_summary() -> str`` and ``_rows() -> list[dict]``."""

    def _summary(self) -> str:  # pragma: no cover - every answer type defines its own
        return ""

    def _rows(self) -> list[dict[str, Any]]:
        return []

    def __repr__(self) -> str:
        return f"<{type(self).__name__}: {self._summary()}>"

    __str__ = __repr__

    def _repr_html_(self) -> str:
        rows = self._rows()
        out = [f"<div><p><b>{html.escape(type(self).__name__)}</b>: {html.escape(self._summary())}</p>"]
        if rows:
            cols = list(rows[0])
            out.append("<table><thead><tr>" + "".join(f"<th>{html.escape(str(c))}</th>" for c in cols)
                       + "</tr></thead><tbody>")
            for r in rows[:50]:
                out.append("<tr>" + "".join(f"<td>{html.escape(_cell(r.get(c)))}</td>" for c in cols) + "</tr>")
            out.append("</tbody></table>")
            if len(rows) > 50:
                out.append(f"<p>... {len(rows) - 50} more rows (to_frame() has them all)</p>")
        out.append("</div>")
        return "".join(out)

    def to_dict(self) -> dict[str, Any]:
        """The answer's plan document (the JSON object ``planner check`` / ``planner export`` read) when it has one,
        else the answer itself as a JSON-ready dict."""
        doc = getattr(self, "plan_document", None)
        if isinstance(doc, dict):
            return doc
        make = getattr(self, "_document", None)  # an estimate from the public API builds its document on demand
        if callable(make):
            doc = make()
            if isinstance(doc, dict):
                return doc
        return _clean(self.model_dump(mode="json"))  # type: ignore[attr-defined]  (the answers are pydantic models)

    def to_json(self, indent: int | None = 2) -> str:
        """:meth:`to_dict` as JSON text."""
        return json.dumps(_clean(self.to_dict()), indent=indent, allow_nan=False)

    def to_frame(self):
        """The answer's main table as a pandas DataFrame (``pip install 'planner[frame]'``)."""
        try:
            pandas = importlib.import_module("pandas")
        except ImportError:
            from .errors import PlannerError

            raise PlannerError("to_frame() needs pandas: pip install 'planner[frame]'") from None
        return pandas.DataFrame(self._rows())

    def plot(self, path: str | None = None, **options: Any):
        """The answer's figure (:func:`planner.plots.plot` picks it; ``path`` ending .png or .svg saves it); a
        matplotlib Figure."""
        plots = importlib.import_module("planner.plots")
        return plots.plot(self, path, **options)


__all__ = ["ResultMixin", "fmt_s"]
