"""The local Apache Kafka broker: its files, its configuration, and (marked ``kafka``) the real
JVM started, queried, refused and stopped through the library and the CLI."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tracelab import config
from tracelab.errors import BrokerError
from tracelab.kafka.broker import (
    LocalBroker,
    broker_answers,
    ensure_broker,
    free_port,
    jars_installed,
    new_cluster_id,
)
from tracelab.kafka.broker.local import POM_PATH, min_heap

ROOT = Path(__file__).resolve().parent.parent
NS = {"m": "http://maven.apache.org/POM/4.0.0"}


def _props(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            out[key.strip()] = value.strip()
    return out


def test_cluster_id_is_url_safe_base64_of_16_bytes_never_starting_with_a_dash() -> None:
    # One random id in 64 would start with "-" and be read as an option by the storage tool;
    # 2000 draws would meet one with probability 1 - (63/64)**2000, i.e. practically always.
    for _ in range(2000):
        cid = new_cluster_id()
        assert len(cid) == 22
        assert set(cid) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
        assert len(base64.urlsafe_b64decode(cid + "==")) == 16
        assert not cid.startswith("-"), cid


@pytest.mark.parametrize(
    ("heap", "initial"), [("1g", "256m"), ("768m", "192m"), ("256m", "128m"), ("2G", "512m")]
)
def test_min_heap(heap: str, initial: str) -> None:
    assert min_heap(heap) == initial


@pytest.mark.parametrize(
    "kwargs",
    [
        {"port": 0},
        {"port": 70000},
        {"port": 9092, "controller_port": 9092},
        {"port": 9092, "controller_port": -1},
        {"heap": "lots"},
        {"partitions": 0},
    ],
)
def test_invalid_settings_are_refused(tmp_path: Path, kwargs: dict[str, object]) -> None:
    with pytest.raises(BrokerError):
        LocalBroker(tmp_path, **kwargs)  # type: ignore[arg-type]


def test_defaults_follow_config(tmp_path: Path) -> None:
    broker = LocalBroker(tmp_path)
    assert broker.port == config.DEFAULT_BROKER_PORT
    assert broker.controller_port == config.DEFAULT_CONTROLLER_PORT
    assert broker.bootstrap == f"127.0.0.1:{config.DEFAULT_BROKER_PORT}"
    assert LocalBroker().data_dir == config.KAFKA_DIR.resolve()


def test_server_properties_single_node_loopback(tmp_path: Path) -> None:
    broker = LocalBroker(tmp_path / "k", port=19555, controller_port=19556, partitions=4)
    broker._write_config()
    text = broker.properties_path.read_text()
    assert "${" not in text
    props = _props(broker.properties_path)
    assert props["process.roles"] == "broker,controller"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:19556"
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:19555,CONTROLLER://127.0.0.1:19556"
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:19555"
    assert props["num.partitions"] == "4"
    assert props["group.initial.rebalance.delay.ms"] == "0"
    assert props["log.dirs"] == str(broker.kafka_data)
    factors = {k: v for k, v in props.items() if k.endswith(("replication.factor", "min.isr"))}
    assert len(factors) >= 5 and set(factors.values()) == {"1"}


def test_pom_declares_kafka_4_and_a_logging_binding() -> None:
    root = ET.parse(POM_PATH).getroot()
    assert root.findtext("m:packaging", namespaces=NS) == "pom"
    props = {p.tag.split("}")[1]: p.text for p in root.find("m:properties", NS)}
    deps = {
        (d.findtext("m:groupId", namespaces=NS), d.findtext("m:artifactId", namespaces=NS))
        for d in root.iter(f"{{{NS['m']}}}dependency")
    }
    assert ("org.apache.kafka", "kafka_2.13") in deps
    assert props["kafka.version"].split(".")[0] == "4"
    log4j = {a for g, a in deps if g == "org.apache.logging.log4j"}
    assert {"log4j-core", "log4j-api"} <= log4j
    assert log4j & {"log4j-slf4j-impl", "log4j-slf4j2-impl"}


def test_status_of_a_broker_that_never_ran(tmp_path: Path) -> None:
    broker = LocalBroker(tmp_path, port=free_port())
    status = broker.status()
    assert not status.running and not status.answering and status.pid is None
    assert "stopped" in status.describe()
    assert broker.stop() is False


def test_stale_pid_file_is_ignored(tmp_path: Path) -> None:
    broker = LocalBroker(tmp_path, port=free_port())
    tmp_path.mkdir(exist_ok=True)
    broker.pid_file.write_text(f"{os.getpid()}\n")  # alive, but not a Kafka JVM of this folder
    assert broker.pid() is None
    assert not broker.pid_file.exists()


def test_nothing_answers_on_a_free_port() -> None:
    assert broker_answers(f"127.0.0.1:{free_port()}", timeout=1.0) is False


# ------------------------------------------------------------------ against the real broker


@pytest.mark.kafka
def test_session_broker_runs_and_answers(kafka_broker: LocalBroker) -> None:
    assert jars_installed(kafka_broker.libs_dir)
    assert any(kafka_broker.libs_dir.glob("kafka_2.13-4.*.jar"))
    status = kafka_broker.status()
    assert status.running and status.answering
    assert status.pid == int(kafka_broker.pid_file.read_text())
    assert (kafka_broker.log_dir / "server.log").stat().st_size > 0
    assert (kafka_broker.kafka_data / "meta.properties").is_file()


@pytest.mark.kafka
def test_start_is_idempotent(kafka_broker: LocalBroker) -> None:
    pid = kafka_broker.pid()
    started = time.monotonic()
    assert kafka_broker.start() == kafka_broker.bootstrap
    assert kafka_broker.pid() == pid
    assert time.monotonic() - started < 10
    # A second handle on the same folder sees the same broker.
    twin = LocalBroker(
        kafka_broker.data_dir, port=kafka_broker.port, controller_port=kafka_broker.controller_port
    )
    assert twin.pid() == pid
    assert twin.start() == kafka_broker.bootstrap


@pytest.mark.kafka
def test_port_taken_by_another_program_is_a_clear_error(
    kafka_broker: LocalBroker, tmp_path: Path
) -> None:
    other = LocalBroker(tmp_path / "other", port=kafka_broker.port)
    with pytest.raises(BrokerError, match="already in use"):
        other.start()
    assert not (tmp_path / "other" / "broker.pid").exists()


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TRACELAB_KAFKA_JVM_OPTS": "-XX:TieredStopAtLevel=1"}
    return subprocess.run(
        [sys.executable, "-m", "tracelab", "broker", *args],
        capture_output=True, text=True, timeout=240, cwd=ROOT, env=env, check=False,
    )  # fmt: skip


@pytest.mark.kafka
def test_cli_start_status_stop(kafka_broker: LocalBroker, tmp_path: Path) -> None:
    port, cport = free_port(), free_port()
    where = ["--port", str(port), "--controller-port", str(cport), "--data-dir", str(tmp_path)]
    where += ["--libs-dir", str(kafka_broker.libs_dir)]
    stopped = _cli("status", *where)
    assert stopped.returncode == 3 and "stopped" in stopped.stdout
    try:
        started = _cli("start", *where, "--heap", "512m")
        assert started.returncode == 0, started.stderr
        assert started.stdout.strip() == f"127.0.0.1:{port}"
        assert broker_answers(f"127.0.0.1:{port}")
        again = _cli("start", *where)
        assert again.returncode == 0 and "already running" in again.stderr
        status = _cli("status", *where)
        assert status.returncode == 0 and "running" in status.stdout
    finally:
        stop = _cli("stop", *where)
    assert stop.returncode == 0 and "stopped" in stop.stdout
    assert not broker_answers(f"127.0.0.1:{port}", timeout=1.0)
    assert not (tmp_path / "broker.pid").exists()
    assert "no Kafka broker was running" in _cli("stop", *where).stdout


@pytest.mark.kafka
def test_ensure_broker_uses_what_answers(
    kafka_broker: LocalBroker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TRACELAB_BOOTSTRAP", raising=False)
    # A broker already answers on the port (not started from this folder): used, none started.
    assert ensure_broker(kafka_broker.port, tmp_path / "unused") == kafka_broker.bootstrap
    assert not (tmp_path / "unused").exists()
    monkeypatch.setenv("TRACELAB_BOOTSTRAP", "kafka.example:9092")
    assert ensure_broker(kafka_broker.port, tmp_path / "unused") == "kafka.example:9092"
