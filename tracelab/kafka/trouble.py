"""Say why Kafka cannot be reached: down, or refusing our TLS/SASL settings.

kafka-python reports a failed TLS handshake or SASL authentication only in its log; the
exception that reaches us is a bland "unable to bootstrap". :class:`SecurityTrouble` listens to
the ``kafka`` logger and keeps the last such failure, and :func:`unreachable_message` turns it
into one line that says so, instead of asking whether the broker is running.

Example::

    from tracelab.kafka.trouble import unreachable_message, watch_kafka_log

    watch_kafka_log()
    ...  # a KafkaConsumer(...) that fails to bootstrap
    print(unreachable_message("127.0.0.1:9092", exc, {"security_protocol": "SSL"}))
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Mapping
from typing import Any

__all__ = ["SecurityTrouble", "quiet_kafka_log", "unreachable_message", "watch_kafka_log"]

_SECURITY = re.compile(
    r"Handshake failed|SSL|TLS|certificate|Sasl|SASL|Authenticat|Authoriz|Unsupported.*Mechanism",
)


class SecurityTrouble(logging.Handler):
    """A handler that remembers the last TLS/SASL failure the kafka-python log reported."""

    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.last: tuple[float, str] | None = None

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
        except Exception:  # noqa: BLE001 - a log record must never break the client
            return
        m = _SECURITY.search(text)
        if m is not None:
            self.last = (time.monotonic(), _excerpt(text, m.start()))

    def recent(self, seconds: float = 120.0) -> str | None:
        """The last failure if it is at most ``seconds`` old."""
        if self.last is None or time.monotonic() - self.last[0] > seconds:
            return None
        return self.last[1]


def _excerpt(text: str, at: int) -> str:
    # kafka-python's lines start with connection details; keep the part that names the failure
    start = max(text.rfind(": ", 0, at) + 2, 0) if ": " in text[:at] else 0
    out = re.sub(r"\s*\(backoff [^)]*\)\s*$", "", text[start:]).strip()
    return out if len(out) <= 160 else out[:157] + "..."


_HANDLER = SecurityTrouble()


def watch_kafka_log() -> SecurityTrouble:
    """Attach the (single) :class:`SecurityTrouble` handler to the ``kafka`` logger.

    The logger must let WARNING records through for it to see them (the CLI sets it to WARNING
    and stops propagation, so kafka-python's own lines are not printed).

    Example: ``watch_kafka_log().recent()`` -> ``None``
    """
    logger = logging.getLogger("kafka")
    if _HANDLER not in logger.handlers:
        logger.addHandler(_HANDLER)
    return _HANDLER


def quiet_kafka_log() -> None:
    """For the CLI: kafka-python's log lines are not printed (tracelab reports in its own one
    line), but its TLS/SASL failures are still seen by :func:`watch_kafka_log`.

    Example: ``quiet_kafka_log()``
    """
    logger = logging.getLogger("kafka")
    logger.setLevel(logging.WARNING)
    logger.propagate = False
    watch_kafka_log()


def unreachable_message(bootstrap: str, exc: BaseException, settings: Mapping[str, Any]) -> str:
    """One line on why Kafka at ``bootstrap`` cannot be used.

    Example: ``unreachable_message("h:9092", TimeoutError(), {})`` mentions the broker running
    """
    protocol = str(settings.get("security_protocol") or "PLAINTEXT").upper()
    trouble = _HANDLER.recent()
    if trouble is not None:
        kind = "TLS handshake" if re.search(r"SSL|TLS|Handshake|certificate", trouble) else None
        kind = kind or "SASL authentication"
        return (
            f"cannot connect to Kafka at {bootstrap}: {kind} failed ({trouble}) with "
            f"security_protocol={protocol}; check the security protocol, credentials and TLS "
            "files (--kafka-config / TRACELAB_KAFKA_*)"
        )
    if protocol != "PLAINTEXT":
        return (
            f"cannot connect to Kafka at {bootstrap} with security_protocol={protocol} "
            f"({type(exc).__name__}): the broker is down, or it refused the TLS/SASL settings "
            "(check --kafka-config / TRACELAB_KAFKA_*)"
        )
    return (
        f"cannot reach Kafka at {bootstrap} ({type(exc).__name__}); is the broker running? "
        "(`tracelab broker start`, or set --bootstrap / TRACELAB_BOOTSTRAP)"
    )
