"""The ``tracelab`` command line: a thin argparse shell over the library.

Each subcommand lives in its own module exposing ``add_parser(subparsers) -> None``, which
registers its parser with ``set_defaults(func=...)``; ``func(args) -> int`` returns the exit code.
Modules are listed in :data:`SUBCOMMAND_MODULES`. A module that fails to import does not break
the other subcommands: its subcommand reports the import error when used.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from tracelab import __version__
from tracelab.errors import TracelabError

__all__ = [
    "SUBCOMMAND_MODULES",
    "add_kafka_config_option",
    "add_output_options",
    "build_parser",
    "main",
    "wants_progress",
]

#: Modules that add a subcommand (each defines ``add_parser(subparsers)``).
SUBCOMMAND_MODULES: list[str] = [
    "tracelab.normalize_cmd",
    "tracelab.simulate_cmd",
    "tracelab.broker.broker_cmd",
    "tracelab.consume_cmd",
    "tracelab.demo_cmd",
    "tracelab.export_cmd",
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
    SASL, TLS files, client id) for :func:`tracelab.kafka_io.kafka_config`.

    Example: ``add_kafka_config_option(subparsers.add_parser("consume"))``
    """
    parser.add_argument(
        "--kafka-config",
        default=None,
        metavar="FILE",
        help="connection settings file (YAML/JSON/.properties; default $TRACELAB_KAFKA_CONFIG)",
    )


def wants_progress(args: argparse.Namespace) -> bool:
    """Whether to show a progress bar: the flag if given, else whether stderr is a terminal.

    Example: ``wants_progress(argparse.Namespace(progress=None))``
    """
    return sys.stderr.isatty() if args.progress is None else bool(args.progress)


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser with every registered subcommand.

    Example: ``build_parser().parse_args(["normalize", "a.log", "--db", "x.db"])``
    """
    parser = argparse.ArgumentParser(
        prog="tracelab",
        description="Make heterogeneous logs from distributed systems traceable.",
    )
    parser.add_argument("--version", action="version", version=f"tracelab {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMAND_MODULES:
        try:
            module = importlib.import_module(name)
            module.add_parser(subparsers)
        except Exception as exc:  # noqa: BLE001 - one broken plug-in must not hide the others
            command = name.rsplit(".", 1)[-1].removesuffix("_cmd")
            if command in subparsers.choices:
                continue
            stub = subparsers.add_parser(
                command, help=f"(unavailable: {type(exc).__name__})", add_help=False
            )
            stub.add_argument("rest", nargs=argparse.REMAINDER)
            stub.set_defaults(func=_unavailable(name, exc))
    return parser


def _unavailable(name: str, exc: BaseException):  # type: ignore[no-untyped-def]
    def run(args: argparse.Namespace) -> int:
        print(f"tracelab: error: subcommand module {name} failed to load: {exc}", file=sys.stderr)
        return 1

    return run


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit code.

    Example: ``main(["normalize", "data/samples/orders.log", "--db", "x.db"])`` -> ``0``
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(func(args) or 0)
    except TracelabError as exc:
        print(f"tracelab: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("tracelab: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 141


if __name__ == "__main__":
    sys.exit(main())
