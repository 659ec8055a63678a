"""The simulator: seed formats, determinism, faults at 0 and 1, statistics, truth vs normalizer."""

from __future__ import annotations

import collections
import copy
import json
import re
import sqlite3
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tracelab import config
from tracelab.cli import main
from tracelab.errors import ConfigError
from tracelab.simulate import FAULT_NAMES, Faults, corrupt, simulate, truth_summary_path
from tracelab.simulate.emitters import compile_system, fill, format_ms
from tracelab.simulate.flows import Flow, load_flow, parse_flow
from tracelab.simulate.sinks import FileSink, ListSink
from tracelab.styles import default_registry
from tracelab.styles.emit import render, split

SIX = ("system_id", "checkpoint_id", "timestamp", "status", "correlation_id", "failure_reason")
TEXT_RE = re.compile(
    r"(?P<ts>\S+) (?P<label>[A-Z]+)(?:: (?P<cp>\S+) - (?P<status>\w+)| (?P=label)_ERROR:)"
    r" \(ID: (?P<cid>[^)]+)\)(?: - (?P<reason>.*))?\Z"
)


@pytest.fixture(scope="module")
def flow() -> Flow:
    return load_flow(config.DEFAULT_FLOW)


def run(flow: Flow, traces: int = 300, seed: int = 1, **faults: Any) -> tuple[list[bytes], dict]:
    sink = ListSink()
    result = simulate(flow, traces, seed, Faults(**faults), sink)
    return [m[0] for m in sink.messages], result.summary


def parse(line: bytes) -> dict[str, Any] | None:
    """What a test needs to know of one emitted line (None when it is malformed)."""
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if text.startswith("{"):
        try:
            d = json.loads(text)
        except ValueError:
            return None
        if d.get("status", "SUCCESS") not in ("SUCCESS", "FAILURE"):
            return None
        detail = "checkpoint" not in d
        return {
            "system": d["system"],
            "detail": detail,
            "cid": d["correlation_id"],
            "ts": d.get("timestamp"),
            "checkpoint": d.get("checkpoint"),
            "status": d.get("status"),
            "reason": d.get("failure_reason"),
        }
    m = TEXT_RE.match(text)
    if m is None or m["status"] not in (None, "SUCCESS", "FAILURE"):
        return None
    detail = m["cp"] is None
    if detail and m["reason"] is None:
        return None
    system = {"ORDER": "orders", "PAYMENTS": "payments"}[m["label"]]
    return {
        "system": system,
        "detail": detail,
        "cid": m["cid"],
        "ts": m["ts"],
        "checkpoint": m["cp"],
        "status": m["status"],
        "reason": m["reason"],
    }


# ---------------------------------------------------------------------------- formats


TS = "2025-05-04T10:30:00.123"


def write(style: str, system: str, cp: str | None, status: str | None, cid: str,
          reason: str | None = None, detail: bool = False) -> str:  # fmt: skip
    """A line of a built-in style, written through the registry."""
    st_ = default_registry().styles[style]
    part = st_.detail if detail else st_.event
    tpl = split(render(st_, part, system=system, checkpoint=cp, status=status, reason=reason))
    return fill(tpl, TS, cid)


