"""Recognise a raw log message by its content and normalize it to a compact tuple.

One message is one raw log line (bytes). :func:`parse` never raises on any input; it returns

- ``None`` for a blank message (only whitespace), which is not a message at all;
- ``(EVENT, system_id, checkpoint_id, timestamp, status, correlation_id, failure_reason,
  join_state, attributes)`` for a checkpoint log;
- ``(DETAIL, system_id, correlation_id, failure_reason, timestamp)`` for a separate failure
  detail (``timestamp`` is None where the style carries none, e.g. inventory JSON);
- ``(BAD, reason)`` for anything that cannot be normalized; the reason is meant for a person.

Styles recognised (any JSON key order, extra JSON fields kept as a JSON ``attributes`` text,
surrounding whitespace/CRLF, any letter case of system names and statuses, timestamps with ``Z``,
UTC offsets or fractional seconds; reasons are free text and kept verbatim):

- JSON checkpoint: ``system, checkpoint, status, timestamp, correlation_id[, failure_reason]``
- JSON detail: ``system, correlation_id, failure_reason`` (no checkpoint, no status)
- text checkpoint: ``TS ORDER: CHECKPOINT - STATUS (ID: cid)[ - REASON]`` (also PAYMENTS)
- text detail: ``TS PAYMENTS PAYMENTS_ERROR: (ID: cid) - REASON``
"""

from __future__ import annotations

import json
import re
from typing import Any, Final

import msgspec

from tracelab.ingest.schema import JOIN_AWAITING, JOIN_INLINE, JOIN_NO_REASON
from tracelab.timefmt import normalize_epoch, normalize_timestamp

__all__ = [
    "BAD",
    "DETAIL",
    "DETAIL_SYSTEMS",
    "EVENT",
    "loads_json",
    "Parsed",
    "parse",
    "system_name",
]

EVENT: Final = 0
DETAIL: Final = 1
BAD: Final = 2

#: Systems that log a failure's reason in a separate detail message.
DETAIL_SYSTEMS: Final = frozenset(("inventory", "payments"))

Parsed = tuple[Any, ...]

_SYSTEM_NAMES: Final = {
    "inventory": "inventory",
    "payments": "payments",
    "payment": "payments",
    "orders": "orders",
    "order": "orders",
    "reporting": "reporting",
}
_STATUSES: Final = {"SUCCESS": "SUCCESS", "FAILURE": "FAILURE"}

# Canonical JSON keys and the spellings accepted for them (after lower-casing, '-' -> '_').
_CANON: Final = frozenset(
    ("system", "checkpoint", "status", "timestamp", "correlation_id", "failure_reason")
)
_ALIASES: Final = {
    "system": "system",
    "system_id": "system",
    "checkpoint": "checkpoint",
    "checkpoint_id": "checkpoint",
    "status": "status",
    "timestamp": "timestamp",
    "correlation_id": "correlation_id",
    "correlationid": "correlation_id",
    "failure_reason": "failure_reason",
    "failurereason": "failure_reason",
}

_TS: Final = r"(\S+(?: \d{2}:\d{2}\S*)?)"
_CHECKPOINT_RE: Final = re.compile(
    _TS + r"\s+([A-Za-z_]+)\s*:\s*(\S.*?)\s+-\s+([A-Za-z_]+)\s*\(\s*ID\s*:\s*([^()]*?)\s*\)"
    r"(?:\s*-\s*(.*?))?\s*",
    re.S | re.I,
)
_ERROR_RE: Final = re.compile(
    _TS + r"\s+([A-Za-z_]+)\s+([A-Za-z_]*ERROR)\s*:\s*\(\s*ID\s*:\s*([^()]*?)\s*\)"
    r"(?:\s*-\s*(.*?))?\s*",
    re.S | re.I,
)
_loads = json.loads
_dumps = json.dumps
_fast_loads = msgspec.json.decode
_FastError = msgspec.MsgspecError


