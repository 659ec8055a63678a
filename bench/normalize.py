"""Throughput of ``tracelab normalize`` against its limits and peers, measured in one run.

Builds a mixed raw-log file (all four styles, failures with separate details, inline reasons,
~1% duplicates, ~0.5% malformed lines) and prints messages/s for:

- ``tracelab normalize`` end to end (a subprocess: parse, dedupe, join, write SQLite);
- bare ``executemany``: the same number of rows inserted into the same schema, batched alike;
- ``lognormalizer`` (liblognorm, C) parsing the same file with a five-shape rulebase, to /dev/null;
- the seed's way: ``json.loads``/``re`` per line, INSERT + COMMIT per message (default SQLite
  settings), measured on a subsample and extrapolated;

then the ratios against the targets and the peak RSS of ``normalize`` at two input sizes.

Declared styles (issue 10), also in one run (``--part styles`` runs only these):

- the four seed styles through the declared path (``normalize --serial``, and ``--parallel``
  as users get it on an idle machine: parsing in a second process while the first writes)
  against a bare ``executemany`` of the very rows it stored (events, details, quarantine,
  every column) into a fresh database with the same schema and indexes, 20k rows per
  transaction, through the store's own driver (APSW): target >= 0.75; the same rows through
  Python's ``sqlite3`` (the baseline before the store moved to APSW) are printed beside it;
- a simulated file mixing 20 declared styles (the 4 built-ins and 16 declared: nested JSON
  matched by service, logfmt matched by app, free text with a literal word) against a simulated
  file of the four seed styles, both through ``normalize --serial``: target >= 0.8.

Usage: ``python bench/normalize.py [--messages 1000000] [--seed-sample 3000] [--keep DIR]
[--part all|styles] [--styles-messages 400000]``
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tracelab.ingest.pipeline import DEFAULT_BATCH_SIZE, message_key, prepared_batches  # noqa: E402
from tracelab.ingest.store import SQLiteStore  # noqa: E402
from tracelab.timefmt import stored_to_us  # noqa: E402

TARGETS = {"bare insert": 0.6, "lognormalizer": 0.5, "seed's way": 20.0}
STYLE_TARGETS = {"stored rows": 0.75, "20 styles": 0.8}

_CP = '%checkpoint:char-to{"extradata":" "}% - %status:word%'
_ID = '(ID: %cid:char-to{"extradata":")"}%)'
#: liblognorm rulebase for the five line shapes (all JSON styles share one rule).
RULEBASE = "\n".join(
    [
        "version=2",
        "rule=:%.:json%",
        f"rule=:%ts:word% ORDER: {_CP} {_ID} - %reason:rest%",
        f"rule=:%ts:word% ORDER: {_CP} {_ID}",
        f"rule=:%ts:word% PAYMENTS: {_CP} {_ID}",
        f"rule=:%ts:word% PAYMENTS PAYMENTS_ERROR: {_ID} - %reason:rest%",
        "",
    ]
)


# -- input ----------------------------------------------------------------------------------------


def generate(path: Path, n: int, seed: int = 7) -> dict[str, int]:
    """Write ``n`` mixed raw messages to ``path``; returns counts by kind."""
    rng = random.Random(seed)
    base = 1746354600.0  # 2025-05-04T10:30:00Z
    counts = {"lines": 0, "duplicates": 0, "malformed": 0, "details": 0}
    out: list[str] = []
    written: list[str] = []
    t = base
    trace = 0

    def ts(sec: float) -> str:
        whole = int(sec)
        ms = int((sec - whole) * 1000)
        return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + f".{ms:03d}"

    dumps = json.dumps

    def checkpoint(
        system: str, cp: str, status: str, when: str, cid: str, reason: str | None = None
    ) -> str:
        d = {
            "system": system,
            "checkpoint": cp,
            "status": status,
            "timestamp": when,
            "correlation_id": cid,
        }
        if reason is not None:
            d["failure_reason"] = reason
        return dumps(d)

    while counts["lines"] < n:
        trace += 1
        cid = f"{rng.getrandbits(32):08x}-{trace:07d}"
        t += 0.05
        lines: list[str] = []
        s = t
        for cp in ("INITIATED", "CHECKPOINT_1", "CHECKPOINT_2", "FINALIZED"):
            s += 0.01
            if rng.random() < 0.15:
                lines.append(checkpoint("inventory", cp, "FAILURE", ts(s), cid))
                lines.append(
                    dumps(
                        {
                            "system": "inventory",
                            "correlation_id": cid,
                            "failure_reason": f"FAILURE_REASON_{rng.randint(1, 5)}",
                        }
                    )
                )
                counts["details"] += 1
                s += 0.01
            lines.append(checkpoint("inventory", cp, "SUCCESS", ts(s), cid))
        if rng.random() < 0.5:
            for cp in ("PAYMENTS_CHECKPOINT_1", "PAYMENTS_CHECKPOINT_2", "PAYMENTS_FINALIZED"):
                s += 0.01
                if rng.random() < 0.15:
                    lines.append(f"{ts(s)} PAYMENTS: {cp} - FAILURE (ID: {cid})")
                    s += 0.001
                    lines.append(
                        f"{ts(s)} PAYMENTS PAYMENTS_ERROR: (ID: {cid}) - "
                        f"PAYMENTS_FAILURE_REASON_{rng.randint(1, 4)}"
                    )
                    counts["details"] += 1
                    s += 0.01
                lines.append(f"{ts(s)} PAYMENTS: {cp} - SUCCESS (ID: {cid})")
        for cp in ("REPORTING_INITIATED", "REPORTING_CHECKPOINT_1", "REPORTING_FINALIZED"):
            s += 0.01
            if rng.random() < 0.1:
                reason = f"REPORTING_FAILURE_REASON_{rng.randint(1, 3)}"
                lines.append(checkpoint("reporting", cp, "FAILURE", ts(s), cid, reason))
            lines.append(checkpoint("reporting", cp, "SUCCESS", ts(s), cid))
        for cp in ("ORDER_INITIALIZED", "ORDER_CHECKPOINT_1", "ORDER_FINALIZED"):
            s += 0.01
            if rng.random() < 0.1:
                lines.append(
                    f"{ts(s)} ORDER: {cp} - FAILURE (ID: {cid}) - "
                    f"FAILURE_REASON_{rng.choice('XYZ')} (retry {rng.randint(1, 3)})"
                )
            lines.append(f"{ts(s)} ORDER: {cp} - SUCCESS (ID: {cid})")
        for line in lines:
            r = rng.random()
            if r < 0.005:
                line = line[: rng.randint(5, 40)]  # truncated: malformed
                counts["malformed"] += 1
            out.append(line)
            written.append(line)
            if r > 0.99 and written:
                out.append(written[-1 - rng.randint(0, min(len(written) - 1, 50))])
                counts["duplicates"] += 1
        counts["lines"] = len(out)
        if len(written) > 200:
            del written[:100]
    del out[n:]
    counts["lines"] = len(out)
    path.write_text("\n".join(out) + "\n", encoding="utf-8")
    return counts


# -- measurements ---------------------------------------------------------------------------------


GNU_TIME = "/usr/bin/time" if os.path.exists("/usr/bin/time") else None


def spawn(
    cmd: list[str], stdin: Path | None = None, capture: bool = True
) -> tuple[float, float, int, bytes]:
    """Run ``cmd``; return (wall s, CPU s, peak RSS KiB, stdout).

    CPU covers the child and the processes it waited for. Peak RSS (the largest process) comes
    from GNU time when present: ``wait4`` on a child spawned from this big process would report
    this process's own peak (the child shares its memory until ``exec``).
    """
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        actions = [(os.POSIX_SPAWN_DUP2, err.fileno(), 2)]
        if capture:
            actions.append((os.POSIX_SPAWN_DUP2, out.fileno(), 1))
        else:
            actions.append((os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0))
        if stdin is not None:
            actions.append((os.POSIX_SPAWN_OPEN, 0, str(stdin), os.O_RDONLY, 0))
        full = [GNU_TIME, "-f", "TRACELAB_MAXRSS_KB=%M", *cmd] if GNU_TIME else cmd
        start = time.perf_counter()
        pid = os.posix_spawn(full[0], full, dict(os.environ), file_actions=actions)
        _, status, usage = os.wait4(pid, 0)
        wall = time.perf_counter() - start
        out.seek(0)
        err.seek(0)
        errors = err.read().decode(errors="replace")
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit(f"{cmd[0]} failed: {errors}")
        rss = usage.ru_maxrss
        found = re.findall(r"TRACELAB_MAXRSS_KB=(\d+)", errors)
        if found:
            rss = int(found[-1])
        return wall, usage.ru_utime + usage.ru_stime, rss, out.read()


def run_normalize(path: Path, db: Path, batch: int, mode: str) -> tuple[float, float, int, dict]:
    """(wall s, CPU s, peak RSS KiB, JSON summary) of ``tracelab normalize`` as a subprocess."""
    for suffix in ("", "-wal", "-shm"):
        Path(str(db) + suffix).unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "tracelab", "normalize", str(path), "--db", str(db)]
    cmd += ["--json", "--no-progress", "--batch-size", str(batch), f"--{mode}"]
    wall, cpu, rss, out = spawn(cmd)
    return wall, cpu, rss, json.loads(out)


def bare_insert(n: int, db: Path, batch: int) -> tuple[float, float]:
    """(wall s, CPU s) to executemany ``n`` prepared event rows into a fresh same-schema db."""
    for suffix in ("", "-wal", "-shm"):
        Path(str(db) + suffix).unlink(missing_ok=True)
    store = SQLiteStore(db)
    conn = store.connection
    now = "2026-01-01T00:00:00.000000Z"
    rows = []
    for i in range(n):
        ts = f"2025-05-04T{10 + i // 3600000:02d}:{(i // 60000) % 60:02d}:{(i // 1000) % 60:02d}"
        ts += f".{i % 1000:03d}000Z"
        cid = f"{i * 2654435761 % 2**32:08x}-{i // 12:07d}"
        key = message_key(str(i).encode(), ts)
        rows.append((i + 1, "inventory", "CHECKPOINT_1", ts, "SUCCESS", cid, None, None, None,
                     "bench.log", None, i + 1, now, key, stored_to_us(ts)))  # fmt: skip
    sql = (  # every column the store writes, values prepared before the clock starts
        "INSERT INTO events (id, system_id, checkpoint_id, timestamp, status, correlation_id,"
        " failure_reason, join_state, attributes, source, partition, offset, ingested_at,"
        " msg_hash, ts_us) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    )
    start, cpu = time.perf_counter(), time.process_time()
    for i in range(0, n, batch):
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(sql, rows[i : i + batch])
        conn.execute("COMMIT")
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    store.close()
    return elapsed, cpu


def parse_only(path: Path, batch: int) -> tuple[float, float]:
    """(wall s, CPU s) of tracelab's parse + digest step alone, in this process."""
    start, cpu = time.perf_counter(), time.process_time()
    for _ in prepared_batches([str(path)], batch):
        pass
    return time.perf_counter() - start, time.process_time() - cpu


