"""An ipywidgets trace explorer fed by ``tracelab.analysis.search``.

Pick a path, outcome, duration range and failure reason; the matching traces are listed, and the
chosen trace shows its waterfall and its events. Every piece of log text is HTML-escaped before
it reaches an ``HTML`` widget.

Example::

    from tracelab.analysis.widgets import TraceExplorer
    TraceExplorer(con).widget   # last expression of a notebook cell
"""

from __future__ import annotations

from typing import Any

import duckdb
import ipywidgets as w
import pandas as pd

from tracelab import analysis
from tracelab.analysis import plots
from tracelab.analysis.report import table_html

__all__ = ["TraceExplorer"]

_ANY = "(any)"


class TraceExplorer:
    """Search traces and inspect one: filters -> result list -> waterfall and events.

    Example: ``TraceExplorer(con, limit=100).widget``
    """

    __slots__ = (
        "con",
        "limit",
        "path",
        "outcome",
        "min_ms",
        "max_ms",
        "reason",
        "results",
        "status",
        "figure",
        "events",
        "widget",
        "_last",
    )

    def __init__(self, con: duckdb.DuckDBPyConnection, limit: int = 200) -> None:
        if limit <= 0:
            raise ValueError(f"limit must be positive, got {limit}")
        self.con = con
        self.limit = limit
        paths = analysis.path_distribution(con)["path"].tolist()
        reasons = analysis.reason_pareto(con)["failure_reason"].tolist()
        self.path = w.Dropdown(options=[_ANY, *paths], description="path")
        self.outcome = w.Dropdown(options=[_ANY, "SUCCESS", "FAILURE"], description="outcome")
        self.min_ms = w.FloatText(value=0.0, description="min ms")
        self.max_ms = w.FloatText(value=0.0, description="max ms (0=any)")
        self.reason = w.Combobox(
            options=reasons,
            placeholder="failure reason contains",
            description="reason",
            ensure_option=False,
        )
        self.results = w.Select(
            options=[], rows=10, description="traces", layout=w.Layout(width="95%")
        )
        self.status = w.HTML()
        self.figure = w.Output()
        self.events = w.HTML()
        self._last: pd.DataFrame = pd.DataFrame()
        for control in (self.path, self.outcome, self.min_ms, self.max_ms, self.reason):
            control.observe(self._on_filter, names="value")
        self.results.observe(self._on_pick, names="value")
        filters = w.VBox(
            [w.HBox([self.path, self.outcome]), w.HBox([self.min_ms, self.max_ms, self.reason])]
        )
        self.widget = w.VBox([filters, self.status, self.results, self.figure, self.events])
        self.refresh()

    def criteria(self) -> dict[str, Any]:
        """The current filters as ``analysis.search`` keyword arguments.

        Example: ``explorer.criteria()`` -> ``{"outcome": "FAILURE", "limit": 200}``
        """
        out: dict[str, Any] = {"limit": self.limit}
        if self.path.value != _ANY:
            out["path"] = self.path.value
        if self.outcome.value != _ANY:
            out["outcome"] = self.outcome.value
        if self.min_ms.value:
            out["min_ms"] = float(self.min_ms.value)
        if self.max_ms.value:
            out["max_ms"] = float(self.max_ms.value)
        if self.reason.value:
            out["reason"] = self.reason.value
        return out

    def refresh(self) -> pd.DataFrame:
        """Run the search for the current filters and list the matches; returns them.

        Example: ``explorer.refresh().shape``
        """
        found = analysis.search(self.con, **self.criteria())
        self._last = found
        self.status.value = f"<b>{len(found)}</b> trace(s) match" + (
            " (limit reached)" if len(found) >= self.limit else ""
        )
        self.results.options = [
            (f"{cid} | {path} | {outcome} | {ms} ms", cid)
            for cid, path, outcome, ms in zip(
                found["correlation_id"],
                found["path"],
                found["outcome"],
                found["duration_ms"],
                strict=True,
            )
        ]
        return found

    def show(self, correlation_id: str) -> None:
        """Draw the waterfall and the events of one trace.

        Example: ``explorer.show("abc-123")``
        """
        rows = analysis.waterfall(self.con, correlation_id)
        self.figure.clear_output()
        with self.figure:
            plots.waterfall(rows).show()
        cols = [
            "system_id",
            "checkpoint_id",
            "ts",
            "status",
            "failure_reason",
            "join_state",
            "attempt",
            "offset_ms",
        ]
        self.events.value = table_html(rows[cols], max_rows=50)

    def _on_filter(self, _change: dict[str, Any]) -> None:
        self.refresh()

    def _on_pick(self, change: dict[str, Any]) -> None:
        if change.get("new"):
            self.show(change["new"])
