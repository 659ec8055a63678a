"""Trace and failure analysis: plain functions over a DuckDB connection (``analysis.duck``).

Vocabulary: a *trace* is one correlation id; a *span* is one system's part of a trace, from its
first to its last checkpoint; *checkpoints* are the events in a span. A trace's *path* is the
systems it touched in the database's system order (``tracelab.analysis.duck.system_order``: by where
traces first reach each system, e.g. ``inventory>payments>reporting>orders``), so
clock skew between systems does not change it. A trace's *outcome* is SUCCESS when every span's
last checkpoint succeeded.

Every function returns a pandas DataFrame (or a small dict) and binds every value as a query
parameter. Example::

    from tracelab.analysis.duck import connect
    from tracelab import analysis
    con = connect("data/processed/event_history.db")
    analysis.path_distribution(con)
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pyarrow as pa

from tracelab.errors import AnalysisError, TracelabError
from tracelab.simulate.truth import read_truth, read_truth_summary

__all__ = [
    "accuracy",
    "conformance",
    "conformance_summary",
    "critical_path",
    "critical_path_share",
    "declared_flow",
    "export",
    "export_events",
    "export_spans",
    "export_traces",
    "failure_counts",
    "failure_rate_over_time",
    "ledger",
    "ledger_balance",
    "overview",
    "path_distribution",
    "pick_trace",
    "quarantine_reasons",
    "reason_pareto",
    "retry_recovery",
    "search",
    "span_percentiles",
    "spans",
    "trace_events",
    "trace_summaries",
    "waterfall",
]

Con = duckdb.DuckDBPyConnection
_MS = timedelta(milliseconds=1)

#: Label for failures whose reason is unknown, by join state.
NO_REASON_LABELS: dict[str | None, str] = {
    "awaiting_detail": "(awaiting detail)",
    "no_reason": "(no reason given)",
}


#: Aggregates over a group of events (a span) that screen for a repeated checkpoint without a
#: distinct count: each checkpoint sets one bit (of 64, by its hash) in each of two masks. With
#: :data:`MAY_REPEAT` (``n``: the group's events) true, some checkpoint repeats or two hashes
#: collide in both masks; false, every checkpoint is distinct. A collision only sends a group
#: the exact (slower) way, so results never depend on it.
REPEAT_MASKS = """bit_or(1::UBIGINT << (hash(checkpoint_id) % 64)) AS m1,
           bit_or(1::UBIGINT << ((hash(checkpoint_id) >> 6) % 64)) AS m2"""
MAY_REPEAT = "(bit_count(m1) < {n} AND bit_count(m2) < {n})"

_NULLABLE_INT = {pa.int8(): pd.Int8Dtype(), pa.int16(): pd.Int16Dtype(),
                 pa.int32(): pd.Int32Dtype(), pa.int64(): pd.Int64Dtype()}  # fmt: skip


def _df(con: Con, sql: str, params: Sequence[Any] | None = None) -> pd.DataFrame:
    """Run a query; its result as a DataFrame, through Arrow.

    Arrow hands text columns to pandas' own (Arrow-backed) string dtype without building a
    Python object per value, several times faster than ``.df()`` on large results. Integer
    columns holding NULLs become nullable ``Int64`` (not float), as with ``.df()``.
    """
    try:
        table = con.execute(sql, list(params or [])).to_arrow_table()
    except duckdb.Error as exc:
        raise AnalysisError(f"analysis query failed: {exc}") from exc
    df = table.to_pandas()
    for i, field in enumerate(table.schema):
        if field.type in _NULLABLE_INT and table.column(i).null_count:
            df[field.name] = table.column(i).to_pandas(types_mapper=_NULLABLE_INT.get)
    return df


# --------------------------------------------------------------------------------------- traces


def overview(con: Con) -> dict[str, int]:
    """Headline counts: events, traces, spans, failures, systems.

    Example: ``overview(con)["traces"]`` -> ``1000``
    """
    row = con.execute(
        """SELECT count(*), count(DISTINCT correlation_id),
                  count(DISTINCT (correlation_id, system_id)),
                  count(*) FILTER (WHERE status = 'FAILURE'), count(DISTINCT system_id)
           FROM events"""
    ).fetchone()
    assert row is not None
    keys = ("events", "traces", "spans", "failures", "systems")
    return {k: int(v or 0) for k, v in zip(keys, row, strict=True)}


def trace_summaries(con: Con, limit: int | None = None) -> pd.DataFrame:
    """One row per trace: path, start, end, duration_ms, spans, events, failures, outcome.

    Example: ``trace_summaries(con, limit=10)``
    """
    sql = "SELECT * FROM traces ORDER BY start_ts, correlation_id"
    if limit is None:
        return _df(con, sql)
    return _df(con, sql + " LIMIT ?", [int(limit)])


def spans(con: Con, correlation_id: str | None = None) -> pd.DataFrame:
    """One row per span (trace x system): start, end, duration_ms, events, failures, last status.

    Example: ``spans(con, "abc-123")``
    """
    if correlation_id is None:
        return _df(con, "SELECT * FROM spans ORDER BY correlation_id, system_rank, start_ts")
    return _df(
        con,
        """SELECT correlation_id, system_id, system_rank, min(ts) AS start_ts, max(ts) AS end_ts,
                  date_diff('millisecond', min(ts), max(ts)) AS duration_ms, count(*) AS events,
                  count(*) FILTER (WHERE status = 'FAILURE') AS failures,
                  arg_max(status, ts) AS last_status, arg_max(checkpoint_id, ts) AS last_checkpoint
           FROM trace_rows(?)
           GROUP BY correlation_id, system_id, system_rank ORDER BY system_rank, start_ts""",
        [correlation_id],
    )


def pick_trace(con: Con) -> str:
    """An instructive trace for a first look: the one with the most failures, then the most
    systems, then the longest (ties by id, so the choice is reproducible).

    Example: ``waterfall(con, pick_trace(con))``
    """
    row = con.execute(
        """SELECT correlation_id FROM traces
           ORDER BY failures DESC, spans DESC, duration_ms DESC, correlation_id LIMIT 1"""
    ).fetchone()
    if row is None:
        raise AnalysisError("the database holds no events")
    return str(row[0])


def quarantine_reasons(con: Con) -> pd.DataFrame:
    """Quarantined messages per kind of reason, with one example reason and source position
    (the first in source order: the same whichever order or shards the messages were stored in).

    Columns: reason_class, messages, example, source, partition, offset.

    Example: ``quarantine_reasons(con)``
    """
    return _df(
        con,
        """SELECT reason_class(reason) AS reason_class, count(*) AS messages,
                  arg_min(reason, pos) AS example, arg_min(source, pos) AS source,
                  arg_min("partition", pos) AS "partition", arg_min("offset", pos) AS "offset"
           FROM (SELECT *, (source, coalesce("partition", -1), "offset") AS pos FROM quarantine)
           GROUP BY 1 ORDER BY messages DESC, reason_class""",
    )


def trace_events(con: Con, correlation_id: str) -> pd.DataFrame:
    """All events of one trace in time order (an indexed lookup, fast on large databases).

    Example: ``trace_events(con, "abc-123")``
    """
    return _df(con, "SELECT * FROM trace_rows(?) ORDER BY ts, id", [correlation_id])


def waterfall(con: Con, correlation_id: str) -> pd.DataFrame:
    """Rows for a waterfall of one trace: one per checkpoint event, with its span's extent.

    Columns: system_id, checkpoint_id, ts, status, failure_reason, join_state, attempt (1, 2, ...
    per checkpoint within the span: retries are attempts), offset_ms (from trace start),
    span_start, span_end, span_ms, system_rank. Raises ``AnalysisError`` for an unknown trace.

    Example: ``waterfall(con, "abc-123")``
    """
    # One indexed lookup in SQLite; the arithmetic on a trace's handful of rows is done in plain
    # Python (a parallel window plan or pandas groupbys cost more than the lookup itself).
    try:
        cur = con.execute(
            "SELECT * FROM trace_rows(?) ORDER BY system_rank, ts, id", [correlation_id]
        )
        columns = [d[0] for d in cur.description]
        rows = cur.fetchall()
    except duckdb.Error as exc:
        raise AnalysisError(f"analysis query failed: {exc}") from exc
    if not rows:
        raise AnalysisError(f"no events for trace {correlation_id!r}")
    i_sys, i_cp, i_ts = (
        columns.index("system_id"),
        columns.index("checkpoint_id"),
        columns.index("ts"),
    )
    t0 = min(r[i_ts] for r in rows)
    ends: dict[str, tuple[Any, Any]] = {}
    for r in rows:
        lo, hi = ends.get(r[i_sys], (r[i_ts], r[i_ts]))
        ends[r[i_sys]] = (min(lo, r[i_ts]), max(hi, r[i_ts]))
    tries: Counter[tuple[str, str]] = Counter()
    extra = []
    for r in rows:
        tries[(r[i_sys], r[i_cp])] += 1
        lo, hi = ends[r[i_sys]]
        extra.append((tries[(r[i_sys], r[i_cp])], (r[i_ts] - t0) // _MS, lo, hi,
                      (hi - lo).total_seconds() * 1000.0))  # fmt: skip
    df = pd.DataFrame(
        [r + e for r, e in zip(rows, extra, strict=True)],
        columns=[*columns, "attempt", "offset_ms", "span_start", "span_end", "span_ms"],
    )
    return df


# Critical path: start at the span that ends last, then repeatedly step to the span that ended
# last before the current one started. Parallel branches (orders and reporting) thus contribute
# only the one that finished later. The recursive step is the same for one trace and for all.
# ``cp`` walks the spans ``s`` of each trace backwards from the one that ended last.
_CRITICAL_STEPS = """
cp AS (
    SELECT correlation_id, system_id, start_ts, end_ts, 1 AS step FROM (
        SELECT *, row_number() OVER (PARTITION BY correlation_id
                                     ORDER BY end_ts DESC, system_id) AS rn FROM s)
    WHERE rn = 1
    UNION ALL
    SELECT n.correlation_id, n.system_id, n.start_ts, n.end_ts, cp.step + 1
    FROM cp, LATERAL (
        SELECT * FROM s
        WHERE s.correlation_id = cp.correlation_id AND s.end_ts <= cp.start_ts
              AND s.system_id <> cp.system_id
        ORDER BY s.end_ts DESC, s.system_id LIMIT 1) n
    WHERE cp.step < 64)"""

# Built from module constants only; the trace id is a bound parameter.
_CRITICAL_ONE = (
    """
