"""Consumer-group members writing partition-aligned shards, against the real broker: kill -9 of
one member mid-run (its partitions move to the other), a broker restart, `--processes N` as one
command. The union of the shards equals the simulator's truth exactly every time."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from test_kafka_e2e import ROOT, spawn, wait_for

from tracelab.ingest.shards import shard_files, shard_name, stored_offsets
from tracelab.kafka import topic_overview
from tracelab.kafka.broker import LocalBroker

if TYPE_CHECKING:
    from conftest import ProducedTopic

pytestmark = pytest.mark.kafka


def shards_cmd(bootstrap: str, topic: str, group: str, folder: Path, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "tracelab", "consume", "--bootstrap", bootstrap, "--topic", topic,
        "--group", group, "--shards", str(folder), "--no-progress", "--json", *extra,
    ]  # fmt: skip


def stored_total(folder: Path) -> int:
    total = 0
    for path in shard_files(folder):
        try:
            with sqlite3.connect(path, timeout=5) as conn:
                row = conn.execute("SELECT value FROM counters WHERE name = 'messages'").fetchone()
        except sqlite3.OperationalError:
            continue
        total += int(row[0]) if row else 0
    return total


def assert_union_matches_truth(folder: Path, produced: ProducedTopic) -> None:
    """Every shard holds exactly its own partition, its offsets cover exactly its messages, and
    the union of the shards equals the simulator's truth."""
    files = shard_files(folder, produced.topic)
    assert [f.name for f in files] == [shard_name(produced.topic, p) for p in range(6)]
    counts: dict[str, int] = {}
    events: list[tuple[Any, ...]] = []
    for p, path in enumerate(files):
        with sqlite3.connect(path) as conn:
            one = lambda sql: conn.execute(sql).fetchone()[0]  # noqa: E731
            c = dict(conn.execute("SELECT name, value FROM counters").fetchall())
            offsets = conn.execute("SELECT partition, next_offset FROM kafka_offsets").fetchall()
            parts = {r[0] for r in conn.execute("SELECT DISTINCT partition FROM events")}
            assert parts <= {p} and [o[0] for o in offsets] == [p]
            # atomic per shard: the stored offset covers exactly the messages stored
            assert c.get("messages", 0) + c.get("blank", 0) == offsets[0][1]
            shard = {
                "messages": c.get("messages", 0) + c.get("blank", 0),
                "events": one("SELECT count(*) FROM events"),
                "joined": one("SELECT count(*) FROM details WHERE event_id IS NOT NULL"),
                "orphans": one("SELECT count(*) FROM details WHERE event_id IS NULL"),
                "quarantined": one("SELECT count(*) FROM quarantine"),
                "duplicates": c.get("duplicates", 0),
                "awaiting_detail": one(
                    "SELECT count(*) FROM events WHERE join_state = 'awaiting_detail'"
                ),
            }
            for k, v in shard.items():
                counts[k] = counts.get(k, 0) + v
            events += conn.execute(
                "SELECT system_id, checkpoint_id, timestamp, status, correlation_id,"
                " failure_reason FROM events"
            ).fetchall()
    assert counts["messages"] == produced.messages
    for name in ("events", "joined", "orphans", "quarantined", "duplicates", "awaiting_detail"):
        assert counts[name] == produced.expected[name], name
    assert sorted((tuple(e) for e in events), key=repr) == produced.truth_events()


def assignment_by_instance(bootstrap: str, group: str) -> dict[str, list[int]]:
    """``{group instance id: partitions}`` of a stable group of static members (else ``{}``)."""
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        info = admin.describe_groups([group])[group]
    except KafkaError:
        return {}
    finally:
        admin.close()
    if info["group_state"] != "Stable":
        return {}
    return {
        m["group_instance_id"]: sorted(
            p for a in m["member_assignment"]["assigned_partitions"] for p in a["partitions"]
        )
        for m in info["members"]
    }


def _wait_for_two_members(bootstrap: str, group: str, procs: list[Any]) -> dict[str, list[int]]:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        members = assignment_by_instance(bootstrap, group)
        if len(members) == 2 and all(members.values()):
            return members
        assert all(p.poll() is None for p in procs), "a consumer exited before sharing the topic"
        time.sleep(0.2)
    raise AssertionError("the group never had two members holding partitions")


