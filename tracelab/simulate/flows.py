"""Declared flows: which systems a trace passes through, how they log, fail, retry and take time.

A flow is a YAML file (``data/flows/*.yaml``); nothing about it is coded in Python. Its shape::

    name: default
    start: "2025-05-04T10:30:00"            # simulated clock start (naive = UTC)
    arrival_ms: {dist: exponential, mean: 250}   # time between trace starts
    systems:
      inventory:
        style: json-separate       # a declared log style (tracelab.styles; built-ins or styles:)
        latency_ms: {dist: lognormal, median: 40, sigma: 0.5}
        retry: {limit: 2, delay_ms: {dist: uniform, min: 50, max: 400}}
        detail_delay_ms: {dist: uniform, min: 1, max: 30}   # separate styles: failure -> its detail
        checkpoints:
          - INITIATED                         # a bare name never fails
          - name: CHECKPOINT_1
            failure_probability: 0.2
            reasons: [Stock service timeout, "SKU not found (404)"]   # or {reason: weight}
            latency_ms: 120                   # optional per-checkpoint override
            max_gap_ms: 2000                  # optional: analysis flags longer gaps to it
    routing:
      entry: [inventory]                    # stages every trace runs; a list inside = parallel
      paths:                                # then one path, drawn with these probabilities
        a: {probability: 0.45, stages: [payments, [reporting, orders]]}
        b: {probability: 0.55, stages: [[reporting, orders]]}

``styles:`` (optional) declares the flow's own log styles: a mapping as in a style file, a path
(relative to the flow file) or a list of paths. Any declared style may be bound to any system;
a binding whose lines the registry would not read back as written is refused.

Errors raise :class:`tracelab.errors.FlowError` naming the field, e.g.
``systems.payments.checkpoints[2].failure_probability: must be between 0 and 1``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from statistics import NormalDist
from typing import Any

import yaml

from tracelab.errors import FlowError, StyleError
from tracelab.styles import Registry, Style, default_registry, load_registry
from tracelab.styles.emit import fill, render, split
from tracelab.styles.times import writer

__all__ = [
    "Checkpoint",
    "Distribution",
    "Flow",
    "RetryPolicy",
    "Route",
    "System",
    "load_flow",
    "parse_flow",
]

_NAME_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*\Z")
_SYSTEM_RE = re.compile(r"[a-z][a-z0-9_]*\Z")
_DISTS = {
    "constant": ("value",),
    "uniform": ("min", "max"),
    "exponential": ("mean",),
    "lognormal": ("median", "sigma"),
    "normal": ("mean", "sd"),
}
_TABLE_SIZE = 4096
_STD_NORMAL = NormalDist()


@dataclass(frozen=True, slots=True)
class Distribution:
    """A distribution of whole milliseconds (>= ``floor``), sampled through a quantile table.

    Example: ``Distribution("uniform", (5.0, 50.0)).table()[0]`` -> ``5``
    """

    kind: str
    params: tuple[float, ...]
    floor: int = 1

    def __post_init__(self) -> None:
        if self.kind not in _DISTS:
            raise FlowError(f"dist: unknown distribution {self.kind!r}")
        if len(self.params) != len(_DISTS[self.kind]):
            raise FlowError(f"dist: {self.kind} takes {', '.join(_DISTS[self.kind])}")

    def quantile(self, q: float) -> float:
        """The value below which a share ``q`` (0 < q < 1) of samples fall.

        Example: ``Distribution("exponential", (10.0,)).quantile(0.5)`` -> ``6.93...``
        """
        p = self.params
        if self.kind == "constant":
            return p[0]
        if self.kind == "uniform":
            return p[0] + (p[1] - p[0]) * q
        if self.kind == "exponential":
            return -p[0] * math.log1p(-q)
        z = _STD_NORMAL.inv_cdf(q)
        if self.kind == "lognormal":
            return p[0] * math.exp(p[1] * z)
        return p[0] + p[1] * z

    def table(self, size: int = _TABLE_SIZE) -> tuple[int, ...]:
        """``size`` equally likely whole-ms values (the quantiles at (i + 0.5) / size).

        Example: ``Distribution("constant", (7.0,)).table(2)`` -> ``(7, 7)``
        """
        return _table(self, size)

    def mean(self) -> float:
        """The mean of the quantile table (what the simulator really draws from).

        Example: ``Distribution("constant", (7.0,)).mean()`` -> ``7.0``
        """
        t = self.table()
        return sum(t) / len(t)


@lru_cache(maxsize=256)
def _table(dist: Distribution, size: int) -> tuple[int, ...]:
    floor = dist.floor
    return tuple(max(floor, round(dist.quantile((i + 0.5) / size))) for i in range(size))


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """One step a system logs; fails with ``failure_probability`` and one of ``reasons``.

    Example: ``Checkpoint("CHECKPOINT_1", 0.2, ("timeout",), (1.0,))``
    """

    name: str
    failure_probability: float = 0.0
    reasons: tuple[str, ...] = ()
    weights: tuple[float, ...] = ()
    latency: Distribution | None = None
    max_gap_ms: float | None = None  # declared bound on the gap from the previous checkpoint

    def __post_init__(self) -> None:
        if not _NAME_RE.match(self.name):
            raise FlowError(f"name: {self.name!r} is not a checkpoint name (letters, digits, _.-)")
        if not 0.0 <= self.failure_probability <= 1.0:
            raise FlowError("failure_probability: must be between 0 and 1")
        if self.failure_probability > 0 and not self.reasons:
            raise FlowError("reasons: a checkpoint that can fail needs at least one reason")
        if len(self.weights) != len(self.reasons):
            raise FlowError("reasons: one weight per reason")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """A failed checkpoint is retried up to ``limit`` times, each after a ``delay`` draw.

    Example: ``RetryPolicy(2, Distribution("constant", (100.0,)))``
    """

    limit: int
    delay: Distribution

    def __post_init__(self) -> None:
        if self.limit < 0:
            raise FlowError("limit: must be >= 0")


@dataclass(frozen=True, slots=True)
class System:
    """A service of the flow: its log style, checkpoints, latency and retry policy.

    ``style`` names a declared log style (:mod:`tracelab.styles`).

    Example: ``flow.systems["payments"].style`` -> ``'text-separate'``
    """

    name: str
    style: str
    checkpoints: tuple[Checkpoint, ...]
    latency: Distribution
    retry: RetryPolicy
    detail_delay: Distribution

    def __post_init__(self) -> None:
        if not self.checkpoints:
            raise FlowError("checkpoints: a system needs at least one checkpoint")


@dataclass(frozen=True, slots=True)
class Route:
    """A path taken after the entry stages, with its probability.

    Example: ``Route("b", 0.5, (("reporting", "orders"),))``
    """

    name: str
    probability: float
    stages: tuple[tuple[str, ...], ...]


@dataclass(frozen=True, slots=True)
class Flow:
    """A whole declared flow (see the module docstring for the file format).

    Example: ``load_flow("data/flows/default.yaml").paths[0].name`` -> ``'a'``
    """

    name: str
    start_ms: int
    arrival: Distribution
    systems: dict[str, System]
    entry: tuple[tuple[str, ...], ...]
    paths: tuple[Route, ...]
    source: str = "<dict>"
    description: str = ""
    registry: Registry | None = None

    @property
    def styles(self) -> Registry:
        """The style registry the flow's systems are written in (built-ins when none given)."""
        return self.registry if self.registry is not None else default_registry()


