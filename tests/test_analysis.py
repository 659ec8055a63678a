"""tracelab.analysis.duck + tracelab.analysis against databases built by the real pipeline.

The main fixture simulates a small seeded run of the default flow to a file and normalizes it into
a fresh SQLite file (``tracelab.notebook.example_db``); every expectation is computed
independently, in plain Python, from the simulator's truth file (the events a perfect
normalizer stores).
"""

from __future__ import annotations

import sqlite3
from collections import Counter, defaultdict
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pytest

from tracelab import analysis, notebook
from tracelab.analysis.duck import connect, extension_path, load_sqlite_extension, system_order
from tracelab.config import DEFAULT_FLOW
from tracelab.errors import AnalysisError
from tracelab.ingest.pipeline import normalize_files
from tracelab.simulate.flows import load_flow
from tracelab.simulate.truth import read_truth, read_truth_summary

FAULTS = {
    "duplicate": 0.02,
    "detail_first": 0.05,
    "missing_detail": 0.05,
    "orphan_detail": 0.03,
    "malformed": 0.01,
}


MS = timedelta(milliseconds=1)


def _ts(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ")


class Truth:
    """The simulator's truth, digested in plain Python."""

    def __init__(self, truth_path: Path, order: tuple[str, ...]) -> None:
        self.order = order  # the system order the analysis derives from the database
        self.rows: list[dict[str, Any]] = read_truth(truth_path).to_pylist()
        summary = read_truth_summary(truth_path)
        assert summary is not None
        self.summary = summary
        self.by_trace: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for r in self.rows:
            self.by_trace[r["correlation_id"]].append(r)

    def spans(self) -> dict[tuple[str, str], tuple[datetime, datetime]]:
        out: dict[tuple[str, str], tuple[datetime, datetime]] = {}
        for r in self.rows:
            key = (r["correlation_id"], r["system_id"])
            t = _ts(r["timestamp"])
            lo, hi = out.get(key, (t, t))
            out[key] = (min(lo, t), max(hi, t))
        return out

    def path(self, cid: str) -> str:
        systems = {r["system_id"] for r in self.by_trace[cid]}
        return ">".join(s for s in self.order if s in systems)

    def duration_ms(self, cid: str) -> int:
        ts = [_ts(r["timestamp"]) for r in self.by_trace[cid]]
        return (max(ts) - min(ts)) // MS


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Truth]:
    db, truth = notebook.example_db(
        tmp_path_factory.mktemp("analysis"), traces=400, seed=11, faults=FAULTS
    )
    return db, Truth(truth, system_order(db))


@pytest.fixture(scope="module")
def con(run: tuple[Path, Truth]) -> duckdb.DuckDBPyConnection:
    c = connect(run[0])
    yield c
    c.close()


@pytest.fixture(scope="module")
def truth(run: tuple[Path, Truth]) -> Truth:
    return run[1]


def _lines_db(tmp_path: Path, lines: list[str]) -> Path:
    """Normalize hand-written seed-format lines with the real pipeline."""
    raw = tmp_path / "raw.log"
    raw.write_text("\n".join(lines) + "\n", encoding="utf-8")
    db = tmp_path / "crafted.db"
    normalize_files([raw], db, progress=False)
    return db


# ------------------------------------------------------------------------------------ duck


def test_extension_comes_from_the_wheel() -> None:
    path = extension_path()
    assert path is not None and path.is_file()
    how = load_sqlite_extension(duckdb.connect())
    assert how == f"wheel:{path}"


def test_connect_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(AnalysisError, match="does not exist"):
        connect(tmp_path / "nope.db")


def test_connect_rejects_a_foreign_sqlite_file(tmp_path: Path) -> None:
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as c:
        c.execute("CREATE TABLE x (a INTEGER)")
    with pytest.raises(AnalysisError, match="not a tracelab database: missing events"):
        connect(other)


def test_database_is_attached_read_only(con: duckdb.DuckDBPyConnection, run: Any) -> None:
    with pytest.raises(duckdb.Error):
        con.execute("INSERT INTO src.counters VALUES ('x', 1)")
    with sqlite3.connect(run[0]) as c:
        assert c.execute("SELECT count(*) FROM counters WHERE name = 'x'").fetchone() == (0,)


# ---------------------------------------------------------------------------------- traces


