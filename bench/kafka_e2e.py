"""Kafka end to end speed: producer rate, bare kafka-python consume rate, `tracelab consume` rate.

In one run, on one topic of at least 500k messages (simulated, every fault kind on):

1. the producer's rate (simulate -> KafkaSink: idempotent, acks=all, gzip),
2. a bare kafka-python consume loop (no processing) from the beginning with a fresh group,
3. ``tracelab.kafka.consume`` into a fresh SQLite database, also from the beginning,

(2 and 3 alternate over ``--rounds`` rounds, the best time of each kept) and the ratio 3 / 2
against the target (>= 0.7). Both consumers use the same fetch settings. With
``--compare-readers`` each round also runs 3 with kafka-python's own record reader instead of
tracelab's (``tracelab.kafka.records``), to show what that reader is worth in the same run.
The broker is a fresh local one in a temporary folder (or ``--bootstrap`` to use yours).

    python bench/kafka_e2e.py                 # 36k traces, about 530k messages
    python bench/kafka_e2e.py --traces 5000   # a quick look
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

from tracelab import config
from tracelab.ingest.store import SQLiteStore
from tracelab.kafka import KafkaSink, consume, topic_overview
from tracelab.kafka.broker import LocalBroker, free_port
from tracelab.kafka.records import DECODER_ENV
from tracelab.simulate import Faults, simulate
from tracelab.simulate.flows import load_flow
from tracelab.simulate.sinks import Sink

TARGET = 0.7
FAULTS = Faults(
    duplicate=0.01,
    detail_first=0.05,
    missing_detail=0.02,
    orphan_detail=0.02,
    malformed=0.001,
    clock_skew=200,
)


class _NullSink(Sink):
    __slots__ = ("count",)

    def __init__(self) -> None:
        self.count = 0

    def write(self, value: bytes, key: str, system: str) -> None:
        self.count += 1


def cpu_seconds(pid: int | None = None, children: bool = True) -> float:
    """CPU seconds (user + system) used so far: of this process and (``children``) of its
    waited-for children, or of the running process ``pid`` (the broker JVM) from /proc."""
    if pid is not None:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    me = resource.getrusage(resource.RUSAGE_SELF)
    total = me.ru_utime + me.ru_stime
    if children:
        kids = resource.getrusage(resource.RUSAGE_CHILDREN)
        total += kids.ru_utime + kids.ru_stime
    return total


def bare_consume(bootstrap: str, topic: str, total: int, batch: int) -> tuple[int, float]:
    """Poll ``topic`` from the beginning with a fresh group, touching nothing; (messages, s)."""
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"bench-bare-{time.time_ns()}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        max_poll_records=batch,
        max_partition_fetch_bytes=8 * 1024 * 1024,
        fetch_max_bytes=64 * 1024 * 1024,
        metrics_enabled=False,
    )
    count = 0
    started = time.perf_counter()
    try:
        while count < total:
            for records in consumer.poll(timeout_ms=500, max_records=batch).values():
                count += len(records)
    finally:
        elapsed = time.perf_counter() - started
        consumer.close()
    return count, elapsed


#: (wall s, CPU s of this process and the writer child, CPU s of this process, broker CPU s)
Round = tuple[float, float, float, float]


def _tracelab_round(
    bootstrap: str,
    topic: str,
    total: int,
    expected: dict,
    batch_size: int,
    jvm: int | None,
    db: Path,
    reader: str,
    best: Round | None,
) -> Round:
    """One ``tracelab consume`` of the whole topic with record ``reader`` (tracelab's or
    kafka-python's); the better of this round and ``best`` (by wall time, CPU by CPU)."""
    previous = os.environ.get(DECODER_ENV)
    os.environ[DECODER_ENV] = reader
    try:
        t0, cpu0, jvm0 = time.perf_counter(), cpu_seconds(), cpu_seconds(jvm)
        own0 = cpu_seconds(children=False)
        summary = consume(
            bootstrap, topic, f"bench-tracelab-{time.time_ns()}", db,
            until_idle=None, max_messages=total, batch_size=batch_size, progress=False,
        )  # fmt: skip
        now = (
            time.perf_counter() - t0,
            cpu_seconds() - cpu0,  # this process + the writer child
            cpu_seconds(children=False) - own0,
            cpu_seconds(jvm) - jvm0,
        )
    finally:
        if previous is None:
            del os.environ[DECODER_ENV]
        else:
            os.environ[DECODER_ENV] = previous
    with SQLiteStore(db) as store:
        stored = store.summary()
    assert summary.read == total == stored.read, (summary, total)
    assert stored.events == expected["events"] and stored.orphans == expected["orphans"]
    db.unlink()
    if best is None:
        return now
    cpu = (now[1], now[2]) if now[1] < best[1] else (best[1], best[2])
    return (min(now[0], best[0]), *cpu, min(now[3], best[3]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--traces", type=int, default=36_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=2, help="consume rounds; best of each kept")
    parser.add_argument("--bootstrap", default=None, help="use this broker instead of a fresh one")
    parser.add_argument("--json", action="store_true", help="also print the figures as JSON")
    parser.add_argument(
        "--compare-readers",
        action="store_true",
        help="also run tracelab consume with kafka-python's own record reader in each round",
    )
    args = parser.parse_args(argv)

    load_before = os.getloadavg()[0]
    work = Path(tempfile.mkdtemp(prefix="tracelab-bench-kafka-"))
    broker = None
    bootstrap = args.bootstrap
    if bootstrap is None:
        broker = LocalBroker(work / "kafka", port=free_port(), controller_port=free_port())
        print(f"starting a fresh local broker in {broker.data_dir} ...", file=sys.stderr)
        bootstrap = broker.start()
    try:
        flow = load_flow(config.DEFAULT_FLOW)
        topic = f"bench-{time.time_ns()}"

        t0 = time.perf_counter()
        null = _NullSink()
        simulate(flow, args.traces, args.seed, FAULTS, null)
        sim_s = time.perf_counter() - t0

        t0 = time.perf_counter()
        with KafkaSink(bootstrap, topic, config.DEFAULT_PARTITIONS) as sink:
            result = simulate(flow, args.traces, args.seed, FAULTS, sink)
        produce_s = time.perf_counter() - t0
        total = result.messages
        on_topic = int(topic_overview(bootstrap, topic)["messages"].sum())
        assert on_topic == total, f"{on_topic} messages on the topic, {total} sent"

        # The machine is shared and noisy: alternate the two consumers over rounds and keep
        # the best time of each (every round reads the whole topic from the beginning).
        bare_s = bare_cpu = bare_jvm = float("inf")
        readers = ("tracelab", "kafka-python") if args.compare_readers else ("tracelab",)
        best: dict[str, Round] = {}
        expected = result.summary["expected"]
        jvm = broker.pid() if broker is not None else None
        for round_no in range(args.rounds):
            cpu0, jvm0 = cpu_seconds(), cpu_seconds(jvm)
            bare_n, seconds = bare_consume(bootstrap, topic, total, args.batch_size)
            assert bare_n == total
            bare_s = min(bare_s, seconds)
            bare_cpu = min(bare_cpu, cpu_seconds() - cpu0)
            bare_jvm = min(bare_jvm, cpu_seconds(jvm) - jvm0)
            for reader in readers:
                best[reader] = _tracelab_round(
                    bootstrap, topic, total, expected, args.batch_size, jvm,
                    work / f"bench-{round_no}.db", reader, best.get(reader),
                )  # fmt: skip
    finally:
        if broker is not None:
            broker.stop()
        shutil.rmtree(work, ignore_errors=True)

    tl_s, tl_cpu, tl_own, tl_jvm = best["tracelab"]
    figures = {
        "messages": total,
        "simulate_only_msgs_per_s": round(total / sim_s),
        "producer_msgs_per_s": round(total / produce_s),
        "bare_consume_msgs_per_s": round(total / bare_s),
        "tracelab_consume_msgs_per_s": round(total / tl_s),
    }
    per_100k = 100_000 / total
    figures["bare_cpu_s_per_100k"] = round(bare_cpu * per_100k, 2)
    figures["tracelab_cpu_s_per_100k"] = round(tl_cpu * per_100k, 2)
    figures["tracelab_consumer_writer_cpu_s_per_100k"] = [
        round(tl_own * per_100k, 2),
        round((tl_cpu - tl_own) * per_100k, 2),
    ]
    if jvm is not None:
        figures["broker_cpu_s_per_100k"] = [
            round(bare_jvm * per_100k, 2),
            round(tl_jvm * per_100k, 2),
        ]
    figures["ratio"] = round(
        figures["tracelab_consume_msgs_per_s"] / figures["bare_consume_msgs_per_s"], 3
    )
    from kafka.record import util as record_util

    figures["crc32c"] = "C (crc32c package)" if record_util.crc32c_c else "pure Python"
    figures["load_avg_1min"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
    print(f"messages on topic:                {total:>10,}  (CRC32C: {figures['crc32c']})")
    print(f"simulate only (no sink):          {figures['simulate_only_msgs_per_s']:>10,} msg/s")
    print(f"producer (simulate -> Kafka):     {figures['producer_msgs_per_s']:>10,} msg/s")
    print(f"bare kafka-python consume:        {figures['bare_consume_msgs_per_s']:>10,} msg/s")
    print(f"tracelab consume -> SQLite:       {figures['tracelab_consume_msgs_per_s']:>10,} msg/s")
    print(
        f"CPU s per 100k messages: bare {figures['bare_cpu_s_per_100k']:.2f}, tracelab "
        f"{figures['tracelab_cpu_s_per_100k']:.2f} (consumer "
        f"{tl_own * per_100k:.2f} + writer {(tl_cpu - tl_own) * per_100k:.2f})"
        + (
            f"; broker JVM during each: {bare_jvm * per_100k:.2f} / {tl_jvm * per_100k:.2f}"
            if jvm is not None
            else ""
        )
    )
    print(
        f"load average (1 min) before/after: {load_before:.2f} / {os.getloadavg()[0]:.2f}"
        f" on {os.cpu_count()} cores (other work on the machine lowers the ratio)"
    )
    verdict = "meets" if figures["ratio"] >= TARGET else "BELOW"
    print(
        f"ratio tracelab / bare:            {figures['ratio']:>10.2f}  ({verdict} target {TARGET})"
    )
    if "kafka-python" in best:
        kp_s, kp_cpu, kp_own, _ = best["kafka-python"]
        figures["kafka_python_reader"] = {
            "msgs_per_s": round(total / kp_s),
            "cpu_s_per_100k": round(kp_cpu * per_100k, 2),
            "ratio": round(bare_s / kp_s, 3),
        }
        print(
            f"tracelab consume with kafka-python's record reader: {total / kp_s:,.0f} msg/s,"
            f" CPU s per 100k {kp_cpu * per_100k:.2f} (consumer {kp_own * per_100k:.2f} +"
            f" writer {(kp_cpu - kp_own) * per_100k:.2f}), ratio {bare_s / kp_s:.2f}"
        )
    if args.json:
        print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
