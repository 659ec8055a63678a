"""Native log lines of the four styles, exactly as the seed writes them.

One plain formatter per style (readable, used by tests and docs) and :func:`compile_system`, which
turns a declared system into ``%``-templates for the simulator's hot path: every template is
filled with ``template % (timestamp, correlation_id)`` (styles without a timestamp swallow it with
``%.0s``), with checkpoint, status and reason already baked in.

Example lines (``ts`` is ``2025-05-04T10:30:00.123``)::

    {"system": "inventory", "checkpoint": "CHECKPOINT_1", "status": "FAILURE", "timestamp": ts, "correlation_id": "abc-123"}
    {"system": "inventory", "correlation_id": "abc-123", "failure_reason": "FAILURE_REASON_2"}
    {"system": "reporting", "checkpoint": "REPORTING_CHECKPOINT_2", "status": "FAILURE", "timestamp": ts, "correlation_id": "ghi-789", "failure_reason": "REPORTING_FAILURE_REASON_2"}
    2025-05-04T10:30:00.123 ORDER: CHECKPOINT_B - FAILURE (ID: abc-123) - FAILURE_REASON_X
    2025-05-04T10:32:00.123 PAYMENTS: PAYMENTS_CHECKPOINT_2 - FAILURE (ID: def-456)
    2025-05-04T10:32:01.123 PAYMENTS PAYMENTS_ERROR: (ID: def-456) - PAYMENTS_FAILURE_REASON_1
"""  # noqa: E501

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime

from tracelab.simulate.flows import System

__all__ = [
    "CompiledSystem",
    "compile_system",
    "format_ms",
    "json_inline",
    "json_separate",
    "json_separate_detail",
    "text_inline",
    "text_separate",
    "text_separate_detail",
]


def _q(text: str) -> str:
    """A JSON string literal (UTF-8 kept as is, like most real emitters)."""
    return json.dumps(text, ensure_ascii=False)


def json_separate(system: str, checkpoint: str, status: str, ts: str, cid: str) -> str:
    """An inventory-style JSON checkpoint log (no reason; it comes in a separate detail).

    Example: ``json_separate("inventory", "INITIATED", "SUCCESS", "2025-05-04T10:30:00.123", "c1")``
    """
    return (
        f'{{"system": {_q(system)}, "checkpoint": {_q(checkpoint)}, "status": {_q(status)}, '
        f'"timestamp": {_q(ts)}, "correlation_id": {_q(cid)}}}'
    )


def json_separate_detail(system: str, cid: str, reason: str) -> str:
    """An inventory-style JSON failure detail (no timestamp, no checkpoint).

    Example: ``json_separate_detail("inventory", "c1", "FAILURE_REASON_2")``
    """
    return (
        f'{{"system": {_q(system)}, "correlation_id": {_q(cid)}, "failure_reason": {_q(reason)}}}'
    )


def json_inline(
    system: str, checkpoint: str, status: str, ts: str, cid: str, reason: str | None = None
) -> str:
    """A reporting-style JSON log; ``failure_reason`` only when a reason is given.

    Example: ``json_inline("reporting", "REPORTING_INITIATED", "SUCCESS", ts, "c1")``
    """
    head = (
        f'{{"system": {_q(system)}, "checkpoint": {_q(checkpoint)}, "status": {_q(status)}, '
        f'"timestamp": {_q(ts)}, "correlation_id": {_q(cid)}'
    )
    if reason is None:
        return head + "}"
    return f'{head}, "failure_reason": {_q(reason)}}}'


def text_inline(
    label: str, checkpoint: str, status: str, ts: str, cid: str, reason: str | None = None
) -> str:
    """An orders-style text line, the reason (if any) at its end.

    Example: ``text_inline("ORDER", "CHECKPOINT_A", "SUCCESS", ts, "c1")``
    """
    line = f"{ts} {label}: {checkpoint} - {status} (ID: {cid})"
    return line if reason is None else f"{line} - {reason}"


def text_separate(label: str, checkpoint: str, status: str, ts: str, cid: str) -> str:
    """A payments-style text checkpoint line.

    Example: ``text_separate("PAYMENTS", "PAYMENTS_CHECKPOINT_2", "FAILURE", ts, "c1")``
    """
    return f"{ts} {label}: {checkpoint} - {status} (ID: {cid})"