def test_overview_matches_truth(con: duckdb.DuckDBPyConnection, truth: Truth) -> None:
    ov = analysis.overview(con)
    assert ov["events"] == len(truth.rows) == truth.summary["expected"]["events"]
    assert ov["traces"] == len(truth.by_trace)
    assert ov["spans"] == len(truth.spans())
    assert ov["failures"] == sum(r["status"] == "FAILURE" for r in truth.rows)


def test_trace_summaries_match_truth(con: duckdb.DuckDBPyConnection, truth: Truth) -> None:
    df = analysis.trace_summaries(con)
    assert len(df) == len(truth.by_trace)
    for row in df.itertuples():
        rows = truth.by_trace[row.correlation_id]
        assert row.path == truth.path(row.correlation_id)
        assert row.duration_ms == truth.duration_ms(row.correlation_id)
        assert row.events == len(rows)
        assert row.failures == sum(r["status"] == "FAILURE" for r in rows)
    assert analysis.trace_summaries(con, limit=5).shape[0] == 5


def test_spans_match_truth(con: duckdb.DuckDBPyConnection, truth: Truth) -> None:
    expected = truth.spans()
    df = analysis.spans(con)
    assert len(df) == len(expected)
    for row in df.itertuples():
        lo, hi = expected[(row.correlation_id, row.system_id)]
        assert row.duration_ms == (hi - lo) // MS
    cid = df["correlation_id"].iloc[0]
    one = analysis.spans(con, cid)
    assert set(one["system_id"]) == {r["system_id"] for r in truth.by_trace[cid]}


def test_path_distribution_matches_truth(con: duckdb.DuckDBPyConnection, truth: Truth) -> None:
    expected = Counter(truth.path(cid) for cid in truth.by_trace)
    df = analysis.path_distribution(con)
    assert dict(zip(df["path"], df["traces"], strict=True)) == expected
    assert df["share"].sum() == pytest.approx(1.0)
    # the simulator's route counts: path a passes payments, path b does not
    with_payments = sum(n for p, n in expected.items() if "payments" in p)
    assert with_payments == truth.summary["paths"]["a"]


def test_waterfall_of_one_trace(con: duckdb.DuckDBPyConnection, truth: Truth) -> None:
    cid = analysis.pick_trace(con)
    rows = analysis.waterfall(con, cid)
    expected = truth.by_trace[cid]
    assert len(rows) == len(expected)
    assert sorted(rows["status"]) == sorted(r["status"] for r in expected)
    tries = Counter((r["system_id"], r["checkpoint_id"]) for r in expected)
    got = rows.groupby(["system_id", "checkpoint_id"])["attempt"].max().to_dict()
    assert got == dict(tries)
    assert rows["offset_ms"].min() == 0
    assert rows["offset_ms"].max() == truth.duration_ms(cid)
    # the picked trace has the most failures
    most = max(sum(r["status"] == "FAILURE" for r in v) for v in truth.by_trace.values())
    assert (rows["status"] == "FAILURE").sum() == most


def test_waterfall_unknown_trace_is_an_error(con: duckdb.DuckDBPyConnection) -> None:
    with pytest.raises(AnalysisError, match="no events"):
        analysis.waterfall(con, "no-such-trace' OR '1'='1")


def test_critical_path_takes_the_later_parallel_branch(
    con: duckdb.DuckDBPyConnection, truth: Truth
) -> None:
    spans = truth.spans()
    checked = 0
    for cid in list(truth.by_trace)[:60]:
        cp = analysis.critical_path(con, cid)
        systems = cp["system_id"].tolist()
        present = {s for (c, s) in spans if c == cid}
        assert systems[0] == "inventory"
        # the last span on the path is the one that ends last
        last_end = max(hi for (c, _), (_, hi) in spans.items() if c == cid)
        assert spans[(cid, systems[-1])][1] == last_end
        if {"orders", "reporting"} <= present:
            o, r = spans[(cid, "orders")], spans[(cid, "reporting")]
            later = "orders" if (o[1], "orders") > (r[1], "reporting") else "reporting"
            assert later in systems
            checked += 1
        if "payments" in present and "payments" not in systems:
            # payments can only be skipped when a parallel branch started before it ended
            assert any(spans[(cid, s)][0] < spans[(cid, "payments")][1] for s in systems[1:])
    assert checked > 20
    share = analysis.critical_path_share(con)
    assert share["traces"].sum() == len(truth.by_trace)