WITH RECURSIVE s AS (
    SELECT correlation_id, system_id, min(ts) AS start_ts, max(ts) AS end_ts
    FROM trace_rows(?) GROUP BY ALL),"""  # noqa: S608
    + _CRITICAL_STEPS
    + """
SELECT system_id, start_ts, end_ts, date_diff('millisecond', start_ts, end_ts) AS duration_ms
FROM cp ORDER BY step DESC
"""
)

_CRITICAL_ALL = (
    """
WITH RECURSIVE s AS (SELECT correlation_id, system_id, start_ts, end_ts FROM spans),"""  # noqa: S608
    + _CRITICAL_STEPS
    + """,
paths AS (
    SELECT correlation_id, string_agg(system_id, '>' ORDER BY step DESC) AS critical_path
    FROM cp GROUP BY correlation_id)
SELECT critical_path, count(*) AS traces, count(*) / sum(count(*)) OVER () AS share
FROM paths GROUP BY critical_path ORDER BY traces DESC, critical_path
"""
)


def critical_path(con: Con, correlation_id: str) -> pd.DataFrame:
    """The spans on the critical path of one trace, first to last, with their durations.

    Example: ``critical_path(con, "abc-123")["system_id"].tolist()`` -> ``["inventory", ...]``
    """
    return _df(con, _CRITICAL_ONE, [correlation_id])


def critical_path_share(con: Con) -> pd.DataFrame:
    """How often each sequence of systems was the critical path, over all traces.

    Columns: critical_path (e.g. ``inventory>payments>orders``), traces, share.

    Example: ``critical_path_share(con).head()``
    """
    return _df(con, _CRITICAL_ALL)


def span_percentiles(
    con: Con, percentiles: Sequence[float] = (0.5, 0.9, 0.95, 0.99)
) -> pd.DataFrame:
    """Span duration percentiles (ms) per system: columns system_id, spans, p50, p90, ...

    Example: ``span_percentiles(con, (0.5, 0.99))``
    """
    qs = [float(p) for p in percentiles]
    if not qs or any(not 0.0 <= p <= 1.0 for p in qs):
        raise AnalysisError(f"percentiles must lie in [0, 1], got {list(percentiles)}")
    df = _df(
        con,
        """SELECT system_id, min(system_rank) AS system_rank, count(*) AS spans,
                  quantile_cont(duration_ms, ?::DOUBLE[]) AS q
           FROM spans GROUP BY system_id ORDER BY system_rank, system_id""",
        [qs],
    )
    for i, p in enumerate(qs):
        df[f"p{round(p * 100, 1):g}"] = [row[i] for row in df["q"]]
    return df.drop(columns=["q", "system_rank"])


def path_distribution(con: Con) -> pd.DataFrame:
    """How many traces took each path: columns path, traces, share, failed.

    Example: ``path_distribution(con)``
    """
    return _df(
        con,
        """SELECT path, count(*) AS traces, count(*) / sum(count(*)) OVER () AS share,
                  count(*) FILTER (WHERE outcome = 'FAILURE') AS failed
           FROM traces GROUP BY path ORDER BY traces DESC, path""",
    )


def search(
    con: Con,
    *,
    path: str | None = None,
    system: str | None = None,
    outcome: str | None = None,
    min_ms: float | None = None,
    max_ms: float | None = None,
    reason: str | None = None,
    correlation_id: str | None = None,
    limit: int = 200,
) -> pd.DataFrame:
    """Trace summaries matching every given filter (None means any).

    ``path`` matches the whole path exactly; ``system`` requires the trace to touch that system;
    ``outcome`` is SUCCESS or FAILURE; ``min_ms``/``max_ms`` bound the duration; ``reason``
    matches a failure reason (case-insensitive substring); ``correlation_id`` is a prefix.

    Example: ``search(con, path="inventory>orders>reporting", outcome="FAILURE", min_ms=500)``
    """
    return _df(
        con,
        """SELECT t.* FROM traces t
           WHERE (?::VARCHAR IS NULL OR t.path = ?)
             AND (?::VARCHAR IS NULL OR list_contains(string_split(t.path, '>'), ?))
             AND (?::VARCHAR IS NULL OR t.outcome = upper(?))
             AND (?::DOUBLE IS NULL OR t.duration_ms >= ?)
             AND (?::DOUBLE IS NULL OR t.duration_ms <= ?)
             AND (?::VARCHAR IS NULL OR starts_with(t.correlation_id, ?))
             AND (?::VARCHAR IS NULL OR t.correlation_id IN (
                     SELECT correlation_id FROM events
                     WHERE status = 'FAILURE' AND contains(lower(failure_reason), lower(?))))
           ORDER BY t.start_ts, t.correlation_id LIMIT ?""",
        [
            *_twice(path or None),
            *_twice(system or None),
            *_twice(outcome or None),
            *_twice(None if min_ms is None else float(min_ms)),
            *_twice(None if max_ms is None else float(max_ms)),
            *_twice(correlation_id or None),
            *_twice(reason or None),
            int(limit),
        ],
    )


def _twice(value: Any) -> tuple[Any, Any]:
    return value, value


# ------------------------------------------------------------------------------------- failures


def failure_counts(con: Con) -> pd.DataFrame:
    """Events and failures per system x checkpoint: columns system_id, checkpoint_id, events,
    failures, rate.

    Example: ``failure_counts(con).pivot(index="system_id", columns="checkpoint_id")``
    """
    return _df(
        con,
        """SELECT system_id, checkpoint_id, system_rank(system_id) AS system_rank,
                  min(timestamp_text) AS first_seen, count(*) AS events,
                  count(*) FILTER (WHERE status = 'FAILURE') AS failures,
                  count(*) FILTER (WHERE status = 'FAILURE') / count(*) AS rate
           FROM events GROUP BY system_id, checkpoint_id
           ORDER BY system_rank, system_id, first_seen, checkpoint_id""",
    ).drop(columns=["first_seen"])


def reason_pareto(con: Con) -> pd.DataFrame:
    """Failure reasons by frequency with cumulative share; unknown reasons are labelled by
    join state (``(awaiting detail)``, ``(no reason given)``).

    Columns: failure_reason, system_id, failures, share, cumulative_share.

    Example: ``reason_pareto(con).head(10)``
    """
    return _df(
        con,
        """SELECT coalesce(failure_reason,
                           CASE join_state WHEN 'awaiting_detail' THEN ?
                                           WHEN 'no_reason' THEN ? ELSE '(unknown)' END)
                      AS failure_reason,
                  string_agg(DISTINCT system_id, ', ' ORDER BY system_id) AS system_id,
                  count(*) AS failures
           FROM events WHERE status = 'FAILURE'
           GROUP BY 1""",
        [NO_REASON_LABELS["awaiting_detail"], NO_REASON_LABELS["no_reason"]],
    ).pipe(_with_cumulative)


def _with_cumulative(df: pd.DataFrame) -> pd.DataFrame:
    df = df.sort_values(["failures", "failure_reason"], ascending=[False, True])
    df = df.reset_index(drop=True)
    total = df["failures"].sum()
    df["share"] = df["failures"] / total if total else 0.0
    df["cumulative_share"] = df["share"].cumsum()
    return df


def retry_recovery(con: Con) -> pd.DataFrame:
    """Failures recovered by a later SUCCESS of the same checkpoint in the same span, vs not.

    Columns: system_id, checkpoint_id, failures, recovered, unrecovered, recovery_rate.

    Example: ``retry_recovery(con)[["system_id", "recovered", "unrecovered"]]``
    """
    # One aggregation answers it when no checkpoint failed again after its last success (the
    # usual case); otherwise a window over every event counts each failure exactly.
    df = _df(con, _RECOVERY_FAST)
    if int(df["mixed"].sum()) > 0:
        df = _df(con, _RECOVERY_EXACT)
    return df.drop(columns=["mixed"])


_RECOVERY_FAST = """
WITH g AS (
    SELECT system_id, checkpoint_id,
           count(*) FILTER (WHERE status = 'FAILURE') AS failures,
           max(timestamp_text) FILTER (WHERE status = 'SUCCESS') AS last_ok,
           max(timestamp_text) FILTER (WHERE status = 'FAILURE') AS last_failure
    FROM events GROUP BY correlation_id, system_id, checkpoint_id)
