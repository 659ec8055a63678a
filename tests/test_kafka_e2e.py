"""Simulator -> real Kafka -> `tracelab consume` -> SQLite equals the simulator's truth exactly,
also across kill -9 of the consumer, a broker restart, and two consumers in one group."""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from conftest import db_events

from tracelab.errors import KafkaIOError
from tracelab.kafka import consume, consumer_lag, sample_messages, topic_overview
from tracelab.kafka.broker import LocalBroker, free_port

if TYPE_CHECKING:
    from conftest import ProducedTopic

pytestmark = pytest.mark.kafka

ROOT = Path(__file__).resolve().parent.parent


def db_counts(db: Path) -> dict[str, int]:
    with sqlite3.connect(db) as conn:
        one = lambda sql: conn.execute(sql).fetchone()[0]  # noqa: E731
        counters = dict(conn.execute("SELECT name, value FROM counters").fetchall())
        return {
            "events": one("SELECT count(*) FROM events"),
            "joined": one("SELECT count(*) FROM details WHERE event_id IS NOT NULL"),
            "orphans": one("SELECT count(*) FROM orphan_details"),
            "quarantined": one("SELECT count(*) FROM quarantine"),
            "duplicates": counters.get("duplicates", 0),
            "messages": counters.get("messages", 0) + counters.get("blank", 0),
            "stored_offsets": one("SELECT coalesce(sum(next_offset), 0) FROM kafka_offsets"),
            "awaiting_detail": one(
                "SELECT count(*) FROM events WHERE join_state = 'awaiting_detail'"
            ),
        }


def assert_matches_truth(db: Path, produced: ProducedTopic) -> None:
    counts = db_counts(db)
    exp = produced.expected
    assert counts["messages"] == produced.messages
    assert counts["stored_offsets"] == produced.messages
    for name in ("events", "joined", "orphans", "quarantined", "duplicates", "awaiting_detail"):
        assert counts[name] == exp[name], name
    assert db_events(db) == produced.truth_events()
    with sqlite3.connect(db) as conn:
        lineage = conn.execute(
            "SELECT count(*), count(DISTINCT partition || ':' || offset), min(source), max(source)"
            " FROM events"
        ).fetchone()
    assert lineage[0] == lineage[1]  # one event per Kafka message
    assert lineage[2] == lineage[3] == produced.topic


def consumer_cmd(bootstrap: str, topic: str, group: str, db: Path, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "tracelab", "consume", "--bootstrap", bootstrap, "--topic", topic,
        "--group", group, "--db", str(db), "--no-progress", "--json", *extra,
    ]  # fmt: skip


def spawn(cmd: list[str]) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env
    )


