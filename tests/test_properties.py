"""Property-based tests: parsers never raise, summaries always add up, joins ignore order."""

from __future__ import annotations

import json
import random
import sqlite3
import tempfile
from datetime import datetime, timedelta
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tracelab.ingest.parsers import BAD, DETAIL, EVENT, loads_json, parse
from tracelab.ingest.pipeline import Normalizer
from tracelab.ingest.schema import MIGRATIONS
from tracelab.ingest.store import SQLiteStore, Summary
from tracelab.record import JOIN_STATES
from tracelab.timefmt import format_datetime, stored_to_us

SYSTEMS = {"inventory", "payments", "orders", "reporting"}

TEMPLATES = [
    '{{"system": "inventory", "checkpoint": "{cp}", "status": "{st}", "timestamp": "{ts}",'
    ' "correlation_id": "{cid}"}}',
    '{{"system": "inventory", "correlation_id": "{cid}", "failure_reason": "{reason}"}}',
    '{{"system": "reporting", "checkpoint": "{cp}", "status": "{st}", "timestamp": "{ts}",'
    ' "correlation_id": "{cid}", "failure_reason": "{reason}"}}',
    "{ts} ORDER: {cp} - {st} (ID: {cid}) - {reason}",
    "{ts} PAYMENTS: {cp} - {st} (ID: {cid})",
    "{ts} PAYMENTS PAYMENTS_ERROR: (ID: {cid}) - {reason}",
]

texts = st.text(min_size=0, max_size=12)
lines = st.builds(
    lambda t, cp, stt, ts, cid, reason: t.format(
        cp=cp, st=stt, ts=ts, cid=cid, reason=reason
    ).encode("utf-8", "surrogatepass"),
    st.sampled_from(TEMPLATES),
    st.one_of(st.just("CHECKPOINT_1"), texts),
    st.sampled_from(["SUCCESS", "FAILURE", "failure", "PENDING", ""]),
    st.one_of(st.just("2025-05-04T10:30:00.123"), st.just("2025-05-04T10:30:00+02:00"), texts),
    st.one_of(st.just("abc-123"), texts),
    st.one_of(st.just("FAILURE_REASON_1"), texts),
)


def _check_shape(p: tuple | None) -> None:
    if p is None:
        return
    assert p[0] in (EVENT, DETAIL, BAD)
    if p[0] == EVENT:
        assert len(p) == 9
        _k, system, cp, ts, status, cid, reason, state, attrs = p
        assert system in SYSTEMS and status in ("SUCCESS", "FAILURE")
        assert cp and cid and isinstance(cp, str) and isinstance(cid, str)
        assert isinstance(ts, str) and len(ts) == 27 and ts.endswith("Z")
        assert (state is None) == (status == "SUCCESS")
        assert state is None or state in JOIN_STATES
        assert attrs is None or isinstance(json.loads(attrs), dict)
    elif p[0] == DETAIL:
        assert len(p) == 5 and p[1] in ("inventory", "payments") and p[2] and p[3]
        assert p[4] is None or len(p[4]) == 27
    else:
        assert len(p) == 2 and isinstance(p[1], str) and p[1]


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=300))
def test_parse_never_raises_on_arbitrary_bytes(raw: bytes) -> None:
    _check_shape(parse(raw))


@settings(max_examples=400, deadline=None)
@given(lines, st.sampled_from([b"", b"\r\n", b"  ", b"\xff"]), st.integers(0, 200))
def test_parse_never_raises_on_near_valid_lines(line: bytes, tail: bytes, cut: int) -> None:
    _check_shape(parse(line + tail))
    _check_shape(parse(line[:cut]))


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.text(max_size=8), st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=4), c, max_size=3),
    max_leaves=6), max_size=8))  # fmt: skip
def test_parse_never_raises_on_arbitrary_json_objects(obj: dict) -> None:
    _check_shape(parse(json.dumps(obj).encode()))


def _json_outcome(loads: object, text: str) -> tuple[str, str]:
    try:
        return ("ok", repr(loads(text)))  # repr: NaN == NaN, -0.0 differs from 0.0
    except ValueError as exc:
        return (type(exc).__name__, str(exc))
    except RecursionError:
        return ("RecursionError", "")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=6),
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=4), c, max_size=3),
    max_leaves=8,
)
json_texts = st.one_of(
    json_values.map(json.dumps),  # valid JSON, NaN/Infinity included (json.dumps writes them)
    json_values.map(lambda v: json.dumps(v, ensure_ascii=False)),
    st.builds(lambda t, cut, junk: t[:cut] + junk, json_values.map(json.dumps),
              st.integers(0, 40), st.sampled_from(["", "x", "\\ud800", '"', "\t", "\x00"])),
    st.text(alphabet='{}[]":,0123456789.eE+-tfnrulaNIy \\ud800', max_size=30),
)  # fmt: skip


