"""tracelab.analysis.plots, .widgets and .report tables: figures carry the analysis numbers,
and log text reaches hover text, labels and HTML tables only escaped."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio
import pytest

from tracelab import analysis, notebook
from tracelab.analysis import plots, report
from tracelab.analysis.duck import connect
from tracelab.analysis.widgets import TraceExplorer
from tracelab.config import DEFAULT_FLOW
from tracelab.ingest.pipeline import normalize_files
from tracelab.simulate.flows import load_flow
from tracelab.simulate.truth import read_truth_summary

EVIL = "<img src=x onerror=alert(1)>"


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[duckdb.DuckDBPyConnection, dict]:
    db, truth = notebook.example_db(tmp_path_factory.mktemp("plots"), traces=150, seed=3)
    summary = read_truth_summary(truth)
    c = connect(db)
    yield c, summary
    c.close()


@pytest.fixture(scope="module")
def evil_con(tmp_path_factory: pytest.TempPathFactory) -> duckdb.DuckDBPyConnection:
    """Log lines whose reason, checkpoint text and id carry markup, through the real pipeline."""
    tmp = tmp_path_factory.mktemp("evil")
    raw = tmp / "evil.log"
    lines = [
        "2025-05-04T10:30:00.001 ORDER: ORDER_INITIALIZED - SUCCESS (ID: evil-1)",
        f"2025-05-04T10:30:00.002 ORDER: ORDER_CHECKPOINT_1 - FAILURE (ID: evil-1) - {EVIL}",
        "2025-05-04T10:30:00.050 ORDER: ORDER_CHECKPOINT_1 - SUCCESS (ID: evil-1)",
        json.dumps(
            {
                "system": "reporting",
                "checkpoint": "REPORTING_CHECKPOINT_2",
                "status": "FAILURE",
                "timestamp": "2025-05-04T10:30:00.060",
                "correlation_id": "evil-1",
                "failure_reason": "<script>alert('x')</script>",
            }
        ),
    ]
    raw.write_text("\n".join(lines) + "\n", encoding="utf-8")
    normalize_files([raw], tmp / "evil.db", progress=False)
    c = connect(tmp / "evil.db")
    yield c
    c.close()


def _html_of(fig: go.Figure) -> str:
    return pio.to_html(fig, include_plotlyjs=False, full_html=False)


def test_setup_notebook_sets_a_renderer_nbconvert_can_draw() -> None:
    before = pio.renderers.default
    try:
        assert plots.setup_notebook() == "plotly_mimetype+tracelab_report"
        assert pio.renderers.default == "plotly_mimetype+tracelab_report"
        assert plots.setup_notebook(offline=False) == plots.RENDERER
        fig = go.Figure(go.Bar(x=[plots.esc('a "q" $x$')], y=[1]))
        bundle = pio.renderers["tracelab_report"].to_mimebundle(fig.to_dict())
        text = bundle["text/html"]
        # a div and Plotly.newPlot only: no plotly.js from a CDN, no MathJax, no TeX
        assert "Plotly.newPlot" in text and "<script src" not in text
        assert "cdn" not in text.lower() and "mathjax" not in text.lower()
        assert '"typesetMath": false' in text and "&#36;x&#36;" in text
    finally:
        pio.renderers.default = before


def test_waterfall_has_a_bar_per_span_and_a_mark_per_checkpoint(run: tuple) -> None:
    con, _ = run
    cid = analysis.pick_trace(con)
    rows = analysis.waterfall(con, cid)
    fig = plots.waterfall(rows)
    bars = [t for t in fig.data if t.type == "bar"]
    marks = [t for t in fig.data if t.type == "scatter"]
    assert len(bars) == 1 and len(bars[0].y) == rows["system_id"].nunique()
    assert sum(len(t.x) for t in marks) == len(rows)
    fail = next(t for t in marks if t.name == "failure")
    assert len(fail.x) == (rows["status"] == "FAILURE").sum()
    assert fail.marker.color == plots.FAIL_COLOR
    reasons = rows.loc[rows["status"] == "FAILURE", "failure_reason"].dropna()
    for reason in reasons:
        assert any(plots.esc(reason) in h for h in fail.hovertext)
    retried = rows.groupby(["system_id", "checkpoint_id"])["attempt"].max()
    if (retried > 1).any():
        assert any(t.startswith("#") for m in marks for t in m.text)


def test_path_sankey_flows_add_up(run: tuple) -> None:
    con, summary = run
    paths = analysis.path_distribution(con)
    fig = plots.path_sankey(paths)
    sankey = fig.data[0]
    labels = list(sankey.node.label)
    start = labels.index("start")
    out_of_start = sum(
        v for s, v in zip(sankey.link.source, sankey.link.value, strict=True) if s == start
    )
    assert out_of_start == summary["traces"]
    outcome = {labels.index(n) for n in ("SUCCESS", "FAILURE") if n in labels}
    into_outcomes = sum(
        v for t, v in zip(sankey.link.target, sankey.link.value, strict=True) if t in outcome
    )
    assert into_outcomes == summary["traces"]


def test_percentiles_figure_carries_the_numbers(run: tuple) -> None:
    con, _ = run
    pct = analysis.span_percentiles(con)
    fig = plots.percentiles(pct)
    assert [t.name for t in fig.data] == ["p50", "p90", "p95", "p99"]
    assert list(fig.data[0].y) == pytest.approx(pct["p50"].round(1).tolist())


def test_failure_heatmap_sums_to_the_failures(run: tuple) -> None:
    con, _ = run
    counts = analysis.failure_counts(con)
    fig = plots.failure_heatmap(counts)
    z = [v for row in fig.data[0].z for v in row if v is not None]
    assert sum(z) == analysis.overview(con)["failures"]


def test_pareto_and_recovery_and_rate(run: tuple) -> None:
    con, _ = run
    pareto = analysis.reason_pareto(con)
    fig = plots.reason_pareto(pareto)
    assert sum(fig.data[0].y) == pareto["failures"].sum()
    assert fig.data[1].y[-1] == pytest.approx(100.0)
    rec = analysis.retry_recovery(con)
    fig = plots.retry_recovery(rec)
    assert sum(fig.data[0].y) + sum(fig.data[1].y) == rec["failures"].sum()
    rate = analysis.failure_rate_over_time(con)
    fig = plots.failure_rate(rate)
    assert {t.name for t in fig.data} == set(rate["system_id"])


def test_ledger_sankey_starts_with_every_message(run: tuple) -> None:
    con, summary = run
    fig = plots.ledger(analysis.ledger(con))
    sankey = fig.data[0]
    assert sankey.node.label[0] == "messages"
    total = sum(v for s, v in zip(sankey.link.source, sankey.link.value, strict=True) if s == 0)
    assert total == summary["messages"]


def test_conformance_and_critical_path_figures(run: tuple) -> None:
    con, summary = run
    conf = analysis.conformance_summary(con, load_flow(DEFAULT_FLOW))
    fig = plots.conformance(conf)
    assert list(fig.data[0].x) == conf["kind"].tolist()
    share = analysis.critical_path_share(con)
    fig = plots.critical_path_share(share)
    assert sum(fig.data[0].x) == summary["traces"]


@pytest.mark.parametrize(
    "make",
    [
        plots.waterfall,
        plots.path_sankey,
        plots.percentiles,
        plots.failure_heatmap,
        plots.reason_pareto,
        plots.retry_recovery,
        plots.failure_rate,
        plots.ledger,
        plots.conformance,
        plots.critical_path_share,
    ],
)
def test_empty_frames_give_an_explained_empty_figure(make) -> None:
    empty = pd.DataFrame(
        columns=["messages", "category", "item", "system_id", "failures", "traces", "kind"]
    )
    fig = make(empty)
    assert fig.layout.annotations and "no" in fig.layout.annotations[0].text


def test_log_text_is_escaped_in_every_figure(evil_con: duckdb.DuckDBPyConnection) -> None:
    rows = analysis.waterfall(evil_con, "evil-1")
    figs = [
        plots.waterfall(rows),
        plots.reason_pareto(analysis.reason_pareto(evil_con)),
        plots.failure_heatmap(analysis.failure_counts(evil_con)),
    ]
    for fig in figs:
        text = json.dumps(fig.to_plotly_json(), default=str)
        assert "<img" not in text and "<script" not in text
    wf = json.dumps(figs[0].to_plotly_json(), default=str)
    assert "&lt;img src=x onerror=alert(1)&gt;" in wf
    assert "&lt;script&gt;" in wf
    assert "<script>alert" not in _html_of(figs[1])


def test_tables_escape_log_text(evil_con: duckdb.DuckDBPyConnection) -> None:
    rows = analysis.waterfall(evil_con, "evil-1")
    html = report.table_html(rows)
    assert "<img" not in html and "<script" not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    # log text is never typeset as math by a notebook's MathJax
    assert 'class="tracelab tex2jax_ignore"' in html


def test_trace_explorer_filters_and_shows_escaped_events(
    run: tuple, evil_con: duckdb.DuckDBPyConnection
) -> None:
    con, _ = run
    explorer = TraceExplorer(con, limit=500)
    everything = len(explorer.results.options)
    explorer.outcome.value = "FAILURE"
    failed = explorer.refresh()
    assert (failed["outcome"] == "FAILURE").all()
    assert len(explorer.results.options) == len(failed) < everything
    assert explorer.criteria() == {"limit": 500, "outcome": "FAILURE"}
    evil = TraceExplorer(evil_con)
    evil.results.value = "evil-1"  # picking a trace draws it
    assert "&lt;img src=x onerror=alert(1)&gt;" in evil.events.value
    assert "<img" not in evil.events.value
    with pytest.raises(ValueError):
        TraceExplorer(con, limit=0)


def test_report_table_html_writes_a_caption_escaped(tmp_path: Path) -> None:
    html = report.table_html(pd.DataFrame({"a": [1.5, None]}), caption="<b>x</b>")
    assert "&lt;b&gt;x&lt;/b&gt;" in html and "<td>1.5</td>" in html


def test_simulation_summary_has_a_panel_per_count(run: tuple) -> None:
    _, summary = run
    fig = plots.simulation_summary(summary)
    paths, faults, stopped = fig.data
    assert [t.type for t in fig.data] == ["bar"] * 3
    assert list(paths.x) == [f"path {n}" for n in summary["paths"]]
    assert list(paths.y) == list(summary["paths"].values())
    assert sum(paths.y) + sum(stopped.y) >= 1
    assert list(faults.x) == list(summary["faults"]) and sum(faults.y) > 0
    assert list(faults.y) == list(summary["faults"].values())
    assert dict(zip(stopped.x, stopped.y, strict=True)) == summary["stopped_in"]
    assert list(stopped.marker.color) == [plots.system_color(s) for s in summary["stopped_in"]]
    # three panels side by side, each titled with its total
    assert {t.xaxis for t in fig.data} == {"x", "x2", "x3"}
    heads = [a.text for a in fig.layout.annotations]
    assert heads[1] == f"faults injected ({sum(summary['faults'].values())})"
    assert f"{summary['messages']} messages of {summary['traces']} traces" in fig.layout.title.text


def test_simulation_summary_escapes_names_and_explains_an_empty_summary(run: tuple) -> None:
    _, summary = run
    evil = {**summary, "paths": {EVIL: 3}, "stopped_in": {EVIL: 1}}
    fig = plots.simulation_summary(evil, title=EVIL)
    text = json.dumps(fig.to_plotly_json(), default=str)
    assert "<img" not in text
    assert fig.data[0].x == ("path &lt;img src=x onerror=alert(1)&gt;",)
    assert fig.data[2].x == ("&lt;img src=x onerror=alert(1)&gt;",)
    assert "<img" not in _html_of(fig)
    empty = plots.simulation_summary({"paths": {}, "faults": {}, "stopped_in": {}})
    assert empty.layout.annotations[0].text == "no data"


@pytest.mark.parametrize("with_stored", [True, False])
def test_partition_lag_bars_per_partition(with_stored: bool) -> None:
    # the frame consumer_lag returns: nullable offsets, "stored" only when a database is given
    lag = pd.DataFrame(
        {
            "partition": [0, 1, 2],
            "end_offset": [120, 80, 0],
            "committed": pd.array([100, None, None], dtype="Int64"),
            "stored": pd.array([110, 80, None], dtype="Int64"),
        }
    )
    if not with_stored:
        lag = lag.drop(columns="stored")
    base = lag["stored"] if with_stored else lag["committed"]
    lag["lag"] = lag["end_offset"] - base.fillna(0).astype(int)
    fig = plots.partition_lag(lag)
    names = [t.name for t in fig.data]
    expected = ["end offset", "committed (Kafka group)", "stored (SQLite)", "lag"]
    assert names == (expected if with_stored else [n for n in expected if "stored" not in n])
    bars = {t.name: t for t in fig.data}
    assert list(bars["end offset"].x) == ["0", "1", "2"]
    assert list(bars["end offset"].y) == [120, 80, 0]
    assert list(bars["committed (Kafka group)"].y) == [100, None, None]
    if with_stored:
        assert list(bars["stored (SQLite)"].y) == [110, 80, None]
        assert list(bars["lag"].y) == [10, 0, 0]
    else:
        assert list(bars["lag"].y) == [20, 80, 0]
    assert fig.layout.barmode == "group"
    assert f"(total lag {int(lag['lag'].sum())})" in fig.layout.title.text
    assert plots.partition_lag(lag.iloc[:0]).layout.annotations[0].text == "no data"
    assert "&lt;img" in plots.partition_lag(lag, title=EVIL).layout.title.text


@pytest.mark.kafka
def test_partition_lag_of_a_real_topic(kafka_bootstrap: str, produce_topic, tmp_path: Path) -> None:
    from tracelab.kafka import consume, consumer_lag

    produced = produce_topic(40, seed=11, partitions=3)
    db = tmp_path / "lag.db"
    consume(kafka_bootstrap, produced.topic, "g-lag", db, until_idle=0.5, progress=False)
    fig = plots.partition_lag(consumer_lag(kafka_bootstrap, produced.topic, "g-lag", db))
    bars = {t.name: t for t in fig.data}
    assert list(bars["end offset"].x) == ["0", "1", "2"]
    assert sum(bars["end offset"].y) == produced.messages
    assert list(bars["stored (SQLite)"].y) == list(bars["end offset"].y)
    assert list(bars["lag"].y) == [0, 0, 0]
    sent = plots.simulation_summary(produced.summary)
    assert sum(sent.data[1].y) == sum(produced.summary["faults"].values()) > 0


def test_setup_notebook_in_a_jupyterlab_kernel_renders_the_mimetype_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """JupyterLab draws plotly's mimetype itself; a report script there could not run."""
    before = pio.renderers.default
    monkeypatch.setenv("JPY_SESSION_NAME", "notebooks/05_live.ipynb")
    try:
        assert plots.setup_notebook() == "plotly_mimetype"
        assert pio.renderers.default == "plotly_mimetype"
    finally:
        pio.renderers.default = before