SELECT system_id, checkpoint_id, sum(failures)::BIGINT AS failures,
       coalesce(sum(failures) FILTER (WHERE last_ok >= last_failure), 0)::BIGINT AS recovered,
       (sum(failures) - coalesce(sum(failures) FILTER (WHERE last_ok >= last_failure), 0))::BIGINT
           AS unrecovered,
       coalesce(sum(failures) FILTER (WHERE last_ok >= last_failure), 0) / sum(failures)
           AS recovery_rate,
       count(*) FILTER (WHERE last_ok < last_failure) AS mixed
FROM g WHERE failures > 0
GROUP BY ALL ORDER BY failures DESC, system_id, checkpoint_id
"""

_RECOVERY_EXACT = """
WITH f AS (
    SELECT system_id, checkpoint_id, status,
           coalesce(max(timestamp_text) FILTER (WHERE status = 'SUCCESS') OVER (
               PARTITION BY correlation_id, system_id, checkpoint_id) >= timestamp_text, false)
               AS recovered
    FROM events)
SELECT system_id, checkpoint_id, count(*) AS failures,
       count(*) FILTER (WHERE recovered) AS recovered,
       count(*) FILTER (WHERE NOT recovered) AS unrecovered,
       count(*) FILTER (WHERE recovered) / count(*) AS recovery_rate,
       0 AS mixed
