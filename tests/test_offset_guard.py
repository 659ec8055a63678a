"""The store's offset guard, which the Kafka consumer relies on: a batch (or part of one) below the
offsets already stored for its partition is dropped inside the same transaction, so any
interleaving of consumers stores each Kafka message once. Pure SQLite, no broker."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tracelab.ingest.pipeline import Normalizer
from tracelab.ingest.store import SQLiteStore

TOPIC = "raw-logs"


def records(partition: int, first: int, last: int) -> list[tuple[bytes, str, int, int]]:
    """One distinct orders SUCCESS line per offset in ``first..last``."""
    return [
        (
            f"2025-05-04T10:30:00.{o % 1000:03d} ORDER: CHECKPOINT_A - SUCCESS "
            f"(ID: p{partition}-o{o})".encode(),
            TOPIC,
            partition,
            o,
        )
        for o in range(first, last + 1)
    ]


def stored(db: Path) -> tuple[list[tuple[int, int]], dict[int, int]]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT partition, offset FROM events ORDER BY 1, 2").fetchall()
        offs = dict(conn.execute("SELECT partition, next_offset FROM kafka_offsets").fetchall())
    return [tuple(r) for r in rows], offs


@pytest.fixture
def norm(tmp_path: Path) -> Normalizer:
    return Normalizer(SQLiteStore(tmp_path / "g.db"))


def test_overlapping_batch_keeps_only_the_new_part(norm: Normalizer, tmp_path: Path) -> None:
    norm.process_batch(records(0, 0, 9), offsets={(TOPIC, 0): 10})
    summary = norm.process_batch(records(0, 5, 14), offsets={(TOPIC, 0): 15})
    assert summary.read == 5 and summary.events == 5 and summary.duplicates == 0
    assert norm.store.skipped == 5
    rows, offs = stored(tmp_path / "g.db")
    assert rows == [(0, o) for o in range(15)]
    assert offs == {0: 15}


def test_stale_batch_changes_nothing_and_never_moves_offsets_back(
    norm: Normalizer, tmp_path: Path
) -> None:
    norm.process_batch(records(1, 0, 19), offsets={(TOPIC, 1): 20})
    summary = norm.process_batch(records(1, 3, 7), offsets={(TOPIC, 1): 8})
    assert summary.read == 0
    rows, offs = stored(tmp_path / "g.db")
    assert len(rows) == 20 and offs == {1: 20}


def test_partitions_are_guarded_independently(norm: Normalizer, tmp_path: Path) -> None:
    norm.process_batch(records(0, 0, 4), offsets={(TOPIC, 0): 5})
    batch = records(0, 0, 6) + records(2, 0, 2)  # partition 0 overlaps, partition 2 is new
    summary = norm.process_batch(batch, offsets={(TOPIC, 0): 7, (TOPIC, 2): 3})
    assert summary.read == 2 + 3
    rows, offs = stored(tmp_path / "g.db")
    assert rows == [(0, o) for o in range(7)] + [(2, o) for o in range(3)]
    assert offs == {0: 7, 2: 3}


def test_blank_messages_of_a_redelivered_batch_count_once(norm: Normalizer, tmp_path: Path) -> None:
    def with_blanks(first: int, last: int) -> list[tuple[bytes, str, int, int]]:
        batch = records(2, first, last)
        # every third message is blank (an empty or whitespace-only Kafka value)
        return [(b"  " if o % 3 == 0 else v, t, p, o) for v, t, p, o in batch]

    first = norm.process_batch(with_blanks(0, 8), offsets={(TOPIC, 2): 9})
    assert (first.read, first.blank) == (6, 3)  # blanks at 0, 3, 6
    again = norm.process_batch(with_blanks(0, 8), offsets={(TOPIC, 2): 9})  # stale: all stored
    assert (again.read, again.blank) == (0, 0)
    overlap = norm.process_batch(with_blanks(6, 14), offsets={(TOPIC, 2): 15})
    assert (overlap.read, overlap.blank) == (4, 2)  # new: 9..14, blanks at 9 and 12
    with sqlite3.connect(tmp_path / "g.db") as conn:
        counters = dict(conn.execute("SELECT name, value FROM counters").fetchall())
    assert counters["blank"] == 5 and counters["messages"] == 10
