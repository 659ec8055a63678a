"""The producer side: :class:`KafkaSink` writes raw log lines to a topic, created if missing.

Messages on the topic are each system's raw log line: value = the bytes exactly as emitted,
key = the correlation id (a trace stays in one partition), header ``system`` = the emitting
system.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from kafka.partitioner.default import murmur2

from tracelab import config
from tracelab.errors import ConfigError, KafkaIOError
from tracelab.kafka.settings import admin_client, no_brokers_error, resolve_settings
from tracelab.simulate.sinks import Sink

if TYPE_CHECKING:
    pass

log = logging.getLogger(__name__)

__all__ = ["KafkaSink", "ensure_topic"]


def ensure_topic(
    bootstrap: str,
    topic: str = config.DEFAULT_TOPIC,
    partitions: int = config.DEFAULT_PARTITIONS,
    *,
    settings: Mapping[str, Any] | None = None,
    replication_factor: int = -1,
) -> bool:
    """Create ``topic`` with ``partitions`` partitions unless it exists; True if created.

    ``replication_factor=-1`` takes the broker's default (1 on the local broker).

    Example: ``ensure_topic("127.0.0.1:9092", "raw-logs", 6)`` -> ``True``
    """
    from kafka.admin import NewTopic
    from kafka.errors import KafkaError, TopicAlreadyExistsError

    if partitions < 1:
        raise ConfigError(f"partitions must be >= 1, got {partitions}")
    admin = admin_client(bootstrap, resolve_settings(settings))
    try:
        if topic in admin.list_topics():
            return False
        try:
            admin.create_topics(
                [NewTopic(topic, num_partitions=partitions, replication_factor=replication_factor)]
            )
        except TopicAlreadyExistsError:
            return False
        admin.wait_for_topics([topic], timeout_ms=30000)
        return True
    except KafkaError as exc:
        raise KafkaIOError(f"cannot create topic {topic!r} on {bootstrap}: {exc}") from None
    finally:
        with contextlib.suppress(Exception):
            admin.close()


class KafkaSink(Sink):
    """A :class:`~tracelab.simulate.sinks.Sink` that produces each raw message to a Kafka topic.

    Idempotent producer, ``acks=all``, batching (``linger_ms``) and compression (gzip by
    default). The topic is created with ``partitions`` partitions if missing. Delivery failures
    are collected and raised as ``KafkaIOError`` from :meth:`flush`/:meth:`close`.

    Example:
        with KafkaSink("127.0.0.1:9092", topic="raw-logs", partitions=6) as sink:
            sink.write(b'{"system": "inventory", ...}', key="abc-123", system="inventory")
    """

    __slots__ = (
        "bootstrap",
        "topic",
        "partitions",
        "count",
        "_producer",
        "_errors",
        "_first_error",
        "_closed",
        "_on_error",
        "_headers",
        "_keys",
        "_npart",
    )

    def __init__(
        self,
        bootstrap: str,
        topic: str = config.DEFAULT_TOPIC,
        partitions: int = config.DEFAULT_PARTITIONS,
        *,
        settings: Mapping[str, Any] | None = None,
        compression: str | None = "gzip",
        linger_ms: int = 20,
        batch_size: int = 256 * 1024,
        create_topic: bool = True,
    ) -> None:
        from kafka import KafkaProducer
        from kafka.errors import KafkaError

        if not bootstrap:
            raise ConfigError("a Kafka bootstrap address is needed (--bootstrap HOST:PORT)")
        if not topic:
            raise ConfigError("a topic name is needed")
        if compression not in (None, "gzip", "snappy", "lz4", "zstd"):
            raise ConfigError(f"unknown compression {compression!r}")
        self.bootstrap = bootstrap
        self.topic = topic
        self.partitions = partitions
        self.count = 0
        self._errors = 0
        self._first_error: BaseException | None = None
        self._closed = False
        self._headers: dict[str, list[tuple[str, bytes]]] = {}
        opts = resolve_settings(settings)
        if create_topic:
            ensure_topic(bootstrap, topic, partitions, settings=opts)
        opts.setdefault("client_id", "tracelab-producer")
        try:
            self._producer = KafkaProducer(
                bootstrap_servers=bootstrap,
                enable_idempotence=True,
                acks="all",
                compression_type=compression,
                linger_ms=linger_ms,
                batch_size=batch_size,
                metrics_enabled=False,
                max_block_ms=120_000,
                bootstrap_timeout_ms=15_000,
                **opts,
            )
        except (KafkaError, OSError) as exc:
            raise no_brokers_error(bootstrap, exc, opts) from None

        # Partition of each key, computed once per trace instead of once per message: the same
        # murmur2 mapping as the Java client's default partitioner.
        self._keys: dict[str, tuple[bytes, int]] = {}
        try:
            self._npart = len(self._producer.partitions_for(topic) or ())
        except KafkaError as exc:
            raise KafkaIOError(f"cannot read the partitions of {topic!r}: {exc}") from None

        def on_error(exc: BaseException) -> None:
            self._errors += 1
            if self._first_error is None:
                self._first_error = exc

        self._on_error = on_error

    def write(self, value: bytes, key: str, system: str) -> None:
        """Send one message (asynchronously; :meth:`flush` waits for delivery).

        Example: ``sink.write(b"2025-05-04T10:30:00.123 ORDER: ...", "abc-123", "orders")``
        """
        headers = self._headers.get(system)
        if headers is None:
            headers = self._headers[system] = [("system", system.encode())]
        known = self._keys.get(key)
        if known is None:
            if not key or not self._npart:
                future = self._producer.send(self.topic, value=value, key=None, headers=headers)
                future.add_errback(self._on_error)
                self.count += 1
                return
            kb = key.encode()
            if len(self._keys) >= 16_384:  # the traces in flight; bounded for long live runs
                self._keys.clear()
            known = self._keys[key] = (kb, (murmur2(kb) & 0x7FFFFFFF) % self._npart)
        future = self._producer.send(
            self.topic, value=value, key=known[0], partition=known[1], headers=headers
        )
        future.add_errback(self._on_error)
        self.count += 1

    def flush(self, timeout: float | None = None) -> None:
        """Wait until every message sent so far is acknowledged; raise if any failed.

        Example: ``sink.flush()``
        """
        from kafka.errors import KafkaError

        try:
            self._producer.flush(timeout=timeout)
        except KafkaError as exc:
            raise KafkaIOError(f"flushing to {self.topic!r} failed: {exc}") from None
        if self._errors:
            raise KafkaIOError(
                f"{self._errors} message(s) could not be delivered to {self.topic!r}: "
                f"{self._first_error}"
            )

    def close(self) -> None:
        """Flush and close the producer (idempotent); raises ``KafkaIOError`` on lost messages."""
        if self._closed:
            return
        self._closed = True
        try:
            self.flush()
        finally:
            with contextlib.suppress(Exception):
                self._producer.close(timeout=30)
