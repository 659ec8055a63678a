"""Plotly figures for the analysis frames of ``tracelab.analysis``.

Every label that comes from log text (system and checkpoint names, failure reasons, correlation
ids) is HTML-escaped before plotly sees it: plotly renders a subset of HTML in hover text, tick
labels and node labels, and log text is data, never markup.

Example::

    from tracelab import analysis
from tracelab.analysis import plots
    plots.waterfall(analysis.waterfall(con, "abc-123")).show()
"""

from __future__ import annotations

import html
import os
import zlib
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio
from plotly.io._base_renderers import MimetypeRenderer
from plotly.subplots import make_subplots

__all__ = [
    "critical_path_share",
    "empty_figure",
    "conformance",
    "esc",
    "failure_heatmap",
    "failure_rate",
    "ledger",
    "partition_lag",
    "path_sankey",
    "percentiles",
    "reason_pareto",
    "retry_recovery",
    "setup_notebook",
    "simulation_summary",
    "waterfall",
]

OK_COLOR = "#2e7d32"
FAIL_COLOR = "#c62828"
#: Colours for systems: any number, any names; a system keeps its colour in every figure.
SYSTEM_PALETTE = (
    "#5c6bc0", "#8d6e63", "#26a69a", "#ffa726", "#ab47bc", "#42a5f5", "#9ccc65", "#ec407a",
    "#78909c", "#26c6da", "#d4e157", "#7e57c2", "#ff7043", "#66bb6a", "#29b6f6", "#bdbdbd",
)  # fmt: skip


def system_color(name: object) -> str:
    """The colour of a system in every figure: chosen from :data:`SYSTEM_PALETTE` by a stable
    hash of its name (the same in every run and notebook).

    Example: ``system_color("inventory")`` -> ``'#...'``
    """
    return SYSTEM_PALETTE[zlib.crc32(str(name).encode("utf-8")) % len(SYSTEM_PALETTE)]


_TEMPLATE = "plotly_white"


class _ReportHtml(MimetypeRenderer):
    """A figure's ``text/html`` for the exported report: a div and one ``Plotly.newPlot``.

    It loads nothing (no plotly.js from a CDN, no MathJax): :func:`tracelab.reports.run.export_html`
    embeds plotly.js once per page, and JupyterLab draws the figure from its plotly mimetype.
    ``typesetMath`` is off, so a ``$...$`` in log text is never typeset as math.
    """

    def to_mimebundle(self, fig_dict: Any) -> dict[str, str]:
        html_text = pio.to_html(
            fig_dict,
            config={"typesetMath": False},
            include_plotlyjs=False,
            include_mathjax=False,
            full_html=False,
            default_width="100%",
            default_height=525,
            validate=False,
        )
        return {"text/html": html_text}


pio.renderers["tracelab_report"] = _ReportHtml()
#: The renderer :func:`setup_notebook` sets: plotly's mimetype (JupyterLab, VS Code) plus
#: the report's HTML.
RENDERER = "plotly_mimetype+tracelab_report"


def setup_notebook(offline: bool = True) -> str:
    """Make figures render in the notebook *and* in nbconvert's HTML export; returns the renderer.

    Notebooks carry no plotly.js and no script from a CDN (they open offline); the HTML report
    of :func:`tracelab.reports.run.export_html` embeds plotly.js once. ``offline`` is kept for older
    parameter files and no longer changes anything. In a JupyterLab kernel only the mimetype is
    rendered (JupyterLab draws it; the report HTML is for papermill runs and exports).

    Example: ``setup_notebook()`` -> ``'plotly_mimetype+tracelab_report'``
    """
    renderer = RENDERER
    if os.environ.get("JPY_SESSION_NAME"):
        # a kernel of a Jupyter server (JupyterLab): the frontend draws the plotly mimetype
        # itself; the report's HTML would only add a script the page cannot run there
        renderer = "plotly_mimetype"
    pio.renderers.default = renderer
    pio.templates.default = _TEMPLATE
    return renderer


