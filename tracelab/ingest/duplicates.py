"""Duplicate detection without a unique index on a random digest.

A message delivered twice (a producer retry, a replayed file) has the same bytes, so the same
correlation id: it is searched among the rows of its own trace, through the index the join and
the waterfall need anyway (``events_correlation``, ``details_key``), instead of through a unique
index on the digest, whose random keys made every insert cost a B-tree search of its own.

What counts as the same message, by where it lands:

- event: the same digest AND the same normalized content (system, checkpoint, timestamp, status,
  correlation id, the reason the message itself carried, attributes). Two distinct messages whose
  digests collide are both stored unless they normalize to the very same row;
- detail: the same raw bytes (stored with the detail), among the details of its system and
  correlation id;
- quarantine (no correlation id to search by): the same raw bytes, among the rows with the same
  digest (``quarantine_hash``, a small index: quarantined messages are rare).

Raw bytes and normalized rows are compared, so a digest collision never drops a distinct detail or
quarantined message. Duplicates within one batch are found the same way, in memory.
"""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from collections.abc import KeysView, Sequence
from typing import Any

from tracelab.ingest.parsers import BAD, DETAIL, EVENT
from tracelab.record import JOIN_AWAITING, JOIN_JOINED

__all__ = ["drop_duplicates"]

# CROSS JOIN fixes the loop order: the batch's few keys outside, an index search inside. The
# first two queries list the digests (and row ids) of the rows of the batch's traces; only rows
# whose digest is also in the batch (nearly never) have their identity read, by row id.
_EVENT_HASHES_OF_TRACES = (
    "SELECT e.msg_hash, e.id FROM json_each(?) AS k"
    " CROSS JOIN events AS e INDEXED BY events_correlation ON e.correlation_id = k.value"
)
_DETAIL_HASHES_OF_KEYS = (
    "SELECT d.msg_hash, d.id FROM json_each(?) AS k CROSS JOIN details AS d INDEXED BY details_key"
    " ON d.system_id = k.value ->> 0 AND d.correlation_id = k.value ->> 1"
)
# Each returns the digest and then the identity of each row, as _identity makes it of a message.
_EVENTS_OF_IDS = (
    "SELECT msg_hash, 0, system_id, checkpoint_id, timestamp, status, correlation_id,"
    " CASE WHEN join_state IN (?, ?) THEN NULL ELSE failure_reason END, attributes"
    " FROM events WHERE id IN (SELECT value FROM json_each(?))"
)
_DETAILS_OF_IDS = (
    "SELECT msg_hash, 1, system_id, correlation_id, raw"
    " FROM details WHERE id IN (SELECT value FROM json_each(?))"
)
_QUARANTINE_OF_HASHES = "SELECT msg_hash, 2, raw FROM quarantine WHERE msg_hash IN ({})"


def _identity(item: Sequence[Any]) -> tuple[Any, ...]:
    """What makes a message the same message, beyond its digest (see the module docstring).

    An event's normalized content (a separate-detail failure carries no reason of its own); a
    detail's system, correlation id and raw bytes; a quarantined message's raw bytes.

    Example: ``_identity((parse(line), digest, raw, "f", None, 1))``
    """
    parsed = item[0]
    kind = parsed[0]
    if kind == EVENT:
        return (EVENT, *parsed[1:7], parsed[8])
    if kind == DETAIL:
        return (DETAIL, parsed[1], parsed[2], item[2])
    return (BAD, item[2])


def _stored(
    conn: sqlite3.Connection, items: Sequence[Any], digests: KeysView[bytes] | set[bytes]
) -> dict[bytes, list[tuple[Any, ...]]]:
    """Digest -> identities of the stored rows that could be the same as a message of ``items``:
    the rows of the batch's traces (events, details) and of its digests (quarantine) whose
    digest is among ``digests`` (the batch's)."""
    cids = {item[0][5] for item in items if item[0][0] == EVENT}
    detail_keys = {(item[0][1], item[0][2]) for item in items if item[0][0] == DETAIL}
    bad_hashes = {item[1] for item in items if item[0][0] == BAD}
    rows: list[Any] = []
    if cids:
        hits = [i for h, i in conn.execute(_EVENT_HASHES_OF_TRACES, (_ids(cids),)) if h in digests]
        if hits:
            args = (JOIN_AWAITING, JOIN_JOINED, json.dumps(hits))
            rows += conn.execute(_EVENTS_OF_IDS, args).fetchall()
    if detail_keys:
        query = _DETAIL_HASHES_OF_KEYS
        hits = [i for h, i in conn.execute(query, (_ids(detail_keys),)) if h in digests]
        if hits:
            rows += conn.execute(_DETAILS_OF_IDS, (json.dumps(hits),)).fetchall()
    hashes = list(bad_hashes)
    for start in range(0, len(hashes), 500):
        chunk = hashes[start : start + 500]
        rows += conn.execute(_QUARANTINE_OF_HASHES.format(", ".join("?" * len(chunk))), chunk)
    stored: dict[bytes, list[tuple[Any, ...]]] = {}
    for row in rows:
        stored.setdefault(row[0], []).append(row[1:])
    return stored


def _ids(keys: set[Any]) -> str:
    return json.dumps(list(keys))


def drop_duplicates(conn: sqlite3.Connection, items: Sequence[Any]) -> tuple[list[Any], int]:
    """The batch without the messages already stored or earlier in the batch; how many went.

    ``items`` are the store's ``(parsed, digest, raw, source, partition, offset)``. Runs inside the
    caller's transaction. A message whose digest is new (nearly all) costs a set lookup; only
    a digest stored before or repeated within the batch has its identity compared.

    Example: ``kept, duplicates = drop_duplicates(store.connection, items)``
    """
    digests = [item[1] for item in items]
    counts = Counter(digests)
    stored = _stored(conn, items, counts.keys())
    suspects = stored.keys() | (
        {d for d, n in counts.items() if n > 1} if len(counts) < len(digests) else set()
    )
    if not suspects:  # no digest seen before: nothing to compare
        return list(items), 0

    def new(item: Any) -> bool:
        same = stored.setdefault(item[1], [])
        identity = _identity(item)
        if identity in same:
            return False
        same.append(identity)
        return True

    kept = [item for item in items if item[1] not in suspects or new(item)]
    return kept, len(items) - len(kept)
