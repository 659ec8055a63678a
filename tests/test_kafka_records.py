"""tracelab's decoding of Kafka record batches (tracelab.kafka.records) against kafka-python's own.

Batches are built with kafka-python's record builders (random keys, values, headers, timestamps,
offset gaps, compression, message formats) and read by both readers: the records, positions and
counters must be equal, and broken batches must fail the same way. Against the real broker, a
topic written by tracelab's producer and by a transactional producer (control batches) is read
by two consumers, one per reader, and what they return compared record by record.
"""

from __future__ import annotations

import struct
import time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kafka.consumer.fetcher import Fetcher
from kafka.errors import CorruptRecordError
from kafka.record.default_records import DefaultRecordBatch
from kafka.record.memory_records import MemoryRecords, MemoryRecordsBuilder
from kafka.record.util import calc_crc32c
from kafka.structs import TopicPartition

from tracelab.kafka import records as fast
from tracelab.kafka.records import DECODER_ENV, FastPartitionRecords, install

TP = TopicPartition("raw-logs", 3)

Record = tuple[int, bytes | None, bytes | None, list[tuple[str, bytes | None]]]

records_st = st.lists(
    st.tuples(
        st.integers(-(2**40), 2**42),  # timestamp (ms); deltas of either sign
        st.none() | st.binary(max_size=300),
        st.none() | st.binary(max_size=20_000),  # lengths of one to three varint bytes
        st.lists(st.tuples(st.text(max_size=12), st.none() | st.binary(max_size=40)), max_size=3)
        | st.sampled_from([[("system", b"orders")], [("system", b"payments")], [("a", None)]]),
    ),  # headers: random, or a few repeated sets (as a producer sends them; decoded once)
    min_size=1,
    max_size=40,
)


def build(
    batches: list[list[Record]],
    *,
    magic: int = 2,
    codec: int = 0,
    base: int = 0,
    gap: int = 0,
) -> bytes:
    """Concatenated batches as a broker returns them; ``gap`` offsets skipped after every
    record (as compaction leaves them)."""
    out = []
    offset = base
    for records in batches:
        builder = MemoryRecordsBuilder(magic, codec, 1 << 30, offset=0 if magic == 2 else offset)
        for ts, key, value, headers in records:
            assert builder.append(ts, key, value, headers if magic == 2 else None) is not None
            builder.skip(gap)
        builder.close()
        data = bytearray(builder.buffer())
        if magic == 2:  # the broker sets a v2 batch's base offset (outside the CRC)
            struct.pack_into(">q", data, 0, offset)
            offset += builder.next_offset()
        else:
            offset = builder.next_offset()
        out.append(bytes(data))
    return b"".join(out)


def with_attributes(data: bytes, bits: int) -> bytes:
    """A single v2 batch with ``bits`` set in its attributes and its CRC-32C made right again."""
    b = bytearray(data)
    at = DefaultRecordBatch.ATTRIBUTES_OFFSET
    (attrs,) = struct.unpack_from(">h", b, at)
    struct.pack_into(">h", b, at, attrs | bits)
    struct.pack_into(">I", b, DefaultRecordBatch.CRC_OFFSET, calc_crc32c(bytes(b[at:])))
    return bytes(b)


def read(
    cls: type, data: bytes, fetch_offset: int = 0, take: int | None = None, check_crcs: bool = True
) -> tuple[list[Any], list[tuple[int, int, int]]]:
    """(records, [(next_fetch_offset, records_read, bytes_read) after each take])."""
    part = cls(fetch_offset, TP, MemoryRecords(data), check_crcs=check_crcs)
    records: list[Any] = []
    states = []
    while part:
        got = part.take(take)
        records += got
        states.append((part.next_fetch_offset, part.records_read, part.bytes_read))
        if not got:
            break
    return records, states


def same(data: bytes, **kw: Any) -> list[Any]:
    """Both readers' records and positions are equal; the records."""
    theirs = read(Fetcher.PartitionRecords, data, **kw)
    ours = read(FastPartitionRecords, data, **kw)
    assert ours == theirs
    assert [type(r) for r in ours[0]] == [type(r) for r in theirs[0]]
    return ours[0]