def test_builtin_styles_write_the_seed_formats() -> None:
    assert write("json-separate", "inventory", "CHECKPOINT_1", "FAILURE", "abc-123") == (
        '{"system": "inventory", "checkpoint": "CHECKPOINT_1", "status": "FAILURE", '
        '"timestamp": "2025-05-04T10:30:00.123", "correlation_id": "abc-123"}'
    )
    assert write("json-separate", "inventory", None, None, "abc-123", "FAILURE_REASON_2",
                 detail=True) == (
        '{"system": "inventory", "correlation_id": "abc-123", "failure_reason": "FAILURE_REASON_2"}'
    )  # fmt: skip
    assert write(
        "json-inline", "reporting", "REPORTING_CHECKPOINT_2", "FAILURE", "ghi-789",
        "REPORTING_FAILURE_REASON_2",
    ) == (
        '{"system": "reporting", "checkpoint": "REPORTING_CHECKPOINT_2", "status": "FAILURE", '
        '"timestamp": "2025-05-04T10:30:00.123", "correlation_id": "ghi-789", '
        '"failure_reason": "REPORTING_FAILURE_REASON_2"}'
    )  # fmt: skip
    assert "failure_reason" not in write("json-inline", "reporting", "R", "SUCCESS", "g")
    assert write("text-inline", "orders", "CHECKPOINT_B", "FAILURE", "abc-123",
                 "FAILURE_REASON_X") == (
        "2025-05-04T10:30:00.123 ORDER: CHECKPOINT_B - FAILURE (ID: abc-123) - FAILURE_REASON_X"
    )  # fmt: skip
    assert write("text-inline", "orders", "CHECKPOINT_A", "SUCCESS", "abc-123") == (
        "2025-05-04T10:30:00.123 ORDER: CHECKPOINT_A - SUCCESS (ID: abc-123)"
    )
    assert write("text-separate", "payments", "PAYMENTS_CHECKPOINT_2", "FAILURE", "def-456") == (
        "2025-05-04T10:30:00.123 PAYMENTS: PAYMENTS_CHECKPOINT_2 - FAILURE (ID: def-456)"
    )
    assert write("text-separate", "payments", None, None, "def-456", "PAYMENTS_FAILURE_REASON_1",
                 detail=True) == (
        "2025-05-04T10:30:00.123 PAYMENTS PAYMENTS_ERROR: (ID: def-456) - PAYMENTS_FAILURE_REASON_1"
    )  # fmt: skip


def test_json_reasons_keep_utf8_and_escape_quotes() -> None:
    line = write("json-separate", "inventory", None, None, "c", 'Entrepôt "B" 100%', detail=True)
    assert json.loads(line)["failure_reason"] == 'Entrepôt "B" 100%'
    assert "Entrepôt" in line


def test_compiled_templates_equal_the_style_lines(flow: Flow) -> None:
    styles = flow.styles.styles
    for system in flow.systems.values():
        c = compile_system(system, styles[system.style])
        for i, cp in enumerate(system.checkpoints):
            ok = fill(c.success[i], TS, "cid-1")
            assert ok == write(system.style, system.name, cp.name, "SUCCESS", "cid-1")
            for r, reason in enumerate(cp.reasons):
                bad = fill(c.failure[i][r], TS, "cid-1")
                if system.style == "json-inline":
                    assert json.loads(bad)["failure_reason"] == reason
                elif system.style == "text-inline":
                    assert bad.endswith(f"(ID: cid-1) - {reason}")
                else:
                    detail = fill(c.detail[i][r], TS, "cid-1")
                    want = write(system.style, system.name, None, None, "cid-1", reason, True)
                    assert detail == want


def test_format_ms() -> None:
    assert format_ms(1746354600123) == "2025-05-04T10:30:00.123"
    assert format_ms(1746354600000) == "2025-05-04T10:30:00.000"


@pytest.mark.parametrize("mode", [0, 1])
def test_corrupt_lines_are_unreadable(flow: Flow, mode: int) -> None:
    lines, _ = run(flow, 50, 3, orphan_detail=1.0, detail_first=0.0)
    for raw in lines:
        bad = corrupt(raw.decode("utf-8"), mode).encode("utf-8", "surrogateescape")
        assert parse(bad) is None, bad


# ---------------------------------------------------------------------------- engine


def test_every_line_is_one_of_the_seed_formats_and_traces_are_consistent(flow: Flow) -> None:
    lines, summary = run(flow, 400, 5)
    assert summary["messages"] == len(lines)
    parsed = [parse(x) for x in lines]
    assert all(p is not None for p in parsed)
    by_trace: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
    for p in parsed:
        by_trace[p["cid"]].append(p)
    assert len(by_trace) == 400
    uuid_re = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")
    assert all(uuid_re.fullmatch(c) for c in by_trace)
    overlapping = 0
    for msgs in by_trace.values():
        first = msgs[0]
        assert first["system"] == "inventory" and first["checkpoint"] == "INITIATED"
        per_sys: dict[str, list[str]] = collections.defaultdict(list)
        for m in msgs:
            if m["ts"] is not None:
                per_sys[m["system"]].append(m["ts"])
        for stamps in per_sys.values():  # one system's clock only moves forward
            assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)
        if "reporting" in per_sys and "orders" in per_sys:
            r, o = per_sys["reporting"], per_sys["orders"]
            if r[0] < o[-1] and o[0] < r[-1]:
                overlapping += 1
        if "payments" in per_sys:  # path a: payments finishes before reporting/orders start
            later = per_sys.get("reporting", []) + per_sys.get("orders", [])
            assert all(t > per_sys["payments"][-1] for t in later)
    assert overlapping > 100  # parallel branches overlap in time


