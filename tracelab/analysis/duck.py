"""A DuckDB connection over a tracelab SQLite database, attached read-only.

The analysis never writes: the SQLite file is attached with ``READ_ONLY`` under the alias ``src``
and the in-memory DuckDB catalog gets typed views over it (``events``, ``details``,
``orphan_details``, ``quarantine``, ``counters``, ``spans``, ``traces``) that every function in
``tracelab.analysis`` queries.

The ``sqlite`` extension is loaded from the ``duckdb-extension-sqlite-scanner`` wheel (no network);
only if that wheel is missing does it fall back to ``INSTALL sqlite; LOAD sqlite``.
"""

from __future__ import annotations

import importlib.util
import sqlite3
from collections import defaultdict
from pathlib import Path

import duckdb

from tracelab.errors import AnalysisError

__all__ = ["connect", "database_files", "extension_path", "load_sqlite_extension"]


def extension_path() -> Path | None:
    """The ``sqlite_scanner`` extension file shipped in the installed wheel, or None.

    Example: ``extension_path()`` -> ``.../duckdb_extension_sqlite_scanner/extensions/v1.5.5/...``
    """
    spec = importlib.util.find_spec("duckdb_extension_sqlite_scanner")
    if spec is None or not spec.submodule_search_locations:
        return None
    version = duckdb.__version__
    for location in spec.submodule_search_locations:
        base = Path(location) / "extensions"
        exact = base / f"v{version}" / "sqlite_scanner.duckdb_extension"
        if exact.is_file():
            return exact
        found = sorted(base.glob("*/sqlite_scanner.duckdb_extension"))
        if found:
            return found[-1]
    return None


def load_sqlite_extension(con: duckdb.DuckDBPyConnection) -> str:
    """Load DuckDB's ``sqlite`` extension into ``con``; return how it was loaded.

    Tries the wheel's extension file first, then ``INSTALL sqlite; LOAD sqlite`` (online).
    Raises ``AnalysisError`` when neither works.

    Example: ``load_sqlite_extension(duckdb.connect())`` -> ``"wheel:/.../sqlite_scanner..."``
    """
    errors: list[str] = []
    path = extension_path()
    if path is not None:
        try:
            # LOAD takes no bound parameters; the path comes from the installed package, and
            # single quotes are doubled so it stays one literal.
            literal = str(path).replace("'", "''")
            con.execute(f"LOAD '{literal}'")
            return f"wheel:{path}"
        except duckdb.Error as exc:
            errors.append(f"loading {path}: {exc}")
    else:
        errors.append("package duckdb-extension-sqlite-scanner is not installed")
    try:
        con.execute("INSTALL sqlite")
        con.execute("LOAD sqlite")
        return "installed:sqlite"
    except duckdb.Error as exc:
        errors.append(f"INSTALL sqlite: {exc}")
    raise AnalysisError("cannot load the DuckDB sqlite extension: " + "; ".join(errors))


#: The one-trace lookup, run inside SQLite (an index search on events_correlation).
TRACE_ROWS_SQL = (
    "SELECT id, system_id, checkpoint_id, timestamp, status, correlation_id, failure_reason,"
    " join_state FROM events WHERE correlation_id = ? ORDER BY timestamp, id"
)

