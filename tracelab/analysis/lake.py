"""A Parquet lake that Spark, Trino or DuckDB read as it is: events, spans and traces, with hive
partitioning by date and system, written incrementally from a database file or a shard folder.

Layout (``date`` = UTC day of the event, or of the span's / trace's start; a trace's ``system``
is the first system of its path)::

    LAKE/events/date=2025-05-04/system=inventory/<db>-e<export>-<uuid>.parquet
    LAKE/spans/date=.../system=.../...
    LAKE/traces/date=.../system=.../...

The unit of export is the trace: an export writes every trace not yet in the lake whose last event
is at least ``settle`` seconds (event time) older than the newest event of its database, with all
its events and spans. The traces written are recorded in that database (tables ``lake_exports``,
``lake_traces``), so the next export writes only new traces; each shard of a folder records its
own. Files of an export whose record was never committed (a crash in between) are removed by the
next export, so a trace is in the lake exactly once. A trace that receives events after it was
exported keeps its exported form: choose ``settle`` longer than a trace lasts.

Example: ``export_lake("data/processed/shards", "data/lake", settle=0)``
"""

from __future__ import annotations

import contextlib
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from tracelab.analysis.duck import connect, database_files
from tracelab.errors import AnalysisError

__all__ = ["LAKE_TABLES", "LakeExport", "export_lake", "read_lake"]

#: What each lake table holds: a query over the views of ``tracelab.analysis.duck`` restricted to
#: the export's new traces (``new_traces``), with the ``date`` and ``system`` partition columns.
_QUERIES: dict[str, str] = {
    "events": """SELECT e.system_id, e.checkpoint_id, e.ts, e.ts_us, e.status, e.correlation_id,
                        e.failure_reason, e.join_state, e.attributes, e.source, e."partition",
                        e."offset", CAST(e.ts AS DATE) AS date, e.system_id AS system
                 FROM events e SEMI JOIN new_traces n USING (correlation_id)""",
    "spans": """SELECT s.* EXCLUDE (system_rank), CAST(s.start_ts AS DATE) AS date,
                       s.system_id AS system
                FROM spans s SEMI JOIN new_traces n USING (correlation_id)""",
    "traces": """SELECT t.*, CAST(t.start_ts AS DATE) AS date,
                        split_part(t.path, '>', 1) AS system
                 FROM traces t SEMI JOIN new_traces n USING (correlation_id)""",
}
#: The tables of a lake.
LAKE_TABLES: tuple[str, ...] = tuple(_QUERIES)


@dataclass(frozen=True, slots=True)
class LakeExport:
    """What one :func:`export_lake` call wrote: rows per table, and how many databases.

    Example: ``export_lake("x.db", "lake").rows["events"]``
    """

    databases: int
    traces: int
    rows: dict[str, int]


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _remove_uncommitted(lake: Path, stem: str, committed: int) -> None:
    """Delete files of exports of ``stem`` numbered above ``committed`` (a crashed export's)."""
    prefix = f"{stem}-e"
    for table in LAKE_TABLES:
        for path in (lake / table).glob(f"**/{prefix}*.parquet"):
            number = path.name[len(prefix) :].split("-", 1)[0]
            if number.isdigit() and int(number) > committed:
                path.unlink()


def _export_one(db: Path, lake: Path, settle: float, rows: dict[str, int]) -> int:
    key = str(lake)
    with contextlib.closing(sqlite3.connect(db, timeout=30, isolation_level=None)) as book:
        try:
            last = book.execute(
                "SELECT coalesce(max(export), 0) FROM lake_exports WHERE lake = ?", (key,)
            ).fetchone()[0]
        except sqlite3.OperationalError as exc:
            raise AnalysisError(
                f"{db} has no lake tables: open it with this tracelab first (schema 5): {exc}"
            ) from exc
        _remove_uncommitted(lake, db.stem, last)
        export = last + 1
        con = connect(db)
        try:
            con.execute(
                """CREATE TEMP TABLE new_traces AS
                   SELECT correlation_id FROM traces
                   WHERE end_ts <= (SELECT max(ts) FROM events) - to_microseconds(?::BIGINT)
                     AND correlation_id NOT IN
                         (SELECT correlation_id FROM src.lake_traces WHERE lake = ?)""",
                [int(settle * 1_000_000), key],
            )
            cids = [r[0] for r in con.execute("SELECT correlation_id FROM new_traces").fetchall()]
            if not cids:
                return 0
            pattern = f"{db.stem}-e{export}-{{uuid}}"
            for table, query in _QUERIES.items():
                count = con.execute(f"SELECT count(*) FROM ({query})").fetchone()[0]  # noqa: S608
                rows[table] = rows.get(table, 0) + int(count)
                target = str(lake / table).replace("'", "''")
                con.execute(
                    f"COPY ({query}) TO '{target}' (FORMAT parquet, PARTITION_BY (date, system),"
                    f" FILENAME_PATTERN '{pattern}', APPEND)"
                )
            events = con.execute(
                "SELECT count(*) FROM events SEMI JOIN new_traces USING (correlation_id)"
            ).fetchone()[0]
        except duckdb.Error as exc:
            raise AnalysisError(f"lake export of {db} failed: {exc}") from exc
        finally:
            con.close()
        book.execute("BEGIN IMMEDIATE")
        try:
            book.executemany(
                "INSERT INTO lake_traces (lake, correlation_id, export) VALUES (?, ?, ?)",
                [(key, cid, export) for cid in cids],
            )
            book.execute(
                "INSERT INTO lake_exports (lake, export, exported_at, traces, events)"
                " VALUES (?, ?, ?, ?, ?)",
                (key, export, _now(), len(cids), int(events)),
            )
            book.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                book.execute("ROLLBACK")
            raise
        return len(cids)


def export_lake(db: str | Path, lake: str | Path, *, settle: float = 60.0) -> LakeExport:
    """Write the traces of ``db`` (a file or a shard folder) not yet in ``lake`` as Parquet.

    ``settle``: only traces whose last event is at least this many seconds (event time) older
    than the newest event of their database are written (0: every trace stored so far).

    Example: ``export_lake("data/processed/event_history.db", "data/lake", settle=0).traces``
    """
    if settle < 0:
        raise AnalysisError(f"settle must be >= 0 seconds, got {settle}")
    files = database_files(db)
    if not files or not files[0].is_file():
        raise AnalysisError(f"no database at {db}")
    out = Path(lake).resolve()
    for table in LAKE_TABLES:
        (out / table).mkdir(parents=True, exist_ok=True)
    rows: dict[str, int] = dict.fromkeys(LAKE_TABLES, 0)
    traces = sum(_export_one(path, out, settle, rows) for path in files)
    return LakeExport(databases=len(files), traces=traces, rows=rows)


def read_lake(lake: str | Path, table: str) -> duckdb.DuckDBPyRelation:
    """One lake table read back with DuckDB (hive partitions as columns ``date``, ``system``).

    Example: ``read_lake("data/lake", "traces").count("*")``
    """
    if table not in LAKE_TABLES:
        raise AnalysisError(f"no lake table {table!r}: choose one of {', '.join(LAKE_TABLES)}")
    pattern = str(Path(lake) / table / "**" / "*.parquet")
    return duckdb.sql(
        "SELECT * FROM read_parquet(?, hive_partitioning = true, hive_types_autocast = false)",
        params=[pattern],
    )
