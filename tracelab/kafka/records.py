"""Kafka record batches decoded for the consumer's hot path (message format v2).

kafka-python decodes every record in pure Python through several objects per record (a
``DefaultRecord``, properties, a varint call per field, a generator step), which costs about as
much CPU as all of tracelab's parsing (``bench/kafka_e2e.py --compare-readers``: ~20 % of the
CPU of ``consume``). This module decodes a v2 batch's records in one loop into the very
``ConsumerRecord`` tuples kafka-python builds (tests compare the two, field by field, on real
broker data and on random batches).

kafka-python still does everything else: fetching, the batch's CRC-32C check, decompression,
positions, control batches, transactions. :func:`install` swaps the fetcher's per-partition
record reader for :class:`FastPartitionRecords` only where that is safe (no deserializers, read
uncommitted, the kafka-python version this was verified against); anything else keeps
kafka-python's own reader.

May import: ``kafka`` (kafka-python) only.

Example::

    consumer = KafkaConsumer(...)
    install(consumer)  # True: records are decoded here from now on
"""

from __future__ import annotations

import os
from typing import Any

import kafka
from kafka.consumer.fetcher import ConsumerRecord, Fetcher, IsolationLevel
from kafka.errors import CorruptRecordError
from kafka.record.default_records import DefaultRecordBatch

__all__ = ["DECODER_ENV", "VERIFIED_VERSIONS", "FastPartitionRecords", "decode_batch", "install"]

#: kafka-python versions whose fetcher internals this module was checked against (the tests
#: compare its records with kafka-python's own on every run); others keep kafka-python's reader.
VERIFIED_VERSIONS = ("3.0.12",)

#: Set this environment variable to ``kafka-python`` to keep kafka-python's own record reader.
DECODER_ENV = "TRACELAB_RECORD_DECODER"  # not TRACELAB_KAFKA_*: those are Kafka settings

_Header = tuple[str, bytes | None]

#: Header sections already decoded (their bytes -> headers and size): tracelab's producer sends
#: one per system, so nearly every record's headers are a dictionary lookup. Bounded.
_SEEN_HEADERS: dict[bytes, tuple[list[_Header], int]] = {}
_SEEN_HEADERS_MAX = 4096


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    """A zigzag varint (Kafka's signed varint/varlong) at ``pos``: (value, next position)."""
    b = buf[pos]
    if b < 0x80:
        return (b >> 1) ^ -(b & 1), pos + 1
    c = buf[pos + 1]
    if c < 0x80:  # two bytes: lengths and deltas up to 8191
        raw = (b & 0x7F) | (c << 7)
        return (raw >> 1) ^ -(raw & 1), pos + 2
    raw = (b & 0x7F) | ((c & 0x7F) << 7)
    pos += 1
    shift = 14
    while True:
        pos += 1
        b = buf[pos]
        raw |= (b & 0x7F) << shift
        if b < 0x80:
            return (raw >> 1) ^ -(raw & 1), pos + 1
        shift += 7
        if shift > 63:
            raise CorruptRecordError("varint longer than 10 bytes")


def _headers(buf: bytes, pos: int) -> tuple[list[_Header], int, int]:
    """The record headers at ``pos`` (their count first): ([(key, value or None)], their size
    as kafka-python counts it (-1 for none), next position)."""
    count, pos = _varint(buf, pos)
    if count < 0:
        raise CorruptRecordError(f"Found invalid number of record headers {count}")
    varint = _varint
    headers: list[_Header] = []
    size = 0
    for _ in range(count):
        n, pos = varint(buf, pos)
        if n < 0:
            raise CorruptRecordError(f"Invalid negative header key size {n}")
        key = buf[pos : pos + n].decode("utf-8")
        pos += n
        size += n  # the key's UTF-8 bytes, as kafka-python's len(key.encode())
        n, pos = varint(buf, pos)
        if n >= 0:
            headers.append((key, buf[pos : pos + n]))
            pos += n
            size += n
        else:
            headers.append((key, None))
    return headers, (size if headers else -1), pos