def test_emission_order_is_timestamp_order_without_faults(flow: Flow) -> None:
    lines, _ = run(flow, 500, 9)
    stamps = [p["ts"] for p in map(parse, lines) if p["ts"] is not None]
    assert stamps == sorted(stamps)
    assert len({p["cid"] for p in map(parse, lines)}) == 500


def test_same_seed_same_bytes_other_seed_other_bytes(flow: Flow, tmp_path: Path) -> None:
    faults = Faults(duplicate=0.05, detail_first=0.1, missing_detail=0.1, orphan_detail=0.1,
                    malformed=0.02, clock_skew=300)  # fmt: skip
    outs = []
    for i, seed in enumerate((42, 42, 43)):
        out = tmp_path / f"{i}.log"
        truth = tmp_path / f"{i}.truth.jsonl"
        with FileSink(out) as sink:
            simulate(flow, 500, seed, faults, sink, truth_path=truth)
        outs.append((out.read_bytes(), truth.read_bytes(), truth_summary_path(truth).read_bytes()))
    assert outs[0] == outs[1]
    assert outs[0][0] != outs[2][0] and outs[0][1] != outs[2][1]
    # the generic sink path writes the same bytes as the file fast path
    sink = ListSink()
    simulate(flow, 500, 42, faults, sink)
    assert sink.values() == outs[0][0]


def test_retries_then_success_and_exhausted_retries_end_the_trace(flow: Flow) -> None:
    lines, _ = run(flow, 2000, 11)
    seq: dict[tuple[str, str], list[tuple[str, str]]] = collections.defaultdict(list)
    for p in map(parse, lines):
        if not p["detail"]:
            seq[(p["cid"], p["system"])].append((p["checkpoint"], p["status"]))
    retried = 0
    for steps in seq.values():
        for (cp, status), (cp2, status2) in zip(steps, steps[1:], strict=False):
            if status == "FAILURE":
                assert cp2 == cp  # a failure is followed by a retry of the same checkpoint
                retried += status2 == "SUCCESS"
    assert retried > 50
    data = {
        "systems": {
            "inventory": {
                "style": "json-separate",
                "retry": {"limit": 2},
                "checkpoints": [
                    "INITIATED",
                    {"name": "CHECKPOINT_1", "failure_probability": 1, "reasons": ["always"]},
                    "FINALIZED",
                ],
            },  # fmt: skip
            "orders": {"style": "text-inline", "checkpoints": ["ORDER_INITIALIZED"]},
        },
        "routing": {
            "entry": ["inventory"],
            "paths": {"a": {"probability": 1, "stages": ["orders"]}},
        },
    }
    lines, summary = run(parse_flow(data), 20, 1)
    parsed = [parse(x) for x in lines]
    assert {p["system"] for p in parsed} == {"inventory"}
    fails = [p for p in parsed if p["status"] == "FAILURE"]
    assert len(fails) == 20 * 3  # first attempt + 2 retries
    assert not any(p["checkpoint"] == "FINALIZED" for p in parsed)
    assert summary["stopped_in"]["inventory"] == 20
    assert summary["paths"] == {"a": 0}


def test_path_shares_and_failure_probabilities_hold_over_10k_traces(flow: Flow) -> None:
    data = yaml.safe_load(config.DEFAULT_FLOW.read_text(encoding="utf-8"))
    data["routing"]["paths"]["a"]["probability"] = 0.3
    data["routing"]["paths"]["b"]["probability"] = 0.7
    custom = parse_flow(data)
    lines, summary = run(custom, 10_000, 2)
    reached = sum(summary["paths"].values())
    assert reached == 10_000 - summary["stopped_in"]["inventory"]
    assert summary["paths"]["a"] / reached == pytest.approx(0.3, abs=0.02)
    # first attempts of PAYMENTS_CHECKPOINT_2 fail with the declared probability (0.22)
    first: dict[str, str] = {}
    for p in map(parse, lines):
        if p["checkpoint"] == "PAYMENTS_CHECKPOINT_2" and p["cid"] not in first:
            first[p["cid"]] = p["status"]
    share = sum(s == "FAILURE" for s in first.values()) / len(first)
    assert len(first) > 2500  # ~0.3 of the traces reach it
    assert share == pytest.approx(0.22, abs=0.025)
    reasons = collections.Counter(
        p["reason"] for p in map(parse, lines) if p["system"] == "payments" and p["detail"]
    )
    # weights 4:2:1:1 of PAYMENTS_CHECKPOINT_2 dominate the payments details
    assert (
        reasons["PAYMENTS_FAILURE_REASON_1"]
        > reasons["Insufficient funds - code 51"]
        > (reasons["3-D Secure challenge failed (user cancelled)"])
    )


