"""Declared log styles: the typed core and the validation of a style file.

A style file is YAML (the interface; keys may be added, never renamed)::

    styles:
      <name>:
        format: json | logfmt | regex
        system: <constant system_id>        # or map fields.system_id
        match: {<field>: <value>}           # json/logfmt: which messages this style claims
        pattern: '<regex>'                  # regex only; named groups = normalized field names
        fields: {system_id: ..., checkpoint_id: ..., timestamp: ..., status: ...,
                 correlation_id: ..., failure_reason: ...}   # a path, or a list of alternatives
        status: {SUCCESS: [raw values], FAILURE: [raw values]}   # compared case-insensitively
        timestamp: iso8601 | epoch_s | epoch_ms | '<strptime format>'
        detail: {format, match, pattern, fields, timestamp, template,
                 join: nearest_before | oldest_unexplained}
        template: '<how the simulator writes a line>'       # regex only
        # added keys:
        system_values: {<system_id>: [raw values]}  # raw spellings of a system (first is written)
        system_case: lower | upper                  # how other system ids are written
        loose_keys: false                           # json: match keys ignoring case, '-', '_'

Every error is a :class:`~tracelab.errors.StyleError` naming file, style and key, e.g.
``mine.yaml: style shop: pattern: has no (?P<correlation_id>...) group``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from tracelab.errors import StyleError

__all__ = [
    "BAD",
    "DETAIL",
    "EVENT",
    "FIELDS",
    "FORMATS",
    "JOINS",
    "Part",
    "Style",
    "parse_styles",
]

#: Kinds of the tuples a registry's ``parse`` returns (shapes in :mod:`tracelab.styles.compile`).
EVENT: Final = 0
DETAIL: Final = 1
BAD: Final = 2

FORMATS: Final = ("json", "logfmt", "regex")
FIELDS: Final = (
    "system_id",
    "checkpoint_id",
    "timestamp",
    "status",
    "correlation_id",
    "failure_reason",
)
DETAIL_FIELDS: Final = ("system_id", "correlation_id", "failure_reason", "timestamp")
JOINS: Final = ("nearest_before", "oldest_unexplained")
TIME_KINDS: Final = ("iso8601", "epoch_s", "epoch_ms")
_STYLE_KEYS: Final = (
    "format", "system", "match", "pattern", "fields", "status", "timestamp", "detail",
    "template", "system_values", "system_case", "loose_keys", "description",
)  # fmt: skip
_DETAIL_KEYS: Final = ("format", "match", "pattern", "fields", "timestamp", "template", "join")
_NAME_RE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*\Z")
_SYSTEM_RE: Final = re.compile(r"[a-z][a-z0-9_]*\Z")
_PLACEHOLDER_RE: Final = re.compile(r"\{([A-Za-z_]+)\}")


@dataclass(frozen=True, slots=True)
class Part:
    """How one kind of message of a style looks: the checkpoint event, or its separate detail.

    ``fields`` maps a normalized field to its paths (alternatives, dotted for nested JSON);
    ``match`` holds ``(dotted path, constant)`` pairs; ``timestamp`` is a time kind or a
    strptime format.

    Example: ``Part("json", (), None, (("correlation_id", ("trace.id",)),), "iso8601", None)``
    """

    format: str
    match: tuple[tuple[str, Any], ...]
    pattern: str | None
    fields: tuple[tuple[str, tuple[str, ...]], ...]
    timestamp: str
    template: str | None

    def paths(self, name: str) -> tuple[str, ...]:
        """The declared paths of normalized field ``name`` (empty when not mapped).

        Example: ``part.paths("status")`` -> ``('event.outcome',)``
        """
        for key, value in self.fields:
            if key == name:
                return value
        return ()

    def has(self, name: str) -> bool:
        """Whether the part carries normalized field ``name`` (a mapped path or a group)."""
        if self.format == "regex":
            return self.pattern is not None and f"(?P<{name}>" in self.pattern
        return bool(self.paths(name))


@dataclass(frozen=True, slots=True)
class Style:
    """One declared log style: its events, its optional separate detail, how values read.

    Example: ``registry.styles["json-separate"].detail.format`` -> ``'json'``
    """

    name: str
    source: str
    order: int
    event: Part
    detail: Part | None
    join: str | None
    system: str | None
    status: dict[str, str]  # lower-cased raw value -> SUCCESS / FAILURE
    status_out: dict[str, str]  # SUCCESS / FAILURE -> the raw value written
    system_values: dict[str, str]  # lower-cased raw value -> system id
    system_out: dict[str, str]  # system id -> the raw value written
    system_case: str = "lower"
    loose_keys: bool = False
    description: str = ""
    declared: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def system_id(self, raw: str) -> str:
        """The system id of a raw system value (case-insensitive, trimmed).

        Example: ``style.system_id(" ORDER ")`` -> ``'orders'``
        """
        low = raw.strip().lower()
        return self.system_values.get(low, low)

    def write_system(self, system_id: str) -> str:
        """How this style writes a system id (its first listed raw value, else by case).

        Example: ``builtin["text-inline"].write_system("payments")`` -> ``'PAYMENTS'``
        """
        raw = self.system_out.get(system_id)
        if raw is not None:
            return raw
        return system_id.upper() if self.system_case == "upper" else system_id

    def output_system(self, system: str) -> str:
        """The ``system_id`` stored for lines this style writes for a flow's ``system``.

        Example: ``style.output_system("orders")`` -> ``'orders'``
        """
        if self.system is not None:
            return self.system
        return self.system_id(self.write_system(system))

    @property
    def separate(self) -> bool:
        """Whether a failure's reason comes in a separate detail message."""
        return self.detail is not None


