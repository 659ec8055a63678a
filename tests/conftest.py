"""Shared fixtures. The Kafka ones start a REAL local Apache Kafka broker
(tracelab.kafka.broker) once per test session, on free ports, with its data in a temporary
folder, and stop it at the end.
Tests that use it are marked ``@pytest.mark.kafka``.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tracelab import config
from tracelab.errors import BrokerError
from tracelab.kafka.broker import LocalBroker, free_port
from tracelab.simulate.truth import TRUTH_FIELDS, read_truth

ROOT = Path(__file__).resolve().parent.parent

#: Every fault kind on, at rates that give each a few dozen cases in a small run.
ALL_FAULTS: dict[str, Any] = {
    "duplicate": 0.02,
    "detail_first": 0.1,
    "missing_detail": 0.05,
    "orphan_detail": 0.05,
    "malformed": 0.01,
    "clock_skew": 250,
}


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalBroker]:
    """A real single-node Kafka broker for the whole session (data in a temp folder)."""
    broker = None
    for attempt in range(2):  # a port taken between free_port() and the bind: try new ones
        data_dir = tmp_path_factory.mktemp("kafka")
        port = free_port()
        controller = free_port()
        while controller == port:
            controller = free_port()
        broker = LocalBroker(
            data_dir,
            port=port,
            controller_port=controller,
            heap="768m",
            jvm_opts=["-XX:TieredStopAtLevel=1"],  # C1 only: starts twice as fast
        )
        try:
            broker.start(timeout=180)
            break
        except BrokerError:
            broker.stop()
            if attempt:
                raise
    assert broker is not None
    try:
        yield broker
    finally:
        broker.stop(timeout=60)


@pytest.fixture(scope="session")
def kafka_bootstrap(kafka_broker: LocalBroker) -> str:
    """``127.0.0.1:<port>`` of the session broker."""
    return kafka_broker.bootstrap


@dataclass
class ProducedTopic:
    """A topic filled by the simulator, with the simulator's truth."""

    topic: str
    messages: int
    expected: dict[str, int]
    truth_path: Path
    summary: dict[str, Any]

    def truth_events(self) -> list[tuple[Any, ...]]:
        """The expected event rows, six schema fields each, sorted."""
        return truth_events(self.truth_path)


def truth_events(truth_path: Path) -> list[tuple[Any, ...]]:
    """The event rows a truth file expects, six schema fields each, sorted (compare with
    :func:`db_events`)."""
    table = read_truth(truth_path)
    rows = list(zip(*(table.column(name).to_pylist() for name in TRUTH_FIELDS), strict=True))
    return sorted(rows, key=repr)


def db_events(db: Path) -> list[tuple[Any, ...]]:
    """The event rows a database holds, six schema fields each, sorted."""
    with contextlib.closing(sqlite3.connect(db)) as conn:
        rows = conn.execute(
            "SELECT system_id, checkpoint_id, timestamp, status, correlation_id, failure_reason"
            " FROM events"
        ).fetchall()
    return sorted((tuple(r) for r in rows), key=repr)


_topic_ids = itertools.count(1)


def new_topic_name() -> str:
    """A topic name no other test of this session uses."""
    return f"test-{os.getpid()}-{next(_topic_ids)}"


@pytest.fixture(scope="session")
def produce_topic(
    kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> Callable[..., ProducedTopic]:
    """Factory: simulate ``traces`` traces with every fault kind into a fresh topic."""
    from tracelab.kafka import KafkaSink
    from tracelab.simulate import Faults, simulate
    from tracelab.simulate.flows import load_flow

    flow = load_flow(config.DEFAULT_FLOW)
    out = tmp_path_factory.mktemp("truth")

    def make(
        traces: int, seed: int = 7, partitions: int = 6, topic: str | None = None
    ) -> ProducedTopic:
        topic = topic or new_topic_name()
        truth = out / f"{topic}.jsonl"
        with KafkaSink(kafka_bootstrap, topic, partitions) as sink:
            result = simulate(flow, traces, seed, Faults(**ALL_FAULTS), sink, truth_path=truth)
        assert sink.count == result.messages
        return ProducedTopic(
            topic, result.messages, dict(result.summary["expected"]), truth, result.summary
        )

    return make
