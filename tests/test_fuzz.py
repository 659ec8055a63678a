"""Fuzz suite (issue 11): nasty inputs through ``normalize`` and through the real broker.

Whatever comes in (arbitrary bytes, lone surrogates, NUL, huge lines, deep nesting, every line
ending), nothing raises, the ledger adds up (read = events + joined + orphans + duplicates +
quarantined), and every quarantined or detail row holds exactly the input's bytes. The corpus
lives in ``tests/data/nasty_messages.jsonl`` (base64 of each message's exact bytes).
"""

from __future__ import annotations

import base64
import json
import random
import sqlite3
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tracelab.ingest.pipeline import normalize_files
from tracelab.ingest.store import SQLiteStore

ROOT = Path(__file__).resolve().parent.parent
CORPUS = Path(__file__).resolve().parent / "data" / "nasty_messages.jsonl"
ENDINGS = (b"\n", b"\r\n", b"\r")


def corpus() -> dict[str, bytes]:
    """name -> exact bytes of each nasty message."""
    out = {}
    with CORPUS.open(encoding="utf-8") as fh:
        for line in fh:
            entry = json.loads(line)
            if "b64" in entry:
                out[entry["name"]] = base64.b64decode(entry["b64"])
    return out


def expected_messages(data: bytes) -> list[bytes]:
    """The documented split: on \\n, \\r\\n, lone \\r; a leading BOM dropped; endings trimmed."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    return [line.rstrip(b"\r\n") for line in data.splitlines(keepends=True)]


def check_db(db: Path, messages: dict[tuple[int | None, int], bytes]) -> None:
    """Ledger adds up; every row that keeps raw bytes keeps exactly the input's."""
    with SQLiteStore(db) as store:
        total = store.summary()
        assert total.adds_up, total
        conn = store.connection
        for table in ("quarantine", "details"):
            for raw, part, off in conn.execute(f"SELECT raw, partition, offset FROM {table}"):
                assert raw == messages[(part, off)], (table, part, off)
        n_events = conn.execute("SELECT count(*) FROM events").fetchone()[0]
        assert n_events == total.events


# -- through normalize ------------------------------------------------------------------------

_NASTY = list(corpus().values())
_GOOD = [
    b"2025-05-04T10:30:00 ORDER: CP_A - FAILURE (ID: a) - R1",
    b'{"system": "inventory", "correlation_id": "b", "failure_reason": "R2"}',
    b'{"system": "inventory", "checkpoint": "C1", "status": "FAILURE", '
    b'"timestamp": "2025-05-04T10:30:02", "correlation_id": "b"}',
    b"2025-05-04T10:30:04 PAYMENTS PAYMENTS_ERROR: (ID: c) - R3",
]
_JSON_TEXT = st.text(
    alphabet=st.one_of(st.characters(), st.sampled_from(["\ud800", "\udfff", "\x00", "$"]))
)
_JSON_EVENT = st.builds(
    lambda system, cp, status, cid, reason: json.dumps(
        {
            "system": system,
            "checkpoint": cp,
            "status": status,
            "timestamp": "2025-05-04T10:30:00Z",
            "correlation_id": cid,
            "failure_reason": reason,
        }
    ).encode(),  # fmt: skip
    st.sampled_from(["reporting", "inventory", "orders", "x"]),
    _JSON_TEXT,
    st.sampled_from(["SUCCESS", "FAILURE", "?"]),
    _JSON_TEXT,
    st.one_of(st.none(), _JSON_TEXT),
)
_MESSAGE = st.one_of(
    st.binary(max_size=200),
    st.sampled_from(_NASTY),
    st.sampled_from(_GOOD),
    _JSON_EVENT,
    st.text(max_size=80).map(lambda t: t.encode("utf-8", "surrogatepass")),
)


def _one_line(message: bytes) -> bytes:
    return message.replace(b"\r", b" ").replace(b"\n", b" ")


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    messages=st.lists(_MESSAGE, min_size=1, max_size=40),
    endings=st.lists(st.sampled_from(ENDINGS), min_size=1, max_size=40),
    bom=st.booleans(),
    batch=st.integers(1, 50),
)
def test_fuzz_files_through_normalize(
    tmp_path_factory: pytest.TempPathFactory,
    messages: list[bytes],
    endings: list[bytes],
    bom: bool,
    batch: int,
) -> None:
    tmp = tmp_path_factory.mktemp("fz")
    lines = [_one_line(m) for m in messages]
    data = (b"\xef\xbb\xbf" if bom else b"") + b"".join(
        line + endings[i % len(endings)] for i, line in enumerate(lines)
    )
    src = tmp / "in.log"
    src.write_bytes(data)
    summary = normalize_files([src], tmp / "f.db", batch_size=batch, progress=False)
    expected = expected_messages(data)  # not always `lines`: "a\r" + "\n" is one line ending
    assert summary.adds_up and summary.read + summary.blank == len(expected)
    check_db(tmp / "f.db", {(None, i): m for i, m in enumerate(expected, 1)})


