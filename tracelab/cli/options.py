"""Options several subcommands share, defined once.

Example: ``add_output_options(subparsers.add_parser("normalize"))``
"""

from __future__ import annotations

import argparse
import sys

from tracelab.ingest.boundary import DEFAULT_MAX_MESSAGE_BYTES

__all__ = [
    "add_kafka_config_option",
    "add_max_message_bytes_option",
    "add_output_options",
    "wants_progress",
]


def add_output_options(parser: argparse.ArgumentParser) -> None:
    """Add the output flags every long-running subcommand shares: ``--json`` and
    ``--progress/--no-progress`` (default None: a tqdm bar when stderr is a terminal).

    Example: ``add_output_options(subparsers.add_parser("normalize"))``
    """
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    bar = parser.add_mutually_exclusive_group()
    bar.add_argument(
        "--progress",
        dest="progress",
        action="store_true",
        default=None,
        help="tqdm progress bar on stderr (default: when stderr is a terminal)",
    )
    bar.add_argument("--no-progress", dest="progress", action="store_false", help="no bar")


def add_kafka_config_option(parser: argparse.ArgumentParser) -> None:
    """Add ``--kafka-config FILE``, the connection settings of a real cluster (security protocol,
    SASL, TLS files, client id) for :func:`tracelab.kafka.kafka_config`.

    Example: ``add_kafka_config_option(subparsers.add_parser("consume"))``
    """
    parser.add_argument(
        "--kafka-config",
        default=None,
        metavar="FILE",
        help="connection settings file (YAML/JSON/.properties; default $TRACELAB_KAFKA_CONFIG)",
    )


def add_max_message_bytes_option(parser: argparse.ArgumentParser) -> None:
    """Add ``--max-message-bytes N``: larger messages are quarantined as ``too large``, unparsed.

    Example: ``add_max_message_bytes_option(subparsers.add_parser("consume"))``
    """
    parser.add_argument(
        "--max-message-bytes",
        type=int,
        default=DEFAULT_MAX_MESSAGE_BYTES,
        metavar="N",
        help="quarantine messages longer than N bytes unparsed, as 'too large' "
        "(default %(default)s = 1 MiB)",
    )


def wants_progress(args: argparse.Namespace) -> bool:
    """Whether to show a progress bar: the flag if given, else whether stderr is a terminal.

    Example: ``wants_progress(argparse.Namespace(progress=None))``
    """
    return sys.stderr.isatty() if args.progress is None else bool(args.progress)
