"""Kafka in and out: the producer sink, the normalizing consumer, and topic/lag/sample views.

Messages on the topic are each system's raw log line: value = the bytes exactly as emitted,
key = the correlation id (a trace stays in one partition), header ``system`` = the emitting
system. The consumer runs the same parse -> join -> store path as ``tracelab normalize`` and
stores each batch together with the offsets it covers in ONE SQLite transaction; on start and on
every partition assignment it seeks to the offsets stored in SQLite, so a crash at any point
neither loses nor duplicates a message. Offsets are committed to Kafka afterwards, for lag tools.

Connection settings for real clusters come from :func:`kafka_config` (a file and/or
``TRACELAB_KAFKA_*`` environment variables); secrets are masked whenever settings are shown.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import sqlite3
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kafka.partitioner.default import murmur2

from tracelab import config
from tracelab.errors import ConfigError, KafkaIOError, StoreError
from tracelab.sinks import Sink
from tracelab.store import SQLiteStore, Summary, read_kafka_offsets

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "KafkaSettings",
    "KafkaSink",
    "consume",
    "consumer_lag",
    "ensure_topic",
    "kafka_config",
    "sample_messages",
    "topic_overview",
]

log = logging.getLogger(__name__)

# ------------------------------------------------------------------------------- settings

#: Setting name -> whether it is a secret. Names are kafka-python's; Kafka's dotted names
#: (``security.protocol``) are accepted in config files and mapped to these.
_SETTINGS: dict[str, bool] = {
    "security_protocol": False,
    "sasl_mechanism": False,
    "sasl_plain_username": False,
    "sasl_plain_password": True,
    "sasl_kerberos_service_name": False,
    "sasl_kerberos_domain_name": False,
    "ssl_cafile": False,
    "ssl_certfile": False,
    "ssl_keyfile": False,
    "ssl_password": True,
    "ssl_crlfile": False,
    "ssl_check_hostname": False,
    "client_id": False,
    "request_timeout_ms": False,
}
_ALIASES = {
    "sasl_username": "sasl_plain_username",
    "sasl_password": "sasl_plain_password",
    "sasl_jaas_username": "sasl_plain_username",
    "ssl_truststore_location": "ssl_cafile",
    "ssl_ca_location": "ssl_cafile",
    "ssl_certificate_location": "ssl_certfile",
    "ssl_key_location": "ssl_keyfile",
    "ssl_key_password": "ssl_password",
    "ssl_endpoint_identification_algorithm": "ssl_check_hostname",
}
_ENV_PREFIX = "TRACELAB_KAFKA_"
_ENV_FILE = "TRACELAB_KAFKA_CONFIG"
_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "GSSAPI", "OAUTHBEARER")
MASK = "***"


class KafkaSettings(dict[str, Any]):
    """kafka-python keyword settings whose text form never shows a secret.

    Example: ``str(KafkaSettings(sasl_plain_password="pw"))`` -> masked ``'***'``
    """

    def redacted(self) -> dict[str, Any]:
        """A copy with every secret replaced by ``***``.

        Example: ``kafka_config().redacted()``
        """
        return {k: (MASK if _SETTINGS.get(k) and v else v) for k, v in self.items()}

    def __repr__(self) -> str:
        return repr(self.redacted())

    __str__ = __repr__

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:  # IPython / notebooks
        printer.text(repr(self))


def _canonical(name: str) -> str:
    key = name.strip().lower().replace(".", "_").replace("-", "_")
    key = key.removeprefix("kafka_")
    return _ALIASES.get(key, key)


def _coerce(key: str, value: Any) -> Any:
    if key == "request_timeout_ms":
        try:
            return int(value)
        except (TypeError, ValueError):
            raise ConfigError(f"Kafka setting {key} must be an integer") from None
    if key == "ssl_check_hostname":
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        return text not in ("", "0", "false", "no", "none")
    text = str(value)
    if key == "security_protocol":
        text = text.upper()
        if text not in _PROTOCOLS:
            raise ConfigError(f"security_protocol must be one of {', '.join(_PROTOCOLS)}")
    if key == "sasl_mechanism":
        text = text.upper()
        if text not in _MECHANISMS:
            raise ConfigError(f"sasl_mechanism must be one of {', '.join(_MECHANISMS)}")
    if (
        key in ("ssl_cafile", "ssl_certfile", "ssl_keyfile", "ssl_crlfile")
        and not Path(text).is_file()
    ):
        raise ConfigError(f"Kafka setting {key}: file not found: {text}")
    return text


def _read_config_file(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read Kafka config file {path}: {exc.strerror or exc}") from None
    if path.suffix.lower() in (".yaml", ".yml", ".json"):
        import yaml

        try:
            data = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"Kafka config file {path} is not valid YAML/JSON: {exc}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"Kafka config file {path} must hold a mapping of settings")
        return data
    data = {}
    for number, raw in enumerate(text.splitlines(), 1):  # Java .properties style
        line = raw.strip()
        if not line or line[0] in "#!":
            continue
        sep = min((i for i in (line.find("="), line.find(":")) if i > 0), default=-1)
        if sep < 0:
            raise ConfigError(f"{path}:{number}: expected key=value")
        data[line[:sep].strip()] = line[sep + 1 :].strip()
    return data


def kafka_config(
    path: str | Path | None = None, env: Mapping[str, str] | None = None
) -> KafkaSettings:
    """Connection settings for kafka-python from a config file and the environment.

    The file (``path``, else ``$TRACELAB_KAFKA_CONFIG``) is YAML/JSON or Java ``.properties``;
    environment variables ``TRACELAB_KAFKA_<SETTING>`` (e.g. ``TRACELAB_KAFKA_SECURITY_PROTOCOL``,
    ``..._SASL_MECHANISM``, ``..._SASL_USERNAME``, ``..._SASL_PASSWORD``, ``..._SSL_CAFILE``,
    ``..._SSL_CERTFILE``, ``..._SSL_KEYFILE``, ``..._CLIENT_ID``) override it. Unknown settings are
    rejected with ``ConfigError``. The result prints with secrets masked.

    Example: ``kafka_config(env={"TRACELAB_KAFKA_SECURITY_PROTOCOL": "SASL_SSL"})``
    """
    environ = os.environ if env is None else env
    raw: dict[str, Any] = {}
    file = path or environ.get(_ENV_FILE)
    if file:
        raw.update({_canonical(k): v for k, v in _read_config_file(Path(file)).items()})
    for name, value in environ.items():
        if name.startswith(_ENV_PREFIX) and name != _ENV_FILE and value != "":
            raw[_canonical(name[len(_ENV_PREFIX) :])] = value
    raw.pop("bootstrap_servers", None)
    raw.pop("bootstrap", None)
    unknown = sorted(k for k in raw if k not in _SETTINGS)
    if unknown:
        raise ConfigError(
            f"unknown Kafka setting(s): {', '.join(unknown)} (known: {', '.join(_SETTINGS)})"
        )
    settings = KafkaSettings({k: _coerce(k, v) for k, v in raw.items() if v is not None})
    if str(settings.get("security_protocol", "")).startswith("SASL") and not settings.get(
        "sasl_mechanism"
    ):
        settings["sasl_mechanism"] = "PLAIN"
    return settings


def _settings(settings: Mapping[str, Any] | None) -> KafkaSettings:
    return KafkaSettings(kafka_config() if settings is None else settings)


def _no_brokers_error(bootstrap: str, exc: BaseException) -> KafkaIOError:
    return KafkaIOError(
        f"cannot reach Kafka at {bootstrap} ({type(exc).__name__}); is the broker running? "
        "(`tracelab broker start`, or set --bootstrap / TRACELAB_BOOTSTRAP)"
    )


def _admin(bootstrap: str, settings: Mapping[str, Any]) -> Any:
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    opts = dict(settings)
    opts.setdefault("client_id", "tracelab-admin")
    opts.setdefault("request_timeout_ms", 15000)
    try:
        return KafkaAdminClient(bootstrap_servers=bootstrap, bootstrap_timeout_ms=15000, **opts)
    except (KafkaError, OSError) as exc:
        raise _no_brokers_error(bootstrap, exc) from None


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
    admin = _admin(bootstrap, _settings(settings))
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


# ------------------------------------------------------------------------------- producer


class KafkaSink(Sink):
    """A :class:`~tracelab.sinks.Sink` that produces each raw message to a Kafka topic.

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
        opts = _settings(settings)
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
            raise _no_brokers_error(bootstrap, exc) from None

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