# ---------------------------------------------------------------------------------------------
# validation


class _Where:
    """Builds ``FILE: style NAME: KEY: message`` errors."""

    __slots__ = ("source", "style")

    def __init__(self, source: str, style: str) -> None:
        self.source = source
        self.style = style

    def error(self, key: str, message: str) -> StyleError:
        return StyleError(f"{self.source}: style {self.style}: {key}: {message}")


def _kind(value: Any) -> str:
    return "nothing" if value is None else type(value).__name__


def _text(value: Any, where: _Where, key: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise where.error(key, f"must be a non-empty string, got {_kind(value)}")
    return value


def _check_keys(data: dict[str, Any], allowed: tuple[str, ...], where: _Where, prefix: str) -> None:
    for key in data:
        if key not in allowed:
            raise where.error(f"{prefix}{key}", f"unknown key (allowed: {', '.join(allowed)})")


def _time_kind(value: Any, where: _Where, key: str) -> str:
    text = _text(value, where, key)
    if text in TIME_KINDS:
        return text
    if "%" not in text:
        raise where.error(
            key, f"must be iso8601, epoch_s, epoch_ms or a strptime format, got {text!r}"
        )
    if "%S" not in text:
        raise where.error(key, f"a strptime format needs seconds (%S): {text!r}")
    try:
        datetime(2025, 5, 4, 10, 30, 1, 123000).strftime(text)
        datetime.strptime(datetime(2025, 5, 4, 10, 30, 1).strftime(text), text)
    except ValueError as exc:
        raise where.error(key, f"not a usable strptime format {text!r}: {exc}") from None
    return text


def _match(value: Any, where: _Where, key: str) -> tuple[tuple[str, Any], ...]:
    if value is None:
        return ()
    if not isinstance(value, dict):
        raise where.error(key, f"must be a mapping field -> value, got {_kind(value)}")
    out = []
    for path, const in value.items():
        if not isinstance(path, str) or not path.strip():
            raise where.error(key, f"field names must be strings, got {path!r}")
        if not isinstance(const, str | int | float | bool) or const is None:
            raise where.error(
                f"{key}.{path}", f"must be a text, number or boolean constant, got {_kind(const)}"
            )
        out.append((path, const))
    return tuple(out)


def _fields(
    value: Any, allowed: tuple[str, ...], where: _Where, key: str
) -> tuple[tuple[str, tuple[str, ...]], ...]:
    if value is None:
        return ()
    if not isinstance(value, dict):
        raise where.error(key, f"must be a mapping normalized field -> path, got {_kind(value)}")
    out = []
    for name, paths in value.items():
        if name not in allowed:
            raise where.error(
                f"{key}.{name}", f"not a normalized field (one of {', '.join(allowed)})"
            )
        alts = paths if isinstance(paths, list) else [paths]
        if not alts:
            raise where.error(f"{key}.{name}", "needs at least one path")
        for p in alts:
            _text(p, where, f"{key}.{name}")
        out.append((name, tuple(alts)))
    return tuple(out)


def _pattern(value: Any, where: _Where, key: str, required: tuple[str, ...]) -> str:
    text = _text(value, where, key)
    try:
        compiled = re.compile(text)
    except re.error as exc:
        raise where.error(key, f"does not compile: {exc}") from None
    for name in required:
        if name not in compiled.groupindex:
            raise where.error(key, f"has no (?P<{name}>...) group")
    return text


def _template(value: Any, where: _Where, key: str, allowed: tuple[str, ...]) -> str | None:
    if value is None:
        return None
    text = _text(value, where, key)
    for name in _PLACEHOLDER_RE.findall(text.replace("{{", "").replace("}}", "")):
        if name not in allowed:
            raise where.error(key, f"unknown placeholder {{{name}}} (one of {', '.join(allowed)})")
    if "{correlation_id}" not in text:
        raise where.error(key, "must write {correlation_id}")
    return text


def _status(value: Any, where: _Where) -> tuple[dict[str, str], dict[str, str]]:
    if value is None:
        value = {"SUCCESS": ["SUCCESS"], "FAILURE": ["FAILURE"]}
    if not isinstance(value, dict):
        raise where.error(
            "status", f"must be a mapping SUCCESS/FAILURE -> raw values, got {_kind(value)}"
        )
    lookup: dict[str, str] = {}
    out: dict[str, str] = {}
    for status in ("SUCCESS", "FAILURE"):
        raws = value.get(status)
        if raws is None:
            raise where.error(f"status.{status}", "missing (list the raw values)")
        raws = raws if isinstance(raws, list) else [raws]
        if not raws:
            raise where.error(f"status.{status}", "needs at least one raw value")
        for raw in raws:
            if isinstance(raw, bool) or not isinstance(raw, str | int):
                raise where.error(f"status.{status}", f"raw values are text, got {_kind(raw)}")
            low = str(raw).strip().lower()
            if lookup.get(low, status) != status:
                raise where.error(
                    f"status.{status}", f"{raw!r} is listed as both SUCCESS and FAILURE"
                )
            lookup[low] = status
        out[status] = str(raws[0])
    for key in value:
        if key not in ("SUCCESS", "FAILURE"):
            raise where.error(f"status.{key}", "unknown status (SUCCESS or FAILURE)")
    return lookup, out


def _system_values(value: Any, where: _Where) -> tuple[dict[str, str], dict[str, str]]:
    if value is None:
        return {}, {}
    if not isinstance(value, dict):
        raise where.error(
            "system_values", f"must be a mapping system id -> raw values, got {_kind(value)}"
        )
    lookup: dict[str, str] = {}
    out: dict[str, str] = {}
    for system, raws in value.items():
        if not isinstance(system, str) or not _SYSTEM_RE.match(system):
            raise where.error(
                f"system_values.{system}", "system ids are lower-case letters, digits and _"
            )
        raws = raws if isinstance(raws, list) else [raws]
        if not raws:
            raise where.error(f"system_values.{system}", "needs at least one raw value")
        for raw in raws:
            low = _text(raw, where, f"system_values.{system}").strip().lower()
            if lookup.get(low, system) != system:
                raise where.error(f"system_values.{system}", f"{raw!r} already names {lookup[low]}")
            lookup[low] = system
        out[system] = str(raws[0])
    return lookup, out


def _part(
    data: dict[str, Any],
    where: _Where,
    prefix: str,
    inherit: Part | None,
    has_system: bool,
) -> Part:
    """Validate the event part (``inherit`` None) or the detail part of a style."""
    detail = inherit is not None
    allowed = DETAIL_FIELDS if detail else FIELDS
    fmt = data.get("format", inherit.format if inherit else None)
    if fmt not in FORMATS:
        raise where.error(f"{prefix}format", f"must be one of {', '.join(FORMATS)}, got {fmt!r}")
    same = inherit is not None and inherit.format == fmt
    ts_kind = _time_kind(
        data.get("timestamp", inherit.timestamp if inherit else "iso8601"),
        where,
        f"{prefix}timestamp",
    )
    if fmt == "regex":
        for key in ("match", "fields"):
            if data.get(key) is not None:
                raise where.error(f"{prefix}{key}", "regex styles map fields by named groups")
        need = ("correlation_id", "failure_reason") if detail else (
            "checkpoint_id", "status", "timestamp", "correlation_id",
        )  # fmt: skip
        pattern = _pattern(data.get("pattern"), where, f"{prefix}pattern", need)
        groups = re.compile(pattern).groupindex
        if not has_system and "system_id" not in groups:
            raise where.error(
                f"{prefix}pattern",
                "has no (?P<system_id>...) group and the style no constant system",
            )
        template = _template(data.get("template"), where, f"{prefix}template", tuple(groups))
        return Part(fmt, (), pattern, (), ts_kind, template)
    if data.get("pattern") is not None:
        raise where.error(
            f"{prefix}pattern", f"only regex styles have a pattern ({fmt} maps fields)"
        )
    if data.get("template") is not None:
        raise where.error(
            f"{prefix}template", f"only regex styles need a template ({fmt} writes its fields)"
        )
    match = (
        _match(data["match"], where, f"{prefix}match")
        if "match" in data
        else (inherit.match if same and inherit else ())
    )
    fields = _fields(data.get("fields"), allowed, where, f"{prefix}fields")
    names = {n for n, _ in fields}
    if detail and same and "system_id" not in names and inherit and inherit.paths("system_id"):
        fields = (("system_id", inherit.paths("system_id")), *fields)
        names.add("system_id")
    need = ("correlation_id", "failure_reason") if detail else (
        "checkpoint_id", "status", "timestamp", "correlation_id",
    )  # fmt: skip
    for name in need:
        if name not in names:
            raise where.error(f"{prefix}fields.{name}", "required field is not mapped")
    if not has_system and "system_id" not in names:
        raise where.error(
            f"{prefix}fields.system_id", "not mapped and the style has no constant system"
        )
    return Part(fmt, match, None, fields, ts_kind, None)


def _style(name: Any, data: Any, source: str, order: int) -> Style:
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise StyleError(f"{source}: style {name!r}: a style name is letters, digits, _ . -")
    where = _Where(source, name)
    if not isinstance(data, dict):
        raise where.error("<style>", f"must be a mapping, got {_kind(data)}")
    _check_keys(data, _STYLE_KEYS, where, "")
    system = data.get("system")
    if system is not None:
        system = _text(system, where, "system")
        if not _SYSTEM_RE.match(system):
            raise where.error(
                "system", f"{system!r}: system ids are lower-case letters, digits and _"
            )
    event = _part(data, where, "", None, system is not None)
    detail = None
    join = None
    raw_detail = data.get("detail")
    if raw_detail is not None:
        if not isinstance(raw_detail, dict):
            raise where.error("detail", f"must be a mapping, got {_kind(raw_detail)}")
        _check_keys(raw_detail, _DETAIL_KEYS, where, "detail.")
        join = raw_detail.get("join")
        if join not in JOINS:
            raise where.error("detail.join", f"must be one of {', '.join(JOINS)}, got {join!r}")
        detail = _part(raw_detail, where, "detail.", event, system is not None)
        if join == "nearest_before" and not detail.has("timestamp"):
            raise where.error("detail.join", "nearest_before needs a timestamp in the detail")
    status_in, status_out = _status(data.get("status"), where)
    sys_in, sys_out = _system_values(data.get("system_values"), where)
    case = data.get("system_case", "lower")
    if case not in ("lower", "upper"):
        raise where.error("system_case", f"must be lower or upper, got {case!r}")
    loose = data.get("loose_keys", False)
    if not isinstance(loose, bool):
        raise where.error("loose_keys", f"must be true or false, got {_kind(loose)}")
    description = data.get("description", "")
    if not isinstance(description, str):
        raise where.error("description", "must be a string")
    return Style(
        name, source, order, event, detail, join, system, status_in, status_out, sys_in, sys_out,
        case, loose, description, data,
    )  # fmt: skip


def parse_styles(data: Any, source: str, first_order: int = 0) -> list[Style]:
    """Validate a style file's content (what ``yaml.safe_load`` returns) into styles, in order.

    Accepts ``{"styles": {name: {...}}}`` or the inner mapping itself (a flow's inline styles).
    Templates are checked against their own patterns when a Registry is built.

    Example: ``parse_styles({"styles": {"s": {...}}}, "mine.yaml")[0].name`` -> ``'s'``
    """
    if isinstance(data, dict) and set(data) == {"styles"}:
        data = data["styles"]
    elif isinstance(data, dict) and "styles" in data:
        extra = sorted(str(k) for k in data if k != "styles")
        raise StyleError(f"{source}: unknown top-level key {extra[0]} (a style file holds styles:)")
    if not isinstance(data, dict) or not data:
        raise StyleError(f"{source}: styles: must be a non-empty mapping of style name -> style")
    return [_style(n, d, source, first_order + i) for i, (n, d) in enumerate(data.items())]