FROM f WHERE status = 'FAILURE'
GROUP BY ALL ORDER BY failures DESC, system_id, checkpoint_id
"""


_NICE_BUCKETS_S = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600, 86400)


def failure_rate_over_time(
    con: Con, bucket_seconds: int | None = None, buckets: int = 60
) -> pd.DataFrame:
    """Events, failures and failure rate per time bucket and system.

    The bucket width is ``bucket_seconds`` or a round width giving about ``buckets`` buckets.
    Columns: bucket, system_id, events, failures, rate.

    Example: ``failure_rate_over_time(con, bucket_seconds=60)``
    """
    if bucket_seconds is None:
        row = con.execute("SELECT date_diff('second', min(ts), max(ts)) FROM events").fetchone()
        span_s = int(row[0] or 0) if row else 0
        want = max(span_s / max(buckets, 1), 1)
        bucket_seconds = next((b for b in _NICE_BUCKETS_S if b >= want), _NICE_BUCKETS_S[-1])
    if bucket_seconds <= 0:
        raise AnalysisError(f"bucket_seconds must be positive, got {bucket_seconds}")
    return _df(
        con,
        """SELECT time_bucket(to_seconds(?::BIGINT), ts) AS bucket, system_id,
                  count(*) AS events, count(*) FILTER (WHERE status = 'FAILURE') AS failures,
                  count(*) FILTER (WHERE status = 'FAILURE') / count(*) AS rate
           FROM events GROUP BY ALL ORDER BY bucket, system_id""",
        [int(bucket_seconds)],
    )


# ---------------------------------------------------------------------------------- conformance


def declared_flow(flow: Any) -> dict[str, list[str]]:
    """The declared checkpoint order per system, from a ``Flow`` or a plain mapping.

    Accepts ``{system: [checkpoint, ...]}`` or an object with a ``checkpoints()`` method or a
    ``systems`` mapping/sequence whose items carry ``checkpoints``.

    Example: ``declared_flow({"orders": ["ORDER_INITIALIZED", "ORDER_FINALIZED"]})``
    """
    if isinstance(flow, Mapping):
        return {str(k): [str(c) for c in v] for k, v in flow.items()}
    method = getattr(flow, "declared_checkpoints", None) or getattr(flow, "checkpoints", None)
    if callable(method):
        return declared_flow(method())
    systems = getattr(flow, "systems", None)
    if isinstance(systems, Mapping):
        return {
            str(name): [str(_checkpoint_name(c)) for c in getattr(s, "checkpoints", s)]
            for name, s in systems.items()
        }
    if isinstance(systems, Iterable):
        out: dict[str, list[str]] = {}
        for s in systems:
            name = getattr(s, "name", None) or getattr(s, "system", None)
            out[str(name)] = [str(_checkpoint_name(c)) for c in s.checkpoints]
        return out
    raise AnalysisError(f"cannot read declared checkpoints from {type(flow).__name__}")


def _checkpoint_name(c: Any) -> str:
    if isinstance(c, str):
        return c
    for attr in ("name", "checkpoint", "id"):
        v = getattr(c, attr, None)
        if isinstance(v, str):
            return v
    return str(c)


def _register_flow(con: Con, flow: Any) -> None:
    decl = declared_flow(flow)
    rows = [
        (system, checkpoint, pos)
        for system, checkpoints in decl.items()
        for pos, checkpoint in enumerate(checkpoints)
    ]
    frame = pd.DataFrame(rows, columns=["system_id", "checkpoint_id", "position"])
    con.register("declared_flow", frame)


def conformance(con: Con, flow: Any) -> pd.DataFrame:
    """Spans whose checkpoints deviate from the declared flow, one row per deviating span.

    Per span: ``skips`` (declared checkpoints missing before the last one reached),
    ``repeats`` (a checkpoint succeeding twice or coming back after another checkpoint; a retry
    of a failure is not a repeat), ``reorders`` (a checkpoint first seen after a later declared
    one), ``unknown`` (checkpoints the flow does not declare for that system).

    Example: ``conformance(con, load_flow("data/flows/default.yaml"))``
    """
    _register_flow(con, flow)
    try:
        return _df(
            con,
            """WITH e AS (
                   SELECT e.correlation_id, e.system_id, e.checkpoint_id, e.status, e.ts, e.id,
                          d.position
                   FROM events e LEFT JOIN declared_flow d USING (system_id, checkpoint_id)
                   WHERE e.system_id IN (SELECT system_id FROM declared_flow)),
               runs AS (
                   SELECT *, CASE WHEN checkpoint_id IS DISTINCT FROM lag(checkpoint_id) OVER w
                                  THEN 1 ELSE 0 END AS new_run
                   FROM e WINDOW w AS (PARTITION BY correlation_id, system_id ORDER BY ts, id)),
               per_cp AS (
                   SELECT correlation_id, system_id, checkpoint_id, any_value(position) AS position,
                          sum(new_run) AS runs,
                          count(*) FILTER (WHERE status = 'SUCCESS') AS successes,
                          min(ts) AS first_ts, min(id) AS first_id
                   FROM runs GROUP BY ALL),
               ordered AS (
                   SELECT *, max(position) OVER (
                          PARTITION BY correlation_id, system_id ORDER BY first_ts, first_id
                          ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS prev_max
                   FROM per_cp),
               per_span AS (
                   SELECT correlation_id, system_id,
                          count(*) FILTER (WHERE position IS NULL) AS unknown,
                          count(*) FILTER (WHERE runs > 1 OR successes > 1) AS repeats,
                          count(*) FILTER (WHERE position < prev_max) AS reorders,
                          coalesce(max(position) + 1 - count(DISTINCT position), 0) AS skips,
                          string_agg(checkpoint_id, ' ' ORDER BY first_ts, first_id) AS observed
                   FROM ordered GROUP BY ALL)
               SELECT * FROM per_span
               WHERE unknown > 0 OR repeats > 0 OR reorders > 0 OR skips > 0
               ORDER BY correlation_id, system_id""",
        )
    finally:
        con.unregister("declared_flow")


def conformance_summary(con: Con, flow: Any) -> pd.DataFrame:
    """Traces and spans per kind of deviation: columns kind, spans, traces; the last row,
    'conforming', counts the traces without any deviation (in both columns).

    Example: ``conformance_summary(con, flow)``
    """
    dev = conformance(con, flow)
    total = overview(con)["traces"]
    rows = []
    for kind in ("skips", "repeats", "reorders", "unknown"):
        hit = dev[dev[kind] > 0]
        rows.append((kind, len(hit), hit["correlation_id"].nunique()))
    deviating = dev["correlation_id"].nunique()
    rows.append(("conforming", total - deviating, total - deviating))
    return pd.DataFrame(rows, columns=["kind", "spans", "traces"])


# ------------------------------------------------------------------------------------- ledger


def ledger(con: Con) -> pd.DataFrame:
    """The join-completeness ledger: where every message went.

    Columns: category (event, detail, duplicate, quarantine), item, messages. Events split by
    status and join state (success, inline, joined, awaiting_detail, no_reason); details into
    joined and orphan; quarantine by reason.

    Example: ``ledger(con)``
    """
    return _df(
        con,
        """SELECT 'event' AS category,
                  CASE WHEN status = 'SUCCESS' THEN 'success'
                       ELSE coalesce(join_state, 'failure') END AS item,
                  count(*) AS messages
           FROM events GROUP BY ALL
           UNION ALL
           SELECT 'detail', CASE WHEN event_id IS NULL THEN 'orphan' ELSE 'joined' END, count(*)
           FROM details GROUP BY ALL
           UNION ALL
           SELECT 'duplicate', 'duplicate', coalesce(sum(value), 0)::BIGINT FROM counters
           WHERE name = 'duplicates'
           UNION ALL
           SELECT 'quarantine', reason_class(reason), count(*) FROM quarantine GROUP BY ALL
           ORDER BY category, messages DESC, item""",
    )


def ledger_balance(con: Con) -> dict[str, int | bool]:
    """Whether the ledger adds up to the 'messages' counter.

    Returns messages (counter), accounted (ledger total), events, joined, orphans, duplicates,
    quarantined, awaiting_detail, balanced.

    Example: ``ledger_balance(con)["balanced"]`` -> ``True``
    """
    df = ledger(con)

    def total(category: str, item: str | None = None) -> int:
        sel = df["category"] == category
        if item is not None:
            sel &= df["item"] == item
        return int(df.loc[sel, "messages"].sum())

    row = con.execute("SELECT max(value) FROM counters WHERE name = 'messages'").fetchone()
    messages = int(row[0]) if row and row[0] is not None else -1
    out: dict[str, int | bool] = {
        "messages": messages,
        "events": total("event"),
        "joined": total("detail", "joined"),
        "orphans": total("detail", "orphan"),
        "duplicates": total("duplicate"),
        "quarantined": total("quarantine"),
        "awaiting_detail": total("event", "awaiting_detail"),
    }
    accounted = sum(
        int(out[k]) for k in ("events", "joined", "orphans", "duplicates", "quarantined")
    )
    out["accounted"] = accounted
    out["balanced"] = accounted == messages
    return out


# ------------------------------------------------------------------------------------ accuracy


def accuracy(con: Con, truth_path: str | Path) -> pd.DataFrame:
    """Pipeline accuracy against the simulator's truth: one row per measure with expected,
    observed and whether they agree.

    ``truth_path`` is the JSON Lines file ``simulate(..., truth_path=...)`` writes (the events a
    perfect normalizer stores); its ``.summary.json`` beside it, when present, adds the expected
    ledger (joined, orphans, duplicates, quarantined, awaiting_detail). Events are compared as
    multisets on all six schema fields; paths are derived from the truth events the same way as
    from the database.

    Example: ``accuracy(con, "data/raw/run.truth.jsonl").query("not match")``
    """
    path = Path(truth_path)
    if not path.is_file():
        raise AnalysisError(f"truth file {path} does not exist")
    try:
        truth = read_truth(path)
    except TracelabError as exc:
        raise AnalysisError(str(exc)) from exc
    con.register("truth_events", truth)
    try:
        row = con.execute(_TRUTH_COMPARE).fetchone()
        paths = _df(con, _TRUTH_PATHS)
    finally:
        con.unregister("truth_events")
    assert row is not None
    exp_events, obs_events, matched, exp_traces, obs_traces, reasons_ok, reasons_exp = (
        int(v or 0) for v in row
    )
    rows: list[tuple[str, int, int]] = [
        ("events", exp_events, obs_events),
        ("events matched exactly (all six fields)", exp_events, matched),
        ("traces", exp_traces, obs_traces),
        ("failure reasons matched", reasons_exp, reasons_ok),
    ]
    for p, expected, observed in zip(
        paths["path"], paths["expected"], paths["observed"], strict=True
    ):
        rows.append((f"traces on path {p}", int(expected), int(observed)))
    summary = read_truth_summary(path)
    if summary is not None:
        expected_ledger = summary.get("expected", {})
        balance = ledger_balance(con)
        for key in ("joined", "orphans", "duplicates", "quarantined", "awaiting_detail"):
            if key in expected_ledger:
                rows.append((f"ledger: {key}", int(expected_ledger[key]), int(balance[key])))
    out = pd.DataFrame(rows, columns=["measure", "expected", "observed"])
    out["match"] = out["expected"] == out["observed"]
    return out


_TRUTH_COMPARE = """
WITH t AS (
    SELECT *, row_number() OVER (PARTITION BY system_id, checkpoint_id, timestamp, status,
                                 correlation_id, failure_reason) AS k
    FROM truth_events),
o AS (
    SELECT system_id, checkpoint_id, timestamp_text AS timestamp, status, correlation_id,
           failure_reason,
           row_number() OVER (PARTITION BY system_id, checkpoint_id, timestamp_text, status,
                              correlation_id, failure_reason) AS k
    FROM events),
m AS (
    SELECT count(*) AS matched,
           count(*) FILTER (WHERE t.status = 'FAILURE' AND t.failure_reason IS NOT NULL)
               AS reasons_ok
    FROM t JOIN o ON t.system_id = o.system_id AND t.checkpoint_id = o.checkpoint_id
        AND t.timestamp = o.timestamp AND t.status = o.status
        AND t.correlation_id = o.correlation_id
        AND t.failure_reason IS NOT DISTINCT FROM o.failure_reason AND t.k = o.k)
SELECT (SELECT count(*) FROM truth_events), (SELECT count(*) FROM events), m.matched,
       (SELECT count(DISTINCT correlation_id) FROM truth_events),
       (SELECT count(DISTINCT correlation_id) FROM events),
       m.reasons_ok,
       (SELECT count(*) FROM truth_events WHERE status = 'FAILURE'
                                            AND failure_reason IS NOT NULL)
FROM m
"""

_TRUTH_PATHS = """
WITH tp AS (
    SELECT correlation_id,
           string_agg(system_id, '>' ORDER BY system_rank(system_id), first_ts, system_id)
               AS path
    FROM (SELECT correlation_id, system_id, min(timestamp) AS first_ts
          FROM truth_events GROUP BY ALL)
    GROUP BY correlation_id),
e AS (SELECT path, count(*) AS expected FROM tp GROUP BY path),
o AS (SELECT path, count(*) AS observed FROM traces GROUP BY path)
SELECT coalesce(e.path, o.path) AS path, coalesce(expected, 0) AS expected,
       coalesce(observed, 0) AS observed
FROM e FULL OUTER JOIN o USING (path)
ORDER BY expected DESC, path
"""


# --------------------------------------------------------------------------------------- export

_EXPORTS: dict[str, str] = {
    "events": """SELECT id, system_id, checkpoint_id, timestamp_text AS timestamp, status,
                        correlation_id, failure_reason, join_state, source, "partition", "offset"
                 FROM events ORDER BY correlation_id, ts, id""",
    "spans": """SELECT * EXCLUDE (system_rank) FROM spans
                ORDER BY correlation_id, start_ts, system_rank, system_id""",
    "traces": "SELECT * FROM traces ORDER BY start_ts, correlation_id",
}


def export(con: Con, what: str, path: str | Path) -> Path:
    """Write ``events``, ``spans`` or ``traces`` to ``path``; the format follows the suffix
    (``.csv`` or ``.parquet``). Returns the path.

    Example: ``export(con, "spans", "reports/spans.parquet")``
    """
    if what not in _EXPORTS:
        raise AnalysisError(f"cannot export {what!r}: choose one of {', '.join(_EXPORTS)}")
    out = Path(path)
    suffix = out.suffix.lower()
    if suffix not in (".csv", ".parquet"):
        raise AnalysisError(f"export path must end in .csv or .parquet, got {out.name}")
    out.parent.mkdir(parents=True, exist_ok=True)
    rel = con.sql(_EXPORTS[what])
    try:
        if suffix == ".csv":
            rel.write_csv(str(out), header=True)
        else:
            rel.write_parquet(str(out))
    except duckdb.Error as exc:
        raise AnalysisError(f"cannot write {out}: {exc}") from exc
    return out


def export_events(con: Con, path: str | Path) -> Path:
    """Export every event to CSV or Parquet (by suffix). Example: ``export_events(con, "e.csv")``"""
    return export(con, "events", path)


def export_spans(con: Con, path: str | Path) -> Path:
    """Export every span to CSV or Parquet. Example: ``export_spans(con, "spans.parquet")``"""
    return export(con, "spans", path)


def export_traces(con: Con, path: str | Path) -> Path:
    """Export trace summaries to CSV or Parquet. Example: ``export_traces(con, "t.csv")``"""
    return export(con, "traces", path)
