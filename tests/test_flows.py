"""Declared flows: the default reproduces the seed, broken files name the broken field."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from tracelab import config
from tracelab.errors import FlowError, TracelabError
from tracelab.simulate.flows import Distribution, load_flow, parse_flow

DEFAULT = config.DEFAULT_FLOW


@pytest.fixture(scope="module")
def raw() -> dict[str, Any]:
    """The default flow file as plain data (copied by each test that edits it)."""
    return yaml.safe_load(DEFAULT.read_text(encoding="utf-8"))


def test_default_flow_reproduces_the_seed_example() -> None:
    flow = load_flow(DEFAULT)
    assert list(flow.systems) == ["inventory", "payments", "reporting", "orders"]
    styles = {n: s.style for n, s in flow.systems.items()}
    assert styles == {
        "inventory": "json-separate",
        "payments": "text-separate",
        "reporting": "json-inline",
        "orders": "text-inline",
    }
    names = {n: [c.name for c in s.checkpoints] for n, s in flow.systems.items()}
    assert names["inventory"] == ["INITIATED", "CHECKPOINT_1", "CHECKPOINT_2", "FINALIZED"]
    assert names["payments"][0] == "PAYMENTS_CHECKPOINT_1"
    assert names["payments"][-1] == "PAYMENTS_FINALIZED"
    assert names["reporting"][0] == "REPORTING_INITIATED"
    assert names["reporting"][-1] == "REPORTING_FINALIZED"
    assert names["orders"][0] == "ORDER_INITIALIZED"
    assert names["orders"][-1] == "ORDER_FINALIZED"
    assert flow.entry == (("inventory",),)
    paths = {p.name: p.stages for p in flow.paths}
    assert paths == {
        "a": (("payments",), ("reporting", "orders")),
        "b": (("reporting", "orders"),),
    }
    assert sum(p.probability for p in flow.paths) == pytest.approx(1.0)
    text = flow.styles.styles["text-inline"]
    assert text.write_system("orders") == "ORDER"  # the seed's label, declared in builtin.yaml
    assert text.write_system("payments") == "PAYMENTS"
    reasons = [r for s in flow.systems.values() for c in s.checkpoints for r in c.reasons]
    assert any(" " in r for r in reasons)
    assert any("-" in r for r in reasons)
    assert any("(" in r and ")" in r for r in reasons)
    assert any(not r.isascii() for r in reasons)
    assert all(s.retry.limit >= 1 for s in flow.systems.values())


def test_every_flow_file_in_data_flows_loads() -> None:
    files = sorted(config.FLOWS_DIR.glob("*.yaml"))
    assert DEFAULT in files
    for f in files:
        flow = load_flow(f)
        assert flow.systems and flow.entry


def _set(data: dict[str, Any], path: str, value: Any) -> None:
    keys = path.split("/")
    node: Any = data
    for k in keys[:-1]:
        node = node[int(k)] if isinstance(node, list) else node[k]
    last = keys[-1]
    if value is _DELETE:
        del node[last]
    elif isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value


_DELETE = object()

INVALID = [
    (
        "systems/payments/checkpoints/1/failure_probability",
        1.5,
        "systems.payments.checkpoints[1].failure_probability: must be between 0 and 1",
    ),
    (
        "systems/payments/checkpoints/1/failure_probability",
        "often",
        "systems.payments.checkpoints[1].failure_probability: must be a number, got str",
    ),
    ("systems/orders/style", "xml", "systems.orders.style: must be one of json-separate"),
    ("systems/inventory/colour", "red", "systems.inventory.colour: unknown field"),
    ("systems/reporting/checkpoints", _DELETE, "systems.reporting.checkpoints: required field"),
    ("systems/reporting/checkpoints", [], "systems.reporting.checkpoints: must be a non-empty"),
    (
        "systems/inventory/checkpoints/2/reasons",
        _DELETE,
        "systems.inventory.checkpoints[2].reasons: a checkpoint that can fail needs",
    ),
    (
        "systems/inventory/checkpoints/2/reasons",
        ["ok", "multi\nline"],
        "systems.inventory.checkpoints[2].reasons[1]: a reason must fit on one line",
    ),
    (
        "systems/inventory/checkpoints/2/reasons",
        ["same", "same"],
        "systems.inventory.checkpoints[2].reasons: reasons must be distinct",
    ),
    (
        "systems/inventory/checkpoints/2/reasons",
        {"A": 1, "B": -2},
        "systems.inventory.checkpoints[2].reasons.B: weight must be > 0",
    ),
    (
        "systems/inventory/checkpoints/1",
        "CHECKPOINT 1",
        "systems.inventory.checkpoints[1].name: 'CHECKPOINT 1' is not a checkpoint name",
    ),
    (
        "systems/inventory/checkpoints/3",
        "INITIATED",
        "systems.inventory.checkpoints[3].name: duplicate checkpoint 'INITIATED'",
    ),
    ("systems/orders/retry/limit", -1, "systems.orders.retry.limit: must be a whole number >= 0"),
    ("systems/orders/retry/limit", 1.5, "systems.orders.retry.limit: must be a whole number"),
    (
        "systems/inventory/latency_ms",
        {"dist": "pareto", "alpha": 1},
        "systems.inventory.latency_ms.dist: must be one of constant",
    ),
    (
        "systems/inventory/latency_ms",
        {"dist": "uniform", "min": 50, "max": 5},
        "systems.inventory.latency_ms.max: must be >= min",
    ),
    (
        "systems/inventory/latency_ms",
        {"dist": "lognormal", "median": 40},
        "systems.inventory.latency_ms.sigma: required field is missing",
    ),
    ("systems/inventory/latency_ms", 0, "systems.inventory.latency_ms: must be >= 1"),
    ("systems/Inventory", {}, "systems.Inventory: system names are lower-case"),
    ("routing/paths/a/probability", 0.9, "routing.paths: probabilities must add up to 1"),
    ("routing/paths/a/probability", -0.5, "routing.paths.a.probability: must be between 0 and 1"),
    (
        "routing/paths/a/stages",
        ["billing", ["reporting", "orders"]],
        "routing.paths.a.stages[0]: unknown system 'billing'",
    ),
    (
        "routing/paths/b/stages",
        [["reporting", "reporting"]],
        "routing.paths.b.stages[0]: a system appears twice in one stage",
    ),
    ("routing/entry", _DELETE, "routing.entry: required field is missing"),
    ("routing/entry", [], "routing.entry: needs at least one stage"),
    ("start", "yesterday", "start: not an ISO-8601 date and time"),
    ("arrival_ms", {"dist": "exponential", "mean": 0}, "arrival_ms.mean: must be > 0"),
    ("systems", [], "systems: must be a non-empty mapping"),
    ("extra", 1, "extra: unknown field"),
]


@pytest.mark.parametrize(("path", "value", "message"), INVALID, ids=[i[0] for i in INVALID])
def test_invalid_flow_names_the_field(
    raw: dict[str, Any], path: str, value: Any, message: str
) -> None:
    data = copy.deepcopy(raw)
    _set(data, path, value)
    with pytest.raises(FlowError) as info:
        parse_flow(data)
    assert message in str(info.value)


def test_flow_error_is_a_tracelab_error() -> None:
    assert issubclass(FlowError, TracelabError)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("systems: [unclosed", "not valid YAML"),
        ("- just\n- a list\n", "<top>: must be a mapping, got list"),
        ("", "<top>: must be a mapping, got nothing"),
    ],
)
def test_load_flow_file_errors_name_the_file(tmp_path: Path, text: str, message: str) -> None:
    f = tmp_path / "broken.yaml"
    f.write_text(text, encoding="utf-8")
    with pytest.raises(FlowError) as info:
        load_flow(f)
    assert str(f) in str(info.value)
    assert message in str(info.value)


def test_missing_flow_file(tmp_path: Path) -> None:
    with pytest.raises(FlowError, match="flow file not found"):
        load_flow(tmp_path / "nope.yaml")


def test_error_from_a_file_names_file_and_field(tmp_path: Path, raw: dict[str, Any]) -> None:
    data = copy.deepcopy(raw)
    data["systems"]["payments"]["checkpoints"][2] = {"name": "X", "failure_probability": 7}
    f = tmp_path / "f.yaml"
    f.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    with pytest.raises(FlowError) as info:
        load_flow(f)
    assert str(info.value) == (
        f"{f}: systems.payments.checkpoints[2].failure_probability: must be between 0 and 1"
    )


def test_a_system_and_a_path_are_added_without_python(raw: dict[str, Any]) -> None:
    data = copy.deepcopy(raw)
    data["systems"]["reporting2"] = {
        "style": "json-inline",
        "checkpoints": ["R2_START", {"name": "R2_END", "failure_probability": 0.5,
                                     "reasons": {"disk full": 3, "quota": 1}}],
    }  # fmt: skip
    data["routing"]["paths"] = {
        "a": {"probability": 0.25, "stages": ["payments", ["reporting", "orders", "reporting2"]]},
        "b": {"probability": 0.25, "stages": [["reporting", "orders"]]},
        "c": {"probability": 0.5, "stages": ["reporting2"]},
    }
    flow = parse_flow(data)
    assert flow.systems["reporting2"].checkpoints[1].weights == (3.0, 1.0)
    assert [p.name for p in flow.paths] == ["a", "b", "c"]
    assert flow.paths[0].stages[1] == ("reporting", "orders", "reporting2")
    assert flow.systems["reporting2"].retry.limit == 0


@pytest.mark.parametrize(
    ("spec", "mean"),
    [
        (("constant", (7.0,)), 7.0),
        (("uniform", (10.0, 30.0)), 20.0),
        (("exponential", (100.0,)), 100.0),
        (("lognormal", (50.0, 0.5)), 50.0 * 2.718281828 ** (0.5**2 / 2)),
        (("normal", (200.0, 20.0)), 200.0),
    ],
)
def test_distribution_tables_follow_their_law(
    spec: tuple[str, tuple[float, ...]], mean: float
) -> None:
    d = Distribution(*spec)
    table = d.table()
    assert len(table) == 4096
    assert list(table) == sorted(table)
    assert min(table) >= 1
    assert d.mean() == pytest.approx(mean, rel=0.02)


def test_builtin_styles_are_the_four_of_the_seed() -> None:
    names = set(load_flow(DEFAULT).styles.styles)
    assert names == {"json-separate", "json-inline", "text-inline", "text-separate"}
