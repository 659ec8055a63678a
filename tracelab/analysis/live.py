"""The live dashboard: an ipywidgets view of a tracelab database while ``consume`` writes it.

:class:`LiveMonitor` refreshes every ``refresh_s`` seconds (pause/resume, a window selector) and
shows the ingestion rate and, with a Kafka bootstrap, the consumer lag per partition; the failure
rate per system over the window; the traces in flight (by the declared flow) with an age
histogram; the stuck traces (silent for more than ``stuck_after_s``, not finished) with a button
that draws a trace's waterfall; the newest failures with their reasons; the join backlog over
time. Every piece of log text is escaped.

In JupyterLab each refresh redraws plain plotly figures into ``ipywidgets.Output`` panels as the
plotly mimetype (replacing the panel's output in one state update), which JupyterLab's plotly
renderer draws whenever the panel's view is created. Not plotly's ``FigureWidget``: its view
draws once from the widget's data when it is rendered and then only applies the transient
``_py2js_*`` deltas it receives, so what JupyterLab shows can part from the figure in Python (the
panel stayed empty or kept stale styles in the browser tests); it also carries plotly.js (~5 MB)
in its widget state.

The data come from :class:`tracelab.analysis.live_state.LiveState` (incremental, indexed,
read-only reads: see :mod:`tracelab.analysis.live_queries`); refreshes run on a background thread
at a lowered CPU priority, so the dashboard gives way to the writer. The consumer lag comes from
a callable given by the caller (``tracelab.notebook.open_live`` passes the Kafka one): analysis
never imports Kafka.

In a notebook, :meth:`LiveMonitor.run` updates live in JupyterLab and, when the notebook is
executed without a Jupyter server (papermill, nbconvert), renders one static snapshot of every
figure instead, so that the HTML report draws.

Example::

    from tracelab.notebook import open_live
    monitor = open_live("data/processed/event_history.db", bootstrap="127.0.0.1:9092")
    monitor.run()
"""

from __future__ import annotations

import contextlib
import html
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ipywidgets as w
import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio

from tracelab import config
from tracelab.analysis import live_queries, plots
from tracelab.analysis.live_state import LiveState, Snapshot
from tracelab.analysis.report import table_html
from tracelab.errors import TracelabError
from tracelab.simulate.flows import Flow, load_flow

__all__ = ["COUNTERS", "LiveMonitor", "counters_html", "interactive_session"]

#: The counters shown on top, in order: (key in ``Snapshot.counters``, label).
COUNTERS: tuple[tuple[str, str], ...] = (
    ("messages", "messages ingested"),
    ("rows_per_s", "stored rows/s"),
    ("lag", "consumer lag"),
    ("in_flight", "traces in flight"),
    ("stuck", "stuck"),
    ("failures_in_window", "failures in window"),
    ("awaiting_detail", "awaiting detail"),
    ("orphans", "orphan details"),
)
_WINDOWS = ((60.0, "1 min"), (300.0, "5 min"), (900.0, "15 min"), (3600.0, "1 h"))
_LOW_PRIORITY = 10  # niceness of the refresh thread
_STUCK_ROWS = 50


def interactive_session() -> bool:
    """Whether this kernel was started by a Jupyter server (JupyterLab, Notebook): then the
    dashboard updates live. papermill and nbconvert start kernels without one.

    Example: ``interactive_session()`` -> ``False`` in a plain Python process
    """
    return bool(os.environ.get("JPY_SESSION_NAME"))


def counters_html(snap: Snapshot) -> str:
    """The counters as HTML (one ``span.tl-live-counter[data-name]`` each; numbers only).

    Example: ``counters_html(state.update())``
    """
    parts = []
    for key, label in COUNTERS:
        value = snap.counters.get(key)
        if key == "lag" and (value is None or value < 0):
            text = "n/a"
        elif isinstance(value, float) and not value.is_integer():
            text = f"{value:,.1f}"
        else:
            text = f"{int(value or 0):,}"
        parts.append(
            f'<span class="tl-live-counter" data-name="{key}" style="margin-right:18px">'
            f'<b class="tl-value" style="font-size:18px">{text}</b> {html.escape(label)}</span>'
        )
    return '<div class="tl-live-counters">' + "".join(parts) + "</div>"


#: Panels of the dashboard figure: (row, col, title); traces are added in _build.
_PANELS = (
    (1, 1, "stored per second"),
    (1, 2, "consumer lag"),
    (1, 3, "failure rate"),
    (2, 1, "traces in flight by age"),
    (2, 2, "join backlog"),
)


