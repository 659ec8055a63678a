"""``tracelab normalize FILE... --db PATH``: raw log files (``-`` = stdin) into a database."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from tracelab.cli.argcheck import check_count
from tracelab.cli.options import add_max_message_bytes_option, add_output_options
from tracelab.cli.styles import add_styles_option, registry_from_args
from tracelab.config import DEFAULT_DB, DEFAULT_PARTITIONS
from tracelab.ingest.pipeline import DEFAULT_BATCH_SIZE, DEFAULT_MAX_MESSAGE_BYTES, normalize_files

__all__ = ["add_parser", "run"]


def add_parser(subparsers: Any) -> None:
    """Register the ``normalize`` subcommand.

    Example: ``add_parser(argparse.ArgumentParser().add_subparsers())``
    """
    p = subparsers.add_parser(
        "normalize",
        help="parse, join and store raw log files (one message per line) in SQLite",
        description=(
            "Read raw log messages, one per line, in order, and write the normalized events, "
            "joined/orphan failure details and quarantined lines to a SQLite database. "
            "Prints a summary: read = events + joined + orphans + duplicates + quarantined."
        ),
    )
    p.add_argument("files", nargs="+", metavar="FILE", help="raw log file; '-' reads stdin")
    p.add_argument("--db", default=str(DEFAULT_DB), help=f"SQLite database (default {DEFAULT_DB})")
    p.add_argument(
        "--shards",
        default=None,
        metavar="DIR",
        help="write a shard folder instead of one --db file: DIR/shard-p<i>.db, by correlation id",
    )
    p.add_argument(
        "--shard-count",
        type=int,
        default=DEFAULT_PARTITIONS,
        metavar="N",
        help=f"number of shards with --shards (default {DEFAULT_PARTITIONS})",
    )
    p.add_argument(
        "--batch-size",
        type=int,
        default=DEFAULT_BATCH_SIZE,
        help=f"messages per transaction (default {DEFAULT_BATCH_SIZE})",
    )
    add_styles_option(p)
    add_max_message_bytes_option(p)
    add_output_options(p)
    par = p.add_mutually_exclusive_group()
    par.add_argument(
        "--parallel",
        dest="parallel",
        action="store_true",
        default=None,
        help="parse in a second process while writing (default: large files, an idle CPU)",
    )
    par.add_argument("--serial", dest="parallel", action="store_false", help="one process")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run ``normalize`` for parsed arguments; returns the exit code (0 also with quarantine).

    Example: ``run(argparse.Namespace(files=["a.log"], db="x.db", batch_size=10000,
    json=False, progress=False, parallel=None))``
    """
    check_count("--batch-size", args.batch_size)
    max_bytes = getattr(args, "max_message_bytes", DEFAULT_MAX_MESSAGE_BYTES)
    check_count("--max-message-bytes", max_bytes)
    styles = registry_from_args(args)  # a bad style file stops here: nothing written
    db = args.db
    target: Any = db
    if getattr(args, "shards", None):
        from tracelab.ingest.shards import ShardedStore

        db = args.shards
        target = ShardedStore(db, shards=args.shard_count)
    try:
        summary = normalize_files(
            args.files,
            target,
            batch_size=args.batch_size,
            progress=args.progress,
            parallel=getattr(args, "parallel", None),
            styles=styles,
            max_bytes=max_bytes,
        )
    finally:
        if target is not db:
            target.close()
    if args.json:
        print(json.dumps({**summary.as_dict(), "adds_up": summary.adds_up, "db": str(db)}))
    else:
        print(summary.format())
        print(f"database: {db}")
    sys.stdout.flush()
    return 0 if summary.adds_up else 3
