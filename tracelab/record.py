"""The normalized record: the six fields every message is normalized to, and a failure's join
states. Shared by the styles that produce records and the store that keeps them, so it lives on
the ground floor.

Example: ``from tracelab.record import FIELDS, JOIN_AWAITING``
"""

from __future__ import annotations

__all__ = [
    "FIELDS",
    "JOIN_AWAITING",
    "JOIN_INLINE",
    "JOIN_JOINED",
    "JOIN_NO_REASON",
    "JOIN_STATES",
]

#: The normalized schema, in order.
FIELDS: tuple[str, ...] = (
    "system_id",
    "checkpoint_id",
    "timestamp",
    "status",
    "correlation_id",
    "failure_reason",
)

#: A failure's join state (``events.join_state``); NULL for SUCCESS events.
JOIN_INLINE = "inline"  # the reason came inside the failure's own message
JOIN_JOINED = "joined"  # the reason came in a separate detail message, now attached
JOIN_AWAITING = "awaiting_detail"  # a separate-detail style failure whose detail has not come
JOIN_NO_REASON = "no_reason"  # an inline-style failure that carried no reason
JOIN_STATES: tuple[str, ...] = (JOIN_INLINE, JOIN_JOINED, JOIN_AWAITING, JOIN_NO_REASON)
