"""The live orchestrator (``simulate --rate``): wall-clock timestamps, steady rate, bounded
in-flight state, truth that equals what the normalizer stores however the run stops."""

from __future__ import annotations

import collections
import json
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from conftest import ALL_FAULTS, ROOT
from test_simulate import SIX, _db_state

from tracelab import config
from tracelab.cli import main
from tracelab.simulate import Faults, truth_summary_path
from tracelab.simulate.flows import Flow, load_flow
from tracelab.simulate.live import simulate_live
from tracelab.simulate.sinks import FileSink, ListSink


@pytest.fixture(scope="module")
def flow() -> Flow:
    return load_flow(config.DEFAULT_FLOW)


def truth_rows(truth: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in truth.read_text(encoding="utf-8").splitlines()]


def assert_truth_equals_normalize(raw: Path, truth: Path, db: Path) -> dict[str, Any]:
    """Normalize ``raw`` and compare the database with the truth file and its summary."""
    from tracelab.ingest.pipeline import normalize_files

    summary = json.loads(truth_summary_path(truth).read_text(encoding="utf-8"))
    stored = normalize_files([raw], db, progress=False)
    state = _db_state(db)
    rows = truth_rows(truth)
    assert state["events"] == collections.Counter(tuple(r[k] for k in SIX) for r in rows)
    exp = summary["expected"]
    assert exp["events"] == len(rows)
    assert (stored.joined, stored.orphans, stored.duplicates, stored.quarantined) == (
        exp["joined"], exp["orphans"], exp["duplicates"], exp["quarantined"]
    )  # fmt: skip
    assert state["awaiting"] == exp["awaiting_detail"]
    assert stored.read == summary["messages"]
    return summary


def test_live_run_stamps_the_wall_clock_holds_the_rate_and_its_truth_is_exact(
    flow: Flow, tmp_path: Path
) -> None:
    raw, truth, db = tmp_path / "live.log", tmp_path / "t.jsonl", tmp_path / "t.db"
    before = datetime.now(UTC)
    with FileSink(raw) as sink:
        result = simulate_live(
            flow, rate=150, seed=3, faults=Faults(**ALL_FAULTS), sink=sink, truth_path=truth,
            duration=3.0,
        )  # fmt: skip
    after = datetime.now(UTC)
    s = result.summary
    assert s["mode"] == "live" and s["complete"] and s["stopped_by"] == "duration"
    assert s["cut"] == 0  # the traces in flight finished within the drain time
    # a Poisson process of 150/s over 3 s: 450 expected, far outside +-25 % is a broken clock
    assert 330 <= s["traces"] <= 570
    assert raw.read_bytes().count(b"\n") == s["messages"] == result.messages
    stamps = [datetime.fromisoformat(r["timestamp"]) for r in truth_rows(truth)]
    skew = max(abs(v) for v in s["clock_skew_ms"].values()) / 1000
    assert before.timestamp() - skew - 0.01 <= min(stamps).timestamp()
    assert max(stamps).timestamp() <= after.timestamp() + skew + 0.01
    assert_truth_equals_normalize(raw, truth, db)


def test_stop_with_cut_keeps_the_truth_exact_for_what_was_sent(flow: Flow, tmp_path: Path) -> None:
    raw, truth, db = tmp_path / "cut.log", tmp_path / "t.jsonl", tmp_path / "t.db"
    stop, cut = threading.Event(), threading.Event()
    timer = threading.Timer(1.5, lambda: (stop.set(), cut.set()))
    timer.start()
    try:
        with FileSink(raw) as sink:
            result = simulate_live(
                flow, rate=200, seed=4, faults=Faults(**ALL_FAULTS), sink=sink, truth_path=truth,
                stop=stop, cut=cut,
            )  # fmt: skip
    finally:
        timer.cancel()
    s = result.summary
    assert s["stopped_by"] == "stop" and s["cut"] > 0  # 200/s: always some traces in flight
    assert_truth_equals_normalize(raw, truth, db)


