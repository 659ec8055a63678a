"""Two runs side by side (notebook 06): per-system failure rate and p95, failure reasons new /
gone / changed, variant shares, conformance and the ledger. Each side is its own DuckDB
connection (``tracelab.analysis.duck.connect``); the small per-run frames are merged in pandas.

Example::

    from tracelab.analysis import runcompare
    from tracelab.analysis.duck import connect
    a, b = connect("reports/r1/tracelab.db"), connect("reports/r2/tracelab.db")
    runcompare.system_changes(a, b)
"""

from __future__ import annotations

from typing import Any

import duckdb
import pandas as pd

from tracelab import analysis
from tracelab.analysis import variants
from tracelab.analysis.queries import _df

__all__ = [
    "conformance_changes",
    "headline",
    "ledger_changes",
    "reason_changes",
    "system_changes",
    "system_stats",
    "variant_changes",
]

Con = duckdb.DuckDBPyConnection


def system_stats(con: Con) -> pd.DataFrame:
    """Per system: spans, failed_spans (last status FAILURE), failure_rate (their share), events,
    failure_events, p50_ms and p95_ms of span duration.

    Example: ``system_stats(con).set_index("system_id")["failure_rate"]``
    """
    return _df(
        con,
        """SELECT system_id, count(*) AS spans,
                  count(*) FILTER (WHERE last_status = 'FAILURE') AS failed_spans,
                  count(*) FILTER (WHERE last_status = 'FAILURE') / count(*) AS failure_rate,
                  sum(events)::BIGINT AS events, sum(failures)::BIGINT AS failure_events,
                  quantile_cont(duration_ms, 0.5) AS p50_ms,
                  quantile_cont(duration_ms, 0.95) AS p95_ms
           FROM spans GROUP BY system_id ORDER BY min(system_rank), system_id""",
    )


def headline(con: Con) -> dict[str, Any]:
    """Headline numbers of one database: the overview counts, trace failure rate, p50/p95 trace
    duration (ms) and whether the ledger balances.

    Example: ``headline(con)["failure_rate"]``
    """
    out: dict[str, Any] = dict(analysis.overview(con))
    row = con.execute(
        """SELECT count(*) FILTER (WHERE outcome = 'FAILURE') / greatest(count(*), 1),
                  quantile_cont(duration_ms, 0.5), quantile_cont(duration_ms, 0.95)
           FROM traces"""
    ).fetchone()
    assert row is not None
    out["failure_rate"] = float(row[0] or 0.0)
    out["p50_ms"] = None if row[1] is None else float(row[1])
    out["p95_ms"] = None if row[2] is None else float(row[2])
    balance = analysis.ledger_balance(con)
    out["messages"] = int(balance["messages"])
    out["quarantined"] = int(balance["quarantined"])
    out["ledger_balanced"] = bool(balance["balanced"])
    return out


def _merge(a: pd.DataFrame, b: pd.DataFrame, key: list[str]) -> pd.DataFrame:
    out = a.merge(b, on=key, how="outer", suffixes=("_a", "_b"))
    return out


def system_changes(a: Con, b: Con) -> pd.DataFrame:
    """Per system, run a vs run b: spans, failure_rate and p95_ms of each and the change
    (b - a).

    Example: ``system_changes(con_a, con_b)[["system_id", "failure_rate_a", "failure_rate_b"]]``
    """
    cols = ["system_id", "spans", "failure_rate", "p95_ms"]
    out = _merge(system_stats(a)[cols], system_stats(b)[cols], ["system_id"])
    for c in ("spans",):
        out[f"{c}_a"] = out[f"{c}_a"].fillna(0).astype("int64")
        out[f"{c}_b"] = out[f"{c}_b"].fillna(0).astype("int64")
    out["failure_rate_change"] = out["failure_rate_b"] - out["failure_rate_a"]
    out["p95_change_ms"] = out["p95_ms_b"] - out["p95_ms_a"]
    return out


