"""Parse -> join -> write, batch by batch: the path every raw message takes into the database.

Example::

    from tracelab.store import SQLiteStore
    from tracelab.pipeline import Normalizer

    with SQLiteStore("x.db") as store:
        summary = Normalizer(store).process_batch([(b'{"system": ...}', "raw-logs", 0, 41)])
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from hashlib import blake2b
from pathlib import Path
from typing import BinaryIO

from tracelab.errors import ConfigError
from tracelab.parsers import parse
from tracelab.store import Item, SQLiteStore, Store, Summary

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "Normalizer",
    "Record",
    "Summary",
    "digest",
    "normalize_files",
    "trim_line_ending",
]

#: ``(value, source, partition, offset)``: one raw message and where it came from.
Record = tuple[bytes, str, int | None, int]

DEFAULT_BATCH_SIZE = 10_000


def trim_line_ending(value: bytes) -> bytes:
    """The message without its trailing line ending (``\\n``, ``\\r\\n``).

    Example: ``trim_line_ending(b"abc\\r\\n")`` -> ``b'abc'``
    """
    return value.rstrip(b"\r\n")


def digest(value: bytes) -> bytes:
    """The 16-byte digest used for duplicate detection (of the line-ending-trimmed bytes).

    Example: ``len(digest(b"abc"))`` -> ``16``
    """
    return blake2b(value, digest_size=16).digest()


class Normalizer:
    """Turns batches of raw messages into rows of a :class:`~tracelab.store.Store`.

    Example: ``Normalizer(SQLiteStore("x.db")).process_batch(records)``
    """

    __slots__ = ("store", "totals")

    def __init__(self, store: Store) -> None:
        if not isinstance(store, Store):
            raise TypeError(f"store must be a tracelab Store, got {type(store).__name__}")
        self.store = store
        #: Sum of the summaries of every batch processed by this normalizer.
        self.totals = Summary()

    def process_batch(
        self,
        records: Iterable[Record],
        offsets: Mapping[tuple[str, int], int] | None = None,
    ) -> Summary:
        """Parse, deduplicate, join and store one batch in one transaction, with ``offsets``.

        ``records`` are ``(value, source, partition, offset)``; ``offsets`` maps
        ``(topic, partition)`` to the next offset to read and is stored in the same transaction.
        The result counts this batch's messages; ``joined``/``orphans`` split this batch's details
        by their state when the batch was committed.

        Example: ``norm.process_batch([(b"...", "raw-logs", 0, 7)], offsets={("raw-logs", 0): 8})``
        """
        items: list[Item] = []
        append = items.append
        blank = 0
        for value, source, partition, offset in records:
            if value is None:
                value = b""
            elif value and value[-1] in (10, 13):
                value = value.rstrip(b"\r\n")
            parsed = parse(value)
            if parsed is None:
                blank += 1
                continue
            append(
                (parsed, blake2b(value, digest_size=16).digest(), value, source, partition, offset)
            )
        summary = self.store.write_batch(items, blank=blank, offsets=offsets)
        self.totals = self.totals + summary
        return summary


def _check_paths(paths: Sequence[str | Path]) -> list[str]:
    if isinstance(paths, str | Path):
        paths = [paths]
    names = [str(p) for p in paths]
    if not names:
        raise ConfigError("no input files given")
    if names.count("-") > 1:
        raise ConfigError("stdin ('-') can be read only once")
    for name in names:
        if name == "-":
            continue
        path = Path(name)
        if not path.exists():
            raise ConfigError(f"input file not found: {name}")
        if path.is_dir():
            raise ConfigError(f"input is a folder, not a file: {name}")
        try:
            with path.open("rb"):
                pass
        except OSError as exc:
            raise ConfigError(f"cannot read input file {name}: {exc.strerror}") from exc
    return names


def _batches(stream: BinaryIO, source: str, size: int) -> Iterator[tuple[list[Record], int]]:
    """Batches of records and the number of bytes they span."""
    batch: list[Record] = []
    nbytes = 0
    for lineno, line in enumerate(stream, 1):
        batch.append((line, source, None, lineno))
        nbytes += len(line)
        if len(batch) >= size:
            yield batch, nbytes
            batch = []
            nbytes = 0
    if batch:
        yield batch, nbytes


def normalize_files(
    paths: Sequence[str | Path] | str | Path,
    db: str | Path | Store,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: bool | None = None,
) -> Summary:
    """Normalize raw log files (one message per line, ``-`` = stdin) into a database.

    Lineage: ``source`` is the path as given, ``offset`` the 1-based line number. The summary
    counts this run; ``joined``/``orphans`` split the run's details by their state at the end.
    ``progress`` None shows a tqdm bar on stderr only when it is a terminal.

    Example: ``normalize_files(["data/samples/inventory.log"], "x.db").adds_up`` -> ``True``
    """
    if batch_size < 1:
        raise ConfigError(f"batch size must be at least 1, got {batch_size}")
    names = _check_paths(paths)  # type: ignore[arg-type]
    own = not isinstance(db, Store)
    store = SQLiteStore(db) if own else db  # type: ignore[arg-type]
    try:
        if progress is None:
            progress = sys.stderr.isatty()
        norm = Normalizer(store)
        first = store.max_detail_id() if isinstance(store, SQLiteStore) else None
        total_bytes = sum(Path(n).stat().st_size for n in names if n != "-")
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(
                total=total_bytes or None,
                unit="B",
                unit_scale=True,
                desc="normalize",
                file=sys.stderr,
                disable=not progress,
            )
        try:
            for name in names:
                if name == "-":
                    _run_stream(norm, sys.stdin.buffer, "-", batch_size, bar)
                else:
                    with open(name, "rb") as stream:
                        _run_stream(norm, stream, name, batch_size, bar)
        finally:
            if bar is not None:
                bar.close()
        result = norm.totals
        if first is not None:
            joined, orphans = store.details_since(first)  # type: ignore[union-attr]
            result = Summary(
                read=result.read,
                events=result.events,
                joined=joined,
                orphans=orphans,
                duplicates=result.duplicates,
                quarantined=result.quarantined,
                blank=result.blank,
            )
        return result
    finally:
        if own:
            store.close()


def _run_stream(
    norm: Normalizer, stream: BinaryIO, source: str, batch_size: int, bar: object
) -> None:
    for batch, nbytes in _batches(stream, source, batch_size):
        norm.process_batch(batch)
        if bar is not None:
            bar.update(nbytes)  # type: ignore[attr-defined]