def test_in_flight_state_stays_bounded(flow: Flow) -> None:
    """Messages leave as they are sent: what is held is the traces in flight, which depends on
    the rate and the flow's trace length only, not on how long the run has been going."""
    ticks: list[dict[str, Any]] = []
    sink = ListSink()
    result = simulate_live(
        flow, rate=300, seed=5, sink=sink, duration=4.0, on_tick=ticks.append, drain_s=0
    )
    running = [t["in_flight"] for t in ticks if t["started"] > 0]
    assert len(running) >= 6
    half = len(running) // 2
    # a trace of the default flow lasts about 1 s (a few s with retries): a few hundred in flight
    assert 0 < max(running) <= 300 * 6
    assert max(running[half:]) <= 1.5 * max(running[:half]) + 50
    assert result.summary["max_in_flight"] == max(result.summary["max_in_flight"], *running)
    assert len(sink.messages) == result.messages


def test_cli_sigterm_ends_a_live_run_with_exit_0_and_a_valid_truth(tmp_path: Path) -> None:
    raw, truth, db = tmp_path / "sig.log", tmp_path / "t.jsonl", tmp_path / "t.db"
    proc = subprocess.Popen(
        [sys.executable, "-m", "tracelab", "simulate", "--rate", "100", "--seed", "9",
         "--out", str(raw), "--truth", str(truth), "--duplicate", "0.05", "--detail-first",
         "0.1", "--no-progress", "--json", "--drain", "0.5"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and (not truth.exists() or truth.stat().st_size < 20_000):
            time.sleep(0.2)
        # while running: the truth file is whole lines of JSON, appended as traces complete
        partial = truth.read_text(encoding="utf-8")
        assert partial.endswith("\n") and all(json.loads(x) for x in partial.splitlines())
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    printed = json.loads(out.strip().splitlines()[-1])
    assert printed["stopped_by"] == "stop" and printed["complete"]
    summary = assert_truth_equals_normalize(raw, truth, db)
    assert summary == printed


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--rate", "0"], 2, "must be > 0"),
        (["--rate", "nan"], 2, "finite"),
        (["--rate", "5", "--duration", "-1"], 2, "seconds >= 0"),
        (["--duration", "5"], 1, "--duration needs --rate"),
    ],
)
def test_cli_live_options_are_checked(
    args: list[str], code: int, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["simulate", "--out", str(tmp_path / "x.log"), *args]
    if code == 2:
        with pytest.raises(SystemExit) as info:
            main(argv)
        assert info.value.code == 2
    else:
        assert main(argv) == 1
    assert message in capsys.readouterr().err


@pytest.mark.kafka
def test_cli_live_to_kafka_then_consume_equals_truth(
    kafka_bootstrap: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tracelab.kafka import consume

    topic, truth, db = "live-sim-test", tmp_path / "t.jsonl", tmp_path / "k.db"
    args = ["simulate", "--rate", "80", "--duration", "2", "--seed", "13", "--bootstrap",
            kafka_bootstrap, "--topic", topic, "--partitions", "3", "--truth", str(truth),
            "--no-progress", "--json"] + [
                f"--{k.replace('_', '-')}={v}" for k, v in ALL_FAULTS.items()]  # fmt: skip
    assert main(args) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["mode"] == "live" and summary["traces"] > 0
    consumed = consume(kafka_bootstrap, topic, "live-sim-group", db, until_idle=3.0)
    assert consumed.read == summary["messages"]
    state = _db_state(db)
    rows = truth_rows(truth)
    assert state["events"] == collections.Counter(tuple(r[k] for k in SIX) for r in rows)
    exp = summary["expected"]
    assert (state["orphans"], state["quarantined"], state["duplicates"]) == (
        exp["orphans"], exp["quarantined"], exp["duplicates"]
    )  # fmt: skip


def test_open_live_closes_its_kafka_client_when_the_monitor_fails(
    kafka_bootstrap: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """open_live makes the lag client; when the monitor then refuses its options, the client
    (a real connection to the broker) is closed instead of leaking with the notebook kernel."""
    from tracelab import notebook
    from tracelab.errors import TracelabError
    from tracelab.kafka import PartitionLag

    closed: list[PartitionLag] = []
    real_close = PartitionLag.close

    def close(self: PartitionLag) -> None:
        closed.append(self)
        real_close(self)

    monkeypatch.setattr(PartitionLag, "close", close)
    db, _truth = notebook.example_db()
    with pytest.raises(TracelabError, match="refresh_s"):
        notebook.open_live(db, bootstrap=kafka_bootstrap, topic="live-close", refresh_s=0)
    assert len(closed) == 1 and closed[0]._consumer._closed
