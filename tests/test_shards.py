"""Shard folders: the sharded store, and analysis over a shard folder equal to analysis over one
file built from the same messages (every function of tracelab.analysis, value by value)."""

from __future__ import annotations

import inspect
import json
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pytest

from tracelab import analysis
from tracelab.config import DEFAULT_FLOW
from tracelab.duck import connect
from tracelab.errors import AnalysisError
from tracelab.flows import load_flow
from tracelab.pipeline import Normalizer, normalize_files
from tracelab.shards import ShardedStore, shard_files, shard_name, stored_offsets
from tracelab.simulate import Faults, simulate
from tracelab.sinks import FileSink
from tracelab.store import SQLiteStore

ROOT = Path(__file__).resolve().parent.parent
FAULTS = Faults(duplicate=0.03, detail_first=0.1, missing_detail=0.05, orphan_detail=0.05,
                malformed=0.02, clock_skew=150)  # fmt: skip


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One simulated raw file normalized twice: into one database and into a folder of 6 shards
    (through the command line, as a user would)."""
    work = tmp_path_factory.mktemp("shards")
    raw, truth = work / "raw.log", work / "truth.jsonl"
    with FileSink(raw) as sink:
        simulate(load_flow(DEFAULT_FLOW), 500, 5, FAULTS, sink, truth_path=truth)
    one, folder = work / "one.db", work / "shards"
    base = [sys.executable, "-m", "tracelab", "normalize", str(raw), "--no-progress", "--json"]
    outs = []
    for extra in (["--db", str(one)], ["--shards", str(folder), "--batch-size", "700"]):
        proc = subprocess.run(
            [*base, *extra], capture_output=True, text=True, cwd=ROOT, check=True, timeout=120
        )
        outs.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    assert outs[0] == {**outs[1], "db": str(one)}  # the same summary, whatever the layout
    return {"one": one, "folder": folder, "truth": truth, "raw": raw}


def test_normalize_writes_six_shards_each_trace_in_one(built: dict[str, Path]) -> None:
    files = shard_files(built["folder"])
    assert [f.name for f in files] == [shard_name("shard", i) for i in range(6)]
    where: dict[str, set[str]] = {}
    for f in files:
        with sqlite3.connect(f) as conn:
            for (cid,) in conn.execute(
                "SELECT correlation_id FROM events UNION SELECT correlation_id FROM details"
            ):
                where.setdefault(cid, set()).add(f.name)
    assert where and all(len(s) == 1 for s in where.values())
    sizes = [f.stat().st_size for f in files]
    assert min(sizes) > 0


def _frames_equal(a: Any, b: Any, what: str) -> None:
    if isinstance(a, pd.DataFrame):
        assert isinstance(b, pd.DataFrame), what
        # row ids are storage positions (per shard in a folder), not analysis results
        a, b = a.drop(columns=["id"], errors="ignore"), b.drop(columns=["id"], errors="ignore")
        pd.testing.assert_frame_equal(
            a.reset_index(drop=True), b.reset_index(drop=True), check_exact=True, obj=what
        )
    elif isinstance(a, Path):
        assert a.read_bytes() == b.read_bytes(), what
    else:
        assert a == b, what


def test_every_analysis_function_gives_the_same_values(
    built: dict[str, Path], tmp_path: Path
) -> None:
    flow = load_flow(DEFAULT_FLOW)
    one, many = connect(built["one"]), connect(built["folder"])
    cid = analysis.pick_trace(one)
    assert analysis.pick_trace(many) == cid
    args: dict[str, Any] = {
        "correlation_id": cid,
        "flow": flow,
        "truth_path": built["truth"],
    }
    called = []
    for name in analysis.__all__:
        func = getattr(analysis, name)
        params = list(inspect.signature(func).parameters)
        if name == "declared_flow":
            continue  # takes no database
        if name in ("export", "export_events", "export_spans", "export_traces"):
            what = [] if name != "export" else ["traces"]
            a = func(one, *what, tmp_path / f"one-{name}.csv")
            b = func(many, *what, tmp_path / f"many-{name}.csv")
            # export_events writes row ids: compare without them
            fa, fb = pd.read_csv(a), pd.read_csv(b)
            _frames_equal(fa, fb, name)
            called.append(name)
            continue
        kwargs = {p: args[p] for p in params[1:] if p in args}
        _frames_equal(func(one, **kwargs), func(many, **kwargs), name)
        called.append(name)
    assert set(called) == set(analysis.__all__) - {"declared_flow"}
    balance = analysis.ledger_balance(many)
    assert balance["balanced"] and balance["messages"] > 0


def test_materialized_shard_connection_equals_the_plain_one(built: dict[str, Path]) -> None:
    plain, mat = connect(built["folder"]), connect(built["folder"], materialize=True)
    for name in ("trace_summaries", "spans", "ledger", "failure_counts"):
        _frames_equal(getattr(analysis, name)(plain), getattr(analysis, name)(mat), name)


def test_shards_are_attached_read_only(built: dict[str, Path]) -> None:
    con = connect(built["folder"])
    with pytest.raises(duckdb.Error):
        con.execute("DELETE FROM s0.events")
    assert con.execute("SELECT count(*) FROM events").fetchone()[0] == sum(
        sqlite3.connect(f).execute("SELECT count(*) FROM events").fetchone()[0]
        for f in shard_files(built["folder"])
    )


def test_an_empty_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(AnalysisError, match="no databases"):
        connect(tmp_path)


def test_sharded_store_routes_kafka_records_by_partition(tmp_path: Path) -> None:
    line = b"2025-05-04T10:30:00.000 ORDER: ORDER_INITIALIZED - SUCCESS (ID: a-1)"
    with ShardedStore(tmp_path) as store:
        norm = Normalizer(store)
        norm.process_batch(
            [(line, "t", 2, 10), (b"junk", "t", 4, 7), (b"  ", "t", 4, 8)],
            offsets={("t", 2): 11, ("t", 4): 9, ("t", 5): 3},
        )
        # the same batch again (a redelivery): the offset guard of each shard drops it
        again = norm.process_batch([(line, "t", 2, 10)], offsets={("t", 2): 11})
        assert again.read == 0 and store.skipped == 1
        assert store.summary().read == 2 and store.summary().blank == 1
    assert [f.name for f in shard_files(tmp_path)] == ["t-p2.db", "t-p4.db", "t-p5.db"]
    assert stored_offsets(tmp_path, "t") == {2: 11, 4: 9, 5: 3}
    with SQLiteStore(tmp_path / "t-p4.db") as p4:
        assert p4.summary().quarantined == 1 and p4.kafka_offsets("t") == {4: 9}


def test_normalize_files_into_a_sharded_store_counts_like_one_file(
    built: dict[str, Path], tmp_path: Path
) -> None:
    with ShardedStore(tmp_path / "s", shards=3) as store:
        sharded = normalize_files([built["raw"]], store, batch_size=500, parallel=False)
    single = normalize_files([built["raw"]], tmp_path / "one.db", batch_size=500, parallel=False)
    assert sharded == single and sharded.adds_up
