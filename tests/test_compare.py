"""Compare and explain (analysis.cohorts, compare, variants, runcompare, explain_plots; runs)
against databases built by the real pipeline; expectations come from the simulator's truth,
computed independently in plain Python. Real DuckDB over real SQLite, no mocks.
"""

from __future__ import annotations

import json
import random
import sqlite3
from collections import Counter, defaultdict
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import nbformat
import pytest
import yaml

from tracelab import analysis, notebook
from tracelab.analysis import cohorts, compare, explain_plots, variants
from tracelab.analysis.duck import connect, system_order
from tracelab.cli import main
from tracelab.config import DEFAULT_FLOW
from tracelab.errors import AnalysisError, FlowError
from tracelab.ingest.pipeline import normalize_files
from tracelab.ingest.store import SQLiteStore
from tracelab.reports import manifest
from tracelab.simulate import Faults, simulate
from tracelab.simulate.flows import load_flow, parse_flow
from tracelab.simulate.sinks import FileSink
from tracelab.timefmt import format_datetime

PLOTLY = "application/vnd.plotly.v1+json"


def _ts_us(text: str) -> int:
    dt = datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ")  # UTC
    return (dt - datetime(1970, 1, 1)) // timedelta(microseconds=1)


def _truth(path: Path) -> dict[str, list[dict[str, Any]]]:
    by_trace: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for line in path.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        row["us"] = _ts_us(row["timestamp"])
        by_trace[row["correlation_id"]].append(row)
    return by_trace


def _outcome(rows: list[dict[str, Any]]) -> str:
    last: dict[str, tuple[int, int]] = {}
    for r in rows:
        key = (r["us"], 1 if r["status"] == "FAILURE" else 0)
        last[r["system_id"]] = max(last.get(r["system_id"], key), key)
    return "FAILURE" if any(v[1] for v in last.values()) else "SUCCESS"


def _build(tmp: Path, flow_data: dict[str, Any] | None, traces: int, seed: int,
           faults: Faults | None = None, host_for: Any = None) -> tuple[Path, Path]:  # fmt: skip
    """Simulate to a file (optionally giving every inventory JSON line a ``host`` chosen by
    ``host_for(correlation_id)``), normalize it; returns (database, truth)."""
    flow = parse_flow(flow_data) if flow_data is not None else load_flow(DEFAULT_FLOW)
    raw, truth, db = tmp / "run.log", tmp / "run.truth.jsonl", tmp / "run.db"
    with FileSink(raw) as sink:
        simulate(flow, traces, seed, faults or Faults(), sink, truth_path=truth)
    if host_for is not None:
        out = []
        for line in raw.read_text(encoding="utf-8").splitlines():
            if line.startswith('{"system": "inventory"') and '"checkpoint"' in line:
                row = json.loads(line)
                row["host"] = host_for(row["correlation_id"])
                line = json.dumps(row)
            out.append(line)
        raw.write_text("\n".join(out) + "\n", encoding="utf-8")
    normalize_files([raw], db, progress=False)
    return db, truth


@pytest.fixture(scope="module")
def default_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    db, truth = _build(tmp_path_factory.mktemp("cmp"), None, 400, 5)
    return db, _truth(truth)


@pytest.fixture(scope="module")
def con(default_run: tuple[Path, Any]) -> duckdb.DuckDBPyConnection:
    c = connect(default_run[0])
    yield c
    c.close()


# -------------------------------------------------------------------------- injected causes


