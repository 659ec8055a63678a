"""The writer child process of ``consume`` (``ProcessWriter``): batches stored in order with the
Kafka commit each allows, parsed on whichever side has worked less, sent without waiting for
the child's reader thread. A real child process and real SQLite; Kafka itself is not needed
(a batch is the records a poll returned)."""

from __future__ import annotations

import socket
import sqlite3
import time
from pathlib import Path

import pytest

from tracelab.kafka.writers import _SEND_BUFFER_BYTES, ProcessWriter

TOPIC = "raw-logs"


def batch(partition: int, first: int, n: int) -> list[tuple[bytes, str, int, int]]:
    """``n`` distinct orders SUCCESS lines at offsets ``first..`` of ``partition``."""
    line = "2025-05-04T10:30:00.{:03d} ORDER: CP - SUCCESS (ID: p{}-{})"
    return [
        (line.format(o % 1000, partition, o).encode(), TOPIC, partition, o)
        for o in range(first, first + n)
    ]


@pytest.fixture
def writer(tmp_path: Path):  # type: ignore[no-untyped-def]
    w = ProcessWriter(tmp_path / "w.db", depth=2)
    yield w
    w.close()


def test_batches_are_stored_in_order_with_their_commits(tmp_path: Path, writer) -> None:  # type: ignore[no-untyped-def]
    started = time.monotonic()
    sent = []
    for i in range(6):
        records = batch(i % 2, 1000 * i, 500)
        commit = {"batch": i}
        writer.submit(records, {(TOPIC, i % 2): 1000 * i + 500}, commit)
        sent.append(commit)
    done = writer.completed(wait=True)
    assert [commit for _, commit in done] == sent
    assert all(s.read == 500 and s.events == 500 and s.adds_up for s, _ in done)
    with sqlite3.connect(tmp_path / "w.db") as conn:
        assert conn.execute("SELECT count(*) FROM events").fetchone()[0] == 3000
        offsets = dict(conn.execute("SELECT partition, next_offset FROM kafka_offsets"))
    assert offsets == {0: 4500, 1: 5500}
    # the writer reports the wall seconds it spent on batches: some, and no more than elapsed
    busy, _ = writer._writer_busy
    assert 0 < busy <= time.monotonic() - started


def test_parsing_goes_to_the_side_that_has_worked_less(writer) -> None:  # type: ignore[no-untyped-def]
    """With nothing pending the writer parses (raw records go); while it is busy and has worked
    longer than this process, this process parses the batch itself."""
    assert not writer._writer_is_behind()  # nothing pending
    writer.submit(batch(0, 0, 200), {(TOPIC, 0): 200}, {})
    writer._writer_busy = (1e6, time.monotonic())  # the writer has worked far longer
    assert writer._writer_is_behind()
    writer._writer_busy = (0.0, time.monotonic() + 1e6)  # ... or far less
    assert not writer._writer_is_behind()
    writer.completed(wait=True)
    assert not writer._writer_is_behind()


def test_a_whole_batch_fits_in_the_socket_to_the_writer(writer) -> None:  # type: ignore[no-untyped-def]
    """Sending a batch does not wait for the child's reader thread: the send buffer holds one,
    as far as the kernel allows (Linux reports twice the size it grants)."""
    limit = int(Path("/proc/sys/net/core/wmem_max").read_text())
    sock = socket.socket(fileno=writer._conn.fileno())
    try:
        granted = sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
    finally:
        sock.detach()  # the connection still owns the descriptor
    assert granted >= 2 * min(_SEND_BUFFER_BYTES, limit)