# ---------------------------------------------------------------------------- faults


def _separate_subsequences(lines: list[bytes]) -> dict[tuple[str, str], list[dict[str, Any]]]:
    out: dict[tuple[str, str], list[dict[str, Any]]] = collections.defaultdict(list)
    for p in map(parse, lines):
        if p is not None and p["system"] in ("inventory", "payments"):
            out[(p["cid"], p["system"])].append(p)
    return out


def test_fault_rates_zero_inject_nothing(flow: Flow) -> None:
    base, summary = run(flow, 400, 4)
    again, _ = run(flow, 400, 4, **{n: 0 for n in FAULT_NAMES})
    assert base == again
    assert all(v == 0 for v in summary["faults"].values())
    exp = summary["expected"]
    assert exp["orphans"] == exp["quarantined"] == 0
    assert all(parse(x) is not None for x in base)
    fails = sum(
        1
        for p in map(parse, base)
        if p["status"] == "FAILURE" and p["system"] in ("inventory", "payments")
    )
    details = sum(1 for p in map(parse, base) if p["detail"])
    assert details == fails  # every separate failure gets its detail
    # without injected duplicates the only repeated lines are identical inventory details
    assert len(base) - len(set(base)) == exp["duplicates"]


def test_duplicate_one_delivers_every_message_twice(flow: Flow) -> None:
    base, s0 = run(flow, 300, 4)
    lines, s1 = run(flow, 300, 4, duplicate=1.0)
    assert len(lines) == 2 * len(base)
    assert collections.Counter(lines) == collections.Counter(base + base)
    assert s1["faults"]["duplicate"] == len(base)
    assert s1["expected"]["duplicates"] == len(base) + s0["expected"]["duplicates"]
    assert s1["expected"]["events"] == s0["expected"]["events"]
    first_seen = {line: i for i, line in reversed(list(enumerate(lines)))}
    assert all(first_seen[line] <= i for i, line in enumerate(lines))


def test_detail_first_one_puts_every_detail_before_its_failure(flow: Flow) -> None:
    lines, s = run(flow, 400, 6, detail_first=1.0)
    _, s0 = run(flow, 400, 6)
    n = 0
    for seq in _separate_subsequences(lines).values():
        for a, b in zip(seq, seq[1:], strict=False):
            if a["detail"]:
                assert b["status"] == "FAILURE"
                n += 1
        assert not seq[-1]["detail"]
    assert n == s["faults"]["detail_first"] > 0
    assert s["expected"]["joined"] == s0["expected"]["joined"]
    for seq in _separate_subsequences(run(flow, 400, 6)[0]).values():
        for a, b in zip(seq, seq[1:], strict=False):
            if b["detail"]:
                assert a["status"] == "FAILURE"


def test_missing_detail_one_sends_no_detail(flow: Flow) -> None:
    lines, s = run(flow, 400, 7, missing_detail=1.0)
    parsed = [parse(x) for x in lines]
    assert not any(p["detail"] for p in parsed)
    fails = sum(
        1 for p in parsed if p["status"] == "FAILURE" and p["system"] in ("inventory", "payments")
    )
    assert s["faults"]["missing_detail"] == fails > 0
    assert s["expected"]["awaiting_detail"] == fails
    assert s["expected"]["joined"] == 0


def test_orphan_detail_one_adds_one_orphan_per_trace(flow: Flow) -> None:
    lines, s = run(flow, 300, 8, orphan_detail=1.0)
    base, _ = run(flow, 300, 8)
    parsed = [parse(x) for x in lines]
    event_cids = {p["cid"] for p in parsed if not p["detail"]}
    orphans = [p for p in parsed if p["detail"] and p["cid"] not in event_cids]
    assert len(orphans) == 300 == s["faults"]["orphan_detail"] == s["expected"]["orphans"]
    assert len(lines) == len(base) + 300
    assert {p["system"] for p in orphans} == {"inventory", "payments"}