def _dashboard_figure() -> go.Figure:
    """The five live panels in one figure (its traces are updated in place at each refresh)."""
    from plotly.subplots import make_subplots

    fig = make_subplots(
        rows=2,
        cols=3,
        specs=[[{"secondary_y": True}, {}, {}], [{}, {"colspan": 2}, None]],
        subplot_titles=[t for _, _, t in _PANELS],
        horizontal_spacing=0.08,
        vertical_spacing=0.16,
    )
    fig.add_scatter(
        name="stored rows/s", mode="lines+markers", marker=dict(size=3),
        line=dict(color="#1565c0"), row=1, col=1,
    )  # fmt: skip
    fig.add_scatter(
        name="consumer lag", mode="lines", line=dict(color="#ef6c00", dash="dot"),
        row=1, col=1, secondary_y=True,
    )  # fmt: skip
    fig.add_bar(name="lag per partition", marker=dict(color="#ef6c00"), row=1, col=2)
    fig.add_bar(name="failure rate %", row=1, col=3)
    fig.add_histogram(name="in flight", marker=dict(color=plots.OK_COLOR), row=2, col=1)
    fig.add_histogram(name="stuck", marker=dict(color=plots.FAIL_COLOR), row=2, col=1)
    fig.add_scatter(name="awaiting detail", mode="lines", line=dict(color="#6a1b9a"), row=2, col=2)
    fig.add_scatter(name="orphan details", mode="lines", line=dict(color="#00838f"), row=2, col=2)
    fig.update_xaxes(type="category", title_text="partition", row=1, col=2)
    fig.update_xaxes(title_text="age (s)", row=2, col=1)
    fig.update_yaxes(rangemode="tozero")
    fig.update_yaxes(title_text="% of events", row=1, col=3)
    fig.update_layout(
        height=640,
        width=1100,
        barmode="stack",
        template="plotly_white",
        margin=dict(l=50, r=30, t=60, b=40),
        legend=dict(orientation="h", y=-0.08),
    )
    return fig


def show_figure(out: w.Output, fig: go.Figure) -> None:
    """Replace what ``out`` shows with ``fig`` as the plotly mimetype (one state update: safe
    from the refresh thread, no flicker of an empty panel, drawn by JupyterLab's plotly renderer
    whenever the panel's view is created).

    Example: ``show_figure(panel, go.Figure(go.Bar(y=[1, 2])))``
    """
    bundle = pio.renderers["plotly_mimetype"].to_mimebundle(fig.to_dict())
    out.outputs = ({"output_type": "display_data", "data": bundle, "metadata": {}},)


