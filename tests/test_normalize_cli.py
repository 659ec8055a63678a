"""`tracelab normalize FILE... --db PATH`: summaries that add up, exit codes, clean errors."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tracelab.cli import SUBCOMMAND_MODULES, build_parser, main

SAMPLES = Path(__file__).resolve().parent.parent / "data" / "samples"


def run_cli(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "tracelab", *args],
        input=stdin,
        capture_output=True,
        timeout=120,
        check=False,
    )


def test_samples_end_to_end(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    files = sorted(str(p) for p in SAMPLES.glob("*.log"))
    r = run_cli("normalize", *files, "--db", str(db), "--json")
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["adds_up"] is True
    assert (summary["read"], summary["events"], summary["joined"]) == (7, 5, 2)
    conn = sqlite3.connect(db)
    rows = conn.execute(
        "SELECT system_id, failure_reason, join_state FROM events WHERE status = 'FAILURE'"
        " ORDER BY system_id"
    ).fetchall()
    assert rows == [
        ("inventory", "FAILURE_REASON_2", "joined"),
        ("orders", "FAILURE_REASON_X", "inline"),
        ("payments", "PAYMENTS_FAILURE_REASON_1", "joined"),
        ("reporting", "REPORTING_FAILURE_REASON_2", "inline"),
    ]
    lineage = conn.execute(
        "SELECT source, offset FROM events WHERE system_id = 'orders'"
    ).fetchall()
    assert sorted(lineage) == [(str(SAMPLES / "orders.log"), 1), (str(SAMPLES / "orders.log"), 2)]
    conn.close()


def test_stdin_and_quarantine_exit_zero_with_text_summary(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    data = (SAMPLES / "payments.log").read_bytes() + b"\n\xff\xfe broken\nnot a log\n\n"
    data += (SAMPLES / "payments.log").read_bytes()  # two duplicates
    r = run_cli("normalize", "-", "--db", str(db), stdin=data)
    assert r.returncode == 0, r.stderr
    out = r.stdout.decode()
    assert "6 = 1 + 1 + 0 + 2 + 2" in out
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT source, offset FROM quarantine ORDER BY offset").fetchall() == [
        ("-", 4),
        ("-", 5),
    ]
    conn.close()


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["normalize", "/nonexistent/in.log", "--db", "{db}"], "input file not found"),
        (["normalize", "{samples}", "--db", "{db}"], "is a folder"),
        (["normalize", "-", "-", "--db", "{db}"], "only once"),
        (["normalize", "{file}", "--db", "{file}/x.db"], "cannot"),
        (["normalize", "{file}", "--db", "{notdb}"], "cannot"),
        (["normalize", "{file}", "--db", "{db}", "--batch-size", "0"], "batch-size"),
    ],
)
def test_unusable_arguments_give_one_line_error(
    tmp_path: Path, args: list[str], needle: str
) -> None:
    notdb = tmp_path / "junk.db"
    notdb.write_bytes(b"this is not a database" * 50)
    subst = {
        "{db}": str(tmp_path / "o.db"),
        "{samples}": str(SAMPLES),
        "{file}": str(SAMPLES / "orders.log"),
        "{notdb}": str(notdb),
    }
    argv = []
    for a in args:
        for k, v in subst.items():
            a = a.replace(k, v)
        argv.append(a)
    r = run_cli(*argv)
    assert r.returncode not in (0, None)
    err = r.stderr.decode().strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith("tracelab: error:") and needle in err
    assert "Traceback" not in err


def test_missing_arguments_are_a_usage_error() -> None:
    r = run_cli("normalize")
    assert r.returncode == 2
    assert b"FILE" in r.stderr


def test_in_process_main_and_registry(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert "tracelab.cli.normalize" in SUBCOMMAND_MODULES
    assert "normalize" in build_parser()._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    db = tmp_path / "m.db"
    code = main(["normalize", str(SAMPLES / "inventory.log"), "--db", str(db), "--no-progress"])
    assert code == 0
    out = capsys.readouterr().out
    assert "2 = 1 + 1 + 0 + 0 + 0" in out
    # running the same file again: everything is a duplicate, nothing changes
    code = main(["normalize", str(SAMPLES / "inventory.log"), "--db", str(db), "--json"])
    again = json.loads(capsys.readouterr().out)
    assert code == 0 and again["duplicates"] == 2 and again["events"] == 0


def test_no_subcommand_prints_help() -> None:
    assert main([]) == 2


def test_parallel_and_serial_give_the_same_database(tmp_path: Path) -> None:
    from tracelab.ingest.pipeline import normalize_files

    lines = []
    for i in range(3000):
        cid = f"c-{i % 700}"
        lines.append(
            f"2025-05-04T10:{i % 60:02d}:00.{i % 1000:03d} PAYMENTS: P{i % 3} - FAILURE (ID: {cid})"
        )
        lines.append(
            f"2025-05-04T10:{i % 60:02d}:00.{i % 1000:03d} PAYMENTS PAYMENTS_ERROR:"
            f" (ID: {cid}) - r{i}"
        )
        if i % 50 == 0:
            lines.append("\xff broken" if i % 100 else lines[-1])
    src = tmp_path / "in.log"
    src.write_text("\n".join(lines) + "\n", encoding="utf-8", errors="surrogateescape")
    dumps = []
    for parallel in (False, True):
        db = tmp_path / f"{parallel}.db"
        s = normalize_files([src, src], db, batch_size=700, parallel=parallel, progress=False)
        assert s.adds_up and s.duplicates >= len(lines)  # the second copy is all duplicates
        conn = sqlite3.connect(db)
        dumps.append(
            (
                s,
                conn.execute(
                    "SELECT id, checkpoint_id, timestamp, correlation_id, failure_reason,"
                    " join_state, source, offset FROM events ORDER BY id"
                ).fetchall(),
                conn.execute("SELECT id, event_id, offset FROM details ORDER BY id").fetchall(),
                conn.execute("SELECT raw, reason, offset FROM quarantine ORDER BY id").fetchall(),
            )
        )
        conn.close()
    assert dumps[0] == dumps[1]
    assert dumps[0][0].joined > 0 and dumps[0][0].quarantined > 0