def esc(value: Any) -> str:
    """HTML-escape one value for plotly labels (None and NaN become an empty string).

    Quotes stay quotes (plotly.js would show ``&quot;`` literally) and ``$`` becomes ``&#36;``
    (plotly.js would typeset ``$...$`` as TeX where MathJax is on the page).

    Example: ``esc('<b>"x"</b>')`` -> ``'&lt;b&gt;"x"&lt;/b&gt;'``
    """
    if value is None or (isinstance(value, float) and value != value):
        return ""
    if value is pd.NA or value is pd.NaT:
        return ""
    # plotly.js decodes &amp; &lt; &gt; and numeric entities, not &quot; or &#x27;: quotes stay
    # as they are (a label is not an attribute); '$' becomes &#36; so no label is ever TeX.
    return html.escape(str(value), quote=False).replace("$", "&#36;")


def _esc_all(values: Iterable[Any]) -> list[str]:
    return [esc(v) for v in values]


def empty_figure(title: str, message: str = "no data") -> go.Figure:
    """A figure that says there is nothing to draw (title and message escaped).

    Example: ``empty_figure("failure rate", "no failures")``
    """
    fig = go.Figure()
    fig.update_layout(
        title=esc(title),
        annotations=[
            dict(text=esc(message), showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper")
        ],
        xaxis=dict(visible=False),
        yaxis=dict(visible=False),
        template=_TEMPLATE,
    )
    return fig


def waterfall(rows: pd.DataFrame, title: str | None = None) -> go.Figure:
    """Waterfall of one trace from ``analysis.waterfall``: a bar per span (system) over time,
    checkpoints as marks, failures red with their reason on hover, retries as numbered attempts.

    Example: ``waterfall(analysis.waterfall(con, "abc-123"))``
    """
    if rows.empty:
        return empty_figure(title or "trace waterfall")
    cid = rows["correlation_id"].iloc[0]
    t0 = rows["ts"].min()
    span = (
        rows.groupby(["system_id", "system_rank"], as_index=False)
        .agg(
            start=("span_start", "min"),
            end=("span_end", "max"),
            events=("ts", "size"),
            failures=("status", lambda s: int((s == "FAILURE").sum())),
        )
        .sort_values(["system_rank", "start"])
    )
    span["start_ms"] = (span["start"] - t0).dt.total_seconds() * 1000.0
    span["len_ms"] = (span["end"] - span["start"]).dt.total_seconds() * 1000.0
    order = _esc_all(span["system_id"])
    fig = go.Figure()
    fig.add_trace(
        go.Bar(
            name="span",
            orientation="h",
            y=order,
            x=[max(v, 1.0) for v in span["len_ms"]],
            base=span["start_ms"].tolist(),
            marker=dict(color=[system_color(s) for s in span["system_id"]], opacity=0.35),
            customdata=[
                [f"{v:.0f}", n, f]
                for v, n, f in zip(span["len_ms"], span["events"], span["failures"], strict=True)
            ],
            hovertemplate="%{y}: span %{customdata[0]} ms, %{customdata[1]} checkpoints, "
            "%{customdata[2]} failures<extra></extra>",
        )
    )
    attempts = rows.groupby(["system_id", "checkpoint_id"])["attempt"].transform("max")
    for status, color, symbol in (("SUCCESS", OK_COLOR, "circle"), ("FAILURE", FAIL_COLOR, "x")):
        sel = rows["status"] == status
        part = rows[sel]
        if part.empty:
            continue
        hover = [
            f"<b>{esc(cp)}</b> ({esc(st)})<br>{esc(sy)} at +{off:.0f} ms<br>"
            f"attempt {a} of {n}"
            + (f"<br>reason: {esc(r)}" if st == "FAILURE" else "")
            + (f"<br>join: {esc(j)}" if st == "FAILURE" and isinstance(j, str) else "")
            for cp, st, sy, off, a, n, r, j in zip(
                part["checkpoint_id"],
                part["status"],
                part["system_id"],
                part["offset_ms"],
                part["attempt"],
                attempts[sel],
                part["failure_reason"].fillna("(unknown)"),
                part["join_state"],
                strict=True,
            )
        ]
        fig.add_trace(
            go.Scatter(
                name=status.lower(),
                mode="markers+text",
                y=_esc_all(part["system_id"]),
                x=part["offset_ms"].astype(float).tolist(),
                text=[
                    f"#{a}" if n > 1 else ""
                    for a, n in zip(part["attempt"], attempts[sel], strict=True)
                ],
                textposition="top center",
                marker=dict(color=color, symbol=symbol, size=10, line=dict(width=1, color="white")),
                hovertext=hover,
                hoverinfo="text",
            )
        )
    fig.update_layout(
        title=title or f"trace {esc(cid)}",
        barmode="overlay",
        xaxis_title="ms since trace start",
        yaxis=dict(categoryorder="array", categoryarray=list(reversed(order))),
        legend=dict(orientation="h", y=-0.2),
        height=max(260, 90 * len(order) + 120),
        template=_TEMPLATE,
    )
    return fig


def path_sankey(paths: pd.DataFrame, title: str = "paths taken") -> go.Figure:
    """Sankey of the paths taken (``analysis.path_distribution``): start -> systems in path order
    -> outcome.

    Example: ``path_sankey(analysis.path_distribution(con))``
    """
    if paths.empty:
        return empty_figure(title)
    links: Counter[tuple[str, str]] = Counter()
    for path, traces, failed in zip(paths["path"], paths["traces"], paths["failed"], strict=True):
        steps = ["start"] + [f"{i + 1}. {s}" for i, s in enumerate(str(path).split(">"))]
        for a, b in zip(steps, steps[1:], strict=False):
            links[(a, b)] += int(traces)
        if int(traces) - int(failed):
            links[(steps[-1], "SUCCESS")] += int(traces) - int(failed)
        if int(failed):
            links[(steps[-1], "FAILURE")] += int(failed)
    nodes: list[str] = []
    for a, b in links:
        for n in (a, b):
            if n not in nodes:
                nodes.append(n)
    index = {n: i for i, n in enumerate(nodes)}

    def color(n: str) -> str:
        if n == "SUCCESS":
            return OK_COLOR
        if n == "FAILURE":
            return FAIL_COLOR
        return system_color(n.split(". ", 1)[-1])

    fig = go.Figure(
        go.Sankey(
            arrangement="snap",
            node=dict(label=_esc_all(nodes), color=[color(n) for n in nodes], pad=18),
            link=dict(
                source=[index[a] for a, _ in links],
                target=[index[b] for _, b in links],
                value=list(links.values()),
            ),
        )
    )
    fig.update_layout(title=esc(title), template=_TEMPLATE, height=420)
    return fig


def percentiles(df: pd.DataFrame, title: str = "span duration percentiles (ms)") -> go.Figure:
    """Grouped bars of span duration percentiles per system (``analysis.span_percentiles``).

    Example: ``percentiles(analysis.span_percentiles(con))``
    """
    if df.empty:
        return empty_figure(title)
    cols = [c for c in df.columns if c.startswith("p") and c[1:].replace(".", "").isdigit()]
    fig = go.Figure()
    for col in cols:
        fig.add_trace(
            go.Bar(
                name=col,
                x=_esc_all(df["system_id"]),
                y=df[col].astype(float).round(1).tolist(),
                customdata=df["spans"].tolist(),
                hovertemplate="%{x} " + col + ": %{y} ms (%{customdata} spans)<extra></extra>",
            )
        )
    fig.update_layout(title=esc(title), barmode="group", yaxis_title="ms", template=_TEMPLATE)
    return fig


def critical_path_share(df: pd.DataFrame, title: str = "critical paths") -> go.Figure:
    """Horizontal bars: how many traces had each critical path (``analysis.critical_path_share``).

    Example: ``critical_path_share(analysis.critical_path_share(con))``
    """
    if df.empty:
        return empty_figure(title)
    fig = go.Figure(
        go.Bar(
            orientation="h",
            y=_esc_all(df["critical_path"]),
            x=df["traces"].tolist(),
            customdata=(df["share"] * 100).round(1).tolist(),
            hovertemplate="%{y}: %{x} traces (%{customdata}%)<extra></extra>",
        )
    )
    fig.update_layout(
        title=esc(title), yaxis=dict(autorange="reversed"), template=_TEMPLATE, xaxis_title="traces"
    )
    return fig


def failure_heatmap(df: pd.DataFrame, title: str = "failures by system x checkpoint") -> go.Figure:
    """Heatmap of failures per system (rows) and checkpoint (columns) (``failure_counts``).

    Example: ``failure_heatmap(analysis.failure_counts(con))``
    """
    if df.empty:
        return empty_figure(title)
    systems = list(dict.fromkeys(df["system_id"]))
    checkpoints = list(dict.fromkeys(df["checkpoint_id"]))
    z: list[list[float | None]] = [[None] * len(checkpoints) for _ in systems]
    hover: list[list[str]] = [[""] * len(checkpoints) for _ in systems]
    for s, c, n, f, r in zip(
        df["system_id"], df["checkpoint_id"], df["events"], df["failures"], df["rate"], strict=True
    ):
        i, j = systems.index(s), checkpoints.index(c)
        z[i][j] = int(f)
        hover[i][j] = f"{esc(s)} / {esc(c)}<br>{int(f)} failures of {int(n)} ({r:.1%})"
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=_esc_all(checkpoints),
            y=_esc_all(systems),
            text=hover,
            hoverinfo="text",
            colorscale="Reds",
            colorbar=dict(title="failures"),
        )
    )
    fig.update_layout(
        title=esc(title),
        template=_TEMPLATE,
        xaxis=dict(tickangle=-40),
        height=max(380, 36 * len(systems) + 200),  # any number of systems stays readable
    )
    return fig


