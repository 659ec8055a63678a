"""The pure join core: which detail explains which failure, decided from the facts alone."""

from __future__ import annotations

import itertools

import pytest

from tracelab.ingest.join import match


def f(event_id: int, ts: str, h: bytes | None = None) -> tuple[int, str, bytes]:
    return (event_id, ts, h if h is not None else bytes([event_id]) * 16)


def d(detail_id: int, ts: str | None, h: bytes | None = None) -> tuple[int, str | None, bytes]:
    return (detail_id, ts, h if h is not None else bytes([100 + detail_id]) * 16)


def test_nothing_to_match() -> None:
    assert match([], [d(1, "T1")]) == {}
    assert match([f(1, "T1")], []) == {}


def test_timed_detail_takes_nearest_failure_at_or_before() -> None:
    failures = [f(1, "T1"), f(2, "T3"), f(3, "T5")]
    assert match(failures, [d(9, "T4")]) == {9: 2}
    assert match(failures, [d(9, "T3")]) == {9: 2}  # at counts
    assert match(failures, [d(9, "T0")]) == {}  # nothing at or before: orphan


def test_timed_details_each_failure_at_most_once() -> None:
    # F1 D1 F2 D2 in time: each detail explains the failure just before it
    failures = [f(1, "T1"), f(2, "T3")]
    assert match(failures, [d(7, "T2"), d(8, "T4")]) == {7: 1, 8: 2}
    # three details, two failures: the latest detail is the orphan
    assert match(failures, [d(7, "T2"), d(8, "T4"), d(9, "T5")]) == {7: 1, 8: 2}
    # two details after both failures: no failure gets two
    got = match(failures, [d(7, "T4"), d(8, "T5")])
    assert sorted(got.values()) == [1, 2]


def test_untimed_details_take_oldest_failure_first() -> None:
    failures = [f(5, "T3"), f(4, "T1"), f(6, "T2")]  # given in any order
    assert match(failures, [d(1, None)]) == {1: 4}
    assert match(failures, [d(2, None), d(1, None)]) == {1: 4, 2: 6}
    assert match(failures, [d(i, None) for i in range(1, 6)]) == {1: 4, 2: 6, 3: 5}


def test_equal_timestamps_broken_by_digest_not_by_id() -> None:
    a, b = f(1, "T1", b"\x02" * 16), f(2, "T1", b"\x01" * 16)
    assert match([a, b], [d(9, None)]) == {9: 2}
    a, b = f(2, "T1", b"\x02" * 16), f(1, "T1", b"\x01" * 16)
    assert match([a, b], [d(9, None)]) == {9: 1}


def test_mixed_timed_first_then_untimed() -> None:
    failures = [f(1, "T1"), f(2, "T3")]
    assert match(failures, [d(8, None), d(9, "T4")]) == {9: 2, 8: 1}


@pytest.mark.parametrize("timed", [True, False])
def test_result_independent_of_input_order(timed: bool) -> None:
    failures = [f(1, "T1"), f(2, "T3"), f(3, "T5"), f(4, "T5", b"\x00" * 16)]
    details = [d(i, f"T{i}" if timed else None) for i in (2, 4, 6, 7)]
    expected = match(failures, details)
    for fp in itertools.permutations(failures):
        for dp in itertools.permutations(details):
            assert match(list(fp), list(dp)) == expected
    assert len(set(expected.values())) == len(expected)


@pytest.mark.parametrize("detail_ts", [None, "T1", "T2", "T3"])
def test_one_failure_one_detail_as_with_more_failures(detail_ts: str | None) -> None:
    """A key with one failure and one detail is decided as the same pair among more failures
    (a second failure after everything cannot change the first pair's outcome)."""
    failure, later = f(1, "T2"), f(2, "T9")
    detail = d(5, detail_ts)
    one = match([failure], [detail])
    general = {k: v for k, v in match([failure, later], [detail]).items() if v == 1}
    assert one == general
    assert one == ({} if detail_ts == "T1" else {5: 1})
