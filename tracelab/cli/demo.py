"""``tracelab demo``: run the four notebooks in order with papermill and export HTML reports.

Example: ``tracelab demo -p traces 100000 -p seed 3`` or ``tracelab demo -f params.yaml``
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from tracelab.cli.argcheck import check_text
from tracelab.config import bootstrap_from_env
from tracelab.errors import ConfigError

__all__ = ["LIVE_NOTEBOOK", "add_parser", "demo_parameters", "run"]

#: The live dashboard's notebook, which reads one database file (not a shard folder).
LIVE_NOTEBOOK = "05_live.ipynb"


def add_parser(subparsers: Any) -> None:
    """Register the ``demo`` subcommand.

    Example: ``add_parser(argparse.ArgumentParser().add_subparsers())``
    """
    p = subparsers.add_parser(
        "demo",
        help="simulate -> Kafka -> SQLite -> analysis: run the four notebooks, write HTML reports",
        description=(
            "Run notebooks/01_simulate .. 04_failures with papermill, in order, into "
            "reports/<run>/ (executed notebooks and HTML reports) and print where they are. "
            "Without --bootstrap (or TRACELAB_BOOTSTRAP) the local Kafka broker is started if "
            "needed. Each run gets its own topic, consumer group, database and truth file in "
            "reports/<run>/ unless overridden with -p."
        ),
    )
    p.add_argument(
        "-p",
        "--parameter",
        nargs=2,
        action="append",
        default=[],
        metavar=("NAME", "VALUE"),
        help="notebook parameter (value parsed as YAML: 100, 0.5, true, text); repeatable",
    )
    p.add_argument(
        "-f",
        "--parameters-file",
        action="append",
        default=[],
        metavar="YAML",
        help="papermill parameters file (YAML mapping); -p wins over it",
    )
    p.add_argument("--run", help="run name (default: UTC time, e.g. 20250504-103000)")
    p.add_argument("--out", help="output folder (default: reports/<run>)")
    p.add_argument("--bootstrap", help="Kafka bootstrap HOST:PORT (default: local broker)")
    p.add_argument(
        "--only",
        nargs="+",
        metavar="NOTEBOOK",
        help="run only these notebooks (e.g. 03_traces.ipynb 04_failures.ipynb)",
    )
    p.add_argument("--no-html", action="store_true", help="skip the HTML export")
    p.set_defaults(func=run)


def _parse_value(text: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def demo_parameters(
    run: str,
    out: Path,
    pairs: list[list[str]] | None = None,
    files: list[str] | None = None,
) -> dict[str, Any]:
    """The parameters of a demo run: per-run defaults, then YAML files, then ``-p`` pairs.

    ``-p shards true`` makes the run's database a shard folder (``<out>/shards``) unless ``db``
    is given.

    Example: ``demo_parameters("r1", Path("reports/r1"), [["traces", "500"]])["traces"]`` -> 500
    """
    params: dict[str, Any] = {
        "topic": f"raw-logs-{run}",
        "group": f"tracelab-{run}",
        "db": str(out / "tracelab.db"),
        "truth": str(out / "truth.jsonl"),
        "plotly_offline": True,
    }
    for name in files or []:
        path = Path(name)
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"cannot read parameters file {path}: {exc}") from None
        if loaded is None:
            continue
        if not isinstance(loaded, dict):
            raise ConfigError(f"parameters file {path} must hold a mapping of name: value")
        params.update({str(k): v for k, v in loaded.items()})
    for name, value in pairs or []:
        params[name] = _parse_value(value)
    if params.get("shards") is True and params["db"] == str(out / "tracelab.db"):
        params["db"] = str(out / "shards")  # a shard folder, one database per partition
    return params


def run(args: argparse.Namespace) -> int:
    """Run the demo for parsed arguments; returns the exit code.

    Example: ``run(parser.parse_args(["demo", "-p", "traces", "200"]))``
    """
    from tracelab import reports
    from tracelab.reports import manifest

    check_text("--bootstrap", args.bootstrap)
    check_text("--run", args.run)
    check_text("--out", args.out)
    name = args.run or reports.run_name()
    out = Path(args.out) if args.out else reports.default_reports_dir(name)
    out.mkdir(parents=True, exist_ok=True)
    params = demo_parameters(name, out, args.parameter, args.parameters_file)
    notebooks = tuple(args.only) if args.only else reports.NOTEBOOKS
    if params.get("shards") is True and not args.only and LIVE_NOTEBOOK in notebooks:
        # the live dashboard watches one database file as consume writes it
        notebooks = tuple(n for n in notebooks if n != LIVE_NOTEBOOK)
        print(f"tracelab demo: {LIVE_NOTEBOOK} watches one database file; not run on shards")
    needs_kafka = any(n.startswith(("01", "02")) for n in notebooks)
    given = args.bootstrap or params.get("bootstrap")
    local_broker = needs_kafka and not given and not bootstrap_from_env()
    bootstrap = given
    if needs_kafka:
        from tracelab.kafka.broker import resolve_bootstrap

        if local_broker:
            print("tracelab: starting the local Kafka broker ...", file=sys.stderr)
        bootstrap = resolve_bootstrap(given)
    if bootstrap:
        params["bootstrap"] = bootstrap
    print(f"tracelab demo {name}: {', '.join(f'{k}={v}' for k, v in sorted(params.items()))}")

    def done(nb: reports.NotebookRun) -> None:
        where = nb.html if nb.html is not None else nb.notebook
        print(f"  {nb.name:<20} {nb.seconds:7.1f} s  {where}")

    started = datetime.now(UTC)
    ran = reports.run_notebooks(out, params, notebooks=notebooks, html=not args.no_html,
                               on_done=done)  # fmt: skip
    index = manifest.record_run(out, name, params, started, {r.name: r.seconds for r in ran})
    print(f"reports in {out.resolve()} (index: {index})")
    if local_broker:
        print(
            f"the local Kafka broker keeps running at {bootstrap} for the next run "
            "(stop it: python -m tracelab broker stop)",
            file=sys.stderr,
        )
    return 0