def lognormalizer(path: Path, workdir: Path) -> tuple[float, float] | None:
    """(wall s, CPU s) for lognormalizer to parse the file to /dev/null; None when missing."""
    exe = shutil.which("lognormalizer")
    if exe is None:
        return None
    rb = workdir / "tracelab.rb"
    rb.write_text(RULEBASE, encoding="utf-8")
    wall, cpu, _, _ = spawn([exe, "-r", str(rb), "-e", "json"], stdin=path, capture=False)
    return wall, cpu


def lognormalizer_check(path: Path, workdir: Path, n: int = 2000) -> tuple[int, int]:
    """(lines parsed, lines unparsed) by the rulebase on the first ``n`` lines."""
    exe = shutil.which("lognormalizer")
    assert exe is not None
    head = b"".join(path.open("rb").readlines()[:n])
    r = subprocess.run(
        [exe, "-r", str(workdir / "tracelab.rb"), "-e", "json"],
        input=head,
        capture_output=True,
        check=True,
    )
    lines = r.stdout.splitlines()
    bad = sum(1 for ln in lines if b"unparsed-data" in ln)
    return len(lines) - bad, bad


_SEED_ORDERS = re.compile(r"(\S+) ORDER: (\S+) - (\w+) \(ID: ([^)]+)\)(?: - (.*))?")
_SEED_PAY = re.compile(r"(\S+) PAYMENTS: (\S+) - (\w+) \(ID: ([^)]+)\)")
_SEED_PAY_ERR = re.compile(r"(\S+) PAYMENTS PAYMENTS_ERROR: \(ID: ([^)]+)\) - (.*)")


