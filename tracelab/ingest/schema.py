"""The SQLite schema of a tracelab database, versioned.

Every table the pipeline writes and the notebooks read is declared here, once. ``MIGRATIONS[n]``
takes a database from version ``n`` to ``n + 1``; ``SCHEMA_VERSION`` is the newest.

Timestamps are UTC ISO-8601 text of one fixed width, ``YYYY-MM-DDTHH:MM:SS.ffffffZ``, so that text
order is time order (``tracelab.timefmt``).
"""

from __future__ import annotations

SCHEMA_VERSION = 5

# The join states (events.join_state) are part of the normalized record: tracelab.record.

_V1 = """
CREATE TABLE IF NOT EXISTS schema_version (
    version     INTEGER NOT NULL,
    applied_at  TEXT    NOT NULL
);

-- One row per checkpoint log: the normalized schema plus join state and lineage.
CREATE TABLE IF NOT EXISTS events (
    id              INTEGER PRIMARY KEY,
    system_id       TEXT    NOT NULL,
    checkpoint_id   TEXT    NOT NULL,
    timestamp       TEXT    NOT NULL,
    status          TEXT    NOT NULL CHECK (status IN ('SUCCESS', 'FAILURE')),
    correlation_id  TEXT    NOT NULL,
    failure_reason  TEXT,
    join_state      TEXT,
    attributes      TEXT,              -- JSON object of extra fields, NULL when none
    source          TEXT    NOT NULL,  -- file path, '-' for stdin, or Kafka topic
    partition       INTEGER,           -- Kafka partition, NULL for files
    offset          INTEGER NOT NULL,  -- line number (1-based) or Kafka offset
    ingested_at     TEXT    NOT NULL,
    msg_hash        BLOB    NOT NULL   -- digest of the raw message, for duplicate detection
);
CREATE INDEX IF NOT EXISTS events_correlation ON events (correlation_id, timestamp);
CREATE INDEX IF NOT EXISTS events_time ON events (timestamp);
CREATE INDEX IF NOT EXISTS events_system ON events (system_id, checkpoint_id);

-- One row per separate failure-detail log (inventory JSON, payments PAYMENTS_ERROR).
-- event_id is the FAILURE event it explains; NULL while it is an orphan.
CREATE TABLE IF NOT EXISTS details (
    id              INTEGER PRIMARY KEY,
    system_id       TEXT    NOT NULL,
    correlation_id  TEXT    NOT NULL,
    failure_reason  TEXT    NOT NULL,
    timestamp       TEXT,              -- NULL where the style carries none (inventory)
    event_id        INTEGER UNIQUE REFERENCES events (id),
    raw             BLOB    NOT NULL,
    source          TEXT    NOT NULL,
    partition       INTEGER,
    offset          INTEGER NOT NULL,
    ingested_at     TEXT    NOT NULL,
    msg_hash        BLOB    NOT NULL
);
CREATE INDEX IF NOT EXISTS details_key ON details (system_id, correlation_id);

CREATE VIEW IF NOT EXISTS orphan_details AS
    SELECT id, system_id, correlation_id, failure_reason, timestamp, raw,
           source, partition, offset, ingested_at
    FROM details WHERE event_id IS NULL;

-- Messages that could not be normalized, kept byte for byte with a reason a person understands.
CREATE TABLE IF NOT EXISTS quarantine (
    id          INTEGER PRIMARY KEY,
    raw         BLOB    NOT NULL,
    reason      TEXT    NOT NULL,
    source      TEXT    NOT NULL,
    partition   INTEGER,
    offset      INTEGER NOT NULL,
    ingested_at TEXT    NOT NULL,
    msg_hash    BLOB    NOT NULL
);

-- Running counters of an ingestion (e.g. 'messages', 'duplicates').
CREATE TABLE IF NOT EXISTS counters (
    name    TEXT PRIMARY KEY,
    value   INTEGER NOT NULL
);

-- Kafka consumer positions, written in the same transaction as the batch they cover.
CREATE TABLE IF NOT EXISTS kafka_offsets (
    topic       TEXT    NOT NULL,
    partition   INTEGER NOT NULL,
    next_offset INTEGER NOT NULL,
    updated_at  TEXT    NOT NULL,
    PRIMARY KEY (topic, partition)
);
"""

# Version 2: duplicate detection. A message's digest (of its bytes after trimming the line ending)
# is unique within the table it landed in; identical bytes always land in the same table.
_V2 = """
CREATE UNIQUE INDEX IF NOT EXISTS events_msg_hash ON events (msg_hash);
CREATE UNIQUE INDEX IF NOT EXISTS details_msg_hash ON details (msg_hash);
CREATE UNIQUE INDEX IF NOT EXISTS quarantine_msg_hash ON quarantine (msg_hash);
"""

