"""Speed of the notebook analysis, measured in one run (not a timed test).

For each size (default 1M and 10M events) a database is built with the real pipeline (simulate
the default flow to a file, ``normalize_files`` it) and then:

1. every analysis query through DuckDB attached to the SQLite file (``tracelab.analysis``) vs the
   same result computed with pandas from ``pandas.read_sql`` (target: DuckDB >= 10x faster).
   The pandas time of a query is the one ``read_sql`` of the columns it needs plus its compute;
   the read is measured once per size and added to every query (as a notebook doing it with
   pandas would pay it). Results of both are compared, so a fast wrong answer cannot pass.
   Beside wall time it prints CPU seconds (DuckDB's threads included) and their ratio, and the
   load average: on a shared machine the wall ratio moves with the load (pandas uses one core,
   DuckDB all of them), the CPU figures much less;
2. the waterfall query for one trace (``analysis.waterfall``: an indexed lookup inside SQLite),
   median and p95 over random traces (target: < 50 ms at 10M events), against a DuckDB scan
   with a filter for contrast;
3. the whole notebook pipeline end to end for ``--pipeline-traces`` traces (default 100k): the four
   notebooks with papermill against a real local Kafka broker started for the run (stopped at
   the end), with the time of each notebook.

Usage: ``python bench/analysis.py [--events 1000000 10000000] [--pipeline-traces 100000]
[--skip-pipeline] [--keep DIR]``
"""

from __future__ import annotations

import argparse
import math
import os
import random
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tracelab import analysis, reports  # noqa: E402
from tracelab.analysis import cohorts, compare, variants  # noqa: E402
from tracelab.analysis.duck import connect, system_order  # noqa: E402
from tracelab.analysis.queries import NO_REASON_LABELS  # noqa: E402
from tracelab.config import DEFAULT_FLOW  # noqa: E402
from tracelab.ingest.pipeline import normalize_files  # noqa: E402
from tracelab.ingest.store import SQLiteStore  # noqa: E402
from tracelab.simulate import Faults, simulate  # noqa: E402
from tracelab.simulate.flows import load_flow  # noqa: E402
from tracelab.simulate.sinks import FileSink  # noqa: E402

SYSTEMS: tuple[str, ...] = ()  # the database's system order, set by pandas_events
SPEEDUP_TARGET = 10.0
WATERFALL_TARGET_MS = 50.0
FAULTS = Faults(duplicate=0.01, detail_first=0.02, missing_detail=0.01, orphan_detail=0.005,
                malformed=0.002)  # fmt: skip


def build_db(events: int, out: Path) -> Path:
    """A database of about ``events`` events made by the real pipeline (cached in ``out``)."""
    db = out / f"analysis-{events}.db"
    if db.is_file():
        with sqlite3.connect(db) as c:
            (n,) = c.execute("SELECT count(*) FROM events").fetchone()
        if n >= 0.95 * events:
            print(f"  reusing {db.name}: {n:,} events")
            SQLiteStore(db).close()  # brings an older file to the current schema
            return db
        db.unlink()
    flow = load_flow(DEFAULT_FLOW)
    pilot = simulate(flow, 2000, 1, FAULTS)
    per_trace = pilot.summary["expected"]["events"] / 2000
    traces = math.ceil(events / per_trace)
    raw = out / f"analysis-{events}.log"
    t = time.perf_counter()
    with FileSink(raw) as sink:
        simulate(flow, traces, 42, FAULTS, sink, progress=True)
    print(f"  simulated {traces:,} traces in {time.perf_counter() - t:.1f} s")
    t = time.perf_counter()
    s = normalize_files([raw], db, progress=True)
    print(
        f"  normalized {s.read:,} messages ({s.events:,} events) in {time.perf_counter() - t:.1f} s"
    )
    raw.unlink()
    return db


# ----------------------------------------------------------------------- pandas baselines