def seed_way(path: Path, db: Path, sample: int) -> tuple[float, float, int]:
    """The seed's consumer: parse each line, INSERT and COMMIT each message (default settings).

    Returns (wall s, CPU s, messages) for the first ``sample`` lines.
    """
    for suffix in ("", "-journal", "-wal", "-shm"):
        Path(str(db) + suffix).unlink(missing_ok=True)
    conn = sqlite3.connect(db)
    conn.execute(
        "CREATE TABLE events (id INTEGER PRIMARY KEY, system_id TEXT, checkpoint_id TEXT,"
        " timestamp TEXT, status TEXT, correlation_id TEXT, failure_reason TEXT)"
    )
    conn.execute("CREATE TABLE errors (correlation_id TEXT, failure_reason TEXT)")
    conn.commit()
    with path.open("r", encoding="utf-8", errors="replace") as f:
        lines = [next(f) for _ in range(sample)]
    start, cpu = time.perf_counter(), time.process_time()
    for line in lines:
        line = line.strip()
        try:
            if line.startswith("{"):
                d = json.loads(line)
                if "checkpoint" in d:
                    conn.execute(
                        "INSERT INTO events (system_id, checkpoint_id, timestamp, status,"
                        " correlation_id, failure_reason) VALUES (?, ?, ?, ?, ?, ?)",
                        (d["system"], d["checkpoint"], d["timestamp"], d["status"],
                         d["correlation_id"], d.get("failure_reason")),
                    )  # fmt: skip
                else:
                    conn.execute(
                        "INSERT INTO errors VALUES (?, ?)",
                        (d["correlation_id"], d["failure_reason"]),
                    )
            elif m := _SEED_ORDERS.match(line):
                conn.execute(
                    "INSERT INTO events (system_id, checkpoint_id, timestamp, status,"
                    " correlation_id, failure_reason) VALUES ('orders', ?, ?, ?, ?, ?)",
                    (m[2], m[1], m[3], m[4], m[5]),
                )
            elif m := _SEED_PAY.match(line):
                conn.execute(
                    "INSERT INTO events (system_id, checkpoint_id, timestamp, status,"
                    " correlation_id) VALUES ('payments', ?, ?, ?, ?)",
                    (m[2], m[1], m[3], m[4]),
                )
            elif m := _SEED_PAY_ERR.match(line):
                conn.execute("INSERT INTO errors VALUES (?, ?)", (m[2], m[3]))
            conn.commit()
        except (ValueError, KeyError):
            continue
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    conn.close()
    return elapsed, cpu, len(lines)


