"""Plotly figures for comparing and explaining: cohort comparison, trace/cohort diffs, variants,
the directly-follows graph, temporal deviations and run comparison.

Log text reaches plotly through :func:`label`, which escapes with :func:`plots.esc
<tracelab.analysis.plots.esc>`: ``<``, ``>`` and ``&`` are escaped (plotly renders a subset of
HTML in labels), quotes are left as they are because plotly.js does not decode ``&quot;`` (it
would show literally), and ``$`` becomes ``&#36;`` so no label is ever typeset as TeX.

Example::

    from tracelab.analysis import compare, explain_plots
    explain_plots.cohort_bars(compare.compare_cohorts(con, {"outcome": "FAILURE"})).show()
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from tracelab.analysis.plots import FAIL_COLOR, OK_COLOR, empty_figure, esc, system_color

__all__ = [
    "A_COLOR",
    "B_COLOR",
    "cohort_bars",
    "deviation_bars",
    "dfg",
    "diff",
    "label",
    "side_by_side",
    "variant_bars",
]

_TEMPLATE = "plotly_white"
A_COLOR = "#546e7a"
B_COLOR = "#ef6c00"
_OTHER_COLOR = "#90a4ae"


def label(value: Any, limit: int | None = None) -> str:
    """Log text made safe for a plotly label by :func:`tracelab.analysis.plots.esc` (``<``,
    ``>`` and ``&`` escaped, quotes kept, ``$`` as ``&#36;``); None and NaN become ``""``;
    ``limit`` shortens.

    Example: ``label('Warehouse "x" <b> $5')`` -> ``'Warehouse "x" &lt;b&gt; &#36;5'``
    """
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return ""
    text = str(value)
    if limit is not None and len(text) > limit:
        text = text[: max(limit - 1, 1)] + "…"
    return esc(text)


def cohort_bars(
    compared: pd.DataFrame,
    dimensions: int = 4,
    values: int = 5,
    names: tuple[str, str] = ("selection", "baseline"),
    title: str = "what sets the selection apart",
) -> go.Figure:
    """Side-by-side bars of the top ``dimensions`` of ``compare.compare_cohorts``: per dimension
    its ``values`` most different values, the share in the selection next to the baseline's.

    Example: ``cohort_bars(compare.compare_cohorts(con, {"outcome": "FAILURE"}))``
    """
    if compared.empty:
        return empty_figure(title)
    dims = list(dict.fromkeys(compared["dimension"]))[: max(int(dimensions), 1)]
    titles = []
    for d in dims:
        score = float(compared.loc[compared["dimension"] == d, "score"].iloc[0])
        titles.append(f"#{dims.index(d) + 1} {label(d)} (largest difference {score:.0%})")
    fig = make_subplots(rows=len(dims), cols=1, subplot_titles=titles,
                        vertical_spacing=0.3 / len(dims))  # fmt: skip
    for row, d in enumerate(dims, start=1):
        part = compared[compared["dimension"] == d].head(values)
        ys = [label(v, 60) for v in part["value"]]
        for (col, n_col), name, color in zip(
            (("selection_share", "selection_traces"), ("baseline_share", "baseline_traces")),
            names,
            (FAIL_COLOR, A_COLOR),
            strict=True,
        ):
            fig.add_trace(
                go.Bar(
                    name=label(name),
                    orientation="h",
                    y=ys,
                    x=(part[col] * 100).round(2).tolist(),
                    customdata=part[n_col].tolist(),
                    marker_color=color,
                    legendgroup=name,
                    showlegend=row == 1,
                    hovertemplate="%{y}: %{x}% of " + label(name) + " (%{customdata} traces)"
                    "<extra></extra>",
                ),
                row=row,
                col=1,
            )
        fig.update_yaxes(autorange="reversed", row=row, col=1)
        fig.update_xaxes(title_text="% of traces", row=row, col=1)
    fig.update_layout(
        title=label(title),
        barmode="group",
        template=_TEMPLATE,
        height=250 * len(dims) + 120,
        legend=dict(orientation="h", y=1.02 + 0.1 / len(dims), x=1, xanchor="right"),
        margin=dict(l=260),
    )
    return fig


def _row_label(level: str, system: str, checkpoint: str) -> str:
    if level == "trace":
        return "<b>whole trace</b>"
    if level == "system":
        return f"<b>{label(system)}</b>"
    return f"{label(system)} / {label(checkpoint, 40)}"


def diff(
    rows: pd.DataFrame,
    names: tuple[str, str] = ("a", "b"),
    title: str = "a vs b",
    checkpoints: bool = True,
) -> go.Figure:
    """Two traces or cohorts at a glance (``compare.diff_traces`` / ``diff_cohorts``): left,
    aligned waterfalls (each side's bar from its start offset, for the span or the step to the
    checkpoint); right, the change b - a as a diverging bar (red: b slower, green: b faster).
    Rows seen on one side only are marked.

    Example: ``diff(compare.diff_traces(con, a, b), names=(a[:8], b[:8]))``
    """
    if rows.empty:
        return empty_figure(title)
    rows = rows if checkpoints else rows[rows["level"] != "checkpoint"]
    ys = [
        _row_label(lv, s, c) + ("" if side == "both" else f" ({label(side)})")
        for lv, s, c, side in zip(
            rows["level"], rows["system_id"], rows["checkpoint_id"], rows["side"], strict=True
        )
    ]
    fig = make_subplots(
        rows=1, cols=2, shared_yaxes=True, column_widths=[0.62, 0.38], horizontal_spacing=0.02,
        subplot_titles=("time from the start (bar = span, or the step to the checkpoint)",
                        f"change {label(names[1])} - {label(names[0])} (ms)"),
    )  # fmt: skip
    for side, name, color, offset in (("a", names[0], A_COLOR, 0), ("b", names[1], B_COLOR, 1)):
        start = rows[f"{side}_start_ms"].astype(float)
        length = rows[f"{side}_ms"].astype(float)
        base = [None if math.isnan(v) else v for v in start]
        fig.add_trace(
            go.Bar(
                name=label(name),
                orientation="h",
                y=ys,
                base=base,
                x=[None if math.isnan(v) else max(v, 0.5) for v in length],
                marker_color=color,
                offsetgroup=str(offset),
                customdata=[
                    [None if math.isnan(v) else round(v, 1), r]
                    for v, r in zip(length, rows[f"{side}_retries"].astype(float), strict=True)
                ],  # fmt: skip
                hovertemplate="%{y}<br>" + label(name) + ": %{customdata[0]} ms, "
                "retries %{customdata[1]:.2f}<extra></extra>",
            ),
            row=1,
            col=1,
        )
    change = rows["change_ms"].astype(float)
    fig.add_trace(
        go.Bar(
            name="change",
            orientation="h",
            y=ys,
            x=[0.0 if math.isnan(v) else v for v in change],
            marker_color=[
                _OTHER_COLOR if math.isnan(v) else (FAIL_COLOR if v > 0 else OK_COLOR)
                for v in change
            ],
            text=["one side only" if math.isnan(v) else f"{v:+.0f}" for v in change],
            textposition="outside",
            cliponaxis=False,
            showlegend=False,
            hovertemplate="%{y}: %{x:+.1f} ms<extra></extra>",
        ),
        row=1,
        col=2,
    )
    fig.update_yaxes(autorange="reversed", row=1, col=1)
    fig.update_xaxes(title_text="ms", row=1, col=1)
    fig.update_layout(
        title=label(title),
        barmode="group",
        template=_TEMPLATE,
        height=max(320, 26 * len(rows) + 160),
        legend=dict(orientation="h", y=-0.08),
        margin=dict(l=280),
    )
    return fig


def variant_bars(table: pd.DataFrame, title: str = "variants (checkpoint sequences)") -> go.Figure:
    """Horizontal bars of ``variants.variants``: traces per variant, split into succeeded and
    failed; hover shows the whole sequence.

    Example: ``variant_bars(variants.variants(con, top=10))``
    """
    if table.empty:
        return empty_figure(title)
    ys = [f"#{r}" if v != "(other)" else "(other)" for r, v in zip(table["rank"], table["variant"],
                                                                    strict=True)]  # fmt: skip
    seq = [label(v, 400).replace(" &gt; ", " → ") for v in table["variant"]]
    fig = go.Figure()
    ok = (table["traces"] - table["failed"]).tolist()
    for name, vals, color in (("succeeded", ok, OK_COLOR),
                              ("failed", table["failed"].tolist(), FAIL_COLOR)):  # fmt: skip
        fig.add_trace(
            go.Bar(
                name=name,
                orientation="h",
                y=ys,
                x=vals,
                marker_color=color,
                customdata=[[s, f"{sh:.1%}"] for s, sh in zip(seq, table["share"], strict=True)],
                hovertemplate="%{y} (%{customdata[1]} of traces): %{x} "
                + name
                + "<br>%{customdata[0]}<extra></extra>",
            )
        )
    fig.update_layout(
        title=label(title),
        barmode="stack",
        template=_TEMPLATE,
        yaxis=dict(autorange="reversed", title="variant"),
        xaxis_title="traces",
        height=max(300, 28 * len(table) + 140),
        legend=dict(orientation="h", y=-0.15),
    )
    return fig


def _depths(edges: pd.DataFrame) -> dict[tuple[str, str], int]:
    """Column of each node: the longest path from START over the graph without its cycles
    (retries and rare back edges are ignored by a depth-first search)."""
    out_edges: dict[tuple[str, str], list[tuple[str, str]]] = defaultdict(list)
    for ss, s, ds, d in zip(
        edges["src_system"], edges["src"], edges["dst_system"], edges["dst"], strict=True
    ):
        if (ss, s) != (ds, d):
            out_edges[(ss, s)].append((ds, d))
    order: list[tuple[str, str]] = []
    state: dict[tuple[str, str], int] = {}
    back: set[tuple[tuple[str, str], tuple[str, str]]] = set()

    def visit(n: tuple[str, str]) -> None:
        stack = [(n, iter(out_edges.get(n, ())))]
        state[n] = 1
        while stack:
            node, it = stack[-1]
            nxt = next(it, None)
            if nxt is None:
                state[node] = 2
                order.append(node)
                stack.pop()
            elif state.get(nxt) == 1:
                back.add((node, nxt))
            elif nxt not in state:
                state[nxt] = 1
                stack.append((nxt, iter(out_edges.get(nxt, ()))))

    nodes = [("", "START")] + [n for n in out_edges if n != ("", "START")]
    for n in nodes:
        if n not in state:
            visit(n)
    depth: dict[tuple[str, str], int] = defaultdict(int)
    for n in reversed(order):
        for m in out_edges.get(n, ()):
            if (n, m) not in back:
                depth[m] = max(depth[m], depth[n] + 1)
    return dict(depth)


def _short(system: str, checkpoint: str) -> str:
    """A checkpoint name without its system's prefix (``PAYMENTS_CHECKPOINT_1`` ->
    ``CHECKPOINT_1``, ``ORDER_FINALIZED`` of orders -> ``FINALIZED``), for tight node labels."""
    up = system.upper()
    for prefix in (up + "_", up.rstrip("S") + "_"):
        if system and checkpoint.startswith(prefix) and len(checkpoint) > len(prefix):
            return checkpoint[len(prefix) :]
    return checkpoint


def dfg(
    edges: pd.DataFrame, title: str = "directly-follows graph", min_share: float = 0.0
) -> go.Figure:
    """The directly-follows graph of ``variants.directly_follows`` drawn with plotly: one lane per
    system, checkpoints left to right, arrows as wide as their frequency, the step count and
    median gap on each arrow (hover for details); retries show as ``↻ n`` on a checkpoint.
    Edges below ``min_share`` of the most frequent edge are left out.

    Example: ``dfg(variants.directly_follows(con))``
    """
    if edges.empty:
        return empty_figure(title)
    top = int(edges["steps"].max())
    edges = edges[edges["steps"] >= min_share * top]
    depth = _depths(edges)
    systems = sorted(
        {s for s in edges["src_system"] if s} | {s for s in edges["dst_system"] if s},
        # lanes in the order the flow reaches the systems: by the earliest column of their nodes
        key=lambda s: (min((c for (ns, _), c in depth.items() if ns == s), default=99), s),
    )
    lane = {s: i + 1 for i, s in enumerate(systems)}
    end_x = max(depth.values(), default=0) + 1

    def pos(system: str, cp: str) -> tuple[float, float]:
        if cp == "START" and not system:
            return 0.0, 0.0
        if cp == "END" and not system:
            return float(end_x), float(len(systems) + 1)
        return float(depth.get((system, cp), 0)), float(lane.get(system, 0))

    fig = go.Figure()
    loops: dict[tuple[str, str], int] = defaultdict(int)
    mid_x, mid_y, mid_text = [], [], []
    annotations = []
    for ss, s, ds, d, n, tr, med in zip(
        edges["src_system"], edges["src"], edges["dst_system"], edges["dst"], edges["steps"],
        edges["traces"], edges["median_gap_ms"], strict=True,
    ):  # fmt: skip
        if (ss, s) == (ds, d):
            loops[(ss, s)] += int(n)
            continue
        x0, y0 = pos(ss, s)
        x1, y1 = pos(ds, d)
        width = 1 + 4 * int(n) / top
        gap = "" if pd.isna(med) else f", median gap {float(med):.0f} ms"
        annotations.append(
            dict(x=x1, y=y1, ax=x0, ay=y0, xref="x", yref="y", axref="x", ayref="y",
                 showarrow=True, arrowhead=2, arrowsize=0.8, arrowwidth=width,
                 arrowcolor="rgba(84,110,122,0.45)", standoff=9, startstandoff=9, text="")
        )  # fmt: skip
        mid_x.append((x0 + x1) / 2)
        mid_y.append((y0 + y1) / 2)
        mid_text.append(
            f"{label(ss) + ' / ' if ss else ''}{label(s)} → {label(ds) + ' / ' if ds else ''}"
            f"{label(d)}<br>{int(n)} steps in {int(tr)} traces{gap}"
        )
    fig.add_trace(
        go.Scatter(
            x=mid_x, y=mid_y, mode="markers", marker=dict(size=10, color="rgba(0,0,0,0)"),
            hovertext=mid_text, hoverinfo="text", showlegend=False,
        )
    )  # fmt: skip
    nodes: dict[tuple[str, str], int] = defaultdict(int)
    for ss, s, ds, d, n in zip(
        edges["src_system"],
        edges["src"],
        edges["dst_system"],
        edges["dst"],
        edges["steps"],
        strict=True,
    ):
        nodes[(ds, d)] += int(n)
        nodes.setdefault((ss, s), 0)
    for system in ["", *systems]:
        part = [(k, v) for k, v in nodes.items() if k[0] == system]
        if not part:
            continue
        xy = [pos(*k) for k, _ in part]
        fig.add_trace(
            go.Scatter(
                name=label(system) if system else "start / end",
                x=[p[0] for p in xy],
                y=[p[1] for p in xy],
                mode="markers+text",
                text=[
                    label(_short(k[0], k[1]), 24) + (f" ↻{loops[k]}" if loops.get(k) else "")
                    for k, _ in part
                ],
                textposition=["top center" if int(p[0]) % 2 == 0 else "bottom center" for p in xy],
                textfont=dict(size=10),
                marker=dict(
                    size=16,
                    color=system_color(system) if system else "#37474f",
                    line=dict(width=1, color="white"),
                ),  # fmt: skip
                hovertext=[
                    f"{label(system) + ' / ' if system else ''}{label(k[1])}: {v} steps in"
                    + (f", {loops[k]} retries" if loops.get(k) else "")
                    for k, v in part
                ],
                hoverinfo="text",
            )
        )
    fig.update_layout(
        title=label(title),
        annotations=annotations,
        template=_TEMPLATE,
        xaxis=dict(visible=False, range=[-0.6, end_x + 0.6]),
        yaxis=dict(
            tickvals=[0, *lane.values(), len(systems) + 1],
            ticktext=["start", *[label(s) for s in systems], "end"],
            autorange="reversed",
            zeroline=False,
        ),
        height=140 + 110 * (len(systems) + 2),
        legend=dict(orientation="h", y=-0.1),
    )
    return fig


def deviation_bars(
    conformance: pd.DataFrame,
    temporal: pd.DataFrame,
    title: str = "deviating traces: order (conformance) and time (temporal profile)",
) -> go.Figure:
    """Bars of traces per kind of deviation: the conformance kinds (``analysis.
    conformance_summary``, without 'conforming') next to the temporal ones
    (``variants.temporal_summary``).

    Example: ``deviation_bars(analysis.conformance_summary(con, f), variants.temporal_summary(d))``
    """
    conf = conformance[conformance["kind"] != "conforming"]
    if conf.empty and temporal.empty:
        return empty_figure(title)
    fig = go.Figure()
    for part, name, color in ((conf, "order (conformance)", FAIL_COLOR),
                              (temporal, "time (temporal profile)", B_COLOR)):  # fmt: skip
        fig.add_trace(
            go.Bar(
                name=name,
                x=[label(k) for k in part["kind"]],
                y=part["traces"].tolist(),
                marker_color=color,
                text=part["traces"].tolist(),
                textposition="outside",
                cliponaxis=False,
                hovertemplate="%{x}: %{y} traces<extra></extra>",
            )
        )
    fig.update_layout(title=label(title), yaxis_title="traces", template=_TEMPLATE)
    return fig


def side_by_side(
    table: pd.DataFrame,
    key: str,
    a_col: str,
    b_col: str,
    names: tuple[str, str] = ("run a", "run b"),
    title: str = "run a vs run b",
    axis: str = "",
    percent: bool = False,
    horizontal: bool = False,
) -> go.Figure:
    """Grouped bars of two columns of a comparison table (one bar pair per ``key`` value), e.g.
    failure rate per system of two runs (``runcompare.system_changes``).

    Example: ``side_by_side(t, "system_id", "failure_rate_a", "failure_rate_b", percent=True)``
    """
    if table.empty:
        return empty_figure(title)
    keys = [label(k, 60) for k in table[key]]
    fig = go.Figure()
    for col, name, color in ((a_col, names[0], A_COLOR), (b_col, names[1], B_COLOR)):
        vals = [None if pd.isna(v) else float(v) * (100 if percent else 1) for v in table[col]]
        xy = dict(y=keys, x=vals, orientation="h") if horizontal else dict(x=keys, y=vals)
        fig.add_trace(
            go.Bar(
                name=label(name),
                marker_color=color,
                hovertemplate=("%{y}: %{x:.2f}" if horizontal else "%{x}: %{y:.2f}")
                + ("%" if percent else "")
                + " ("
                + label(name)
                + ")<extra></extra>",
                **xy,
            )
        )
    unit = axis + (" %" if percent else "")
    fig.update_layout(title=label(title), barmode="group", template=_TEMPLATE)
    if horizontal:
        fig.update_layout(
            xaxis_title=unit,
            yaxis=dict(autorange="reversed"),
            height=max(320, 30 * len(keys) + 140),
        )
    else:
        fig.update_layout(yaxis_title=unit)
    return fig
