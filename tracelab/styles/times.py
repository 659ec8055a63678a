"""Timestamps of declared styles: read any declared kind into the stored form, write it back.

Kinds: ``iso8601`` (also a JSON number, read as epoch seconds or milliseconds as before),
``epoch_s``, ``epoch_ms`` (a number or a numeric text) or a strptime format (naive = UTC).
The stored form is the fixed-width UTC text of :mod:`tracelab.timefmt`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from tracelab.timefmt import format_datetime, normalize_epoch, normalize_timestamp

__all__ = ["reader", "resolution_ms", "writer"]

_EPOCH = datetime(1970, 1, 1)
_EPOCH_UTC = datetime(1970, 1, 1, tzinfo=UTC)
_SECONDS: dict[int, str] = {}


def _stored_ms(ms: int) -> str | None:
    """The stored form of whole epoch milliseconds (seconds cached)."""
    sec, rest = divmod(ms, 1000)
    head = _SECONDS.get(sec)
    if head is None:
        try:
            when = _EPOCH + timedelta(seconds=sec)
        except OverflowError:
            return None
        if when.year < 1000:
            return None
        head = when.strftime("%Y-%m-%dT%H:%M:%S")
        if len(_SECONDS) > 200_000:
            _SECONDS.clear()
        _SECONDS[sec] = head
    return f"{head}.{rest:03d}000Z"


def _number(value: Any) -> int | float | None:
    if type(value) is int or type(value) is float:
        return value
    if type(value) is str:
        text = value.strip()
        if text.isdigit() or (text[:1] == "-" and text[1:].isdigit()):
            return int(text)
        try:
            return float(text)
        except ValueError:
            return None
    return None


def _epoch(scale: int) -> Callable[[Any], str | None]:
    def read(value: Any) -> str | None:
        num = _number(value)
        if num is None:
            return None
        if type(num) is int:
            return _stored_ms(num * (1000 // scale))
        if num != num or num in (float("inf"), float("-inf")):
            return None
        try:
            when = _EPOCH + timedelta(seconds=num / scale)
        except OverflowError:
            return None
        return format_datetime(when) if when.year >= 1000 else None

    return read


def _iso(value: Any) -> str | None:
    if type(value) is str:
        return normalize_timestamp(value)
    if type(value) is int or type(value) is float:
        return normalize_epoch(value)
    return None


def _strptime(fmt: str) -> Callable[[Any], str | None]:
    def read(value: Any) -> str | None:
        if type(value) is not str:
            return None
        try:
            when = datetime.strptime(value.strip(), fmt)
        except ValueError:
            return None
        return format_datetime(when)

    return read


def reader(kind: str) -> Callable[[Any], str | None]:
    """A function: raw timestamp value -> stored form, or None when it is not one of ``kind``.

    Example: ``reader("epoch_ms")("1746354600123")`` -> ``'2025-05-04T10:30:00.123000Z'``
    """
    if kind == "iso8601":
        return _iso
    if kind == "epoch_s":
        return _epoch(1)
    if kind == "epoch_ms":
        return _epoch(1000)
    return _strptime(kind)


def resolution_ms(kind: str) -> int:
    """The precision in milliseconds with which ``kind`` writes a time (1 or 1000).

    Example: ``resolution_ms("%Y-%m-%d %H:%M:%S")`` -> ``1000``
    """
    if kind in ("iso8601", "epoch_s", "epoch_ms") or "%f" in kind:
        return 1
    return 1000


def writer(kind: str, iso: Callable[[int], str]) -> Callable[[int], str]:
    """A function: epoch milliseconds -> the text a style writes (``iso`` writes iso8601).

    Example: ``writer("epoch_s", format_ms)(1746354600123)`` -> ``'1746354600.123'``
    """
    if kind == "iso8601":
        return iso
    if kind == "epoch_ms":
        return str
    if kind == "epoch_s":
        return lambda ms: f"{ms // 1000}.{ms % 1000:03d}"

    def write(ms: int) -> str:
        return (_EPOCH_UTC + timedelta(milliseconds=ms)).strftime(kind)

    return write
