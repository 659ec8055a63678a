"""The live dashboard's data (live_queries, live_state) and widget (live.LiveMonitor), on real
SQLite files written by the real normalizer while the dashboard reads them."""

from __future__ import annotations

import base64
import json
import sqlite3
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import plotly.graph_objects as go
import pytest

from tracelab import config
from tracelab.analysis import live_queries
from tracelab.analysis.live import COUNTERS, LiveMonitor, counters_html, interactive_session
from tracelab.analysis.live_state import LiveState
from tracelab.errors import AnalysisError
from tracelab.ingest.pipeline import normalize_files
from tracelab.notebook import example_db
from tracelab.simulate.flows import Flow, load_flow

BAD = "A <b>bad</b> one"


# -- lines as the seed's systems write them (inventory and reporting: JSON, inventory's reasons in
# a separate detail; orders: text with the reason inline)


def json_separate(system: str, checkpoint: str, status: str, ts: str, cid: str) -> str:
    return json.dumps(
        {"system": system, "checkpoint": checkpoint, "status": status, "timestamp": ts,
         "correlation_id": cid}
    )  # fmt: skip


def json_separate_detail(system: str, cid: str, reason: str) -> str:
    return json.dumps({"system": system, "correlation_id": cid, "failure_reason": reason})


def text_inline(
    label: str, checkpoint: str, status: str, ts: str, cid: str, reason: str | None = None
) -> str:
    line = f"{ts} {label}: {checkpoint} - {status} (ID: {cid})"
    return line if reason is None else f"{line} - {reason}"


@pytest.fixture(scope="module")
def flow() -> Flow:
    return load_flow(config.DEFAULT_FLOW)


def ts(seconds_ago: float) -> str:
    t = datetime.now(UTC) - timedelta(seconds=seconds_ago)
    return t.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]


def write(db: Path, lines: list[str], name: str) -> None:
    raw = db.parent / name
    raw.write_text("\n".join(lines) + "\n", encoding="utf-8")
    normalize_files([raw], db, progress=False)


def done_trace(cid: str, ago: float) -> list[str]:
    """A whole trace of path b: inventory, then reporting and orders to their last checkpoint."""
    return [
        json_separate("inventory", "INITIATED", "SUCCESS", ts(ago), cid),
        json_separate("inventory", "FINALIZED", "SUCCESS", ts(ago - 0.1), cid),
        json_separate("reporting", "REPORTING_INITIATED", "SUCCESS", ts(ago - 0.2), cid),
        json_separate("reporting", "REPORTING_FINALIZED", "SUCCESS", ts(ago - 0.3), cid),
        text_inline("ORDER", "ORDER_INITIALIZED", "SUCCESS", ts(ago - 0.2), cid),
        text_inline("ORDER", "ORDER_FINALIZED", "SUCCESS", ts(ago - 0.4), cid),
    ]


@pytest.fixture
def live_db(tmp_path: Path) -> Path:
    """Traces in every state, stamped relative to now (the wall clock applies)."""
    db = tmp_path / "live.db"
    lines = done_trace("done-1", 20)
    # orders fails twice (its retry limit is 1): the trace is finished, by failing
    lines += [
        json_separate("inventory", "INITIATED", "SUCCESS", ts(15), "failed-1"),
        text_inline("ORDER", "ORDER_CHECKPOINT_1", "FAILURE", ts(14), "failed-1", BAD),
        text_inline("ORDER", "ORDER_CHECKPOINT_1", "FAILURE", ts(13), "failed-1", BAD),
    ]  # fmt: skip
    # stuck: last event 100 s ago, halfway
    lines += [
        json_separate("inventory", "INITIATED", "SUCCESS", ts(101), "stuck-1"),
        json_separate("inventory", "CHECKPOINT_1", "SUCCESS", ts(100), "stuck-1"),
    ]
    # in flight, recent; its inventory failure awaits a separate detail
    lines += [
        json_separate("inventory", "INITIATED", "SUCCESS", ts(3), "run-1"),
        json_separate("inventory", "CHECKPOINT_1", "FAILURE", ts(2), "run-1"),
    ]
    lines.append(json_separate_detail("inventory", "nobody", "orphan reason"))
    write(db, lines, "a.log")
    return db


