"""``tracelab consume --processes N``: N members of one consumer group on this host, one command.

Each member is a ``tracelab consume`` child process of its own (its own Kafka client, its own
writer process), so N members use up to 2N cores. Kafka's group protocol shares the partitions
among them; with ``--shards`` each member writes the shards of the partitions it holds. This
process forwards SIGINT/SIGTERM to the members (each finishes its batch and stops), shows one
progress bar, and prints one summary: the sum of the members' summaries. A member whose parent
dies gets SIGTERM (Linux), so no member outlives the command.

Example: ``tracelab consume --shards data/processed/shards --processes 2 --until-idle 5``
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tracelab.errors import ConfigError
from tracelab.ingest.shards import is_shard_folder, shard_files
from tracelab.ingest.store import Summary

__all__ = ["member_argv", "run_group"]


def member_argv(args: argparse.Namespace, index: int) -> list[str]:
    """The command line of member ``index`` (0-based) of a group started with ``args``.

    A static ``--instance-id X`` becomes ``X-<index>``: each member keeps its own identity, so a
    restarted command takes its partitions back at once.

    Example: ``member_argv(args, 0)`` -> ``[python, "-m", "tracelab", "consume", ...]``
    """
    argv = [sys.executable, "-m", "tracelab", "consume", "--topic", args.topic]
    argv += ["--group", args.group, "--json", "--no-progress"]
    if args.bootstrap:
        argv += ["--bootstrap", args.bootstrap]
    argv += ["--shards", args.shards] if args.shards else ["--db", str(args.db)]
    if args.instance_id:
        argv += ["--instance-id", f"{args.instance_id}-{index}"]
    if args.until_idle is not None:
        argv += ["--until-idle", str(args.until_idle)]
    argv += ["--batch-size", str(args.batch_size)]
    argv += ["--unreachable-timeout", str(args.unreachable_timeout)]
    if args.kafka_config:
        argv += ["--kafka-config", args.kafka_config]
    for path in getattr(args, "styles", None) or []:  # each member parses with the same styles
        argv += ["--styles", str(path)]
    max_bytes = getattr(args, "max_message_bytes", None)
    if max_bytes is not None:  # and quarantines the same messages as too large
        argv += ["--max-message-bytes", str(max_bytes)]
    if args.single_process:
        argv.append("--single-process")
    return argv


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Ask Linux to send SIGTERM to this child when its parent dies (no-op elsewhere)."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _stored(target: Path) -> int:
    """Messages stored so far in a database file or over a shard folder (for the progress bar)."""
    files = shard_files(target) if is_shard_folder(target) else [target]
    total = 0
    for path in files:
        with (
            contextlib.suppress(sqlite3.Error),
            contextlib.closing(
                sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1)
            ) as conn,
        ):
            row = conn.execute("SELECT value FROM counters WHERE name = 'messages'").fetchone()
            total += int(row[0]) if row else 0
    return total


def run_group(args: argparse.Namespace, progress: bool) -> int:
    """Start ``args.processes`` members, wait for all, print one summary; the exit code.

    Example: ``run_group(parser.parse_args(["consume", "--shards", "s", "--processes", "2"]))``
    """
    n = int(args.processes)
    if n < 1:
        raise ConfigError(f"--processes must be at least 1, got {n}")
    if args.max_messages is not None:
        raise ConfigError("--max-messages applies to one process; not with --processes")
    target = Path(args.shards or args.db)
    if args.shards:
        target.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join(
        [str(Path(__file__).resolve().parents[2]), env.get("PYTHONPATH", "")]
    ).rstrip(os.pathsep)
    started = time.monotonic()
    before = _stored(target)
    members: list[subprocess.Popen[str]] = []

    def forward(signum: int, frame: Any) -> None:
        for proc in members:
            with contextlib.suppress(OSError):
                proc.send_signal(signal.SIGTERM)

    old = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    bar = None
    try:
        for i in range(n):
            members.append(
                subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
                    member_argv(args, i),
                    stdout=subprocess.PIPE,
                    stdin=subprocess.DEVNULL,
                    text=True,
                    env=env,
                    start_new_session=True,  # Ctrl-C reaches this process, which forwards it
                    preexec_fn=_die_with_parent,  # noqa: PLW1509
                )
            )
        if progress:
            from tqdm import tqdm

            bar = tqdm(desc=f"consume {args.topic} ({n} processes)", unit=" msg",
                       unit_scale=True, file=sys.stderr, dynamic_ncols=True)  # fmt: skip
        while any(p.poll() is None for p in members):
            if bar is not None:
                bar.n = _stored(target) - before
                bar.refresh()
            time.sleep(0.5)
        outputs = [p.communicate()[0] for p in members]
    finally:
        for proc in members:
            if proc.poll() is None:
                proc.terminate()
                proc.wait()
        for s, h in old.items():
            signal.signal(s, h)
        if bar is not None:
            bar.close()
    total = Summary()
    reads: list[int | None] = []
    code = 0
    for proc, out in zip(members, outputs, strict=True):
        result = _last_json(out)
        if result is None or proc.returncode != 0:
            code = code or proc.returncode or 1
            reads.append(None)
            continue
        summary = Summary(**{k: result[k] for k in Summary.__dataclass_fields__})
        total = total + summary
        reads.append(summary.read)
    rate = total.read / max(1e-9, time.monotonic() - started)
    if args.json:
        extra = {"db": str(target), "rate": round(rate, 1), "processes": n, "member_reads": reads}
        print(json.dumps({**total.as_dict(), "adds_up": total.adds_up, **extra}))
    else:
        print(total.format())
        print(f"database: {target}  ({n} processes, {rate:,.0f} messages/s; by member: {reads})")
    sys.stdout.flush()
    if code:
        print(f"tracelab: error: a member stopped with exit code {code}", file=sys.stderr)
        return code
    return 0 if total.adds_up else 3


def _last_json(out: str) -> dict[str, Any] | None:
    for line in reversed(out.strip().splitlines()):
        with contextlib.suppress(ValueError):
            value = json.loads(line)
            if isinstance(value, dict):
                return value
    return None
