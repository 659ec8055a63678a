"""Parsers: each built-in style by content, tolerance of real emitters, every kind of bad input.

The styles are declared (tracelab/styles/builtin.yaml) and name no system: any system name is
read, and a reason-less failure of either text or JSON shape may still get its reason from a
separate detail (the seed's lines do not say which style wrote them).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tracelab.ingest.parsers import BAD, DETAIL, EVENT, parse
from tracelab.styles import default_registry

SAMPLES = Path(__file__).resolve().parent.parent / "data" / "samples"


def _event(line: bytes) -> tuple:
    p = parse(line)
    assert p is not None and p[0] == EVENT, p
    return p


def _detail(line: bytes) -> tuple:
    p = parse(line)
    assert p is not None and p[0] == DETAIL, p
    return p


def _bad(line: bytes) -> str:
    p = parse(line)
    assert p is not None and p[0] == BAD, p
    return p[1]


# -- the seed's examples ------------------------------------------------------------------------


def test_seed_samples_parse_to_the_schema() -> None:
    got = {}
    for path in sorted(SAMPLES.glob("*.log")):
        for line in path.read_bytes().splitlines():
            got.setdefault(path.stem, []).append(parse(line))
    assert got["inventory"] == [
        (EVENT, "inventory", "CHECKPOINT_1", "2025-05-04T10:30:00.000000Z", "FAILURE", "abc-123",
         None, "awaiting_detail", None),
        (DETAIL, "inventory", "abc-123", "FAILURE_REASON_2", None),
    ]  # fmt: skip
    assert got["reporting"] == [
        (EVENT, "reporting", "REPORTING_CHECKPOINT_2", "2025-05-04T10:33:00.000000Z", "FAILURE",
         "ghi-789", "REPORTING_FAILURE_REASON_2", "inline", None),
    ]  # fmt: skip
    assert got["orders"] == [
        (EVENT, "orders", "CHECKPOINT_B", "2025-05-04T10:30:00.000000Z", "FAILURE", "abc-123",
         "FAILURE_REASON_X", "inline", None),
        (EVENT, "orders", "CHECKPOINT_A", "2025-05-04T10:30:00.000000Z", "SUCCESS", "abc-123",
         None, None, None),
    ]  # fmt: skip
    assert got["payments"] == [
        (EVENT, "payments", "PAYMENTS_CHECKPOINT_2", "2025-05-04T10:32:00.000000Z", "FAILURE",
         "def-456", None, "awaiting_detail", None),
        (DETAIL, "payments", "def-456", "PAYMENTS_FAILURE_REASON_1",
         "2025-05-04T10:32:01.000000Z"),
    ]  # fmt: skip


def test_reporting_success_has_no_reason_and_no_join_state() -> None:
    p = _event(
        b'{"system": "reporting", "checkpoint": "REPORTING_INITIATED", "status": "SUCCESS",'
        b' "timestamp": "2025-05-04T10:33:00.100", "correlation_id": "ghi-789"}'
    )
    assert p[4:8] == ("SUCCESS", "ghi-789", None, None)


def test_text_failure_without_reason_awaits_a_detail() -> None:
    # text-separate (declared before text-inline) claims text lines without a reason
    assert _event(b"2025-05-04T10:30:00 ORDER: CP - FAILURE (ID: a)")[6:8] == (
        None,
        "awaiting_detail",
    )
    assert _event(b"2025-05-04T10:30:00 ORDER: CP - FAILURE (ID: a) - ")[6:8] == (
        None,
        "awaiting_detail",
    )


def test_any_system_in_any_builtin_style() -> None:
    assert _event(b"2025-05-04T10:30:00 SHIPPING: CP - SUCCESS (ID: a)")[1] == "shipping"
    d = _detail(b'{"system": "reporting", "correlation_id": "c", "failure_reason": "r"}')
    assert d == (DETAIL, "reporting", "c", "r", None)
    d = _detail(b"2025-05-04T10:32:01 ORDER ORDER_ERROR: (ID: a) - R")
    assert d[1:4] == ("orders", "a", "R")


def test_inventory_failure_with_inline_reason_is_inline() -> None:
    p = _event(
        b'{"system":"inventory","checkpoint":"C","status":"FAILURE","timestamp":"2025-05-04T10:30:00",'
        b'"correlation_id":"x","failure_reason":"R"}'
    )
    assert p[6:8] == ("R", "inline")


# -- tolerance ----------------------------------------------------------------------------------


def test_json_any_key_order_case_whitespace_crlf() -> None:
    line = (
        b'  {"correlation_id": "abc-123", "timestamp": "2025-05-04T12:30:00.5+02:00",'
        b' "status": "failure", "checkpoint": "CHECKPOINT_1", "system": " INVENTORY "}\r\n'
    )
    p = _event(line)
    assert p[1:6] == (
        "inventory",
        "CHECKPOINT_1",
        "2025-05-04T10:30:00.500000Z",
        "FAILURE",
        "abc-123",
    )


def test_json_extra_fields_are_kept_as_attributes() -> None:
    line = (
        b'{"system": "reporting", "checkpoint": "R1", "status": "SUCCESS", "host": "h1",'
        b' "timestamp": "2025-05-04T10:30:00Z", "correlation_id": "c", "meta": {"k": [1, 2]}}'
    )
    p = _event(line)
    assert json.loads(p[8]) == {"host": "h1", "meta": {"k": [1, 2]}}


def test_json_key_aliases_and_case() -> None:
    line = (
        b'{"System": "inventory", "checkpoint_id": "C1", "STATUS": "SUCCESS",'
        b' "Timestamp": "2025-05-04T10:30:00", "correlationId": "c-1", "x": 1}'
    )
    p = _event(line)
    assert p[1:6] == ("inventory", "C1", "2025-05-04T10:30:00.000000Z", "SUCCESS", "c-1")
    assert json.loads(p[8]) == {"x": 1}


def test_json_canonical_key_wins_over_alias() -> None:
    line = (
        b'{"system": "inventory", "System": "orders", "checkpoint": "C", "status": "SUCCESS",'
        b' "timestamp": "2025-05-04T10:30:00", "correlation_id": "c"}'
    )
    p = _event(line)
    assert p[1] == "inventory"
    assert json.loads(p[8]) == {"System": "orders"}


def test_json_numeric_correlation_id_and_epoch_timestamp() -> None:
    line = (
        b'{"system":"reporting","checkpoint":"R","status":"SUCCESS","timestamp":0,'
        b'"correlation_id":42}'
    )
    p = _event(line)
    assert p[3] == "1970-01-01T00:00:00.000000Z" and p[5] == "42"


def test_success_with_reason_keeps_reason_as_attribute() -> None:
    line = (
        b'{"system":"reporting","checkpoint":"R","status":"SUCCESS","timestamp":"2025-05-04T10:30:00",'
        b'"correlation_id":"c","failure_reason":"odd"}'
    )
    p = _event(line)
    assert p[6] is None and json.loads(p[8]) == {"failure_reason": "odd"}


@pytest.mark.parametrize(
    "reason",
    [
        "disk full - retry (2) later",
        "Fehler: Lager leer – ÄÖÜ ✓ 在庫なし",
        "'; DROP TABLE events; --",
        '<script>alert(1)</script> & "quotes"',
        "ends with ) paren (ID: x)",
    ],
)
def test_free_text_reasons_survive_in_every_style(reason: str) -> None:
    r = reason.encode()
    assert _event(b"2025-05-04T10:30:00 ORDER: CP - FAILURE (ID: a) - " + r)[6] == reason
    assert _detail(b"2025-05-04T10:30:00 PAYMENTS PAYMENTS_ERROR: (ID: a) - " + r)[3] == reason
    js = json.dumps({"system": "inventory", "correlation_id": "a", "failure_reason": reason})
    assert _detail(js.encode())[3] == reason
    js = json.dumps(
        {"system": "reporting", "checkpoint": "R", "status": "FAILURE", "correlation_id": "a",
         "timestamp": "2025-05-04T10:30:00", "failure_reason": reason}, ensure_ascii=False
    )  # fmt: skip
    assert _event(js.encode())[6] == reason


def test_text_lines_tolerate_case_spacing_and_plural() -> None:
    p = _event(b"2025-05-04T10:30:00.123Z  orders :  CHECKPOINT A  -  success  ( ID:  abc-123 )")
    assert p[1:6] == ("orders", "CHECKPOINT A", "2025-05-04T10:30:00.123000Z", "SUCCESS", "abc-123")
    p = _event(b"2025-05-04 10:30:00 Payments: P1 - Failure (ID: d)")
    assert p[1:5] == ("payments", "P1", "2025-05-04T10:30:00.000000Z", "FAILURE")
    d = _detail(b"2025-05-04T10:32:01+01:00 payments payments_error: (ID: def-456) - R")
    assert d == (DETAIL, "payments", "def-456", "R", "2025-05-04T09:32:01.000000Z")


def test_checkpoint_with_dashes() -> None:
    p = _event(b"2025-05-04T10:30:00 ORDER: STEP - A - SUCCESS (ID: x)")
    assert p[2] == "STEP - A"


def test_system_spellings_are_declared() -> None:
    styles = default_registry().styles
    assert styles["text-inline"].system_id(" ORDER ") == "orders"
    assert styles["json-inline"].system_id("Payments") == "payments"
    assert styles["json-inline"].system_id("shipping") == "shipping"


# -- blank and bad input ------------------------------------------------------------------------


@pytest.mark.parametrize("line", [b"", b"   ", b"\r\n", b"\t \n", b"\x0b\x0c"])
def test_blank_is_not_a_message(line: bytes) -> None:
    assert parse(line) is None


@pytest.mark.parametrize(
    ("line", "needle"),
    [
        (b"\xff\xfe{}", "not valid UTF-8"),
        (b'{"system": "inventory",', "not valid JSON"),
        (b"[1, 2, 3]", "not an object"),
        (b'{"a": [1, 2]', "not valid JSON"),
        (b"{" + b'"a":[' * 100000 + b"]" * 100000 + b"}", "JSON"),
        (b"hello world", "no style matched"),
        (b"\x1c\xc2\xa0", "only whitespace"),
        (b'{"correlation_id": "c", "failure_reason": "r"}', "missing system"),
        (b'{"system": 5, "correlation_id": "c", "failure_reason": "r"}', "unknown system"),
        (b"2025-05-04T10:30:00 ORDER: CP - PENDING (ID: a)", "status 'PENDING'"),
        (
            b'{"system":"reporting","checkpoint":"R","status":"OK","timestamp":"2025-05-04T10:30:00",'
            b'"correlation_id":"c"}',
            "status 'OK'",
        ),
        (
            b'{"system":"reporting","checkpoint":"R","status":1,"timestamp":"2025-05-04T10:30:00",'
            b'"correlation_id":"c"}',
            "is not SUCCESS or FAILURE",
        ),
        (b"2025-05-04T10:30:00 ORDER: CP - SUCCESS (ID: )", "missing correlation_id"),
        (
            b'{"system":"reporting","checkpoint":"R","status":"SUCCESS","timestamp":"2025-05-04T10:30:00"}',
            "missing correlation_id",
        ),
        (
            b'{"system":"reporting","checkpoint":"R","status":"SUCCESS","timestamp":"2025-05-04T10:30:00",'
            b'"correlation_id":["x"]}',
            "correlation_id is not text",
        ),
        (
            b'{"system":"reporting","status":"SUCCESS","timestamp":"2025-05-04T10:30:00","correlation_id":"c"}',
            "missing checkpoint",
        ),
        (
            b'{"system":"reporting","checkpoint":"R","timestamp":"2025-05-04T10:30:00","correlation_id":"c"}',
            "missing status",
        ),
        (
            b'{"system":"reporting","checkpoint":"R","status":"SUCCESS","correlation_id":"c"}',
            "missing timestamp",
        ),
        (
            b'{"system":"reporting","checkpoint":"R","status":"SUCCESS","timestamp":"soon",'
            b'"correlation_id":"c"}',
            "invalid timestamp",
        ),
        (b"2025-02-30T10:30:00 ORDER: CP - SUCCESS (ID: a)", "invalid timestamp"),
        (b"yesterday PAYMENTS PAYMENTS_ERROR: (ID: a) - R", "invalid timestamp"),
        (b'{"system": "inventory", "correlation_id": "c"}', "neither checkpoint/status nor"),
        (b'{"system": "inventory", "correlation_id": "c", "failure_reason": "  "}', "neither"),
        (b"2025-05-04T10:32:01 PAYMENTS PAYMENTS_ERROR: (ID: a)", "without a reason"),
        (b"2025-05-04T10:32:01 PAYMENTS PAYMENTS_ERROR: (ID: a) - ", "without a reason"),
        (b"2025-05-04T10:32:01 PAYMENTS PAYMENTS_ERROR: (ID: ) - R", "missing correlation_id"),
        (
            b'{"system": "inventory", "correlation_id": "c", "failure_reason": "r",'
            b' "timestamp": "x"}',
            "invalid timestamp",
        ),
    ],
)
def test_bad_input_gets_a_reason(line: bytes, needle: str) -> None:
    assert needle in _bad(line)


def test_non_bytes_is_bad_not_a_crash() -> None:
    assert parse("text")[0] == BAD  # type: ignore[arg-type,index]