def test_state_sorts_traces_by_the_declared_flow(live_db: Path, flow: Flow) -> None:
    state = LiveState(live_queries.open_readonly(live_db), flow, window_s=300, stuck_after_s=30)
    snap = state.update()
    assert snap.clock == "wall"
    assert set(snap.in_flight["correlation_id"]) == {"stuck-1", "run-1"}
    assert snap.stuck["correlation_id"].tolist() == ["stuck-1"]
    stuck = snap.stuck.iloc[0]
    assert (stuck["last_system"], stuck["last_checkpoint"]) == ("inventory", "CHECKPOINT_1")
    assert 99 < stuck["idle_s"] < 110 and stuck["age_s"] > stuck["idle_s"]
    rate = snap.failure_rate.set_index("system_id")
    assert rate.loc["orders", "failures"] == 2 and rate.loc["orders", "events"] == 4
    assert rate.loc["inventory", "failures"] == 1 and rate.loc["inventory", "events"] == 7
    assert snap.counters["awaiting_detail"] == 1 and snap.counters["orphans"] == 1
    assert snap.counters["messages"] == 14 and snap.counters["in_flight"] == 2
    newest = snap.failures.iloc[0]
    assert (newest["correlation_id"], newest["join_state"]) == ("run-1", "awaiting_detail")
    assert int(snap.ingest["rows"].sum()) == 14  # 13 events + 1 detail, stored just now


def test_state_follows_new_rows_and_late_details(live_db: Path, flow: Flow, tmp_path: Path) -> None:
    state = LiveState(live_queries.open_readonly(live_db), flow, window_s=300, stuck_after_s=30)
    state.update()
    # run-1's detail arrives and the trace completes; a new trace starts; the orphan stays
    write(
        live_db,
        [
            json_separate_detail("inventory", "run-1", "Stock <i>gone</i>"),
            *done_trace("run-1", 1)[1:],
            json_separate("inventory", "INITIATED", "SUCCESS", ts(0.5), "new-1"),
        ],
        "b.log",
    )
    snap = state.update()
    assert set(snap.in_flight["correlation_id"]) == {"stuck-1", "new-1"}
    assert snap.counters["awaiting_detail"] == 0
    failure = snap.failures[snap.failures["correlation_id"] == "run-1"].iloc[0]
    assert (failure["failure_reason"], failure["join_state"]) == ("Stock <i>gone</i>", "joined")
    assert snap.backlog["awaiting_detail"].tolist() == [1, 0]
    assert snap.counters["messages"] == 14 + 7


def test_a_finished_database_is_shown_on_its_own_clock(tmp_path: Path, flow: Flow) -> None:
    db, _ = example_db(tmp_path, traces=60, seed=2)
    snap = LiveState(live_queries.open_readonly(db), flow, window_s=60).update()
    assert snap.clock == "data"
    newest = live_queries.newest_event_us(live_queries.open_readonly(db))
    assert snap.now.value // 1000 == newest
    assert snap.counters["events_in_window"] > 0 and len(snap.failure_rate) == 4


