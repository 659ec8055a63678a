"""Memory of a long live run: `simulate --rate` into Kafka and `consume` running on, RSS sampled.

Starts a fresh local broker (or uses ``--bootstrap``), then ``tracelab simulate --rate R
--duration S`` and ``tracelab consume`` (no --until-idle: it runs on, like in production) as
separate processes, and samples the resident memory of each (consume's writer child counted
with it) every ``--every`` seconds. Prints the samples, then per process the RSS after the
warm-up, at the end and the slope over the run after warm-up (MiB per 10 minutes, least squares),
and the consumer's lag at the end (messages sent but not yet stored).

    python bench/live_memory.py                           # 10 minutes at 200 traces/s
    python bench/live_memory.py --rate 50 --duration 60   # a quick look
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

from tracelab.kafka.broker import LocalBroker, free_port

MIB = 1024 * 1024


def tree_rss(proc: psutil.Process) -> int:
    """RSS of a process and its children (consume's writer process), bytes."""
    total = 0
    try:
        total += proc.memory_info().rss
        for child in proc.children(recursive=True):
            with contextlib.suppress(psutil.Error):
                total += child.memory_info().rss
    except psutil.Error:
        pass
    return total


def slope_per_10min(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, MiB) points, in MiB per 10 minutes."""
    n = len(points)
    if n < 2:
        return 0.0
    mx = sum(t for t, _ in points) / n
    my = sum(v for _, v in points) / n
    den = sum((t - mx) ** 2 for t, _ in points) or 1e-9
    return sum((t - mx) * (v - my) for t, v in points) / den * 600


def stored_messages(db: Path) -> int:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
            row = conn.execute("SELECT value FROM counters WHERE name = 'messages'").fetchone()
            return int(row[0]) if row else 0
    except sqlite3.Error:
        return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=200.0, help="traces per second")
    parser.add_argument("--duration", type=float, default=600.0, help="seconds of live run")
    parser.add_argument("--every", type=float, default=10.0, help="seconds between samples")
    parser.add_argument("--warmup", type=float, default=60.0, help="seconds before the baseline")
    parser.add_argument("--bootstrap", default=None, help="use this broker instead of a fresh one")
    parser.add_argument("--json", action="store_true", help="also print the figures as JSON")
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="tracelab-bench-live-"))
    broker = None
    bootstrap = args.bootstrap
    if bootstrap is None:
        broker = LocalBroker(work / "kafka", port=free_port(), controller_port=free_port())
        print(f"starting a fresh local broker in {broker.data_dir} ...", file=sys.stderr)
        bootstrap = broker.start()
    topic, db, truth = f"live-mem-{time.time_ns()}", work / "live.db", work / "truth.jsonl"
    py = [sys.executable, "-m", "tracelab"]
    sim = cons = None
    samples: list[dict[str, float]] = []
    try:
        sim = subprocess.Popen(
            [*py, "simulate", "--rate", str(args.rate), "--duration", str(args.duration),
             "--bootstrap", bootstrap, "--topic", topic, "--truth", str(truth), "--no-progress",
             "--json", "--duplicate", "0.01", "--detail-first", "0.05", "--missing-detail",
             "0.02", "--orphan-detail", "0.02", "--malformed", "0.001", "--clock-skew", "200"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        time.sleep(3)  # the topic exists once the producer is up
        cons = subprocess.Popen(
            [*py, "consume", "--bootstrap", bootstrap, "--topic", topic, "--group", "live-mem",
             "--db", str(db), "--no-progress"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        ps_sim, ps_cons = psutil.Process(sim.pid), psutil.Process(cons.pid)
        t0 = time.monotonic()
        print(f"{'t s':>6} {'simulate MiB':>13} {'consume MiB':>12} {'stored msgs':>12}")
        while sim.poll() is None:
            time.sleep(args.every)
            row = {
                "t": round(time.monotonic() - t0, 1),
                "simulate_mib": tree_rss(ps_sim) / MIB,
                "consume_mib": tree_rss(ps_cons) / MIB,
                "stored": stored_messages(db),
            }
            if sim.poll() is not None:
                break
            samples.append(row)
            print(
                f"{row['t']:>6.0f} {row['simulate_mib']:>13.1f} {row['consume_mib']:>12.1f} "
                f"{row['stored']:>12,}",
                flush=True,
            )
        out, err = sim.communicate(timeout=60)
        if sim.returncode != 0:
            print(err, file=sys.stderr)
            return 1
        summary = json.loads(out.strip().splitlines()[-1])
        deadline = time.monotonic() + 120  # let consume catch up, then stop it like an operator
        while time.monotonic() < deadline and stored_messages(db) < summary["messages"]:
            time.sleep(1)
        cons.send_signal(signal.SIGTERM)
        cons.wait(timeout=60)
    finally:
        for p in (sim, cons):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait()
        if broker is not None:
            broker.stop()
    stored = stored_messages(db)
    shutil.rmtree(work, ignore_errors=True)
    after = [s for s in samples if s["t"] >= args.warmup] or samples
    figures: dict[str, object] = {
        "rate": args.rate,
        "duration_s": args.duration,
        "traces": summary["traces"],
        "messages": summary["messages"],
        "stored_at_end": stored,
        "max_in_flight": summary["max_in_flight"],
        "samples": len(samples),
    }
    print()
    for name in ("simulate", "consume"):
        key = f"{name}_mib"
        values = [s[key] for s in after]
        slope = slope_per_10min([(s["t"], s[key]) for s in after])
        figures[name] = {
            "after_warmup_mib": round(values[0], 1),
            "end_mib": round(values[-1], 1),
            "max_mib": round(max(values), 1),
            "slope_mib_per_10min": round(slope, 1),
        }
        print(
            f"{name:<9} RSS after {after[0]['t']:.0f} s warm-up {values[0]:6.1f} MiB, end "
            f"{values[-1]:6.1f} MiB, max {max(values):6.1f} MiB, slope {slope:+.1f} MiB/10 min"
        )
    print(
        f"{summary['traces']:,} traces, {summary['messages']:,} messages sent; {stored:,} stored "
        f"at the end (counters.messages); max {summary['max_in_flight']} traces in flight; "
        f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores"
    )
    if args.json:
        print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