def stored_messages(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(db, timeout=5) as conn:
            row = conn.execute("SELECT value FROM counters WHERE name = 'messages'").fetchone()
    except sqlite3.OperationalError:  # schema not created yet
        return 0
    return int(row[0]) if row else 0


def wait_for(cond: Callable[[], bool], timeout: float, proc: subprocess.Popen[str]) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        if proc.poll() is not None:
            return False
        time.sleep(0.01)
    return False


@pytest.fixture(scope="module")
def produced(produce_topic: Callable[..., ProducedTopic]) -> ProducedTopic:
    """One topic with every fault kind, shared by the read-only tests of this module."""
    return produce_topic(1500, seed=11)


@pytest.mark.parametrize("writer_process", [True, False], ids=["writer-process", "inline"])
def test_consume_equals_truth(
    kafka_bootstrap: str, produced: ProducedTopic, tmp_path: Path, writer_process: bool
):
    db = tmp_path / "e2e.db"
    group = f"g-e2e-{writer_process}"
    faults = produced.summary["faults"]
    for kind in ("duplicate", "detail_first", "missing_detail", "orphan_detail", "malformed"):
        assert faults[kind] > 0, f"the run must inject {kind}"
    summary = consume(
        kafka_bootstrap, produced.topic, group, db,
        until_idle=1.0, progress=False, writer_process=writer_process,
    )  # fmt: skip
    assert summary.read == produced.messages
    assert summary.adds_up
    assert_matches_truth(db, produced)
    # A second run, even in another group, resumes from SQLite's offsets: nothing twice.
    again = consume(kafka_bootstrap, produced.topic, "g-other", db, until_idle=0.5, progress=False)
    assert again.read == 0
    assert_matches_truth(db, produced)
    # The group's offsets were committed to Kafka after SQLite, so lag tools see no lag.
    lag = consumer_lag(kafka_bootstrap, produced.topic, group, db)
    assert lag["lag"].sum() == 0
    assert (lag["committed"] == lag["end_offset"]).all()
    assert lag["stored"].sum() == produced.messages


def test_topic_views(kafka_bootstrap: str, produced: ProducedTopic):
    overview = topic_overview(kafka_bootstrap, produced.topic)
    assert list(overview["partition"]) == list(range(6))
    assert overview["messages"].sum() == produced.messages
    sample = sample_messages(kafka_bootstrap, produced.topic, n=10)
    assert len(sample) == 10
    assert set(sample["system"]) <= {"inventory", "payments", "orders", "reporting"}
    key = sample["key"].iloc[0]
    same = sample_messages(kafka_bootstrap, produced.topic, n=50, key=key)
    assert len(same) >= 1 and (same["key"] == key).all()
    assert same["partition"].nunique() == 1  # a trace stays in one partition
    assert any(key in value for value in same["value"])
    assert set(same["system"]) <= {"inventory", "payments", "orders", "reporting"}


def test_kill9_consumer_mid_stream(
    kafka_bootstrap: str, produce_topic: Callable[..., ProducedTopic], tmp_path: Path
):
    produced = produce_topic(2500, seed=23)
    db = tmp_path / "kill.db"
    rng = random.Random(5)
    total = produced.messages
    thresholds = sorted(rng.sample(range(total // 20, total * 3 // 4), 4))
    killed_mid_stream = 0
    for threshold in thresholds:
        proc = spawn(
            consumer_cmd(
                kafka_bootstrap,
                produced.topic,
                "g-kill",
                db,
                "--batch-size",
                "250",
                "--instance-id",
                "killed",
            )  # fmt: skip
        )
        reached = wait_for(lambda t=threshold: stored_messages(db) >= t, 60, proc)
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
        if reached:
            killed_mid_stream += 1
        counts = db_counts(db)
        # Atomicity: the offsets stored always cover exactly the messages stored.
        assert counts["messages"] == counts["stored_offsets"]
        assert counts["messages"] < total
    assert killed_mid_stream >= 3
    final = subprocess.run(
        consumer_cmd(
            kafka_bootstrap, produced.topic, "g-kill", db, "--until-idle", "1",
            "--instance-id", "killed",
        ),  # fmt: skip
        capture_output=True, text=True, timeout=120, cwd=ROOT, check=False,
    )  # fmt: skip
    assert final.returncode == 0, final.stderr
    assert_matches_truth(db, produced)


def test_broker_restart_while_consuming(
    kafka_broker: LocalBroker,
    kafka_bootstrap: str,
    produce_topic: Callable[..., ProducedTopic],
    tmp_path: Path,
):
    produced = produce_topic(2000, seed=31)
    db = tmp_path / "restart.db"
    proc = spawn(
        consumer_cmd(
            kafka_bootstrap, produced.topic, "g-restart", db, "--until-idle", "4",
            "--batch-size", "200",
        )
    )  # fmt: skip
    try:
        assert wait_for(lambda: stored_messages(db) >= produced.messages // 5, 60, proc)
        assert kafka_broker.stop(timeout=60)
        time.sleep(2.0)
        assert proc.poll() is None, "the consumer must survive the broker's absence"
        kafka_broker.start(timeout=120)
        out, err = proc.communicate(timeout=150)
    finally:
        if proc.poll() is None:
            proc.kill()
        kafka_broker.start(timeout=120)  # for the tests that follow, whatever happened
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    assert_matches_truth(db, produced)


def group_assignment(bootstrap: str, group: str) -> list[list[int]]:
    """The partitions assigned to each member of a stable consumer group (empty list otherwise)."""
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        info = admin.describe_groups([group])[group]
    except KafkaError:  # e.g. no coordinator yet while the group is being created
        return []
    finally:
        admin.close()
    if info["group_state"] != "Stable":
        return []
    return [
        sorted(p for a in m["member_assignment"]["assigned_partitions"] for p in a["partitions"])
        for m in info["members"]
    ]


def test_two_consumers_one_group(
    kafka_bootstrap: str, produce_topic: Callable[..., ProducedTopic], tmp_path: Path
):
    from conftest import new_topic_name

    from tracelab.kafka import ensure_topic

    topic = new_topic_name()
    ensure_topic(kafka_bootstrap, topic, 6)
    db = tmp_path / "two.db"
    cmd = consumer_cmd(
        kafka_bootstrap, topic, "g-two", db, "--until-idle", "20", "--batch-size", "150"
    )  # idle long enough that a loaded machine forms the group before either member gives up
    procs = [spawn(cmd), spawn(cmd)]
    try:
        # Both members must hold partitions before any data exists, so that sharing is not a
        # race between the second process starting and the first one draining the topic.
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and len(group_assignment(kafka_bootstrap, "g-two")) != 2:
            assert all(p.poll() is None for p in procs), "a consumer exited before data arrived"
            time.sleep(0.2)
        members = group_assignment(kafka_bootstrap, "g-two")
        assert len(members) == 2 and all(members), f"group not shared: {members}"
        assert sorted(p for m in members for p in m) == list(range(6))
        produced = produce_topic(2500, seed=41, topic=topic)
        outs = [p.communicate(timeout=150) for p in procs]
    finally:
        for p in procs:  # never leave a consumer behind when an assertion fails
            if p.poll() is None:
                p.kill()
                p.communicate()
    for proc, (_out, err) in zip(procs, outs, strict=True):
        assert proc.returncode == 0, err
    reads = [json.loads(out.strip().splitlines()[-1])["read"] for out, _ in outs]
    assert sum(reads) == produced.messages  # each message stored by exactly one of them
    assert all(r > 0 for r in reads), f"both consumers must get work: {reads}"
    assert_matches_truth(db, produced)


def test_sigterm_finishes_batch_and_exits(
    kafka_bootstrap: str, produced: ProducedTopic, tmp_path: Path
):
    db = tmp_path / "term.db"
    proc = spawn(consumer_cmd(kafka_bootstrap, produced.topic, "g-term", db, "--batch-size", "200"))
    assert wait_for(lambda: stored_messages(db) > 0, 60, proc)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    summary = json.loads(out.strip().splitlines()[-1])
    counts = db_counts(db)
    assert summary["read"] == counts["messages"] == counts["stored_offsets"]


def test_unreachable_broker_is_a_clear_error(tmp_path: Path):
    port = free_port()
    started = time.monotonic()
    with pytest.raises(KafkaIOError, match="cannot reach Kafka"):
        consume(
            f"127.0.0.1:{port}", "raw-logs", "g", tmp_path / "x.db",
            unreachable_timeout=3, progress=False,
        )  # fmt: skip
    assert time.monotonic() - started < 60
    proc = subprocess.run(
        [
            sys.executable, "-m", "tracelab", "consume", "--bootstrap", f"127.0.0.1:{port}",
            "--db", str(tmp_path / "y.db"), "--unreachable-timeout", "2", "--no-progress",
        ],
        capture_output=True, text=True, timeout=120, cwd=ROOT, check=False,
    )  # fmt: skip
    assert proc.returncode == 1
    assert "cannot reach Kafka" in proc.stderr
    assert "Traceback" not in proc.stderr
