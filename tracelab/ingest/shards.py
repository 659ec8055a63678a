"""A shard folder: one tracelab SQLite database per Kafka partition (or per hash of the trace).

``tracelab consume --shards DIR`` stores partition ``p`` of topic ``T`` in ``DIR/T-p<p>.db``, a
database of the usual schema. Kafka keys every message by its correlation id, so a trace, its
failure details and its join state all live in one shard, and each shard carries the offsets of
its own partition: each batch's part for a partition and that partition's offset are one
transaction of that shard. Whichever consumer-group member is assigned partition ``p`` writes
shard ``p``; a rebalance moves only the assignment.

``tracelab normalize --shards DIR`` routes by a hash of the correlation id instead
(``DIR/shard-p<i>.db``; quarantined lines without one by their digest, blank lines to shard 0).

Analysis reads a shard folder as one database (``tracelab.analysis.duck.connect(DIR)``).

Example::

    with ShardedStore("data/processed/shards") as store:
        Normalizer(store).process_batch(records, offsets={("raw-logs", 3): 120})
"""

from __future__ import annotations

import re
import sqlite3
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path

from tracelab.errors import ConfigError, StoreError
from tracelab.ingest.parsers import DETAIL, EVENT
from tracelab.ingest.store import Item, Position, SQLiteStore, Store, Summary, read_offsets

__all__ = [
    "FILE_PREFIX",
    "ShardedStore",
    "is_shard_folder",
    "open_store",
    "shard_files",
    "shard_name",
    "stored_offsets",
]

#: Prefix of the shards ``normalize --shards`` writes (Kafka shards are named by their topic).
FILE_PREFIX = "shard"
_SHARD_RE = re.compile(r"^(?P<topic>.+)-p(?P<partition>\d+)\.db$")


def shard_name(topic: str, partition: int) -> str:
    """The file name of a topic partition's shard.

    Example: ``shard_name("raw-logs", 3)`` -> ``'raw-logs-p3.db'``
    """
    return f"{topic}-p{int(partition)}.db"


def shard_files(folder: str | Path, topic: str | None = None) -> list[Path]:
    """The shard databases in ``folder`` (of ``topic`` only if given), by topic then partition.

    Example: ``shard_files("data/processed/shards")`` -> ``[.../raw-logs-p0.db, ...]``
    """
    found = []
    for path in Path(folder).glob("*.db"):
        m = _SHARD_RE.match(path.name)
        if m and (topic is None or m["topic"] == topic) and path.is_file():
            found.append((m["topic"], int(m["partition"]), path))
    return [p for _, _, p in sorted(found)]


def is_shard_folder(path: str | Path) -> bool:
    """Whether ``path`` is a folder (of shards, possibly none yet) rather than a database file.

    Example: ``is_shard_folder("data/processed/shards")`` -> ``True``
    """
    return Path(path).is_dir()


def stored_offsets(target: str | Path, topic: str) -> dict[int, int]:
    """``{partition: next offset}`` stored for ``topic`` in a database file or a shard folder,
    read on read-only connections of the calling thread (``store.read_offsets``).

    Example: ``stored_offsets("shards", "raw-logs")`` -> ``{0: 812, 1: 790}``
    """
    if not is_shard_folder(target):
        return read_offsets(target, topic)
    offsets: dict[int, int] = {}
    for path in shard_files(target, topic):
        try:
            offsets.update(read_offsets(path, topic))
        except StoreError as exc:
            if isinstance(exc.__cause__, sqlite3.OperationalError):
                continue  # a shard being created right now: no offsets yet
            raise
    return offsets


def open_store(target: str | Path) -> Store:
    """The store at ``target``: a :class:`ShardedStore` for a folder, else a database file.

    Example: ``open_store("data/processed/event_history.db")``
    """
    return ShardedStore(target) if is_shard_folder(target) else SQLiteStore(target)