class LiveMonitor:
    """A live dashboard of a tracelab database (see the module docstring).

    ``flow``: the declared flow (a path or a ``Flow``; default data/flows/default.yaml) that
    says when a trace is finished. ``lag``: a callable returning the consumer lag per partition
    (``partition, end_offset, stored, lag``; :func:`tracelab.notebook.open_live` passes
    ``tracelab.kafka.PartitionLag`` when a bootstrap is given); the monitor owns it and calls
    its ``close()``, if any, on :meth:`close`. ``topic`` and ``group`` are only displayed.
    ``interactive`` (default: :func:`interactive_session`) draws the figures into the widget's
    ``Output`` panels at each refresh (:func:`show_figure`); otherwise :meth:`show_snapshot`
    shows them once as plain figures.

    Example: ``LiveMonitor("x.db", refresh_s=1, window_s=300, stuck_after_s=30).run()``
    """

    def __init__(
        self,
        db: str | Path,
        *,
        flow: str | Path | Flow | None = None,
        topic: str = config.DEFAULT_TOPIC,
        group: str | None = None,
        refresh_s: float = 1.0,
        window_s: float = 300.0,
        stuck_after_s: float = 30.0,
        lag: Callable[[], pd.DataFrame] | None = None,
        wait_for_db_s: float = 30.0,
        interactive: bool | None = None,
    ) -> None:
        if not refresh_s > 0:
            raise TracelabError(f"refresh_s must be > 0, got {refresh_s!r}")
        self.db = Path(db)
        self.flow = flow if isinstance(flow, Flow) else load_flow(flow or config.DEFAULT_FLOW)
        self.topic = topic
        self.group = group
        self.refresh_s = float(refresh_s)
        self.interactive = interactive_session() if interactive is None else bool(interactive)
        deadline = time.monotonic() + wait_for_db_s
        while not self.db.is_file() and time.monotonic() < deadline:
            time.sleep(0.5)  # consume creates it on start
        self.conn = live_queries.open_readonly(self.db)
        self.state = LiveState(
            self.conn, self.flow, window_s=window_s, stuck_after_s=stuck_after_s,
            history_s=max(window_s, max(s for s, _ in _WINDOWS)),
        )  # fmt: skip
        self.lag_source = lag
        self.snapshot: Snapshot | None = None
        self.errors: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._duck: Any = None
        self._build()

    # -- widgets ---------------------------------------------------------------------------

    def _build(self) -> None:
        self.title = w.HTML(
            f"<h3 style='margin:4px 0'>tracelab live · {html.escape(str(self.db))}</h3>"
        )
        self.status = w.HTML()
        self.counters = w.HTML()
        self.pause = w.ToggleButton(value=False, description="pause", icon="pause")
        self.pause.observe(self._on_pause, names="value")
        options = list(_WINDOWS)
        if self.state.window_s not in {s for s, _ in options}:
            options.append((self.state.window_s, f"{self.state.window_s:g} s"))
        self.window = w.Dropdown(
            options=[(label, s) for s, label in sorted(options)],
            value=self.state.window_s,
            description="window",
        )
        self.window.observe(self._on_window, names="value")
        self.fig = _dashboard_figure()
        self.fig_waterfall = go.Figure(
            layout=dict(title="waterfall: pick a stuck trace", height=300, template="plotly_white")
        )
        self.panel = w.Output(layout=w.Layout(min_height=f"{self.fig.layout.height}px"))
        self.panel.add_class("tl-live-figure")
        self.waterfall_panel = w.Output()
        self.waterfall_panel.add_class("tl-live-waterfall")
        self.stuck_table = w.HTML()
        self.stuck_pick = w.Dropdown(
            options=[], description="trace", layout=w.Layout(width="480px")
        )
        self.draw = w.Button(description="draw waterfall", icon="chart-bar")
        self.draw.on_click(self._on_draw)
        self.failures = w.HTML()
        self.widget = w.VBox(
            [
                self.title,
                w.HBox([self.pause, self.window, self.status]),
                self.counters,
                self.panel if self.interactive else w.HTML("(static figures: see show_snapshot)"),
                w.HTML("<b>stuck traces</b> (no event for longer than "
                       f"{self.state.stuck_after_s:g} s, not finished)"),
                self.stuck_table,
                w.HBox([self.stuck_pick, self.draw]),
                self.waterfall_panel if self.interactive else w.HTML(""),
                w.HTML("<b>newest failures</b>"),
                self.failures,
            ]
        )  # fmt: skip
        self.widget.add_class("tl-live")

    def figures(self) -> dict[str, go.Figure]:
        """The dashboard's figures by name.

        ``dashboard`` holds the five panels (traces: 0 stored rows/s, 1 lag total, 2 lag per
        partition, 3 failure rate per system, 4 and 5 ages in flight and stuck, 6 awaiting
        detail, 7 orphan details); ``waterfall`` the trace drawn last.

        Example: ``monitor.figures()["dashboard"].data[3].y``
        """
        return {"dashboard": self.fig, "waterfall": self.fig_waterfall}

    # -- refreshing ------------------------------------------------------------------------

    def refresh(self) -> Snapshot:
        """Read what is new, redraw every figure and table; returns the snapshot.

        Example: ``monitor.refresh().counters["in_flight"]``
        """
        with self._lock:
            started = time.perf_counter()
            lag = None
            lag_error = ""
            if self.lag_source is not None:
                try:
                    lag = self.lag_source()
                except TracelabError as exc:
                    lag_error = f" · lag unavailable: {exc}"
            snap = self.state.update(lag)
            self.snapshot = snap
            self._draw(snap)
            took = (time.perf_counter() - started) * 1000
            clock = (
                "live (wall clock)"
                if snap.clock == "wall"
                else "database not being written: times relative to its newest event"
            )
            self.status.value = (
                f"<span class='tl-live-status'>updated {snap.now:%H:%M:%S} UTC · "
                f"refresh {took:.0f} ms · {html.escape(clock)}{html.escape(lag_error)}</span>"
            )
            return snap

    def _draw(self, snap: Snapshot) -> None:
        self.counters.value = counters_html(snap)
        fig = self.fig
        d = fig.data
        rate = snap.failure_rate
        flight = snap.in_flight
        stuck_mask = flight["idle_s"] > self.state.stuck_after_s
        if snap.lag.empty:
            lag_title = "consumer lag (no bootstrap given)"
        else:
            lag_title = f"lag per partition (total {int(snap.lag['lag'].sum()):,})"
        titles = (
            f"stored rows/s ({snap.counters['rows_per_s']:,.0f}/s now)",
            lag_title,
            f"failure rate per system, last {_window_label(snap.window_s)}",
            f"traces in flight by age ({len(flight):,}; {int(stuck_mask.sum()):,} stuck)",
            f"join backlog ({snap.counters['awaiting_detail']:,} awaiting detail, "
            f"{snap.counters['orphans']:,} orphans)",
        )
        with fig.batch_update():
            d[0].x, d[0].y = snap.ingest["time"].to_numpy(), snap.ingest["rows"].to_numpy()
            d[1].x = snap.lag_history["time"].to_numpy()
            d[1].y = snap.lag_history["lag"].to_numpy()
            d[2].x = [str(p) for p in snap.lag["partition"]] if not snap.lag.empty else []
            d[2].y = snap.lag["lag"].to_numpy() if not snap.lag.empty else []
            d[3].x = [plots.esc(s) for s in rate["system_id"]]
            d[3].y = (rate["rate"] * 100).round(2).to_numpy()
            d[3].marker.color = [plots.system_color(s) for s in rate["system_id"]]
            d[3].customdata = rate[["failures", "events"]].to_numpy()
            d[
                3
            ].hovertemplate = (
                "%{x}: %{y:.2f} % (%{customdata[0]} of %{customdata[1]})<extra></extra>"
            )
            d[4].x = flight.loc[~stuck_mask, "age_s"].to_numpy()
            d[5].x = flight.loc[stuck_mask, "age_s"].to_numpy()
            for i, col in ((6, "awaiting_detail"), (7, "orphans")):
                d[i].x = snap.backlog["time"].to_numpy()
                d[i].y = snap.backlog[col].to_numpy()
            for annotation, text in zip(fig.layout.annotations, titles, strict=True):
                annotation.text = html.escape(text)
        if self.interactive:
            show_figure(self.panel, fig)
        stuck = snap.stuck
        shown = stuck.head(_STUCK_ROWS)
        self.stuck_table.value = (
            table_html(
                shown[
                    [
                        "correlation_id",
                        "last_system",
                        "last_checkpoint",
                        "idle_s",
                        "age_s",
                        "events",
                    ]
                ].round({"idle_s": 1, "age_s": 1}),
                max_rows=_STUCK_ROWS,
            )  # fmt: skip
            if len(shown)
            else "<i>no stuck traces</i>"
        )
        options = [
            (f"{c} · {s} {cp} · idle {i:.0f} s", c)
            for c, s, cp, i in zip(
                shown["correlation_id"], shown["last_system"], shown["last_checkpoint"],
                shown["idle_s"], strict=True,
            )
        ]  # fmt: skip
        if [v for _, v in options] != [v for _, v in self.stuck_pick.options]:
            keep = self.stuck_pick.value
            self.stuck_pick.options = options
            if keep in {v for _, v in options}:
                self.stuck_pick.value = keep
        cols = [
            "ts",
            "system_id",
            "checkpoint_id",
            "correlation_id",
            "failure_reason",
            "join_state",
        ]
        self.failures.value = (
            table_html(snap.failures[cols], max_rows=15)
            if len(snap.failures)
            else "<i>no failures yet</i>"
        )

    def draw_waterfall(self, correlation_id: str) -> go.Figure:
        """Draw one trace's waterfall in the dashboard (DuckDB, indexed lookup of the trace).

        Example: ``monitor.draw_waterfall(monitor.snapshot.stuck["correlation_id"][0])``
        """
        from tracelab import analysis
        from tracelab.analysis.duck import connect

        if self._duck is None:
            self._duck = connect(self.db)
        fig = plots.waterfall(analysis.waterfall(self._duck, correlation_id))
        target = self.fig_waterfall
        with target.batch_update():
            target.data = []
            target.add_traces(list(fig.data))
            target.layout = fig.layout
        if self.interactive:
            show_figure(self.waterfall_panel, target)
        return target

    def _on_draw(self, _button: Any) -> None:
        if self.stuck_pick.value:
            self.draw_waterfall(self.stuck_pick.value)

    def _on_pause(self, change: dict[str, Any]) -> None:
        self.pause.description = "resume" if change["new"] else "pause"
        self.pause.icon = "play" if change["new"] else "pause"

    def _on_window(self, change: dict[str, Any]) -> None:
        self.state.window_s = float(change["new"])
        if not self.pause.value:
            self._safe_refresh()

    def _safe_refresh(self) -> None:
        try:
            self.refresh()
        except Exception as exc:  # noqa: BLE001 - a dashboard keeps going; the error is shown
            self.errors.append(f"{type(exc).__name__}: {exc}")
            self.status.value = (
                f"<span class='tl-live-status' style='color:#c62828'>refresh failed: "
                f"{html.escape(self.errors[-1])}</span>"
            )

    def start(self, run_for_s: float | None = None, first_wait_s: float = 0.0) -> None:
        """Refresh every ``refresh_s`` seconds on a background thread (for ``run_for_s``
        seconds, or until :meth:`stop`); the pause button skips refreshes meanwhile.

        Example: ``monitor.start(); ...; monitor.stop()``
        """
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        deadline = None if run_for_s is None else time.monotonic() + run_for_s

        def loop() -> None:
            with contextlib.suppress(OSError, AttributeError):
                os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), _LOW_PRIORITY)
            self._stop.wait(first_wait_s)
            while not self._stop.is_set():
                if deadline is not None and time.monotonic() >= deadline:
                    break
                if not self.pause.value:
                    self._safe_refresh()
                self._stop.wait(self.refresh_s)

        self._thread = threading.Thread(target=loop, name="tracelab-live", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop refreshing (the last figures stay) and wait for the refresh thread.

        Example: ``monitor.stop()``
        """
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def close(self) -> None:
        """Stop, and close the database connections and the lag source (its ``close()``)."""
        self.stop()
        close_lag = getattr(self.lag_source, "close", None)
        if callable(close_lag):
            close_lag()
        if self._duck is not None:
            self._duck.close()
        self.conn.close()

    # -- notebooks -------------------------------------------------------------------------

    def run(self, run_for_s: float | None = None, plotly_offline: bool = False) -> None:
        """Show the dashboard in a notebook.

        Interactive (``interactive``; by default when a Jupyter server started the kernel, see
        :func:`interactive_session`):
        display the widget and refresh in the background for ``run_for_s`` seconds (None:
        until stopped). Otherwise (papermill): refresh for ``run_for_s`` seconds (None or 0:
        once), then display one static snapshot of every figure and table, which the HTML
        report draws (``plotly_offline``: embed plotly.js, see ``plots.setup_notebook``; in
        JupyterLab the panels carry the plotly mimetype themselves: no renderer is set up).

        Example: ``open_live(None).run(run_for_s=None)``
        """
        from IPython.display import display

        if self.interactive:
            self._safe_refresh()  # the panels have their figures when the widget is shown
            display(self.widget)
            self.start(run_for_s, first_wait_s=2.0)
            return
        plots.setup_notebook(offline=plotly_offline)
        end = time.monotonic() + (run_for_s or 0)
        self.refresh()
        while time.monotonic() < end:
            time.sleep(min(self.refresh_s, max(0.0, end - time.monotonic())))
            self.refresh()
        self.show_snapshot()

    def show_snapshot(self) -> None:
        """Display the current counters, figures and tables as static outputs (plotly
        figures through the notebook's renderer, escaped HTML tables).

        Example: ``monitor.refresh(); monitor.show_snapshot()``
        """
        from IPython.display import HTML, display

        snap = self.snapshot or self.refresh()
        display(HTML(counters_html(snap) + self.status.value))
        self.fig.show()
        display(HTML(f"<b>stuck traces</b> ({len(snap.stuck):,})" + self.stuck_table.value))
        pick = self._example_trace(snap)
        if pick is not None:
            self.draw_waterfall(pick)
            self.fig_waterfall.show()
        display(HTML("<b>newest failures</b>" + self.failures.value))

    @staticmethod
    def _example_trace(snap: Snapshot) -> str | None:
        """The trace a snapshot draws: the longest-stuck one, else the oldest in flight, else
        the newest failure's."""
        for frame, sort in ((snap.stuck, None), (snap.in_flight, "age_s"), (snap.failures, None)):
            if len(frame):
                row = frame.sort_values(sort, ascending=False).iloc[0] if sort else frame.iloc[0]
                return str(row["correlation_id"])
        return None


def _window_label(seconds: float) -> str:
    for s, label in _WINDOWS:
        if s == seconds:
            return label
    return f"{seconds:g} s"
