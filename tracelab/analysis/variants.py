"""Which paths and gaps are normal: variants, the directly-follows graph and the temporal profile.

- A trace's **variant** is its sequence of checkpoints, systems in canonical order and each
  system's checkpoints in time order (so parallel branches interleaving differently do not make
  new variants); a retried checkpoint appears once per attempt.
- A **step** is one checkpoint event following another: inside a span, the previous event of the
  same system; the first checkpoint of a span follows the last checkpoint of the span (of another
  system) that ended last at or before it started (the hand-off), else the trace's start.
  Parallel branches thus both follow the stage before them. The **directly-follows graph** counts
  steps per pair of checkpoints, with the median gap; ``START`` and ``END`` mark trace ends.
- The **temporal profile** is each step pair's gap mean and standard deviation; a step whose gap
  lies more than ``k`` deviations from its mean, or exceeds the ``max_gap_ms`` declared on the
  checkpoint it reaches (flow file), is a deviation.

Example::

    from tracelab.analysis import variants
    variants.variants(con, top=10)
    variants.directly_follows(con)
    variants.temporal_deviations(con, flow, k=3)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import duckdb
import pandas as pd

from tracelab.analysis.queries import MAY_REPEAT, REPEAT_MASKS, _df
from tracelab.errors import AnalysisError

__all__ = [
    "OTHER",
    "START",
    "END",
    "declared_gaps",
    "directly_follows",
    "temporal_deviations",
    "temporal_profile",
    "temporal_summary",
    "variants",
]

Con = duckdb.DuckDBPyConnection
START, END = "START", "END"
#: Label of the row that gathers the variants beyond the top N.
OTHER = "(other)"

# One pass over the events: per span its latest status (the spans view's rule) and its events;
# per trace the events sorted by (system rank, time, id) and the outcome.
_VARIANTS = """
WITH sp AS (
    SELECT correlation_id,
           max(ts_us * 2 + CASE WHEN status = 'FAILURE' THEN 1 ELSE 0 END) AS latest,
           list({'r': system_rank(system_id), 't': ts_us, 'i': id, 'c': checkpoint_id}) AS e
    FROM events GROUP BY correlation_id, system_id),
seq AS (
    SELECT correlation_id, list_transform(list_sort(flatten(list(e))), x -> x.c) AS cps,
           bool_or(latest & 1 = 1) AS failed
    FROM sp GROUP BY correlation_id)
SELECT array_to_string(cps, ' > ') AS variant, len(cps) AS checkpoints, count(*) AS traces,
       min(correlation_id) AS example, count(*) FILTER (WHERE failed) AS failed
FROM seq GROUP BY ALL
"""


def variants(con: Con, top: int | None = 10) -> pd.DataFrame:
    """Distinct checkpoint sequences with their traces and outcomes, most frequent first.

    Columns: rank, variant (checkpoints joined by `` > ``), checkpoints (length), traces,
    share, failed (traces whose outcome is FAILURE), failure_rate, example (a correlation id).
    With ``top`` set, the variants beyond the first ``top`` are folded into one ``(other)`` row.

    Example: ``variants(con, top=5)["share"].sum()`` -> ``1.0``
    """
    df = _df(con, _VARIANTS)
    df = df.sort_values(["traces", "variant"], ascending=[False, True]).reset_index(drop=True)
    total = int(df["traces"].sum())
    if top is not None and len(df) > max(int(top), 0):
        head, tail = df.iloc[: int(top)], df.iloc[int(top) :]
        other = pd.DataFrame(
            [{"variant": OTHER, "checkpoints": pd.NA, "traces": int(tail["traces"].sum()),
              "example": tail["example"].iloc[0], "failed": int(tail["failed"].sum())}]
        )  # fmt: skip
        df = pd.concat([head, other], ignore_index=True)
    df["share"] = df["traces"] / total if total else 0.0
    df["failure_rate"] = df["failed"] / df["traces"]
    df.insert(0, "rank", range(1, len(df) + 1))
    cols = ["rank", "variant", "checkpoints", "traces", "share", "failed", "failure_rate",
            "example"]  # fmt: skip
    return df[cols]


# Every step of every trace: (src system, src checkpoint) -> (dst system, dst checkpoint) and
# its gap in microseconds. The events are read once, into one list per span (``sp``: its events
# in (ts_us, id) order); steps inside a span pair each event with the previous one by unnesting
# the list and the list shifted by one (no window over the events). ``hand`` has one row per
# trace: its spans ``ps`` (end ``e``, system ``s``, last checkpoint ``c``, start ``st``, first
# checkpoint ``fc``) and, aligned with them, ``pp``: the span each was handed off from (of the
# trace's other spans that ended at or before it started, the latest, then the highest system
# id), picked from the trace's few spans with a list lambda rather than a self-join; ``last`` are
# the spans no other span was handed off from (they lead to END). ``{span}`` adds columns to
# ``sp`` (aggregates, or columns derived from them), ``{inner}``/``{handoff}`` to the steps.
_STEPS = """
sp AS MATERIALIZED (
    SELECT *{span}
    FROM (SELECT correlation_id, system_id,
                 list_sort(list({{'t': ts_us, 'i': id, 'c': checkpoint_id}})) AS e{aggregates}
          FROM events GROUP BY correlation_id, system_id)),