def test_span_percentiles_match_pandas(con: duckdb.DuckDBPyConnection, truth: Truth) -> None:
    df = analysis.span_percentiles(con, (0.5, 0.9))
    spans = truth.spans()
    for row in df.itertuples():
        ms = pd.Series(
            [
                (hi - lo).total_seconds() * 1000
                for (_, s), (lo, hi) in spans.items()
                if s == row.system_id
            ]
        )
        assert row.spans == len(ms)
        assert row.p50 == pytest.approx(ms.quantile(0.5))
        assert row.p90 == pytest.approx(ms.quantile(0.9))
    with pytest.raises(AnalysisError):
        analysis.span_percentiles(con, (1.5,))


@pytest.mark.parametrize(
    "criteria",
    [
        {"outcome": "FAILURE"},
        {"path": "inventory>reporting>orders", "outcome": "SUCCESS"},  # the data's order
        {"system": "payments", "min_ms": 1000},
        {"max_ms": 600},
        {"reason": "insufficient funds"},
    ],
)
def test_search_matches_a_python_filter(
    con: duckdb.DuckDBPyConnection, truth: Truth, criteria: dict[str, Any]
) -> None:
    summaries = analysis.trace_summaries(con)
    keep = pd.Series(True, index=summaries.index)
    if "outcome" in criteria:
        keep &= summaries["outcome"] == criteria["outcome"]
    if "path" in criteria:
        keep &= summaries["path"] == criteria["path"]
    if "system" in criteria:
        keep &= summaries["path"].str.split(">").apply(lambda p: criteria["system"] in p)
    if "min_ms" in criteria:
        keep &= summaries["duration_ms"] >= criteria["min_ms"]
    if "max_ms" in criteria:
        keep &= summaries["duration_ms"] <= criteria["max_ms"]
    if "reason" in criteria:
        hit = {
            r["correlation_id"]
            for r in truth.rows
            if r["failure_reason"] and criteria["reason"] in r["failure_reason"].lower()
        }
        keep &= summaries["correlation_id"].isin(hit)
    expected = set(summaries.loc[keep, "correlation_id"])
    found = analysis.search(con, limit=10_000, **criteria)
    assert set(found["correlation_id"]) == expected
    assert expected  # every case selects something, so the comparison means something


def test_search_binds_values_as_data(con: duckdb.DuckDBPyConnection) -> None:
    assert analysis.search(con, path="x' OR '1'='1").empty
    assert analysis.search(con, reason="%'; DROP TABLE events; --").empty
    assert analysis.overview(con)["events"] > 0


# --------------------------------------------------------------------------------- failures


def test_failure_counts_match_truth(con: duckdb.DuckDBPyConnection, truth: Truth) -> None:
    df = analysis.failure_counts(con)
    events = Counter((r["system_id"], r["checkpoint_id"]) for r in truth.rows)
    fails = Counter(
        (r["system_id"], r["checkpoint_id"]) for r in truth.rows if r["status"] == "FAILURE"
    )
    for row in df.itertuples():
        assert row.events == events[(row.system_id, row.checkpoint_id)]
        assert row.failures == fails[(row.system_id, row.checkpoint_id)]
    assert len(df) == len(events)


def test_reason_pareto_matches_truth(con: duckdb.DuckDBPyConnection, truth: Truth) -> None:
    df = analysis.reason_pareto(con)
    expected = Counter(
        r["failure_reason"] or "(awaiting detail)" for r in truth.rows if r["status"] == "FAILURE"
    )
    assert dict(zip(df["failure_reason"], df["failures"], strict=True)) == expected
    assert df["failures"].is_monotonic_decreasing
    assert df["cumulative_share"].iloc[-1] == pytest.approx(1.0)
    assert expected["(awaiting detail)"] == truth.summary["expected"]["awaiting_detail"]


def test_retry_recovery_matches_truth(con: duckdb.DuckDBPyConnection, truth: Truth) -> None:
    df = analysis.retry_recovery(con)
    recovered = unrecovered = 0
    for rows in truth.by_trace.values():
        for r in rows:
            if r["status"] != "FAILURE":
                continue
            later_ok = any(
                o["status"] == "SUCCESS"
                and o["system_id"] == r["system_id"]
                and o["checkpoint_id"] == r["checkpoint_id"]
                and o["timestamp"] >= r["timestamp"]
                for o in rows
            )
            recovered += later_ok
            unrecovered += not later_ok
    assert df["recovered"].sum() == recovered
    assert df["unrecovered"].sum() == unrecovered
    assert (df["recovered"] + df["unrecovered"] == df["failures"]).all()
    # a trace stops only on an unrecovered failure
    assert unrecovered >= sum(truth.summary["stopped_in"].values())