def test_corpus_through_normalize_with_every_line_ending_and_a_small_cap(tmp_path: Path) -> None:
    nasty = corpus()
    lines = [_one_line(m) for m in nasty.values()]
    huge = b"2025-05-04T10:30:00 ORDER: A - SUCCESS (ID: " + b"x" * 20_000 + b")"
    lines += [huge, b'{"a": "' + b"\xff" * 9000 + b'"}']
    data = b"\xef\xbb\xbf" + b"".join(
        line + ENDINGS[i % 3] for i, line in enumerate(lines)
    )  # fmt: skip
    src = tmp_path / "corpus.log"
    src.write_bytes(data)
    r = subprocess.run(
        [sys.executable, "-m", "tracelab", "normalize", str(src), "--db", str(tmp_path / "c.db"),
         "--json", "--max-message-bytes", "8192", "--batch-size", "7"],
        capture_output=True, text=True, cwd=ROOT, timeout=300, check=False,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    summary = json.loads(r.stdout)
    assert summary["adds_up"] and summary["read"] + summary["blank"] == len(lines)
    check_db(tmp_path / "c.db", {(None, i): m for i, m in enumerate(lines, 1)})
    with sqlite3.connect(tmp_path / "c.db") as conn:
        too_large = conn.execute(
            "SELECT count(*) FROM quarantine WHERE reason LIKE 'too large%'"
        ).fetchone()[0]
        cids = {c for (c,) in conn.execute("SELECT correlation_id FROM events")}
    assert too_large == sum(len(line) > 8192 for line in lines) >= 2
    assert "sur\\ud800" in cids  # a lone surrogate is stored as its escape, not a crash


# -- through the real broker ------------------------------------------------------------------


def _produce(bootstrap: str, topic: str, values: list[bytes], partitions: int = 3) -> None:
    from tracelab.kafka import KafkaSink

    with KafkaSink(bootstrap, topic, partitions) as sink:
        for i, value in enumerate(values):
            sink.write(value, key=f"k{i % 7}", system="fuzz")


def _records(bootstrap: str, topic: str) -> dict[tuple[int, int], bytes]:
    """Every record's value by (partition, offset), line ending trimmed as the pipeline does."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic))]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        end = consumer.end_offsets(tps)
        out: dict[tuple[int, int], bytes] = {}
        while any(consumer.position(tp) < end[tp] for tp in tps):
            for batch in consumer.poll(timeout_ms=1000).values():
                for rec in batch:
                    out[(rec.partition, rec.offset)] = (rec.value or b"").rstrip(b"\r\n")
        return out
    finally:
        consumer.close()


def _consume_cli(bootstrap: str, topic: str, db: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "tracelab", "consume", "--bootstrap", bootstrap, "--topic", topic,
         "--group", f"g-{topic}", "--db", str(db), "--until-idle", "2", "--json",
         "--no-progress", *extra],
        capture_output=True, text=True, cwd=ROOT, timeout=300, check=False,
    )  # fmt: skip


@pytest.mark.kafka
def test_fuzz_corpus_and_random_bytes_through_kafka(kafka_bootstrap: str, tmp_path: Path) -> None:
    rng = random.Random(11)
    values = list(corpus().values())
    values += [rng.randbytes(rng.randint(0, 300)) for _ in range(300)]
    values += [m + e for m in _GOOD for e in ENDINGS]
    values += [b"{" + b" " * 300_000 + b"}"]  # over the cap below
    rng.shuffle(values)
    topic = f"fuzz-{uuid.uuid4().hex[:10]}"
    _produce(kafka_bootstrap, topic, values)
    db = tmp_path / "k.db"
    r = _consume_cli(kafka_bootstrap, topic, db, "--batch-size", "37", "--max-message-bytes",
                     "262144")  # fmt: skip
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["adds_up"] and summary["read"] + summary["blank"] == len(values)
    check_db(db, _records(kafka_bootstrap, topic))


@pytest.mark.kafka
def test_poison_pill_through_kafka(kafka_bootstrap: str, tmp_path: Path) -> None:
    """A poisonous message between good ones: every good one stored, the poison quarantined
    (or, for a lone surrogate, stored with its text made storable), exit 0; a second run does
    nothing."""
    from tracelab.simulate import Faults, simulate
    from tracelab.simulate.flows import load_flow
    from tracelab.simulate.sinks import FileSink

    good_file = tmp_path / "good.log"
    with FileSink(good_file) as sink:
        simulate(load_flow(ROOT / "data" / "flows" / "default.yaml"), 60, 3, Faults(), sink)
    good = good_file.read_bytes().splitlines()
    nasty = corpus()
    poison = [
        nasty["surrogate_high_in_cid"],
        nasty["deep_list"],
        b"\xff\xfe not utf-8",
        b'{"system": "reporting", "x": "' + b"y" * 300_000 + b'"}',
    ]
    half = len(good) // 2
    topic = f"fuzz-{uuid.uuid4().hex[:10]}"
    _produce(kafka_bootstrap, topic, good[:half] + poison + good[half:], partitions=1)
    expected = normalize_files([good_file], tmp_path / "expected.db", progress=False)

    db = tmp_path / "p.db"
    for run in range(2):
        r = _consume_cli(kafka_bootstrap, topic, db, "--max-message-bytes", "262144")
        assert r.returncode == 0, r.stderr
        s = json.loads(r.stdout)
        assert s["adds_up"]
        if run == 0:
            assert s["read"] == len(good) + len(poison)
            assert s["quarantined"] == expected.quarantined + 3
            assert s["events"] == expected.events + 1  # the surrogate one, made storable
        else:
            assert s["read"] == 0  # nothing twice
    with sqlite3.connect(db) as conn:
        reasons = [r for (r,) in conn.execute("SELECT reason FROM quarantine WHERE offset"
                                              f" BETWEEN {half} AND {half + 3}")]  # fmt: skip
        assert sorted(r.split(":")[0] for r in reasons) == [
            "not valid JSON", "not valid UTF-8", "too large",
        ]  # fmt: skip
        assert (
            conn.execute(
                "SELECT count(*) FROM events WHERE correlation_id = 'sur\\ud800'"
            ).fetchone()[0]
            == 1
        )
