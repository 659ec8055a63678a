"""The local Apache Kafka broker tracelab starts for development, tests and CI.

Example:
    >>> from tracelab.kafka.broker import ensure_broker  # doctest: +SKIP
    >>> ensure_broker(9092)                         # doctest: +SKIP
    '127.0.0.1:9092'
"""

from tracelab.kafka.broker.local import (
    BrokerStatus,
    LocalBroker,
    broker_answers,
    ensure_broker,
    free_port,
    install_jars,
    jars_installed,
    new_cluster_id,
    resolve_bootstrap,
)

__all__ = [
    "BrokerStatus",
    "LocalBroker",
    "broker_answers",
    "ensure_broker",
    "free_port",
    "install_jars",
    "jars_installed",
    "new_cluster_id",
    "resolve_bootstrap",
]