def test_state_forgets_silent_traces_and_old_seconds(live_db: Path, flow: Flow) -> None:
    state = LiveState(
        live_queries.open_readonly(live_db), flow, window_s=60, stuck_after_s=5,
        history_s=60, forget_after_s=50,
    )  # fmt: skip
    snap = state.update()
    assert "stuck-1" not in set(snap.in_flight["correlation_id"])  # silent for 100 s > 50 s
    assert all(sec * 1_000_000 >= snap.now.value // 1000 - 61_000_000 for sec in state._per_sec)


def test_queries_are_read_only_and_index_driven(live_db: Path) -> None:
    conn = live_queries.open_readonly(live_db)
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        conn.execute("DELETE FROM events")
    top = live_queries.max_id(conn, "events")
    assert len(live_queries.events_between(conn, top - 3, top)) == 3
    first_ingested = conn.execute("SELECT min(ingested_at) FROM events").fetchone()[0]
    assert live_queries.first_id_ingested_since(conn, "events", first_ingested) == 1
    assert live_queries.first_id_ingested_since(conn, "events", "9999") == top + 1
    failing = [r[0] for r in conn.execute("SELECT id FROM events WHERE status = 'FAILURE'")]
    assert len(live_queries.still_awaiting(conn, failing)) == 1
    for sql in (
        "SELECT count(*) FROM details WHERE event_id IS NULL",
        "SELECT id FROM events WHERE timestamp >= '2025' AND id <= 5",
        "SELECT id FROM events WHERE id > 1 AND id <= 5",
    ):
        plan = " ".join(str(r[-1]) for r in conn.execute(f"EXPLAIN QUERY PLAN {sql}"))
        assert "SEARCH" in plan and "SCAN" not in plan, (sql, plan)
    with pytest.raises(AnalysisError, match="does not exist"):
        live_queries.open_readonly(live_db.parent / "missing.db")


def test_flow_ends_and_retry_limits(flow: Flow) -> None:
    ends = live_queries.flow_ends(flow)
    assert ends == [
        frozenset({("reporting", "REPORTING_FINALIZED"), ("orders", "ORDER_FINALIZED")})
    ]
    assert live_queries.retry_limits(flow) == {
        "inventory": 2, "payments": 3, "reporting": 2, "orders": 1,
    }  # fmt: skip


@pytest.mark.parametrize("interactive", [False, True])
def test_monitor_draws_every_figure_and_escapes_log_text(live_db: Path, interactive: bool) -> None:
    monitor = LiveMonitor(live_db, window_s=300, stuck_after_s=30, interactive=interactive)
    assert not isinstance(monitor.fig, go.FigureWidget)  # see test_panels_show_the_figures
    assert (monitor.panel in monitor.widget.children) == interactive
    try:
        snap = monitor.refresh()
        figs = monitor.figures()
        d = figs["dashboard"].data
        assert list(d[3].x) == ["inventory", "orders", "reporting"]
        assert list(d[3].y) == [pytest.approx(100 / 7, 0.01), 50.0, 0]
        assert len(d[4].x) == 1 and len(d[5].x) == 1  # in flight, stuck
        assert list(d[6].y) == [1] and list(d[7].y) == [1]  # awaiting detail, orphans
        assert "stuck-1" in monitor.stuck_table.value
        assert "A &lt;b&gt;bad&lt;/b&gt; one" in monitor.failures.value
        assert "<b>bad</b>" not in monitor.failures.value
        titles = [a.text for a in figs["dashboard"].layout.annotations]
        assert "no bootstrap" in titles[1] and "1 stuck" in titles[3]
        html_counters = counters_html(snap)
        for key, _ in COUNTERS:
            assert f'data-name="{key}"' in html_counters
        assert monitor.stuck_pick.options[0][1] == "stuck-1"
        monitor.stuck_pick.value = "stuck-1"
        monitor.draw.click()
        assert "stuck-1" in figs["waterfall"].layout.title.text
        assert len(figs["waterfall"].data) >= 2
        # the window selector changes what the failure rate covers
        monitor.window.value = 60.0
        assert monitor.snapshot is not None and monitor.snapshot.window_s == 60.0
    finally:
        monitor.close()


def shown(panel: Any) -> dict[str, Any]:
    """The plotly figure an Output panel shows (exactly one output, the plotly mimetype)."""
    (output,) = panel.outputs
    assert output["output_type"] == "display_data"
    return output["data"]["application/vnd.plotly.v1+json"]


def values(array: Any) -> list[Any]:
    """A plotly JSON array: a list, or numbers as a typed array (``{"dtype", "bdata"}``)."""
    if isinstance(array, dict):
        return np.frombuffer(base64.b64decode(array["bdata"]), dtype=array["dtype"]).tolist()
    return list(array)


def test_panels_show_the_figures_as_the_plotly_mimetype(live_db: Path) -> None:
    """In JupyterLab each refresh replaces the panel's one output with the whole figure, so a
    view created at any time draws the current figure (no FigureWidget deltas)."""
    monitor = LiveMonitor(live_db, window_s=300, stuck_after_s=30, interactive=True)
    try:
        monitor.refresh()
        fig = shown(monitor.panel)
        assert values(fig["data"][3]["x"]) == ["inventory", "orders", "reporting"]
        assert values(fig["data"][3]["y"]) == pytest.approx([100 / 7, 50.0, 0], 0.01)
        assert fig["data"][4]["marker"]["color"] == monitor.fig.data[4].marker.color
        assert "1 stuck" in fig["layout"]["annotations"][3]["text"]
        assert json.dumps(fig)  # plain JSON: what the frontend receives
        write(live_db, [json_separate("inventory", "INITIATED", "SUCCESS", ts(0.5), "new-1")],
              "c.log")  # fmt: skip
        monitor.refresh()
        again = shown(monitor.panel)
        assert "(3;" in again["layout"]["annotations"][3]["text"]  # 3 in flight now
        assert monitor.waterfall_panel.outputs == ()
        monitor.draw_waterfall("stuck-1")
        assert "stuck-1" in shown(monitor.waterfall_panel)["layout"]["title"]["text"]
    finally:
        monitor.close()


def test_monitor_refreshes_on_its_thread_and_pauses(live_db: Path) -> None:
    monitor = LiveMonitor(live_db, refresh_s=0.2)
    try:
        monitor.start()
        deadline = time.monotonic() + 20
        while monitor.state.updates < 3 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert monitor.state.updates >= 3
        monitor.pause.value = True
        assert monitor.pause.description == "resume"
        time.sleep(0.5)
        frozen = monitor.state.updates
        time.sleep(0.8)
        assert monitor.state.updates == frozen
        monitor.pause.value = False
        deadline = time.monotonic() + 20
        while monitor.state.updates == frozen and time.monotonic() < deadline:
            time.sleep(0.1)
        assert monitor.state.updates > frozen
        assert not monitor.errors
    finally:
        monitor.close()
    assert monitor._thread is not None and not monitor._thread.is_alive()


def test_not_interactive_outside_a_jupyter_server(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JPY_SESSION_NAME", raising=False)
    assert not interactive_session()
    monkeypatch.setenv("JPY_SESSION_NAME", "/x/05_live.ipynb")
    assert interactive_session()


@pytest.mark.slow
def test_live_notebook_renders_one_snapshot_under_papermill(tmp_path: Path) -> None:
    import nbformat

    from tracelab.reports.run import run_notebooks

    db, _ = example_db(tmp_path, traces=80, seed=3)
    (run,) = run_notebooks(
        tmp_path / "out", {"db": str(db), "plotly_offline": False}, notebooks=["05_live.ipynb"],
        progress=False,
    )  # fmt: skip
    nb = nbformat.read(run.notebook, as_version=4)
    outputs = [o for c in nb.cells for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    figures = [o for o in outputs if "application/vnd.plotly.v1+json" in o.get("data", {})]
    assert len(figures) == 2  # the dashboard and the waterfall of the longest-stuck trace
    assert run.notebook.stat().st_size < 1_000_000  # no FigureWidget (plotly.js) in the state
    assert run.html is not None
    text = run.html.read_text(encoding="utf-8")
    assert text.count('class="plotly-graph-div"') == 2 and "tl-live-counter" in text