def pandas_events(db: Path) -> tuple[pd.DataFrame, float, float]:
    """The events as pandas reads them, with the wall and CPU seconds it took."""
    global SYSTEMS
    SYSTEMS = system_order(db)
    t, cpu = time.perf_counter(), time.process_time()
    with sqlite3.connect(db) as c:
        df = pd.read_sql(
            "SELECT id, system_id, checkpoint_id, timestamp, status, correlation_id, "
            "failure_reason, join_state FROM events",
            c,
        )
    df["ts"] = pd.to_datetime(df["timestamp"], format="%Y-%m-%dT%H:%M:%S.%fZ")
    return df, time.perf_counter() - t, time.process_time() - cpu


def _pd_span_rows(ev: pd.DataFrame) -> pd.DataFrame:
    # time order, a failure after a success of the same instant (it wins the tie, as in DuckDB)
    ev = ev.assign(fail=ev["status"] == "FAILURE").sort_values(["ts", "fail", "id"])
    g = ev.groupby(["correlation_id", "system_id"], sort=False)
    sp = g.agg(start_ts=("ts", "min"), end_ts=("ts", "max"), events=("id", "size"),
               failures=("fail", "sum"), last_status=("status", "last"),
               last_checkpoint=("checkpoint_id", "last")).reset_index()  # fmt: skip
    sp["duration_ms"] = (sp["end_ts"] - sp["start_ts"]) // pd.Timedelta(milliseconds=1)
    return sp


def pd_spans(ev: pd.DataFrame) -> pd.DataFrame:
    """The spans listing as ``analysis.spans`` returns it: same columns, same order."""
    sp = _pd_span_rows(ev)
    sp["system_rank"] = sp["system_id"].map({s: i for i, s in enumerate(SYSTEMS)})
    sp["system_rank"] = sp["system_rank"].fillna(len(SYSTEMS)).astype("int64")
    return sp.sort_values(["correlation_id", "system_rank", "start_ts"], ignore_index=True)


def pd_traces(ev: pd.DataFrame) -> pd.DataFrame:
    sp = _pd_span_rows(ev)
    rank = {s: i for i, s in enumerate(SYSTEMS)}
    sp["rank"] = sp["system_id"].map(rank).fillna(len(SYSTEMS))
    sp = sp.sort_values(["correlation_id", "rank", "start_ts", "system_id"])
    sp["ok"] = sp["last_status"] == "SUCCESS"
    g = sp.groupby("correlation_id", sort=False)
    tr = g.agg(path=("system_id", ">".join), start_ts=("start_ts", "min"),
               end_ts=("end_ts", "max"), spans=("system_id", "size"), events=("events", "sum"),
               failures=("failures", "sum"), ok=("ok", "all")).reset_index()  # fmt: skip
    tr["outcome"] = tr["ok"].map({True: "SUCCESS", False: "FAILURE"})
    tr["duration_ms"] = (tr["end_ts"] - tr["start_ts"]) // pd.Timedelta(milliseconds=1)
    return tr


def pd_percentiles(ev: pd.DataFrame) -> pd.DataFrame:
    sp = _pd_span_rows(ev)
    return sp.groupby("system_id")["duration_ms"].quantile([0.5, 0.9, 0.95, 0.99]).unstack()


def pd_paths(ev: pd.DataFrame) -> pd.Series:
    return pd_traces(ev)["path"].value_counts()


def pd_failure_counts(ev: pd.DataFrame) -> pd.DataFrame:
    g = ev.assign(f=ev["status"] == "FAILURE").groupby(["system_id", "checkpoint_id"])
    return g.agg(events=("f", "size"), failures=("f", "sum"))


def pd_pareto(ev: pd.DataFrame) -> pd.DataFrame:
    f = ev[ev["status"] == "FAILURE"]
    reason = f["failure_reason"].fillna(f["join_state"].map(NO_REASON_LABELS))
    counts = reason.fillna("(unknown)").value_counts()
    return pd.DataFrame({"failures": counts, "cumulative": counts.cumsum() / counts.sum()})