class ShardedStore(Store):
    """Writes each message to the shard of its trace; a :class:`~tracelab.ingest.store.Store`.

    ``shards=None`` (Kafka): the shard of a message is its topic partition, ``<source>-p<n>.db``.
    ``shards=N`` (files): one of ``N`` shards ``shard-p<i>.db`` by a hash of the correlation id.
    Shards open when first written. :meth:`write_batch` stores each shard's part of the batch,
    with its offsets, in one transaction of that shard.

    Example: ``with ShardedStore("shards", shards=6) as s: Normalizer(s).process_batch(records)``
    """

    __slots__ = ("folder", "shards", "_stores")

    def __init__(self, folder: str | Path, *, shards: int | None = None) -> None:
        self.folder = Path(folder)
        if shards is not None and shards < 1:
            raise ConfigError(f"the number of shards must be at least 1, got {shards}")
        self.shards = shards
        if self.folder.exists() and not self.folder.is_dir():
            raise StoreError(f"shard folder {self.folder} is a file")
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create shard folder {self.folder}: {exc}") from exc
        self._stores: dict[str, SQLiteStore] = {}
        if shards is None:
            for path in shard_files(self.folder):
                self._store(path.name)

    def _store(self, name: str) -> SQLiteStore:
        store = self._stores.get(name)
        if store is None:
            store = self._stores[name] = SQLiteStore(self.folder / name)
        return store

    def _hashed(self, item: Item) -> str:
        parsed = item[0]
        if parsed[0] == EVENT:
            key = parsed[5].encode()
        elif parsed[0] == DETAIL:
            key = parsed[2].encode()
        else:
            key = item[1]
        return shard_name(FILE_PREFIX, zlib.crc32(key) % self.shards)  # type: ignore[operator]

    @property
    def skipped(self) -> int:
        """Records dropped by the shards' offset guards (stored before)."""
        return sum(s.skipped for s in self._stores.values())

    def write_batch(
        self,
        items: Sequence[Item],
        *,
        blank: int | Sequence[Position] = 0,
        offsets: Mapping[tuple[str, int], int] | None = None,
    ) -> Summary:
        """Store each shard's part of the batch and its offsets in one transaction of that shard.

        Example: ``store.write_batch(items, blank=[], offsets={("raw-logs", 2): 41})``
        """
        parts: dict[str, list[Item]] = {}
        blanks: dict[str, list[Position]] = {}
        part_offsets: dict[str, dict[tuple[str, int], int]] = {}
        if self.shards is None:
            for item in items:
                if item[4] is None:
                    raise StoreError("a Kafka shard folder takes Kafka records (with a partition)")
                parts.setdefault(shard_name(item[3], item[4]), []).append(item)
            for pos in [] if isinstance(blank, int) else blank:
                blanks.setdefault(shard_name(pos[0], pos[1] or 0), []).append(pos)
        else:
            for item in items:
                parts.setdefault(self._hashed(item), []).append(item)
            if not isinstance(blank, int):
                blanks[shard_name(FILE_PREFIX, 0)] = list(blank)
        for (topic, partition), nxt in (offsets or {}).items():
            part_offsets.setdefault(shard_name(topic, partition), {})[(topic, partition)] = nxt
        total = Summary()
        if isinstance(blank, int) and blank:
            total = self._store(shard_name(FILE_PREFIX, 0)).write_batch([], blank=blank)
        for name in sorted(set(parts) | set(blanks) | set(part_offsets)):
            total = total + self._store(name).write_batch(
                parts.get(name, []), blank=blanks.get(name, []), offsets=part_offsets.get(name)
            )
        return total

    def kafka_offsets(self, topic: str) -> dict[int, int]:
        """``{partition: next offset}`` over the shards of ``topic``.

        Example: ``store.kafka_offsets("raw-logs")`` -> ``{0: 1235, 1: 998}``
        """
        return stored_offsets(self.folder, topic)

    def summary(self) -> Summary:
        """Cumulative counts over every shard in the folder.

        Example: ``ShardedStore("shards").summary().read``
        """
        total = Summary()
        for path in shard_files(self.folder):
            total = total + self._store(path.name).summary()
        return total

    def max_detail_id(self) -> dict[str, int]:
        """Per shard, its largest detail id so far (marks where a run's details start).

        Example: ``store.max_detail_id()`` -> ``{"shard-p0.db": 0}``
        """
        return {p.name: self._store(p.name).max_detail_id() for p in shard_files(self.folder)}

    def details_since(self, marks: dict[str, int]) -> tuple[int, int]:
        """``(joined, orphans)`` among details newer than ``marks`` (from :meth:`max_detail_id`).

        Example: ``store.details_since(marks)`` -> ``(12, 1)``
        """
        joined = orphans = 0
        for path in shard_files(self.folder):
            j, o = self._store(path.name).details_since(marks.get(path.name, 0))
            joined, orphans = joined + j, orphans + o
        return joined, orphans

    def close(self) -> None:
        """Close every shard (idempotent).

        Example: ``store.close()``
        """
        for store in self._stores.values():
            store.close()
        self._stores.clear()
