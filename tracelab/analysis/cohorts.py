"""Cohorts of traces: a *selection* written in the vocabulary of ``analysis.search``.

A selection is a mapping (or :class:`Selection`) with any of ``path`` (the whole path),
``system`` (touches it), ``outcome`` (SUCCESS/FAILURE), ``min_ms``/``max_ms`` (duration),
``reason`` (a failure reason contains it, any case), ``correlation_id`` (prefix), ``since`` /
``until`` (trace start, ISO-8601 or datetime; ``since`` inclusive, ``until`` exclusive) and
``ids`` (an explicit list of correlation ids). Unset fields match everything. Every value is a
bound parameter.

Example::

    where, params = selection_sql({"outcome": "FAILURE", "min_ms": 500})
    con.execute(f"SELECT count(*) FROM traces t WHERE {where}", params)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from datetime import datetime
from typing import Any

import duckdb

from tracelab.errors import AnalysisError

__all__ = [
    "Selection",
    "as_selection",
    "cohort_ctes",
    "duration_quantiles",
    "selection_sql",
    "slow_vs_typical",
]


@dataclass(frozen=True, slots=True)
class Selection:
    """A set of traces by search filters (None: any). See the module docstring.

    Example: ``Selection(outcome="FAILURE", system="payments")``
    """

    path: str | None = None
    system: str | None = None
    outcome: str | None = None
    min_ms: float | None = None
    max_ms: float | None = None
    reason: str | None = None
    correlation_id: str | None = None
    since: str | datetime | None = None
    until: str | datetime | None = None
    ids: tuple[str, ...] | None = None

    def describe(self) -> str:
        """A short human label, e.g. ``outcome=FAILURE, min_ms=500``.

        Example: ``Selection(outcome="FAILURE").describe()`` -> ``"outcome=FAILURE"``
        """
        parts = []
        for k, v in asdict(self).items():
            if v is None:
                continue
            parts.append(f"{k}={len(v)} traces" if k == "ids" else f"{k}={v}")
        return ", ".join(parts) or "all traces"


_FIELDS = {f.name for f in fields(Selection)}


def as_selection(value: Selection | Mapping[str, Any] | None) -> Selection:
    """A :class:`Selection` from a selection, a mapping of its fields, or None (all traces).

    Example: ``as_selection({"outcome": "failure"}).outcome`` -> ``"failure"``
    """
    if value is None:
        return Selection()
    if isinstance(value, Selection):
        return value
    if not isinstance(value, Mapping):
        raise AnalysisError(f"a selection is a mapping of filters, got {type(value).__name__}")
    unknown = set(value) - _FIELDS
    if unknown:
        raise AnalysisError(
            f"unknown selection field(s) {', '.join(sorted(map(str, unknown)))} "
            f"(known: {', '.join(sorted(_FIELDS))})"
        )
    data = dict(value)
    if data.get("ids") is not None:
        data["ids"] = tuple(str(i) for i in data["ids"])
    return Selection(**data)


def _ts(value: str | datetime | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value).rstrip("Z")


def selection_sql(
    value: Selection | Mapping[str, Any] | None, alias: str = "t"
) -> tuple[str, list[Any]]:
    """A SQL condition over the ``traces`` view (aliased ``alias``) and its bound parameters.

    Example: ``selection_sql({"outcome": "FAILURE"})[0].startswith("(")`` -> ``True``
    """
    s = as_selection(value)
    if not alias.isidentifier():
        raise AnalysisError(f"bad table alias {alias!r}")
    a = alias
    # the alias is checked above; every value is a bound parameter
    sql = f"""(
        (?::VARCHAR IS NULL OR {a}.path = ?)
        AND (?::VARCHAR IS NULL OR list_contains(string_split({a}.path, '>'), ?))
        AND (?::VARCHAR IS NULL OR {a}.outcome = upper(?))
        AND (?::DOUBLE IS NULL OR {a}.duration_ms >= ?)
        AND (?::DOUBLE IS NULL OR {a}.duration_ms <= ?)
        AND (?::VARCHAR IS NULL OR starts_with({a}.correlation_id, ?))
        AND (?::TIMESTAMP IS NULL OR {a}.start_ts >= ?::TIMESTAMP)
        AND (?::TIMESTAMP IS NULL OR {a}.start_ts < ?::TIMESTAMP)
        AND (?::VARCHAR[] IS NULL OR list_contains(?::VARCHAR[], {a}.correlation_id))
        AND (?::VARCHAR IS NULL OR {a}.correlation_id IN (
                SELECT correlation_id FROM events
                WHERE status = 'FAILURE' AND contains(lower(failure_reason), lower(?)))))"""  # noqa: S608
    values = [
        s.path or None,
        s.system or None,
        s.outcome or None,
        None if s.min_ms is None else float(s.min_ms),
        None if s.max_ms is None else float(s.max_ms),
        s.correlation_id or None,
        _ts(s.since),
        _ts(s.until),
        None if s.ids is None else list(s.ids),
        s.reason or None,
    ]
    return sql, [v for v in values for _ in range(2)]


# One pass over the events for a whole cohort query: ``sp`` has one row per span (trace x
# system) with ``first_us`` and ``latest`` (twice the latest timestamp, plus 1 when a failure is
# among the latest events: the spans view's rule) and the caller's aggregates; ``t`` derives the
# trace columns a selection filters on exactly as the ``traces`` view does (so the events are
# read once, not once for ``traces`` and again for the cohort's events); ``coh`` is every trace
# of the selection (c = 1) or the baseline (c = 0) with ``t``'s columns.
_SPANS_CTE = """sp AS MATERIALIZED (
    SELECT correlation_id, system_id, min(ts_us) AS first_us,
           max(ts_us * 2 + CASE WHEN status = 'FAILURE' THEN 1 ELSE 0 END) AS latest{span}
    FROM events GROUP BY correlation_id, system_id),
