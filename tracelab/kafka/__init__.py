"""Kafka: the transport between the simulated systems and the normalizer.

Owns: connection settings (``settings``), the producer sink (``sink``), the normalizing consumer
(``consume``) and where it stores batches (``writers``), read-only topic/group views (``views``),
and the local development broker (``broker/``).

May import: ``tracelab.config/errors/closing``, ``tracelab.ingest`` (the consumer feeds the ingest
pipeline) and ``tracelab.simulate.sinks`` (the sink interface the producer implements). Nothing
in ``ingest``, ``simulate`` or ``analysis`` imports this package.

Example::

    from tracelab.kafka import KafkaSink, consume
"""

from tracelab.kafka.consume import ConsumeStats, consume
from tracelab.kafka.settings import KafkaSettings, kafka_config, settings_summary
from tracelab.kafka.sink import KafkaSink, ensure_topic
from tracelab.kafka.views import consumer_lag, sample_messages, topic_overview

__all__ = [
    "ConsumeStats",
    "KafkaSettings",
    "KafkaSink",
    "consume",
    "consumer_lag",
    "ensure_topic",
    "kafka_config",
    "sample_messages",
    "settings_summary",
    "topic_overview",
]