#: Views and macros over the attached database. ``system_rank`` orders systems canonically
#: (:func:`system_order`, set per connection as the variable ``tracelab_systems``) so that paths
#: read the same whatever the clocks of the systems say. ``trace_rows(id)`` runs one indexed
#: lookup inside SQLite (``sqlite_query`` with the id bound), so one trace never costs a scan.
_VIEWS: tuple[str, ...] = (
    """CREATE OR REPLACE MACRO system_rank(s) AS
       coalesce(list_position(getvariable('tracelab_systems'), s) - 1,
                len(getvariable('tracelab_systems')))""",
    # A quarantine reason without its specifics ("not valid UTF-8: byte 0xff at position 84" ->
    # "not valid UTF-8"; quoted values and numbers masked), so the ledger groups by kind.
    """CREATE OR REPLACE MACRO reason_class(r) AS
       CASE WHEN contains(r, ':') THEN trim(split_part(r, ':', 1))
            ELSE regexp_replace(regexp_replace(r, chr(39) || '[^' || chr(39) || ']*' || chr(39),
                                               chr(39) || '...' || chr(39), 'g'),
                                '[0-9]+', 'N', 'g') END""",
    # $TS_US is the stored integer timestamp (schema 4), or for an older file opened read-only
    # the same value computed from the text (see _TS_US_FROM_TEXT).
    """CREATE OR REPLACE VIEW events AS
       SELECT id, system_id, checkpoint_id, make_timestamp($TS_US) AS ts, $TS_US AS ts_us,
              timestamp AS timestamp_text, status, correlation_id, failure_reason,
              join_state, attributes, source, "partition", "offset", ingested_at
       FROM src.events""",
    """CREATE OR REPLACE MACRO trace_rows(cid) AS TABLE
       SELECT CAST(id AS BIGINT) AS id, system_id, checkpoint_id,
              CAST(rtrim(timestamp, 'Z') AS TIMESTAMP) AS ts, status, correlation_id,
              failure_reason, join_state, system_rank(system_id) AS system_rank
       FROM $TRACE_SOURCE""",
    """CREATE OR REPLACE VIEW details AS
       SELECT id, system_id, correlation_id, failure_reason, timestamp, event_id,
              source, "partition", "offset", ingested_at
       FROM src.details""",
    "CREATE OR REPLACE VIEW orphan_details AS SELECT * FROM details WHERE event_id IS NULL",
    """CREATE OR REPLACE VIEW quarantine AS
       SELECT id, raw, reason, source, "partition", "offset", ingested_at
       FROM src.quarantine""",
    "CREATE OR REPLACE VIEW counters AS SELECT name, value FROM src.counters",
    # Spans aggregate the integer timestamps and convert only the two ends. A span's last status
    # is SUCCESS when its latest success is later than its latest failure: twice the latest
    # timestamp plus 1 for a failure (so that a failure wins a tie) says it with one aggregate.
    # The last checkpoint is that latest event's, the later stored (higher id) on a full tie.
    """CREATE OR REPLACE VIEW spans AS
       SELECT correlation_id, system_id, system_rank(system_id) AS system_rank,
              make_timestamp(first_us) AS start_ts, make_timestamp(last_us) AS end_ts,
              (last_us - first_us) // 1000 AS duration_ms, events, failures,
              CASE WHEN latest & 1 = 0 THEN 'SUCCESS' ELSE 'FAILURE' END AS last_status,
              last_checkpoint
       FROM (SELECT *, (latest - (latest & 1)) // 2 AS last_us
             FROM (SELECT correlation_id, system_id, min(ts_us) AS first_us,
                          max(rank_us) AS latest, count(*) AS events,
                          count(*) FILTER (WHERE status = 'FAILURE') AS failures,
                          arg_max(checkpoint_id, (rank_us, id)) AS last_checkpoint
                   FROM (SELECT *, ts_us * 2 + CASE WHEN status = 'FAILURE' THEN 1 ELSE 0 END
                                   AS rank_us
                         FROM events)
                   GROUP BY correlation_id, system_id))""",
    # A path is the systems in canonical order (then by start); sorting a small list per trace
    # is several times faster than an ordered string_agg.
    """CREATE OR REPLACE VIEW traces AS
       SELECT correlation_id,
              array_to_string(list_transform(
                  list_sort(list((system_rank, start_ts, system_id))), x -> x[3]), '>') AS path,
              min(start_ts) AS start_ts, max(end_ts) AS end_ts,
              date_diff('millisecond', min(start_ts), max(end_ts)) AS duration_ms,
              count(*) AS spans, sum(events)::BIGINT AS events,
              sum(failures)::BIGINT AS failures,
              CASE WHEN bool_and(last_status = 'SUCCESS') THEN 'SUCCESS' ELSE 'FAILURE' END
                  AS outcome
       FROM spans GROUP BY correlation_id""",
)

