"""The Parquet lake: read back with DuckDB it equals the database (file or shard folder); a second
export adds only the new traces; a crashed export's files are cleaned up."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from tracelab.analysis.duck import connect
from tracelab.analysis.lake import LAKE_TABLES, export_lake, read_lake
from tracelab.config import DEFAULT_FLOW
from tracelab.errors import AnalysisError
from tracelab.ingest.pipeline import normalize_files
from tracelab.ingest.shards import ShardedStore
from tracelab.simulate import Faults, simulate
from tracelab.simulate.flows import load_flow
from tracelab.simulate.sinks import FileSink

ROOT = Path(__file__).resolve().parent.parent
FAULTS = Faults(duplicate=0.02, detail_first=0.1, missing_detail=0.05, orphan_detail=0.05,
                malformed=0.01)  # fmt: skip

#: The database side of each lake table, in the lake's columns (partition columns included).
DB_SIDE = {
    "events": """SELECT system_id, checkpoint_id, ts, ts_us, status, correlation_id,
                        failure_reason, join_state, attributes, source, "partition", "offset",
                        CAST(ts AS DATE)::VARCHAR AS date, system_id AS system FROM events""",
    "spans": """SELECT * EXCLUDE (system_rank), CAST(start_ts AS DATE)::VARCHAR AS date,
                       system_id AS system FROM spans""",
    "traces": """SELECT *, CAST(start_ts AS DATE)::VARCHAR AS date,
                        split_part(path, '>', 1) AS system FROM traces""",
}


def raw_file(path: Path, traces: int, seed: int) -> Path:
    with FileSink(path) as sink:
        simulate(load_flow(DEFAULT_FLOW), traces, seed, FAULTS, sink)
    return path


def _sorted(df: pd.DataFrame) -> pd.DataFrame:
    df = df[sorted(df.columns)].astype(str)
    return df.sort_values(list(df.columns)).reset_index(drop=True)


def assert_lake_equals(db: Path, lake: Path) -> None:
    con = connect(db)
    for table in LAKE_TABLES:
        lake_df = read_lake(lake, table).df()
        db_df = con.sql(DB_SIDE[table]).df()
        assert len(lake_df) == len(db_df) > 0, table
        pd.testing.assert_frame_equal(_sorted(lake_df), _sorted(db_df), obj=table)


def parquet_files(lake: Path) -> set[Path]:
    return set(lake.glob("**/*.parquet"))


def test_export_equals_the_database_and_a_second_adds_only_new_rows(tmp_path: Path) -> None:
    db, lake = tmp_path / "t.db", tmp_path / "lake"
    first = normalize_files([raw_file(tmp_path / "a.log", 200, 1)], db, parallel=False)
    result = export_lake(db, lake, settle=0)
    assert result.traces > 0 and result.rows["events"] == first.events
    assert_lake_equals(db, lake)
    layout = [p.relative_to(lake).parts for p in parquet_files(lake)]
    assert all(
        len(x) == 4 and x[1].startswith("date=") and x[2].startswith("system=") for x in layout
    )
    assert {x[2] for x in layout if x[0] == "events"} == {
        "system=inventory",
        "system=payments",
        "system=orders",
        "system=reporting",
    }
    files = parquet_files(lake)
    again = export_lake(db, lake, settle=0)  # nothing new: nothing written
    assert again.traces == 0 and parquet_files(lake) == files
    second = normalize_files([raw_file(tmp_path / "b.log", 150, 2)], db, parallel=False)
    more = export_lake(db, lake, settle=0)
    assert more.rows["events"] == second.events and more.traces > 0
    assert files < parquet_files(lake)  # only added files, none rewritten
    assert_lake_equals(db, lake)


def test_settle_holds_back_recent_traces(tmp_path: Path) -> None:
    db, lake = tmp_path / "t.db", tmp_path / "lake"
    normalize_files([raw_file(tmp_path / "a.log", 300, 3)], db, parallel=False)
    con = connect(db)
    span_s = con.execute("SELECT date_diff('second', min(ts), max(ts)) FROM events").fetchone()[0]
    assert span_s > 10
    held = export_lake(db, lake, settle=span_s / 2)
    total = con.execute("SELECT count(*) FROM traces").fetchone()[0]
    assert 0 < held.traces < total
    rest = export_lake(db, lake, settle=0)
    assert held.traces + rest.traces == total
    assert_lake_equals(db, lake)


def test_a_crashed_exports_files_are_removed(tmp_path: Path) -> None:
    db, lake = tmp_path / "t.db", tmp_path / "lake"
    normalize_files([raw_file(tmp_path / "a.log", 100, 4)], db, parallel=False)
    export_lake(db, lake, settle=0)
    one = next(iter(lake.glob("events/**/*.parquet")))
    orphan = one.with_name(one.name.replace("t-e1-", "t-e2-"))  # written, never recorded
    shutil.copy(one, orphan)
    export_lake(db, lake, settle=0)
    assert not orphan.exists()
    assert_lake_equals(db, lake)


def test_shard_folder_export_from_the_command_line(tmp_path: Path) -> None:
    folder, lake = tmp_path / "shards", tmp_path / "lake"
    with ShardedStore(folder, shards=4) as store:
        normalize_files([raw_file(tmp_path / "a.log", 200, 5)], store, parallel=False)
    cmd = [sys.executable, "-m", "tracelab", "export", "--db", str(folder), "--lake", str(lake),
           "--settle", "0", "--json"]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, check=True, timeout=120)
    result = json.loads(out.stdout)
    assert result["databases"] == 4 and result["traces"] > 0
    assert_lake_equals(folder, lake)
    with pytest.raises(AnalysisError, match="no lake table"):
        read_lake(lake, "details")
