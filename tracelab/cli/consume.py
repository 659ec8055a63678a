"""``tracelab consume``: the normalizer service, reading Kafka into SQLite."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Any

from tracelab import config
from tracelab.cli.argcheck import check_count, check_seconds, check_text
from tracelab.cli.options import (
    add_kafka_config_option,
    add_max_message_bytes_option,
    add_output_options,
    wants_progress,
)
from tracelab.cli.styles import add_styles_option, registry_from_args
from tracelab.ingest.boundary import DEFAULT_MAX_MESSAGE_BYTES

__all__ = ["add_parser", "run"]


def add_parser(subparsers: Any) -> None:
    """Register the ``consume`` subcommand.

    Example: ``tracelab consume --bootstrap 127.0.0.1:9092 --group g --db x.db --until-idle 5``
    """
    p = subparsers.add_parser(
        "consume",
        help="consume raw logs from Kafka, normalize, join and store them in SQLite",
        description=(
            "Join a Kafka consumer group, poll the topic in batches and store each batch, with "
            "the offsets it covers, in one SQLite transaction (crash-safe: no loss, no "
            "duplicates). SIGINT/SIGTERM finish the current batch and exit."
        ),
    )
    p.add_argument(
        "--bootstrap",
        default=None,
        help="Kafka bootstrap HOST:PORT (default $TRACELAB_BOOTSTRAP, else "
        f"127.0.0.1:{config.DEFAULT_BROKER_PORT})",
    )
    p.add_argument("--topic", default=config.DEFAULT_TOPIC, help="topic (default %(default)s)")
    p.add_argument("--group", default="tracelab", help="consumer group (default %(default)s)")
    p.add_argument("--db", default=str(config.DEFAULT_DB), help="SQLite database")
    p.add_argument(
        "--shards",
        default=None,
        metavar="DIR",
        help="store partition p of the topic in DIR/<topic>-p<p>.db instead of one --db file",
    )
    p.add_argument(
        "--processes",
        type=int,
        default=1,
        metavar="N",
        help="start N members of the consumer group on this host (default 1; use with --shards)",
    )
    p.add_argument(
        "--instance-id",
        default=None,
        help="static group member id: a restart with the same id resumes at once",
    )
    p.add_argument(
        "--until-idle",
        type=float,
        default=None,
        metavar="SECONDS",
        help="stop after this many seconds without messages, once caught up (default: run on)",
    )
    p.add_argument("--max-messages", type=int, default=None, help="stop after this many messages")
    p.add_argument(
        "--batch-size", type=int, default=10_000, help="max messages per poll and transaction"
    )
    p.add_argument(
        "--unreachable-timeout",
        type=float,
        default=120.0,
        metavar="SECONDS",
        help="give up when the broker stays unreachable this long (default %(default)s)",
    )
    add_kafka_config_option(p)
    add_styles_option(p)
    add_max_message_bytes_option(p)
    p.add_argument(
        "--single-process",
        action="store_true",
        help="store batches in this process (default: a writer process stores each batch "
        "while the next is fetched)",
    )
    add_output_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run ``consume`` for parsed arguments; returns the exit code.

    Example: ``main(["consume", "--group", "g", "--db", "x.db", "--until-idle", "5"])``
    """
    from tracelab.kafka import ConsumeStats, consume, kafka_config
    from tracelab.kafka.broker import resolve_bootstrap
    from tracelab.kafka.trouble import quiet_kafka_log

    check_text("--bootstrap", args.bootstrap)
    check_text("--topic", args.topic)
    check_text("--group", args.group)
    check_text("--instance-id", args.instance_id)
    check_seconds("--until-idle", args.until_idle)
    check_seconds("--unreachable-timeout", args.unreachable_timeout)
    check_count("--max-messages", args.max_messages)
    check_count("--batch-size", args.batch_size)
    max_bytes = getattr(args, "max_message_bytes", DEFAULT_MAX_MESSAGE_BYTES)
    check_count("--max-message-bytes", max_bytes)
    styles = registry_from_args(args)  # a bad style file stops here, before any member starts
    if args.processes != 1:
        from tracelab.kafka.group import run_group

        return run_group(args, wants_progress(args))
    db = args.shards or args.db
    logging.basicConfig(level=logging.WARNING, format="tracelab: %(message)s")
    quiet_kafka_log()  # its reconnect noise; we report (TLS/SASL failures included)
    bootstrap = resolve_bootstrap(args.bootstrap, start=False)
    settings = kafka_config(args.kafka_config)
    progress = wants_progress(args)
    stats = ConsumeStats()
    summary = consume(
        bootstrap,
        args.topic,
        args.group,
        db,
        until_idle=args.until_idle,
        settings=settings,
        instance_id=args.instance_id,
        batch_size=args.batch_size,
        max_messages=args.max_messages,
        unreachable_timeout=args.unreachable_timeout,
        writer_process=not args.single_process,
        progress=progress,
        stats=stats,
        styles=styles,
        max_bytes=max_bytes,
        shards=bool(args.shards),
    )
    rate = stats.rate
    if args.json:
        print(
            json.dumps(
                {
                    **summary.as_dict(),
                    "adds_up": summary.adds_up,
                    "db": str(db),
                    "rate": round(rate, 1),
                    "skipped_already_stored": stats.skipped,
                }
            )
        )
    else:
        print(summary.format())
        print(f"database: {db}  ({rate:,.0f} messages/s)")
    sys.stdout.flush()
    return 0 if summary.adds_up else 3