#: The events copied once into memory; the views above read them from there afterwards.
_MATERIALIZE = """
CREATE OR REPLACE TEMP TABLE events_memory AS SELECT * FROM events;
CREATE OR REPLACE VIEW events AS SELECT * FROM events_memory;
"""

#: ``ts_us`` computed from the timestamp text, for a database older than schema 4 (which
#: ``connect`` opens read-only and so does not upgrade).
_TS_US_FROM_TEXT = "epoch_us(CAST(rtrim(timestamp, 'Z') AS TIMESTAMP))"

#: One probe per table the analysis needs (information_schema would also parse the SQLite
#: views, and DuckDB's parser rejects some SQLite view text).
_PROBES: dict[str, str] = {
    "events": "SELECT 1 FROM src.events LIMIT 0",
    "details": "SELECT 1 FROM src.details LIMIT 0",
    "quarantine": "SELECT 1 FROM src.quarantine LIMIT 0",
    "counters": "SELECT 1 FROM src.counters LIMIT 0",
}


#: The tables a tracelab database holds, which a shard folder's union views combine.
_TABLES = ("events", "details", "quarantine", "counters")


def database_files(db: str | Path) -> list[Path]:
    """The SQLite files behind ``db``: the file itself, or every ``*.db`` of a shard folder.

    Example: ``database_files("data/processed/shards")`` -> ``[.../raw-logs-p0.db, ...]``
    """
    path = Path(db)
    if path.is_dir():
        return sorted(p for p in path.glob("*.db") if p.is_file())
    return [path]


def _attach(con: duckdb.DuckDBPyConnection, path: Path, alias: str) -> None:
    # ATTACH takes no bound parameters; single quotes are doubled so the path stays one literal
    literal = str(path.resolve()).replace("'", "''")
    con.execute(f"ATTACH '{literal}' AS {alias} (TYPE sqlite, READ_ONLY)")


def _attach_shards(con: duckdb.DuckDBPyConnection, files: list[Path]) -> str:
    """Attach every shard read-only (``s0``, ``s1``, ...) and create the schema ``src`` with a
    view per table over their union, so the views below read a shard folder as one database.
    Returns the table expression of one trace's rows: an index search in every shard."""
    # Aliases and table names are generated here, never taken from input (paths are attached
    # as quoted literals above), so the SQL below is built from constants only.
    aliases = [f"s{i}" for i in range(len(files))]
    for path, alias in zip(files, aliases, strict=True):
        _attach(con, path, alias)
    con.execute("CREATE SCHEMA src")
    for table in _TABLES:
        union = " UNION ALL BY NAME ".join(f"SELECT * FROM {a}.{table}" for a in aliases)  # noqa: S608
        if table == "counters":
            union = f"SELECT name, sum(value)::BIGINT AS value FROM ({union}) GROUP BY name"  # noqa: S608
        con.execute(f"CREATE VIEW src.{table} AS {union}")
    per_shard = " UNION ALL ".join(
        f"SELECT * FROM sqlite_query('{a}', '$TRACE_ROWS', params = row(cid))"  # noqa: S608
        for a in aliases
    )
    return f"({per_shard})"


#: Events read to learn the system order (the first ones stored; a rowid range, so instant).
ORDER_SAMPLE = 50_000