@pytest.mark.parametrize("bucket_seconds", [None, 5, 60])
def test_failure_rate_over_time_adds_up(
    con: duckdb.DuckDBPyConnection, truth: Truth, bucket_seconds: int | None
) -> None:
    df = analysis.failure_rate_over_time(con, bucket_seconds=bucket_seconds)
    assert df["events"].sum() == len(truth.rows)
    assert df["failures"].sum() == sum(r["status"] == "FAILURE" for r in truth.rows)
    assert ((df["rate"] >= 0) & (df["rate"] <= 1)).all()
    if bucket_seconds:
        steps = df["bucket"].drop_duplicates().sort_values().diff().dropna()
        assert (steps.dt.total_seconds() % bucket_seconds == 0).all()


# ------------------------------------------------------------------------------ conformance


def test_conformance_of_a_clean_run_is_perfect(tmp_path: Path) -> None:
    db, _ = notebook.example_db(tmp_path, traces=120, seed=5, faults={})
    c = connect(db)
    flow = load_flow(DEFAULT_FLOW)
    assert analysis.conformance(c, flow).empty
    summary = analysis.conformance_summary(c, flow)
    assert summary.set_index("kind").loc["conforming", "traces"] == 120


def test_conformance_finds_skips_repeats_reorders_and_unknowns(tmp_path: Path) -> None:
    t = "2025-05-04T10:30:00.{:03d}"
    lines = [
        # t-skip: ORDER_CHECKPOINT_1 missing before ORDER_CHECKPOINT_2
        f"{t.format(1)} ORDER: ORDER_INITIALIZED - SUCCESS (ID: t-skip)",
        f"{t.format(2)} ORDER: ORDER_CHECKPOINT_2 - SUCCESS (ID: t-skip)",
        # t-repeat: ORDER_CHECKPOINT_1 succeeds twice; a retry (FAILURE then SUCCESS) is fine
        f"{t.format(3)} ORDER: ORDER_INITIALIZED - SUCCESS (ID: t-repeat)",
        f"{t.format(4)} ORDER: ORDER_CHECKPOINT_1 - FAILURE (ID: t-repeat) - boom",
        f"{t.format(5)} ORDER: ORDER_CHECKPOINT_1 - SUCCESS (ID: t-repeat)",
        f"{t.format(6)} ORDER: ORDER_CHECKPOINT_2 - SUCCESS (ID: t-repeat)",
        f"{t.format(7)} ORDER: ORDER_CHECKPOINT_1 - SUCCESS (ID: t-repeat)",
        # t-reorder: CHECKPOINT_2 before CHECKPOINT_1
        f"{t.format(8)} ORDER: ORDER_INITIALIZED - SUCCESS (ID: t-reorder)",
        f"{t.format(9)} ORDER: ORDER_CHECKPOINT_2 - SUCCESS (ID: t-reorder)",
        f"{t.format(10)} ORDER: ORDER_CHECKPOINT_1 - SUCCESS (ID: t-reorder)",
        # t-unknown: a checkpoint the flow does not declare
        f"{t.format(11)} ORDER: ORDER_INITIALIZED - SUCCESS (ID: t-unknown)",
        f"{t.format(12)} ORDER: ORDER_TELEPORTED - SUCCESS (ID: t-unknown)",
        # t-ok: a retried, conforming span
        f"{t.format(13)} ORDER: ORDER_INITIALIZED - SUCCESS (ID: t-ok)",
        f"{t.format(14)} ORDER: ORDER_CHECKPOINT_1 - FAILURE (ID: t-ok) - boom",
        f"{t.format(15)} ORDER: ORDER_CHECKPOINT_1 - SUCCESS (ID: t-ok)",
    ]
    c = connect(_lines_db(tmp_path, lines))
    dev = analysis.conformance(c, load_flow(DEFAULT_FLOW)).set_index("correlation_id")
    assert set(dev.index) == {"t-skip", "t-repeat", "t-reorder", "t-unknown"}
    assert dev.loc["t-skip", "skips"] == 1 and dev.loc["t-skip", "repeats"] == 0
    assert dev.loc["t-repeat", "repeats"] == 1 and dev.loc["t-repeat", "skips"] == 0
    assert dev.loc["t-reorder", "reorders"] == 1 and dev.loc["t-reorder", "skips"] == 0
    assert dev.loc["t-unknown", "unknown"] == 1
    summary = analysis.conformance_summary(c, {"orders": ["ORDER_INITIALIZED"]})
    assert set(summary["kind"]) == {"skips", "repeats", "reorders", "unknown", "conforming"}


