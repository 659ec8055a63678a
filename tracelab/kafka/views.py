"""Read-only views of a topic and a group: partitions and offsets, lag, sample messages.

:class:`PartitionLag` is the live dashboard's lag source: a callable that ``tracelab.notebook``
hands to ``tracelab.analysis.live.LiveMonitor`` (analysis never imports Kafka).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kafka.partitioner.default import murmur2

from tracelab import config
from tracelab.errors import ConfigError, KafkaIOError
from tracelab.kafka.settings import admin_client, plain_consumer, resolve_settings

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

__all__ = ["PartitionLag", "consumer_lag", "sample_messages", "topic_overview"]


def _partitions(consumer: Any, topic: str) -> list[Any]:
    from kafka import TopicPartition

    parts = consumer.partitions_for_topic(topic)
    if not parts:
        raise KafkaIOError(f"topic {topic!r} does not exist")
    return [TopicPartition(topic, p) for p in sorted(parts)]


def topic_overview(
    bootstrap: str, topic: str = config.DEFAULT_TOPIC, *, settings: Mapping[str, Any] | None = None
) -> pd.DataFrame:
    """One row per partition: ``partition, begin_offset, end_offset, messages``.

    Example: ``topic_overview("127.0.0.1:9092", "raw-logs")["messages"].sum()``
    """
    import pandas as pd

    consumer = plain_consumer(bootstrap, settings)
    try:
        tps = _partitions(consumer, topic)
        begin = consumer.beginning_offsets(tps)
        end = consumer.end_offsets(tps)
    finally:
        consumer.close()
    rows = [(tp.partition, begin[tp], end[tp], end[tp] - begin[tp]) for tp in tps]
    return pd.DataFrame(rows, columns=["partition", "begin_offset", "end_offset", "messages"])


def consumer_lag(
    bootstrap: str,
    topic: str = config.DEFAULT_TOPIC,
    group: str = "tracelab",
    db: str | Path | None = None,
    *,
    settings: Mapping[str, Any] | None = None,
) -> pd.DataFrame:
    """Per partition: ``partition, end_offset, committed, lag`` (and ``stored`` with ``db``).

    ``committed`` is the group's offset in Kafka; ``stored`` the next offset in the SQLite
    database, which is the one the consumer resumes from. ``lag`` uses ``stored`` when given.

    Example: ``consumer_lag("127.0.0.1:9092", "raw-logs", "tracelab")["lag"].sum()``
    """
    import pandas as pd
    from kafka.errors import KafkaError

    admin = admin_client(bootstrap, resolve_settings(settings))
    try:
        committed_raw = admin.list_group_offsets({group: None}).get(group, {})
    except KafkaError as exc:
        raise KafkaIOError(f"cannot read offsets of group {group!r}: {exc}") from None
    finally:
        with contextlib.suppress(Exception):
            admin.close()
    committed = {tp.partition: om.offset for tp, om in committed_raw.items() if tp.topic == topic}
    stored: dict[int, int] | None = None
    if db is not None:
        if not Path(db).exists():
            raise ConfigError(f"database not found: {db}")
        from tracelab.ingest.shards import stored_offsets  # only here: producers need no SQLite

        stored = stored_offsets(db, topic)  # a database file or a shard folder
    consumer = plain_consumer(bootstrap, settings)
    try:
        tps = _partitions(consumer, topic)
        end = consumer.end_offsets(tps)
    finally:
        consumer.close()
    rows = []
    for tp in tps:
        comm = committed.get(tp.partition)
        comm = None if comm is None or comm < 0 else comm
        row: dict[str, Any] = {"partition": tp.partition, "end_offset": end[tp], "committed": comm}
        base = comm
        if stored is not None:
            row["stored"] = stored.get(tp.partition)
            base = row["stored"]
        row["lag"] = end[tp] - (base or 0)
        rows.append(row)
    frame = pd.DataFrame(rows)
    frame["committed"] = frame["committed"].astype("Int64")
    if "stored" in frame:
        frame["stored"] = frame["stored"].astype("Int64")
    return frame


class PartitionLag:
    """Callable: the lag of the consumer that writes ``db`` on ``topic``, per partition: the
    topic's end offsets (one long-lived Kafka client, one request per call) minus the offsets the
    consumer stored in SQLite with its batches, which are where it resumes (read read-only).

    A partition the consumer has not stored yet counts from its beginning offset.
    Example: ``PartitionLag(bootstrap, "raw-logs", "x.db")()["lag"].sum()``
    """

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        db: str | Path,
        *,
        settings: Mapping[str, Any] | None = None,
    ) -> None:
        self.topic = topic
        self._db = Path(db)
        self._consumer = plain_consumer(bootstrap, settings)
        self._lock = threading.Lock()
        self._tps: list[Any] = []
        self._begin: dict[Any, int] = {}

    def __call__(self) -> pd.DataFrame:
        """Per partition: ``partition, end_offset, stored, lag`` (raises ``KafkaIOError``)."""
        import pandas as pd
        from kafka.errors import KafkaError

        from tracelab.ingest.store import read_offsets  # only here: producers need no SQLite

        with self._lock:
            try:
                if not self._tps:
                    self._tps = _partitions(self._consumer, self.topic)
                    self._begin = self._consumer.beginning_offsets(self._tps)
                end = self._consumer.end_offsets(self._tps)
            except KafkaError as exc:
                raise KafkaIOError(
                    f"cannot read the end offsets of {self.topic!r}: {exc}"
                ) from None
            stored = read_offsets(self._db, self.topic)
        rows = []
        for tp in self._tps:
            base = stored.get(tp.partition, self._begin.get(tp, 0))
            rows.append((tp.partition, end[tp], stored.get(tp.partition), max(0, end[tp] - base)))
        frame = pd.DataFrame(rows, columns=["partition", "end_offset", "stored", "lag"])
        frame["stored"] = frame["stored"].astype("Int64")
        return frame

    def close(self) -> None:
        """Close the Kafka client (idempotent)."""
        with self._lock, contextlib.suppress(Exception):
            self._consumer.close()


def sample_messages(
    bootstrap: str,
    topic: str = config.DEFAULT_TOPIC,
    n: int = 20,
    key: str | None = None,
    *,
    settings: Mapping[str, Any] | None = None,
    timeout: float = 10.0,
) -> pd.DataFrame:
    """Up to ``n`` messages from the start of ``topic`` (only those with ``key`` if given).

    Columns: ``partition, offset, key, system, value`` (value decoded as UTF-8 text with
    replacement; it is data, never markup). With ``key``, only the key's partition is read.

    Example: ``sample_messages("127.0.0.1:9092", "raw-logs", n=5)``
    """
    import pandas as pd

    if n < 0:
        raise ConfigError("n must be >= 0")
    consumer = plain_consumer(bootstrap, settings)
    rows: list[tuple[int, int, str | None, str | None, str]] = []
    try:
        tps = _partitions(consumer, topic)
        if key is not None:
            wanted = (murmur2(key.encode()) & 0x7FFFFFFF) % len(tps)
            tps = [tps[wanted]]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        end = consumer.end_offsets(tps)
        deadline = time.monotonic() + timeout
        while len(rows) < n and time.monotonic() < deadline:
            if all(consumer.position(tp) >= end[tp] for tp in tps):
                break
            for batch in consumer.poll(timeout_ms=500).values():
                for rec in batch:
                    k = rec.key.decode("utf-8", "replace") if rec.key is not None else None
                    if key is not None and k != key:
                        continue
                    system = next(
                        (v.decode("utf-8", "replace") for h, v in rec.headers if h == "system"),
                        None,
                    )
                    value = rec.value.decode("utf-8", "replace") if rec.value is not None else ""
                    rows.append((rec.partition, rec.offset, k, system, value))
    finally:
        consumer.close()
    rows.sort(key=lambda r: (r[0], r[1]))
    return pd.DataFrame(rows[:n], columns=["partition", "offset", "key", "system", "value"])