def loads_json(text: str) -> Any:
    """``json.loads`` with msgspec's C decoder in front (several times faster).

    Any text msgspec does not take (NaN, lone surrogates, malformed) goes to ``json.loads``, so
    the result, or the error and its message, is always exactly what ``json.loads`` gives.

    Example: ``loads_json('{"a": 1}')`` -> ``{'a': 1}``
    """
    try:
        return _fast_loads(text)
    except _FastError:
        return _loads(text)


def _show(value: object, limit: int = 60) -> str:
    """A short printable rendering of an offending value for a quarantine reason."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def system_name(text: str) -> str | None:
    """The canonical system id for a spelling seen in logs, or None when unknown.

    Example: ``system_name("ORDER")`` -> ``'orders'``
    """
    return _SYSTEM_NAMES.get(text.strip().lower())


def parse(value: bytes) -> Parsed | None:
    """Normalize one raw message; never raises. See the module docstring for the tuple shapes.

    Example: ``parse(b'2025-05-04T10:30:00 ORDER: A - SUCCESS (ID: x)')[1]`` -> ``'orders'``
    """
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError as exc:
        return (BAD, f"not valid UTF-8: byte 0x{value[exc.start]:02x} at position {exc.start}")
    except (AttributeError, TypeError):
        return (BAD, f"message is not bytes but {type(value).__name__}")
    text = text.strip()
    if not text:
        if not value.strip():  # blank: nothing but ASCII whitespace
            return None
        return (BAD, "message has only whitespace or control characters")
    try:
        if text[0] == "{" or text[0] == "[":
            return _parse_json(text)
        return _parse_text(text)
    except Exception as exc:  # noqa: BLE001 - last line of defence: bad input never crashes a run
        return (BAD, f"unparseable message ({type(exc).__name__}: {_show(str(exc))})")


def _parse_text(text: str) -> Parsed:
    m = _CHECKPOINT_RE.fullmatch(text)
    if m is not None:
        ts_raw, sys_raw, checkpoint, status_raw, cid, reason = m.groups()
        system = _SYSTEM_NAMES.get(sys_raw.lower())
        if system is None:
            return (BAD, f"unknown system {_show(sys_raw)}")
        status = _STATUSES.get(status_raw.upper())
        if status is None:
            return (BAD, f"status {_show(status_raw)} is not SUCCESS or FAILURE")
        if not cid:
            return (BAD, "missing correlation id")
        ts = normalize_timestamp(ts_raw)
        if ts is None:
            return (BAD, f"invalid timestamp {_show(ts_raw)}")
        return _event(system, checkpoint, ts, status, cid, reason or None, None)
    m = _ERROR_RE.fullmatch(text)
    if m is not None:
        ts_raw, sys_raw, _tag, cid, reason = m.groups()
        system = _SYSTEM_NAMES.get(sys_raw.lower())
        if system is None:
            return (BAD, f"unknown system {_show(sys_raw)}")
        if not cid:
            return (BAD, "missing correlation id")
        if not reason:
            return (BAD, "failure detail without a reason")
        ts = normalize_timestamp(ts_raw)
        if ts is None:
            return (BAD, f"invalid timestamp {_show(ts_raw)}")
        return _detail(system, cid, reason, ts)
    return (BAD, "not a known log line (neither JSON nor a recognised text form)")


def _event(
    system: str,
    checkpoint: str,
    ts: str,
    status: str,
    cid: str,
    reason: str | None,
    attributes: str | None,
) -> Parsed:
    if status == "SUCCESS":
        if reason is not None:  # a reason on a success is kept, as an attribute
            extra = {} if attributes is None else _loads(attributes)
            extra.setdefault("failure_reason", reason)
            attributes = _dumps(extra, ensure_ascii=False, sort_keys=True)
        return (EVENT, system, checkpoint, ts, status, cid, None, None, attributes)
    if reason is not None:
        state = JOIN_INLINE
    elif system in DETAIL_SYSTEMS:
        state = JOIN_AWAITING
    else:
        state = JOIN_NO_REASON
    return (EVENT, system, checkpoint, ts, status, cid, reason, state, attributes)


def _detail(system: str, cid: str, reason: str, ts: str | None) -> Parsed:
    if system not in DETAIL_SYSTEMS:
        return (
            BAD,
            f"{system} logs failure reasons inline; a separate failure detail is unexpected",
        )
    return (DETAIL, system, cid, reason, ts)


_MISSING = object()
_INVALID = object()


def _scalar(value: object) -> Any:
    """A JSON field value as stripped text: None when absent/empty, _INVALID when not scalar."""
    if value is None:
        return None
    if type(value) is str:
        return value.strip() or None
    if isinstance(value, bool):
        return _INVALID
    if isinstance(value, int | float):
        return str(value)
    return _INVALID


def _parse_json(text: str) -> Parsed:
    try:
        obj = loads_json(text)
    except ValueError as exc:
        return (BAD, f"not valid JSON: {exc}")
    except RecursionError:
        return (BAD, "not valid JSON: nested too deeply")
    if type(obj) is not dict:
        return (BAD, f"JSON value is a {type(obj).__name__}, not an object")
    attributes = None
    if obj.keys() - _CANON:
        fields: dict[str, Any] = {}
        extras: dict[str, Any] = {}
        for key, val in obj.items():
            if key in _CANON:
                fields[key] = val
        for key, val in obj.items():
            if key in _CANON:
                continue
            canon = _ALIASES.get(key.strip().lower().replace("-", "_"))
            if canon is not None and canon not in fields:
                fields[canon] = val
            else:
                extras[key] = val
        if extras:
            attributes = _dumps(extras, ensure_ascii=False, sort_keys=True)
        obj = fields
    get = obj.get

    sys_raw = get("system")
    if type(sys_raw) is not str:
        return (BAD, "missing system" if sys_raw is None else f"unknown system {_show(sys_raw)}")
    system = _SYSTEM_NAMES.get(sys_raw.strip().lower())
    if system is None:
        return (BAD, f"unknown system {_show(sys_raw)}")
    cid = _scalar(get("correlation_id"))
    if cid is None:
        return (BAD, "missing correlation_id")
    if cid is _INVALID:
        return (BAD, f"correlation_id is not text: {_show(get('correlation_id'))}")
    reason = get("failure_reason")
    if reason is not None:
        reason = reason.strip() if type(reason) is str else _dumps(reason, ensure_ascii=False)
        reason = reason or None

    checkpoint = get("checkpoint", _MISSING)
    status_raw = get("status", _MISSING)
    ts_raw = get("timestamp", _MISSING)
    if checkpoint is _MISSING and status_raw is _MISSING:
        # a separate failure detail
        if reason is None:
            return (BAD, "JSON log has neither checkpoint/status nor failure_reason")
        ts = None
        if ts_raw is not _MISSING and ts_raw is not None:
            ts = _json_timestamp(ts_raw)
            if ts is None:
                return (BAD, f"invalid timestamp {_show(ts_raw)}")
        return _detail(system, cid, reason, ts)

    checkpoint = _scalar(None if checkpoint is _MISSING else checkpoint)
    if checkpoint is None:
        return (BAD, "missing checkpoint")
    if checkpoint is _INVALID:
        return (BAD, f"checkpoint is not text: {_show(get('checkpoint'))}")
    if type(status_raw) is not str:
        if status_raw is _MISSING or status_raw is None:
            return (BAD, "missing status")
        return (BAD, f"status {_show(status_raw)} is not SUCCESS or FAILURE")
    status = _STATUSES.get(status_raw.strip().upper())
    if status is None:
        return (BAD, f"status {_show(status_raw)} is not SUCCESS or FAILURE")
    if ts_raw is _MISSING or ts_raw is None:
        return (BAD, "missing timestamp")
    ts = _json_timestamp(ts_raw)
    if ts is None:
        return (BAD, f"invalid timestamp {_show(ts_raw)}")
    return _event(system, checkpoint, ts, status, cid, reason, attributes)


def _json_timestamp(value: object) -> str | None:
    if type(value) is str:
        return normalize_timestamp(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return normalize_epoch(value)
    return None