# -- report ---------------------------------------------------------------------------------------


# -- declared styles -------------------------------------------------------------------------


def rebuild_stored_rows(
    src: Path, dst: Path, batch: int = 20_000, driver: str = "apsw"
) -> tuple[float, float, int]:
    """(wall s, CPU s, rows) to executemany every row ``src`` stored into a fresh same-schema db,
    through the store's own connection (``apsw``) or Python's ``sqlite3`` with the same pragmas."""
    for suffix in ("", "-wal", "-shm"):
        Path(str(dst) + suffix).unlink(missing_ok=True)
    tables = ("events", "details", "quarantine")
    with sqlite3.connect(src) as conn:
        data = {}
        for table in tables:
            cols = [r[1] for r in conn.execute(f"PRAGMA table_info({table})")]
            query = f"SELECT {', '.join(cols)} FROM {table}"  # noqa: S608 - our own table names
            data[table] = (cols, conn.execute(query).fetchall())
    store = SQLiteStore(dst)
    c: Any = store.connection
    if driver == "sqlite3":
        store.close()
        c = sqlite3.connect(dst, isolation_level=None)
        for pragma in ("synchronous = NORMAL", "cache_size = -65536", "wal_autocheckpoint = 16384"):
            c.execute(f"PRAGMA {pragma}")
    rows = 0
    start, cpu = time.perf_counter(), time.process_time()
    for table in tables:
        cols, values = data[table]
        marks = ", ".join("?" * len(cols))
        sql = f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({marks})"  # noqa: S608
        for i in range(0, len(values), batch):
            c.execute("BEGIN IMMEDIATE")
            c.executemany(sql, values[i : i + batch])
            c.execute("COMMIT")
        rows += len(values)
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    c.close()
    return elapsed, cpu, rows


