"""Compare and explain: what sets a cohort of traces apart, and how two traces or cohorts differ.

- :func:`compare_cohorts` ranks, for every dimension of a trace (path, each system's outcome,
  checkpoints reached, failure reasons, retries, start hour, every key of ``attributes``, log
  style), how much more (or less) often each value occurs in a selection than in a baseline:
  the open equivalent of "BubbleUp".
- :func:`diff_traces` / :func:`diff_cohorts` line two traces (or the medians of two cohorts) up
  per system and per checkpoint: span durations, the time from the previous checkpoint, attempts,
  and checkpoints seen on one side only.

Selections use the vocabulary of ``analysis.search`` (see :mod:`tracelab.analysis.cohorts`).
Every value is a bound parameter; SQL text is built from module constants only.

Example::

    from tracelab.analysis.duck import connect
    from tracelab.analysis import compare
    con = connect("data/processed/event_history.db")
    compare.compare_cohorts(con, {"outcome": "FAILURE"}).head(10)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import duckdb
import pandas as pd

from tracelab.analysis.cohorts import Selection, as_selection, cohort_ctes
from tracelab.analysis.queries import MAY_REPEAT, NO_REASON_LABELS, REPEAT_MASKS, _df
from tracelab.errors import AnalysisError

__all__ = [
    "DIMENSIONS",
    "compare_cohorts",
    "diff_cohorts",
    "diff_traces",
    "dimension_ranking",
    "style_source",
]

Con = duckdb.DuckDBPyConnection
SelectionLike = Selection | Mapping[str, Any] | None

#: Dimensions compare_cohorts looks at (``attribute <key>`` stands for every attributes key).
DIMENSIONS: tuple[str, ...] = (
    "path",
    "outcome <system>",
    "checkpoint reached",
    "failure reason",
    "retries",
    "start hour (UTC)",
    "attribute <key>",
    "log style",
)

#: Retries beyond this many per trace share one value (``5+``).
RETRIES_CAP = 5

# How a system logs, per event: the declared style once the events carry one (a ``style``
# column, see style_source), else what the database shows: whether a failure's reason came
# inline or in a separate detail message.
_STYLE_DERIVED = """CASE WHEN join_state = 'inline' THEN 'reason inline'
                         WHEN join_state IN ('joined', 'awaiting_detail') THEN 'reason separate'
                         END"""


def style_source(con: Con) -> str:
    """Where the ``log style`` dimension comes from: ``"column"`` when the events view has a
    ``style`` column (declared styles), else ``"derived"`` (how failures carried their reason).

    This is the hook for declared styles: once ``events.style`` exists, compare_cohorts uses it.

    Example: ``style_source(con)`` -> ``"derived"``
    """
    try:
        con.execute("SELECT style FROM events LIMIT 0")
        return "column"
    except duckdb.Error:
        return "derived"


# The events are read once: per span (``sp``, see cohorts.cohort_ctes) the checkpoints, the
# distinct failure reasons and log styles and the attribute texts; every dimension is counted
# from those 250k span rows rather than from a million events joined to their cohort. A value of
# a dimension qualified by its system (checkpoint reached, log style) is reached once per trace
# by construction; failure reasons and attributes count distinct traces. The repeat screen
# (queries.REPEAT_MASKS) spares list_distinct for the spans whose checkpoints are all distinct.
_SPAN_COLUMNS = (
    """count(*) AS events, list(checkpoint_id) AS cps,
           list(DISTINCT coalesce(failure_reason, CASE join_state WHEN 'awaiting_detail' THEN ?
                                                     WHEN 'no_reason' THEN ?
                                                     ELSE '(unknown)' END))
               FILTER (WHERE status = 'FAILURE') AS reasons,
           list(DISTINCT {style}) FILTER (WHERE {style} IS NOT NULL) AS styles,
           list(attributes) FILTER (WHERE attributes IS NOT NULL) AS attrs,
           """
    + REPEAT_MASKS
)

# A span's distinct checkpoints: its checkpoints as they are unless one may repeat.
_DISTINCT_CPS = f"CASE WHEN {MAY_REPEAT.format(n='events')} THEN list_distinct(cps) ELSE cps END"

_TRACE_COLUMNS = f"sum(events - len({_DISTINCT_CPS}))::BIGINT AS retries"

_COMPARE = """
WITH {ctes},
spc AS MATERIALIZED (SELECT sp.*, coh.c FROM sp JOIN coh USING (correlation_id)),
sys AS (SELECT DISTINCT system_id FROM spc),
sizes AS (SELECT count(*) FILTER (WHERE c = 1) AS n1, count(*) FILTER (WHERE c = 0) AS n0
          FROM coh),