def test_a_failure_cause_on_one_host_is_the_top_dimension(tmp_path: Path) -> None:
    """Every trace that ends in FAILURE ran its inventory on host inv-3 (and only one in ten of
    the others did): failed vs the rest must rank the host attribute first, above the
    consequences of failing (checkpoints not reached, outcomes per system). The flaky flow fails
    in every system, so no single consequence is shared by all failed traces."""
    flaky = yaml.safe_load((DEFAULT_FLOW.parent / "flaky.yaml").read_text(encoding="utf-8"))
    pilot = tmp_path / "pilot"
    pilot.mkdir()
    _, truth_path = _build(pilot, flaky, 600, 9)
    outcome = {cid: _outcome(rows) for cid, rows in _truth(truth_path).items()}
    rnd = random.Random(1)
    hosts = {
        cid: "inv-3" if o == "FAILURE" or rnd.random() < 0.1 else rnd.choice(["inv-1", "inv-2"])
        for cid, o in outcome.items()
    }
    db, _ = _build(tmp_path, flaky, 600, 9, host_for=hosts.__getitem__)
    con = connect(db)
    compared = compare.compare_cohorts(con, {"outcome": "FAILURE"})
    ranking = compare.dimension_ranking(compared)
    top = ranking.iloc[0]
    assert top["dimension"] == "attribute host" and top["value"] == "inv-3"
    failed = [c for c, o in outcome.items() if o == "FAILURE"]
    assert top["selection_share"] == 1.0
    rest = [c for c, o in outcome.items() if o == "SUCCESS"]
    assert top["baseline_share"] == pytest.approx(
        sum(hosts[c] == "inv-3" for c in rest) / len(rest)
    )
    row = compared[(compared["dimension"] == "attribute host") & (compared["value"] == "inv-3")]
    assert int(row["selection_traces"].iloc[0]) == len(failed)


SLOW_FLOW: dict[str, Any] = {
    "name": "slow-payments",
    "arrival_ms": 100,
    "systems": {
        "inventory": {"style": "json-separate", "latency_ms": 20,
                      "checkpoints": ["INITIATED", "FINALIZED"]},
        "payments": {"style": "text-separate", "latency_ms": 30,
                     "checkpoints": ["PAYMENTS_CHECKPOINT_1",
                                     {"name": "PAYMENTS_CHECKPOINT_2", "latency_ms": 3000,
                                      "max_gap_ms": 2500},
                                     "PAYMENTS_FINALIZED"]},
        "orders": {"style": "text-inline", "latency_ms": {"dist": "uniform", "min": 10, "max": 60},
                   "checkpoints": ["ORDER_INITIALIZED", "ORDER_FINALIZED"]},
    },
    "routing": {"entry": ["inventory"],
                "paths": {"a": {"probability": 0.3, "stages": ["payments", "orders"]},
                          "b": {"probability": 0.7, "stages": ["orders"]}}},
}  # fmt: skip


@pytest.fixture(scope="module")
def slow_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    db, truth = _build(tmp_path_factory.mktemp("slow"), SLOW_FLOW, 300, 3)
    return db, _truth(truth)


