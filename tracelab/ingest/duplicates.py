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
from collections.abc import Sequence
from typing import Any

from tracelab.ingest.parsers import BAD, DETAIL, EVENT
from tracelab.record import JOIN_AWAITING, JOIN_JOINED

__all__ = ["drop_duplicates"]

# CROSS JOIN fixes the loop order: the batch's few keys outside, an index search inside. Each
# query returns the digest and then the identity of each row, as _identity makes it of a message.
_EVENTS_OF_TRACES = (
    "SELECT e.msg_hash, 0, e.system_id, e.checkpoint_id, e.timestamp, e.status, e.correlation_id,"
    " CASE WHEN e.join_state IN (?, ?) THEN NULL ELSE e.failure_reason END, e.attributes"
    " FROM json_each(?) AS k CROSS JOIN events AS e INDEXED BY events_correlation"
    " ON e.correlation_id = k.value"
)
_DETAILS_OF_KEYS = (
    "SELECT d.msg_hash, 1, d.system_id, d.correlation_id, d.raw"
    " FROM json_each(?) AS k CROSS JOIN details AS d INDEXED BY details_key"
    " ON d.system_id = k.value ->> 0 AND d.correlation_id = k.value ->> 1"
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


def _stored(conn: sqlite3.Connection, items: Sequence[Any]) -> dict[bytes, list[tuple[Any, ...]]]:
    """Digest -> identities of the stored rows that could be the same as a message of ``items``:
    the rows of the batch's traces (events, details) and of its digests (quarantine)."""
    cids: set[str] = set()
    detail_keys: set[tuple[str, str]] = set()
    bad_hashes: set[bytes] = set()
    for parsed, digest, *_ in items:
        kind = parsed[0]
        if kind == EVENT:
            cids.add(parsed[5])
        elif kind == DETAIL:
            detail_keys.add((parsed[1], parsed[2]))
        else:
            bad_hashes.add(digest)
    rows: list[Any] = []
    if cids:
        args = (JOIN_AWAITING, JOIN_JOINED, json.dumps(list(cids)))
        rows += conn.execute(_EVENTS_OF_TRACES, args).fetchall()
    if detail_keys:
        rows += conn.execute(_DETAILS_OF_KEYS, (json.dumps(list(detail_keys)),)).fetchall()
    hashes = list(bad_hashes)
    for start in range(0, len(hashes), 500):
        chunk = hashes[start : start + 500]
        rows += conn.execute(_QUARANTINE_OF_HASHES.format(", ".join("?" * len(chunk))), chunk)
    stored: dict[bytes, list[tuple[Any, ...]]] = {}
    for row in rows:
        stored.setdefault(row[0], []).append(row[1:])
    return stored


def drop_duplicates(conn: sqlite3.Connection, items: Sequence[Any]) -> tuple[list[Any], int]:
    """The batch without the messages already stored or earlier in the batch; how many went.

    ``items`` are the store's ``(parsed, digest, raw, source, partition, offset)``. Runs inside the
    caller's transaction. A message whose digest is new (nearly all) costs two dictionary
    lookups; only a digest seen before has its identity compared.

    Example: ``kept, duplicates = drop_duplicates(store.connection, items)``
    """
    stored = _stored(conn, items)
    first: dict[bytes, Any] = {}  # digest -> the batch's first message with it
    kept: list[Any] = []
    for item in items:
        digest = item[1]
        if digest not in stored and digest not in first:
            first[digest] = item
            kept.append(item)
            continue
        same = stored.setdefault(digest, [])
        earlier = first.pop(digest, None)
        if earlier is not None:
            same.append(_identity(earlier))
        identity = _identity(item)
        if identity in same:
            continue
        same.append(identity)
        kept.append(item)
    return kept, len(items) - len(kept)