hand AS MATERIALIZED (
    SELECT correlation_id, ps, pp,
           list_filter(ps, m -> NOT list_contains(list_transform(pp, p -> p.s), m.s)) AS last
    FROM (SELECT correlation_id, ps,
                 list_transform(ps, m -> list_max(
                     list_filter(ps, x -> x.e <= m.st AND x.s <> m.s))) AS pp
          FROM (SELECT correlation_id,
                       list({{'e': e[-1].t, 's': system_id, 'c': e[-1].c, 'st': e[1].t,
                             'fc': e[1].c}}) AS ps
                FROM sp GROUP BY correlation_id))),
steps AS (
    SELECT correlation_id, system_id AS src_system, a.c AS src, system_id AS dst_system,
           b.c AS dst, b.t - a.t AS gap_us, false AS from_start{inner}
    FROM (SELECT correlation_id, system_id, unnest(e[:-2]) AS a, unnest(e[2:]) AS b{inner}
          FROM sp WHERE len(e) > 1)
    UNION ALL
    SELECT correlation_id, coalesce(p.s, ''), coalesce(p.c, 'START'), me.s, me.fc,
           me.st - coalesce(p.e, me.st), p IS NULL{handoff}
    FROM (SELECT correlation_id, unnest(ps) AS me, unnest(pp) AS p FROM hand))
"""

# The graph counts, per edge, the traces it occurs in. Every START, hand-off and END edge occurs
# once per span, and a trace has one span per system, so counting its steps counts its traces.
# So does counting the steps of a span whose checkpoints are all distinct (no checkpoint pair can
# repeat): only a span that may repeat a checkpoint (``rep``, screened by queries.REPEAT_MASKS)
# counts its distinct pairs instead (``rep_pairs``). No count(DISTINCT) over a million steps.
_DFG = (
    "WITH "  # noqa: S608
    + _STEPS.format(
        aggregates=",\n                 " + REPEAT_MASKS,
        span=", " + MAY_REPEAT.format(n="len(e)") + " AS rep",
        inner=", rep",
        handoff=", false",
    )
    + """,
rep_pairs AS (
    SELECT system_id AS src_system, q.a AS src, system_id AS dst_system, q.b AS dst,
           count(*) AS n
    FROM (SELECT system_id, unnest(list_distinct(list_transform(
                     list_zip(e[:-2], e[2:]), z -> {'a': z[1].c, 'b': z[2].c}))) AS q
          FROM sp WHERE rep)
    GROUP BY ALL),
edges AS (
    SELECT src_system, src, dst_system, dst, count(*) AS steps,
           count(*) FILTER (WHERE NOT rep) AS traces,
           median(gap_us) FILTER (WHERE NOT from_start) / 1000.0 AS median_gap_ms,
           avg(gap_us) FILTER (WHERE NOT from_start) / 1000.0 AS mean_gap_ms
    FROM steps GROUP BY ALL
    UNION ALL
    SELECT y.s, y.c, '', 'END', count(*), count(*), NULL, NULL
    FROM (SELECT unnest(last) AS y FROM hand) GROUP BY ALL)
SELECT src_system, src, dst_system, dst, steps, (traces + coalesce(n, 0))::BIGINT AS traces,
       median_gap_ms, mean_gap_ms
FROM edges LEFT JOIN rep_pairs USING (src_system, src, dst_system, dst)
ORDER BY steps DESC, src_system, src, dst_system, dst
"""
)

_PLAIN_STEPS = "WITH " + _STEPS.format(aggregates="", span="", inner="", handoff="")


def directly_follows(con: Con) -> pd.DataFrame:
    """The directly-follows graph: one row per edge between checkpoints (see the module
    docstring for what follows what), with ``steps`` (how often), ``traces`` (in how many
    traces), ``median_gap_ms`` and ``mean_gap_ms``. ``START`` edges lead to a trace's first
    checkpoints, ``END`` edges leave each span no other span followed (system ``''``).

    Example: ``directly_follows(con).query("src == 'START'")``
    """
    return _df(con, _DFG)


_PROFILE = (
    _PLAIN_STEPS  # noqa: S608
    + """
SELECT src_system, src, dst_system, dst, count(*) AS steps,
       avg(gap_us) / 1000.0 AS mean_ms, coalesce(stddev_samp(gap_us), 0) / 1000.0 AS sd_ms,
       min(gap_us) / 1000.0 AS min_ms, max(gap_us) / 1000.0 AS max_ms
