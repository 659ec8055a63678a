"""Connection settings for real clusters: file + environment -> kafka-python keywords, secrets
never shown."""

from __future__ import annotations

from pathlib import Path

import pytest

from tracelab.errors import ConfigError
from tracelab.kafka import KafkaSettings, kafka_config, settings_summary


def test_nothing_configured_is_empty() -> None:
    assert kafka_config(env={}) == {}


def test_environment_variables(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("cert")
    env = {
        "TRACELAB_KAFKA_SECURITY_PROTOCOL": "sasl_ssl",
        "TRACELAB_KAFKA_SASL_MECHANISM": "scram-sha-512",
        "TRACELAB_KAFKA_SASL_USERNAME": "svc",
        "TRACELAB_KAFKA_SASL_PASSWORD": "s3cret-pw",
        "TRACELAB_KAFKA_SSL_CAFILE": str(ca),
        "TRACELAB_KAFKA_CLIENT_ID": "normalizer-1",
        "UNRELATED": "x",
    }
    settings = kafka_config(env=env)
    assert settings == {
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "svc",
        "sasl_plain_password": "s3cret-pw",
        "ssl_cafile": str(ca),
        "client_id": "normalizer-1",
    }


@pytest.mark.parametrize("suffix", [".properties", ".yaml", ".json"])
def test_config_file_and_env_override(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"kafka{suffix}"
    if suffix == ".properties":
        path.write_text(
            "# cluster\nsecurity.protocol=SASL_PLAINTEXT\nsasl.mechanism=PLAIN\n"
            "sasl.username=alice\nsasl.password=pw-from-file\nclient.id=a\n"
        )
    elif suffix == ".yaml":
        path.write_text(
            "security_protocol: SASL_PLAINTEXT\nsasl_mechanism: PLAIN\nsasl_username: alice\n"
            "sasl_password: pw-from-file\nclient_id: a\n"
        )
    else:
        path.write_text(
            '{"security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "PLAIN", '
            '"sasl.username": "alice", "sasl.password": "pw-from-file", "client.id": "a"}'
        )
    settings = kafka_config(path, env={"TRACELAB_KAFKA_CLIENT_ID": "b"})
    assert settings["security_protocol"] == "SASL_PLAINTEXT"
    assert settings["sasl_plain_username"] == "alice"
    assert settings["sasl_plain_password"] == "pw-from-file"
    assert settings["client_id"] == "b"  # the environment wins
    via_env = kafka_config(env={"TRACELAB_KAFKA_CONFIG": str(path)})
    assert via_env["client_id"] == "a"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"TRACELAB_KAFKA_SECURITY_PROTOCOL": "TLS"}, "security_protocol"),
        ({"TRACELAB_KAFKA_SASL_MECHANISM": "MAGIC"}, "sasl_mechanism"),
        ({"TRACELAB_KAFKA_FETCH_EVERYTHING": "1"}, "unknown Kafka setting"),
        ({"TRACELAB_KAFKA_SSL_CAFILE": "/nonexistent/ca.pem"}, "file not found"),
        ({"TRACELAB_KAFKA_REQUEST_TIMEOUT_MS": "soon"}, "integer"),
    ],
)
def test_bad_settings_are_refused(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        kafka_config(env=env)


def test_sasl_without_mechanism_defaults_to_plain() -> None:
    settings = kafka_config(env={"TRACELAB_KAFKA_SECURITY_PROTOCOL": "SASL_SSL"})
    assert settings["sasl_mechanism"] == "PLAIN"


def test_secrets_never_shown() -> None:
    settings = kafka_config(
        env={
            "TRACELAB_KAFKA_SASL_USERNAME": "svc",
            "TRACELAB_KAFKA_SASL_PASSWORD": "hunter2-secret",
            "TRACELAB_KAFKA_SSL_PASSWORD": "key-secret",
        }
    )
    assert isinstance(settings, KafkaSettings)
    for text in (repr(settings), str(settings), f"{settings}", settings_summary(settings)):
        assert "hunter2-secret" not in text and "key-secret" not in text
        assert "***" in text and "svc" in text
    assert settings["sasl_plain_password"] == "hunter2-secret"  # still usable by the client


def test_unreadable_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        kafka_config(tmp_path / "missing.properties", env={})
    bad = tmp_path / "bad.properties"
    bad.write_text("just words\n")
    with pytest.raises(ConfigError, match="key=value"):
        kafka_config(bad, env={})