def reason_pareto(df: pd.DataFrame, title: str = "failure reasons (Pareto)") -> go.Figure:
    """Bars of failures per reason with the cumulative share line (``analysis.reason_pareto``).

    Example: ``reason_pareto(analysis.reason_pareto(con))``
    """
    if df.empty:
        return empty_figure(title, "no failures")
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    labels = _esc_all(df["failure_reason"])
    fig.add_trace(
        go.Bar(
            name="failures",
            x=labels,
            y=df["failures"].tolist(),
            customdata=_esc_all(df["system_id"]),
            hovertemplate="%{x} (%{customdata}): %{y} failures<extra></extra>",
            marker_color=FAIL_COLOR,
        ),
        secondary_y=False,
    )
    fig.add_trace(
        go.Scatter(
            name="cumulative share",
            x=labels,
            y=(df["cumulative_share"] * 100).round(2).tolist(),
            mode="lines+markers",
            hovertemplate="%{x}: %{y}% cumulative<extra></extra>",
            line_color="#37474f",
        ),
        secondary_y=True,
    )
    fig.update_yaxes(title_text="failures", secondary_y=False)
    fig.update_yaxes(title_text="cumulative %", range=[0, 105], secondary_y=True)
    fig.update_layout(title=esc(title), template=_TEMPLATE, xaxis=dict(tickangle=-40))
    return fig


