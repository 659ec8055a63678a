"""docker-compose.yml cannot run here (no Docker); it must stay valid and wired like the local
broker: apache/kafka in KRaft combined mode, the kafbat UI on it, the same topic settings."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
import yaml

from tracelab import config

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


@pytest.fixture(scope="module")
def kafka_env(compose: dict[str, Any]) -> dict[str, str]:
    return {k: str(v) for k, v in compose["services"]["kafka"]["environment"].items()}


def _listeners(text: str) -> dict[str, str]:
    out = {}
    for item in text.split(","):
        name, _, rest = item.partition("://")
        out[name] = rest
    return out


def test_services_and_images(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == {"kafka", "kafka-init", "kafka-ui"}
    image, _, tag = services["kafka"]["image"].partition(":")
    assert image == "apache/kafka"
    assert tag.split(".")[0] == "4"
    assert services["kafka-ui"]["image"].startswith("ghcr.io/kafbat/kafka-ui")
    for name in ("kafka-init", "kafka-ui"):
        assert services[name]["depends_on"]["kafka"]["condition"] == "service_healthy"
    assert "healthcheck" in services["kafka"]


@pytest.mark.parametrize(
    ("service", "port"), [("kafka", config.DEFAULT_BROKER_PORT), ("kafka-ui", 8080)]
)
def test_published_ports(compose: dict[str, Any], service: str, port: int) -> None:
    ports = [str(p) for p in compose["services"][service]["ports"]]
    assert f"{port}:{port}" in ports


def test_kraft_combined_mode_and_listeners(kafka_env: dict[str, str]) -> None:
    assert set(kafka_env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    node = kafka_env["KAFKA_NODE_ID"]
    voters = kafka_env["KAFKA_CONTROLLER_QUORUM_VOTERS"]
    assert voters.startswith(f"{node}@kafka:")
    listeners = _listeners(kafka_env["KAFKA_LISTENERS"])
    advertised = _listeners(kafka_env["KAFKA_ADVERTISED_LISTENERS"])
    protocols = dict(
        p.split(":") for p in kafka_env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(",")
    )
    assert set(listeners) == set(protocols)
    controller = kafka_env["KAFKA_CONTROLLER_LISTENER_NAMES"]
    assert controller in listeners and controller not in advertised
    assert voters.endswith(":" + listeners[controller].rsplit(":", 1)[1])
    assert kafka_env["KAFKA_INTER_BROKER_LISTENER_NAME"] in advertised
    # host clients reach the published port; containers reach the internal listener
    assert any(v == f"localhost:{config.DEFAULT_BROKER_PORT}" for v in advertised.values())
    assert any(v.startswith("kafka:") for v in advertised.values())
    cluster_id = kafka_env["CLUSTER_ID"].split("#")[0].strip()
    raw = base64.urlsafe_b64decode(cluster_id + "==")
    assert len(raw) == 16
    assert base64.urlsafe_b64encode(raw).decode().rstrip("=") == cluster_id


def test_same_topic_settings_as_local_broker(
    compose: dict[str, Any], kafka_env: dict[str, str]
) -> None:
    assert int(kafka_env["KAFKA_NUM_PARTITIONS"]) == config.DEFAULT_PARTITIONS
    for key, value in kafka_env.items():
        if key.endswith("REPLICATION_FACTOR") or key.endswith("MIN_ISR"):
            assert value == "1", key
    assert kafka_env["KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS"] == "0"
    args = [str(a) for a in compose["services"]["kafka-init"]["command"]]
    assert args[args.index("--topic") + 1] == config.DEFAULT_TOPIC
    assert int(args[args.index("--partitions") + 1]) == config.DEFAULT_PARTITIONS
    assert args[args.index("--replication-factor") + 1] == "1"
    assert "--if-not-exists" in args


def test_ui_points_at_internal_listener(compose: dict[str, Any], kafka_env: dict[str, str]) -> None:
    ui = compose["services"]["kafka-ui"]["environment"]
    internal = _listeners(kafka_env["KAFKA_ADVERTISED_LISTENERS"])[
        kafka_env["KAFKA_INTER_BROKER_LISTENER_NAME"]
    ]
    assert ui["KAFKA_CLUSTERS_0_BOOTSTRAPSERVERS"] == internal
    init = [str(a) for a in compose["services"]["kafka-init"]["command"]]
    assert init[init.index("--bootstrap-server") + 1] == internal
