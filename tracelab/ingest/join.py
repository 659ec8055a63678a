"""The join rules for multi-part logs, as a pure function of one (system, correlation id) key.

A separate failure detail belongs to one FAILURE event of the same system and correlation id and
never to two. :func:`match` decides the whole assignment for a key from the facts alone, so the
result does not depend on the order the messages arrived in wherever the messages carry enough to
decide:

- details that carry a timestamp (payments) are taken in time order; each takes the nearest still
  free failure at or before it;
- details without one (inventory) are taken in arrival order; each takes the oldest still free
  failure (oldest by the failure's own timestamp);
- a detail that gets no failure is an orphan (until a fitting failure turns up).

Ties between equal timestamps are broken by the message digest, which depends on content only.
The store calls :func:`match` again whenever a failure or detail of the key arrives and applies
the difference; the state itself lives in SQLite (see :mod:`tracelab.ingest.store`).
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence

__all__ = ["DetailFact", "FailureFact", "match"]

#: ``(event_id, timestamp, msg_hash)`` of a FAILURE event that waits for a separate detail.
FailureFact = tuple[int, str, bytes]
#: ``(detail_id, timestamp or None, msg_hash)``; detail ids grow in arrival order.
DetailFact = tuple[int, str | None, bytes]


def match(failures: Sequence[FailureFact], details: Sequence[DetailFact]) -> dict[int, int]:
    """Assign details to failures of one key: ``{detail_id: event_id}``; missing ids are orphans.

    Example: ``match([(1, "T1", b"a"), (2, "T3", b"b")], [(9, "T2", b"c")])`` -> ``{9: 1}``
    """
    if not failures or not details:
        return {}
    free = sorted(failures, key=lambda f: (f[1], f[2]))
    free_keys = [(f[1], f[2]) for f in free]
    result: dict[int, int] = {}
    timed = sorted((d for d in details if d[1] is not None), key=lambda d: (d[1], d[2]))
    for detail_id, ts, _digest in timed:
        # the nearest free failure at or before the detail: the last one with timestamp <= ts
        i = bisect_right(free_keys, (ts, b"\xff" * 64)) - 1
        if i < 0:
            continue
        result[detail_id] = free[i][0]
        del free[i]
        del free_keys[i]
        if not free:
            return result
    for detail_id, ts, _digest in sorted(details):
        if ts is not None:
            continue
        result[detail_id] = free[0][0]
        del free[0]
        if not free:
            break
    return result
