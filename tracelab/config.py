"""Every path and default of tracelab in one place.

Paths resolve against the project root: the folder holding ``pyproject.toml`` when tracelab runs
from a checkout, else the current directory. ``TRACELAB_HOME`` overrides it.
"""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent


def _find_root() -> Path:
    env = os.environ.get("TRACELAB_HOME")
    if env:
        return Path(env).resolve()
    candidate = PACKAGE_DIR.parent
    if (candidate / "pyproject.toml").is_file():
        return candidate
    return Path.cwd()


ROOT: Path = _find_root()
DATA_DIR: Path = ROOT / "data"
RAW_DIR: Path = DATA_DIR / "raw"  # immutable input: simulated raw logs, truth files
SAMPLES_DIR: Path = DATA_DIR / "samples"  # the seed's example logs
FLOWS_DIR: Path = DATA_DIR / "flows"  # declared flows
PROCESSED_DIR: Path = DATA_DIR / "processed"  # SQLite databases
DEFAULT_DB: Path = PROCESSED_DIR / "event_history.db"
LAKE_DIR: Path = DATA_DIR / "lake"  # Parquet lake written by `tracelab export --lake`
DEFAULT_FLOW: Path = FLOWS_DIR / "default.yaml"
KAFKA_DIR: Path = ROOT / ".kafka"  # local broker: jars, config, data, logs (git-ignored)
KAFKA_LIBS_DIR: Path = KAFKA_DIR / "libs"  # the broker's jars, resolved by Maven (cache ~/.m2)
NOTEBOOKS_DIR: Path = ROOT / "notebooks"
REPORTS_DIR: Path = ROOT / "reports"

DEFAULT_TOPIC = "raw-logs"
DEFAULT_PARTITIONS = 6
DEFAULT_BROKER_PORT = 9092
DEFAULT_CONTROLLER_PORT = 9093

STATUSES: tuple[str, ...] = ("SUCCESS", "FAILURE")


def bootstrap_from_env(default: str | None = None) -> str | None:
    """The Kafka bootstrap address from ``TRACELAB_BOOTSTRAP``, else ``default``.

    Example: ``bootstrap_from_env("127.0.0.1:9092")``
    """
    return os.environ.get("TRACELAB_BOOTSTRAP") or default
