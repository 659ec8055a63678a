"""``tracelab broker install|start|stop|status``: the local Kafka broker from the command line."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tracelab import config
from tracelab.kafka.broker.local import LocalBroker, install_jars


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``broker`` and its actions on the top-level CLI.

    Example: ``tracelab broker start --port 9092``
    """
    parser = subparsers.add_parser(
        "broker",
        help="run a local single-node Apache Kafka broker (KRaft) on 127.0.0.1",
        description="Install, start, stop or inspect the local Apache Kafka 4.x broker.",
    )
    actions = parser.add_subparsers(dest="broker_action", required=True, metavar="ACTION")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--port",
        type=int,
        default=config.DEFAULT_BROKER_PORT,
        help="client port on 127.0.0.1 (default %(default)s; the controller uses port + 1)",
    )
    common.add_argument(
        "--controller-port", type=int, default=None, help="controller port (default: port + 1)"
    )
    common.add_argument(
        "--data-dir",
        type=Path,
        default=config.KAFKA_DIR,
        help="folder for config, data, logs and pid file (default %(default)s)",
    )
    common.add_argument(
        "--libs-dir", type=Path, default=config.KAFKA_LIBS_DIR, help="folder of the broker's jars"
    )

    p_install = actions.add_parser(
        "install", help="resolve the broker's jars with Maven (cached in ~/.m2)"
    )
    p_install.add_argument(
        "--libs-dir", type=Path, default=config.KAFKA_LIBS_DIR, help="where to put the jars"
    )
    p_install.add_argument("--force", action="store_true", help="resolve again even if present")
    p_install.set_defaults(func=_install)

    p_start = actions.add_parser("start", parents=[common], help="start (idempotent) and wait")
    p_start.add_argument("--heap", default="1g", help="JVM max heap (default %(default)s)")
    p_start.add_argument(
        "--partitions",
        type=int,
        default=config.DEFAULT_PARTITIONS,
        help="partitions of auto-created topics (default %(default)s)",
    )
    p_start.add_argument(
        "--timeout", type=float, default=120.0, help="seconds to wait for it to answer"
    )
    p_start.set_defaults(func=_start)

    p_stop = actions.add_parser("stop", parents=[common], help="stop cleanly (SIGTERM, wait)")
    p_stop.add_argument("--timeout", type=float, default=60.0, help="seconds before SIGKILL")
    p_stop.set_defaults(func=_stop)

    p_status = actions.add_parser("status", parents=[common], help="tell whether it runs")
    p_status.set_defaults(func=_status)


def _broker(args: argparse.Namespace) -> LocalBroker:
    return LocalBroker(
        args.data_dir,
        port=args.port,
        controller_port=args.controller_port,
        libs_dir=args.libs_dir,
        partitions=getattr(args, "partitions", config.DEFAULT_PARTITIONS),
        heap=getattr(args, "heap", "1g"),
    )


def _install(args: argparse.Namespace) -> int:
    libs = install_jars(args.libs_dir, force=args.force)
    print(f"Kafka jars in {libs}")
    return 0


def _start(args: argparse.Namespace) -> int:
    broker = _broker(args)
    already = broker.pid() is not None
    if not already:
        print(f"starting Kafka in {broker.data_dir} ...", file=sys.stderr)
    bootstrap = broker.start(timeout=args.timeout)
    if already:
        print(f"already running (pid {broker.pid()})", file=sys.stderr)
    print(bootstrap)
    return 0


def _stop(args: argparse.Namespace) -> int:
    broker = _broker(args)
    if broker.stop(timeout=args.timeout):
        print(f"stopped the Kafka broker in {broker.data_dir}")
    else:
        print(f"no Kafka broker was running in {broker.data_dir}")
    return 0


def _status(args: argparse.Namespace) -> int:
    status = _broker(args).status()
    print(status.describe())
    return 0 if status.answering else 3
