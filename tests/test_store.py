"""SQLite store + pipeline on a real database file: joins, duplicates, quarantine, restarts."""

from __future__ import annotations

import itertools
import json
import random
import re
import sqlite3
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from tracelab.errors import StoreError
from tracelab.ingest.pipeline import Normalizer
from tracelab.ingest.schema import MIGRATIONS, SCHEMA_VERSION
from tracelab.ingest.store import SQLiteStore, Summary


def inv_fail(cid: str, ts: str, cp: str = "CHECKPOINT_1") -> bytes:
    return json.dumps(
        {"system": "inventory", "checkpoint": cp, "status": "FAILURE", "timestamp": ts,
         "correlation_id": cid}
    ).encode()  # fmt: skip


def inv_ok(cid: str, ts: str, cp: str = "CHECKPOINT_2") -> bytes:
    return json.dumps(
        {"system": "inventory", "checkpoint": cp, "status": "SUCCESS", "timestamp": ts,
         "correlation_id": cid}
    ).encode()  # fmt: skip


def inv_detail(cid: str, reason: str) -> bytes:
    return json.dumps(
        {"system": "inventory", "correlation_id": cid, "failure_reason": reason}
    ).encode()


def pay_fail(cid: str, ts: str, cp: str = "PAYMENTS_CHECKPOINT_2") -> bytes:
    return f"{ts} PAYMENTS: {cp} - FAILURE (ID: {cid})".encode()


def pay_detail(cid: str, ts: str, reason: str) -> bytes:
    return f"{ts} PAYMENTS PAYMENTS_ERROR: (ID: {cid}) - {reason}".encode()


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "t.db"


@pytest.fixture
def store(db: Path):
    s = SQLiteStore(db)
    yield s
    s.close()


def feed(store: SQLiteStore, lines: list[bytes], batch: int = 1000, source: str = "f") -> Summary:
    norm = Normalizer(store)
    total = Summary()
    for start in range(0, len(lines), batch):
        chunk = lines[start : start + batch]
        total = total + norm.process_batch(
            [(v, source, None, start + i + 1) for i, v in enumerate(chunk)]
        )
    return total


def q(store: SQLiteStore, sql: str, *args: object) -> list[tuple]:
    return store.connection.execute(sql, args).fetchall()


# -- schema -------------------------------------------------------------------------------------


def test_schema_created_versioned_wal(store: SQLiteStore, db: Path) -> None:
    assert q(store, "SELECT max(version) FROM schema_version") == [(SCHEMA_VERSION,)]
    assert q(store, "PRAGMA journal_mode") == [("wal",)]
    names = {r[0] for r in q(store, "SELECT name FROM sqlite_master")}
    assert {
        "events",
        "details",
        "orphan_details",
        "quarantine",
        "counters",
        "kafka_offsets",
    } <= names
    indexes = {r[0] for r in q(store, "SELECT name FROM sqlite_master WHERE type = 'index'")}
    # only the indexes tracelab's own SQLite queries search (see the query plan test below)
    assert {i for i in indexes if not i.startswith("sqlite_autoindex")} == {
        "events_correlation",
        "details_key",
        "quarantine_hash",
    }
    store.close()
    again = SQLiteStore(db)  # reopening does not migrate twice
    assert q(again, "SELECT version FROM schema_version") == [(SCHEMA_VERSION,)]
    again.close()


def test_migrates_from_version_1_keeping_rows(db: Path) -> None:
    conn = sqlite3.connect(db)
    conn.executescript(MIGRATIONS[0])
    conn.execute("INSERT INTO schema_version VALUES (1, 'then')")
    conn.execute("INSERT INTO counters VALUES ('messages', 5)")
    conn.commit()
    conn.close()
    s = SQLiteStore(db)
    assert q(s, "SELECT max(version) FROM schema_version") == [(SCHEMA_VERSION,)]
    assert s.counters()["messages"] == 5
    assert q(s, "SELECT count(*) FROM sqlite_master WHERE name = 'events_msg_hash'") == [(0,)]
    s.close()


