"""Kafka: the transport between the simulated systems and the normalizer.

Owns: connection settings (``settings``), the producer sink (``sink``), the normalizing consumer
(``consumer``) and where it stores batches (``writers``), read-only topic/group views (``views``),
why a cluster cannot be used (``trouble``: down, or refusing TLS/SASL),
N group members as one command (``group``: ``consume --processes``), and the local development
broker (``broker/``).

May import: ``tracelab.config/errors/closing``, ``tracelab.ingest`` (the consumer feeds the ingest
pipeline) and ``tracelab.simulate.sinks`` (the sink interface the producer implements). Nothing
in ``ingest``, ``simulate`` or ``analysis`` imports this package.

Example::

    from tracelab.kafka import KafkaSink, consume
"""

from __future__ import annotations

import importlib
from typing import Any

#: Public name -> the module that defines it. Imported on first use, so that a notebook that only
#: produces (``KafkaSink``) does not load the consumer, the ingest pipeline or SQLite.
_EXPORTS: dict[str, str] = {
    "ConsumeStats": "consumer",
    "consume": "consumer",
    "KafkaSettings": "settings",
    "kafka_config": "settings",
    "settings_summary": "settings",
    "KafkaSink": "sink",
    "ensure_topic": "sink",
    "PartitionLag": "views",
    "consumer_lag": "views",
    "sample_messages": "views",
    "topic_overview": "views",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'tracelab.kafka' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"tracelab.kafka.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