def reason_changes(a: Con, b: Con) -> pd.DataFrame:
    """Failure reasons of run a vs run b: failures and share of all failures in each, the share
    change and ``status`` (``new`` only in b, ``gone`` only in a, else ``changed``), sorted by
    the absolute share change.

    Example: ``reason_changes(con_a, con_b).query("status == 'new'")``
    """
    cols = ["failure_reason", "failures", "share"]
    out = _merge(analysis.reason_pareto(a)[cols], analysis.reason_pareto(b)[cols],
                 ["failure_reason"])  # fmt: skip
    for s in "ab":
        out[f"failures_{s}"] = out[f"failures_{s}"].fillna(0).astype("int64")
        out[f"share_{s}"] = out[f"share_{s}"].fillna(0.0)
    out["share_change"] = out["share_b"] - out["share_a"]
    out["status"] = "changed"
    out.loc[out["failures_a"] == 0, "status"] = "new"
    out.loc[out["failures_b"] == 0, "status"] = "gone"
    out["_abs"] = out["share_change"].abs()
    out = out.sort_values(["_abs", "failure_reason"], ascending=[False, True])
    return out.drop(columns="_abs").reset_index(drop=True)


def variant_changes(a: Con, b: Con, top: int = 10) -> pd.DataFrame:
    """Variant shares of run a vs run b for the variants among the ``top`` of either run
    (others folded into ``(other)``), sorted by the larger share; ``label`` is ``#1``, ``#2``...
    in that order.

    Example: ``variant_changes(con_a, con_b, top=5)``
    """
    va, vb = variants.variants(a, top=None), variants.variants(b, top=None)
    keep = set(va["variant"].head(top)) | set(vb["variant"].head(top))

    def fold(v: pd.DataFrame) -> pd.DataFrame:
        label = v["variant"].where(v["variant"].isin(keep), variants.OTHER)
        g = v.assign(variant=label).groupby("variant", as_index=False)
        return g.agg(traces=("traces", "sum"), failed=("failed", "sum"), share=("share", "sum"))

    out = _merge(fold(va), fold(vb), ["variant"])
    for s in "ab":
        out[f"traces_{s}"] = out[f"traces_{s}"].fillna(0).astype("int64")
        out[f"share_{s}"] = out[f"share_{s}"].fillna(0.0)
    out["share_change"] = out["share_b"] - out["share_a"]
    out["_top"] = out[["share_a", "share_b"]].max(axis=1)
    out.loc[out["variant"] == variants.OTHER, "_top"] = -1.0
    out = out.sort_values(["_top", "variant"], ascending=[False, True]).reset_index(drop=True)
    out.insert(0, "label", [v if v == variants.OTHER else f"#{i + 1}"
                            for i, v in enumerate(out["variant"])])  # fmt: skip
    return out.drop(columns=["_top", "failed_a", "failed_b"])


def conformance_changes(a: Con, b: Con, flow_a: Any, flow_b: Any | None = None) -> pd.DataFrame:
    """Conformance summaries of both runs side by side: kind, traces_a, traces_b and their shares
    of each run's traces.

    Example: ``conformance_changes(con_a, con_b, load_flow("data/flows/default.yaml"))``
    """
    ca = analysis.conformance_summary(a, flow_a)[["kind", "traces"]]
    cb = analysis.conformance_summary(b, flow_b if flow_b is not None else flow_a)
    out = _merge(ca, cb[["kind", "traces"]], ["kind"])
    for s, con in (("a", a), ("b", b)):
        total = analysis.overview(con)["traces"]
        out[f"share_{s}"] = out[f"traces_{s}"] / total if total else 0.0
    return out


def ledger_changes(a: Con, b: Con) -> pd.DataFrame:
    """The join-completeness ledgers of both runs side by side: label (``category: item``),
    category, item, messages and share of all messages in each run.

    Example: ``ledger_changes(con_a, con_b).query("category == 'quarantine'")``
    """
    key = ["category", "item"]
    out = _merge(analysis.ledger(a), analysis.ledger(b), key)
    for s in "ab":
        out[f"messages_{s}"] = out[f"messages_{s}"].fillna(0).astype("int64")
        total = out[f"messages_{s}"].sum()
        out[f"share_{s}"] = out[f"messages_{s}"] / total if total else 0.0
    out = out.sort_values(key).reset_index(drop=True)
    out.insert(0, "label", out["category"] + ": " + out["item"])
    return out