def test_malformed_one_quarantines_everything(flow: Flow) -> None:
    lines, s = run(flow, 200, 9, malformed=1.0)
    assert all(parse(x) is None for x in lines)
    exp = s["expected"]
    assert exp["events"] == exp["joined"] == exp["orphans"] == 0
    assert exp["quarantined"] + exp["duplicates"] == len(lines) == s["faults"]["malformed"]
    assert any(b"\xff" in x for x in lines) and any(b"\xff" not in x for x in lines)


def test_clock_skew_shifts_each_system_by_a_fixed_offset(flow: Flow) -> None:
    base, _ = run(flow, 200, 10)
    lines, s = run(flow, 200, 10, clock_skew=500)
    skew = s["clock_skew_ms"]
    assert all(abs(v) <= 500 for v in skew.values()) and any(skew.values())
    assert len(lines) == len(base)
    from datetime import datetime, timedelta

    for a, b in zip(base, lines, strict=True):
        pa, pb = parse(a), parse(b)
        assert (pa["cid"], pa["checkpoint"], pa["status"]) == (
            pb["cid"],
            pb["checkpoint"],
            pb["status"],
        )
        if pa["ts"] is not None:
            shift = datetime.fromisoformat(pb["ts"]) - datetime.fromisoformat(pa["ts"])
            assert shift == timedelta(milliseconds=skew[pa["system"]])
    _, s0 = run(flow, 200, 10, clock_skew=0)
    assert not any(s0["clock_skew_ms"].values())


