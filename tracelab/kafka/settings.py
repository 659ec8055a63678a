"""Connection settings of a Kafka cluster, and the clients built from them.

Settings for real clusters come from :func:`kafka_config` (a file and/or ``TRACELAB_KAFKA_*``
environment variables); secrets are masked whenever settings are shown. The admin and plain
consumer factories here are the one place that turns settings into a kafka-python client.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tracelab.errors import ConfigError, KafkaIOError
from tracelab.kafka.trouble import unreachable_message, watch_kafka_log

if TYPE_CHECKING:
    pass

log = logging.getLogger(__name__)

__all__ = [
    "KafkaSettings",
    "admin_client",
    "kafka_config",
    "no_brokers_error",
    "plain_consumer",
    "resolve_settings",
    "settings_summary",
]


#: Setting name -> whether it is a secret. Names are kafka-python's; Kafka's dotted names
#: (``security.protocol``) are accepted in config files and mapped to these.
_SETTINGS: dict[str, bool] = {
    "security_protocol": False,
    "sasl_mechanism": False,
    "sasl_plain_username": False,
    "sasl_plain_password": True,
    "sasl_kerberos_service_name": False,
    "sasl_kerberos_domain_name": False,
    "ssl_cafile": False,
    "ssl_certfile": False,
    "ssl_keyfile": False,
    "ssl_password": True,
    "ssl_crlfile": False,
    "ssl_check_hostname": False,
    "client_id": False,
    "request_timeout_ms": False,
}
_ALIASES = {
    "sasl_username": "sasl_plain_username",
    "sasl_password": "sasl_plain_password",
    "sasl_jaas_username": "sasl_plain_username",
    "ssl_truststore_location": "ssl_cafile",
    "ssl_ca_location": "ssl_cafile",
    "ssl_certificate_location": "ssl_certfile",
    "ssl_key_location": "ssl_keyfile",
    "ssl_key_password": "ssl_password",
    "ssl_endpoint_identification_algorithm": "ssl_check_hostname",
}
_ENV_PREFIX = "TRACELAB_KAFKA_"
_ENV_FILE = "TRACELAB_KAFKA_CONFIG"
_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "GSSAPI", "OAUTHBEARER")
MASK = "***"


class KafkaSettings(dict[str, Any]):
    """kafka-python keyword settings whose text form never shows a secret.

    Example: ``str(KafkaSettings(sasl_plain_password="pw"))`` -> masked ``'***'``
    """

    def redacted(self) -> dict[str, Any]:
        """A copy with every secret replaced by ``***``.

        Example: ``kafka_config().redacted()``
        """
        return {k: (MASK if _SETTINGS.get(k) and v else v) for k, v in self.items()}

    def __repr__(self) -> str:
        return repr(self.redacted())

    __str__ = __repr__

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:  # IPython / notebooks
        printer.text(repr(self))


def _canonical(name: str) -> str:
    key = name.strip().lower().replace(".", "_").replace("-", "_")
    key = key.removeprefix("kafka_")
    return _ALIASES.get(key, key)


def _coerce(key: str, value: Any) -> Any:
    if key == "request_timeout_ms":
        try:
            return int(value)
        except (TypeError, ValueError):
            raise ConfigError(f"Kafka setting {key} must be an integer") from None
    if key == "ssl_check_hostname":
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        return text not in ("", "0", "false", "no", "none")
    text = str(value)
    if key == "security_protocol":
        text = text.upper()
        if text not in _PROTOCOLS:
            raise ConfigError(f"security_protocol must be one of {', '.join(_PROTOCOLS)}")
    if key == "sasl_mechanism":
        text = text.upper()
        if text not in _MECHANISMS:
            raise ConfigError(f"sasl_mechanism must be one of {', '.join(_MECHANISMS)}")
    if (
        key in ("ssl_cafile", "ssl_certfile", "ssl_keyfile", "ssl_crlfile")
        and not Path(text).is_file()
    ):
        raise ConfigError(f"Kafka setting {key}: file not found: {text}")
    return text


def _read_config_file(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read Kafka config file {path}: {exc.strerror or exc}") from None
    if path.suffix.lower() in (".yaml", ".yml", ".json"):
        import yaml

        try:
            data = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            # never the parser's message: it quotes the file's text, secrets included
            mark = getattr(exc, "context_mark", None) or getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            raise ConfigError(
                f"Kafka config file {path} is not valid YAML/JSON{where} (text not shown: it "
                "may hold secrets)"
            ) from None
        if not isinstance(data, dict):
            raise ConfigError(f"Kafka config file {path} must hold a mapping of settings")
        return data
    data = {}
    for number, raw in enumerate(text.splitlines(), 1):  # Java .properties style
        line = raw.strip()
        if not line or line[0] in "#!":
            continue
        sep = min((i for i in (line.find("="), line.find(":")) if i > 0), default=-1)
        if sep < 0:
            raise ConfigError(f"{path}:{number}: expected key=value")
        data[line[:sep].strip()] = line[sep + 1 :].strip()
    return data


def kafka_config(
    path: str | Path | None = None, env: Mapping[str, str] | None = None
) -> KafkaSettings:
    """Connection settings for kafka-python from a config file and the environment.

    The file (``path``, else ``$TRACELAB_KAFKA_CONFIG``) is YAML/JSON or Java ``.properties``;
    environment variables ``TRACELAB_KAFKA_<SETTING>`` (e.g. ``TRACELAB_KAFKA_SECURITY_PROTOCOL``,
    ``..._SASL_MECHANISM``, ``..._SASL_USERNAME``, ``..._SASL_PASSWORD``, ``..._SSL_CAFILE``,
    ``..._SSL_CERTFILE``, ``..._SSL_KEYFILE``, ``..._CLIENT_ID``) override it. Unknown settings are
    rejected with ``ConfigError``. The result prints with secrets masked.

    Example: ``kafka_config(env={"TRACELAB_KAFKA_SECURITY_PROTOCOL": "SASL_SSL"})``
    """
    environ = os.environ if env is None else env
    raw: dict[str, Any] = {}
    file = path or environ.get(_ENV_FILE)
    if file:
        raw.update({_canonical(k): v for k, v in _read_config_file(Path(file)).items()})
    for name, value in environ.items():
        if name.startswith(_ENV_PREFIX) and name != _ENV_FILE and value != "":
            raw[_canonical(name[len(_ENV_PREFIX) :])] = value
    raw.pop("bootstrap_servers", None)
    raw.pop("bootstrap", None)
    unknown = sorted(k for k in raw if k not in _SETTINGS)
    if unknown:
        raise ConfigError(
            f"unknown Kafka setting(s): {', '.join(unknown)} (known: {', '.join(_SETTINGS)})"
        )
    settings = KafkaSettings({k: _coerce(k, v) for k, v in raw.items() if v is not None})
    if str(settings.get("security_protocol", "")).startswith("SASL") and not settings.get(
        "sasl_mechanism"
    ):
        settings["sasl_mechanism"] = "PLAIN"
    return settings


def resolve_settings(settings: Mapping[str, Any] | None) -> KafkaSettings:
    """The given settings, or (None) those of :func:`kafka_config` (file and environment).

    Example: ``resolve_settings({"client_id": "x"})`` -> ``{'client_id': 'x'}``
    """
    watch_kafka_log()
    return KafkaSettings(kafka_config() if settings is None else settings)


def no_brokers_error(
    bootstrap: str, exc: BaseException, settings: Mapping[str, Any] | None = None
) -> KafkaIOError:
    """The error raised when no broker at ``bootstrap`` answers a client (or refuses the TLS/SASL
    ``settings``: see :func:`tracelab.kafka.trouble.unreachable_message`).

    Example: ``raise no_brokers_error("127.0.0.1:9092", exc, settings) from None``
    """
    return KafkaIOError(unreachable_message(bootstrap, exc, settings or {}))


def admin_client(bootstrap: str, settings: Mapping[str, Any]) -> Any:
    """A kafka-python ``KafkaAdminClient`` for ``bootstrap`` with ``settings``.

    Example: ``admin_client("127.0.0.1:9092", {}).list_topics()``
    """
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    opts = dict(settings)
    opts.setdefault("client_id", "tracelab-admin")
    opts.setdefault("request_timeout_ms", 15000)
    try:
        return KafkaAdminClient(bootstrap_servers=bootstrap, bootstrap_timeout_ms=15000, **opts)
    except (KafkaError, OSError) as exc:
        raise no_brokers_error(bootstrap, exc, settings) from None


def plain_consumer(bootstrap: str, settings: Mapping[str, Any] | None) -> Any:
    """A group-less ``KafkaConsumer`` for reading offsets and sampling messages.

    Example: ``plain_consumer("127.0.0.1:9092", None).topics()``
    """
    from kafka import KafkaConsumer
    from kafka.errors import KafkaError

    opts = dict(resolve_settings(settings))
    opts.setdefault("client_id", "tracelab-inspect")
    try:
        return KafkaConsumer(
            bootstrap_servers=bootstrap,
            enable_auto_commit=False,
            metrics_enabled=False,
            bootstrap_timeout_ms=15_000,
            **opts,
        )
    except (KafkaError, OSError) as exc:
        raise no_brokers_error(bootstrap, exc, settings) from None


def settings_summary(settings: Mapping[str, Any]) -> str:
    """The settings as JSON with secrets masked (for logs and notebooks).

    Example: ``settings_summary(kafka_config())`` -> ``'{}'``
    """
    return json.dumps(KafkaSettings(settings).redacted(), sort_keys=True)
