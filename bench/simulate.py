"""Throughput of the simulator writing raw messages to a file, beside baselines from the same run.

Prints messages/s for:

- ``simulate`` of the default flow to a file (no faults, no truth) — the target is >= 200k/s,
  judged on CPU seconds (the simulator is single-threaded; on a shared, loaded machine its wall
  rate drops with the load, so both are printed with the load average);
- the same with every fault kind on and ``--truth`` written;
- the I/O floor: writing the very same pre-built lines to a file, one ``write`` per line;
- the seed's way: per message a ``datetime`` timestamp, a dict and ``json.dumps`` (or an
  f-string for the text styles), one ``write`` per message — same number of messages, measured
  on a sample and extrapolated.

Usage: ``python bench/simulate.py [--traces 70000] [--seed-sample 200000] [--keep DIR]``
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tracelab import config  # noqa: E402
from tracelab.simulate import Faults, simulate  # noqa: E402
from tracelab.simulate.flows import load_flow  # noqa: E402
from tracelab.simulate.sinks import FileSink  # noqa: E402

TARGET = 200_000
FAULTS = Faults(
    duplicate=0.02,
    detail_first=0.1,
    missing_detail=0.05,
    orphan_detail=0.05,
    malformed=0.01,
    clock_skew=250,
)


Timing = tuple[int, float, float]  # messages, wall seconds, CPU seconds


def bench_simulate(traces: int, out: Path, faults: Faults, truth: Path | None) -> Timing:
    flow = load_flow(config.DEFAULT_FLOW)
    t, c = time.perf_counter(), time.process_time()
    with FileSink(out) as sink:
        result = simulate(flow, traces, 1, faults, sink, truth_path=truth)
    return result.messages, time.perf_counter() - t, time.process_time() - c


def bench_prebuilt(src: Path, out: Path) -> Timing:
    lines = src.read_bytes().splitlines()
    t, c = time.perf_counter(), time.process_time()
    with open(out, "wb") as fh:
        write = fh.write
        for line in lines:
            write(line + b"\n")
    return len(lines), time.perf_counter() - t, time.process_time() - c


def bench_seed_way(n: int, out: Path) -> Timing:
    """One message at a time, as the seed's producers build them."""
    rng = random.Random(1)
    clock = datetime(2025, 5, 4, 10, 30, tzinfo=UTC)
    systems = ("inventory", "reporting", "orders", "payments")
    t, c = time.perf_counter(), time.process_time()
    with open(out, "w", encoding="utf-8") as fh:
        for i in range(n):
            clock += timedelta(milliseconds=rng.randint(1, 50))
            ts = clock.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]
            cid = f"trace-{i // 16}"
            system = rng.choice(systems)
            status = "FAILURE" if rng.random() < 0.1 else "SUCCESS"
            if system in ("inventory", "reporting"):
                msg = {
                    "system": system,
                    "checkpoint": f"CHECKPOINT_{rng.randint(1, 3)}",
                    "status": status,
                    "timestamp": ts,
                    "correlation_id": cid,
                }
                if status == "FAILURE" and system == "reporting":
                    msg["failure_reason"] = "REPORTING_FAILURE_REASON_2"
                fh.write(json.dumps(msg) + "\n")
            elif system == "orders":
                fh.write(f"{ts} ORDER: CHECKPOINT_{rng.randint(1, 3)} - {status} (ID: {cid})\n")
            else:
                fh.write(f"{ts} PAYMENTS: PAYMENTS_CHECKPOINT_2 - {status} (ID: {cid})\n")
    return n, time.perf_counter() - t, time.process_time() - c


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--traces", type=int, default=70_000, help="traces (~14.6 messages each)")
    ap.add_argument("--seed-sample", type=int, default=200_000, help="messages for the seed's way")
    ap.add_argument("--keep", type=Path, help="keep the files in this folder")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="tracelab-bench-sim-")) if not args.keep else args.keep
    work.mkdir(parents=True, exist_ok=True)
    try:
        plain = bench_simulate(args.traces, work / "plain.log", Faults(), None)
        prebuilt = bench_prebuilt(work / "plain.log", work / "prebuilt.log")
        seed_way = bench_seed_way(min(args.seed_sample, plain[0]), work / "seed.log")
        rows: list[tuple[str, Timing]] = [
            ("simulate (no faults, no truth)", plain),
            (
                "simulate (all faults + truth)",
                bench_simulate(args.traces, work / "faults.log", FAULTS, work / "truth.jsonl"),
            ),
            ("I/O floor: pre-built lines, write each", prebuilt),
            ("seed's way: json.dumps per message", seed_way),
        ]
        sim, sim_cpu = plain[0] / plain[1], plain[0] / plain[2]
        print(
            f"{'measure':40} {'messages':>10} {'wall s':>7} {'msg/s':>10} {'CPU msg/s':>10} "
            f"{'sim / it':>9}"
        )
        for name, (count, wall, cpu) in rows:
            r, rc = count / wall, count / max(cpu, 1e-9)
            print(f"{name:40} {count:>10,} {wall:>7.2f} {r:>10,.0f} {rc:>10,.0f} {sim / r:>9.2f}")
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
        cores = os.cpu_count() or 1
        print(f"machine: load average {load:.2f} on {cores} cores (wall rates suffer when > cores)")
        for label, value in (("wall", sim), ("CPU", sim_cpu)):
            verdict = "PASS" if value >= TARGET else "FAIL"
            print(f"target: simulate >= {TARGET:,} msg/s ({label}): {value:,.0f} -> {verdict}")
        # single-threaded: the CPU rate is the wall rate of an otherwise idle core
        return 0 if sim_cpu >= TARGET else 1
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