@settings(max_examples=150, deadline=None)
@given(
    st.lists(records_st, min_size=1, max_size=3),
    st.sampled_from([0, 1]),  # none, gzip
    st.integers(0, 2**45),
    st.sampled_from([0, 0, 3, 70]),
)
def test_random_batches_read_as_kafka_python_reads_them(
    batches: list[list[Record]], codec: int, base: int, gap: int
):
    data = build(batches, codec=codec, base=base, gap=gap)
    got = same(data)
    assert [r.value for r in got] == [r[2] for b in batches for r in b]
    assert [r.offset for r in got] == [
        base + i * (gap + 1) for i in range(sum(len(b) for b in batches))
    ]


@settings(max_examples=40, deadline=None)
@given(records_st, st.integers(1, 7), st.integers(0, 30))
def test_positions_when_taken_piecewise_or_from_inside_a_batch(
    records: list[Record], take: int, skip: int
):
    data = build([records, records[: len(records) // 2 + 1]], base=1000)
    same(data, take=take)
    same(data, fetch_offset=1000 + skip, take=take)


def test_log_append_time_and_control_batches():
    records = [(1_700_000_000_000 + i, b"k", b"v%d" % i, []) for i in range(5)]
    log_append = with_attributes(build([records]), DefaultRecordBatch.TIMESTAMP_TYPE_MASK)
    got = same(log_append)
    assert {r.timestamp_type for r in got} == {1}
    assert {r.timestamp for r in got} == {1_700_000_000_004}  # the batch's max timestamp
    control = with_attributes(build([records[:1]], base=5), DefaultRecordBatch.CONTROL_MASK)
    data = build([records]) + control + build([records], base=6)
    got = same(data)
    assert [r.offset for r in got] == [0, 1, 2, 3, 4, 6, 7, 8, 9, 10]  # 5 is the marker


def test_read_committed_is_left_to_kafka_python(monkeypatch: pytest.MonkeyPatch):
    """Aborted transactions are kafka-python's to skip: with read_committed the fast reader
    never decodes, even for a fetch that lists no aborted transaction."""
    from kafka.consumer.fetcher import IsolationLevel

    def refuse(*_a: Any, **_k: Any) -> None:
        raise AssertionError("decoded by tracelab under read_committed")

    monkeypatch.setattr(fast, "decode_batch", refuse)
    data = build([[(1_700_000_000_000, b"k", b"v%d" % i, []) for i in range(4)]])
    parts = [
        cls(0, TP, MemoryRecords(data), isolation_level=IsolationLevel.READ_COMMITTED)
        for cls in (Fetcher.PartitionRecords, FastPartitionRecords)
    ]
    got = parts[1].take()
    assert got == parts[0].take() and [r.value for r in got] == [b"v0", b"v1", b"v2", b"v3"]


@pytest.mark.parametrize("magic", [0, 1])
def test_old_message_formats_keep_kafka_python_records(magic: int):
    records = [(1_700_000_000_000, None if i % 2 else b"k", b"value %d" % i, []) for i in range(9)]
    for codec in (0, 1):
        got = same(build([records, records], magic=magic, codec=codec))
        assert len(got) == 18 and got[3].value == b"value 3"


def test_broken_batches_fail_as_in_kafka_python():
    good = build([[(1_700_000_000_000, b"key", b"x" * 200, [("h", b"v")])] * 3])
    flipped = bytearray(good)
    flipped[-30] ^= 0xFF  # inside a value: only the CRC can tell
    for cls in (Fetcher.PartitionRecords, FastPartitionRecords):
        with pytest.raises(CorruptRecordError, match="crc"):
            read(cls, bytes(flipped))
    # A record whose length disagrees with its fields, read without the CRC check: an error,
    # never a silently wrong value.
    header = DefaultRecordBatch.HEADER_STRUCT.size
    bad = bytearray(good)
    bad[header] += 2  # the first record's length varint (small, one byte)
    for cls in (Fetcher.PartitionRecords, FastPartitionRecords):
        with pytest.raises(CorruptRecordError):
            read(cls, bytes(bad), check_crcs=False)
    # A count of records that disagrees with the bytes: more (the reader runs out of bytes) or
    # fewer (bytes left over).
    for count in (4, 2):
        wrong = bytearray(good)
        struct.pack_into(">i", wrong, header - 4, count)
        for cls in (Fetcher.PartitionRecords, FastPartitionRecords):
            with pytest.raises(CorruptRecordError):
                read(cls, bytes(wrong), check_crcs=False)


def test_varint_reads_every_length():
    from kafka.record.util import encode_varint

    for value in (0, -1, 1, 63, -64, 64, 8191, -8192, 8192, 2**31, -(2**63), 2**63 - 1):
        buf = bytearray(b"\x07")
        encode_varint(value, buf.append)
        assert fast._varint(bytes(buf) + b"\x00", 1) == (value, len(buf))
    with pytest.raises(CorruptRecordError):
        fast._varint(b"\xff" * 11, 0)


# -- against the real broker -------------------------------------------------------------------


def _consume_all(bootstrap: str, topic: str, reader: str, total: int) -> list[Any]:
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"records-{reader}-{time.time_ns()}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        metrics_enabled=False,
    )
    try:
        assert install(consumer) is (reader == "tracelab")
        got: list[Any] = []
        deadline = time.monotonic() + 60
        while len(got) < total and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=500).values():
                got += batch
        return sorted(got, key=lambda r: (r.partition, r.offset))
    finally:
        consumer.close()


def test_real_topic_reads_the_same_with_both_readers(
    kafka_bootstrap: str, produce_topic: Any, monkeypatch: pytest.MonkeyPatch
):
    from kafka import KafkaProducer

    produced = produce_topic(150, partitions=3)
    producer = KafkaProducer(
        bootstrap_servers=kafka_bootstrap, transactional_id=f"tx-{time.time_ns()}"
    )
    try:
        producer.init_transactions()
        for aborted in (False, True):
            producer.begin_transaction()
            for i in range(20):
                producer.send(produced.topic, key=b"tx", value=b"in a transaction %d" % i)
            producer.flush()  # on the broker before the abort marker, not dropped unsent
            if aborted:
                producer.abort_transaction()
            else:
                producer.commit_transaction()
    finally:
        producer.close()
    total = produced.messages + 40  # read uncommitted: aborted records are returned too
    results = {}
    for reader in ("kafka-python", "tracelab"):
        monkeypatch.setenv(DECODER_ENV, reader)
        results[reader] = _consume_all(kafka_bootstrap, produced.topic, reader, total)
    assert len(results["tracelab"]) == total
    assert results["tracelab"] == results["kafka-python"]
    assert {r.headers[0][0] for r in results["tracelab"] if r.key != b"tx"} == {"system"}
    got = results["tracelab"]
    pairs = zip(got, got[1:], strict=False)
    markers = [b.offset - a.offset - 1 for a, b in pairs if a.partition == b.partition]
    assert sum(markers) >= 1  # the commit marker's offset (a control batch) was skipped


def test_install_refuses_what_it_does_not_cover(
    kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch
):
    from kafka import KafkaConsumer

    def installed(**kw: Any) -> bool:
        consumer = KafkaConsumer(bootstrap_servers=kafka_bootstrap, metrics_enabled=False, **kw)
        try:
            return install(consumer)
        finally:
            consumer.close()

    assert installed()
    assert not installed(value_deserializer=bytes.decode)
    assert not installed(key_deserializer=bytes.decode)
    assert not installed(isolation_level="read_committed")
    monkeypatch.setenv(DECODER_ENV, "kafka-python")
    assert not installed()
    monkeypatch.setenv(DECODER_ENV, "tracelab")
    monkeypatch.setattr(fast.kafka, "__version__", "9.9.9")
    assert not installed()
