"""The normalizing consumer: Kafka records -> the ingest pipeline -> SQLite, exactly once.

The consumer runs the same parse -> join -> store path as ``tracelab normalize`` and stores each
batch together with the offsets it covers in ONE SQLite transaction; on start and on every
partition assignment it seeks to the offsets stored in SQLite, so a crash at any point neither
loses nor duplicates a message. Offsets are committed to Kafka afterwards, for lag tools.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from tracelab import config
from tracelab.errors import ConfigError, KafkaIOError
from tracelab.ingest.boundary import DEFAULT_MAX_MESSAGE_BYTES
from tracelab.ingest.pipeline import check_max_bytes
from tracelab.ingest.shards import open_store, stored_offsets
from tracelab.ingest.store import Summary
from tracelab.kafka.records import install
from tracelab.kafka.settings import admin_client, no_brokers_error, resolve_settings
from tracelab.kafka.writers import InlineWriter, ProcessWriter

__all__ = ["ConsumeStats", "consume"]

log = logging.getLogger(__name__)


class ConsumeStats:
    """Live figures of a running :func:`consume` (read them from another thread if you like)."""

    __slots__ = ("messages", "stored", "batches", "skipped", "lag", "started", "rebalances")

    def __init__(self) -> None:
        self.messages = 0  # polled and handed to the writer
        self.stored = 0  # committed to SQLite
        self.batches = 0
        self.skipped = 0
        self.lag: int | None = None
        self.started = time.monotonic()
        self.rebalances = 0

    @property
    def rate(self) -> float:
        """Messages per second since the start."""
        return self.messages / max(1e-9, time.monotonic() - self.started)


def _listener(consumer: Any, db: Path, topic: str, stats: ConsumeStats) -> Any:
    from kafka import ConsumerRebalanceListener

    class SeekToStored(ConsumerRebalanceListener):
        """On every assignment: continue from the offsets stored in SQLite.

        kafka-python calls this on its IO thread, so SQLite is read on connections of its own
        (one per shard of a shard folder).
        """

        def on_partitions_revoked(self, revoked: Any) -> None:
            # Each batch is fully stored before the next poll, so nothing is pending here.
            pass

        def on_partitions_assigned(self, assigned: Any) -> None:
            stats.rebalances += 1
            stored = stored_offsets(db, topic)
            fresh = []
            for tp in assigned:
                nxt = stored.get(tp.partition)
                if nxt is None:
                    fresh.append(tp)
                else:
                    consumer.seek(tp, nxt)
            if fresh:
                consumer.seek_to_beginning(*fresh)
            log.info(
                "assigned %s; stored offsets %s", sorted(tp.partition for tp in assigned), stored
            )

    return SeekToStored()


def _make_consumer(
    bootstrap: str,
    group: str,
    instance_id: str | None,
    settings: Mapping[str, Any],
    batch_size: int,
    unreachable_timeout: float,
    stop: threading.Event,
    say: Callable[[str], None],
) -> Any:
    from kafka import KafkaConsumer
    from kafka.errors import KafkaError

    opts = dict(settings)
    opts.setdefault("client_id", "tracelab-consumer")
    deadline = time.monotonic() + unreachable_timeout
    delay = 1.0
    while True:
        try:
            consumer = KafkaConsumer(
                bootstrap_servers=bootstrap,
                group_id=group,
                group_instance_id=instance_id,
                session_timeout_ms=10_000,
                heartbeat_interval_ms=2_000,
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                max_poll_records=batch_size,
                max_partition_fetch_bytes=8 * 1024 * 1024,
                fetch_max_bytes=64 * 1024 * 1024,
                metrics_enabled=False,
                reconnect_backoff_max_ms=2_000,  # back quickly after a broker restart
                bootstrap_timeout_ms=int(1000 * min(10.0, max(1.0, unreachable_timeout / 2))),
                **opts,
            )
            log.info(
                "record batches decoded by %s", "tracelab" if install(consumer) else "kafka-python"
            )
            return consumer
        except (KafkaError, OSError) as exc:
            if stop.is_set() or time.monotonic() + delay > deadline:
                raise no_brokers_error(bootstrap, exc, settings) from None
            say(f"Kafka at {bootstrap} unreachable ({type(exc).__name__}); retry in {delay:.0f}s")
            stop.wait(delay)
            delay = min(delay * 2, 30.0)


def _caught_up(consumer: Any, stats: ConsumeStats) -> bool | None:
    """True if every assigned partition is read to its end; None if the broker cannot tell.

    False while the group has not assigned partitions to this member yet (a rebalance that
    waits for a crashed member's session to expire, for instance).
    """
    from kafka.errors import KafkaError

    if stats.rebalances == 0:
        return False
    assigned = consumer.assignment()
    if not assigned:
        return True
    try:
        ends = consumer.end_offsets(list(assigned), timeout_ms=5000)
        return all(consumer.position(tp, timeout_ms=5000) >= ends[tp] for tp in assigned)
    except (KafkaError, OSError, KeyError):
        return None


def _answers(consumer: Any, topic: str) -> bool:
    """Whether the broker answers a request for ``topic``'s end offsets (within 5 s)."""
    from kafka import TopicPartition
    from kafka.errors import KafkaError

    try:
        parts = consumer.partitions_for_topic(topic) if consumer.assignment() else None
        tps = [TopicPartition(topic, p) for p in sorted(parts or {0})]
        consumer.end_offsets(tps, timeout_ms=5000)
        return True
    except (KafkaError, OSError, KeyError, AssertionError):
        return False


def _bootstrap_of(consumer: Any) -> str:
    servers = consumer.config.get("bootstrap_servers")
    return servers if isinstance(servers, str) else ",".join(servers or ())


def _lag(consumer: Any) -> int | None:
    """Messages behind the end, over the assigned partitions whose end is known (no request)."""
    total = 0
    known = False
    for tp in consumer.assignment():
        high = consumer.highwater(tp)
        if high is None:
            continue
        try:
            total += max(0, high - consumer.position(tp, timeout_ms=100))
        except Exception:  # noqa: BLE001 - a progress figure, never worth failing for
            continue
        known = True
    return total if known else None


@contextlib.contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        stop.set()

    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def consume(
    bootstrap: str,
    topic: str = config.DEFAULT_TOPIC,
    group: str = "tracelab",
    db: str | Path = config.DEFAULT_DB,
    until_idle: float | None = 5.0,
    *,
    settings: Mapping[str, Any] | None = None,
    instance_id: str | None = None,
    batch_size: int = 10_000,
    poll_timeout: float = 0.5,
    max_messages: int | None = None,
    unreachable_timeout: float = 120.0,
    writer_process: bool = True,
    progress: bool = True,
    handle_signals: bool = True,
    stop: threading.Event | None = None,
    stats: ConsumeStats | None = None,
    styles: Any = None,
    max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    shards: bool = False,
) -> Summary:
    """Consume ``topic`` as member of ``group`` and normalize every message into ``db``.

    ``styles`` is the :class:`tracelab.styles.Registry` to parse with (None: the built-ins and
    ``$TRACELAB_STYLES``).

    ``db`` is a database file, or with ``shards`` (or when it is an existing folder) a shard
    folder holding one database per partition (``tracelab.ingest.shards``).

    Each polled batch and the offsets it covers are stored in one SQLite transaction, then the
    offsets are committed to Kafka. With ``writer_process`` (default) batches are stored by a
    child process while this one polls the next. Stops when ``until_idle`` seconds pass with no
    message and every assigned partition is read to its end (``None``: run until SIGINT/SIGTERM
    or ``stop``), or after ``max_messages``. A broker that stays unreachable for
    ``unreachable_timeout`` seconds raises ``KafkaIOError``, in every mode (batches received
    before stay stored); so does a topic that does not exist. Messages over ``max_bytes`` are
    quarantined as ``too large``, unparsed. ``instance_id`` makes this a static
    group member: a restarted consumer with the same id takes its partitions back at once,
    without waiting for the crashed one's session to expire. Returns the counts of this run's
    messages.

    Example: ``consume("127.0.0.1:9092", "raw-logs", "tracelab", "x.db", until_idle=5).read``
    """
    if not bootstrap:
        raise ConfigError("a Kafka bootstrap address is needed (--bootstrap HOST:PORT)")
    if not group:
        raise ConfigError("a consumer group name is needed (--group)")
    if batch_size < 1:
        raise ConfigError(f"batch size must be >= 1, got {batch_size}")
    if until_idle is not None and not until_idle >= 0:  # also NaN
        raise ConfigError(f"--until-idle must be a number of seconds >= 0, got {until_idle}")
    if not unreachable_timeout >= 0:
        raise ConfigError(
            f"--unreachable-timeout must be a number of seconds >= 0, got {unreachable_timeout}"
        )
    if not topic:
        raise ConfigError("a topic name is needed (--topic)")
    check_max_bytes(max_bytes)
    stop = stop or threading.Event()
    stats = stats or ConsumeStats()
    opts = resolve_settings(settings)
    db_path = Path(db)
    if shards:
        db_path.mkdir(parents=True, exist_ok=True)
    open_store(db_path).close()  # create/migrate (or fail) before touching Kafka
    bar = _progress_bar(progress, f"consume {topic}")

    def say(text: str) -> None:
        if bar is not None:
            bar.write(f"tracelab: {text}")
        else:
            log.warning("%s", text)

    consumer = None
    writer: InlineWriter | ProcessWriter | None = None
    totals = Summary()
    try:
        with _stop_on_signals(stop) if handle_signals else contextlib.nullcontext():
            writer = (
                ProcessWriter(db_path, styles=styles, max_bytes=max_bytes)
                if writer_process
                else InlineWriter(db_path, styles, max_bytes=max_bytes)
            )
            consumer = _make_consumer(
                bootstrap, group, instance_id, opts, batch_size, unreachable_timeout, stop, say
            )
            _require_topic(bootstrap, topic, opts)
            consumer.subscribe([topic], listener=_listener(consumer, db_path, topic, stats))
            totals = _loop(
                consumer, writer, db_path, topic, stats, stop, bar, say,
                until_idle=until_idle, poll_timeout=poll_timeout, max_messages=max_messages,
                unreachable_timeout=unreachable_timeout, batch_size=batch_size,
            )  # fmt: skip
    finally:
        if writer is not None:
            writer.close()
            stats.skipped = writer.skipped
        if consumer is not None:
            with contextlib.suppress(Exception):
                consumer.close(autocommit=False, timeout_ms=5000)
        if bar is not None:
            bar.close()
    return totals


def _require_topic(bootstrap: str, topic: str, settings: Mapping[str, Any]) -> None:
    """Raise ``KafkaIOError`` if ``topic`` does not exist (asked without creating it)."""
    from kafka.errors import KafkaError

    admin = admin_client(bootstrap, settings)
    try:
        exists = topic in admin.list_topics()
    except KafkaError as exc:
        raise KafkaIOError(f"cannot list the topics on {bootstrap}: {exc}") from None
    finally:
        with contextlib.suppress(Exception):
            admin.close()
    if not exists:
        raise KafkaIOError(
            f"topic {topic!r} does not exist on {bootstrap}; nothing consumed "
            "(produce to it first, e.g. `tracelab simulate --bootstrap ...`)"
        )


def _loop(
    consumer: Any,
    writer: InlineWriter | ProcessWriter,
    db: Path,
    topic: str,
    stats: ConsumeStats,
    stop: threading.Event,
    bar: Any,
    say: Callable[[str], None],
    *,
    until_idle: float | None,
    poll_timeout: float,
    max_messages: int | None,
    unreachable_timeout: float,
    batch_size: int,
) -> Summary:
    from kafka.errors import KafkaError
    from kafka.structs import OffsetAndMetadata

    timeout_ms = int(poll_timeout * 1000)
    last_data = last_probe = time.monotonic()
    probe_every = max(1.0, min(5.0, unreachable_timeout / 4))
    unreachable_since: float | None = None
    next_lag = 0.0
    totals = Summary()

    def settle(wait: bool = False) -> None:
        nonlocal totals
        for summary, commit in writer.completed(wait):
            totals = totals + summary
            stats.stored += summary.read
            with contextlib.suppress(Exception):
                consumer.commit_async(commit)

    while not stop.is_set():
        limit = batch_size
        if max_messages is not None:
            limit = min(limit, max_messages - stats.messages)
            if limit <= 0:
                break
        try:
            polled = consumer.poll(timeout_ms=timeout_ms, max_records=limit)
        except KafkaError as exc:
            # Rebalance or connection trouble: the client recovers; say so and go on.
            unreachable_since = unreachable_since or time.monotonic()
            if time.monotonic() - unreachable_since > unreachable_timeout:
                raise KafkaIOError(
                    f"polling Kafka failed for {unreachable_timeout:.0f}s ({exc}); giving up "
                    "(every batch received before is stored)"
                ) from None
            say(f"poll failed ({type(exc).__name__}: {exc}); retrying")
            stop.wait(1.0)
            continue
        now = time.monotonic()
        if not polled:
            settle()
            idle = until_idle is not None and now - last_data >= until_idle
            # Without data, ask the broker now and then (in every mode) whether it still answers.
            if idle or now - max(last_data, last_probe) >= probe_every:
                last_probe = now
                done = _caught_up(consumer, stats)
                if done is None or (done is False and not _answers(consumer, topic)):
                    unreachable_since = unreachable_since or now
                    if now - unreachable_since > unreachable_timeout:
                        raise KafkaIOError(
                            f"Kafka at {_bootstrap_of(consumer)} unreachable for "
                            f"{unreachable_timeout:.0f}s; giving up (every batch received "
                            "before is stored)"
                        )
                    say("waiting for the broker to answer ...")
                    stop.wait(min(5.0, max(1.0, now - unreachable_since)))
                    continue
                unreachable_since = None
                if idle and done:
                    stats.lag = 0
                    if bar is not None:
                        bar.set_postfix(lag=0)
                    break
                if idle:
                    last_data = now  # not at the end yet: keep polling
            continue
        unreachable_since = None
        records: list[tuple[bytes, str, int, int]] = []
        append = records.append
        offsets: dict[tuple[str, int], int] = {}
        commit: dict[Any, Any] = {}
        for tp, batch in polled.items():
            part = tp.partition
            for rec in batch:
                append((rec.value, topic, part, rec.offset))
            nxt = batch[-1].offset + 1
            offsets[(topic, part)] = nxt
            commit[tp] = OffsetAndMetadata(nxt, "", -1)
        writer.submit(records, offsets, commit)
        stats.messages += len(records)
        stats.batches += 1
        last_data = now
        settle()
        if bar is not None:
            bar.update(len(records))
            if now >= next_lag:
                stats.lag = _lag(consumer)
                bar.set_postfix(lag=stats.lag if stats.lag is not None else "?", refresh=False)
                next_lag = now + 1.0
    settle(wait=True)
    with contextlib.suppress(Exception):
        assigned = consumer.assignment()
        if assigned:
            stored = stored_offsets(db, topic)
            consumer.commit(
                {
                    tp: OffsetAndMetadata(stored[tp.partition], "", -1)
                    for tp in assigned
                    if tp.partition in stored
                },
                timeout_ms=5000,
            )
    return totals


def _progress_bar(enabled: bool, desc: str) -> Any:
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(desc=desc, unit=" msg", unit_scale=True, file=sys.stderr, dynamic_ncols=True)
