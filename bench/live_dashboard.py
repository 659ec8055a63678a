"""Does the live dashboard slow the writer? `tracelab consume` of one topic into a fresh SQLite
file, without and with a `LiveMonitor` refreshing every second on the same file (a separate
process, as in JupyterLab), alternating over rounds; the ratio of the rates, in one run.

Target: consume keeps >= 0.9 x its rate with the dashboard refreshing.

    python bench/live_dashboard.py                  # 12k traces, ~180k messages, 2 rounds
    python bench/live_dashboard.py --traces 3000    # a quick look
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tracelab import config
from tracelab.kafka import KafkaSink, consume
from tracelab.kafka.broker import LocalBroker, free_port
from tracelab.simulate import Faults, simulate
from tracelab.simulate.flows import load_flow

TARGET = 0.9
DASHBOARD = """
import sys, time
from tracelab.notebook import open_live
m = open_live(sys.argv[1], bootstrap=sys.argv[2], topic=sys.argv[3], refresh_s=1.0,
              interactive=False, wait_for_db_s=60)
m.start()
while True:
    time.sleep(1)
    if m.errors:
        print(m.errors[-1], file=sys.stderr)
"""


def run_consume(bootstrap: str, topic: str, db: Path, total: int, dashboard: bool) -> float:
    """Seconds for consume to store ``total`` messages (the dashboard process running or not)."""
    proc = None
    if dashboard:
        proc = subprocess.Popen(
            [sys.executable, "-c", DASHBOARD, str(db), bootstrap, topic],
            stdout=subprocess.DEVNULL,
        )
    try:
        t0 = time.perf_counter()
        summary = consume(
            bootstrap, topic, f"bench-live-{time.time_ns()}", db, until_idle=None,
            max_messages=total, progress=False,
        )  # fmt: skip
        seconds = time.perf_counter() - t0
        assert summary.read == total, (summary.read, total)
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=30)
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--traces", type=int, default=12_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--bootstrap", default=None)
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="tracelab-bench-dash-"))
    broker = None
    bootstrap = args.bootstrap
    if bootstrap is None:
        broker = LocalBroker(work / "kafka", port=free_port(), controller_port=free_port())
        bootstrap = broker.start()
    try:
        topic = f"bench-dash-{time.time_ns()}"
        with KafkaSink(bootstrap, topic, config.DEFAULT_PARTITIONS) as sink:
            result = simulate(load_flow(config.DEFAULT_FLOW), args.traces, 1, Faults(), sink)
        total = result.messages
        best = {False: float("inf"), True: float("inf")}
        for r in range(args.rounds):
            for dash in (False, True):
                db = work / f"r{r}-{int(dash)}.db"
                best[dash] = min(best[dash], run_consume(bootstrap, topic, db, total, dash))
                db.unlink()
    finally:
        if broker is not None:
            broker.stop()
        shutil.rmtree(work, ignore_errors=True)
    without, with_ = total / best[False], total / best[True]
    ratio = with_ / without
    print(f"messages: {total:,}")
    print(f"consume alone:                  {without:>10,.0f} msg/s (best of {args.rounds})")
    print(f"consume + dashboard every 1 s:  {with_:>10,.0f} msg/s (best of {args.rounds})")
    verdict = "meets" if ratio >= TARGET else "BELOW"
    print(f"ratio: {ratio:.2f} ({verdict} target {TARGET}); load average {os.getloadavg()[0]:.2f}")
    print(json.dumps({"messages": total, "alone": round(without), "with_dashboard": round(with_),
                      "ratio": round(ratio, 3)}))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
