"""Where normalized messages go: an abstract :class:`Store` and its SQLite implementation.

A batch of parsed messages is written in ONE transaction (``BEGIN IMMEDIATE``, so several processes
may share one database file): duplicate check, events, details, quarantine, the join updates, the
counters and the Kafka offsets the batch covers. The join state lives in the database (an event's
``join_state``, a detail's ``event_id``), so memory stays flat and a restart loses nothing.
"""

from __future__ import annotations

import contextlib
import sqlite3
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import apsw

from tracelab.closing import ClosesOnExit
from tracelab.errors import StoreError
from tracelab.ingest.boundary import (
    error_reason,
    is_database_failure,
    raw_bytes,
    storable,
    storable_text,
)
from tracelab.ingest.duplicates import drop_duplicates
from tracelab.ingest.join import match
from tracelab.ingest.parsers import BAD, DETAIL, EVENT
from tracelab.ingest.schema import CURRENT_SCHEMA, MIGRATIONS, SCHEMA_VERSION
from tracelab.record import JOIN_AWAITING, JOIN_JOINED
from tracelab.timefmt import stored_to_us

__all__ = ["Item", "SQLiteStore", "Store", "Summary", "read_kafka_offsets", "read_offsets"]

#: One parsed message on its way to the store:
#: ``(parsed tuple, digest, raw bytes, source, partition, offset)``.
Item = tuple[tuple[Any, ...], bytes, bytes, str, int | None, int]
#: Where a message came from: ``(source, partition, offset)`` (partition None for files).
Position = tuple[str, int | None, int]


@dataclass(frozen=True, slots=True)
class Summary:
    """Counts of messages by where they ended; ``read`` always equals the sum of the five places.

    ``blank`` counts blank lines, which are not messages and not part of ``read``.

    Example: ``Summary(read=3, events=2, duplicates=1).adds_up`` -> ``True``
    """

    read: int = 0
    events: int = 0
    joined: int = 0
    orphans: int = 0
    duplicates: int = 0
    quarantined: int = 0
    blank: int = 0

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not isinstance(value, int) or value < 0:
                raise ValueError(f"Summary.{f.name} must be a non-negative int, got {value!r}")

    @property
    def adds_up(self) -> bool:
        """Whether read == events + joined + orphans + duplicates + quarantined."""
        return self.read == (
            self.events + self.joined + self.orphans + self.duplicates + self.quarantined
        )

    def __add__(self, other: Summary) -> Summary:
        if not isinstance(other, Summary):
            return NotImplemented
        return Summary(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(self)))

    def as_dict(self) -> dict[str, int]:
        """The counts as a plain dict.

        Example: ``Summary(read=1, events=1).as_dict()["events"]`` -> ``1``
        """
        return asdict(self)

    def format(self) -> str:
        """A small text table, the line ``read = ...`` last.

        Example: ``print(Summary(read=1, events=1).format())``
        """
        rows = [
            ("messages read", self.read),
            ("events", self.events),
            ("details joined", self.joined),
            ("orphan details", self.orphans),
            ("duplicates", self.duplicates),
            ("quarantined", self.quarantined),
        ]
        width = max(len(str(v)) for _, v in rows)
        lines = [f"{name:<16}{value:>{width}}" for name, value in rows]
        check = "=" if self.adds_up else "!="
        lines.append(
            f"{self.read} {check} {self.events} + {self.joined} + {self.orphans} + "
            f"{self.duplicates} + {self.quarantined}"
            f"  (read {check} events + joined + orphans + duplicates + quarantined)"
        )
        if self.blank:
            lines.append(f"blank lines skipped (not messages): {self.blank}")
        return "\n".join(lines)


def read_kafka_offsets(conn: sqlite3.Connection | apsw.Connection, topic: str) -> dict[int, int]:
    """``{partition: next offset to read}`` stored for ``topic``, on any connection to the file
    (e.g. one of another thread than the store's).

    Example: ``read_kafka_offsets(sqlite3.connect("x.db"), "raw-logs")`` -> ``{0: 1235}``
    """
    rows = conn.execute(
        "SELECT partition, next_offset FROM kafka_offsets WHERE topic = ?", (topic,)
    )
    return {int(p): int(o) for p, o in rows}