def system_order(db: str | Path, sample: int = ORDER_SAMPLE) -> tuple[str, ...]:
    """The systems of a database in the order traces reach them: by the mean rank of each
    system's first event within its trace, over the first ``sample`` events (ties by name).

    Any number of systems with any names; a system first seen later sorts after these.

    ``db`` may be a shard folder: the first ``sample`` events of each shard are read (a trace
    lives in one shard).

    Example: ``system_order("x.db")`` -> ``('inventory', 'payments', 'reporting', 'orders')``
    """
    rows: list[tuple[str, str, str]] = []
    for path in database_files(db):
        uri = f"{path.resolve().as_uri()}?mode=ro"
        try:
            with sqlite3.connect(uri, uri=True) as conn:
                rows += conn.execute(
                    "SELECT correlation_id, system_id, min(timestamp) FROM events WHERE id <= ?"
                    " GROUP BY correlation_id, system_id",
                    (sample,),
                ).fetchall()
        except sqlite3.Error:
            continue
    traces: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for cid, system, first in rows:
        traces[cid].append((first, system))
    ranks: dict[str, list[int]] = defaultdict(list)
    for seen in traces.values():
        seen.sort()
        for rank, (_first, system) in enumerate(seen):
            ranks[system].append(rank)
    return tuple(sorted(ranks, key=lambda s: (sum(ranks[s]) / len(ranks[s]), s)))


def connect(
    db: str | Path,
    *,
    systems: tuple[str, ...] | None = None,
    threads: int | None = None,
    memory_limit: str | None = None,
    materialize: bool = False,
) -> duckdb.DuckDBPyConnection:
    """Open an in-memory DuckDB with the SQLite file ``db`` attached read-only and typed views.

    ``db`` may also be a shard folder (``tracelab consume --shards``, ``normalize --shards``):
    every ``*.db`` in it is attached read-only and the same views read the union of the shards,
    so every analysis works on it as on one file. Row ids are those of each shard (unique
    within a trace, whose rows all live in one shard).

    ``systems`` is the canonical system order used for paths (others sort after them; None:
    :func:`system_order` of the database). By
    default every query reads the SQLite file (always current, no memory); ``materialize=True``
    copies the events once into DuckDB's columnar memory, which makes a long series of queries
    (a notebook) much faster on a large database that is no longer being written.
    Raises ``AnalysisError`` if the file is missing or is not a tracelab database.

    Example: ``con = connect("data/processed/event_history.db"); con.sql("FROM traces LIMIT 5")``
    """
    path = Path(db)
    files = database_files(path)
    if not path.is_dir() and not path.is_file():
        raise AnalysisError(f"database {path} does not exist (run `tracelab normalize` first)")
    if not files:
        raise AnalysisError(f"shard folder {path} holds no databases (*.db)")
    con = duckdb.connect(":memory:")
    try:
        if threads is not None:
            con.execute(f"SET threads = {int(threads)}")
        if memory_limit is not None:
            con.execute("SET memory_limit = ?", [memory_limit])
        load_sqlite_extension(con)
        if path.is_dir():
            trace_source = _attach_shards(con, files)
        else:
            _attach(con, path, "src")
            trace_source = "sqlite_query('src', '$TRACE_ROWS', params = row(cid))"
        missing = []
        for table, probe in _PROBES.items():
            try:
                con.execute(probe)
            except duckdb.CatalogException:
                missing.append(table)
        if missing:
            raise AnalysisError(f"{path} is not a tracelab database: missing {', '.join(missing)}")
        if systems is None:
            systems = system_order(path)
        con.execute("SET VARIABLE tracelab_systems = ?", [list(systems)])
        try:
            con.execute("SELECT ts_us FROM src.events LIMIT 0")
            ts_us = "ts_us"
        except duckdb.BinderException:
            ts_us = _TS_US_FROM_TEXT
        for statement in _VIEWS:
            statement = statement.replace("$TS_US", ts_us).replace("$TRACE_SOURCE", trace_source)
            con.execute(statement.replace("$TRACE_ROWS", TRACE_ROWS_SQL))
        if materialize:
            con.execute(_MATERIALIZE)
    except duckdb.Error as exc:
        con.close()
        raise AnalysisError(f"cannot attach {path}: {exc}") from exc
    except AnalysisError:
        con.close()
        raise
    return con
