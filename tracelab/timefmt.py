"""Timestamps: parse what emitters write, store one fixed-width UTC form.

Every stored timestamp is UTC ISO-8601 text ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` (27 characters), so
text order is time order. Naive input is taken as UTC; ``Z`` and UTC offsets (``+02:00``,
``+0200``, ``+02``) are converted; fractional seconds are cut to microseconds.

The hot path (the simulator's ``2025-05-04T10:30:00.123``) is answered from a small cache of
validated ``YYYY-MM-DDTHH:MM:SS`` prefixes without building a ``datetime``.
"""

from __future__ import annotations

import re
from calendar import timegm
from datetime import UTC, datetime, timedelta

__all__ = ["format_datetime", "normalize_epoch", "normalize_timestamp", "stored_to_us"]

_TS_RE = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})"
    r"(?:[.,](\d{1,9}))?"
    r"\s?(?:([Zz])|([+-])(\d{2})(?::?(\d{2}))?)?",
    re.ASCII,
)
_PREFIX_OK: dict[str, bool] = {}
_PREFIX_SECONDS: dict[str, int] = {}
_PREFIX_CACHE_MAX = 200_000
_DIGITS = frozenset("0123456789")


def _valid_prefix(prefix: str) -> bool:
    """Whether ``YYYY-MM-DDTHH:MM:SS`` names a real second (cached)."""
    ok = _PREFIX_OK.get(prefix)
    if ok is None:
        try:
            datetime(
                int(prefix[0:4]),
                int(prefix[5:7]),
                int(prefix[8:10]),
                int(prefix[11:13]),
                int(prefix[14:16]),
                int(prefix[17:19]),
            )
            ok = True
        except ValueError:
            ok = False
        if len(_PREFIX_OK) >= _PREFIX_CACHE_MAX:
            _PREFIX_OK.clear()
        _PREFIX_OK[prefix] = ok
    return ok


def format_datetime(value: datetime) -> str:
    """Render a datetime in the stored form (naive is taken as UTC).

    Example: ``format_datetime(datetime(2025, 5, 4, 10, 30))`` -> ``'2025-05-04T10:30:00.000000Z'``
    """
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value.strftime("%Y-%m-%dT%H:%M:%S.%f") + "Z"


def normalize_timestamp(text: str) -> str | None:
    """The stored UTC form of an ISO-8601-like timestamp, or None when it is not one.

    Example: ``normalize_timestamp("2025-05-04T12:30:00.5+02:00")``
    -> ``'2025-05-04T10:30:00.500000Z'``
    """
    # Fast path: naive millisecond form written by the simulator, second already validated.
    if len(text) == 23 and text[19] == "." and _PREFIX_OK.get(text[:19]):
        frac = text[20:]
        if frac.isdigit() and frac.isascii():
            return f"{text}000Z"
    m = _TS_RE.fullmatch(text.strip())
    if m is None:
        return None
    y, mo, d, h, mi, s, frac, z, sign, oh, om = m.groups()
    prefix = f"{y}-{mo}-{d}T{h}:{mi}:{s}"
    if not _valid_prefix(prefix):
        return None
    frac6 = (frac or "")[:6].ljust(6, "0")
    if sign is None:  # naive or Z
        return f"{prefix}.{frac6}Z"
    oh_i, om_i = int(oh), int(om or 0)
    if oh_i > 23 or om_i > 59:
        return None
    delta = timedelta(hours=oh_i, minutes=om_i)
    local = datetime(int(y), int(mo), int(d), int(h), int(mi), int(s), int(frac6))
    try:
        utc = local - delta if sign == "+" else local + delta
    except OverflowError:
        return None
    return utc.strftime("%Y-%m-%dT%H:%M:%S.%f") + "Z" if utc.year >= 1000 else None


def stored_to_us(stored: str) -> int:
    """UTC microseconds since 1970 of a timestamp in the stored form (``events.ts_us``).

    The whole seconds of each ``YYYY-MM-DDTHH:MM:SS`` prefix are cached: messages come roughly
    in time order, so most calls are a dictionary lookup and one ``int`` of the fraction.

    Example: ``stored_to_us("1970-01-01T00:00:01.000002Z")`` -> ``1000002``
    """
    prefix = stored[:19]
    seconds = _PREFIX_SECONDS.get(prefix)
    if seconds is None:
        seconds = timegm(
            (
                int(stored[0:4]), int(stored[5:7]), int(stored[8:10]),
                int(stored[11:13]), int(stored[14:16]), int(stored[17:19]),
            )
        )  # fmt: skip
        if len(_PREFIX_SECONDS) >= _PREFIX_CACHE_MAX:
            _PREFIX_SECONDS.clear()
        _PREFIX_SECONDS[prefix] = seconds
    return seconds * 1_000_000 + int(stored[20:26])


def normalize_epoch(value: float) -> str | None:
    """The stored form of a Unix time in seconds (or milliseconds when > 1e11), else None.

    Example: ``normalize_epoch(0)`` -> ``'1970-01-01T00:00:00.000000Z'``
    """
    try:
        seconds = float(value)
        if seconds != seconds:  # NaN
            return None
        if abs(seconds) > 1e11:
            seconds /= 1000.0
        utc = datetime(1970, 1, 1) + timedelta(seconds=seconds)
    except (OverflowError, ValueError, TypeError):
        return None
    return utc.strftime("%Y-%m-%dT%H:%M:%S.%f") + "Z" if utc.year >= 1000 else None


_TS_PREFIX_RE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}", re.ASCII)
