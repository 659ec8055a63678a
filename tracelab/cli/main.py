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
from tracelab.errors import TracelabError, UsageError

__all__ = ["SUBCOMMAND_MODULES", "build_parser", "main"]

#: Modules that add a subcommand (each defines ``add_parser(subparsers)``).
SUBCOMMAND_MODULES: list[str] = [
    "tracelab.cli.normalize",
    "tracelab.cli.simulate",
    "tracelab.cli.broker",
    "tracelab.cli.consume",
    "tracelab.cli.demo",
    "tracelab.cli.compare",
    "tracelab.cli.styles",
    "tracelab.cli.export",
]


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
            command = name.rsplit(".", 1)[-1]
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
    except UsageError as exc:
        print(f"tracelab: error: {exc}", file=sys.stderr)
        return 2
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