@settings(max_examples=500, deadline=None)
@given(json_texts)
def test_fast_json_decoder_gives_exactly_what_json_loads_gives(text: str) -> None:
    assert _json_outcome(loads_json, text) == _json_outcome(json.loads, text)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.datetimes(datetime(1000, 1, 1), datetime(9999, 12, 31)), max_size=20))
def test_ts_us_from_python_equals_the_schema_4_migration(moments: list[datetime]) -> None:
    # New rows get ts_us from stored_to_us; rows of older files from the migration's SQL.
    stored = [format_datetime(m) for m in moments]
    update = MIGRATIONS[3].split(";")[1]  # the UPDATE after the ALTER TABLE
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE events (id INTEGER PRIMARY KEY, timestamp TEXT, ts_us INTEGER)")
    conn.executemany("INSERT INTO events (timestamp) VALUES (?)", [(t,) for t in stored])
    conn.execute(update)
    by_sql = [v for (v,) in conn.execute("SELECT ts_us FROM events ORDER BY id")]
    exact = [(m - datetime(1970, 1, 1)) // timedelta(microseconds=1) for m in moments]
    assert [stored_to_us(t) for t in stored] == by_sql == exact


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    st.lists(st.one_of(lines, st.binary(max_size=40), st.just(b"")), min_size=0, max_size=40),
    st.integers(1, 7),
    st.randoms(use_true_random=False),
)
def test_summary_always_adds_up(msgs: list[bytes], batch: int, rnd: random.Random) -> None:
    # sprinkle in duplicates
    msgs = msgs + [rnd.choice(msgs) for _ in range(len(msgs) // 3)] if msgs else msgs
    with tempfile.TemporaryDirectory() as tmp:
        store = SQLiteStore(Path(tmp) / "p.db")
        norm = Normalizer(store)
        total = Summary()
        for start in range(0, len(msgs), batch):
            chunk = msgs[start : start + batch]
            s = norm.process_batch([(m, "prop", None, start + i) for i, m in enumerate(chunk)])
            assert s.adds_up
            total = total + s
        cumulative = store.summary()
        store.close()
    assert cumulative.adds_up
    blanks = sum(1 for m in msgs if not m.strip())
    assert cumulative.read == total.read == len(msgs) - blanks
    assert cumulative.blank == blanks
    assert (cumulative.events, cumulative.duplicates, cumulative.quarantined) == (
        total.events,
        total.duplicates,
        total.quarantined,
    )
    assert cumulative.joined + cumulative.orphans == total.joined + total.orphans


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.integers(0, 59), min_size=1, max_size=5, unique=True),
    st.lists(st.integers(0, 59), min_size=1, max_size=5, unique=True),
    st.randoms(use_true_random=False),
)
def test_payments_join_independent_of_arrival_order(
    fail_secs: list[int], detail_secs: list[int], rnd: random.Random
) -> None:
    msgs = [
        f"2025-05-04T10:32:{s:02d} PAYMENTS: P{s} - FAILURE (ID: p)".encode() for s in fail_secs
    ]
    msgs += [
        f"2025-05-04T10:32:{s:02d} PAYMENTS PAYMENTS_ERROR: (ID: p) - r{s}".encode()
        for s in detail_secs
    ]
    results = set()
    with tempfile.TemporaryDirectory() as tmp:
        for n in range(3):
            order = msgs if n == 0 else rnd.sample(msgs, len(msgs))
            store = SQLiteStore(Path(tmp) / f"{n}.db")
            norm = Normalizer(store)
            for i, m in enumerate(order):
                norm.process_batch([(m, "x", None, i)])
            rows = store.connection.execute(
                "SELECT checkpoint_id, failure_reason, join_state FROM events ORDER BY 1"
            ).fetchall()
            results.add(tuple(rows))
            store.close()
    assert len(results) == 1
    rows = results.pop()
    reasons = [r[1] for r in rows if r[1] is not None]
    assert len(reasons) == len(set(reasons))  # never one detail for two failures
    joined = len(reasons)
    # every detail at or after some failure gets one, as long as failures remain
    assert joined <= min(len(fail_secs), len(detail_secs))
    if min(detail_secs) >= min(fail_secs):
        assert joined >= 1
