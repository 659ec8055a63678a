"""The trace explorer of notebook 03 (issue 11, row 11): it starts with the notebook's search,
clears the waterfall when nothing matches, selects a trace again afterwards, labels are whole and
event times all carry milliseconds."""

from __future__ import annotations

import re

import duckdb
import pandas as pd
import pytest

from tracelab.analysis.duck import connect
from tracelab.analysis.report import table_html
from tracelab.analysis.widgets import TraceExplorer
from tracelab.notebook import example_db


@pytest.fixture(scope="module")
def con(tmp_path_factory: pytest.TempPathFactory) -> duckdb.DuckDBPyConnection:
    db, _ = example_db(tmp_path_factory.mktemp("explorer"), traces=150, seed=4)
    return connect(db)


def title(explorer: TraceExplorer) -> str:
    fig = explorer.shown_figure
    return "(nothing shown)" if fig is None else fig.layout.title.text


def test_explorer_starts_with_the_notebook_search_and_shows_a_trace(
    con: duckdb.DuckDBPyConnection,
) -> None:
    explorer = TraceExplorer(con, outcome="failure", reason="reason", min_ms=1)
    assert explorer.criteria() == {"limit": 200, "outcome": "FAILURE", "reason": "reason",
                                   "min_ms": 1.0}  # fmt: skip
    assert len(explorer.results.options) > 0
    first = explorer.results.options[0][1]
    assert explorer.results.value == first
    assert first in title(explorer) and len(explorer.shown_figure.data) >= 2
    assert first in explorer.events.value or explorer.events.value  # the events table is drawn


def test_no_match_clears_the_waterfall_and_a_later_match_selects_again(
    con: duckdb.DuckDBPyConnection,
) -> None:
    explorer = TraceExplorer(con)
    shown = explorer.results.value
    assert shown and shown in title(explorer)
    explorer.reason.value = "zzz"
    assert explorer.results.options == () and explorer.results.value is None
    assert explorer.shown_figure is None and explorer.status.value.startswith("<b>0</b>")
    assert explorer.events.value == ""
    explorer.reason.value = ""
    again = explorer.results.value
    assert again is not None and again in title(explorer)
    explorer.outcome.value = "SUCCESS"
    other = explorer.results.value
    assert other is not None and other in title(explorer)
    # picking another trace draws it
    pick = explorer.results.options[-1][1]
    explorer.results.value = pick
    assert pick in title(explorer)


def test_labels_are_not_cut(con: duckdb.DuckDBPyConnection) -> None:
    explorer = TraceExplorer(con)
    for control in (explorer.path, explorer.outcome, explorer.min_ms, explorer.max_ms,
                    explorer.reason):  # fmt: skip
        assert control.style.description_width == "initial"
    assert explorer.max_ms.description == "max ms"


def test_event_times_all_have_milliseconds(con: duckdb.DuckDBPyConnection) -> None:
    frame = pd.DataFrame(
        {
            "ts": pd.to_datetime(
                ["2025-05-04 10:30:00", "2025-05-04 10:30:00.123456"], format="ISO8601"
            )
        }
    )
    cells = re.findall(r"<td[^>]*>([^<]*)</td>", table_html(frame))
    assert cells == ["2025-05-04 10:30:00.000", "2025-05-04 10:30:00.123"]
    explorer = TraceExplorer(con)
    times = re.findall(
        r"<td[^>]*>(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d[^<]*)</td>", explorer.events.value
    )
    assert times and all(re.fullmatch(r"[\d-]+ [\d:]+\.\d{3}", t) for t in times)


def test_explorer_on_an_unknown_path_parameter(con: duckdb.DuckDBPyConnection) -> None:
    explorer = TraceExplorer(con, path="no>such>path")
    assert explorer.path.value == "no>such>path" and explorer.results.options == ()
    assert explorer.shown_figure is None