# Version 3: the orphan_details view quotes "offset", a keyword for DuckDB, so that a database
# attached from DuckDB can list and read the view.
_V3 = """
DROP VIEW IF EXISTS orphan_details;
CREATE VIEW orphan_details AS
    SELECT id, system_id, correlation_id, failure_reason, timestamp, raw,
           source, partition, "offset", ingested_at
    FROM details WHERE event_id IS NULL;
"""

# Version 4: events.ts_us, the timestamp as an integer (UTC microseconds since 1970: whole seconds
# from SQLite's date functions plus the six fraction digits; new rows get the same value from
# timefmt.stored_to_us), so that analysis aggregates integers instead of 27-character texts.
_V4 = """
ALTER TABLE events ADD COLUMN ts_us INTEGER;
UPDATE events SET ts_us = CAST(strftime('%s', substr(timestamp, 1, 19)) AS INTEGER) * 1000000
                          + CAST(substr(timestamp, 21, 6) AS INTEGER);
"""

# Version 5: only the indexes tracelab's own SQLite queries search (each checked with EXPLAIN
# QUERY PLAN in tests/test_store.py; DuckDB's scans of the attached file use none).
# events_correlation, now on the correlation id alone (a trace's few rows are sorted by time
# after the search; the timestamp in the key cost ~15 % of an insert), serves the join, the
# duplicate check and the one-trace waterfall; details_key the join and the duplicate check of
# details; quarantine_hash the duplicate check of quarantined messages. The time and system
# indexes served no query, and duplicates are no longer found through unique indexes on the
# digest (tracelab.ingest.duplicates): a redelivered message has the same correlation id, so its
# trace's rows are searched instead. Also the bookkeeping of lake exports.
_V5 = """
DROP INDEX IF EXISTS events_time;
DROP INDEX IF EXISTS events_system;
DROP INDEX IF EXISTS events_msg_hash;
DROP INDEX IF EXISTS details_msg_hash;
DROP INDEX IF EXISTS quarantine_msg_hash;
DROP INDEX IF EXISTS events_correlation;
CREATE INDEX events_correlation ON events (correlation_id);
CREATE INDEX IF NOT EXISTS quarantine_hash ON quarantine (msg_hash);

-- Parquet lake exports (tracelab.analysis.lake): each export of this database to a lake
-- folder, and the traces already written there, so that the next export writes only what is new.
CREATE TABLE IF NOT EXISTS lake_exports (
    lake        TEXT    NOT NULL,  -- the lake folder, absolute path
    export      INTEGER NOT NULL,  -- 1, 2, ... per lake; part of the Parquet file names
    exported_at TEXT    NOT NULL,
    traces      INTEGER NOT NULL,
    events      INTEGER NOT NULL,
    PRIMARY KEY (lake, export)
);
CREATE TABLE IF NOT EXISTS lake_traces (
    lake            TEXT    NOT NULL,
    correlation_id  TEXT    NOT NULL,
    export          INTEGER NOT NULL,
    PRIMARY KEY (lake, correlation_id)
) WITHOUT ROWID;
"""

#: MIGRATIONS[n] is the SQL script that takes version n to n + 1 (0 is an empty database).
MIGRATIONS: dict[int, str] = {0: _V1, 1: _V2, 2: _V3, 3: _V4, 4: _V5}


def _current() -> str:
    """The whole schema of version ``SCHEMA_VERSION`` as one script, for a new file.

    Built from the migrations' own text (so the two cannot drift; a test compares the result with
    a file taken through every migration): the tables of version 1 with ``ts_us`` declared in
    place, the view of version 3, and the indexes of version 5.
    """
    last_column = (
        "msg_hash        BLOB    NOT NULL   -- digest of the raw message, for duplicate "
        "detection\n);"
    )
    assert last_column in _V1
    tables = _V1.replace(
        last_column,
        "msg_hash        BLOB    NOT NULL,\n"
        "    ts_us           INTEGER            -- digest of the raw message; time as UTC µs\n);",
        1,
    )
    kept = [
        line
        for line in tables.splitlines()
        if not line.startswith("CREATE INDEX IF NOT EXISTS events_")
    ]  # fmt: skip
    view_start = kept.index("CREATE VIEW IF NOT EXISTS orphan_details AS")
    del kept[view_start : view_start + 4]
    create_only = [ln for ln in _V5.splitlines() if not ln.startswith("DROP")]
    return "\n".join([*kept, _V3.split(";", 1)[1].strip(), *create_only]) + "\n"


#: The current schema in one script: a new database is created with it in one step.
CURRENT_SCHEMA: str = _current()

#: Counter names kept in table ``counters`` (updated in the batch's transaction).
COUNTERS: tuple[str, ...] = ("messages", "duplicates", "events", "details", "quarantined", "blank")
