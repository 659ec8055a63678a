"""``tracelab export --lake DIR``: events, spans and traces as a Parquet lake, incrementally."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from tracelab.config import DEFAULT_DB, LAKE_DIR

__all__ = ["add_parser", "run"]


def add_parser(subparsers: Any) -> None:
    """Register the ``export`` subcommand.

    Example: ``tracelab export --db data/processed/shards --lake data/lake --settle 0``
    """
    p = subparsers.add_parser(
        "export",
        help="write events, spans and traces as Parquet (hive partitions date/system), "
        "only what is new since the last export",
        description=(
            "Write the traces of a database file or shard folder that are not yet in the lake, "
            "with their events and spans, as Parquet files partitioned by date and system. "
            "The database records what was written, so the next export adds only new traces."
        ),
    )
    p.add_argument(
        "--lake", default=str(LAKE_DIR), metavar="DIR", help="the lake folder (default %(default)s)"
    )
    p.add_argument(
        "--db", default=str(DEFAULT_DB), help="database file or shard folder (default %(default)s)"
    )
    p.add_argument(
        "--settle",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="export a trace once its last event is this much older than the newest event "
        "(event time; 0 = every trace; default %(default)s)",
    )
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run ``export`` for parsed arguments; returns the exit code.

    Example: ``main(["export", "--db", "x.db", "--lake", "lake", "--settle", "0"])``
    """
    from tracelab.analysis.duck import database_files
    from tracelab.analysis.lake import export_lake
    from tracelab.ingest.store import SQLiteStore

    for path in database_files(args.db):  # bring every file to the current schema first
        if path.is_file():
            SQLiteStore(path).close()
    result = export_lake(args.db, args.lake, settle=args.settle)
    if args.json:
        print(json.dumps({"databases": result.databases, "traces": result.traces, **result.rows}))
    else:
        rows = ", ".join(f"{n:,} {t}" for t, n in result.rows.items())
        print(f"{result.traces:,} new traces from {result.databases} database(s): {rows}")
        print(f"lake: {args.lake}")
    sys.stdout.flush()
    return 0