reached AS (
    SELECT c, system_id, CASE WHEN latest & 1 = 1 THEN 'FAILURE' ELSE 'SUCCESS' END AS status,
           count(*) AS n
    FROM spc GROUP BY ALL),
dims AS (
    SELECT c, 'path' AS dimension, path AS value, count(*) AS n FROM coh GROUP BY ALL
    UNION ALL
    SELECT c, 'start hour (UTC)', strftime(start_ts, '%H:00'), count(*) FROM coh GROUP BY ALL
    UNION ALL
    SELECT c, 'outcome ' || system_id, status, n FROM reached
    UNION ALL
    SELECT k.c, 'outcome ' || sys.system_id, '(not reached)',
           CASE k.c WHEN 1 THEN any_value(n1) ELSE any_value(n0) END - coalesce(sum(r.n), 0)
    FROM (VALUES (1), (0)) k(c) CROSS JOIN sys CROSS JOIN sizes
         LEFT JOIN reached r ON r.c = k.c AND r.system_id = sys.system_id
    GROUP BY k.c, sys.system_id
    UNION ALL
    SELECT c, 'retries', CASE WHEN retries >= ? THEN ? ELSE retries::VARCHAR END, count(*)
    FROM coh GROUP BY ALL
    UNION ALL
    SELECT c, 'checkpoint reached', system_id || ' / ' || checkpoint_id, count(*)
    FROM (SELECT c, system_id, unnest({distinct_cps}) AS checkpoint_id FROM spc)
    GROUP BY c, system_id, checkpoint_id
    UNION ALL
    SELECT c, 'log style', system_id || ': ' || style, count(*)
    FROM (SELECT c, system_id, unnest(styles) AS style FROM spc WHERE styles IS NOT NULL)
    GROUP BY c, system_id, style
    UNION ALL
    SELECT c, dimension, value, count(DISTINCT correlation_id) FROM (
        SELECT c, correlation_id, 'failure reason' AS dimension, unnest(reasons) AS value
        FROM spc WHERE reasons IS NOT NULL
        UNION ALL
        SELECT c, correlation_id, 'attribute ' || kv.key, coalesce(kv.value, '(null)')
        FROM (SELECT c, correlation_id,
                     unnest(map_entries(json_transform(a, '"MAP(VARCHAR, VARCHAR)"'))) AS kv
              FROM (SELECT c, correlation_id, unnest(attrs) AS a
                    FROM spc WHERE attrs IS NOT NULL)
              WHERE json_valid(a) AND starts_with(ltrim(a), '{{')))
    GROUP BY ALL),
joined AS (
    SELECT dimension, value,
           coalesce(sum(n) FILTER (WHERE c = 1), 0)::BIGINT AS selection_traces,
           coalesce(sum(n) FILTER (WHERE c = 0), 0)::BIGINT AS baseline_traces
    FROM dims WHERE n > 0 GROUP BY ALL)
SELECT dimension, value, selection_traces,
       CASE WHEN n1 > 0 THEN selection_traces / n1 ELSE 0 END AS selection_share,
       baseline_traces,
       CASE WHEN n0 > 0 THEN baseline_traces / n0 ELSE 0 END AS baseline_share