def _shape(path: Path) -> dict[str, object]:
    """Tables with their columns, indexes with their columns, views: what a schema is."""
    with sqlite3.connect(path) as conn:
        objects = conn.execute(
            "SELECT type, name, tbl_name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'"
        ).fetchall()
        shape: dict[str, object] = {}
        for kind, name, table in objects:
            if kind == "table":
                shape[name] = [tuple(r) for r in conn.execute(f"PRAGMA table_info('{name}')")]
            elif kind == "index":
                cols = [r[2] for r in conn.execute(f"PRAGMA index_info('{name}')")]
                unique = conn.execute(
                    f"SELECT \"unique\" FROM pragma_index_list('{table}') WHERE name = ?", (name,)
                ).fetchone()[0]
                shape[name] = (table, cols, unique)
            else:
                shape[name] = (kind, table)
        return shape


def test_new_file_in_one_step_equals_every_migration_in_turn(tmp_path: Path) -> None:
    fresh, migrated = tmp_path / "fresh.db", tmp_path / "migrated.db"
    SQLiteStore(fresh).close()
    conn = sqlite3.connect(migrated)
    conn.executescript(MIGRATIONS[0])
    conn.execute("INSERT INTO schema_version VALUES (1, 'then')")
    conn.commit()
    conn.close()
    SQLiteStore(migrated).close()
    assert _shape(fresh) == _shape(migrated)
    with sqlite3.connect(fresh) as conn:  # one step: one version row
        assert conn.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]
    with SQLiteStore(fresh) as s, SQLiteStore(migrated) as m:
        lines = [inv_fail("c", "2025-05-04T10:30:00"), inv_detail("c", "R"), b"junk"]
        assert feed(s, lines) == feed(m, lines)


def _as_version_3(db: Path) -> None:
    """Make ``db`` a version 3 file, as an older tracelab left it (no ts_us)."""
    conn = sqlite3.connect(db)
    conn.execute("ALTER TABLE events DROP COLUMN ts_us")
    conn.execute("DELETE FROM schema_version WHERE version > 3")
    conn.execute("INSERT INTO schema_version VALUES (3, 'then')")
    conn.commit()
    conn.close()


@pytest.mark.parametrize(
    ("text", "moment"),
    [
        ("2025-05-04T10:30:00.123456Z", datetime(2025, 5, 4, 10, 30, 0, 123456)),
        ("2024-02-29T23:59:59.999999", datetime(2024, 2, 29, 23, 59, 59, 999999)),
        ("2025-05-04T12:30:00.5+02:00", datetime(2025, 5, 4, 10, 30, 0, 500000)),
        ("1970-01-01T00:00:00Z", datetime(1970, 1, 1)),
        ("1969-12-31T23:59:59.25Z", datetime(1969, 12, 31, 23, 59, 59, 250000)),
    ],
)
def test_ts_us_is_exact_utc_microseconds_written_and_migrated(
    db: Path, text: str, moment: datetime
) -> None:
    expected = (moment - datetime(1970, 1, 1)) // timedelta(microseconds=1)
    line = json.dumps({"system": "reporting", "checkpoint": "R", "status": "SUCCESS",
                       "timestamp": text, "correlation_id": "t-1"}).encode()  # fmt: skip
    with SQLiteStore(db) as s:
        feed(s, [line, b"2025-05-04T10:30:00.250 ORDER: A - SUCCESS (ID: t-2)"])
        written = q(s, "SELECT ts_us FROM events ORDER BY id")
    assert written == [(expected,), (1746354600250000,)]
    _as_version_3(db)
    with SQLiteStore(db) as s:  # the migration computes the same values for existing rows
        assert q(s, "SELECT ts_us FROM events ORDER BY id") == written
        assert q(s, "SELECT max(version) FROM schema_version") == [(SCHEMA_VERSION,)]


def test_newer_schema_is_refused(db: Path) -> None:
    SQLiteStore(db).close()
    conn = sqlite3.connect(db)
    conn.execute("INSERT INTO schema_version VALUES (99, 'future')")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match="newer"):
        SQLiteStore(db)


@pytest.mark.parametrize("kind", ["under_a_file", "not_a_database", "a_folder"])
def test_unusable_database_path_is_a_store_error(tmp_path: Path, kind: str) -> None:
    blocker = tmp_path / "file"
    blocker.write_bytes(b"x" * 200)
    path = {
        "under_a_file": blocker / "t.db",
        "not_a_database": blocker,
        "a_folder": tmp_path,
    }[kind]
    with pytest.raises(StoreError):
        SQLiteStore(path)


