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
import plotly.graph_objects as go

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
        "_shown",
        "_updating",
        "shown_figure",
    )

    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        limit: int = 200,
        *,
        path: str | None = None,
        outcome: str | None = None,
        min_ms: float | None = None,
        max_ms: float | None = None,
        reason: str | None = None,
    ) -> None:
        if limit <= 0:
            raise ValueError(f"limit must be positive, got {limit}")
        self.con = con
        self.limit = limit
        paths = analysis.path_distribution(con)["path"].tolist()
        if path and path not in paths:
            paths.append(path)
        reasons = analysis.reason_pareto(con)["failure_reason"].tolist()
        wide = {"description_width": "initial"}  # labels are never cut
        self.path = w.Dropdown(
            options=[_ANY, *paths], value=path or _ANY, description="path", style=wide
        )
        self.outcome = w.Dropdown(
            options=[_ANY, "SUCCESS", "FAILURE"],
            value=outcome.upper() if outcome else _ANY,
            description="outcome",
            style=wide,
        )
        self.min_ms = w.FloatText(value=float(min_ms or 0.0), description="min ms", style=wide)
        self.max_ms = w.FloatText(
            value=float(max_ms or 0.0),
            description="max ms",
            tooltip="0 = no upper bound",
            style=wide,
        )
        self.reason = w.Combobox(
            value=reason or "",
            options=reasons,
            placeholder="failure reason contains",
            description="reason",
            ensure_option=False,
            style=wide,
        )
        self.results = w.Select(
            options=[], rows=10, description="traces", layout=w.Layout(width="95%")
        )
        self.status = w.HTML()
        self.figure = w.Output()
        self.shown_figure: go.Figure | None = None
        self.events = w.HTML()
        self._last: pd.DataFrame = pd.DataFrame()
        self._shown: str | None = None
        self._updating = False
        for control in (self.path, self.outcome, self.min_ms, self.max_ms, self.reason):
            control.observe(self._on_filter, names="value")
        self.results.observe(self._on_pick, names="value")
        filters = w.VBox(
            [w.HBox([self.path, self.outcome]), w.HBox([self.min_ms, self.max_ms, self.reason])]
        )
        self.widget = w.VBox([filters, self.status, self.results, self.figure, self.events])
        self.widget.add_class("tl-explorer")
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
        options = [
            (f"{cid} | {path} | {outcome} | {ms} ms", cid)
            for cid, path, outcome, ms in zip(
                found["correlation_id"],
                found["path"],
                found["outcome"],
                found["duration_ms"],
                strict=True,
            )
        ]
        keep = self.results.value
        self._updating = True  # a new option list selects its first entry: not a pick
        try:
            self.results.options = options
        finally:
            self._updating = False
        values = [v for _, v in options]
        if not values:
            self.clear()
        else:
            # select a trace whenever there is one: the one shown if it still matches, else
            # the first (an empty result leaves the Select with no index, which ipywidgets
            # would otherwise keep for every later result)
            pick = keep if keep in values else values[0]
            if self.results.value != pick:
                self.results.value = pick  # draws it through _on_pick
            elif self._shown != pick:
                self.show(pick)
        return found

    def clear(self) -> None:
        """Remove the waterfall and the events (nothing matches).

        Example: ``explorer.clear()``
        """
        self.figure.clear_output()
        self.shown_figure = None
        self.events.value = ""
        self._shown = None

    def show(self, correlation_id: str) -> None:
        """Draw the waterfall and the events of one trace.

        Example: ``explorer.show("abc-123")``
        """
        rows = analysis.waterfall(self.con, correlation_id)
        fig = plots.waterfall(rows)
        self.figure.clear_output(wait=True)
        with self.figure:
            fig.show()
        self.shown_figure = fig
        self._shown = correlation_id
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
        if not self._updating and change.get("new") and change["new"] != self._shown:
            self.show(change["new"])