def test_declared_flow_reads_a_flow_object() -> None:
    decl = analysis.declared_flow(load_flow(DEFAULT_FLOW))
    assert decl["inventory"][:2] == ["INITIATED", "CHECKPOINT_1"]
    assert set(decl) == {"inventory", "payments", "orders", "reporting"}
    with pytest.raises(AnalysisError):
        analysis.declared_flow(42)


# ----------------------------------------------------------------------------------- ledger


def test_ledger_adds_up_to_the_simulators_expectation(
    con: duckdb.DuckDBPyConnection, truth: Truth
) -> None:
    bal = analysis.ledger_balance(con)
    exp = truth.summary["expected"]
    assert bal["balanced"] is True
    assert bal["messages"] == truth.summary["messages"]
    for key in ("events", "joined", "orphans", "duplicates", "quarantined", "awaiting_detail"):
        assert bal[key] == exp[key], key
    led = analysis.ledger(con)
    assert led["messages"].sum() == truth.summary["messages"]
    q = analysis.quarantine_reasons(con)
    assert q["messages"].sum() == exp["quarantined"]
    assert set(led.loc[led["category"] == "quarantine", "item"]) == set(q["reason_class"])


def test_accuracy_against_truth(con: duckdb.DuckDBPyConnection, run: Any, tmp_path: Path) -> None:
    truth_path = run[0].with_name("example.truth.jsonl")
    acc = analysis.accuracy(con, truth_path)
    assert acc["match"].all(), acc[~acc["match"]]
    assert {"events", "traces", "ledger: joined"} <= set(acc["measure"])
    # a truth with one event less is caught
    lines = truth_path.read_text(encoding="utf-8").splitlines()
    short = tmp_path / "short.jsonl"
    short.write_text("\n".join(lines[1:]) + "\n", encoding="utf-8")
    bad = analysis.accuracy(con, short).set_index("measure")
    assert not bad.loc["events", "match"]
    assert bad.loc["events", "expected"] == len(lines) - 1
    with pytest.raises(AnalysisError):
        analysis.accuracy(con, tmp_path / "missing.jsonl")


# ----------------------------------------------------------------------------------- export


@pytest.mark.parametrize("what", ["events", "spans", "traces"])
@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_export_round_trips(
    con: duckdb.DuckDBPyConnection, tmp_path: Path, what: str, suffix: str
) -> None:
    out = analysis.export(con, what, tmp_path / "sub" / f"{what}{suffix}")
    assert out.is_file()
    back = pd.read_csv(out) if suffix == ".csv" else pd.read_parquet(out)
    expected = {"events": "events", "spans": "spans", "traces": "traces"}[what]
    (n,) = con.execute(f"SELECT count(*) FROM {expected}").fetchone()
    assert len(back) == n
    assert "correlation_id" in back.columns