# -- joins --------------------------------------------------------------------------------------


def events(store: SQLiteStore) -> list[tuple]:
    return q(
        store,
        "SELECT system_id, checkpoint_id, timestamp, status, correlation_id, failure_reason,"
        " join_state FROM events ORDER BY system_id, correlation_id, timestamp, checkpoint_id",
    )


def details(store: SQLiteStore) -> list[tuple]:
    return q(
        store,
        "SELECT d.system_id, d.correlation_id, d.failure_reason, d.timestamp, e.checkpoint_id,"
        " e.timestamp FROM details d LEFT JOIN events e ON e.id = d.event_id"
        " ORDER BY d.system_id, d.correlation_id, d.failure_reason",
    )


@pytest.mark.parametrize("together", [True, False])
@pytest.mark.parametrize("detail_first", [False, True])
def test_inventory_join_both_arrival_orders(
    store: SQLiteStore, detail_first: bool, together: bool
) -> None:
    fail, det = inv_fail("abc-123", "2025-05-04T10:30:00.123"), inv_detail("abc-123", "R2")
    lines = [det, fail] if detail_first else [fail, det]
    s = feed(store, lines, batch=2 if together else 1)
    assert events(store) == [
        ("inventory", "CHECKPOINT_1", "2025-05-04T10:30:00.123000Z", "FAILURE", "abc-123", "R2",
         "joined"),
    ]  # fmt: skip
    assert q(store, "SELECT count(*) FROM orphan_details") == [(0,)]
    assert store.summary() == Summary(read=2, events=1, joined=1)
    assert s.read == 2 and s.adds_up


def test_failure_is_stored_at_once_then_updated(store: SQLiteStore) -> None:
    feed(store, [pay_fail("p1", "2025-05-04T10:32:00")])
    assert events(store)[0][5:] == (None, "awaiting_detail")
    feed(store, [pay_detail("p1", "2025-05-04T10:32:01", "card declined")])
    assert events(store)[0][5:] == ("card declined", "joined")


def test_detail_waits_across_thousands_of_messages_and_a_restart(db: Path) -> None:
    s = SQLiteStore(db)
    noise = [inv_ok(f"n-{i}", "2025-05-04T10:00:00") for i in range(5000)]
    feed(s, [inv_detail("late", "R-late"), pay_detail("late", "2025-05-04T11:00:00", "P")] + noise)
    assert q(s, "SELECT count(*) FROM orphan_details") == [(2,)]
    s.close()
    s = SQLiteStore(db)  # restart: join state comes from the database
    feed(
        s,
        noise[:10]
        + [inv_fail("late", "2025-05-04T10:59:00"), pay_fail("late", "2025-05-04T10:59:59")],
    )
    got = q(
        s, "SELECT failure_reason, join_state FROM events WHERE correlation_id = 'late' ORDER BY 1"
    )
    assert got == [("P", "joined"), ("R-late", "joined")]
    assert q(s, "SELECT count(*) FROM orphan_details") == [(0,)]
    summary = s.summary()
    assert summary.adds_up and summary.duplicates == 10 and summary.joined == 2
    s.close()


def test_never_two_details_for_one_failure(store: SQLiteStore) -> None:
    feed(store, [inv_fail("c", "2025-05-04T10:30:00"), inv_detail("c", "A"), inv_detail("c", "B")])
    assert events(store)[0][5:] == ("A", "joined")
    assert q(store, "SELECT correlation_id, failure_reason FROM orphan_details") == [("c", "B")]
    # a second failure turns up: the waiting orphan is attached to it
    feed(store, [inv_fail("c", "2025-05-04T10:31:00", "CHECKPOINT_2")])
    assert [e[5:] for e in events(store)] == [("A", "joined"), ("B", "joined")]
    assert q(store, "SELECT count(*) FROM orphan_details") == [(0,)]
    assert q(store, "SELECT count(DISTINCT event_id), count(*) FROM details") == [(2, 2)]