def read_offsets(db: str | Path, topic: str) -> dict[int, int]:
    """``{partition: next offset to read}`` stored for ``topic`` in the database file ``db``.

    Opens its own read-only connection, so it may be called from any thread (kafka-python's
    rebalance callbacks run on its IO thread) and never takes a write lock or migrates the file.
    A file that does not exist yet has no offsets.

    Example: ``read_offsets("x.db", "raw-logs")`` -> ``{0: 1235}``
    """
    path = Path(db)
    if not path.is_file():
        return {}
    uri = f"file:{quote(str(path.resolve()))}?mode=ro"
    try:
        with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=30)) as conn:
            return read_kafka_offsets(conn, topic)
    except sqlite3.Error as exc:
        raise StoreError(f"cannot read the Kafka offsets in {path}: {exc}") from exc


class Store(ClosesOnExit, ABC):
    """Persistent home of normalized messages and of the join state."""

    __slots__ = ()

    @abstractmethod
    def write_batch(
        self,
        items: Sequence[Item],
        *,
        blank: int | Sequence[Position] = 0,
        offsets: Mapping[tuple[str, int], int] | None = None,
    ) -> Summary:
        """Store one batch of parsed messages atomically; return where its messages ended.

        ``blank``: the batch's blank lines, as a number or as their positions."""

    @abstractmethod
    def kafka_offsets(self, topic: str) -> dict[int, int]:
        """``{partition: next offset to read}`` stored for ``topic``."""

    @abstractmethod
    def summary(self) -> Summary:
        """Cumulative counts of everything stored so far."""

    @abstractmethod
    def max_detail_id(self) -> int:
        """The largest detail id so far (0 when none); marks where a run's details start."""

    @abstractmethod
    def details_since(self, detail_id: int) -> tuple[int, int]:
        """``(joined, orphans)`` among details with id greater than ``detail_id``."""

    @abstractmethod
    def close(self) -> None:
        """Release the store's resources."""


def _statements(script: str) -> list[str]:
    """Split a SQL script into complete statements (comments may contain ';')."""
    out: list[str] = []
    buf = ""
    for line in script.splitlines(keepends=True):
        buf += line
        if sqlite3.complete_statement(buf):
            out.append(buf)
            buf = ""
    if buf.strip() and not all(
        ln.strip().startswith("--") or not ln.strip() for ln in buf.splitlines()
    ):
        raise StoreError(f"incomplete SQL statement in schema: {buf.strip()[:60]!r}")
    return out


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# ts_us comes from timefmt.stored_to_us (schema version 4's migration computes the same value
# in SQL for older rows; tests pin the two together).
_INSERT_EVENT = (
    "INSERT INTO events (id, system_id, checkpoint_id, timestamp, status, correlation_id,"
    " failure_reason, join_state, attributes, source, partition, offset, ingested_at, msg_hash,"
    " ts_us) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_INSERT_DETAIL = (
    "INSERT INTO details (id, system_id, correlation_id, failure_reason, timestamp, raw,"
    " source, partition, offset, ingested_at, msg_hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_INSERT_QUARANTINE = (
    "INSERT INTO quarantine (raw, reason, source, partition, offset, ingested_at, msg_hash)"
    " VALUES (?, ?, ?, ?, ?, ?, ?)"
)
_BUMP_COUNTER = (
    "INSERT INTO counters (name, value) VALUES (?, ?)"
    " ON CONFLICT (name) DO UPDATE SET value = value + excluded.value"
)
_UPSERT_OFFSET = (
    "INSERT INTO kafka_offsets (topic, partition, next_offset, updated_at) VALUES (?, ?, ?, ?)"
    " ON CONFLICT (topic, partition) DO UPDATE SET next_offset = excluded.next_offset,"
    " updated_at = excluded.updated_at"
)
# CROSS JOIN fixes the loop order: the few keys of the batch outside, an index search inside
# (a plain JOIN lets the planner scan the whole table instead).
_KEY_DETAILS = (
    "SELECT d.system_id, d.correlation_id, d.id, d.timestamp, d.msg_hash, d.event_id,"
    " d.failure_reason FROM temp.join_keys AS k CROSS JOIN details AS d"
    " ON d.system_id = k.system_id AND d.correlation_id = k.correlation_id"
)
_KEY_FAILURES = (
    "SELECT e.system_id, e.correlation_id, e.id, e.timestamp, e.msg_hash"
    " FROM temp.join_keys AS k CROSS JOIN events AS e INDEXED BY events_correlation"
    " ON e.correlation_id = k.correlation_id AND e.system_id = k.system_id"
    " WHERE e.status = 'FAILURE' AND e.join_state IN ('awaiting_detail', 'joined')"
)