def decode_batch(
    batch: DefaultRecordBatch, topic: str, partition: int, leader_epoch: int = -1
) -> list[tuple[ConsumerRecord, int]]:
    """Every record of a v2 (``magic == 2``) batch as ``(ConsumerRecord, size in bytes)``,
    equal to what kafka-python yields for it without deserializers. Call it after the batch's
    CRC check (kafka-python validates the CRC over the compressed bytes, before this
    decompresses them). Raises ``CorruptRecordError`` where the records do not add up.

    Example: ``decode_batch(MemoryRecords(data).next_batch(), "raw-logs", 0)[0][0].value``
    """
    batch._maybe_uncompress()  # noqa: SLF001 - kafka-python's codecs; private but verified
    buf = bytes(batch._buffer)  # noqa: SLF001 - one copy; slices of bytes are bytes
    pos = batch._pos  # noqa: SLF001
    base = batch.base_offset
    ts_type = batch.timestamp_type
    append_time = batch.max_timestamp if ts_type == DefaultRecordBatch.LOG_APPEND_TIME else None
    first_ts = batch.first_timestamp
    varint = _varint
    seen = _SEEN_HEADERS
    new, record = tuple.__new__, ConsumerRecord  # the namedtuple without its Python __new__
    out: list[tuple[ConsumerRecord, int]] = []
    append = out.append
    try:
        for _ in range(batch.records_count):
            # Record: length, attributes (int8, unused), timestamp delta, offset delta, key,
            # value, headers; lengths are zigzag varints, -1 meaning null.
            length, pos = varint(buf, pos)
            start = pos
            ts_delta, pos = varint(buf, pos + 1)
            off_delta, pos = varint(buf, pos)
            n, pos = varint(buf, pos)
            if n >= 0:
                key: bytes | None = buf[pos : pos + n]
                pos += n
            else:
                key = None
            n, pos = varint(buf, pos)
            if n >= 0:
                value: bytes | None = buf[pos : pos + n]
                pos += n
            else:
                value = None
            if buf[pos] == 0:  # no headers
                headers: list[_Header] = []
                header_size = -1
                pos += 1
            else:  # the headers end the record; a producer repeats a few header sets
                raw = buf[pos : start + length]
                known = seen.get(raw)
                if known is None:
                    headers, header_size, pos = _headers(buf, pos)
                    if pos == start + length and len(seen) < _SEEN_HEADERS_MAX:
                        seen[raw] = (headers, header_size)
                else:
                    headers, header_size = known
                    headers = headers.copy()  # each record its own list, as in kafka-python
                    pos = start + length
            if pos - start != length:
                raise CorruptRecordError(
                    f"Invalid record size: expected to read {length} bytes in record payload,"
                    f" but instead read {pos - start}"
                )
            append(
                (
                    new(record, (
                        topic, partition, leader_epoch, base + off_delta,
                        append_time if append_time is not None else first_ts + ts_delta,
                        ts_type, key, value, headers, None,
                        len(key) if key is not None else -1,
                        len(value) if value is not None else -1,
                        header_size,
                    )),
                    length,
                )
            )  # fmt: skip
    except IndexError as exc:
        raise CorruptRecordError(f"Found invalid record structure: {exc!r}") from None
    if pos != len(buf):
        raise CorruptRecordError(f"{len(buf) - pos} unconsumed bytes after all records consumed")
    return out


class FastPartitionRecords(Fetcher.PartitionRecords):  # type: ignore[misc,name-defined]
    """kafka-python's reader of one partition's fetched records, with v2 batches decoded by
    :func:`decode_batch`. Batches are CRC-checked first (when ``check_crcs``), control batches
    are skipped, other message formats are read by kafka-python's own batch iterator, and
    positions advance record by record exactly as in kafka-python. With deserializers or
    ``read_committed`` (aborted transactions to skip) the whole read is kafka-python's own.
    """

    def _unpack_records(
        self, tp: Any, records: Any, key_deserializer: Any, value_deserializer: Any
    ) -> Any:
        if (
            key_deserializer is not None
            or value_deserializer is not None
            or self.isolation_level != IsolationLevel.READ_UNCOMMITTED  # aborted transactions
        ):
            yield from super()._unpack_records(tp, records, key_deserializer, value_deserializer)
            return
        topic, partition = tp.topic, tp.partition
        last = None
        batch = records.next_batch()
        while batch is not None:
            last = batch
            if self.check_crcs and not batch.validate_crc():
                raise CorruptRecordError(
                    f"Record batch for partition {tp} at offset {batch.base_offset}"
                    " failed crc check"
                )
            if batch.magic == 2:
                self.leader_epoch = batch.leader_epoch
                if batch.is_control_batch:
                    self.next_fetch_offset = batch.next_offset
                    batch = records.next_batch()
                    continue
                decoded = decode_batch(batch, topic, partition, self.leader_epoch)
            else:
                decoded = [
                    (self._legacy(tp, record), record.size_in_bytes) for record in batch
                ]  # fmt: skip
            for record, size in decoded:
                self.records_read += 1
                self.bytes_read += size
                self.next_fetch_offset = record.offset + 1
                yield record
            batch = records.next_batch()
        if last is not None and last.magic == 2:
            self.next_fetch_offset = last.next_offset
        self.drain()

    def _legacy(self, tp: Any, record: Any) -> ConsumerRecord:
        """A ConsumerRecord of a message format v0/v1 record (no headers)."""
        if self.check_crcs and not record.validate_crc():
            raise CorruptRecordError(
                f"Record for partition {tp} at offset {record.offset} failed crc check"
            )
        key, value = record.key, record.value
        return ConsumerRecord(
            tp.topic, tp.partition, self.leader_epoch, record.offset, record.timestamp,
            record.timestamp_type, key, value, [], record.checksum,
            len(key) if key is not None else -1, len(value) if value is not None else -1, -1,
        )  # fmt: skip


def install(consumer: Any) -> bool:
    """Make ``consumer`` (a ``KafkaConsumer``) decode v2 record batches with
    :class:`FastPartitionRecords`. Returns False, changing nothing, where that is not known to
    be safe: another kafka-python version, deserializers, ``read_committed``, or
    :data:`DECODER_ENV` set to ``kafka-python``.

    Example: ``install(KafkaConsumer("raw-logs", bootstrap_servers="localhost:9092"))`` -> ``True``
    """
    fetcher = getattr(consumer, "_fetcher", None)
    config = getattr(fetcher, "config", None)
    if (
        os.environ.get(DECODER_ENV, "tracelab") == "kafka-python"
        or kafka.__version__ not in VERIFIED_VERSIONS
        or not isinstance(fetcher, Fetcher)
        or not isinstance(config, dict)
        or config.get("key_deserializer") is not None
        or config.get("value_deserializer") is not None
        or str(config.get("isolation_level", "read_uncommitted")) != "read_uncommitted"
    ):
        return False
    fetcher.PartitionRecords = FastPartitionRecords
    return True