def test_inventory_oldest_unexplained_failure_first(store: SQLiteStore) -> None:
    feed(
        store,
        [inv_fail("c", "2025-05-04T10:31:00", "C2"), inv_fail("c", "2025-05-04T10:30:00", "C1"),
         inv_detail("c", "first")],
    )  # fmt: skip
    assert [(e[1], e[5], e[6]) for e in events(store)] == [
        ("C1", "first", "joined"),
        ("C2", None, "awaiting_detail"),
    ]


def test_payments_detail_takes_nearest_failure_at_or_before(store: SQLiteStore) -> None:
    feed(
        store,
        [pay_detail("p", "2025-05-04T10:32:06", "second"),
         pay_fail("p", "2025-05-04T10:32:00", "P1"),
         pay_detail("p", "2025-05-04T10:32:01", "first"),
         pay_fail("p", "2025-05-04T10:32:05", "P2"),
         pay_detail("p", "2025-05-04T10:31:00", "too early")],
    )  # fmt: skip
    t = "2025-05-04T10:3"
    assert details(store) == [
        ("payments", "p", "first", t + "2:01.000000Z", "P1", t + "2:00.000000Z"),
        ("payments", "p", "second", t + "2:06.000000Z", "P2", t + "2:05.000000Z"),
        ("payments", "p", "too early", t + "1:00.000000Z", None, None),
    ]


def test_details_only_join_their_own_system(store: SQLiteStore) -> None:
    feed(store, [pay_fail("x", "2025-05-04T10:32:00"), inv_detail("x", "inv reason")])
    assert events(store)[0][5:] == (None, "awaiting_detail")
    assert q(store, "SELECT system_id FROM orphan_details") == [("inventory",)]


def _canonical(store: SQLiteStore) -> tuple[list[tuple], list[tuple]]:
    return events(store), details(store)


def test_final_database_independent_of_arrival_order_and_batching(tmp_path: Path) -> None:
    lines = [
        pay_fail("p", "2025-05-04T10:32:00", "P1"),
        pay_detail("p", "2025-05-04T10:32:01", "r1"),
        pay_fail("p", "2025-05-04T10:32:05", "P2"),
        pay_detail("p", "2025-05-04T10:32:07", "r2"),
        inv_fail("i", "2025-05-04T10:30:00", "C1"),
        inv_detail("i", "same"),
        inv_fail("i", "2025-05-04T10:31:00", "C2"),
        inv_detail("i", "same"),  # identical bytes: a duplicate, wherever it lands
        inv_detail("j", "orphan"),
        b"2025-05-04T10:30:00 ORDER: CHECKPOINT_B - FAILURE (ID: i) - X",
    ]
    rng = random.Random(3)
    orders = [lines, lines[::-1]] + [rng.sample(lines, len(lines)) for _ in range(20)]
    results = set()
    for n, order in enumerate(orders):
        s = SQLiteStore(tmp_path / f"o{n}.db")
        summary = feed(s, order, batch=1 + n % 4)
        assert summary.adds_up and summary.duplicates == 1
        ev, de = _canonical(s)
        results.add((tuple(ev), tuple(de)))
        s.close()
    assert len(results) == 1
    ev, de = results.pop()
    assert [e[6] for e in ev if e[0] == "payments"] == ["joined", "joined"]
    assert [e[6] for e in ev if e[0] == "inventory"] == ["joined", "awaiting_detail"]
    assert ("inventory", "j", "orphan", None, None, None) in de


def test_permutations_of_a_small_payments_trace(tmp_path: Path) -> None:
    lines = [
        pay_fail("p", "2025-05-04T10:32:00", "P1"),
        pay_fail("p", "2025-05-04T10:32:05", "P2"),
        pay_detail("p", "2025-05-04T10:32:01", "r1"),
        pay_detail("p", "2025-05-04T10:32:06", "r2"),
    ]
    seen = set()
    for n, order in enumerate(itertools.permutations(lines)):
        s = SQLiteStore(tmp_path / f"p{n}.db")
        feed(s, list(order), batch=1)
        seen.add(tuple(details(s)))
        s.close()
    t = "2025-05-04T10:32:0"
    assert seen == {
        (
            ("payments", "p", "r1", t + "1.000000Z", "P1", t + "0.000000Z"),
            ("payments", "p", "r2", t + "6.000000Z", "P2", t + "5.000000Z"),
        ),
    }


