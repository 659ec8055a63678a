"""The ``tracelab`` command line: a thin argparse shell over the library.

Owns: argument parsing, exit codes and what is printed. ``main`` builds the parser from one
module per subcommand (``normalize``, ``simulate``, ``broker``, ``consume``, ``demo``), each
exposing ``add_parser(subparsers)``; options several subcommands share live in ``options``,
checks of values argparse lets through (empty, NaN, negative: exit 2) in ``argcheck``.
The top of the package: it may import every stage, and nothing imports it.
"""

from tracelab.cli.main import SUBCOMMAND_MODULES, build_parser, main

__all__ = ["SUBCOMMAND_MODULES", "build_parser", "main"]
