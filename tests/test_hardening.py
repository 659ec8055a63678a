"""Issue 11, one test per row (rows 2 and 11 live with the styles and the explorer): no message
stops ingestion, nothing is lost silently, every failure says what happened. Real SQLite, real
processes, the real broker for the Kafka rows; no mocks."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import apsw
import pytest

from tracelab.errors import StoreError
from tracelab.ingest.boundary import is_database_failure, storable_text
from tracelab.ingest.parsers import BAD, parse
from tracelab.ingest.pipeline import message_key, normalize_files, prepare
from tracelab.ingest.store import SQLiteStore

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable

SURROGATE = (
    b'{"system":"reporting","checkpoint":"C","status":"FAILURE",'
    b'"timestamp":"2025-05-04T10:30:00","correlation_id":"sur\\ud800","failure_reason":"R"}'
)
GOOD = [
    b"2025-05-04T10:30:00 ORDER: CP_A - FAILURE (ID: a) - R1",
    b"2025-05-04T10:30:01 ORDER: CP_B - SUCCESS (ID: a)",
    b'{"system": "inventory", "checkpoint": "C1", "status": "FAILURE", '
    b'"timestamp": "2025-05-04T10:30:02", "correlation_id": "b"}',
    b'{"system": "inventory", "correlation_id": "b", "failure_reason": "R2"}',
    b"2025-05-04T10:30:03 PAYMENTS: P1 - FAILURE (ID: c)",
    b"2025-05-04T10:30:04 PAYMENTS PAYMENTS_ERROR: (ID: c) - R3",
]


def tracelab(*args: str, timeout: float = 120, **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PY, "-m", "tracelab", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=timeout,
        check=False,
        **kw,  # type: ignore[arg-type]
    )


def table(db: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute(sql).fetchall()


# -- row 1: poison pill (lone surrogate) ------------------------------------------------------


def test_row1_lone_surrogate_is_stored_escaped_and_the_batch_goes_on(tmp_path: Path) -> None:
    src = tmp_path / "s.log"
    src.write_bytes(b"\n".join([GOOD[0], SURROGATE, *GOOD[1:]]) + b"\n")
    r = tracelab("normalize", str(src), "--db", str(tmp_path / "s.db"), "--json")
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["adds_up"] and summary["read"] == 7 and summary["quarantined"] == 0
    cids = {c for (c,) in table(tmp_path / "s.db", "SELECT correlation_id FROM events")}
    assert cids == {"a", "b", "c", "sur\\ud800"}  # the escape as it was written in the JSON


def test_store_quarantines_a_row_it_cannot_write_with_raw_bytes_and_goes_on(
    tmp_path: Path,
) -> None:
    """The store's boundary: a parsed row SQLite refuses (here a value it cannot bind) is split
    out of the batch and quarantined with its raw bytes and the exception; the rest is stored."""
    items, _ = prepare([(v, "f", None, i) for i, v in enumerate(GOOD, 1)])
    poison_raw = b"2025-05-04T10:31:00 ORDER: CP_X - SUCCESS (ID: z)"
    parsed = parse(poison_raw)
    assert parsed is not None
    poisoned = (parsed[0], parsed[1], ["not", "text"], *parsed[3:])
    items.insert(3, (poisoned, message_key(poison_raw), poison_raw, "f", None, 99))
    with SQLiteStore(tmp_path / "x.db") as store:
        summary = store.write_batch(items, blank=0)
    assert summary.adds_up and summary.read == 7 and summary.quarantined == 1
    (row,) = table(tmp_path / "x.db", "SELECT raw, reason, offset FROM quarantine")
    assert row[0] == poison_raw and row[2] == 99
    assert row[1].startswith("error while storing: TypeError") and "binding" in row[1]
    assert table(tmp_path / "x.db", "SELECT count(*) FROM events")[0][0] == 4
    assert table(tmp_path / "x.db", "SELECT count(event_id) FROM details")[0][0] == 2


def test_database_failure_stops_with_store_error_and_rolls_back(tmp_path: Path) -> None:
    """A full database is not a bad message: the batch is rolled back, nothing quarantined."""
    db = tmp_path / "full.db"
    with SQLiteStore(db) as store:
        store.write_batch(prepare([(GOOD[0], "f", None, 1)])[0])
        pages = store.connection.execute("PRAGMA page_count").fetchone()[0]
        store.connection.execute(f"PRAGMA max_page_count = {pages}")
        many = [
            (f"2025-05-04T10:30:00 ORDER: CP - SUCCESS (ID: {i:06d}-{'x' * 200})".encode(), "f")
            for i in range(2000)
        ]
        items, _ = prepare([(v, s, None, i) for i, (v, s) in enumerate(many, 2)])
        with pytest.raises(StoreError, match="full"):
            store.write_batch(items)
    assert table(db, "SELECT count(*) FROM events")[0][0] == 1
    assert table(db, "SELECT count(*) FROM quarantine")[0][0] == 0
    assert is_database_failure(sqlite3.OperationalError("database is locked"))
    assert not is_database_failure(UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogate"))
    # the store's own connection is APSW's: the same split by its exception classes
    assert is_database_failure(apsw.BusyError("database is locked"))
    assert is_database_failure(apsw.FullError("database or disk is full"))
    assert is_database_failure(apsw.ConnectionClosedError("closed"))
    assert not is_database_failure(apsw.ConstraintError("CHECK constraint failed"))
    assert not is_database_failure(apsw.TooBigError("string or blob too big"))


def test_unusable_database_is_one_clear_line_and_exit_1(tmp_path: Path) -> None:
    db = tmp_path / "corrupt.db"
    db.write_bytes(b"this is not a database" * 100)
    src = tmp_path / "a.log"
    src.write_bytes(b"\n".join(GOOD) + b"\n")
    r = tracelab("normalize", str(src), "--db", str(db))
    assert r.returncode == 1
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    assert str(db) in r.stderr


def test_storable_text() -> None:
    assert storable_text("plain é") == "plain é"
    assert storable_text("a\udc80b\ud800") == "a\\udc80b\\ud800"


# -- size cap ---------------------------------------------------------------------------------


def test_size_cap_quarantines_too_large_without_parsing(tmp_path: Path) -> None:
    big = b"2025-05-04T10:30:00 ORDER: A - SUCCESS (ID: " + b"x" * 3000 + b")"
    src = tmp_path / "big.log"
    src.write_bytes(big + b"\r\n" + GOOD[1] + b"\n")
    db = tmp_path / "b.db"
    r = tracelab("normalize", str(src), "--db", str(db), "--max-message-bytes", "2048", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["quarantined"] == 1
    ((raw, reason),) = table(db, "SELECT raw, reason FROM quarantine")
    assert raw == big and reason.startswith("too large")
    # the default cap is 1 MiB: the same line is an event then
    items, _ = prepare([(big, "f", None, 1)])
    assert items[0][0][0] != BAD
    items, _ = prepare([(b"{" + b" " * (1 << 20) + b"}", "f", None, 1)])
    assert items[0][0] == (BAD, items[0][0][1]) and items[0][0][1].startswith("too large")


# -- rows 3 and 4: line endings, BOM ----------------------------------------------------------


@pytest.mark.parametrize("ending", [b"\n", b"\r\n", b"\r"])
def test_row3_every_line_ending_splits_messages(tmp_path: Path, ending: bytes) -> None:
    src = tmp_path / "e.log"
    src.write_bytes(ending.join(GOOD) + ending)
    s = normalize_files([src], tmp_path / "e.db", progress=False)
    assert s.read == len(GOOD) and s.quarantined == 0 and s.adds_up
    reasons = table(tmp_path / "e.db", "SELECT failure_reason FROM events ORDER BY timestamp")
    assert [r for (r,) in reasons] == ["R1", None, "R2", "R3"]


def test_row3_mixed_endings_and_lone_cr_inside_a_file(tmp_path: Path) -> None:
    src = tmp_path / "m.log"
    src.write_bytes(GOOD[0] + b"\r" + GOOD[1] + b"\r\n" + GOOD[2] + b"\n\r" + GOOD[3])
    s = normalize_files([src], tmp_path / "m.db", progress=False)
    assert (s.read, s.blank, s.quarantined) == (4, 1, 0)


def test_row4_utf8_bom_at_file_start_is_dropped(tmp_path: Path) -> None:
    src = tmp_path / "bom.log"
    src.write_bytes(b"\xef\xbb\xbf" + b"\r\n".join(GOOD))
    s = normalize_files([src], tmp_path / "bom.db", progress=False)
    assert s.read == len(GOOD) and s.quarantined == 0
    r = tracelab("normalize", "-", "--db", str(tmp_path / "b2.db"), "--json",
                 input="\ufeff" + "\r".join(g.decode() for g in GOOD))  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["read"] == len(GOOD) and json.loads(r.stdout)["quarantined"] == 0


# -- row 6: parse children die with their parent ----------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_row6_parallel_parse_child_dies_with_its_parent(tmp_path: Path, sig: int) -> None:
    src = tmp_path / "big.log"
    line = GOOD[0] + b"\n"
    with src.open("wb") as fh:
        for _ in range(40):
            fh.write(line * 25_000)
    # the writer is slowed by a small batch size, so the child blocks on a full queue
    proc = subprocess.Popen(
        [PY, "-m", "tracelab", "normalize", str(src), "--db", str(tmp_path / "p.db"),
         "--parallel", "--batch-size", "200", "--no-progress"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        child = None
        deadline = time.monotonic() + 60
        while child is None and time.monotonic() < deadline:
            kids = Path(f"/proc/{proc.pid}/task/{proc.pid}/children")
            text = kids.read_text().split() if kids.exists() else []
            child = int(text[0]) if text else None
            time.sleep(0.1)
        assert child is not None, "no parse child started"
        time.sleep(1.0)
        proc.send_signal(sig)
        proc.wait(timeout=30)
        # the pipe ends: every writer of stdout (the child too) is gone
        assert proc.stdout is not None
        start = time.monotonic()
        proc.stdout.read()
        assert time.monotonic() - start < 20
        deadline = time.monotonic() + 20
        while Path(f"/proc/{child}").exists() and time.monotonic() < deadline:
            stat = Path(f"/proc/{child}/stat").read_text(errors="replace")
            if stat.rsplit(")", 1)[1].split()[0] == "Z":
                break
            time.sleep(0.1)
        alive = Path(f"/proc/{child}/stat").exists() and (
            Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
        )
        assert not alive
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# -- row 7: concurrent runs each add up --------------------------------------------------------


def test_row7_two_concurrent_normalize_runs_each_add_up(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    SQLiteStore(db).close()
    files = []
    for k in range(2):
        lines = []
        for i in range(3000):
            cid = f"r{k}-{i}"
            lines.append(f'{{"system": "inventory", "correlation_id": "{cid}", '
                         f'"failure_reason": "R"}}')  # fmt: skip
            lines.append(f'{{"system": "inventory", "checkpoint": "C", "status": "FAILURE", '
                         f'"timestamp": "2025-05-04T10:30:00", '
                         f'"correlation_id": "{cid}"}}')  # fmt: skip
        f = tmp_path / f"in{k}.log"
        f.write_text("\n".join(lines) + "\n")
        files.append(f)
    procs = [
        subprocess.Popen(
            [
                PY,
                "-m",
                "tracelab",
                "normalize",
                str(f),
                "--db",
                str(db),
                "--batch-size",
                "100",
                "--json",
                "--serial",
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for f in files
    ]
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (out, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err
        s = json.loads(out)
        assert s["adds_up"] and s["read"] == 6000
        assert s["joined"] + s["orphans"] == 3000 and s["events"] == 3000
    with SQLiteStore(db) as store:
        assert store.summary().read == 12000 and store.summary().adds_up


# -- row 8: config parse errors never print the text ------------------------------------------


@pytest.mark.parametrize(
    "name, text, line",
    [
        ("k.yaml", 'security_protocol: SASL_SSL\nsasl_password: "Hunter2\n', 2),
        ("k.json", '{"sasl_password": "Hunter2",\n "x": [}', 2),
        ("k.yml", "sasl_username: u\n\tsasl_password: Hunter2\n", 2),
    ],
)
def test_row8_malformed_kafka_config_names_file_and_line_never_the_text(
    tmp_path: Path, name: str, text: str, line: int
) -> None:
    cfg = tmp_path / name
    cfg.write_text(text)
    r = tracelab("consume", "--kafka-config", str(cfg), "--db", str(tmp_path / "k.db"))
    assert r.returncode == 1
    assert "Hunter2" not in r.stderr + r.stdout
    assert str(cfg) in r.stderr and f"line {line}" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


# -- row 9: unusable arguments ----------------------------------------------------------------


@pytest.mark.parametrize(
    "args, option",
    [
        (["consume", "--bootstrap", ""], "--bootstrap"),
        (["consume", "--group", ""], "--group"),
        (["consume", "--topic", " "], "--topic"),
        (["consume", "--until-idle", "nan"], "--until-idle"),
        (["consume", "--until-idle", "-1"], "--until-idle"),
        (["consume", "--unreachable-timeout", "nan"], "--unreachable-timeout"),
        (["consume", "--unreachable-timeout", "-5"], "--unreachable-timeout"),
        (["consume", "--max-message-bytes", "0"], "--max-message-bytes"),
        (["simulate", "--bootstrap", "", "--traces", "1"], "--bootstrap"),
        (["simulate", "--bootstrap", "h:1", "--topic", ""], "--topic"),
        (["normalize", "x.log", "--max-message-bytes", "-1"], "--max-message-bytes"),
    ],
)
def test_row9_empty_or_nan_arguments_one_line_exit_2(
    tmp_path: Path, args: list[str], option: str
) -> None:
    r = (
        tracelab(*args, "--db", str(tmp_path / "a.db"))
        if args[0] != "simulate"
        else tracelab(*args)
    )
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert len(r.stderr.strip().splitlines()) == 1 and option in r.stderr
    assert not (tmp_path / "a.db").exists()  # refused before anything was touched


def test_row9_blank_bootstrap_from_a_parameter_is_a_usage_error() -> None:
    """Where the blank address does not come from ``--bootstrap`` (a notebook, a parameter),
    ``resolve_bootstrap`` refuses it the same way: a UsageError, which the CLI exits 2 for."""
    from tracelab.errors import UsageError
    from tracelab.kafka.broker import resolve_bootstrap

    with pytest.raises(UsageError, match="empty"):
        resolve_bootstrap(" ")


# -- row 10: reports show log text literally --------------------------------------------------


def test_row10_plot_labels_keep_quotes_and_dollars_literal() -> None:
    from tracelab.analysis.explain_plots import label
    from tracelab.analysis.plots import esc

    assert esc('Warehouse "analytics" read-only') == 'Warehouse "analytics" read-only'
    assert esc("cost $x$ <b>") == "cost &#36;x&#36; &lt;b&gt;"
    assert "&quot;" not in esc('"') and "$" not in esc("$$")
    # the compare figures' labels go through the same escaper
    assert label('cost "$x$" <b>') == esc('cost "$x$" <b>') == 'cost "&#36;x&#36;" &lt;b&gt;'


@pytest.mark.parametrize(
    "name", ["01_simulate", "02_ingest", "03_traces", "04_failures", "06_compare"]
)
def test_row10_committed_notebooks_load_nothing_from_a_cdn(name: str) -> None:
    text = (ROOT / "notebooks" / f"{name}.ipynb").read_text(encoding="utf-8")
    assert 'type=\\"module\\"' not in text and "cdn.plot.ly" not in text
    assert "cdnjs.cloudflare.com" not in text and "mathjax" not in text.lower()


# -- row 12: broker stop returns when the JVM is gone -----------------------------------------


@pytest.mark.kafka
@pytest.mark.slow
def test_row12_broker_stop_returns_only_when_the_jvm_is_gone(tmp_path: Path) -> None:
    from tracelab.kafka.broker import LocalBroker, free_port

    port, controller = free_port(), free_port()
    common = ["--data-dir", str(tmp_path / "k"), "--port", str(port),
              "--controller-port", str(controller)]  # fmt: skip
    env = dict(os.environ, TRACELAB_KAFKA_JVM_OPTS="-XX:TieredStopAtLevel=1 -Xmx384m")
    for _ in range(2):  # stop, then an immediate start on the same ports
        r = tracelab("broker", "start", *common, "--heap", "384m", timeout=240, env=env)
        assert r.returncode == 0, r.stderr
        pid = LocalBroker(tmp_path / "k", port=port, controller_port=controller).pid()
        assert pid is not None
        r = tracelab("broker", "stop", *common, timeout=120)
        assert r.returncode == 0 and "stopped" in r.stdout
        task = Path(f"/proc/{pid}/task")
        threads = len(list(task.iterdir())) if task.exists() else 0
        assert threads <= 1  # at most the exited leader, waiting to be reaped
        if threads:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
            assert state in ("Z", "X")


# -- rows 5 and 9 (Kafka): unreachable broker, missing topic, TLS/SASL refused ----------------


@pytest.mark.kafka
def test_row9_missing_topic_is_a_warning_line_and_exit_1(kafka_bootstrap: str, tmp_path: Path):
    r = tracelab("consume", "--bootstrap", kafka_bootstrap, "--topic", "no-such-topic-here",
                 "--group", "g-missing", "--db", str(tmp_path / "m.db"), "--until-idle", "1",
                 "--no-progress")  # fmt: skip
    assert r.returncode == 1
    assert "does not exist" in r.stderr and len(r.stderr.strip().splitlines()) == 1


@pytest.mark.kafka
@pytest.mark.parametrize(
    "env, says",
    [
        ({"TRACELAB_KAFKA_SECURITY_PROTOCOL": "SSL"}, "TLS handshake failed"),
        (
            {
                "TRACELAB_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
                "TRACELAB_KAFKA_SASL_USERNAME": "u",
                "TRACELAB_KAFKA_SASL_PASSWORD": "Hunter2",
            },
            "SASL authentication failed",
        ),
    ],
)
def test_row9_tls_or_sasl_refused_says_so(
    kafka_bootstrap: str, tmp_path: Path, env: dict[str, str], says: str
) -> None:
    r = tracelab("consume", "--bootstrap", kafka_bootstrap, "--group", "g-auth",
                 "--db", str(tmp_path / "a.db"), "--until-idle", "1", "--no-progress",
                 "--unreachable-timeout", "4", env={**os.environ, **env})  # fmt: skip
    assert r.returncode == 1
    assert says in r.stderr and "is the broker running" not in r.stderr
    assert "Hunter2" not in r.stderr
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("tracelab: error:")]
    assert len(errors) == 1 and says in errors[0], r.stderr


@pytest.mark.kafka
@pytest.mark.slow
def test_row5_unreachable_timeout_applies_without_until_idle(tmp_path: Path) -> None:
    """A consume that runs on (no --until-idle) gives up when its broker is gone: one error
    line, exit 1, every batch received before stored."""
    from tracelab.kafka import KafkaSink
    from tracelab.kafka.broker import LocalBroker, free_port

    broker = LocalBroker(tmp_path / "k", port=free_port(), controller_port=free_port(),
                         heap="384m", jvm_opts=["-XX:TieredStopAtLevel=1"])  # fmt: skip
    broker.start(timeout=240)
    proc = None
    try:
        with KafkaSink(broker.bootstrap, "t5", 2) as sink:
            for i, line in enumerate(GOOD * 50):
                sink.write(line, key=f"k{i}", system="x")
        db = tmp_path / "u.db"
        proc = subprocess.Popen(
            [PY, "-m", "tracelab", "consume", "--bootstrap", broker.bootstrap, "--topic", "t5",
             "--group", "g5", "--db", str(db), "--unreachable-timeout", "6", "--no-progress"],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        deadline = time.monotonic() + 120
        stored = 0
        while time.monotonic() < deadline and stored < 300:
            time.sleep(0.5)
            if db.exists():
                with contextlib.suppress(sqlite3.Error):
                    stored = table(db, "SELECT coalesce(sum(value), 0) FROM counters"
                                       " WHERE name = 'messages'")[0][0]  # fmt: skip
        assert stored == 300
        broker.kill()
        killed = time.monotonic()
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 1
        assert time.monotonic() - killed < 90
        # progress lines ("waiting for the broker", a poll that failed and is retried) may come
        # first, depending on when the client notices; the verdict is one error line
        errors = [ln for ln in err.strip().splitlines() if ln.startswith("tracelab: error:")]
        assert len(errors) == 1 and "giving up" in errors[0], err
        others = [ln for ln in err.strip().splitlines() if ln not in errors]
        assert all("waiting for the broker" in ln or ln.endswith("retrying") for ln in others), err
        assert table(db, "SELECT count(*) FROM events")[0][0] == 4  # GOOD repeated: duplicates
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        broker.stop(timeout=30)
