"""environment.yml (conda users) and constraints.txt must pin what pyproject.toml pins."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent


def _canon(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _pins(specs: list[str]) -> dict[str, str]:
    pins: dict[str, str] = {}
    for spec in specs:
        name, sep, version = spec.partition("==")
        assert sep, f"not pinned with ==: {spec!r}"
        pins[_canon(name.strip())] = version.strip()
    return pins


@pytest.fixture(scope="module")
def pyproject_pins() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return _pins(project["dependencies"] + project["optional-dependencies"]["dev"])


def test_environment_yml_lists_the_same_pins(pyproject_pins: dict[str, str]) -> None:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert _pins(pip_section) == pyproject_pins
    assert "python=3.11" in env["dependencies"]


def test_constraints_agree_with_pyproject(pyproject_pins: dict[str, str]) -> None:
    lines = (ROOT / "constraints.txt").read_text().splitlines()
    constraints = _pins([ln for ln in lines if ln and not ln.startswith("#")])
    for name, version in pyproject_pins.items():
        assert constraints.get(name) == version, f"{name}: constraints.txt disagrees"


def test_duckdb_and_its_sqlite_extension_share_a_version(pyproject_pins: dict[str, str]) -> None:
    assert pyproject_pins["duckdb"] == pyproject_pins["duckdb-extension-sqlite-scanner"]