class SQLiteStore(Store):
    """A tracelab database in one SQLite file: created and migrated on open, WAL mode.

    Example: ``with SQLiteStore("x.db") as store: print(store.summary())``
    """

    __slots__ = ("path", "skipped", "_conn", "_own_details")

    def __init__(self, path: str | Path, *, timeout: float = 30.0) -> None:
        self.path = Path(path)
        #: Records dropped by the offset guard of :meth:`write_batch` (stored before).
        self.skipped = 0
        #: ``(first, last)`` id ranges of the details this store object wrote.
        self._own_details: list[tuple[int, int]] = []
        if str(path) == "" or self.path.is_dir():
            raise StoreError(f"database path {str(path)!r} is not a file path")
        try:
            if str(path) != ":memory:":
                self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create folder for database {self.path}: {exc}") from exc
        try:
            self._conn = apsw.Connection(str(self.path))
        except apsw.Error as exc:
            raise StoreError(f"cannot open database {self.path}: {exc}") from exc
        try:
            self._setup(timeout)
        except BaseException as exc:
            self._conn.close()
            if isinstance(exc, apsw.Error):
                raise StoreError(f"cannot use database {self.path}: {exc}") from exc
            raise

    def _setup(self, timeout: float) -> None:
        c = self._conn
        c.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
        mode = c.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal" and str(self.path) != ":memory:":
            raise StoreError(
                f"cannot use database {self.path}: cannot switch to WAL mode (got {mode})"
            )
        c.execute("PRAGMA synchronous = NORMAL")
        c.execute("PRAGMA cache_size = -65536")
        c.execute("PRAGMA temp_store = MEMORY")
        # fewer, larger checkpoints: each one costs an fsync
        c.execute("PRAGMA wal_autocheckpoint = 16384")
        c.execute("PRAGMA journal_size_limit = 67108864")
        c.execute("BEGIN IMMEDIATE")  # also proves the file is writable
        try:
            has_table = c.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'"
            ).fetchone()
            version = 0
            if has_table:
                version = c.execute("SELECT max(version) FROM schema_version").fetchone()[0] or 0
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"database {self.path} has schema version {version}, newer than this "
                    f"tracelab ({SCHEMA_VERSION})"
                )
            if version == 0:  # a new file gets the current schema in one step
                for statement in _statements(CURRENT_SCHEMA):
                    c.execute(statement)
                c.execute(
                    "INSERT INTO schema_version (version, applied_at) VALUES (?, ?)",
                    (SCHEMA_VERSION, _now()),
                )
                version = SCHEMA_VERSION
            while version < SCHEMA_VERSION:
                for statement in _statements(MIGRATIONS[version]):
                    c.execute(statement)
                version += 1
                c.execute(
                    "INSERT INTO schema_version (version, applied_at) VALUES (?, ?)",
                    (version, _now()),
                )
            c.execute("COMMIT")
        except BaseException:
            c.execute("ROLLBACK")
            raise
        c.execute(
            "CREATE TEMP TABLE IF NOT EXISTS join_keys (system_id TEXT NOT NULL,"
            " correlation_id TEXT NOT NULL, PRIMARY KEY (system_id, correlation_id))"
            " WITHOUT ROWID"
        )

    @property
    def connection(self) -> apsw.Connection:
        """The underlying APSW connection (for queries; write through :meth:`write_batch`).

        Example: ``store.connection.execute("SELECT count(*) FROM events").fetchone()``
        """
        return self._conn

    # -- reading ----------------------------------------------------------------------------

    def kafka_offsets(self, topic: str) -> dict[int, int]:
        """``{partition: next offset to read}`` stored for ``topic``.

        Example: ``store.kafka_offsets("raw-logs")`` -> ``{0: 1235, 1: 998}``
        """
        return read_kafka_offsets(self._conn, topic)

    def counters(self) -> dict[str, int]:
        """All counters, by name.

        Example: ``store.counters()["messages"]``
        """
        return {n: int(v) for n, v in self._conn.execute("SELECT name, value FROM counters")}

    def summary(self) -> Summary:
        """Cumulative counts of everything stored so far.

        Example: ``SQLiteStore("x.db").summary().read``
        """
        c = self._conn
        counters = self.counters()
        events = c.execute("SELECT count(*) FROM events").fetchone()[0]
        details, joined = c.execute("SELECT count(*), count(event_id) FROM details").fetchone()
        quarantined = c.execute("SELECT count(*) FROM quarantine").fetchone()[0]
        return Summary(
            read=counters.get("messages", 0),
            events=events,
            joined=joined,
            orphans=details - joined,
            duplicates=counters.get("duplicates", 0),
            quarantined=quarantined,
            blank=counters.get("blank", 0),
        )

    def max_detail_id(self) -> int:
        """The largest detail id so far (0 when none); marks where a run's details start.

        Example: ``store.max_detail_id()`` -> ``0``
        """
        return self._conn.execute("SELECT coalesce(max(id), 0) FROM details").fetchone()[0]

    def details_since(self, detail_id: int) -> tuple[int, int]:
        """``(joined, orphans)`` among details with id greater than ``detail_id``.

        Example: ``store.details_since(0)`` -> ``(12, 1)``
        """
        total, joined = self._conn.execute(
            "SELECT count(*), count(event_id) FROM details WHERE id > ?", (detail_id,)
        ).fetchone()
        return joined, total - joined

    def own_details(self, detail_id: int = 0) -> tuple[int, int]:
        """``(joined, orphans)`` among the details with id greater than ``detail_id`` that were
        written through this store object.

        Other processes may write the same database meanwhile; their details are not counted,
        so the summary of each concurrent run adds up on its own.

        Example: ``store.own_details(store.max_detail_id())`` -> ``(0, 0)``
        """
        joined = total = 0
        for first, last in self._own_details:
            if last <= detail_id:
                continue
            first = max(first, detail_id + 1)
            n, j = self._conn.execute(
                "SELECT count(*), count(event_id) FROM details WHERE id BETWEEN ? AND ?",
                (first, last),
            ).fetchone()
            total += n
            joined += j
        return joined, total - joined

    # -- writing ----------------------------------------------------------------------------

    def write_batch(
        self,
        items: Sequence[Item],
        *,
        blank: int | Sequence[Position] = 0,
        offsets: Mapping[tuple[str, int], int] | None = None,
    ) -> Summary:
        """Store one batch atomically: duplicates, rows, joins, counters, Kafka offsets.

        With ``offsets`` (Kafka), an offset guard runs inside the same transaction: records of
        a ``(topic, partition)`` below the ``next_offset`` already stored for it were stored by
        an earlier run or another consumer (a zombie after a rebalance), so they are dropped
        (counted in :attr:`skipped`) and a stored offset never moves back. ``blank`` is the
        number of blank lines in the batch, or their positions: those are guarded the same way,
        so a batch delivered twice does not count its blank lines twice.

        Example: ``store.write_batch([(parse(b"..."), digest, b"...", "f.log", None, 1)])``
        """
        c = self._conn
        now = _now()
        try:
            c.execute("BEGIN IMMEDIATE")
        except apsw.Error as exc:
            raise StoreError(f"cannot write to database {self.path}: {exc}") from exc
        try:
            if offsets:
                items, blank, offsets = self._guard_offsets(items, blank, offsets)
            first_detail = self.max_detail_id()
            summary = self._write_or_quarantine(
                items, blank if isinstance(blank, int) else len(blank), offsets, now
            )
            last_detail = self.max_detail_id()
            c.execute("COMMIT")
        except BaseException as exc:
            with contextlib.suppress(apsw.Error):
                c.execute("ROLLBACK")
            if isinstance(exc, apsw.Error):
                raise StoreError(f"cannot write to database {self.path}: {exc}") from exc
            raise
        if last_detail > first_detail:  # ids of this batch's details: the write lock was ours
            self._own_details.append((first_detail + 1, last_detail))
        return summary

    def _write_or_quarantine(
        self,
        items: Sequence[Item],
        blank: int,
        offsets: Mapping[tuple[str, int], int] | None,
        now: str,
        *,
        fixed: bool = False,
    ) -> Summary:
        """:meth:`_write` behind the per-message fault boundary (:mod:`tracelab.ingest.boundary`).

        The batch is written in a savepoint. If it raises anything but a failure of the database
        itself, the savepoint is rolled back and the batch split in halves, each tried alone,
        down to the one message that fails: its text is made storable (lone surrogates), and if
        it still fails it is quarantined with its raw bytes and a reason naming the exception.
        A clean batch costs one savepoint; a poisoned one about twice its normal work.
        """
        c = self._conn
        c.execute("SAVEPOINT message_boundary")
        try:
            summary = self._write(items, blank, offsets, now)
        except Exception as exc:
            if is_database_failure(exc):
                raise
            c.execute("ROLLBACK TO message_boundary")
            c.execute("RELEASE message_boundary")
            if len(items) > 1:
                mid = len(items) // 2
                left = self._write_or_quarantine(items[:mid], 0, None, now)
                return left + self._write_or_quarantine(items[mid:], blank, offsets, now)
            if not items:
                raise
            parsed, digest, raw, source, partition, offset = items[0]
            if not fixed:
                text = (storable(parsed), digest, raw, storable_text(source), partition, offset)
                if text != items[0]:
                    return self._write_or_quarantine([text], blank, offsets, now, fixed=True)
            bad = (
                (BAD, error_reason(exc, "storing")),
                digest,
                raw_bytes(raw),
                storable_text(source),
                partition,
                offset,
            )
            return self._write([bad], blank, offsets, now)
        c.execute("RELEASE message_boundary")
        return summary

    def _guard_offsets(
        self,
        items: Sequence[Item],
        blank: int | Sequence[Position],
        offsets: Mapping[tuple[str, int], int],
    ) -> tuple[Sequence[Item], int | Sequence[Position], Mapping[tuple[str, int], int]]:
        """Drop records already stored (per topic/partition); keep offsets from moving back."""
        floor: dict[tuple[str, int], int] = {}
        for topic in {t for t, _ in offsets}:
            for partition, stored in read_kafka_offsets(self._conn, topic).items():
                if (topic, partition) in offsets:
                    floor[(topic, partition)] = stored
        if not floor:
            return items, blank, offsets
        kept = [item for item in items if item[5] >= floor.get((item[3], item[4]), -1)]
        self.skipped += len(items) - len(kept)
        if not isinstance(blank, int):
            blank = [b for b in blank if b[2] >= floor.get((b[0], b[1]), -1)]
        return kept, blank, {k: max(v, floor.get(k, v)) for k, v in offsets.items()}

    def _write(
        self,
        items: Sequence[Item],
        blank: int,
        offsets: Mapping[tuple[str, int], int] | None,
        now: str,
    ) -> Summary:
        c = self._conn
        read = len(items)
        items, duplicates = drop_duplicates(c, items)
        next_event = c.execute("SELECT coalesce(max(id), 0) + 1 FROM events").fetchone()[0]
        first_detail = next_detail = c.execute(
            "SELECT coalesce(max(id), 0) + 1 FROM details"
        ).fetchone()[0]
        events: list[tuple[Any, ...]] = []
        details: list[tuple[Any, ...]] = []
        quarantine: list[tuple[Any, ...]] = []
        keys: set[tuple[str, str]] = set()
        ev_append = events.append
        ts_us = stored_to_us
        for parsed, digest, raw, source, partition, offset in items:
            kind = parsed[0]
            if kind == EVENT:
                ev_append(
                    (next_event, *parsed[1:], source, partition, offset, now, digest,
                     ts_us(parsed[3]))
                )  # fmt: skip
                next_event += 1
                if parsed[7] == JOIN_AWAITING:
                    keys.add((parsed[1], parsed[5]))
            elif kind == DETAIL:
                details.append(
                    (next_detail, *parsed[1:], raw, source, partition, offset, now, digest)
                )
                next_detail += 1
                keys.add((parsed[1], parsed[2]))
            else:
                quarantine.append((raw, parsed[1], source, partition, offset, now, digest))
        if events:
            c.executemany(_INSERT_EVENT, events)
        if details:
            c.executemany(_INSERT_DETAIL, details)
        if quarantine:
            c.executemany(_INSERT_QUARANTINE, quarantine)
        n_events, n_details, n_quarantine = len(events), len(details), len(quarantine)
        joined_new = self._join(keys, first_detail) if keys else 0
        c.executemany(
            _BUMP_COUNTER,
            [
                ("messages", read),
                ("duplicates", duplicates),
                ("events", n_events),
                ("details", n_details),
                ("quarantined", n_quarantine),
                ("blank", blank),
            ],
        )
        if offsets:
            c.executemany(
                _UPSERT_OFFSET,
                [(topic, part, int(nxt), now) for (topic, part), nxt in offsets.items()],
            )
        return Summary(
            read=read,
            events=n_events,
            joined=joined_new,
            orphans=n_details - joined_new,
            duplicates=duplicates,
            quarantined=n_quarantine,
            blank=blank,
        )

    def _join(self, keys: Iterable[tuple[str, str]], first_new_detail: int) -> int:
        """Recompute the assignment of every key touched by the batch; apply the difference.

        Returns how many of the batch's new details (id >= ``first_new_detail``) are joined.
        """
        c = self._conn
        c.execute("DELETE FROM temp.join_keys")
        c.executemany("INSERT INTO temp.join_keys VALUES (?, ?)", keys)
        per_key: dict[tuple[str, str], list[tuple[Any, ...]]] = {}
        for row in c.execute(_KEY_DETAILS):
            per_key.setdefault((row[0], row[1]), []).append(row)
        if not per_key:
            return 0
        c.execute("DELETE FROM temp.join_keys")
        c.executemany("INSERT INTO temp.join_keys VALUES (?, ?)", per_key)
        failures: dict[tuple[str, str], list[tuple[int, str, bytes]]] = {}
        for system, cid, event_id, ts, digest in c.execute(_KEY_FAILURES):
            failures.setdefault((system, cid), []).append((event_id, ts, digest))
        release: list[tuple[int]] = []
        attach: list[tuple[int, int]] = []
        event_updates: list[tuple[str | None, str, int]] = []
        joined_new = 0
        for key, drows in per_key.items():
            fails = failures.get(key)
            wanted = match(fails, [(d[2], d[3], d[4]) for d in drows]) if fails else {}
            reason_of = {}
            before: dict[int, int] = {}
            for _s, _c, detail_id, _ts, _h, event_id, reason in drows:
                reason_of[detail_id] = reason
                if event_id is not None:
                    before[event_id] = detail_id
                target = wanted.get(detail_id)
                if target is not None and detail_id >= first_new_detail:
                    joined_new += 1
                if target != event_id:
                    if event_id is not None:
                        release.append((detail_id,))
                    if target is not None:
                        attach.append((target, detail_id))
            after = {event_id: detail_id for detail_id, event_id in wanted.items()}
            for event_id, _ts, _h in fails or ():
                new = after.get(event_id)
                if new != before.get(event_id):
                    if new is None:
                        event_updates.append((None, JOIN_AWAITING, event_id))
                    else:
                        event_updates.append((reason_of[new], JOIN_JOINED, event_id))
        if release:
            c.executemany("UPDATE details SET event_id = NULL WHERE id = ?", release)
        if attach:
            c.executemany("UPDATE details SET event_id = ? WHERE id = ?", attach)
        if event_updates:
            c.executemany(
                "UPDATE events SET failure_reason = ?, join_state = ? WHERE id = ?", event_updates
            )
        return joined_new

    def close(self) -> None:
        """Close the connection (idempotent).

        Example: ``store.close()``
        """
        conn = getattr(self, "_conn", None)
        if conn is not None:
            conn.close()
