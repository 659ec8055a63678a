"""Shards, measured in one run (ratios against a same-run baseline; CPU seconds beside wall).

1. ``consume``: one ``tracelab consume --shards`` process vs ``--processes 2`` on the same topic
   (a fresh local broker, ~530k messages, 6 partitions): the rate while storing (from the first
   stored message to the last, so group joins and the idle wait at the end do not count), the
   CPU seconds per 100k messages of all processes (members and their writer processes, less the
   fixed cost of the same command on a folder that already holds everything), and
   the messages per CPU second (the per-core rate). The broker's CPU is shown beside it: on
   this machine it shares the two cores with the consumers.
2. ``analysis``: every query of the notebooks on a folder of 6 shards vs on one file holding the
   same rows (both built by ``normalize`` from one simulated file of ~1M events); the ratio of
   the times, per query and in total (target: total <= 1.3).

Usage: ``python bench/shards.py [consume] [analysis] [--traces 36000] [--events 1000000]``
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from kafka_e2e import FAULTS, cpu_seconds  # noqa: E402

from tracelab import analysis, config  # noqa: E402
from tracelab.analysis.duck import connect  # noqa: E402
from tracelab.ingest.pipeline import normalize_files  # noqa: E402
from tracelab.ingest.shards import ShardedStore, shard_files  # noqa: E402
from tracelab.kafka import KafkaSink  # noqa: E402
from tracelab.kafka.broker import LocalBroker, free_port  # noqa: E402
from tracelab.simulate import simulate  # noqa: E402
from tracelab.simulate.flows import load_flow  # noqa: E402
from tracelab.simulate.sinks import FileSink  # noqa: E402

ANALYSIS_TARGET = 1.3


def _stored(folder: Path) -> int:
    total = 0
    for path in shard_files(folder):
        try:
            with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1) as conn:
                row = conn.execute("SELECT value FROM counters WHERE name = 'messages'").fetchone()
        except sqlite3.Error:
            continue
        total += int(row[0]) if row else 0
    return total


def consume_run(bootstrap: str, topic: str, folder: Path, processes: int, jvm: int | None,
                total: int) -> dict[str, float]:  # fmt: skip
    """One ``tracelab consume --shards`` command; its storing rate and CPU."""
    cmd = [sys.executable, "-m", "tracelab", "consume", "--bootstrap", bootstrap, "--topic",
           topic, "--group", f"bench-{time.time_ns()}", "--shards", str(folder), "--until-idle",
           "2", "--no-progress", "--json", "--processes", str(processes)]  # fmt: skip
    marks: list[tuple[float, int]] = []
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            marks.append((time.perf_counter(), _stored(folder)))
            done.wait(0.25)

    cpu0, jvm0 = cpu_seconds(), cpu_seconds(jvm)
    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, check=False)
    done.set()
    watcher.join()
    cpu, jvm_cpu = cpu_seconds() - cpu0, cpu_seconds(jvm) - jvm0
    if proc.returncode != 0:
        raise SystemExit(f"consume failed: {proc.stderr}")
    # the fixed cost (interpreters starting, group join, the idle wait): the same command again
    # on the folder that now holds everything, so it reads nothing
    fixed0 = cpu_seconds()
    subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, check=True)
    cpu -= cpu_seconds() - fixed0
    stored = _stored(folder)
    assert stored + 0 >= total * 0.99, (stored, total)
    first = next(t for t, n in marks if n > 0)
    last = next(t for t, n in marks if n >= stored)
    return {
        "rate": stored / max(1e-9, last - first),
        "cpu_per_100k": cpu * 100_000 / stored,
        "msgs_per_cpu_s": stored / cpu,
        "broker_cpu_per_100k": jvm_cpu * 100_000 / stored,
    }


def bench_consume(traces: int, rounds: int) -> None:
    work = Path(tempfile.mkdtemp(prefix="tracelab-bench-shards-"))
    broker = LocalBroker(work / "kafka", port=free_port(), controller_port=free_port())
    print(f"starting a fresh local broker in {broker.data_dir} ...", file=sys.stderr)
    bootstrap = broker.start()
    try:
        topic = f"bench-{time.time_ns()}"
        with KafkaSink(bootstrap, topic, config.DEFAULT_PARTITIONS) as sink:
            result = simulate(load_flow(config.DEFAULT_FLOW), traces, 1, FAULTS, sink)
        total = result.messages
        print(f"topic: {total:,} messages in {config.DEFAULT_PARTITIONS} partitions")
        best: dict[int, dict[str, float]] = {}
        for rnd in range(rounds):
            for n in (1, 2):
                load = os.getloadavg()[0]
                folder = work / f"shards-{rnd}-{n}"
                got = consume_run(bootstrap, topic, folder, n, broker.pid(), total)
                print(
                    f"  round {rnd + 1}, {n} process(es): {got['rate']:,.0f} msg/s, "
                    f"{got['cpu_per_100k']:.2f} CPU s/100k (load {load:.1f})",
                    flush=True,
                )
                if n not in best or got["rate"] > best[n]["rate"]:
                    best[n] = got
                shutil.rmtree(folder)
        one, two = best[1], best[2]
        print(f"\n{'':<22}{'msgs/s (storing)':>18}{'CPU s/100k':>12}{'msgs/CPU s':>12}"
              f"{'broker CPU s/100k':>19}")  # fmt: skip
        for name, r in (("1 process", one), ("--processes 2", two)):
            print(f"{name:<22}{r['rate']:>18,.0f}{r['cpu_per_100k']:>12.2f}"
                  f"{r['msgs_per_cpu_s']:>12,.0f}{r['broker_cpu_per_100k']:>19.2f}")  # fmt: skip
        print(
            f"ratio 2 processes / 1: {two['rate'] / one['rate']:.2f} (rate), "
            f"{two['cpu_per_100k'] / one['cpu_per_100k']:.2f} (CPU per message); "
            f"{os.cpu_count()} cores shared with the broker; load now {os.getloadavg()[0]:.1f}"
        )
    finally:
        broker.stop()
        shutil.rmtree(work, ignore_errors=True)


#: The queries of notebooks 03 and 04, as calls on a connection.
def _queries(flow: Any, trace: str) -> dict[str, Callable[[Any], Any]]:
    return {
        "overview": analysis.overview,
        "trace_summaries": analysis.trace_summaries,
        "spans": analysis.spans,
        "path_distribution": analysis.path_distribution,
        "span_percentiles": analysis.span_percentiles,
        "critical_path_share": analysis.critical_path_share,
        "search": lambda c: analysis.search(c, outcome="FAILURE"),
        "failure_counts": analysis.failure_counts,
        "reason_pareto": analysis.reason_pareto,
        "retry_recovery": analysis.retry_recovery,
        "failure_rate_over_time": analysis.failure_rate_over_time,
        "conformance": lambda c: analysis.conformance(c, flow),
        "ledger": analysis.ledger,
        "quarantine_reasons": analysis.quarantine_reasons,
        "waterfall (one trace)": lambda c: analysis.waterfall(c, trace),
    }


def bench_analysis(events: int, keep: Path | None, repeat: int) -> None:
    work = keep or Path(tempfile.mkdtemp(prefix="tracelab-bench-shards-"))
    work.mkdir(parents=True, exist_ok=True)
    flow = load_flow(config.DEFAULT_FLOW)
    one, folder, raw = work / f"one-{events}.db", work / f"shards-{events}", work / "raw.log"
    if not one.is_file() or not folder.is_dir():
        pilot = simulate(flow, 2000, 1, FAULTS)
        traces = math.ceil(events / (pilot.summary["expected"]["events"] / 2000))
        with FileSink(raw) as sink:
            simulate(flow, traces, 42, FAULTS, sink)
        normalize_files([raw], one, progress=True)
        with ShardedStore(folder, shards=6) as store:
            normalize_files([raw], store, progress=True)
        raw.unlink()
    n = connect(one).execute("SELECT count(*) FROM events").fetchone()[0]
    print(f"\nanalysis: {n:,} events in one file and in {len(shard_files(folder))} shards")
    print(f"load average: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    cons = {"one file": connect(one), "6 shards": connect(folder)}
    trace = analysis.pick_trace(cons["one file"])
    times: dict[str, dict[str, float]] = {k: {} for k in cons}
    for name, call in _queries(flow, trace).items():
        for _ in range(repeat):  # alternate, keep the best of each
            for label, con in cons.items():
                t = time.perf_counter()
                call(con)
                s = time.perf_counter() - t
                times[label][name] = min(times[label].get(name, math.inf), s)
    print(f"{'query':<26}{'one file s':>12}{'6 shards s':>12}{'ratio':>8}")
    for name in times["one file"]:
        a, b = times["one file"][name], times["6 shards"][name]
        print(f"{name:<26}{a:>12.3f}{b:>12.3f}{b / a:>8.2f}")
    ta, tb = sum(times["one file"].values()), sum(times["6 shards"].values())
    verdict = "meets" if tb / ta <= ANALYSIS_TARGET else "ABOVE"
    print(f"{'all queries':<26}{ta:>12.2f}{tb:>12.2f}{tb / ta:>8.2f}  ({verdict} target "
          f"<= {ANALYSIS_TARGET})")  # fmt: skip
    if keep is None:
        shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("what", nargs="*", default=["consume", "analysis"])
    ap.add_argument("--traces", type=int, default=36_000, help="traces on the topic (consume)")
    ap.add_argument("--rounds", type=int, default=2, help="consume rounds; best of each kept")
    ap.add_argument("--events", type=int, default=1_000_000, help="events (analysis)")
    ap.add_argument("--repeat", type=int, default=3, help="analysis: best of N per query")
    ap.add_argument("--keep", type=Path, help="analysis: keep and reuse the databases here")
    args = ap.parse_args(argv)
    if "consume" in args.what:
        bench_consume(args.traces, args.rounds)
    if "analysis" in args.what:
        bench_analysis(args.events, args.keep, args.repeat)
    return 0


if __name__ == "__main__":
    sys.exit(main())