def _declared_styles(k: int) -> dict:
    """``k`` declared styles, a third nested JSON, a third logfmt, a third free text."""
    styles = {}
    for i in range(k):
        kind = i % 3
        if kind == 0:
            styles[f"ecs-{i}"] = {
                "format": "json", "system": f"svc{i}",
                "match": {"service.name": f"svc{i}", "event.dataset": "audit"},
                "fields": {"checkpoint_id": "event.action", "status": "event.outcome",
                           "timestamp": "@timestamp", "correlation_id": "trace.id",
                           "failure_reason": "error.message"},
                "status": {"SUCCESS": ["success"], "FAILURE": ["failure"]},
            }  # fmt: skip
        elif kind == 1:
            styles[f"logfmt-{i}"] = {
                "format": "logfmt", "system": f"svc{i}", "match": {"app": f"svc{i}"},
                "fields": {"checkpoint_id": "step", "status": "result", "timestamp": "ts",
                           "correlation_id": "trace_id", "failure_reason": "err"},
                "status": {"SUCCESS": ["ok"], "FAILURE": ["failed"]}, "timestamp": "epoch_ms",
            }  # fmt: skip
        else:
            word = f"svc{i}"
            styles[f"text-{i}"] = {
                "format": "regex", "system": word, "timestamp": "epoch_ms",
                "pattern": rf"(?P<timestamp>\d{{13}}) {word} (?P<checkpoint_id>[A-Za-z0-9_.-]+)"
                           rf" (?P<status>done|FAILED) trace=(?P<correlation_id>[0-9a-f-]+)",
                "template": f"{{timestamp}} {word} {{checkpoint_id}} {{status}}"
                            " trace={correlation_id}",
                "status": {"SUCCESS": ["done"], "FAILURE": ["FAILED"]},
                "detail": {"pattern": rf"(?P<timestamp>\d{{13}}) {word} why"
                                      r" trace=(?P<correlation_id>[0-9a-f-]+):"
                                      r" (?P<failure_reason>.*+)",
                           "template": f"{{timestamp}} {word} why"
                                       " trace={correlation_id}: {failure_reason}",
                           "join": "nearest_before"},
            }  # fmt: skip
    return styles