def test_a_slow_checkpoint_on_one_path_explains_the_slow_traces(slow_run: Any) -> None:
    db, truth = slow_run
    con = connect(db)
    slow, typical = cohorts.Selection(min_ms=2000), cohorts.Selection(max_ms=1000)
    compared = compare.compare_cohorts(con, slow, typical)
    top = compare.dimension_ranking(compared).iloc[0]
    assert top["diff"] == 1.0  # every slow trace, no typical one
    assert "payments" in str(top["dimension"]) + str(top["value"]).lower()
    # where the time goes: the slow checkpoint's step changes most
    diff = compare.diff_cohorts(con, typical, slow)
    steps = diff[diff["level"] == "checkpoint"].set_index(["system_id", "checkpoint_id"])
    assert steps["b_ms"].idxmax() == ("payments", "PAYMENTS_CHECKPOINT_2")
    assert steps.loc[("payments", "PAYMENTS_CHECKPOINT_2"), "side"] == "b only"
    paid = [rows for rows in truth.values() if any(r["system_id"] == "payments" for r in rows)]
    gaps = sorted(
        next(r["us"] for r in rows if r["checkpoint_id"] == "PAYMENTS_CHECKPOINT_2")
        - next(r["us"] for r in rows if r["checkpoint_id"] == "PAYMENTS_CHECKPOINT_1")
        for rows in paid
    )
    median = (gaps[(len(gaps) - 1) // 2] + gaps[len(gaps) // 2]) / 2 / 1000
    assert steps.loc[("payments", "PAYMENTS_CHECKPOINT_2"), "b_ms"] == pytest.approx(median)
    assert diff.loc[diff["level"] == "trace", "b_traces"].iloc[0] == len(paid)


def test_declared_max_gap_flags_exactly_the_longer_steps(slow_run: Any) -> None:
    db, truth = slow_run
    flow = parse_flow(SLOW_FLOW)
    assert flow.systems["payments"].checkpoints[1].max_gap_ms == 2500.0
    con = connect(db)
    dev = variants.temporal_deviations(con, flow, k=50)
    assert not dev["beyond_k"].any()
    over = dev[dev["over_bound"]]
    assert set(over["dst"]) == {"PAYMENTS_CHECKPOINT_2"}
    assert len(over) == sum(
        1
        for rows in truth.values()
        if any(r["checkpoint_id"] == "PAYMENTS_CHECKPOINT_2" for r in rows)
    )
    assert (over["gap_ms"] > 2500).all()
    summary = variants.temporal_summary(dev, k=50)
    assert summary.set_index("kind").loc["gap over declared bound", "traces"] == len(over)


def test_max_gap_must_be_positive() -> None:
    bad = json.loads(json.dumps(SLOW_FLOW))
    bad["systems"]["payments"]["checkpoints"][1]["max_gap_ms"] = 0
    with pytest.raises(FlowError, match=r"checkpoints\[1\]\.max_gap_ms: must be > 0"):
        parse_flow(bad)


# ---------------------------------------------------------------------- against the truth


def _sequence(rows: list[dict[str, Any]], rank: dict[str, int]) -> list[tuple[str, str, int]]:
    order = sorted(range(len(rows)), key=lambda i: (rank[rows[i]["system_id"]], rows[i]["us"], i))
    return [(rows[i]["system_id"], rows[i]["checkpoint_id"], rows[i]["us"]) for i in order]


def _rank(db: Path) -> dict[str, int]:
    """The system order analysis derives from the database (any number of systems, any names)."""
    return {s: i for i, s in enumerate(system_order(db))}


def test_variants_match_the_truth(con: duckdb.DuckDBPyConnection, default_run: Any) -> None:
    truth, rank = default_run[1], _rank(default_run[0])
    expected = Counter(
        " > ".join(c for _, c, _ in _sequence(rows, rank)) for rows in truth.values()
    )
    table = variants.variants(con, top=None)
    assert dict(zip(table["variant"], table["traces"], strict=True)) == dict(expected)
    top = variants.variants(con, top=3)
    assert list(top["variant"][:3]) == list(table["variant"][:3])
    assert top["variant"].iloc[-1] == variants.OTHER
    assert int(top["traces"].sum()) == len(truth) and top["share"].sum() == pytest.approx(1.0)
    failed = sum(_outcome(rows) == "FAILURE" for rows in truth.values())
    assert int(top["failed"].sum()) == failed


def test_directly_follows_and_profile_match_the_truth(
    con: duckdb.DuckDBPyConnection, default_run: Any
) -> None:
    truth, rank = default_run[1], _rank(default_run[0])
    inner: dict[tuple[str, str, str], list[int]] = defaultdict(list)
    in_traces: dict[tuple[str, str, str], set[str]] = defaultdict(set)
    for cid, rows in truth.items():
        seq = _sequence(rows, rank)
        for (s0, c0, t0), (s1, c1, t1) in zip(seq, seq[1:], strict=False):
            if s0 == s1:
                inner[(s0, c0, c1)].append(t1 - t0)
                in_traces[(s0, c0, c1)].add(cid)
    edges = variants.directly_follows(con)
    same = edges[(edges["src_system"] == edges["dst_system"])]
    got = {(s, a, b): (n, t) for s, a, b, n, t in
           zip(same["src_system"], same["src"], same["dst"], same["steps"], same["traces"],
               strict=True)}  # fmt: skip
    assert got == {k: (len(v), len(in_traces[k])) for k, v in inner.items()}
    assert any(n > t for n, t in got.values())  # retries repeat a step within a trace
    starts = edges[edges["src"] == variants.START]
    assert int(starts["steps"].sum()) == len(truth)
    profile = variants.temporal_profile(con).set_index(["src_system", "src", "dst"])
    key = ("inventory", "INITIATED", "CHECKPOINT_1")
    gaps = inner[key]
    assert profile.loc[key, "mean_ms"] == pytest.approx(sum(gaps) / len(gaps) / 1000)
    # hand-offs: the payments span follows the inventory span that ended before it
    hand = edges[(edges["src_system"] == "inventory") & (edges["dst_system"] == "payments")]
    paid = sum(any(r["system_id"] == "payments" for r in rows) for rows in truth.values())
    assert int(hand["steps"].sum()) == paid


def test_retries_and_checkpoints_reached_match_the_truth(
    con: duckdb.DuckDBPyConnection, default_run: Any
) -> None:
    """Failed vs the rest: traces per retries count and per checkpoint reached, from the truth
    (a retry is an event of a checkpoint its system already logged in the trace)."""
    truth = default_run[1]
    compared = compare.compare_cohorts(con, {"outcome": "FAILURE"})
    expected: Counter[tuple[str, str, bool]] = Counter()
    for rows in truth.values():
        failed = _outcome(rows) == "FAILURE"
        reached = {f"{r['system_id']} / {r['checkpoint_id']}" for r in rows}
        retries = len(rows) - len(reached)
        retry_value = f"{compare.RETRIES_CAP}+" if retries >= compare.RETRIES_CAP else str(retries)
        expected[("retries", retry_value, failed)] += 1
        for value in reached:
            expected[("checkpoint reached", value, failed)] += 1
    assert any(k[0] == "retries" and k[1] != "0" for k in expected)
    got: Counter[tuple[str, str, bool]] = Counter()
    for d, v, n1, n0 in zip(compared["dimension"], compared["value"],
                            compared["selection_traces"], compared["baseline_traces"],
                            strict=True):  # fmt: skip
        if d in ("retries", "checkpoint reached"):
            got[(d, v, True)] += int(n1)
            got[(d, v, False)] += int(n0)
    assert +got == +expected


def _events_db(tmp: Path, traces: dict[str, list[str]]) -> Path:
    """A tracelab database holding exactly the given traces: one system ``s``, the checkpoints
    in the order listed, 10 ms apart, all SUCCESS."""
    db = tmp / "events.db"
    SQLiteStore(db).close()
    t0 = datetime(2025, 1, 1)
    rows = []
    for cid, checkpoints in traces.items():
        for k, cp in enumerate(checkpoints):
            at = t0 + timedelta(milliseconds=10 * k)
            us = (at - datetime(1970, 1, 1)) // timedelta(microseconds=1)
            rows.append(("s", cp, format_datetime(at), cid, len(rows) + 1, bytes([len(rows)]), us))
    with sqlite3.connect(db) as c:
        c.executemany(
            "INSERT INTO events (system_id, checkpoint_id, timestamp, status, correlation_id,"
            " source, offset, ingested_at, msg_hash, ts_us)"
            " VALUES (?, ?, ?, 'SUCCESS', ?, 'test', ?, '', ?, ?)",
            rows,
        )
    return db


def test_directly_follows_counts_each_trace_once_per_edge(tmp_path: Path) -> None:
    """``traces`` is the number of traces showing an edge, however often a trace repeats it
    (retries), also for two distinct checkpoints whose hashes collide (the repeat screen's
    false alarm must not change a count)."""
    names = duckdb.sql(
        "SELECT a.n, b.n FROM (SELECT 'cp' || i AS n, hash('cp' || i) & 4095 AS h"
        "                      FROM range(50000) t(i)) a"
        " JOIN (SELECT 'cp' || i AS n, hash('cp' || i) & 4095 AS h FROM range(50000) t(i)) b"
        " ON a.h = b.h AND a.n < b.n LIMIT 1"
    ).fetchone()
    assert names is not None
    p, q = names
    traces = {
        "t1": ["X", "Y", "X", "Y", "X", "Y"],  # X > Y three times, Y > X twice
        "t2": ["X", "Y"],
        "t3": [p, q],  # distinct checkpoints, same bits in both masks
        "t4": [p, q, p, q],
    }
    with connect(_events_db(tmp_path, traces)) as con:
        edges = variants.directly_follows(con)
    got = {(a, b): (n, t) for a, b, n, t in
           zip(edges["src"], edges["dst"], edges["steps"], edges["traces"],
               strict=True)}  # fmt: skip
    expected: dict[tuple[str, str], tuple[int, int]] = {}
    for cps in traces.values():
        steps = [(variants.START, cps[0]), *zip(cps, cps[1:], strict=False), (cps[-1], "END")]
        for edge, n in Counter(steps).items():
            was = expected.get(edge, (0, 0))
            expected[edge] = (was[0] + n, was[1] + 1)
    assert got == expected
    assert got[("X", "Y")] == (4, 2) and got[(p, q)] == (3, 2)


def test_diff_traces_matches_the_truth(con: duckdb.DuckDBPyConnection, default_run: Any) -> None:
    truth = default_run[1]
    ids = sorted(truth)
    a = next(c for c in ids if {r["system_id"] for r in truth[c]} >= {"payments"})
    b = next(c for c in ids if "payments" not in {r["system_id"] for r in truth[c]})
    d = compare.diff_traces(con, a, b)
    systems = d[d["level"] == "system"].set_index("system_id")
    for side, cid in (("a", a), ("b", b)):
        for system in {r["system_id"] for r in truth[cid]}:
            ts = [r["us"] for r in truth[cid] if r["system_id"] == system]
            assert systems.loc[system, f"{side}_ms"] == (max(ts) - min(ts)) / 1000
    assert systems.loc["payments", "side"] == "a only"
    whole = d[d["level"] == "trace"].iloc[0]
    span = [r["us"] for r in truth[b]]
    assert whole["b_ms"] == (max(span) - min(span)) / 1000
    assert whole["change_ms"] == whole["b_ms"] - whole["a_ms"]
    with pytest.raises(AnalysisError, match="no events for trace"):
        compare.diff_traces(con, a, "no-such-trace")


def test_selections_use_the_search_vocabulary(con: duckdb.DuckDBPyConnection) -> None:
    found = analysis.search(con, outcome="FAILURE", limit=10_000)
    compared = compare.compare_cohorts(con, {"outcome": "failure"})
    path = compared[compared["dimension"] == "path"]
    assert int(path["selection_traces"].sum()) == len(found)
    assert int(path["baseline_traces"].sum()) == analysis.overview(con)["traces"] - len(found)
    start = str(found["start_ts"].min())
    window = compare.compare_cohorts(con, {"since": start, "ids": list(found["correlation_id"])})
    assert int(window.loc[window["dimension"] == "path", "selection_traces"].sum()) == len(found)
    with pytest.raises(AnalysisError, match="unknown selection field"):
        compare.compare_cohorts(con, {"colour": "red"})
    with pytest.raises(AnalysisError, match="has no traces"):
        compare.compare_cohorts(con, {"path": "nowhere"})


# ------------------------------------------------------------------------------- figures


def test_figure_labels_escape_markup_and_keep_quotes() -> None:
    import pandas as pd

    value = 'Warehouse "analytics" <b>read-only</b> & co'
    compared = pd.DataFrame([{"dimension": "failure reason", "value": value,
                              "selection_traces": 3, "selection_share": 0.5,
                              "baseline_traces": 1, "baseline_share": 0.1, "diff": 0.4,
                              "score": 0.4, "rank": 1}])  # fmt: skip
    fig = explain_plots.cohort_bars(compared).to_dict()
    label = fig["data"][0]["y"][0]
    assert label == 'Warehouse "analytics" &lt;b&gt;read-only&lt;/b&gt; &amp; co'
    assert "&quot;" not in json.dumps(fig)


def test_dfg_and_diff_figures_draw(con: duckdb.DuckDBPyConnection, default_run: Any) -> None:
    edges = variants.directly_follows(con)
    fig = explain_plots.dfg(edges)
    arrows = [a for a in fig.layout.annotations if a.showarrow]
    assert len(arrows) == int((edges["src"] + edges["src_system"] != edges["dst"]
                               + edges["dst_system"]).sum())  # fmt: skip
    ids = sorted(default_run[1])
    diff = explain_plots.diff(compare.diff_traces(con, ids[0], ids[1]))
    assert len(diff.data) == 3


# ----------------------------------------------------------------- runs, index and 06


def test_manifest_and_indexes(tmp_path: Path) -> None:
    db, truth = notebook.example_db(tmp_path / "r1", traces=60, seed=2)
    (tmp_path / "r1" / "03_traces.html").write_text("<html></html>", encoding="utf-8")
    params = {"db": str(db), "truth": str(truth), "seed": 2, "topic": "<script>x</script>"}
    started = datetime(2025, 5, 4, 10, 30)
    path = manifest.write_manifest(tmp_path / "r1", "r1", params, started, datetime.now(),
                               {"03_traces.ipynb": 1.5})  # fmt: skip
    m = json.loads(path.read_text(encoding="utf-8"))
    assert m["run"] == "r1" and m["seed"] == 2 and m["parameters"]["topic"] == "<script>x</script>"
    assert m["headline"]["traces"] == 60 and m["headline"]["ledger_balanced"] is True
    assert m["headline"]["truth_matched"] == m["headline"]["truth_measures"]
    assert m["versions"]["tracelab"] and m["versions"]["duckdb"] == duckdb.__version__
    balance = analysis.ledger_balance(connect(db))
    stored = sum(o["messages"] for o in m["offsets"])
    assert stored == balance["messages"] - balance["duplicates"]
    page = manifest.write_run_index(tmp_path / "r1").read_text(encoding="utf-8")
    assert '<a href="03_traces.html">' in page and "<script>" not in page
    assert "&lt;script&gt;x&lt;/script&gt;" in page
    top = manifest.write_reports_index(tmp_path).read_text(encoding="utf-8")
    assert 'href="r1/index.html"' in top and ">60<" in top


@pytest.mark.slow
def test_compare_command_shows_different_fault_rates(tmp_path: Path) -> None:
    low = {"malformed": 0.0, "missing_detail": 0.0}
    high = {"malformed": 0.05, "missing_detail": 0.3}
    db_a, truth_a = notebook.example_db(tmp_path / "a", traces=150, seed=4, faults=low)
    db_b, truth_b = notebook.example_db(tmp_path / "b", traces=150, seed=4, faults=high)
    out = tmp_path / "cmp"
    assert main(["compare", str(db_a), str(db_b), "--out", str(out)]) == 0
    nb = nbformat.read(out / "06_compare.ipynb", as_version=4)
    assert not [o for c in nb.cells for o in c.get("outputs", []) if o["output_type"] == "error"]
    figs = {f["layout"]["title"]["text"]: f for c in nb.cells for o in c.get("outputs", [])
            if (f := o.get("data", {}).get(PLOTLY))}  # fmt: skip
    ledger = figs["ledger (share of messages)"]["data"]
    for bars, truth in zip(ledger, (truth_a, truth_b), strict=True):
        summary = json.loads(truth.with_name(truth.name + ".summary.json").read_text())
        quarantined = sum(v for k, v in zip(bars["y"], bars["x"], strict=True)
                          if k.startswith("quarantine"))  # fmt: skip
        expected = summary["expected"]["quarantined"] / summary["messages"] * 100
        assert quarantined == pytest.approx(expected)
    assert summary["expected"]["quarantined"] > 0
    reasons = figs["failure reasons (share of failures), largest changes first"]["data"]
    assert reasons[0]["y"][0] == "(awaiting detail)"  # missing details: the largest change
    assert reasons[1]["x"][0] > reasons[0]["x"][0]
    html = (out / "06_compare.html").read_text(encoding="utf-8")
    assert html.count('class="plotly-graph-div"') == len(figs)
    assert (out / "manifest.json").is_file() and (out / "index.html").is_file()
    assert "06_compare.html" in (out / "index.html").read_text(encoding="utf-8")


def test_flow_docs_mention_max_gap() -> None:
    text = (Path(__file__).resolve().parent.parent / "data/flows/README.md").read_text("utf-8")
    assert "max_gap_ms" in text
    yaml.safe_load((Path(__file__).resolve().parent.parent / "data/flows/default.yaml").read_text())