FROM joined, sizes
"""


def compare_cohorts(
    con: Con, selection: SelectionLike, baseline: SelectionLike = None
) -> pd.DataFrame:
    """What sets the traces of ``selection`` apart from ``baseline`` (default: every other trace).

    One row per dimension and value: ``selection_traces``/``selection_share`` and
    ``baseline_traces``/``baseline_share`` (the share of the cohort's traces showing that value;
    values of multi-valued dimensions such as reasons or checkpoints need not add up to 1),
    ``diff`` (selection minus baseline share), ``score`` (the dimension's largest absolute diff)
    and ``rank`` (1 = the dimension that sets the selection apart most). Rows are sorted by
    rank, then by absolute diff. Raises ``AnalysisError`` when the selection is empty.

    Example: ``compare_cohorts(con, {"outcome": "FAILURE"}).query("rank == 1")``
    """
    style = "style" if style_source(con) == "column" else _STYLE_DERIVED
    ctes, params = cohort_ctes(
        selection, baseline, _SPAN_COLUMNS.format(style=style), _TRACE_COLUMNS
    )
    labels = [NO_REASON_LABELS["awaiting_detail"], NO_REASON_LABELS["no_reason"]]
    sql = _COMPARE.format(ctes=ctes, distinct_cps=_DISTINCT_CPS)
    df = _df(con, sql, [*labels, *params, RETRIES_CAP, f"{RETRIES_CAP}+"])
    if df.empty or int(df.loc[df["dimension"] == "path", "selection_traces"].sum()) == 0:
        raise AnalysisError(f"the selection ({as_selection(selection).describe()}) has no traces")
    return _rank(df)


def _rank(df: pd.DataFrame) -> pd.DataFrame:
    df["diff"] = df["selection_share"] - df["baseline_share"]
    df["abs_diff"] = df["diff"].abs()
    df["score"] = df.groupby("dimension")["abs_diff"].transform("max")
    df = df.sort_values(
        ["score", "dimension", "abs_diff", "value"], ascending=[False, True, False, True]
    )
    order = list(dict.fromkeys(df["dimension"]))
    df["rank"] = df["dimension"].map({d: i + 1 for i, d in enumerate(order)})
    return df.drop(columns=["abs_diff"]).reset_index(drop=True)


def dimension_ranking(compared: pd.DataFrame) -> pd.DataFrame:
    """One row per dimension of a ``compare_cohorts`` result: rank, dimension, score and the
    value that differs most (with both shares).

    Example: ``dimension_ranking(compare_cohorts(con, {"outcome": "FAILURE"})).head(3)``
    """
    top = compared.drop_duplicates("dimension", keep="first")
    return top[
        ["rank", "dimension", "score", "value", "selection_share", "baseline_share", "diff"]
    ].reset_index(drop=True)


# ------------------------------------------------------------------------------------ diffs

# A span's events as a list of {t, i, c}, built by the per-span aggregate (so a span's gaps need
# no window over the events) and sorted (ts_us, then id) in ``spd``: only the spans of the two
# cohorts, not every span the aggregate reads.
_EVENT_LIST = "list({'t': ts_us, 'i': id, 'c': checkpoint_id}) AS e"

# Per cohort side (a/b), trace, system and checkpoint: the time from the previous checkpoint
# event of the span to this checkpoint's last attempt (retry waits included; 0 for the first
# checkpoint of a span, so a span's gaps add up to its duration), the offset of its first
# event from the trace start, and its attempts. ``spc`` has side, correlation_id, system_id, e
# (the span's events, _EVENT_LIST) and t0 (the trace's start).
_STEPS = """
spd AS MATERIALIZED (
    SELECT * REPLACE (list_sort(e) AS e),
           len(list_distinct(list_transform(e, x -> x.c))) AS checkpoints
    FROM spc),
per_cp AS (
    SELECT side, correlation_id, system_id, checkpoint_id,
           sum(gap_us) / 1000.0 AS ms,
           (max(ts_us) - sum(gap_us) - any_value(t0)) / 1000.0 AS start_ms,
           count(*) AS attempts
    FROM (SELECT side, correlation_id, system_id, t0, e[k].c AS checkpoint_id, e[k].t AS ts_us,
                 CASE WHEN k = 1 THEN 0 ELSE e[k].t - e[k - 1].t END AS gap_us
          FROM (SELECT *, unnest(range(1, len(e) + 1)) AS k FROM spd))
    GROUP BY ALL),
per_sys AS (
    SELECT side, correlation_id, system_id, NULL::VARCHAR AS checkpoint_id,
           (e[-1].t - e[1].t) / 1000.0 AS ms, (e[1].t - t0) / 1000.0 AS start_ms,
           len(e) - checkpoints + 1 AS attempts
    FROM spd),
per_trace AS (
    SELECT side, correlation_id, NULL::VARCHAR AS system_id, NULL::VARCHAR AS checkpoint_id,
           (max(e[-1].t) - min(e[1].t)) / 1000.0 AS ms, 0.0 AS start_ms,
           (sum(len(e) - checkpoints) + 1)::BIGINT AS attempts
    FROM spd GROUP BY side, correlation_id),
sizes AS (SELECT side, count(DISTINCT correlation_id) AS n FROM spd GROUP BY side),
parts AS (
    SELECT 'trace' AS level, * FROM per_trace UNION ALL
    SELECT 'system', * FROM per_sys UNION ALL
    SELECT 'checkpoint', * FROM per_cp)
SELECT level, side, system_id, checkpoint_id,
       min(system_rank(system_id)) AS system_rank,
       median(ms) AS ms, median(start_ms) AS start_ms, avg(attempts - 1) AS retries,
       count(*) AS traces, count(*) / any_value(sizes.n) AS share
FROM parts JOIN sizes USING (side)
GROUP BY ALL
"""

_DIFF_TRACES = (
    """
WITH rows AS (
    SELECT 'a' AS side, correlation_id, system_id, checkpoint_id, epoch_us(ts) AS ts_us, id
    FROM trace_rows(?)
    UNION ALL
    SELECT 'b', correlation_id, system_id, checkpoint_id, epoch_us(ts), id FROM trace_rows(?)),
spc AS (
    SELECT *, min(e[1].t) OVER (PARTITION BY side) AS t0
    FROM (SELECT side, correlation_id, system_id, """  # noqa: S608
    + _EVENT_LIST
    + """
          FROM rows GROUP BY side, correlation_id, system_id)),
"""
    + _STEPS
)

# One pass over the events (cohorts.cohort_ctes) with each span's event list.
_DIFF_COHORTS = (
    """
WITH {ctes},
spc AS (
    SELECT CASE coh.c WHEN 1 THEN 'a' ELSE 'b' END AS side, sp.correlation_id, sp.system_id,
           sp.e, coh.start_us AS t0
    FROM sp JOIN coh USING (correlation_id)),
"""  # noqa: S608
    + _STEPS
)


def _pivot(long: pd.DataFrame) -> pd.DataFrame:
    key = ["level", "system_id", "checkpoint_id"]
    long = long.astype({"system_id": object, "checkpoint_id": object})
    long[["system_id", "checkpoint_id"]] = long[["system_id", "checkpoint_id"]].fillna("")
    a = long[long["side"] == "a"].drop(columns="side").set_index(key)
    b = long[long["side"] == "b"].drop(columns="side").set_index(key)
    out = a.reset_index().merge(b.reset_index(), on=key, how="outer", suffixes=("_a", "_b"))
    out["system_rank"] = out["system_rank_a"].fillna(out["system_rank_b"]).astype("int64")
    out = out.rename(
        columns={
            f"{col}_{s}": f"{s}_{col}"
            for col in ("ms", "start_ms", "retries", "traces", "share")
            for s in "ab"
        }
    )
    out = out.drop(columns=["system_rank_a", "system_rank_b"])
    for s in "ab":
        out[f"{s}_traces"] = out[f"{s}_traces"].fillna(0).astype("int64")
        out[f"{s}_share"] = out[f"{s}_share"].fillna(0.0)
    out["change_ms"] = out["b_ms"] - out["a_ms"]
    out["side"] = "both"
    out.loc[out["a_traces"] == 0, "side"] = "b only"
    out.loc[out["b_traces"] == 0, "side"] = "a only"
    level_order = {"trace": 0, "system": 1, "checkpoint": 2}
    out["_lvl"] = out["level"].map(level_order)
    # checkpoints in the order they are reached: by where their step ends
    out["_start"] = pd.concat(
        [out["a_start_ms"] + out["a_ms"], out["b_start_ms"] + out["b_ms"]], axis=1
    ).min(axis=1)
    out = out.sort_values(["_lvl", "system_rank", "system_id", "_start", "checkpoint_id"])
    out = out.drop(columns=["_lvl", "_start"]).reset_index(drop=True)
    cols = ["level", "system_id", "checkpoint_id", "system_rank", "side", "a_ms", "b_ms",
            "change_ms", "a_start_ms", "b_start_ms", "a_retries", "b_retries", "a_traces",
            "b_traces", "a_share", "b_share"]  # fmt: skip
    return out[cols]


def diff_traces(con: Con, a: str, b: str) -> pd.DataFrame:
    """Two traces side by side: one row for the whole trace, one per system (span duration) and
    one per system and checkpoint (time from the previous checkpoint of its span, retry waits
    included), with ``a_ms``, ``b_ms``, ``change_ms`` (b - a), where each bar starts on each
    side, from the trace's start (``a_start_ms``, ``b_start_ms``: the span's first checkpoint,
    or the checkpoint before the step), retries on each side and ``side`` (``both``, ``a only``,
    ``b only``). Raises ``AnalysisError`` for an unknown trace.

    Example: ``diff_traces(con, "abc-123", "def-456").query("side != 'both'")``
    """
    long = _df(con, _DIFF_TRACES, [str(a), str(b)])
    found = set(long.loc[long["level"] == "trace", "side"])
    for side, cid in (("a", a), ("b", b)):
        if side not in found:
            raise AnalysisError(f"no events for trace {cid!r}")
    return _pivot(long)


def diff_cohorts(con: Con, a: SelectionLike, b: SelectionLike = None) -> pd.DataFrame:
    """Two cohorts side by side, like :func:`diff_traces` with each side's **median** over its
    traces (of those that reached the system or checkpoint); ``a_retries``/``b_retries`` are mean
    retries, ``a_share``/``b_share`` the share of the cohort's traces reaching it. ``b`` defaults
    to every trace not in ``a``.

    Example: ``diff_cohorts(con, {"min_ms": 2000}, {"max_ms": 800})``
    """
    ctes, params = cohort_ctes(a, b, _EVENT_LIST)
    long = _df(con, _DIFF_COHORTS.replace("{ctes}", ctes), params)
    found = set(long.loc[long["level"] == "trace", "side"])
    if "a" not in found:
        raise AnalysisError(f"cohort a ({as_selection(a).describe()}) has no traces")
    if "b" not in found:
        raise AnalysisError("cohort b has no traces")
    return _pivot(long)