@pytest.mark.parametrize(
    "bad",
    [
        {"duplicate": 1.5},
        {"malformed": -0.1},
        {"clock_skew": -1},
        {"clock_skew": 2.5},
        {"orphan_detail": "x"},
    ],
)
def test_fault_validation(bad: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        Faults(**bad)


# ---------------------------------------------------------------------------- truth


def _db_state(db: Path) -> dict[str, Any]:
    con = sqlite3.connect(db)
    try:
        events = collections.Counter(con.execute(f"SELECT {', '.join(SIX)} FROM events").fetchall())
        orphans = con.execute("SELECT count(*) FROM orphan_details").fetchone()[0]
        quarantined = con.execute("SELECT count(*) FROM quarantine").fetchone()[0]
        counters = dict(con.execute("SELECT name, value FROM counters").fetchall())
        awaiting = con.execute(
            "SELECT count(*) FROM events WHERE status = 'FAILURE' AND failure_reason IS NULL"
        ).fetchone()[0]
    finally:
        con.close()
    return {"events": events, "orphans": orphans, "quarantined": quarantined,
            "duplicates": counters.get("duplicates"), "awaiting": awaiting}  # fmt: skip


ALL = {"duplicate": 0.05, "detail_first": 0.15, "missing_detail": 0.1, "orphan_detail": 0.1,
       "malformed": 0.03, "clock_skew": 400}  # fmt: skip
TRUTH_CASES: dict[str, tuple[str, dict[str, Any]]] = {
    "clean": ("default.yaml", {}),
    "all-faults": ("default.yaml", ALL),
    "heavy": ("default.yaml", {"duplicate": 0.4, "detail_first": 0.5, "missing_detail": 0.4,
                               "orphan_detail": 0.6, "malformed": 0.15, "clock_skew": 3000}),
    "flaky-flow-all-faults": ("flaky.yaml", ALL),
}  # fmt: skip


@pytest.mark.parametrize("case", list(TRUTH_CASES))
def test_truth_equals_what_normalize_stores(tmp_path: Path, case: str) -> None:
    from tracelab.ingest.pipeline import normalize_files

    raw, truth, db = tmp_path / "run.log", tmp_path / "run.truth.jsonl", tmp_path / "run.db"
    with FileSink(raw) as sink:
        file, faults = TRUTH_CASES[case]
        flow = load_flow(config.FLOWS_DIR / file)
        result = simulate(flow, 1500, 21, Faults(**faults), sink, truth_path=truth)
    summary = normalize_files([raw], db, progress=False)
    state = _db_state(db)
    rows = [json.loads(line) for line in truth.read_text(encoding="utf-8").splitlines()]
    assert all(list(r) == list(SIX) for r in rows)
    expected = collections.Counter(tuple(r[k] for k in SIX) for r in rows)
    assert state["events"] == expected
    exp = result.summary["expected"]
    assert exp["events"] == len(rows)
    assert state["orphans"] == exp["orphans"]
    assert state["quarantined"] == exp["quarantined"]
    assert state["duplicates"] == exp["duplicates"]
    assert state["awaiting"] == exp["awaiting_detail"]
    assert (
        summary.read
        == result.messages
        == sum(exp[k] for k in ("events", "joined", "orphans", "duplicates", "quarantined"))
    )
    assert summary.joined == exp["joined"]
    on_disk = json.loads(truth_summary_path(truth).read_text(encoding="utf-8"))
    assert on_disk == json.loads(json.dumps(result.summary))
    if case != "clean":
        assert all(on_disk["faults"][n] > 0 for n in FAULT_NAMES[:-1])


def test_truth_timestamps_are_in_the_stored_form(flow: Flow, tmp_path: Path) -> None:
    truth = tmp_path / "t.jsonl"
    simulate(flow, 50, 1, Faults(clock_skew=100), None, truth_path=truth)
    for line in truth.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", row["timestamp"])
        assert row["timestamp"].endswith("000Z")
        assert (row["failure_reason"] is None) == (row["status"] == "SUCCESS")


def test_a_new_system_in_a_builtin_style_is_expected_as_events(flow: Flow) -> None:
    data = yaml.safe_load(config.DEFAULT_FLOW.read_text(encoding="utf-8"))
    data["systems"]["shipping"] = {"style": "json-inline", "checkpoints": ["SHIP_START"]}
    data["routing"]["entry"] = ["inventory", "shipping"]
    lines, s = run(parse_flow(data), 50, 1)
    shipping = [x for x in lines if b'"system": "shipping"' in x]
    assert len(shipping) == 50 - s["stopped_in"]["inventory"]
    assert s["expected"]["quarantined"] == 0
    assert s["expected"]["events"] + s["expected"]["joined"] == len(lines)


# ---------------------------------------------------------------------------- CLI and sinks


def test_cli_simulate_writes_raw_truth_and_summary(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, truth = tmp_path / "raw.log", tmp_path / "truth.jsonl"
    args = ["simulate", "--traces", "120", "--seed", "5", "--flow", str(config.DEFAULT_FLOW),
            "--out", str(out), "--truth", str(truth), "--duplicate", "0.1", "--clock-skew", "20",
            "--no-progress", "--json"]  # fmt: skip
    assert main(args) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["traces"] == 120
    assert summary["fault_rates"]["duplicate"] == 0.1
    assert out.read_bytes().count(b"\n") == summary["messages"]
    assert truth.read_text(encoding="utf-8").count("\n") == summary["expected"]["events"]
    first = out.read_bytes()
    assert main(args) == 0
    assert out.read_bytes() == first


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--traces", "1", "--out", "x", "--duplicate", "2"], "a rate between 0 and 1"),
        (["--traces", "-3", "--out", "x"], "must be >= 0"),
    ],
)
def test_cli_rejects_bad_arguments(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        main(["simulate", *args])
    assert info.value.code == 2
    assert message in capsys.readouterr().err


def test_cli_needs_a_destination(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("TRACELAB_BOOTSTRAP", raising=False)
    assert main(["simulate", "--traces", "1", "--no-progress"]) == 1
    assert "give --out FILE or --bootstrap HOST:PORT (or set TRACELAB_BOOTSTRAP)" in (
        capsys.readouterr().err
    )


def test_cli_kafka_config_file_is_read_before_connecting(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "client.properties"
    bad.write_text("security.protocol=SSL\nno.such.setting=1\n", encoding="utf-8")
    args = ["simulate", "--traces", "1", "--bootstrap", "127.0.0.1:1", "--kafka-config", str(bad)]
    assert main([*args, "--no-progress"]) == 1
    assert "unknown Kafka setting(s): no_such_setting" in capsys.readouterr().err


def test_cli_bad_flow_is_a_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    data = yaml.safe_load(config.DEFAULT_FLOW.read_text(encoding="utf-8"))
    bad_data = copy.deepcopy(data)
    bad_data["systems"]["orders"]["style"] = "csv"
    bad.write_text(yaml.safe_dump(bad_data, allow_unicode=True), encoding="utf-8")
    code = main(["simulate", "--flow", str(bad), "--out", str(tmp_path / "o.log")])
    assert code != 0
    err = capsys.readouterr().err
    assert "systems.orders.style: must be one of" in err
    assert "Traceback" not in err


def test_file_sink_and_list_sink(tmp_path: Path) -> None:
    p = tmp_path / "sub" / "o.log"
    with FileSink(p) as sink:
        sink.write(b"one", key="c1", system="orders")
        sink.write_many([b"two", b"three"], ["c2", "c3"], ["orders", "payments"])
        sink.write_lines(["f\u00fcnf", "bad \udcff byte"])
    assert p.read_bytes() == b"one\ntwo\nthree\nf\xc3\xbcnf\nbad \xff byte\n"
    assert sink.count == 5
    sink.close()  # idempotent
    ls = ListSink()
    with ls:
        ls.write_many([b"a"], ["k"], ["inventory"])
    assert ls.messages == [(b"a", "k", "inventory")]
    with pytest.raises(ConfigError):
        FileSink(p / "cannot" / "be")  # a file used as a folder


RATES = st.sampled_from([0.0, 0.01, 0.2, 1.0])


@settings(
    max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    rates=st.fixed_dictionaries(
        {n: RATES for n in FAULT_NAMES[:-1]} | {"clock_skew": st.sampled_from([0, 7, 4000])}
    ),
    seed=st.integers(0, 10_000),
    file=st.sampled_from(["default.yaml", "flaky.yaml"]),
)
def test_truth_equals_normalize_for_any_fault_mix(
    tmp_path_factory: pytest.TempPathFactory, rates: dict[str, Any], seed: int, file: str
) -> None:
    from tracelab.ingest.pipeline import normalize_files

    d = tmp_path_factory.mktemp("mix")
    raw, truth, db = d / "r.log", d / "r.truth.jsonl", d / "r.db"
    with FileSink(raw) as sink:
        result = simulate(load_flow(config.FLOWS_DIR / file), 120, seed, Faults(**rates), sink,
                          truth_path=truth)  # fmt: skip
    summary = normalize_files([raw], db, progress=False)
    state = _db_state(db)
    rows = [json.loads(x) for x in truth.read_text(encoding="utf-8").splitlines()]
    assert state["events"] == collections.Counter(tuple(r[k] for k in SIX) for r in rows)
    exp = result.summary["expected"]
    assert (summary.joined, summary.orphans, summary.duplicates, summary.quarantined) == (
        exp["joined"], exp["orphans"], exp["duplicates"], exp["quarantined"]
    )  # fmt: skip


@pytest.mark.kafka
def test_cli_simulate_to_kafka_then_consume_equals_truth(
    kafka_bootstrap: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tracelab.kafka import consume

    topic, truth, db = "sim-cli-test", tmp_path / "t.jsonl", tmp_path / "k.db"
    args = ["simulate", "--traces", "300", "--seed", "13", "--bootstrap", kafka_bootstrap,
            "--topic", topic, "--partitions", "3", "--truth", str(truth), "--no-progress",
            "--json"] + [f"--{k.replace('_', '-')}={v}" for k, v in ALL.items()]  # fmt: skip
    assert main(args) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    consumed = consume(kafka_bootstrap, topic, "sim-cli-group", db, until_idle=3.0)
    assert consumed.read == summary["messages"]
    state = _db_state(db)
    rows = [json.loads(x) for x in truth.read_text(encoding="utf-8").splitlines()]
    assert state["events"] == collections.Counter(tuple(r[k] for k in SIX) for r in rows)
    exp = summary["expected"]
    assert (state["orphans"], state["quarantined"], state["duplicates"]) == (
        exp["orphans"], exp["quarantined"], exp["duplicates"]
    )  # fmt: skip


@pytest.mark.kafka
def test_cli_simulate_sends_to_tracelab_bootstrap_when_no_destination_is_given(
    kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from tracelab.kafka import topic_overview

    monkeypatch.setenv("TRACELAB_BOOTSTRAP", kafka_bootstrap)
    topic = "sim-env-bootstrap"
    args = ["simulate", "--traces", "20", "--seed", "3", "--topic", topic, "--partitions", "2",
            "--no-progress", "--json"]  # fmt: skip
    assert main(args) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["messages"] > 0
    assert int(topic_overview(kafka_bootstrap, topic)["messages"].sum()) == summary["messages"]