def retry_recovery(df: pd.DataFrame, title: str = "retry recovery") -> go.Figure:
    """Stacked bars per system: failures recovered by a retry vs unrecovered.

    Example: ``retry_recovery(analysis.retry_recovery(con))``
    """
    if df.empty:
        return empty_figure(title, "no failures")
    per = df.groupby("system_id", as_index=False)[["recovered", "unrecovered"]].sum()
    fig = go.Figure()
    for col, color in (("recovered", OK_COLOR), ("unrecovered", FAIL_COLOR)):
        fig.add_trace(
            go.Bar(
                name=col,
                x=_esc_all(per["system_id"]),
                y=per[col].tolist(),
                marker_color=color,
                hovertemplate="%{x}: %{y} " + col + "<extra></extra>",
            )
        )
    fig.update_layout(title=esc(title), barmode="stack", yaxis_title="failures", template=_TEMPLATE)
    return fig


def failure_rate(df: pd.DataFrame, title: str = "failure rate over time") -> go.Figure:
    """Failure rate per time bucket, one line per system (``analysis.failure_rate_over_time``).

    Example: ``failure_rate(analysis.failure_rate_over_time(con))``
    """
    if df.empty:
        return empty_figure(title)
    fig = go.Figure()
    for system, part in df.groupby("system_id", sort=False):
        fig.add_trace(
            go.Scatter(
                name=esc(system),
                x=part["bucket"].tolist(),
                y=(part["rate"] * 100).round(2).tolist(),
                customdata=[
                    [int(f), int(n)] for f, n in zip(part["failures"], part["events"], strict=True)
                ],
                mode="lines+markers",
                line_color=system_color(system),
                hovertemplate=esc(system)
                + " %{x}: %{y}% (%{customdata[0]} of %{customdata[1]})<extra></extra>",
            )
        )
    fig.update_layout(title=esc(title), yaxis_title="failure rate %", template=_TEMPLATE)
    return fig