t AS (
    SELECT correlation_id,
           array_to_string(list_transform(
               list_sort(list((system_rank(system_id), first_us, system_id))), x -> x[3]), '>')
               AS path,
           min(first_us) AS start_us, make_timestamp(min(first_us)) AS start_ts,
           date_diff('millisecond', make_timestamp(min(first_us)),
                     make_timestamp(max((latest - (latest & 1)) // 2))) AS duration_ms,
           CASE WHEN bool_and(latest & 1 = 0) THEN 'SUCCESS' ELSE 'FAILURE' END AS outcome{trace}
    FROM sp GROUP BY correlation_id),
"""


def cohort_ctes(
    selection: Selection | Mapping[str, Any] | None,
    baseline: Selection | Mapping[str, Any] | None,
    span_columns: str = "",
    trace_columns: str = "",
) -> tuple[str, list[Any]]:
    """CTEs ``sp`` (per span), ``t`` (per trace) and ``coh`` (the cohorts, ``c`` = 1 for the
    selection, 0 for the baseline) from one pass over the events, and their parameters.

    ``span_columns`` and ``trace_columns`` are extra aggregates (SQL text written by the caller,
    never user input) added to ``sp`` (over events) and ``t`` (over ``sp``). The baseline
    defaults to every trace not in the selection; a trace in both counts as selected.

    Example: ``ctes, params = cohort_ctes({"outcome": "FAILURE"}, None)``
    """
    spans = _SPANS_CTE.format(
        span=f",\n           {span_columns}" if span_columns else "",
        trace=f",\n           {trace_columns}" if trace_columns else "",
    )
    sel_sql, sel_params = selection_sql(selection, "t")
    if baseline is None:
        return (
            spans + f"coh AS MATERIALIZED (SELECT t.*, CASE WHEN {sel_sql} THEN 1 ELSE 0 END "  # noqa: S608
            "AS c FROM t)",
            sel_params,
        )
    base_sql, base_params = selection_sql(baseline, "t")
    return (
        spans + f"coh AS MATERIALIZED (SELECT * FROM (SELECT t.*, CASE WHEN {sel_sql} THEN 1 "  # noqa: S608
        f"WHEN {base_sql} THEN 0 END AS c FROM t) WHERE c IS NOT NULL)",
        [*sel_params, *base_params],
    )


def duration_quantiles(
    con: duckdb.DuckDBPyConnection, quantiles: Sequence[float] = (0.4, 0.5, 0.6, 0.95)
) -> dict[float, float]:
    """Trace duration quantiles (ms), e.g. ``{0.95: 1840.0, ...}``.

    Example: ``duration_quantiles(con, (0.95,))[0.95]``
    """
    qs = [float(q) for q in quantiles]
    if not qs or any(not 0.0 <= q <= 1.0 for q in qs):
        raise AnalysisError(f"quantiles must lie in [0, 1], got {list(quantiles)}")
    row = con.execute("SELECT quantile_cont(duration_ms, ?::DOUBLE[]) FROM traces", [qs]).fetchone()
    values = row[0] if row and row[0] is not None else [float("nan")] * len(qs)
    return {q: float(v) for q, v in zip(qs, values, strict=True)}


def slow_vs_typical(
    con: duckdb.DuckDBPyConnection, slow: float = 0.95, band: tuple[float, float] = (0.4, 0.6)
) -> tuple[Selection, Selection]:
    """The slow cohort (duration at or above the ``slow`` quantile) and the typical one (between
    the ``band`` quantiles, around the median), for :func:`.compare.compare_cohorts`.

    Example: ``sel, base = slow_vs_typical(con); compare_cohorts(con, sel, base)``
    """
    q = duration_quantiles(con, (slow, *band))
    return Selection(min_ms=q[slow]), Selection(min_ms=q[band[0]], max_ms=q[band[1]])
