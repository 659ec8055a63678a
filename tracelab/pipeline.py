"""Parse -> join -> write, batch by batch: the path every raw message takes into the database.

Example::

    from tracelab.store import SQLiteStore
    from tracelab.pipeline import Normalizer

    with SQLiteStore("x.db") as store:
        summary = Normalizer(store).process_batch([(b'{"system": ...}', "raw-logs", 0, 41)])
"""

from __future__ import annotations

import multiprocessing
import os
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from hashlib import blake2b
from pathlib import Path
from queue import Empty
from typing import Any, BinaryIO

from tracelab.errors import ConfigError, InputError
from tracelab.parsers import parse
from tracelab.store import Item, Position, SQLiteStore, Store, Summary

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "Normalizer",
    "Record",
    "Summary",
    "PARALLEL_MIN_BYTES",
    "message_key",
    "normalize_files",
    "prepare",
    "prepared_batches",
    "trim_line_ending",
]

#: ``(value, source, partition, offset)``: one raw message and where it came from.
Record = tuple[bytes, str, int | None, int]

DEFAULT_BATCH_SIZE = 20_000
#: Inputs at least this large are parsed in a second process by default.
PARALLEL_MIN_BYTES = 4_000_000


def trim_line_ending(value: bytes) -> bytes:
    """The message without its trailing line ending (``\\n``, ``\\r\\n``).

    Example: ``trim_line_ending(b"abc\\r\\n")`` -> ``b'abc'``
    """
    return value.rstrip(b"\r\n")


_HOUR_MINUTES: dict[str, int] = {}
_EPOCH_1900 = datetime(1900, 1, 1)


def _minutes_since_1900(ts: str) -> int:
    """Minutes from 1900-01-01 to a stored-form timestamp (0 before 1900)."""
    hour = ts[:13]
    base = _HOUR_MINUTES.get(hour)
    if base is None:
        try:
            when = datetime(int(ts[0:4]), int(ts[5:7]), int(ts[8:10]), int(ts[11:13]))
            base = int((when - _EPOCH_1900).total_seconds()) // 60
        except ValueError:
            base = -1
        if len(_HOUR_MINUTES) > 100_000:
            _HOUR_MINUTES.clear()
        _HOUR_MINUTES[hour] = base
    return base + int(ts[14:16]) if base >= 0 else 0


_MINUTE_PREFIX: dict[str, bytes] = {}


def message_key(value: bytes, ts: str | None = None) -> bytes:
    """The 16-byte duplicate-detection key of a (line-ending-trimmed) raw message.

    4 bytes of the message's own timestamp in minutes (0 when it has none) and 12 bytes of its
    BLAKE2b digest. Identical bytes always give the same key (the timestamp comes from the bytes);
    the time prefix makes index inserts land near each other, as messages come roughly in time
    order, which keeps the unique index cheap to maintain.

    Example: ``len(message_key(b"abc", "2025-05-04T10:30:00.000000Z"))`` -> ``16``
    """
    if not ts:
        return b"\0\0\0\0" + blake2b(value, digest_size=12).digest()
    minute = ts[:16]
    prefix = _MINUTE_PREFIX.get(minute)
    if prefix is None:
        prefix = _minutes_since_1900(ts).to_bytes(4, "big")
        if len(_MINUTE_PREFIX) > 100_000:
            _MINUTE_PREFIX.clear()
        _MINUTE_PREFIX[minute] = prefix
    return prefix + blake2b(value, digest_size=12).digest()


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
        items, blanks = prepare(records)
        summary = self.store.write_batch(items, blank=blanks, offsets=offsets)
        self.totals = self.totals + summary
        return summary


def _key(value: bytes, parsed: tuple) -> bytes:
    kind = parsed[0]
    return message_key(value, parsed[3] if kind == 0 else parsed[4] if kind == 1 else None)


def prepare(records: Iterable[Record]) -> tuple[list[Item], list[Position]]:
    """Parse and digest raw records: ``(items for Store.write_batch, positions of blank lines)``.

    Pure and picklable, so it can run in another process than the store. The raw bytes are kept
    only where they are stored (details, quarantine). Blank lines are not messages; their
    ``(source, partition, offset)`` positions let the store count them once, even when a Kafka
    batch is delivered again.

    Example: ``prepare([(b"x", "f", None, 1), (b"  ", "f", None, 2)])[1]`` -> ``[("f", None, 2)]``
    """
    items: list[Item] = []
    append = items.append
    blanks: list[Position] = []
    for value, source, partition, offset in records:
        if value is None:
            value = b""
        elif value and value[-1] in (10, 13):
            value = value.rstrip(b"\r\n")
        parsed = parse(value)
        if parsed is None:
            blanks.append((source, partition, offset))
            continue
        append(
            (
                parsed,
                _key(value, parsed),
                value if parsed[0] else b"",  # events (kind 0) do not store raw bytes
                source,
                partition,
                offset,
            )
        )
    return items, blanks


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


