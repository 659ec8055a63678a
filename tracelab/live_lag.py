"""Consumer lag per partition for the live dashboard: the topic's end offsets (one long-lived
Kafka client, one request per call) minus the offsets the consumer stored in SQLite with its
batches, which are where it resumes (read on a read-only connection).

Kafka side of the live dashboard (:mod:`tracelab.live` imports it only when a bootstrap is
given), so that the analysis modules never import Kafka.

Example::

    lag = PartitionLag("127.0.0.1:9092", "raw-logs", "data/processed/event_history.db")
    lag()          # DataFrame: partition, end_offset, stored, lag
    lag.close()
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from tracelab import live_queries as q
from tracelab.errors import KafkaIOError
from tracelab.kafka_io import _partitions, _plain_consumer, _settings

__all__ = ["PartitionLag"]


class PartitionLag:
    """Callable: the lag of the consumer that writes ``db`` on ``topic``, per partition.

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
        self._consumer = _plain_consumer(bootstrap, _settings(settings))
        self._conn = None
        self._lock = threading.Lock()
        self._tps: list[Any] = []
        self._begin: dict[Any, int] = {}

    def __call__(self) -> pd.DataFrame:
        """Per partition: ``partition, end_offset, stored, lag`` (raises ``KafkaIOError``)."""
        from kafka.errors import KafkaError

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
            if self._conn is None and self._db.is_file():
                self._conn = q.open_readonly(self._db)
            stored = q.stored_offsets(self._conn, self.topic) if self._conn is not None else {}
        rows = []
        for tp in self._tps:
            base = stored.get(tp.partition, self._begin.get(tp, 0))
            rows.append((tp.partition, end[tp], stored.get(tp.partition), max(0, end[tp] - base)))
        frame = pd.DataFrame(rows, columns=["partition", "end_offset", "stored", "lag"])
        frame["stored"] = frame["stored"].astype("Int64")
        return frame

    def close(self) -> None:
        """Close the Kafka client and the database connection (idempotent)."""
        with self._lock:
            with contextlib.suppress(Exception):
                self._consumer.close()
            if self._conn is not None:
                self._conn.close()
                self._conn = None
