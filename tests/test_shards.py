"""Shard folders: the sharded store, and analysis over a shard folder equal to analysis over one
file built from the same messages (every function of tracelab.analysis, value by value)."""

from __future__ import annotations

import inspect
import json
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pytest

from tracelab import analysis
from tracelab.analysis import cohorts, compare, runcompare, variants
from tracelab.analysis.duck import connect
from tracelab.config import DEFAULT_FLOW
from tracelab.errors import AnalysisError
from tracelab.ingest.pipeline import Normalizer, normalize_files
from tracelab.ingest.shards import ShardedStore, shard_files, shard_name, stored_offsets
from tracelab.ingest.store import SQLiteStore
from tracelab.simulate import Faults, simulate
from tracelab.simulate.flows import load_flow
from tracelab.simulate.sinks import FileSink

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


def _frames_equal(a: Any, b: Any, what: str, exact: bool = True) -> None:
    """``exact=False``: floats to 1e-9 relative (a sum over 6 shards adds in another order)."""
    if isinstance(a, pd.DataFrame):
        assert isinstance(b, pd.DataFrame), what
        # row ids are storage positions (per shard in a folder), not analysis results
        a, b = a.drop(columns=["id"], errors="ignore"), b.drop(columns=["id"], errors="ignore")
        pd.testing.assert_frame_equal(
            a.reset_index(drop=True), b.reset_index(drop=True), check_exact=exact, rtol=1e-9,
            obj=what,
        )  # fmt: skip
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


def test_every_compare_and_explain_function_gives_the_same_values(built: dict[str, Path]) -> None:
    """Cohorts, compare, variants and run comparison (issue 14) on a shard folder equal one file;
    a run compared with its own shards shows no change."""
    flow = load_flow(DEFAULT_FLOW)
    one, many = connect(built["one"]), connect(built["folder"])
    a, b = sorted(analysis.trace_summaries(one)["correlation_id"])[:2]
    failing = {"outcome": "FAILURE"}
    on_one: dict[str, Callable[[Any], Any]] = {
        "duration_quantiles": cohorts.duration_quantiles,
        "slow_vs_typical": cohorts.slow_vs_typical,
        "style_source": compare.style_source,
        "compare_cohorts": lambda c: compare.compare_cohorts(c, failing),
        "dimension_ranking": lambda c: compare.dimension_ranking(
            compare.compare_cohorts(c, cohorts.slow_vs_typical(c)[0])
        ),
        "diff_traces": lambda c: compare.diff_traces(c, a, b),
        "diff_cohorts": lambda c: compare.diff_cohorts(c, failing),
        "variants": variants.variants,
        "directly_follows": variants.directly_follows,
        "temporal_profile": variants.temporal_profile,
        "temporal_deviations": lambda c: variants.temporal_deviations(c, flow),
        "temporal_summary": lambda c: variants.temporal_summary(
            variants.temporal_deviations(c, flow)
        ),
        "system_stats": runcompare.system_stats,
        "headline": runcompare.headline,
    }
    on_two: dict[str, Callable[[Any, Any], Any]] = {
        "system_changes": runcompare.system_changes,
        "reason_changes": runcompare.reason_changes,
        "variant_changes": runcompare.variant_changes,
        "ledger_changes": runcompare.ledger_changes,
        "conformance_changes": lambda x, y: runcompare.conformance_changes(x, y, flow),
    }
    for name, call in on_one.items():
        _frames_equal(call(one), call(many), name, exact=False)
    for name, call2 in on_two.items():
        _frames_equal(call2(one, one), call2(many, many), name, exact=False)
        _frames_equal(call2(one, many), call2(one, one), f"{name} (file vs its shards)", False)
    assert not runcompare.system_changes(one, many)["failure_rate_change"].any()
    # every public function of these modules that reads a connection is compared above
    for module in (cohorts, compare, variants, runcompare):
        for name in module.__all__:
            func = getattr(module, name)
            if inspect.isfunction(func) and name not in on_one and name not in on_two:
                first = next(iter(inspect.signature(func).parameters))
                assert first not in ("con", "a"), f"{module.__name__}.{name} is not compared"


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


def test_a_shard_folder_run_has_a_manifest_and_resolves(
    built: dict[str, Path], tmp_path: Path
) -> None:
    """A run whose database is a shard folder (``demo -p shards true``) gets the same manifest
    headline and offsets as one file, and ``compare`` finds its database."""
    from datetime import datetime

    from tracelab.reports import manifest

    made = []
    for name in ("one", "folder"):
        run = tmp_path / name
        params = {"db": str(built[name]), "truth": str(built["truth"])}
        manifest.write_manifest(run, name, params, datetime.now(), datetime.now())
        m = manifest.load_manifest(run)
        assert m["headline"]["ledger_balanced"] and m["offsets"], name
        assert m["headline"]["truth_matched"] == m["headline"]["truth_measures"] > 0
        assert manifest.resolve_run(run)[0] == built[name]
        made.append((m["headline"], m["offsets"]))
    assert made[0] == made[1]


def test_group_members_get_the_same_styles_and_their_own_instance_ids(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tracelab.cli.main import build_parser, main
    from tracelab.kafka.group import member_argv

    styles = ROOT / "data" / "styles" / "examples.yaml"
    argv = ["consume", "--shards", str(tmp_path / "s"), "--processes", "2", "--instance-id", "h"]
    args = build_parser().parse_args([*argv, "--styles", str(styles)])
    member = member_argv(args, 1)
    assert member[member.index("--styles") + 1] == str(styles)
    assert member[member.index("--instance-id") + 1] == "h-1"
    assert "--processes" not in member
    # a bad style file stops the command before any member starts
    assert main([*argv, "--styles", str(tmp_path / "missing.yaml")]) == 1
    assert "missing.yaml" in capsys.readouterr().err
    assert not (tmp_path / "s").exists()


def test_group_members_get_the_size_cap() -> None:
    """``consume --processes N``: each member quarantines the same messages as too large."""
    from tracelab.cli import build_parser
    from tracelab.kafka.group import member_argv

    args = build_parser().parse_args(
        ["consume", "--shards", "s", "--processes", "2", "--max-message-bytes", "500",
         "--styles", "data/styles/examples.yaml", "--instance-id", "m"]
    )  # fmt: skip
    argv = member_argv(args, 1)
    assert argv[argv.index("--max-message-bytes") + 1] == "500"
    assert argv[argv.index("--styles") + 1] == "data/styles/examples.yaml"
    assert argv[argv.index("--instance-id") + 1] == "m-1"
