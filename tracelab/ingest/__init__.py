"""Ingest: raw messages -> parsed, normalized rows -> joined -> stored in SQLite, exactly once.

Owns: parsing a raw message to the normalized schema (``parsers``), the join of separate failure
details (``join``), the batch path every message takes (``pipeline``: parse -> digest -> write),
the SQLite store and its schema/migrations (``store``, ``schema``), the per-message fault
boundary (``boundary``), splitting a byte stream into messages (``lines``), tying parse
children to their parent (``lifeline``), duplicates found among the rows of a message's own
trace (``duplicates``), and shard folders: one database per partition or per hash of the trace
(``shards``).

May import: ``tracelab.config/errors/closing/timefmt`` (and the style registry once it exists).
Never imports ``kafka``, ``simulate``, ``analysis`` or ``cli``: the Kafka consumer and the file
normalizer both call into this package, not the other way round.

Example::

    from tracelab.ingest import normalize_files
    normalize_files(["data/samples/orders.log"], "x.db").adds_up
"""

from tracelab.ingest.pipeline import Normalizer, normalize_files
from tracelab.ingest.store import SQLiteStore, Summary

__all__ = ["Normalizer", "SQLiteStore", "Summary", "normalize_files"]
