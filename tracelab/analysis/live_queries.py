"""The live dashboard's queries: small, indexed reads of a tracelab SQLite file being written.

A dashboard that refreshes every second must cost the writer (``tracelab consume``) next to
nothing, so nothing here scans a table: new rows are read by primary key range (``id > last``),
the window is found through the ``events_time`` index (or, for ingestion times, by a binary
search over ids, since ids grow with ingestion), and counts use indexes (orphans) or primary-key
lookups of a bounded set of ids (failures still awaiting their detail). The connection is
read-only (``mode=ro``); in WAL mode a reader never blocks the writer.

The declared flow says when a trace is finished: :func:`flow_ends` gives, per route, the last
checkpoint of every system of its final stage; :func:`retry_limits` the failures after which a
system gives up (a trace can also finish by failing).

Example::

    conn = open_readonly("data/processed/event_history.db")
    last = max_id(conn, "events")
    rows = events_between(conn, last - 1000, last)
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from tracelab.errors import AnalysisError

__all__ = [
    "EVENT_COLUMNS",
    "counters",
    "events_between",
    "events_since",
    "first_id_ingested_since",
    "flow_ends",
    "newest_event_us",
    "max_id",
    "open_readonly",
    "orphan_count",
    "reasons_of",
    "retry_limits",
    "still_awaiting",
    "stored_per_second",
]

#: Columns of the event rows the live queries return, in order.
EVENT_COLUMNS: tuple[str, ...] = (
    "id", "system_id", "checkpoint_id", "ts_us", "status", "correlation_id", "failure_reason",
    "join_state",
)  # fmt: skip
_SELECT_EVENTS = f"SELECT {', '.join(EVENT_COLUMNS)} FROM events"  # noqa: S608 - constant names
_TABLES = ("events", "details", "quarantine")
_CHUNK = 500  # ids per IN (...) lookup


def open_readonly(db: str | Path, timeout: float = 5.0) -> sqlite3.Connection:
    """A read-only connection to ``db`` (usable from another thread than the one opening it).

    Raises ``AnalysisError`` if the file is missing or holds no tracelab events table.

    Example: ``conn = open_readonly("data/processed/event_history.db")``
    """
    path = Path(db)
    if not path.is_file():
        raise AnalysisError(f"database {path} does not exist (start `tracelab consume` first)")
    uri = f"{path.resolve().as_uri()}?mode=ro"
    try:
        conn = sqlite3.connect(uri, uri=True, timeout=timeout, check_same_thread=False)
        conn.execute("SELECT ts_us FROM events LIMIT 0")
    except sqlite3.Error as exc:
        raise AnalysisError(
            f"cannot read {path} as a tracelab database (schema 4+): {exc}"
        ) from exc
    return conn


def _check_table(table: str) -> str:
    if table not in _TABLES:
        raise AnalysisError(f"unknown table {table!r}; one of {', '.join(_TABLES)}")
    return table


def max_id(conn: sqlite3.Connection, table: str = "events") -> int:
    """The largest id in ``table`` (events, details or quarantine); 0 when empty.

    Example: ``max_id(conn, "details")``
    """
    t = _check_table(table)
    return int(conn.execute(f"SELECT coalesce(max(id), 0) FROM {t}").fetchone()[0])  # noqa: S608


def events_between(conn: sqlite3.Connection, after_id: int, upto_id: int) -> list[tuple[Any, ...]]:
    """Event rows with ``after_id < id <= upto_id`` in id order (columns :data:`EVENT_COLUMNS`).

    Example: ``events_between(conn, 0, max_id(conn))``
    """
    return conn.execute(
        f"{_SELECT_EVENTS} WHERE id > ? AND id <= ? ORDER BY id", (after_id, upto_id)
    ).fetchall()


def events_since(conn: sqlite3.Connection, since: str, upto_id: int) -> list[tuple[Any, ...]]:
    """Event rows whose stored timestamp is ``>= since`` (stored form, e.g.
    ``2025-05-04T10:30:00.000000Z``) and ``id <= upto_id``, through the time index.

    Example: ``events_since(conn, "2025-05-04T10:29:00.000000Z", max_id(conn))``
    """
    return conn.execute(
        f"{_SELECT_EVENTS} WHERE timestamp >= ? AND id <= ? ORDER BY id", (since, upto_id)
    ).fetchall()


def newest_event_us(conn: sqlite3.Connection) -> int | None:
    """The latest event time (UTC microseconds), from the time index; None when empty.

    Example: ``newest_event_us(conn)``
    """
    row = conn.execute(
        "SELECT ts_us FROM events WHERE timestamp = (SELECT max(timestamp) FROM events) LIMIT 1"
    ).fetchone()
    return None if row is None or row[0] is None else int(row[0])


def first_id_ingested_since(conn: sqlite3.Connection, table: str, since: str) -> int:
    """The smallest id of ``table`` stored at or after ``since`` (ingested_at, stored form),
    by binary search over ids (ids grow with ingestion); ``max_id + 1`` if none.

    Example: ``first_id_ingested_since(conn, "events", "2025-05-04T10:29:00.000000Z")``
    """
    t = _check_table(table)
    lo, hi = 1, max_id(conn, t) + 1
    query = f"SELECT ingested_at FROM {t} WHERE id >= ? ORDER BY id LIMIT 1"  # noqa: S608
    while lo < hi:
        mid = (lo + hi) // 2
        row = conn.execute(query, (mid,)).fetchone()
        if row is None or row[0] >= since:
            hi = mid
        else:
            lo = mid + 1
    return lo


def stored_per_second(
    conn: sqlite3.Connection, table: str, after_id: int, upto_id: int
) -> list[tuple[str, int]]:
    """Rows of ``table`` stored per second (``YYYY-MM-DDTHH:MM:SS`` of ingested_at, count) for
    ``after_id < id <= upto_id``.

    Example: ``stored_per_second(conn, "events", 0, max_id(conn))``
    """
    t = _check_table(table)
    return conn.execute(
        f"SELECT substr(ingested_at, 1, 19) AS s, count(*) FROM {t} "  # noqa: S608
        "WHERE id > ? AND id <= ? GROUP BY s ORDER BY s",
        (after_id, upto_id),
    ).fetchall()


def counters(conn: sqlite3.Connection) -> dict[str, int]:
    """The ingestion counters (``messages``, ``duplicates``, ...).

    Example: ``counters(conn).get("messages", 0)``
    """
    return {str(k): int(v) for k, v in conn.execute("SELECT name, value FROM counters")}


def orphan_count(conn: sqlite3.Connection) -> int:
    """Details that explain no failure (yet), counted on the index of ``details.event_id``.

    Example: ``orphan_count(conn)``
    """
    return int(conn.execute("SELECT count(*) FROM details WHERE event_id IS NULL").fetchone()[0])


def _chunks(ids: Sequence[int]) -> Iterable[Sequence[int]]:
    for i in range(0, len(ids), _CHUNK):
        yield ids[i : i + _CHUNK]


def still_awaiting(conn: sqlite3.Connection, ids: Iterable[int]) -> set[int]:
    """Which of these failure event ids still await their detail (primary-key lookups).

    Example: ``still_awaiting(conn, [12, 40])`` -> ``{40}``
    """
    out: set[int] = set()
    for part in _chunks(sorted(ids)):
        marks = ",".join("?" * len(part))
        rows = conn.execute(
            f"SELECT id FROM events WHERE id IN ({marks}) AND join_state = 'awaiting_detail'",  # noqa: S608
            tuple(part),
        )
        out.update(int(r[0]) for r in rows)
    return out


def reasons_of(
    conn: sqlite3.Connection, ids: Iterable[int]
) -> dict[int, tuple[str | None, str | None]]:
    """``{id: (failure_reason, join_state)}`` of these events now (a detail may have come).

    Example: ``reasons_of(conn, [12])`` -> ``{12: ("Card issuer unavailable", "joined")}``
    """
    out: dict[int, tuple[str | None, str | None]] = {}
    for part in _chunks(sorted(ids)):
        marks = ",".join("?" * len(part))
        rows = conn.execute(
            f"SELECT id, failure_reason, join_state FROM events WHERE id IN ({marks})",  # noqa: S608
            tuple(part),
        )
        out.update({int(i): (r, j) for i, r, j in rows})
    return out


# ------------------------------------------------------------------------------- declared flow


def flow_ends(flow: Any) -> list[frozenset[tuple[str, str]]]:
    """Per route of the declared flow: the (system, last checkpoint) pairs of its final stage.
    A trace whose events include every pair of one route has finished.

    Example: ``flow_ends(load_flow("data/flows/default.yaml"))`` ->
    ``[frozenset({("reporting", "REPORTING_FINALIZED"), ("orders", "ORDER_FINALIZED")}), ...]``
    """
    systems = flow.systems

    def last_of(stage: Sequence[str]) -> frozenset[tuple[str, str]]:
        return frozenset(
            (name, systems[name].checkpoints[-1].name)
            for name in stage
            if systems[name].checkpoints
        )

    ends = [last_of(route.stages[-1]) for route in flow.paths if route.stages]
    if not flow.paths and flow.entry:
        ends.append(last_of(flow.entry[-1]))
    return [e for e in dict.fromkeys(ends) if e]


def retry_limits(flow: Any) -> dict[str, int]:
    """``{system: retries}``: a checkpoint failing ``retries + 1`` times stops its system.

    Example: ``retry_limits(flow)["payments"]`` -> ``3``
    """
    return {name: int(s.retry.limit) for name, s in flow.systems.items()}