# -- duplicates ---------------------------------------------------------------------------------


def test_duplicates_change_nothing(store: SQLiteStore) -> None:
    fail = inv_fail("c", "2025-05-04T10:30:00")
    det = inv_detail("c", "R")
    bad = b"\xffgarbage"
    feed(store, [fail, det, bad, fail + b"\r\n", det + b"\n"], batch=10)  # same batch
    feed(store, [det, fail, bad, inv_fail("c", "2025-05-04T10:35:00")], batch=1)  # later batches
    s = store.summary()
    assert s == Summary(read=9, events=2, joined=1, orphans=0, duplicates=5, quarantined=1)
    assert q(store, "SELECT count(*) FROM details") == [(1,)]
    # the duplicate detail did not explain the second failure
    assert [e[5:] for e in events(store)] == [("R", "joined"), (None, "awaiting_detail")]


def test_leading_whitespace_is_not_the_same_message(store: SQLiteStore) -> None:
    line = b"2025-05-04T10:30:00 ORDER: A - SUCCESS (ID: x)"
    s = feed(store, [line, b" " + line])
    assert s.duplicates == 0 and s.events == 2


# -- quarantine and lineage ---------------------------------------------------------------------


def test_quarantine_keeps_raw_bytes_reason_and_lineage(store: SQLiteStore) -> None:
    raw = [
        b"\xff\xfe not utf8",
        b'{"system": "inventory"',
        b"2025-05-04T10:30:00 ORDER: A - MAYBE (ID: x)",
    ]
    norm = Normalizer(store)
    s = norm.process_batch(
        [(raw[0], "raw-logs", 3, 17), (b"  \r\n", "raw-logs", 3, 18), (raw[1], "raw-logs", 3, 19)],
        offsets={("raw-logs", 3): 20},
    )
    s2 = norm.process_batch([(raw[2] + b"\r\n", "/data/x.log", None, 4)])
    assert s.quarantined == 2 and s.blank == 1 and s.read == 2 and s2.quarantined == 1
    rows = q(store, "SELECT raw, reason, source, partition, offset FROM quarantine ORDER BY id")
    assert [r[0] for r in rows] == raw
    assert [(r[2], r[3], r[4]) for r in rows] == [
        ("raw-logs", 3, 17),
        ("raw-logs", 3, 19),
        ("/data/x.log", None, 4),
    ]
    assert "UTF-8" in rows[0][1] and "JSON" in rows[1][1] and "MAYBE" in rows[2][1]
    assert store.kafka_offsets("raw-logs") == {3: 20}
    assert store.kafka_offsets("other") == {}


def test_sql_and_html_are_stored_verbatim(store: SQLiteStore) -> None:
    reason = "x'); DROP TABLE events; -- <b onmouseover=alert(1)>"
    cid = "Robert'; DROP TABLE details;--<i>"
    feed(
        store,
        [pay_fail(cid, "2025-05-04T10:32:00"), pay_detail(cid, "2025-05-04T10:32:01", reason)],
    )
    assert q(store, "SELECT correlation_id, failure_reason FROM events") == [(cid, reason)]


def test_offsets_are_written_with_their_batch_only(store: SQLiteStore) -> None:
    norm = Normalizer(store)
    norm.process_batch(
        [(inv_ok("a", "2025-05-04T10:00:00"), "raw-logs", 0, 5)], {("raw-logs", 0): 6}
    )
    norm.process_batch([], {("raw-logs", 1): 3})
    norm.process_batch([(b"x", "raw-logs", 0, 6)], {("raw-logs", 0): 7})
    assert store.kafka_offsets("raw-logs") == {0: 7, 1: 3}


def test_two_stores_share_one_file(db: Path) -> None:
    a, b = SQLiteStore(db), SQLiteStore(db)
    feed(a, [inv_fail("s", "2025-05-04T10:30:00")], source="a")
    feed(b, [inv_detail("s", "R"), inv_ok("t", "2025-05-04T10:30:00")], source="b")
    feed(a, [inv_ok("u", "2025-05-04T10:30:00")], source="a")
    assert a.summary() == b.summary() == Summary(read=4, events=3, joined=1)
    assert q(a, "SELECT count(DISTINCT id) FROM events") == [(3,)]
    a.close()
    b.close()


