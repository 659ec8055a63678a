"""Recognise a raw log message by its content and normalize it to a compact tuple.

The styles themselves are declared, not coded: see :mod:`tracelab.styles` (the built-ins in
``tracelab/styles/builtin.yaml``, user styles from ``--styles``/``$TRACELAB_STYLES``). This
module is the ingest side's entry point: :func:`parse` with the default registry, and the tuple
kinds the store reads.

One message is one raw log line (bytes). :func:`parse` never raises on any input; it returns

- ``None`` for a blank message (only whitespace), which is not a message at all;
- ``(EVENT, system_id, checkpoint_id, timestamp, status, correlation_id, failure_reason,
  join_state, attributes)`` for a checkpoint log;
- ``(DETAIL, system_id, correlation_id, failure_reason, timestamp)`` for a separate failure
  detail (``timestamp`` is None where the style joins by arrival, e.g. inventory JSON);
- ``(BAD, reason)`` for anything that cannot be normalized; the reason is meant for a person.
"""

from __future__ import annotations

from tracelab.styles import BAD, DETAIL, EVENT, Parsed, Registry, default_registry, loads_json

__all__ = ["BAD", "DETAIL", "EVENT", "Parsed", "loads_json", "parse", "parser_for"]


def parser_for(styles: Registry | None = None):  # type: ignore[no-untyped-def]
    """The parse function of ``styles`` (None: the built-ins plus ``$TRACELAB_STYLES``).

    Example: ``parser_for(load_registry(["mine.yaml"]))(b"...")``
    """
    return (styles or default_registry()).parse


def parse(value: bytes) -> Parsed | None:
    """Normalize one raw message with the default registry; never raises.

    Example: ``parse(b'2025-05-04T10:30:00 ORDER: A - SUCCESS (ID: x)')[1]`` -> ``'orders'``
    """
    return default_registry().parse(value)  # cached per $TRACELAB_STYLES; use parser_for in loops