FROM steps WHERE NOT from_start
GROUP BY ALL ORDER BY dst_system, src_system, src, dst
"""
)


def temporal_profile(con: Con) -> pd.DataFrame:
    """Per pair of consecutive checkpoints (a step, as in :func:`directly_follows`): steps,
    ``mean_ms``, ``sd_ms`` (sample standard deviation), ``min_ms``, ``max_ms`` of the gap.

    Example: ``temporal_profile(con).sort_values("mean_ms").tail()``
    """
    return _df(con, _PROFILE)


def declared_gaps(flow: Any) -> dict[tuple[str, str], float]:
    """``{(system, checkpoint): max_gap_ms}`` declared in a flow (``Flow`` or a mapping
    ``{system: {checkpoint: max_gap_ms}}``); checkpoints without a bound are left out.

    Example: ``declared_gaps(load_flow("data/flows/default.yaml"))``
    """
    if flow is None:
        return {}
    if isinstance(flow, Mapping):
        return {
            (str(s), str(c)): float(v)
            for s, cps in flow.items()
            for c, v in dict(cps).items()
            if v is not None
        }
    systems = getattr(flow, "systems", None)
    if not isinstance(systems, Mapping):
        raise AnalysisError(f"cannot read declared gaps from {type(flow).__name__}")
    return {
        (str(name), cp.name): float(cp.max_gap_ms)
        for name, system in systems.items()
        for cp in system.checkpoints
        if getattr(cp, "max_gap_ms", None) is not None
    }


_DEVIATIONS = (
    _PLAIN_STEPS  # noqa: S608
    + """,
st AS (SELECT * FROM steps WHERE NOT from_start),
prof AS (
    SELECT src_system, src, dst_system, dst, avg(gap_us) AS mean_us,
           stddev_samp(gap_us) AS sd_us
    FROM st GROUP BY ALL),
d AS (
    SELECT st.correlation_id, st.src_system, st.src, st.dst_system, st.dst,
           st.gap_us / 1000.0 AS gap_ms, prof.mean_us / 1000.0 AS mean_ms,
           prof.sd_us / 1000.0 AS sd_ms,
           CASE WHEN prof.sd_us > 0 THEN (st.gap_us - prof.mean_us) / prof.sd_us END AS z,
           b.max_gap_ms AS bound_ms
    FROM st JOIN prof USING (src_system, src, dst_system, dst)
         LEFT JOIN declared_gap_bounds b
                ON b.system_id = st.dst_system AND b.checkpoint_id = st.dst)
SELECT *, abs(z) > ? AS beyond_k, coalesce(gap_ms > bound_ms, false) AS over_bound
FROM d WHERE abs(z) > ? OR gap_ms > bound_ms
ORDER BY correlation_id, dst_system, dst, gap_ms DESC
"""
)


def temporal_deviations(con: Con, flow: Any = None, k: float = 3.0) -> pd.DataFrame:
    """Steps whose gap lies more than ``k`` standard deviations from its pair's mean, or
    exceeds the ``max_gap_ms`` the flow declares on the checkpoint reached.

    Columns: correlation_id, src_system, src, dst_system, dst, gap_ms, mean_ms, sd_ms, z,
    bound_ms, beyond_k, over_bound; one row per deviating step.

    Example: ``temporal_deviations(con, load_flow("data/flows/default.yaml"), k=3)``
    """
    if not k > 0:
        raise AnalysisError(f"k must be > 0, got {k}")
    bounds = declared_gaps(flow)
    frame = pd.DataFrame(
        [(s, c, v) for (s, c), v in bounds.items()],
        columns=["system_id", "checkpoint_id", "max_gap_ms"],
    ).astype({"system_id": str, "checkpoint_id": str, "max_gap_ms": float})
    con.register("declared_gap_bounds", frame)
    try:
        return _df(con, _DEVIATIONS, [float(k), float(k)])
    finally:
        con.unregister("declared_gap_bounds")


def temporal_summary(deviations: pd.DataFrame, k: float = 3.0) -> pd.DataFrame:
    """Steps and traces per kind of temporal deviation (a frame like
    ``analysis.conformance_summary``): ``gap beyond k sd`` and ``gap over declared bound``.

    Example: ``temporal_summary(temporal_deviations(con, flow))``
    """
    rows = []
    for kind, col in (
        (f"gap beyond {k:g} sd", "beyond_k"),
        ("gap over declared bound", "over_bound"),
    ):
        hit = deviations[deviations[col].astype(bool)]
        rows.append((kind, len(hit), hit["correlation_id"].nunique()))
    return pd.DataFrame(rows, columns=["kind", "steps", "traces"])