# ------------------------------------------------------------------------------- consumer


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


def _stored_offsets(db: Path, topic: str) -> dict[int, int]:
    """The offsets in ``db``, read on a connection of the calling thread (the client's IO loop)."""
    with contextlib.closing(sqlite3.connect(db, timeout=30)) as conn:
        return read_kafka_offsets(conn, topic)


def _listener(consumer: Any, db: Path, topic: str, stats: ConsumeStats) -> Any:
    from kafka import ConsumerRebalanceListener

    class SeekToStored(ConsumerRebalanceListener):
        """On every assignment: continue from the offsets stored in SQLite.

        kafka-python calls this on its IO thread, so SQLite is read on a connection of its own.
        """

        def on_partitions_revoked(self, revoked: Any) -> None:
            # Each batch is fully stored before the next poll, so nothing is pending here.
            pass

        def on_partitions_assigned(self, assigned: Any) -> None:
            stats.rebalances += 1
            stored = _stored_offsets(db, topic)
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
            return KafkaConsumer(
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
        except (KafkaError, OSError) as exc:
            if stop.is_set() or time.monotonic() + delay > deadline:
                raise _no_brokers_error(bootstrap, exc) from None
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


class _InlineWriter:
    """Stores each batch in this process before the next poll (one core)."""

    __slots__ = ("store", "normalizer", "_done")

    def __init__(self, db: str | Path) -> None:
        from tracelab.pipeline import Normalizer

        self.store = SQLiteStore(db)
        self.normalizer = Normalizer(self.store)
        self._done: list[tuple[Summary, dict[Any, Any]]] = []

    @property
    def skipped(self) -> int:
        return self.store.skipped

    def submit(self, records: list[Any], offsets: dict[Any, int], commit: dict[Any, Any]) -> None:
        self._done.append((self.normalizer.process_batch(records, offsets=offsets), commit))

    def completed(self, wait: bool = False) -> list[tuple[Summary, dict[Any, Any]]]:
        done, self._done = self._done, []
        return done

    def close(self) -> None:
        self.store.close()


def _writer_main(db: str, conn: Any) -> None:
    """The writer process: store each batch it receives; answer with its summary.

    A job is ``(records, None, offsets)`` (raw: parse here) or ``(items, blanks, offsets)``
    (already parsed by the consumer process, see :meth:`_ProcessWriter.submit`). Each answer
    carries this process's CPU time, by which the consumer shares the parsing.
    """
    import queue

    from tracelab.pipeline import prepare

    for sig in (signal.SIGINT, signal.SIGTERM):  # the consumer process decides when to stop
        signal.signal(sig, signal.SIG_IGN)
    # A reader thread takes each batch off the socket as soon as it is sent, so the consumer
    # process never blocks on a full socket buffer while this one is busy writing.
    jobs: queue.SimpleQueue[Any] = queue.SimpleQueue()

    def read() -> None:
        try:
            while True:
                job = conn.recv()
                jobs.put(job)
                if job is None:
                    return
        except (EOFError, OSError):  # the consumer process is gone (even kill -9): stop
            jobs.put(None)

    store = None
    try:
        store = SQLiteStore(db)
        write = store.write_batch
        conn.send(("ready",))
        threading.Thread(target=read, name="tracelab-writer-recv", daemon=True).start()
        while True:
            job = jobs.get()
            if job is None:
                break
            payload, blanks, offsets = job
            if blanks is None:
                payload, blanks = prepare(payload)
            summary = write(payload, blank=blanks, offsets=offsets)
            conn.send(("done", summary, store.skipped, time.process_time()))
    except BaseException as exc:  # noqa: BLE001 - reported to the consumer process
        with contextlib.suppress(Exception):
            conn.send(("error", type(exc).__name__, str(exc)))
    finally:
        if store is not None:
            store.close()
        conn.close()


def _writer_entry(argv: list[str]) -> None:
    """Entry point of the writer child: ``DB FD``."""
    from multiprocessing.connection import Connection

    db, fd = argv
    _writer_main(db, Connection(int(fd)))


class _ProcessWriter:
    """Stores batches in a child process while this one polls the next (both cores busy).

    At most ``depth`` batches are in flight; results come back in order, each with the Kafka
    commit it allows. The child stops after its current batch when this process dies.
    """

    __slots__ = (
        "_conn", "_proc", "_pending", "_done", "_skipped", "_starting", "_writer_cpu", "depth",
    )  # fmt: skip

    def __init__(self, db: str | Path, depth: int = 2) -> None:
        import socket
        import subprocess
        from multiprocessing.connection import Connection

        # A plain child interpreter (not multiprocessing's spawn, which would re-run an
        # unguarded __main__ script), talking over a socket pair with pickle framing.
        ours, theirs = socket.socketpair()
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            [str(Path(__file__).resolve().parent.parent), env.get("PYTHONPATH", "")]
        ).rstrip(os.pathsep)
        code = (
            "import sys; from tracelab.kafka_io import _writer_entry; _writer_entry(sys.argv[1:])"
        )
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-c", code, str(db), str(theirs.fileno())],
                pass_fds=[theirs.fileno()],
                stdin=subprocess.DEVNULL,
                env=env,
                start_new_session=True,  # a terminal's Ctrl-C goes to the consumer, not here
            )
        finally:
            theirs.close()
        self._conn = Connection(ours.detach())
        self._pending: deque[dict[Any, Any]] = deque()
        self._done: list[tuple[Summary, dict[Any, Any]]] = []
        self._skipped = 0
        # The writer's CPU seconds at its last answer, and when that answer came: with
        # this process's own CPU time they say which side has worked less (see submit).
        self._writer_cpu = (0.0, time.monotonic())
        self.depth = depth
        # The child's first message is "ready" (the database opened fine). It is read with the
        # first result instead of waited for here, so the child's start overlaps the consumer's
        # group join rather than delaying it.
        self._starting = True

    @property
    def skipped(self) -> int:
        return self._skipped

    def _receive(self) -> Any:
        try:
            msg = self._conn.recv()
        except (EOFError, OSError):
            raise StoreError("the SQLite writer process stopped unexpectedly") from None
        if msg[0] == "error":
            if msg[1] == "StoreError":
                raise StoreError(msg[2])
            raise KafkaIOError(f"the SQLite writer process failed: {msg[1]}: {msg[2]}")
        return msg

    def _collect(self) -> None:
        msg = self._receive()
        if self._starting:
            self._starting = False
            if msg[0] == "ready":
                return
        _, summary, skipped, cpu = msg
        self._skipped = skipped
        self._writer_cpu = (cpu, time.monotonic())
        self._done.append((summary, self._pending.popleft()))

    def _writer_is_behind(self) -> bool:
        """Whether the writer has done more work than this process and is still busy.

        Parsing goes to whichever process has used less CPU so far, which keeps both cores
        equally busy whatever the cost of Kafka decoding, parsing and SQLite writing is here.
        The writer's CPU time is known as of its last answer; since then it has been working
        (batches are pending), so the wall time since that answer is added.
        """
        if not self._pending:
            return False
        cpu, at = self._writer_cpu
        return time.process_time() < cpu + (time.monotonic() - at)

    def submit(self, records: list[Any], offsets: dict[Any, int], commit: dict[Any, Any]) -> None:
        """Hand a batch to the writer, parsed here when the writer is the busier process."""
        from tracelab.pipeline import prepare

        job: tuple[Any, list[Any] | None, dict[Any, int]] = (records, None, offsets)
        if self._writer_is_behind():
            items, blanks = prepare(records)
            job = (items, blanks, offsets)
        while len(self._pending) >= self.depth:
            self._collect()
        try:
            self._conn.send(job)
        except (OSError, ValueError):
            raise StoreError("the SQLite writer process stopped unexpectedly") from None
        self._pending.append(commit)

    def completed(self, wait: bool = False) -> list[tuple[Summary, dict[Any, Any]]]:
        while self._pending and (wait or self._conn.poll()):
            self._collect()
        done, self._done = self._done, []
        return done

    def close(self) -> None:
        import subprocess

        with contextlib.suppress(Exception):
            self._conn.send(None)
        try:
            self._proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait(timeout=10)
        self._conn.close()


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
) -> Summary:
    """Consume ``topic`` as member of ``group`` and normalize every message into ``db``.

    Each polled batch and the offsets it covers are stored in one SQLite transaction, then the
    offsets are committed to Kafka. With ``writer_process`` (default) batches are stored by a
    child process while this one polls the next. Stops when ``until_idle`` seconds pass with no
    message and every assigned partition is read to its end (``None``: run until SIGINT/SIGTERM
    or ``stop``), or after ``max_messages``. A broker that stays unreachable for
    ``unreachable_timeout`` seconds raises ``KafkaIOError``. ``instance_id`` makes this a static
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
    if until_idle is not None and until_idle < 0:
        raise ConfigError("--until-idle must be >= 0 seconds")
    stop = stop or threading.Event()
    stats = stats or ConsumeStats()
    opts = _settings(settings)
    db_path = Path(db)
    SQLiteStore(db_path).close()  # create/migrate (or fail) before touching Kafka
    bar = _progress_bar(progress, f"consume {topic}")

    def say(text: str) -> None:
        if bar is not None:
            bar.write(f"tracelab: {text}")
        else:
            log.warning("%s", text)

    consumer = None
    writer: _InlineWriter | _ProcessWriter | None = None
    totals = Summary()
    try:
        with _stop_on_signals(stop) if handle_signals else contextlib.nullcontext():
            writer = _ProcessWriter(db_path) if writer_process else _InlineWriter(db_path)
            consumer = _make_consumer(
                bootstrap, group, instance_id, opts, batch_size, unreachable_timeout, stop, say
            )
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


def _loop(
    consumer: Any,
    writer: _InlineWriter | _ProcessWriter,
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
    last_data = time.monotonic()
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
            say(f"poll failed ({type(exc).__name__}: {exc}); retrying")
            stop.wait(1.0)
            continue
        now = time.monotonic()
        if not polled:
            settle()
            if until_idle is not None and now - last_data >= until_idle:
                done = _caught_up(consumer, stats)
                if done:
                    stats.lag = 0
                    if bar is not None:
                        bar.set_postfix(lag=0)
                    break
                if done is None:
                    unreachable_since = unreachable_since or now
                    if now - unreachable_since > unreachable_timeout:
                        raise KafkaIOError(
                            f"Kafka unreachable for {unreachable_timeout:.0f}s; giving up"
                        )
                    say("waiting for the broker to answer ...")
                    stop.wait(min(5.0, max(1.0, now - unreachable_since)))
                else:
                    unreachable_since = None
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
            stored = _stored_offsets(db, topic)
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


# ------------------------------------------------------------------------------- views


def _plain_consumer(bootstrap: str, settings: Mapping[str, Any] | None) -> Any:
    from kafka import KafkaConsumer
    from kafka.errors import KafkaError

    opts = dict(_settings(settings))
    opts.setdefault("client_id", "tracelab-inspect")
    try:
        return KafkaConsumer(
            bootstrap_servers=bootstrap,
            enable_auto_commit=False,
            metrics_enabled=False,
            bootstrap_timeout_ms=15_000,
            **opts,
        )
    except (KafkaError, OSError) as exc:
        raise _no_brokers_error(bootstrap, exc) from None


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

    consumer = _plain_consumer(bootstrap, settings)
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

    admin = _admin(bootstrap, _settings(settings))
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
        if not Path(db).is_file():
            raise ConfigError(f"database not found: {db}")
        with SQLiteStore(db) as store:
            stored = store.kafka_offsets(topic)
    consumer = _plain_consumer(bootstrap, settings)
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
    consumer = _plain_consumer(bootstrap, settings)
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


def settings_summary(settings: Mapping[str, Any]) -> str:
    """The settings as JSON with secrets masked (for logs and notebooks).

    Example: ``settings_summary(kafka_config())`` -> ``'{}'``
    """
    return json.dumps(KafkaSettings(settings).redacted(), sort_keys=True)