def pd_recovery(ev: pd.DataFrame) -> pd.DataFrame:
    key = ["correlation_id", "system_id", "checkpoint_id"]
    ok = ev[ev["status"] == "SUCCESS"].groupby(key)["ts"].max().rename("ok_ts").reset_index()
    f = ev[ev["status"] == "FAILURE"].merge(ok, on=key, how="left")
    f["recovered"] = f["ok_ts"].notna() & (f["ok_ts"] >= f["ts"])
    return f.groupby(["system_id", "checkpoint_id"])["recovered"].agg(["size", "sum"])


def pd_rate(ev: pd.DataFrame, seconds: int) -> pd.DataFrame:
    b = ev["ts"].dt.floor(f"{seconds}s")
    g = ev.assign(bucket=b, f=ev["status"] == "FAILURE").groupby(["bucket", "system_id"])
    return g["f"].agg(["size", "sum"])


# ---------------------------------- compare and explain (tracelab.analysis.compare, variants)


def _pd_ranked(ev: pd.DataFrame) -> pd.DataFrame:
    rank = {s: i for i, s in enumerate(SYSTEMS)}
    ev = ev.assign(rank=ev["system_id"].map(rank).fillna(len(SYSTEMS)),
                   us=(ev["ts"] - pd.Timestamp(0)) // pd.Timedelta(microseconds=1))  # fmt: skip
    return ev


def pd_compare_failed(ev: pd.DataFrame) -> pd.DataFrame:
    """compare_cohorts(con, {"outcome": "FAILURE"}): traces per (dimension, value, cohort)."""
    tr = pd_traces(ev)
    c = tr.set_index("correlation_id")["outcome"].eq("FAILURE").astype(int).rename("c")
    ev = ev.join(c, on="correlation_id")
    parts = [
        tr.assign(dimension="path", value=tr["path"], c=c.values),
        tr.assign(dimension="start hour (UTC)", value=tr["start_ts"].dt.strftime("%H:00"),
                  c=c.values),
    ]  # fmt: skip
    sp = _pd_span_rows(ev)
    status = sp.pivot(index="correlation_id", columns="system_id", values="last_status")
    status = status.reindex(c.index).fillna("(not reached)")
    for system in status.columns:
        parts.append(pd.DataFrame({"correlation_id": status.index, "c": c.values,
                                   "dimension": f"outcome {system}",
                                   "value": status[system]}))  # fmt: skip
    distinct = ev.drop_duplicates(["correlation_id", "system_id", "checkpoint_id"])
    retries = ev.groupby("correlation_id").size() - distinct.groupby("correlation_id").size()
    retries = retries.reindex(c.index)
    parts.append(pd.DataFrame({"correlation_id": c.index, "c": c.values, "dimension": "retries",
                               "value": retries.where(retries < 5, 5).astype(int).astype(str)
                               .replace("5", "5+")}))  # fmt: skip
    reached = ev.assign(dimension="checkpoint reached",
                        value=ev["system_id"] + " / " + ev["checkpoint_id"])  # fmt: skip
    f = ev[ev["status"] == "FAILURE"]
    reason = f["failure_reason"].fillna(f["join_state"].map(NO_REASON_LABELS))
    reasons = f.assign(dimension="failure reason", value=reason.fillna("(unknown)"))
    style = ev["join_state"].map({"inline": "reason inline", "joined": "reason separate",
                                  "awaiting_detail": "reason separate"})  # fmt: skip
    styled = ev[style.notna()].assign(dimension="log style",
                                      value=ev["system_id"] + ": " + style)  # fmt: skip
    multi = pd.concat([reached, reasons, styled])[["correlation_id", "c", "dimension", "value"]]
    multi = multi.drop_duplicates()
    cols = ["correlation_id", "c", "dimension", "value"]
    every = pd.concat([p[cols] for p in parts] + [multi])
    out = every.groupby(["dimension", "value", "c"]).size().unstack("c", fill_value=0)
    return out.rename(columns={1: "selection_traces", 0: "baseline_traces"})


def same_compare(d: pd.DataFrame, p: pd.DataFrame) -> bool:
    got = d.set_index(["dimension", "value"])[["selection_traces", "baseline_traces"]]
    p = p.reindex(columns=["selection_traces", "baseline_traces"], fill_value=0)
    return len(got) == len(p) and bool((got.sort_index() == p.sort_index()).all().all())


def pd_variants(ev: pd.DataFrame) -> pd.Series:
    ev = _pd_ranked(ev).sort_values(["correlation_id", "rank", "us", "id"])
    seq = ev.groupby("correlation_id", sort=False)["checkpoint_id"].agg(" > ".join)
    return seq.value_counts()


def pd_steps(ev: pd.DataFrame) -> pd.DataFrame:
    """Every step (see analysis.variants): inside a span, and the hand-off between spans."""
    ev = _pd_ranked(ev).sort_values(["correlation_id", "system_id", "us", "id"])
    g = ev.groupby(["correlation_id", "system_id"], sort=False)
    ev["prev_cp"] = g["checkpoint_id"].shift()
    ev["prev_us"] = g["us"].shift()
    ends = g.agg(start_us=("us", "min"), end_us=("us", "max"),
                 last_cp=("checkpoint_id", "last")).reset_index()  # fmt: skip
    pairs = ends.merge(ends, on="correlation_id", suffixes=("", "_p"))
    pairs = pairs[(pairs["system_id"] != pairs["system_id_p"])
                  & (pairs["end_us_p"] <= pairs["start_us"])]  # fmt: skip
    pairs = pairs.sort_values(["end_us_p", "system_id_p"]).drop_duplicates(
        ["correlation_id", "system_id"], keep="last")  # fmt: skip
    hand = pairs[["correlation_id", "system_id", "system_id_p", "last_cp_p", "end_us_p"]]
    ev = ev.merge(hand, on=["correlation_id", "system_id"], how="left")
    inner = ev["prev_cp"].notna()
    return pd.DataFrame({
        "correlation_id": ev["correlation_id"],
        "src_system": ev["system_id"].where(inner, ev["system_id_p"].fillna("")),
        "src": ev["prev_cp"].fillna(ev["last_cp_p"]).fillna("START"),
        "dst_system": ev["system_id"], "dst": ev["checkpoint_id"],
        "gap_us": ev["us"] - ev["prev_us"].fillna(ev["end_us_p"]).fillna(ev["us"]),
        "from_start": ~inner & ev["last_cp_p"].isna(),
    })  # fmt: skip


_EDGE = ["src_system", "src", "dst_system", "dst"]


def pd_dfg(ev: pd.DataFrame) -> pd.DataFrame:
    st = pd_steps(ev)
    return st.groupby(_EDGE).agg(steps=("gap_us", "size"), median=("gap_us", "median"))


def same_dfg(d: pd.DataFrame, p: pd.DataFrame) -> bool:
    got = d[d["dst"] != "END"].set_index(_EDGE).sort_index()
    p = p.sort_index()
    med = got["median_gap_ms"].fillna(-1).to_numpy()
    want = (p["median"] / 1000).where(p.index.get_level_values("src") != "START", -1).to_numpy()
    return len(got) == len(p) and bool((got["steps"].to_numpy() == p["steps"].to_numpy()).all()
                                       and (abs(med - want) < 1e-6).all())  # fmt: skip


def pd_deviations(ev: pd.DataFrame, k: float = 3.0) -> pd.DataFrame:
    st = pd_steps(ev)
    st = st[~st["from_start"]]
    g = st.groupby(_EDGE)["gap_us"]
    z = (st["gap_us"] - g.transform("mean")) / g.transform("std")
    return st[z.abs() > k]


def same_deviations(d: pd.DataFrame, p: pd.DataFrame) -> bool:
    a = sorted(zip(d["correlation_id"], d["dst"], (d["gap_ms"] * 1000).round().astype("int64"),
                   strict=True))  # fmt: skip
    b = sorted(zip(p["correlation_id"], p["dst"], p["gap_us"].astype("int64"), strict=True))
    return a == b


def pd_diff_cohorts(ev: pd.DataFrame, typical: tuple[float, float], slow: float) -> pd.Series:
    """Median step time per (side, system, checkpoint) of the typical and slow cohorts."""
    tr = pd_traces(ev).set_index("correlation_id")["duration_ms"]
    side = pd.Series(None, index=tr.index, dtype=object)
    side[tr >= slow] = "b"
    side[(tr >= typical[0]) & (tr <= typical[1])] = "a"  # a trace in both is in a, as in DuckDB
    ev = _pd_ranked(ev).join(side.rename("side"), on="correlation_id")
    ev = ev[ev["side"].notna()].sort_values(["correlation_id", "system_id", "us", "id"])
    ev["gap"] = ev["us"] - ev.groupby(["correlation_id", "system_id"], sort=False)["us"].shift()
    ev["gap"] = ev["gap"].fillna(0)
    per = ev.groupby(["side", "correlation_id", "system_id", "checkpoint_id"])["gap"].sum()
    return (per / 1000).groupby(["side", "system_id", "checkpoint_id"]).median()


def same_diff(d: pd.DataFrame, p: pd.Series) -> bool:
    cp = d[d["level"] == "checkpoint"]
    got = {}
    for s, c, a, b in zip(cp["system_id"], cp["checkpoint_id"], cp["a_ms"], cp["b_ms"],
                          strict=True):  # fmt: skip
        for side, v in (("a", a), ("b", b)):
            if not pd.isna(v):
                got[(side, s, c)] = float(v)
    want = {k: float(v) for k, v in p.items()}
    return got.keys() == want.keys() and all(abs(got[k] - want[k]) < 1e-6 for k in got)


# ------------------------------------------------------------------------------- the run


def timed(fn: Callable[[], Any], repeat: int) -> tuple[float, float, Any]:
    """Best wall seconds and least CPU seconds (this process, every thread) of ``repeat`` runs,
    and the result."""
    best = best_cpu = math.inf
    result = None
    for _ in range(repeat):
        t, cpu = time.perf_counter(), time.process_time()
        result = fn()
        best = min(best, time.perf_counter() - t)
        best_cpu = min(best_cpu, time.process_time() - cpu)
    return best, best_cpu, result


def load_average() -> str:
    """The machine's load average (1, 5, 15 min), to print beside every figure."""
    return "load average " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def bench_queries(db: Path, repeat: int, only_new: bool = False) -> list[tuple[str, float, float]]:
    con = connect(db)
    (span_s,) = con.execute("SELECT date_diff('second', min(ts), max(ts)) FROM events").fetchone()
    bucket = next(b for b in (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 3600) if b >= span_s / 60)
    ev, read_s, read_cpu = pandas_events(db)
    print(f"  pandas read_sql + timestamp parsing of {len(ev):,} events: {read_s:.2f} s "
          f"({read_cpu:.2f} CPU s)")  # fmt: skip

    def same_spans(d: pd.DataFrame, p: pd.DataFrame) -> bool:
        cols = ["correlation_id", "system_id", "duration_ms", "events", "failures", "last_status"]
        return len(d) == len(p) and bool((d[cols].to_numpy() == p[cols].to_numpy()).all())

    def check_traces(d: pd.DataFrame, p: pd.DataFrame) -> bool:
        return len(d) == len(p) and int(d["failures"].sum()) == int(p["failures"].sum())

    cases: list[tuple[str, Callable[[], Any], Callable[[], Any], Callable[[Any, Any], bool]]] = [
        ("trace summaries", lambda: analysis.trace_summaries(con), lambda: pd_traces(ev),
         check_traces),
        ("spans", lambda: analysis.spans(con), lambda: pd_spans(ev), same_spans),
        ("span percentiles", lambda: analysis.span_percentiles(con), lambda: pd_percentiles(ev),
         lambda d, p: abs(float(d.set_index("system_id").loc["orders", "p50"])
                          - float(p.loc["orders", 0.5])) < 1e-6),
        ("path distribution", lambda: analysis.path_distribution(con), lambda: pd_paths(ev),
         lambda d, p: dict(zip(d["path"], d["traces"], strict=True)) == p.to_dict()),
        ("failure counts", lambda: analysis.failure_counts(con), lambda: pd_failure_counts(ev),
         lambda d, p: int(d["failures"].sum()) == int(p["failures"].sum())
         and len(d) == len(p)),
        ("reason pareto", lambda: analysis.reason_pareto(con), lambda: pd_pareto(ev),
         lambda d, p: dict(zip(d["failure_reason"], d["failures"], strict=True))
         == p["failures"].to_dict()),
        ("retry recovery", lambda: analysis.retry_recovery(con), lambda: pd_recovery(ev),
         lambda d, p: int(d["recovered"].sum()) == int(p["sum"].sum())),
        ("failure rate over time",
         lambda: analysis.failure_rate_over_time(con, bucket_seconds=bucket),
         lambda: pd_rate(ev, bucket),
         lambda d, p: len(d) == len(p) and int(d["failures"].sum()) == int(p["sum"].sum())),
    ]  # fmt: skip
    q = cohorts.duration_quantiles(con, (0.4, 0.6, 0.95))
    slow, typical = {"min_ms": q[0.95]}, {"min_ms": q[0.4], "max_ms": q[0.6]}
    flow = load_flow(DEFAULT_FLOW)
    cases += [
        ("cohorts: failed vs rest", lambda: compare.compare_cohorts(con, {"outcome": "FAILURE"}),
         lambda: pd_compare_failed(ev), same_compare),
        ("cohorts: diff medians", lambda: compare.diff_cohorts(con, typical, slow),
         lambda: pd_diff_cohorts(ev, (q[0.4], q[0.6]), q[0.95]), same_diff),
        ("variants", lambda: variants.variants(con, top=None), lambda: pd_variants(ev),
         lambda d, p: dict(zip(d["variant"], d["traces"], strict=True)) == p.to_dict()),
        ("directly-follows graph", lambda: variants.directly_follows(con),
         lambda: pd_dfg(ev), same_dfg),
        ("temporal deviations", lambda: variants.temporal_deviations(con, flow, k=3),
         lambda: pd_deviations(ev), same_deviations),
    ]  # fmt: skip
    if only_new:
        cases = cases[-5:]
    t = time.perf_counter()
    mem = connect(db, materialize=True)
    copy_s = time.perf_counter() - t
    print(f"  DuckDB materialize (one copy of the events into memory): {copy_s:.2f} s")
    # CPU columns: seconds of CPU of this process (DuckDB's threads included), which a busy
    # machine disturbs less than wall time; "x CPU" is pandas' CPU over DuckDB's (attached).
    print(f"  {'query':<24} {'attached':>9} {'in memory':>10} {'pandas':>9} {'(compute)':>10}"
          f" {'x attached':>10} {'CPU att.':>9} {'CPU pandas':>10} {'x CPU':>6}")  # fmt: skip
    rows = []
    for name, duck_fn, pandas_fn, same in cases:
        d_s, d_cpu, d_res = timed(duck_fn, repeat)
        con, attached = mem, con
        m_s, _m_cpu, m_res = timed(duck_fn, repeat)
        con = attached
        p_s, p_cpu, p_res = timed(pandas_fn, 1)
        if not (same(d_res, p_res) and same(m_res, p_res)):
            raise SystemExit(f"{name}: DuckDB and pandas disagree")
        rows.append((name, d_s, p_s + read_s))
        print(f"  {name:<24} {d_s:8.3f}s {m_s:9.3f}s {p_s + read_s:8.3f}s {p_s:9.3f}s"
              f" {(p_s + read_s) / d_s:9.1f}x {d_cpu:8.2f}s {p_cpu + read_cpu:9.2f}s"
              f" {(p_cpu + read_cpu) / d_cpu:5.1f}x")  # fmt: skip
    con.close()
    mem.close()
    return rows


def bench_waterfall(db: Path, samples: int = 30) -> tuple[float, float, float]:
    with sqlite3.connect(db) as c:
        (n,) = c.execute("SELECT max(id) FROM events").fetchone()
        rnd = random.Random(5)
        ids = [
            c.execute("SELECT correlation_id FROM events WHERE id >= ? LIMIT 1",
                      (rnd.randint(1, n),)).fetchone()[0]
            for _ in range(samples)
        ]  # fmt: skip
    con = connect(db)
    analysis.waterfall(con, ids[0])  # warm the connection
    times = []
    for cid in ids:
        t = time.perf_counter()
        rows = analysis.waterfall(con, cid)
        times.append((time.perf_counter() - t) * 1000)
        assert len(rows) > 0
    t = time.perf_counter()
    con.execute("SELECT * FROM events WHERE correlation_id = ?", [ids[0]]).df()
    scan_ms = (time.perf_counter() - t) * 1000
    con.close()
    times.sort()
    return statistics.median(times), times[int(0.95 * (len(times) - 1))], scan_ms


def bench_pipeline(traces: int, out: Path) -> None:
    from tracelab.kafka.broker import LocalBroker, free_port

    data = Path(tempfile.mkdtemp(prefix="tracelab-bench-kafka-"))
    port = free_port()
    controller = free_port()
    broker = LocalBroker(data, port=port, controller_port=controller)
    t = time.perf_counter()
    bootstrap = broker.start(timeout=180)
    print(f"  local broker up in {time.perf_counter() - t:.1f} s at {bootstrap}")
    run = out / f"pipeline-{traces}"
    shutil.rmtree(run, ignore_errors=True)
    params = {
        "traces": traces, "seed": 42, "bootstrap": bootstrap, "topic": f"bench-{traces}",
        "group": "bench", "db": str(run / "tracelab.db"), "truth": str(run / "truth.jsonl"),
        "plotly_offline": True, "until_idle": 5.0,
    }  # fmt: skip
    try:
        t0 = time.perf_counter()

        def done(nb: reports.NotebookRun) -> None:
            print(f"  {nb.name:<20} {nb.seconds:8.1f} s")

        reports.run_notebooks(run, params, progress=False, on_done=done)
        print(f"  whole pipeline, {traces:,} traces: {time.perf_counter() - t0:.1f} s "
              f"(reports in {run})")  # fmt: skip
    finally:
        broker.stop(timeout=60)
        shutil.rmtree(data, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--events", type=int, nargs="+", default=[1_000_000, 10_000_000])
    ap.add_argument("--pipeline-traces", type=int, default=100_000)
    ap.add_argument("--skip-pipeline", action="store_true")
    ap.add_argument("--repeat", type=int, default=2, help="best of N for DuckDB queries")
    ap.add_argument("--keep", help="folder for the databases (kept and reused)")
    ap.add_argument("--only-new", action="store_true",
                    help="only the compare-and-explain functions (issue 14)")  # fmt: skip
    args = ap.parse_args(argv)
    out = Path(args.keep) if args.keep else ROOT / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    summary = []
    for events in args.events:
        print(f"\n== {events:,} events ({load_average()})")
        db = build_db(events, out)
        rows = bench_queries(db, args.repeat, args.only_new)
        med, p95, scan = bench_waterfall(db)
        print(f"  waterfall of one trace: median {med:.1f} ms, p95 {p95:.1f} ms "
              f"(a DuckDB filtered scan instead: {scan:.0f} ms)")  # fmt: skip
        summary.append((events, rows, med, p95))
    print(f"\n== verdict ({load_average()})")
    for events, rows, _med, p95 in summary:
        worst = min(p / d for _, d, p in rows)
        geo = math.exp(statistics.fmean(math.log(p / d) for _, d, p in rows))
        print(f"  {events:>11,} events: DuckDB vs pandas x{worst:.1f} (slowest query) ... "
              f"x{geo:.1f} (geometric mean), target >= x{SPEEDUP_TARGET:.0f}: "
              f"{'met' if worst >= SPEEDUP_TARGET else 'NOT met'}; "
              f"waterfall p95 {p95:.1f} ms, target < {WATERFALL_TARGET_MS:.0f} ms: "
              f"{'met' if p95 < WATERFALL_TARGET_MS else 'NOT met'}")  # fmt: skip
    if not args.skip_pipeline:
        print(f"\n== whole notebook pipeline, {args.pipeline_traces:,} traces")
        bench_pipeline(args.pipeline_traces, out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