def prepared_batches(
    names: Sequence[str], batch_size: int
) -> Iterator[tuple[list[Item], list[Position], int]]:
    """``(items, blank line positions, bytes read)`` per batch of every input (``-``: stdin).

    Example: ``items, blanks, nbytes = next(prepared_batches(["data/samples/orders.log"], 10))``
    """
    for name in names:
        if name == "-":
            for batch, nbytes in _batches(sys.stdin.buffer, "-", batch_size):
                yield (*prepare(batch), nbytes)
            continue
        try:
            stream = open(name, "rb")  # noqa: SIM115 - closed below, generator keeps it open
        except OSError as exc:
            raise InputError(f"cannot read input file {name}: {exc.strerror}") from exc
        with stream:
            try:
                for batch, nbytes in _batches(stream, name, batch_size):
                    yield (*prepare(batch), nbytes)
            except OSError as exc:
                raise InputError(f"cannot read input file {name}: {exc.strerror}") from exc


def _parse_process(names: Sequence[str], batch_size: int, queue: Any) -> None:
    """Child process body: parse the inputs and hand prepared batches to the writer."""
    try:
        for chunk in prepared_batches(names, batch_size):
            queue.put(chunk)
        queue.put(None)
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, which raises it
        queue.put(("error", str(exc) if isinstance(exc, InputError) else repr(exc)))


def _parallel_batches(
    names: Sequence[str], batch_size: int
) -> Iterator[tuple[list[Item], int, int]]:
    """Like :func:`prepared_batches`, but parsed in a child process while the caller writes.

    A bounded queue keeps at most a few batches in flight, so memory stays flat.
    """
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue(maxsize=3)
    proc = ctx.Process(target=_parse_process, args=(names, batch_size, queue), daemon=True)
    proc.start()
    try:
        while True:
            try:
                msg = queue.get(timeout=0.5)
            except Empty:
                if not proc.is_alive():
                    raise InputError(
                        f"the parsing process stopped unexpectedly (exit code {proc.exitcode})"
                    ) from None
                continue
            if msg is None:
                break
            if msg[0] == "error":
                raise InputError(msg[1])
            yield msg
    finally:
        if proc.is_alive():
            proc.terminate()
        proc.join()
        queue.close()


def _use_parallel(names: Sequence[str], total_bytes: int, parallel: bool | None) -> bool:
    if "-" in names or "fork" not in multiprocessing.get_all_start_methods():
        return False  # a child process cannot read our stdin
    if parallel is None:
        # a second process only pays off on a CPU that is otherwise idle
        cpus = os.cpu_count() or 1
        idle = cpus - os.getloadavg()[0] if hasattr(os, "getloadavg") else cpus - 1
        return cpus > 1 and idle >= 1.0 and total_bytes >= PARALLEL_MIN_BYTES
    return parallel


def normalize_files(
    paths: Sequence[str | Path] | str | Path,
    db: str | Path | Store,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: bool | None = None,
    parallel: bool | None = None,
) -> Summary:
    """Normalize raw log files (one message per line, ``-`` = stdin) into a database.

    Lineage: ``source`` is the path as given, ``offset`` the 1-based line number. The summary
    counts this run; ``joined``/``orphans`` split the run's details by their state at the end.
    ``progress`` None shows a tqdm bar on stderr only when it is a terminal. ``parallel`` parses
    in a second process while this one writes (None: when a CPU is idle by the load average and
    there are at least ``PARALLEL_MIN_BYTES`` of files; never for stdin). Batches are written in
    input order either way, so the result is the same.

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
        # a SQLiteStore or a ShardedStore: recount the run's details at the end
        first = store.max_detail_id() if hasattr(store, "details_since") else None
        total_bytes = sum(Path(n).stat().st_size for n in names if n != "-")
        if _use_parallel(names, total_bytes, parallel):
            batches = _parallel_batches(names, batch_size)
        else:
            batches = prepared_batches(names, batch_size)
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(
                total=total_bytes or None,
                unit="B",
                unit_scale=True,
                desc="normalize",
                file=sys.stderr,
            )
        result = Summary()
        try:
            for items, blank, nbytes in batches:
                result = result + store.write_batch(items, blank=blank)
                if bar is not None:
                    bar.update(nbytes)
        finally:
            close = getattr(batches, "close", None)
            if close is not None:
                close()
            if bar is not None:
                bar.close()
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
