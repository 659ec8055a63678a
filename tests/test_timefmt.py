"""Timestamps: every accepted form lands in the one fixed-width UTC form; junk gives None."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from tracelab.timefmt import format_datetime, normalize_epoch, normalize_timestamp


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2025-05-04T10:30:00.123", "2025-05-04T10:30:00.123000Z"),
        ("2025-05-04T10:30:00", "2025-05-04T10:30:00.000000Z"),
        ("2025-05-04 10:30:00", "2025-05-04T10:30:00.000000Z"),
        ("2025-05-04T10:30:00Z", "2025-05-04T10:30:00.000000Z"),
        ("2025-05-04T10:30:00.5z", "2025-05-04T10:30:00.500000Z"),
        ("2025-05-04T10:30:00.123456789", "2025-05-04T10:30:00.123456Z"),
        ("2025-05-04T10:30:00,25", "2025-05-04T10:30:00.250000Z"),
        ("2025-05-04T12:30:00+02:00", "2025-05-04T10:30:00.000000Z"),
        ("2025-05-04T12:30:00.1+0200", "2025-05-04T10:30:00.100000Z"),
        ("2025-05-04T08:00:00-02", "2025-05-04T10:00:00.000000Z"),
        ("2025-05-04T23:30:00-01:00", "2025-05-05T00:30:00.000000Z"),
        ("2024-02-29T00:00:00", "2024-02-29T00:00:00.000000Z"),
        ("  2025-05-04T10:30:00  ", "2025-05-04T10:30:00.000000Z"),
    ],
)
def test_accepted_forms(text: str, expected: str) -> None:
    assert normalize_timestamp(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "yesterday",
        "2025-13-04T10:30:00",
        "2025-02-30T10:30:00",
        "2023-02-29T10:30:00",
        "2025-05-04T24:00:00",
        "2025-05-04T10:60:00",
        "2025-05-04T10:30:61.000",
        "2025-05-04T10:30:00+25:00",
        "2025-05-04",
        "2025-05-04T10:30:00.123 trailing",
        "２０２５-05-04T10:30:00",  # non-ASCII digits
        "2025-05-04T10:30:00.1٢3",
    ],
)
def test_rejected_forms(text: str) -> None:
    assert normalize_timestamp(text) is None


def test_fixed_width_and_text_order_is_time_order() -> None:
    inputs = [
        "2025-05-04T10:30:00.999+00:00",
        "2025-05-04T12:30:00.5+02:00",
        "2025-05-04T10:30:00.123",
        "2025-05-04T10:30:01Z",
        "2025-05-04T09:00:00-01:00",
    ]
    out = [normalize_timestamp(t) for t in inputs]
    assert all(o is not None and len(o) == 27 for o in out)
    parsed = [datetime.strptime(o, "%Y-%m-%dT%H:%M:%S.%fZ") for o in out]  # type: ignore[arg-type]
    assert sorted(out, key=str) == [o for _, o in sorted(zip(parsed, out, strict=True))]


def test_format_datetime_converts_aware_to_utc() -> None:
    aware = datetime(2025, 5, 4, 12, 0, tzinfo=timezone(timedelta(hours=2)))
    assert format_datetime(aware) == "2025-05-04T10:00:00.000000Z"
    assert format_datetime(datetime(2025, 5, 4, 10, 0, 0, 7)) == "2025-05-04T10:00:00.000007Z"
    assert format_datetime(datetime(2025, 5, 4, tzinfo=UTC)) == "2025-05-04T00:00:00.000000Z"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0, "1970-01-01T00:00:00.000000Z"),
        (1746354600.5, "2025-05-04T10:30:00.500000Z"),
        (1746354600500, "2025-05-04T10:30:00.500000Z"),
        (float("nan"), None),
        (1e300, None),
    ],
)
def test_epoch(value: float, expected: str | None) -> None:
    assert normalize_epoch(value) == expected