def test_two_members_kill9_one_partitions_move(
    kafka_bootstrap: str, produce_topic: Callable[..., ProducedTopic], tmp_path: Path
):
    # enough messages that the victim is still busy with its partitions when it is killed, even
    # when this process gets little CPU beside two members, their writers and the broker
    produced = produce_topic(6000, seed=51)
    folder = tmp_path / "shards"
    # until-idle outlasts the session timeout (10 s): the survivor is still there when the
    # coordinator gives it the dead member's partitions
    cmd = shards_cmd(kafka_bootstrap, produced.topic, "g-shards-kill", folder,
                     "--batch-size", "100", "--until-idle", "20")  # fmt: skip
    victim = spawn([*cmd, "--instance-id", "victim"])
    survivor = spawn([*cmd, "--instance-id", "survivor"])
    procs = [victim, survivor]
    ends = dict(zip(*(topic_overview(kafka_bootstrap, produced.topic)[c] for c in
                      ("partition", "end_offset")), strict=True))  # fmt: skip
    try:
        members = _wait_for_two_members(kafka_bootstrap, "g-shards-kill", procs)
        assert sorted(p for m in members.values() for p in m) == list(range(6))
        reached = wait_for(lambda: stored_total(folder) >= produced.messages // 8, 90, victim)
        victim.send_signal(signal.SIGKILL)
        victim.communicate(timeout=30)
        assert reached, "the victim ended before it was killed"
        at_kill = stored_offsets(folder, produced.topic)
        unfinished = [p for p in members["victim"] if at_kill.get(p, 0) < ends[p]]
        assert unfinished, f"the victim had finished its partitions {members['victim']}"
        out, err = survivor.communicate(timeout=240)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.communicate()
    assert survivor.returncode == 0, err
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["read"] > 0
    # the victim's unfinished partitions moved to the survivor, which finished them
    assert all(stored_offsets(folder, produced.topic)[p] == ends[p] for p in unfinished)
    assert_union_matches_truth(folder, produced)


def test_processes_two_survive_a_broker_restart(
    kafka_broker: LocalBroker,
    kafka_bootstrap: str,
    produce_topic: Callable[..., ProducedTopic],
    tmp_path: Path,
):
    produced = produce_topic(2000, seed=53)
    folder = tmp_path / "shards"
    proc = spawn(
        shards_cmd(
            kafka_bootstrap,
            produced.topic,
            "g-shards-restart",
            folder,
            "--processes",
            "2",
            "--batch-size",
            "150",
            "--until-idle",
            "6",
        )  # fmt: skip
    )
    try:
        assert wait_for(lambda: stored_total(folder) >= produced.messages // 5, 90, proc)
        assert kafka_broker.stop(timeout=60)
        time.sleep(2.0)
        assert proc.poll() is None, "the members must survive the broker's absence"
        kafka_broker.start(timeout=120)
        out, err = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        kafka_broker.start(timeout=120)  # for the tests that follow, whatever happened
    assert proc.returncode == 0, err
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["processes"] == 2 and len(summary["member_reads"]) == 2
    assert summary["read"] + summary["blank"] == produced.messages  # one summary, all of it
    assert summary["adds_up"]
    assert_union_matches_truth(folder, produced)


def test_processes_stop_cleanly_on_sigterm(
    kafka_bootstrap: str, produce_topic: Callable[..., ProducedTopic], tmp_path: Path
):
    produced = produce_topic(1500, seed=57)
    folder = tmp_path / "shards"
    proc = spawn(
        shards_cmd(
            kafka_bootstrap,
            produced.topic,
            "g-shards-term",
            folder,
            "--processes",
            "2",
            "--batch-size",
            "100",
        )  # fmt: skip
    )
    assert wait_for(lambda: stored_total(folder) > 0, 90, proc)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["read"] + summary["blank"] == stored_total(folder)
    left = subprocess.run(["pgrep", "-f", str(folder)], capture_output=True, text=True)
    assert left.stdout.strip() == "", "a member outlived the command"
    # resuming finishes the topic exactly
    final = subprocess.run(
        shards_cmd(kafka_bootstrap, produced.topic, "g-shards-term", folder, "--until-idle", "1"),
        capture_output=True, text=True, timeout=180, cwd=ROOT, check=False,
    )  # fmt: skip
    assert final.returncode == 0, final.stderr
    assert_union_matches_truth(folder, produced)