def test_export_one_call_each(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    assert analysis.export_events(con, tmp_path / "e.parquet").is_file()
    assert analysis.export_spans(con, tmp_path / "s.csv").is_file()
    assert analysis.export_traces(con, tmp_path / "t.csv").is_file()
    with pytest.raises(AnalysisError, match="csv or .parquet"):
        analysis.export(con, "events", tmp_path / "e.json")
    with pytest.raises(AnalysisError, match="cannot export"):
        analysis.export(con, "secrets", tmp_path / "e.csv")


def test_materialized_connection_gives_the_same_answers(
    con: duckdb.DuckDBPyConnection, run: Any
) -> None:
    mem = connect(run[0], materialize=True)
    try:
        for fn in (
            analysis.trace_summaries,
            analysis.spans,
            analysis.span_percentiles,
            analysis.failure_counts,
            analysis.reason_pareto,
            analysis.retry_recovery,
            analysis.ledger,
        ):
            pd.testing.assert_frame_equal(fn(mem), fn(con), obj=fn.__name__)
        assert mem.execute("SELECT count(*) FROM events_memory").fetchone()[0] > 0
    finally:
        mem.close()


def test_retry_recovery_counts_a_failure_after_the_last_success(tmp_path: Path) -> None:
    t = "2025-05-04T10:30:00.{:03d}"
    lines = [
        f"{t.format(1)} ORDER: ORDER_CHECKPOINT_1 - FAILURE (ID: r-1) - first",
        f"{t.format(2)} ORDER: ORDER_CHECKPOINT_1 - SUCCESS (ID: r-1)",
        f"{t.format(3)} ORDER: ORDER_CHECKPOINT_1 - FAILURE (ID: r-1) - again",
        f"{t.format(4)} ORDER: ORDER_CHECKPOINT_2 - FAILURE (ID: r-1) - never fixed",
        f"{t.format(5)} ORDER: ORDER_CHECKPOINT_1 - FAILURE (ID: r-2) - retried",
        f"{t.format(6)} ORDER: ORDER_CHECKPOINT_1 - FAILURE (ID: r-2) - retried",
        f"{t.format(7)} ORDER: ORDER_CHECKPOINT_1 - SUCCESS (ID: r-2)",
    ]
    c = connect(_lines_db(tmp_path, lines))
    df = analysis.retry_recovery(c).set_index("checkpoint_id")
    assert df.loc["ORDER_CHECKPOINT_1", ["failures", "recovered", "unrecovered"]].tolist() == [
        4,
        3,
        1,
    ]
    assert df.loc["ORDER_CHECKPOINT_2", ["recovered", "unrecovered"]].tolist() == [0, 1]


@pytest.mark.parametrize(
    ("statuses", "last_status", "last"),
    [
        ([(1, "SUCCESS"), (2, "SUCCESS")], "SUCCESS", 1),
        ([(1, "FAILURE"), (2, "SUCCESS")], "SUCCESS", 1),  # recovered by a retry
        ([(1, "SUCCESS"), (2, "FAILURE")], "FAILURE", 1),
        ([(2, "SUCCESS"), (2, "FAILURE")], "FAILURE", 1),  # a tie: the failure wins
        ([(2, "FAILURE"), (2, "SUCCESS"), (1, "SUCCESS")], "FAILURE", 0),
        ([(3, "FAILURE"), (1, "SUCCESS")], "FAILURE", 0),
        ([(2, "SUCCESS"), (2, "SUCCESS"), (1, "SUCCESS")], "SUCCESS", 1),  # full tie: stored last
        ([(2, "FAILURE"), (2, "FAILURE"), (1, "SUCCESS")], "FAILURE", 1),
    ],
)
def test_span_last_status_and_ends(
    tmp_path: Path, statuses: list[tuple[int, str]], last_status: str, last: int
) -> None:
    t = "2025-05-04T10:30:00.{:03d}"
    lines = [
        f"{t.format(ms)} ORDER: ORDER_CHECKPOINT_{i} - {st} (ID: s-1)"
        + (" - broke" if st == "FAILURE" else "")
        for i, (ms, st) in enumerate(statuses)
    ]
    c = connect(_lines_db(tmp_path, lines))
    (row,) = analysis.spans(c).itertuples()
    assert row.last_status == last_status
    assert row.last_checkpoint == f"ORDER_CHECKPOINT_{last}"
    ms = [m for m, _ in statuses]
    assert (row.start_ts, row.end_ts) == (
        datetime(2025, 5, 4, 10, 30, 0, min(ms) * 1000),
        datetime(2025, 5, 4, 10, 30, 0, max(ms) * 1000),
    )
    assert row.duration_ms == max(ms) - min(ms)
    assert row.events == len(statuses)
    assert row.failures == sum(st == "FAILURE" for _, st in statuses)
    outcome = analysis.trace_summaries(c)["outcome"].item()
    assert outcome == last_status


def test_a_version_3_file_is_analysed_the_same_read_only(
    con: duckdb.DuckDBPyConnection, run: tuple[Path, Truth], tmp_path: Path
) -> None:
    old = tmp_path / "v3.db"
    with sqlite3.connect(run[0]) as src, sqlite3.connect(old) as dst:
        src.backup(dst)
    with sqlite3.connect(old) as c:  # as an older tracelab left it: no ts_us column
        c.execute("ALTER TABLE events DROP COLUMN ts_us")
        c.execute("DELETE FROM schema_version WHERE version = 4")
    before = old.read_bytes()
    c3 = connect(old)
    pd.testing.assert_frame_equal(analysis.spans(c3), analysis.spans(con))
    pd.testing.assert_frame_equal(analysis.trace_summaries(c3), analysis.trace_summaries(con))
    c3.close()
    assert old.read_bytes() == before  # read-only: not upgraded behind the user's back