def conformance(df: pd.DataFrame, title: str = "flow conformance (traces)") -> go.Figure:
    """Bars of traces per kind of deviation (``analysis.conformance_summary``).

    Example: ``conformance(analysis.conformance_summary(con, flow))``
    """
    if df.empty:
        return empty_figure(title)
    colors = [OK_COLOR if k == "conforming" else FAIL_COLOR for k in df["kind"]]
    fig = go.Figure(
        go.Bar(
            x=_esc_all(df["kind"]),
            y=df["traces"].tolist(),
            marker_color=colors,
            hovertemplate="%{x}: %{y} traces<extra></extra>",
        )
    )
    fig.update_layout(title=esc(title), yaxis_title="traces", template=_TEMPLATE)
    return fig


def ledger(df: pd.DataFrame, title: str = "where every message went") -> go.Figure:
    """Sankey of the join-completeness ledger (``analysis.ledger``): messages -> category ->
    item (quarantine by reason).

    Example: ``ledger(analysis.ledger(con))``
    """
    df = df[df["messages"] > 0]
    if df.empty:
        return empty_figure(title)
    nodes = ["messages"]
    src: list[int] = []
    dst: list[int] = []
    val: list[int] = []

    def node(name: str) -> int:
        if name not in nodes:
            nodes.append(name)
        return nodes.index(name)

    for category, part in df.groupby("category", sort=False):
        c = node(str(category))
        src.append(0)
        dst.append(c)
        val.append(int(part["messages"].sum()))
        if not (len(part) == 1 and part["item"].iloc[0] == category):
            for item, n in zip(part["item"], part["messages"], strict=True):
                src.append(c)
                dst.append(node(f"{category}: {item}"))
                val.append(int(n))
    bad = ("quarantine", "detail: orphan", "event: awaiting_detail")
    colors = [FAIL_COLOR if n.startswith(bad) else "#78909c" for n in nodes]
    fig = go.Figure(
        go.Sankey(
            node=dict(label=[f"{esc(n)}" for n in nodes], color=colors, pad=14),
            link=dict(source=src, target=dst, value=val),
        )
    )
    fig.update_layout(title=esc(title), template=_TEMPLATE, height=420)
    return fig


