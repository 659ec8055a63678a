"""Tables for people: escaped HTML tables of data frames, shown in notebooks and widgets.

Log text is data, never markup: every cell, header and caption is escaped here, the one place
that turns a frame into HTML.

Example::

    from tracelab.analysis.report import show_table
    show_table(analysis.path_distribution(con), caption="paths")
"""

from __future__ import annotations

import html
from typing import Any

import pandas as pd

__all__ = ["show_table", "table_html"]


def table_html(df: pd.DataFrame, max_rows: int = 30, caption: str | None = None) -> str:
    """An HTML table of ``df`` (first ``max_rows`` rows); every cell, header and the caption are
    escaped, since log text is data, not markup. The table is marked ``tex2jax_ignore`` so
    that a notebook's MathJax leaves ``$...$`` in log text as it was logged.

    Example: ``table_html(pd.DataFrame({"reason": ["<b>"]}))`` contains ``&lt;b&gt;``
    """
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
    rows = []
    for row in df.head(max_rows).itertuples(index=False):
        rows.append("<tr>" + "".join(f"<td>{_cell(v)}</td>" for v in row) + "</tr>")
    cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
    more = f"<p><i>{len(df) - max_rows} more rows</i></p>" if len(df) > max_rows else ""
    return (
        f'<table class="tracelab tex2jax_ignore">{cap}<thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table>{more}"
    )


def _cell(value: Any) -> str:
    if value is None or value is pd.NA or value is pd.NaT:
        return ""
    if isinstance(value, float):
        if value != value:
            return ""
        return f"{value:.4g}" if abs(value) < 1 else f"{value:,.1f}"
    if isinstance(value, pd.Timestamp):
        return html.escape(value.isoformat(sep=" ", timespec="milliseconds"))
    return html.escape(str(value))


def show_table(df: pd.DataFrame, max_rows: int = 30, caption: str | None = None) -> None:
    """Display ``df`` as an escaped HTML table in a notebook.

    Example: ``show_table(analysis.path_distribution(con), caption="paths")``
    """
    from IPython.display import HTML, display

    display(HTML(table_html(df, max_rows=max_rows, caption=caption)))