def _flow(bindings: dict[str, str]) -> dict:
    """A flow of the given systems (name -> style), four per parallel stage."""
    names = list(bindings)
    systems = {
        n: {"style": style, "latency_ms": {"dist": "lognormal", "median": 40, "sigma": 0.5},
            "detail_delay_ms": {"dist": "uniform", "min": 1, "max": 200},
            "retry": {"limit": 1, "delay_ms": 100},
            "checkpoints": ["START", {"name": "WORK", "failure_probability": 0.08,
                                      "reasons": ["timeout after 3000 ms", "Bad input: x=1"]},
                            "DONE"]}
        for n, style in bindings.items()
    }  # fmt: skip
    stages = [names[i : i + 4] for i in range(0, len(names), 4)]
    return {"name": "bench", "arrival_ms": 5, "systems": systems, "routing": {"entry": stages}}


def styles_bench(work: Path, n: int, batch: int) -> None:
    """The two declared-styles figures, printed as ratios measured in this run."""
    import yaml

    from tracelab.simulate import simulate
    from tracelab.simulate.flows import parse_flow
    from tracelab.simulate.sinks import FileSink

    builtin = ["json-separate", "json-inline", "text-separate", "text-inline"]
    declared = _declared_styles(16)
    style_file = work / "styles20.yaml"
    style_file.write_text(yaml.safe_dump({"styles": declared}, sort_keys=False), encoding="utf-8")
    four = _flow({f"sys{i}": builtin[i % 4] for i in range(4)})
    twenty = _flow({**{f"sys{i}": builtin[i] for i in range(4)},
                    **{s["system"]: name for name, s in declared.items()}})  # fmt: skip
    files = {}
    for label, flow in (("4 styles", four), ("20 styles", twenty)):
        path = work / f"{label.replace(' ', '')}.log"
        traces = max(1, n // (len(flow["systems"]) * 3 + 1))
        f = parse_flow(flow, "bench", [style_file])
        with FileSink(path) as sink:
            result = simulate(f, traces, 7, None, sink)
        files[label] = (path, result.messages)
        print(f"input {label}: {result.messages:,} messages, {path.stat().st_size / 1e6:.0f} MB")

    def normalize(path: Path, db: Path, serial: bool = True) -> tuple[float, float, dict]:
        for suffix in ("", "-wal", "-shm"):
            Path(str(db) + suffix).unlink(missing_ok=True)
        cmd = [sys.executable, "-m", "tracelab", "normalize", str(path), "--db", str(db),
               "--json", "--no-progress", "--batch-size", str(batch),
               "--styles", str(style_file), "--serial" if serial else "--parallel"]  # fmt: skip
        wall, cpu, _rss, out = spawn(cmd)
        return wall, cpu, json.loads(out)

    seed_file, seed_n = work / "mixed-styles.log", n
    counts = generate(seed_file, seed_n)
    seed_n = counts["lines"]
    best: dict[str, tuple[float, float]] = {}

    def keep(name: str, wall: float, cpu: float) -> None:
        old = best.get(name, (wall, cpu))
        best[name] = (min(wall, old[0]), min(cpu, old[1]))

    for _ in range(2):  # alternate; the best of each is kept
        wall, cpu, summary = normalize(seed_file, work / "seed4.db")
        keep("seed 4 styles normalize", wall, cpu)
        wall, cpu, _ = normalize(seed_file, work / "seed4p.db", serial=False)
        keep("seed 4 styles normalize, 2 processes", wall, cpu)
        wall, cpu, rows = rebuild_stored_rows(work / "seed4.db", work / "rows.db", 20_000)
        keep("stored rows executemany", wall, cpu)
        wall, cpu, _ = rebuild_stored_rows(work / "seed4.db", work / "rows.db", 20_000, "sqlite3")
        keep("stored rows executemany, sqlite3", wall, cpu)
        for label, (path, _m) in files.items():
            wall, cpu, _ = normalize(path, work / "s.db")
            keep(label, wall, cpu)
    print(f"load average: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"\n{'declared styles':<46}{'wall s':>9}{'CPU s':>9}{'msgs/s wall':>14}")
    print("-" * 80)
    for name, (w, c) in best.items():
        count = {"4 styles": files["4 styles"][1], "20 styles": files["20 styles"][1]}.get(
            name, seed_n
        )
        print(f"{name:<46}{w:>9.2f}{c:>9.2f}{count / w:>14,.0f}")
    n_w, n_c = best["seed 4 styles normalize"]
    b_w, b_c = best["stored rows executemany"]
    r4 = files["4 styles"][1] / best["4 styles"][0]
    r20 = files["20 styles"][1] / best["20 styles"][0]
    c4 = files["4 styles"][1] / best["4 styles"][1]
    c20 = files["20 styles"][1] / best["20 styles"][1]
    print(f"\n{'ratio':<60}{'wall':>8}{'CPU':>8}{'target':>8}")
    print("-" * 84)
    p_w, p_c = best["seed 4 styles normalize, 2 processes"]
    print(f"{'seed styles, declared path (--serial) / bare executemany':<60}"
          f"{b_w / n_w:>8.2f}{b_c / n_c:>8.2f}{STYLE_TARGETS['stored rows']:>8.2f}")  # fmt: skip
    print(f"{'seed styles, declared path (2 processes) / bare executemany':<60}"
          f"{b_w / p_w:>8.2f}{b_c / p_c:>8.2f}{STYLE_TARGETS['stored rows']:>8.2f}")  # fmt: skip
    s_w, s_c = best["stored rows executemany, sqlite3"]
    print(f"{'the same two against sqlite3 executemany (before APSW)':<60}"
          f"{s_w / n_w:>8.2f}{s_c / n_c:>8.2f}")  # fmt: skip
    print(f"{'':<60}{s_w / p_w:>8.2f}{s_c / p_c:>8.2f}")
    print(f"{'20 declared styles / 4 styles (msgs/s)':<60}"
          f"{r20 / r4:>8.2f}{c20 / c4:>8.2f}{STYLE_TARGETS['20 styles']:>8.2f}")  # fmt: skip
    print(f"(rows rebuilt: {rows:,}; normalize summary of the seed file: {summary})")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--part", choices=("all", "styles"), default="all")
    ap.add_argument("--styles-messages", type=int, default=400_000)
    ap.add_argument("--messages", type=int, default=1_000_000)
    ap.add_argument("--seed-sample", type=int, default=3000, help="lines for the seed's way")
    ap.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE)
    ap.add_argument("--keep", type=Path, help="keep the generated files in this folder")
    ap.add_argument("--repeat", type=int, default=2, help="rounds; the best of each is kept")
    args = ap.parse_args(argv)

    work = args.keep or Path(tempfile.mkdtemp(prefix="tracelab-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    if args.part == "styles":
        styles_bench(work, args.styles_messages, args.batch_size)
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
        return 0
    n = args.messages
    small_n = max(n // 4, 1000)
    big, small = work / "mixed.log", work / "mixed-small.log"
    t0 = time.perf_counter()
    counts = generate(big, n)
    generate(small, small_n)
    print(
        f"input: {counts['lines']:,} messages ({big.stat().st_size / 1e6:.0f} MB; "
        f"{counts['details']:,} details, {counts['duplicates']:,} duplicates, "
        f"{counts['malformed']:,} malformed) built in {time.perf_counter() - t0:.1f} s",
        flush=True,
    )

    print(f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs", flush=True)
    # name -> (best wall s, best CPU s, messages, note); rounds alternate the methods so that
    # changing load on the machine hits them alike, and the best of the rounds is kept.
    best: dict[str, tuple[float, float, int, str]] = {}

    def add(name: str, count: int, wall: float, cpu: float, note: str = "") -> None:
        old = best.get(name)
        if old is not None:
            wall, cpu = min(wall, old[0]), min(cpu, old[1])
        best[name] = (wall, cpu, count, note)
        print(f"  measured: {name}: {count / wall:,.0f} msgs/s wall", flush=True)

    rss: dict[str, int] = {}
    summary: dict = {}
    seed_name = "seed's way (insert+commit per msg)"
    for rnd in range(1, args.repeat + 1):
        print(f"round {rnd} of {args.repeat}", flush=True)
        for mode, label in (("parallel", "(2 processes)"), ("serial", "--serial")):
            wall, cpu, peak, summary = run_normalize(big, work / "e2e.db", args.batch_size, mode)
            add(f"tracelab normalize {label}", n, wall, cpu)
            rss[f"{mode} big"] = max(rss.get(f"{mode} big", 0), peak)
        wall, cpu = bare_insert(n, work / "bare.db", args.batch_size)
        add("bare executemany, same schema", n, wall, cpu)
        wall, cpu = parse_only(big, args.batch_size)
        add("tracelab parse only (no storage)", n, wall, cpu, "prepare(), no SQLite")
        ln_times = lognormalizer(big, work)
        if ln_times is not None:
            ok, bad = lognormalizer_check(big, work)
            add("lognormalizer (C, parse only)", n, *ln_times, f"parsed {ok} of {ok + bad} sampled")
        elif rnd == 1:
            print("note: lognormalizer not found (apt-get install liblognorm-utils); row skipped")
        wall, cpu, seed_n = seed_way(big, work / "seed.db", args.seed_sample)
        add(seed_name, seed_n, wall, cpu, f"first {seed_n:,} lines, rate extrapolated")
    for mode in ("parallel", "serial"):
        _, _, peak, _ = run_normalize(small, work / "small.db", args.batch_size, mode)
        rss[f"{mode} small"] = peak

    def rate(name: str) -> tuple[float, float]:
        wall, cpu, count, _ = best[name]
        return count / wall, count / cpu

    e2e = rate("tracelab normalize (2 processes)")
    e2e_serial = rate("tracelab normalize --serial")
    bare = rate("bare executemany, same schema")
    ln = rate("lognormalizer (C, parse only)") if "lognormalizer (C, parse only)" in best else None
    seed = rate(seed_name)
    rows = [(name, c / w, c / u, note) for name, (w, u, c, note) in best.items()]
    rss_big, rss_big_serial = rss["parallel big"], rss["serial big"]
    rss_small, rss_small_serial = rss["parallel small"], rss["serial small"]

    print(f"\nsummary of normalize: {summary}")
    print(f"\nbest of {args.repeat} round(s)")
    print(f"{'method':<38}{'msgs/s wall':>13}{'msgs/s CPU':>13}  notes")
    print("-" * 96)
    for name, rate, cpu_rate, note in rows:
        print(f"{name:<38}{rate:>13,.0f}{cpu_rate:>13,.0f}  {note}")

    print(
        f"\n{'ratio of end to end to':<30}{'2 proc wall':>12}{'serial wall':>12}"
        f"{'CPU-time':>10}{'target':>8}  met (wall, either mode)"
    )
    print("-" * 100)
    checks = [("bare insert", bare, TARGETS["bare insert"])]
    if ln:
        checks.append(("lognormalizer", ln, TARGETS["lognormalizer"]))
    checks.append(("seed's way", seed, TARGETS["seed's way"]))
    for name, (w, c), target in checks:
        rp, rs, rc = e2e[0] / w, e2e_serial[0] / w, e2e_serial[1] / c
        met = "yes" if max(rp, rs) >= target else "NO"
        print(f"{name:<30}{rp:>12.2f}{rs:>12.2f}{rc:>10.2f}{target:>7.1f}x  {met}")
    print(
        "(CPU-time: serial end to end vs the baseline, both per CPU second: insensitive to"
        " other load on the machine)"
    )

    print(
        f"\npeak RSS of normalize (largest process): {rss_small / 1024:.0f} MiB at "
        f"{small_n:,} messages, {rss_big / 1024:.0f} MiB at {n:,} "
        f"(x{rss_big / max(rss_small, 1):.2f} for x{n / small_n:.0f} input); --serial: "
        f"{rss_small_serial / 1024:.0f} -> {rss_big_serial / 1024:.0f} MiB"
    )
    print(f"load average after: {os.getloadavg()[0]:.1f}")
    print()
    styles_bench(work, args.styles_messages, args.batch_size)
    if args.keep is None:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