# ---------------------------------------------------------------------------------------------
# parsing with field paths


class _Fields:
    """Reads a mapping, remembering the field path for error messages."""

    __slots__ = ("data", "path")

    def __init__(self, data: Any, path: str) -> None:
        if not isinstance(data, dict):
            raise FlowError(f"{path or '<top>'}: must be a mapping, got {_kind(data)}")
        self.data = data
        self.path = path

    def sub(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def check_keys(self, allowed: tuple[str, ...]) -> None:
        for key in self.data:
            if key not in allowed:
                raise FlowError(
                    f"{self.sub(str(key))}: unknown field (allowed: {', '.join(allowed)})"
                )

    def get(
        self,
        key: str,
        default: Any = ...,
    ) -> Any:
        if key in self.data:
            return self.data[key]
        if default is ...:
            raise FlowError(f"{self.sub(key)}: required field is missing")
        return default


def _kind(value: Any) -> str:
    return "nothing" if value is None else type(value).__name__


def _number(value: Any, path: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise FlowError(f"{path}: must be a number, got {_kind(value)}")
    if not math.isfinite(value):
        raise FlowError(f"{path}: must be a finite number")
    return float(value)


def _string(value: Any, path: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise FlowError(f"{path}: must be a non-empty string, got {_kind(value)}")
    return value


def _distribution(value: Any, path: str, floor: int = 1) -> Distribution:
    if isinstance(value, int | float) and not isinstance(value, bool):
        v = _number(value, path)
        if v < floor:
            raise FlowError(f"{path}: must be >= {floor}")
        return Distribution("constant", (v,), floor)
    f = _Fields(value, path)
    kind = f.get("dist")
    if kind not in _DISTS:
        raise FlowError(f"{f.sub('dist')}: must be one of {', '.join(_DISTS)}, got {kind!r}")
    names = _DISTS[kind]
    f.check_keys(("dist", *names))
    params = tuple(_number(f.get(n), f.sub(n)) for n in names)
    for n, p in zip(names, params, strict=True):
        if p < 0:
            raise FlowError(f"{f.sub(n)}: must be >= 0")
    if kind == "uniform" and params[1] < params[0]:
        raise FlowError(f"{f.sub('max')}: must be >= min")
    if kind in ("exponential", "lognormal") and params[0] <= 0:
        raise FlowError(f"{f.sub(names[0])}: must be > 0")
    return Distribution(kind, params, floor)


def _reasons(value: Any, path: str) -> tuple[tuple[str, ...], tuple[float, ...]]:
    if isinstance(value, list):
        pairs = [(r, 1.0) for r in value]
        paths = [f"{path}[{i}]" for i in range(len(value))]
    elif isinstance(value, dict):
        pairs = list(value.items())
        paths = [f"{path}.{r}" for r in value]
    else:
        raise FlowError(f"{path}: must be a list of reasons or a mapping reason -> weight")
    reasons: list[str] = []
    weights: list[float] = []
    for (reason, weight), p in zip(pairs, paths, strict=True):
        reason = _string(reason, p)
        if "\n" in reason or "\r" in reason:
            raise FlowError(f"{p}: a reason must fit on one line")
        if reason != reason.strip():
            raise FlowError(f"{p}: a reason must not start or end with whitespace")
        w = _number(weight, p)
        if w <= 0:
            raise FlowError(f"{p}: weight must be > 0")
        reasons.append(reason)
        weights.append(w)
    if len(set(reasons)) != len(reasons):
        raise FlowError(f"{path}: reasons must be distinct")
    return tuple(reasons), tuple(weights)


def _checkpoint(value: Any, path: str) -> Checkpoint:
    if isinstance(value, str):
        value = {"name": value}
    f = _Fields(value, path)
    f.check_keys(("name", "failure_probability", "reasons", "latency_ms", "max_gap_ms"))
    name = _string(f.get("name"), f.sub("name"))
    if not _NAME_RE.match(name):
        raise FlowError(
            f"{f.sub('name')}: {name!r} is not a checkpoint name (letters, digits, _.-)"
        )
    prob = _number(f.get("failure_probability", 0.0), f.sub("failure_probability"))
    if not 0.0 <= prob <= 1.0:
        raise FlowError(f"{f.sub('failure_probability')}: must be between 0 and 1")
    reasons: tuple[str, ...] = ()
    weights: tuple[float, ...] = ()
    if "reasons" in f.data:
        reasons, weights = _reasons(f.data["reasons"], f.sub("reasons"))
    if prob > 0 and not reasons:
        raise FlowError(f"{f.sub('reasons')}: a checkpoint that can fail needs at least one reason")
    latency = None
    if "latency_ms" in f.data:
        latency = _distribution(f.data["latency_ms"], f.sub("latency_ms"))
    max_gap = None
    if "max_gap_ms" in f.data:
        max_gap = _number(f.data["max_gap_ms"], f.sub("max_gap_ms"))
        if max_gap <= 0:
            raise FlowError(f"{f.sub('max_gap_ms')}: must be > 0")
    return Checkpoint(name, prob, reasons, weights, latency, max_gap)


def _system(name: Any, value: Any, path: str, registry: Registry) -> System:
    if not isinstance(name, str) or not _SYSTEM_RE.match(name):
        raise FlowError(f"{path}: system names are lower-case letters, digits and _")
    f = _Fields(value, path)
    f.check_keys(("style", "checkpoints", "latency_ms", "retry", "detail_delay_ms"))
    style = f.get("style")
    if not isinstance(style, str) or style not in registry.styles:
        raise FlowError(
            f"{f.sub('style')}: must be one of {', '.join(registry.styles)}, got {style!r}"
        )
    cps_raw = f.get("checkpoints")
    if not isinstance(cps_raw, list) or not cps_raw:
        raise FlowError(f"{f.sub('checkpoints')}: must be a non-empty list")
    cps = tuple(_checkpoint(c, f"{f.sub('checkpoints')}[{i}]") for i, c in enumerate(cps_raw))
    seen: set[str] = set()
    for i, c in enumerate(cps):
        if c.name in seen:
            raise FlowError(f"{f.sub('checkpoints')}[{i}].name: duplicate checkpoint {c.name!r}")
        seen.add(c.name)
    latency = _distribution(f.get("latency_ms", 50), f.sub("latency_ms"))
    retry_raw = f.get("retry", {"limit": 0})
    r = _Fields(retry_raw, f.sub("retry"))
    r.check_keys(("limit", "delay_ms"))
    limit = r.get("limit")
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
        raise FlowError(f"{r.sub('limit')}: must be a whole number >= 0")
    delay = _distribution(r.get("delay_ms", 100), r.sub("delay_ms"))
    detail_delay = _distribution(f.get("detail_delay_ms", 5), f.sub("detail_delay_ms"))
    system = System(name, style, cps, latency, RetryPolicy(limit, delay), detail_delay)
    _check_binding(system, registry.styles[style], registry, f.sub("style"))
    return system


def _check_binding(system: System, style: Style, registry: Registry, path: str) -> None:
    """Refuse a binding whose lines the registry would not read back as written.

    Every line the system can write (each checkpoint's success, each failure with each reason,
    each detail) is rendered and parsed by the registry, first declared style wins; the result
    must carry the same system, checkpoint, status, correlation id and reason.
    """
    if style.event.format == "regex" and style.event.template is None:
        raise FlowError(f"{path}: style {style.name} has no template to write its lines with")
    sep = style.detail
    if sep is not None and sep.format == "regex" and sep.template is None:
        raise FlowError(f"{path}: style {style.name} has no detail.template for its details")
    fails = any(c.failure_probability > 0 for c in system.checkpoints)
    if fails and sep is None and not style.event.has("failure_reason"):
        raise FlowError(
            f"{path}: style {style.name} can write no failure reason (no failure_reason field "
            "and no detail)"
        )
    want_system = style.output_system(system.name)
    cid = "c0ffee-0042"
    ts = writer(style.event.timestamp, _sample_iso)(1746354600123)
    dts = ts if sep is None else writer(sep.timestamp, _sample_iso)(1746354600123)
    for cp in system.checkpoints:
        cases = [("SUCCESS", None)]
        cases += [("FAILURE", r) for r in cp.reasons]
        for status, reason in cases:
            inline = reason if sep is None else None
            line = fill(
                split(render(style, style.event, system=system.name, checkpoint=cp.name,
                             status=status, reason=inline)), ts, cid,
            )  # fmt: skip
            taken, got = registry.explain(line.encode("utf-8"))
            want = (want_system, cp.name, status, cid, inline)
            if got is None or got[0] != 0 or (got[1], got[2], got[4], got[5], got[6]) != want:
                _refuse(path, style, system.name, line, taken, got)
            if sep is not None and reason is not None:
                line = fill(split(render(style, sep, system=system.name, reason=reason)), dts, cid)
                taken, got = registry.explain(line.encode("utf-8"))
                if got is None or got[0] != 1 or tuple(got[1:4]) != (want_system, cid, reason):
                    _refuse(path, style, system.name, line, taken, got)


def _sample_iso(ms: int) -> str:
    return "2025-05-04T10:30:00.123"


def _refuse(path: str, style: Style, system: str, line: str, taken: Any, got: Any) -> None:
    how = f"style {taken} reads it as {got!r}" if taken else f"it is quarantined: {got!r}"
    raise FlowError(
        f"{path}: {system} in style {style.name} writes {line!r}, but {how} (a style declared "
        "earlier claims it, or the style cannot read this checkpoint or reason back)"
    )


def _stages(value: Any, path: str, systems: dict[str, System]) -> tuple[tuple[str, ...], ...]:
    if not isinstance(value, list):
        raise FlowError(f"{path}: must be a list of stages (a system, or a list run in parallel)")
    stages: list[tuple[str, ...]] = []
    for i, stage in enumerate(value):
        sp = f"{path}[{i}]"
        members = stage if isinstance(stage, list) else [stage]
        if not members:
            raise FlowError(f"{sp}: an empty stage")
        for j, m in enumerate(members):
            mp = f"{sp}[{j}]" if isinstance(stage, list) else sp
            if not isinstance(m, str) or m not in systems:
                raise FlowError(f"{mp}: unknown system {m!r} (declared: {', '.join(systems)})")
        if len(set(members)) != len(members):
            raise FlowError(f"{sp}: a system appears twice in one stage")
        stages.append(tuple(members))
    return tuple(stages)


def _start(value: Any, path: str) -> int:
    if isinstance(value, datetime):
        dt = value
    else:
        text = _string(value, path)
        try:
            dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise FlowError(f"{path}: not an ISO-8601 date and time: {text!r}") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    ms = round(dt.timestamp() * 1000)
    if not 0 <= ms < 253402300799000 - 10**11:
        raise FlowError(f"{path}: out of range")
    return ms


def _registry(value: Any, source: str, style_files: Sequence[str | Path]) -> Registry:
    """The registry of ``style_files``, ``$TRACELAB_STYLES`` and a flow's ``styles:`` value."""
    if value is None and not style_files:
        return default_registry()
    files = [str(p) for p in style_files]
    inline: list[tuple[Any, str]] = []
    if isinstance(value, str | list):
        base = Path(source).parent if source != "<dict>" else Path.cwd()
        for item in value if isinstance(value, list) else [value]:
            if not isinstance(item, str) or not item.strip():
                raise FlowError("styles: a style file path, a list of paths or a mapping")
            files.append(str(base / item))
    elif isinstance(value, dict):
        inline.append((value, f"{source} styles"))
    elif value is not None:
        raise FlowError("styles: a style file path, a list of paths or a mapping")
    try:
        return load_registry(files, inline=inline)
    except StyleError as exc:
        raise FlowError(f"styles: {exc}") from None


def parse_flow(data: Any, source: str = "<dict>", style_files: Sequence[str | Path] = ()) -> Flow:
    """Validate a flow given as plain data (what ``yaml.safe_load`` returns) into a :class:`Flow`.

    ``style_files`` are read before the flow's own ``styles:`` (see :mod:`tracelab.styles`).

    Example: ``parse_flow(yaml.safe_load(text), "mine.yaml")``
    """
    f = _Fields(data, "")
    f.check_keys(("name", "description", "start", "arrival_ms", "styles", "systems", "routing"))
    registry = _registry(f.data.get("styles"), source, style_files)
    name = _string(f.get("name", Path(source).stem), "name")
    description = f.get("description", "")
    if not isinstance(description, str):
        raise FlowError("description: must be a string")
    start_ms = _start(f.get("start", "2025-05-04T10:30:00"), "start")
    arrival = _distribution(f.get("arrival_ms", 250), "arrival_ms", floor=0)
    sys_raw = f.get("systems")
    if not isinstance(sys_raw, dict) or not sys_raw:
        raise FlowError("systems: must be a non-empty mapping of system name -> settings")
    systems = {n: _system(n, v, f"systems.{n}", registry) for n, v in sys_raw.items()}
    r = _Fields(f.get("routing"), "routing")
    r.check_keys(("entry", "paths"))
    entry = _stages(r.get("entry"), "routing.entry", systems)
    if not entry:
        raise FlowError("routing.entry: needs at least one stage")
    paths_raw = r.get("paths", {})
    if not isinstance(paths_raw, dict):
        raise FlowError("routing.paths: must be a mapping of path name -> {probability, stages}")
    routes: list[Route] = []
    for pname, pval in paths_raw.items():
        pf = _Fields(pval, f"routing.paths.{pname}")
        pf.check_keys(("probability", "stages"))
        prob = _number(pf.get("probability"), pf.sub("probability"))
        if not 0.0 <= prob <= 1.0:
            raise FlowError(f"{pf.sub('probability')}: must be between 0 and 1")
        stages = _stages(pf.get("stages"), pf.sub("stages"), systems)
        routes.append(Route(str(pname), prob, stages))
    if routes and abs(sum(p.probability for p in routes) - 1.0) > 1e-9:
        total = sum(p.probability for p in routes)
        raise FlowError(f"routing.paths: probabilities must add up to 1, they add up to {total:g}")
    return Flow(
        name, start_ms, arrival, systems, entry, tuple(routes), source, description, registry
    )


def load_flow(path: str | Path, style_files: Sequence[str | Path] = ()) -> Flow:
    """Read and validate a flow file (YAML).

    Example: ``flow = load_flow("data/flows/default.yaml")``
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FlowError(f"{p}: flow file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise FlowError(f"{p}: cannot read flow file: {exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise FlowError(f"{p}: not valid YAML: {str(exc).splitlines()[0]}") from None
    try:
        return parse_flow(data, str(p), style_files)
    except FlowError as exc:
        raise FlowError(f"{p}: {exc}") from None