def test_summary_validation_and_format() -> None:
    with pytest.raises(ValueError):
        Summary(read=-1)
    s = Summary(read=5, events=2, joined=1, orphans=1, duplicates=0, quarantined=1, blank=2)
    assert s.adds_up
    text = s.format()
    assert "5 = 2 + 1 + 1 + 0 + 1" in text and "blank" in text
    assert not Summary(read=1).adds_up


def test_join_lookups_search_indexes_not_whole_tables(store: SQLiteStore) -> None:
    from tracelab.ingest.store import _KEY_DETAILS, _KEY_FAILURES

    feed(store, [inv_fail(f"c{i}", "2025-05-04T10:30:00") for i in range(50)])
    plans = [
        " | ".join(r[3] for r in q(store, "EXPLAIN QUERY PLAN " + sql))
        for sql in (_KEY_DETAILS, _KEY_FAILURES)
    ]
    assert "SEARCH d USING INDEX details_key" in plans[0], plans[0]
    assert "SEARCH e USING INDEX events_correlation" in plans[1], plans[1]
    assert "SCAN d" not in plans[0] and "SCAN e" not in plans[1]


def test_every_index_is_searched_by_a_query_of_tracelab(store: SQLiteStore) -> None:
    """Each SQLite query tracelab runs that reads by a key searches an index (never scans), and
    every index is used by one of them: the schema keeps no index that costs inserts for nothing
    (DuckDB's scans of the attached file use no SQLite index)."""
    from tracelab.analysis.duck import TRACE_ROWS_SQL
    from tracelab.ingest import duplicates
    from tracelab.ingest.store import _KEY_DETAILS, _KEY_FAILURES

    feed(store, [inv_fail(f"c{i}", "2025-05-04T10:30:00") for i in range(50)] + [b"junk"])
    queries = {
        "join: details of a key": _KEY_DETAILS,
        "join: failures of a key": _KEY_FAILURES,
        "duplicates: digests of a trace's events": duplicates._EVENT_HASHES_OF_TRACES,
        "duplicates: digests of a key's details": duplicates._DETAIL_HASHES_OF_KEYS,
        "duplicates: quarantine by digest": duplicates._QUARANTINE_OF_HASHES.format("?, ?"),
        "waterfall: one trace": TRACE_ROWS_SQL,
    }
    used = set()
    for name, sql in queries.items():
        n = sql.count("?")
        plan = " | ".join(r[3] for r in q(store, "EXPLAIN QUERY PLAN " + sql, *([None] * n)))
        searched = re.findall(r"SEARCH \w+ USING (?:COVERING )?INDEX (\w+)", plan)
        assert searched, f"{name}: {plan}"
        assert not re.search(r"SCAN (?:e|d|events|details|quarantine)\b", plan), f"{name}: {plan}"
        used.update(searched)
    indexes = {r[0] for r in q(store, "SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert {i for i in indexes if not i.startswith("sqlite_autoindex")} == used
    # the identities of the few rows whose digest recurs are read by row id
    for sql in (duplicates._EVENTS_OF_IDS, duplicates._DETAILS_OF_IDS):
        args = [None] * sql.count("?")
        plan = " | ".join(r[3] for r in q(store, "EXPLAIN QUERY PLAN " + sql, *args))
        assert "USING INTEGER PRIMARY KEY" in plan, plan
        assert not re.search(r"SCAN (events|details)\b", plan), plan


def _collide(items: list, digest: bytes) -> list:
    return [(it[0], digest, *it[2:]) for it in items]


def test_forced_digest_collision_stores_both_messages(store: SQLiteStore) -> None:
    """Two distinct messages with the same digest are both stored, in every table; the same
    message again (same digest, same bytes) is still a duplicate."""
    from tracelab.ingest.pipeline import prepare

    lines = [
        inv_fail("c", "2025-05-04T10:30:00"),
        inv_fail("c", "2025-05-04T10:30:01"),  # same trace, another instant
        inv_fail("d", "2025-05-04T10:30:00"),  # another trace
        inv_detail("c", "R1"),
        inv_detail("c", "R2"),
        b"junk one",
        b"junk two",
    ]
    same = b"\x00" * 16
    items, _ = prepare([(v, "f", None, i) for i, v in enumerate(lines, 1)])
    s1 = store.write_batch(_collide(items[:4] + items[5:6], same))
    s2 = store.write_batch(_collide(items[4:5] + items[6:], same))  # later batch, same digest
    assert (s1.events, s1.orphans + s1.joined, s1.quarantined, s1.duplicates) == (3, 1, 1, 0)
    assert (s2.orphans + s2.joined, s2.quarantined, s2.duplicates) == (1, 1, 0)
    assert q(store, "SELECT count(*) FROM events WHERE msg_hash = ?", same) == [(3,)]
    assert q(store, "SELECT count(*) FROM details WHERE msg_hash = ?", same) == [(2,)]
    assert q(store, "SELECT count(*) FROM quarantine WHERE msg_hash = ?", same) == [(2,)]
    # every one of them delivered again, in one batch with itself twice: all duplicates
    again = store.write_batch(_collide(items + items, same))
    assert again.duplicates == 2 * len(lines) and again.read == 2 * len(lines)
    assert store.summary() == Summary(
        read=3 * len(lines), events=3, joined=2, orphans=0, duplicates=2 * len(lines),
        quarantined=2,
    )  # fmt: skip


def test_duplicate_of_a_joined_failure_is_found(store: SQLiteStore) -> None:
    """A stored failure's reason and join state change when its detail arrives; its duplicate is
    still recognised (the identity is what the message carried, not the joined row)."""
    fail, det = pay_fail("p", "2025-05-04T10:30:00"), pay_detail("p", "2025-05-04T10:30:01", "X")
    ok = inv_ok("p", "2025-05-04T10:30:02")
    reason = json.dumps({"system": "reporting", "checkpoint": "R", "status": "FAILURE",
                         "timestamp": "2025-05-04T10:30:03", "correlation_id": "p",
                         "failure_reason": "inline"}).encode()  # fmt: skip
    feed(store, [fail, det, ok, reason])
    assert [e[5:] for e in events(store) if e[0] == "payments"] == [("X", "joined")]
    s = feed(store, [fail, det, ok, reason])
    assert s.duplicates == 4 and s.events == 0


def test_in_memory_store_works() -> None:
    with SQLiteStore(":memory:") as s:
        assert feed(s, [inv_fail("m", "2025-05-04T10:30:00"), inv_detail("m", "R")]).joined == 1


def test_message_key_is_content_only_and_time_ordered() -> None:
    from tracelab.ingest.pipeline import message_key

    a = message_key(b"x", "2025-05-04T10:30:59.999999Z")
    assert a == message_key(b"x", "2025-05-04T10:30:00.000000Z")  # same minute, same bytes
    assert a != message_key(b"y", "2025-05-04T10:30:00.000000Z")
    later = message_key(b"a", "2025-05-04T10:31:00.000000Z")
    assert len(a) == len(later) == 16 and a[:4] < later[:4]
    assert (
        message_key(b"x")[:4] == b"\0\0\0\0" == message_key(b"x", "1850-01-01T00:00:00.000000Z")[:4]
    )


def test_duckdb_reads_every_table_and_view_of_the_file(db: Path) -> None:
    import duckdb

    from tracelab.analysis.duck import load_sqlite_extension

    store = SQLiteStore(db)
    feed(store, [b'{"system": "inventory", "correlation_id": "c1", "failure_reason": "r"}'])
    store.close()
    con = duckdb.connect()
    load_sqlite_extension(con)
    literal = str(db).replace("'", "''")  # ATTACH takes no bound parameters
    con.execute(f"ATTACH '{literal}' AS src (TYPE sqlite, READ_ONLY)")
    rows = con.execute('SELECT correlation_id, "offset" FROM src.orphan_details').fetchall()
    assert rows == [("c1", 1)]
    tables = con.execute("SELECT table_name FROM information_schema.tables").fetchall()
    names = {r[0] for r in tables}
    assert {"events", "details", "orphan_details", "quarantine"} <= names