FAULT_COLOR = "#ef6c00"
_SENT_PANELS = (
    ("paths", "paths taken", "traces"),
    ("faults", "faults injected", "messages"),
    ("stopped_in", "traces stopped (unrecovered failure)", "traces"),
)


def simulation_summary(summary: Mapping[str, Any], title: str = "what was sent") -> go.Figure:
    """Three bar panels of a simulation run (``SimulationResult.summary``): traces per path taken,
    faults injected per kind, traces stopped by an unrecovered failure per system.

    Example: ``simulation_summary(simulate(flow, 100, 1).summary)``
    """
    counts = [dict(summary.get(key) or {}) for key, _, _ in _SENT_PANELS]
    if not any(counts):
        return empty_figure(title)
    titles = [
        f"{esc(label)} ({sum(int(v) for v in c.values())})"
        for (_, label, _), c in zip(_SENT_PANELS, counts, strict=True)
    ]
    fig = make_subplots(rows=1, cols=3, subplot_titles=titles, horizontal_spacing=0.08)
    for col, ((key, _, unit), c) in enumerate(zip(_SENT_PANELS, counts, strict=True), start=1):
        names = list(c)
        if key == "paths":
            labels = [f"path {esc(n)}" for n in names]
            colors: str | list[str] = "#546e7a"
        elif key == "faults":
            labels = _esc_all(names)
            colors = FAULT_COLOR
        else:
            labels = _esc_all(names)
            colors = [system_color(n) for n in names]
        fig.add_trace(
            go.Bar(
                name=key,
                x=labels,
                y=[int(c[n]) for n in names],
                marker_color=colors,
                text=[int(c[n]) for n in names],
                textposition="outside",
                cliponaxis=False,
                showlegend=False,
                hovertemplate="%{x}: %{y} " + unit + "<extra></extra>",
            ),
            row=1,
            col=col,
        )
        fig.update_yaxes(title_text=unit, rangemode="tozero", row=1, col=col)
    traces, messages = summary.get("traces"), summary.get("messages")
    head = esc(title)
    if traces is not None and messages is not None:
        head += f": {int(messages)} messages of {int(traces)} traces"
    fig.update_layout(title=head, template=_TEMPLATE, height=380, xaxis3=dict(tickangle=-30))
    return fig


_LAG_BARS = (
    ("end_offset", "end offset", "#78909c"),
    ("committed", "committed (Kafka group)", "#5c6bc0"),
    ("stored", "stored (SQLite)", OK_COLOR),
    ("lag", "lag", FAIL_COLOR),
)


def partition_lag(lag: pd.DataFrame, title: str = "consumer lag per partition") -> go.Figure:
    """Grouped bars per partition of ``kafka_io.consumer_lag``: end offset, the group's committed
    offset, the offset stored in SQLite (when the frame has it) and the lag; a missing offset
    (nothing committed yet) draws no bar.

    Example: ``partition_lag(consumer_lag("127.0.0.1:9092", "raw-logs", "tracelab", db))``
    """
    if lag.empty:
        return empty_figure(title)
    parts = _esc_all(lag["partition"])
    fig = go.Figure()
    for col, label, color in _LAG_BARS:
        if col not in lag:
            continue
        values = [None if pd.isna(v) else int(v) for v in lag[col]]
        fig.add_trace(
            go.Bar(
                name=label,
                x=parts,
                y=values,
                marker_color=color,
                text=values if col == "lag" else None,
                textposition="outside",
                cliponaxis=False,
                hovertemplate="partition %{x}: " + label + " %{y}<extra></extra>",
            )
        )
    total = int(lag["lag"].sum())
    fig.update_layout(
        title=f"{esc(title)} (total lag {total})",
        barmode="group",
        xaxis=dict(title="partition", type="category"),
        yaxis=dict(title="offset / messages", rangemode="tozero"),
        legend=dict(orientation="h", y=-0.2),
        template=_TEMPLATE,
        height=380,
    )
    return fig