def text_separate_detail(label: str, ts: str, cid: str, reason: str) -> str:
    """A payments-style error line carrying a failure's reason.

    Example: ``text_separate_detail("PAYMENTS", ts, "c1", "PAYMENTS_FAILURE_REASON_1")``
    """
    return f"{ts} {label} {label}_ERROR: (ID: {cid}) - {reason}"


_MS_SUFFIX: tuple[str, ...] = tuple(f".{i:03d}" for i in range(1000))
_SECOND_CACHE: dict[int, str] = {}


def format_ms(epoch_ms: int) -> str:
    """Render epoch milliseconds the way the simulator writes them (naive UTC, ms).

    Example: ``format_ms(1746354600123)`` -> ``'2025-05-04T10:30:00.123'``
    """
    sec, ms = divmod(epoch_ms, 1000)
    head = _SECOND_CACHE.get(sec)
    if head is None:
        if len(_SECOND_CACHE) > 500_000:
            _SECOND_CACHE.clear()
        head = datetime.fromtimestamp(sec, UTC).strftime("%Y-%m-%dT%H:%M:%S")
        _SECOND_CACHE[sec] = head
    return head + _MS_SUFFIX[ms]


def _tpl(line: str) -> str:
    """Escape ``%`` so that a finished line can serve as a template."""
    return line.replace("%", "%%")


_TS = "\ue000TS\ue001"
_CID = "\ue000CID\ue001"


def _template(line: str) -> str:
    """Turn a line built with the placeholder ts/cid into a ``% (ts, cid)`` template."""
    out = _tpl(line)
    out = out.replace(_TS, "%s", 1) if _TS in out else "%.0s" + out
    return out.replace(_CID, "%s", 1)


@dataclass(frozen=True, slots=True)
class CompiledSystem:
    """Templates of one system; fill each with ``template % (ts, cid)``.

    ``success[i]``: checkpoint ``i`` succeeded. ``failure[i][r]``: it failed with reason ``r``
    (the same template for every ``r`` in separate styles). ``detail[i][r]``: the separate
    detail of that failure (``None`` in inline styles). ``orphan_detail(reason)`` builds one.

    Example: ``compile_system(flow.systems["orders"]).success[0] % (ts, "c1")``
    """

    name: str
    style: str
    label: str
    separate: bool
    detail_has_ts: bool
    success: tuple[str, ...]
    failure: tuple[tuple[str, ...], ...]
    detail: tuple[tuple[str, ...] | None, ...]

    def detail_template(self, reason: str) -> str:
        """A detail template for any reason (used for orphan details).

        Example: ``compile_system(sys).detail_template("lost") % (ts, "c9")``
        """
        if not self.separate:
            raise ValueError(f"{self.name} writes no separate details")
        return _template(_detail_line(self.name, self.style, self.label, reason))


def _detail_line(name: str, style: str, label: str, reason: str) -> str:
    if style == "json-separate":
        return json_separate_detail(name, _CID, reason)
    return text_separate_detail(label, _TS, _CID, reason)


def _event_line(system: System, cp: str, status: str, reason: str | None) -> str:
    s = system.style
    if s == "json-separate":
        return json_separate(system.name, cp, status, _TS, _CID)
    if s == "json-inline":
        return json_inline(system.name, cp, status, _TS, _CID, reason)
    if s == "text-inline":
        return text_inline(system.label, cp, status, _TS, _CID, reason)
    return text_separate(system.label, cp, status, _TS, _CID)


def compile_system(system: System) -> CompiledSystem:
    """Precompute every line template of a declared system.

    Example: ``compile_system(load_flow(path).systems["payments"]).detail[1][0]``
    """
    success = tuple(
        _template(_event_line(system, c.name, "SUCCESS", None)) for c in system.checkpoints
    )
    failure = []
    detail: list[tuple[str, ...] | None] = []
    for c in system.checkpoints:
        if system.separate:
            one = _template(_event_line(system, c.name, "FAILURE", None))
            failure.append(tuple(one for _ in c.reasons))
            detail.append(
                tuple(
                    _template(_detail_line(system.name, system.style, system.label, r))
                    for r in c.reasons
                )
            )
        else:
            failure.append(
                tuple(_template(_event_line(system, c.name, "FAILURE", r)) for r in c.reasons)
            )
            detail.append(None)
    return CompiledSystem(
        system.name,
        system.style,
        system.label,
        system.separate,
        system.style == "text-separate",
        success,
        tuple(failure),
        tuple(detail),
    )
