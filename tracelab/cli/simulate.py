"""``tracelab simulate``: run a declared flow and write its raw messages to a file or to Kafka.

File mode: ``--out FILE`` (``-`` = stdout), one message per line in emission order. Kafka mode:
``--bootstrap HOST:PORT`` (or neither option with ``TRACELAB_BOOTSTRAP`` set) ``[--topic raw-logs]
[--partitions 6] [--kafka-config FILE]`` sends each message through
:class:`tracelab.kafka.KafkaSink` (imported only then). Other sinks plug in through
:data:`SINK_FACTORIES` (scheme -> factory of a :class:`~tracelab.simulate.sinks.Sink` from
the parsed arguments).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any

from tracelab import config
from tracelab.cli.argcheck import check_text
from tracelab.cli.options import add_kafka_config_option, add_output_options, wants_progress
from tracelab.cli.styles import add_styles_option
from tracelab.errors import ConfigError
from tracelab.simulate import FAULT_NAMES, Faults, SimulationResult, simulate
from tracelab.simulate.flows import load_flow
from tracelab.simulate.sinks import FileSink, Sink

__all__ = ["SINK_FACTORIES", "add_parser", "run"]


def _file_sink(args: argparse.Namespace) -> Sink:
    return FileSink(args.out)


def _kafka_sink(args: argparse.Namespace) -> Sink:
    from tracelab.kafka import KafkaSink, kafka_config
    from tracelab.kafka.trouble import quiet_kafka_log

    quiet_kafka_log()

    return KafkaSink(
        args.bootstrap,
        topic=args.topic,
        partitions=args.partitions,
        settings=kafka_config(args.kafka_config),
    )


#: How each destination becomes a sink: "file" for ``--out``, "kafka" for ``--bootstrap``.
SINK_FACTORIES: dict[str, Callable[[argparse.Namespace], Sink]] = {
    "file": _file_sink,
    "kafka": _kafka_sink,
}

_FAULT_HELP = {
    "duplicate": "share of messages delivered twice (default 0)",
    "detail_first": "share of separate failure details delivered before their failure",
    "missing_detail": "share of separate failure details that never come",
    "orphan_detail": "share of traces that also emit a detail nobody failed for",
    "malformed": "share of messages corrupted beyond parsing (quarantined)",
    "clock_skew": "max clock skew per system in ms (each system gets a fixed offset)",
}


def _rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"a rate between 0 and 1, got {text}")
    return value


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise argparse.ArgumentTypeError(f"a finite number, got {text}")
    return value


def _positive(text: str) -> float:
    value = _number(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def _seconds(text: str) -> float:
    value = _number(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"seconds >= 0, got {text}")
    return value


def add_parser(subparsers: Any) -> None:
    """Register the ``simulate`` subcommand.

    Example: ``add_parser(argparse.ArgumentParser().add_subparsers())``
    """
    p = subparsers.add_parser(
        "simulate",
        help="simulate a declared flow: raw log lines to a file or Kafka, plus ground truth",
        description=(
            "Simulate traces of a declared flow (data/flows/*.yaml) and write every system's "
            "native log lines in emission order, to a file (--out) or Kafka (--bootstrap, or "
            "$TRACELAB_BOOTSTRAP when neither is given). "
            "--truth PATH writes the events a perfect normalizer stores (JSON Lines) and "
            "PATH.summary.json with the expected counts. Same seed and options: same bytes."
        ),
    )
    p.add_argument(
        "--traces",
        type=_count,
        default=None,
        help="number of traces (default 1000; with --rate: stop after this many)",
    )
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument(
        "--flow",
        default=str(config.DEFAULT_FLOW),
        help="flow file (default: data/flows/default.yaml)",
    )
    dest = p.add_mutually_exclusive_group()
    dest.add_argument("--out", metavar="FILE", help="raw log file to write ('-' = stdout)")
    dest.add_argument(
        "--bootstrap",
        metavar="HOST:PORT",
        help="send to Kafka at this bootstrap address (default $TRACELAB_BOOTSTRAP)",
    )
    p.add_argument("--topic", default=config.DEFAULT_TOPIC, help="Kafka topic (default raw-logs)")
    p.add_argument(
        "--partitions",
        type=int,
        default=config.DEFAULT_PARTITIONS,
        help=f"partitions if the topic is created (default {config.DEFAULT_PARTITIONS})",
    )
    add_kafka_config_option(p)
    add_styles_option(p)
    p.add_argument("--truth", metavar="PATH", help="write the ground truth here (JSON Lines)")
    live = p.add_argument_group(
        "live (real time)",
        "--rate R starts R traces per second on the wall clock (UTC timestamps) until --duration, "
        "--traces or SIGINT/SIGTERM; traces in flight then finish for up to --drain seconds "
        "(a second signal cuts them at once), the truth file grows as traces complete",
    )
    live.add_argument("--rate", type=_positive, default=None, help="traces per second (live mode)")
    live.add_argument(
        "--duration", type=_seconds, default=None, help="live: stop after this many seconds"
    )
    live.add_argument(
        "--drain",
        type=_seconds,
        default=10.0,
        help="live: seconds the traces in flight get to finish on stop (default 10)",
    )
    faults = p.add_argument_group("fault injection")
    for name in FAULT_NAMES:
        kind = _count if name == "clock_skew" else _rate
        faults.add_argument(
            "--" + name.replace("_", "-"), type=kind, default=0, help=_FAULT_HELP[name]
        )
    add_output_options(p)
    p.set_defaults(func=run)


def _run_live(
    args: argparse.Namespace, flow: Any, faults: Faults, sink: Sink, progress: bool
) -> SimulationResult:
    """Live mode: the first SIGINT/SIGTERM stops starting traces, a second one cuts them."""
    from tracelab.simulate.live import simulate_live

    stop, cut = threading.Event(), threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        (cut if stop.is_set() else stop).set()

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        return simulate_live(
            flow,
            rate=args.rate,
            seed=args.seed,
            faults=faults,
            sink=sink,
            truth_path=args.truth,
            duration=args.duration,
            max_traces=args.traces,
            drain_s=args.drain,
            stop=stop,
            cut=cut,
            progress=progress,
        )
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)


def run(args: argparse.Namespace) -> int:
    """Run ``simulate`` for parsed arguments; returns the exit code.

    Example: ``tracelab simulate --traces 100 --seed 1 --out run.log --truth run.truth.jsonl``
    """
    flow = load_flow(args.flow, args.styles)
    faults = Faults(**{name: getattr(args, name) for name in FAULT_NAMES})
    check_text("--bootstrap", args.bootstrap)
    check_text("--topic", args.topic)
    check_text("--out", args.out)
    if not args.out and not args.bootstrap:
        args.bootstrap = config.bootstrap_from_env()
    kind = "kafka" if args.bootstrap else "file"
    if kind == "file" and not args.out:
        raise ConfigError("give --out FILE or --bootstrap HOST:PORT (or set TRACELAB_BOOTSTRAP)")
    progress = wants_progress(args)
    if args.rate is None and args.duration is not None:
        raise ConfigError("--duration needs --rate (live mode)")
    with SINK_FACTORIES[kind](args) as sink:
        if args.rate is not None:
            result = _run_live(args, flow, faults, sink, progress)
        else:
            result = simulate(
                flow,
                traces=1000 if args.traces is None else args.traces,
                seed=args.seed,
                faults=faults,
                sink=sink,
                truth_path=args.truth,
                progress=progress,
            )
    out = sys.stderr if kind == "file" and args.out == "-" else sys.stdout
    s = result.summary
    if args.json:
        print(json.dumps(s), file=out)
    else:
        exp = s["expected"]
        where = args.out if kind == "file" else f"{args.bootstrap} topic {args.topic}"
        paths = ", ".join(f"{k}={v}" for k, v in s["paths"].items()) or "-"
        injected = ", ".join(f"{k}={v}" for k, v in s["faults"].items() if v) or "none"
        print(f"traces {s['traces']}  messages {s['messages']} -> {where}", file=out)
        if s.get("mode") == "live":
            print(
                f"live: {s['rate']:g} traces/s from {s['started_at']} to {s['stopped_at']}, "
                f"stopped by {s['stopped_by']}, {s['cut']} trace(s) cut",
                file=out,
            )
        print(f"paths: {paths}", file=out)
        print(f"faults injected: {injected}", file=out)
        print(
            "expected: events {events}, joined {joined}, orphans {orphans}, duplicates "
            "{duplicates}, quarantined {quarantined}, awaiting detail {awaiting_detail}".format(
                **exp
            ),
            file=out,
        )
        if result.truth_path is not None:
            print(f"truth: {result.truth_path} (+ {result.summary_path})", file=out)
    out.flush()
    return 0
