"""Write lines in a declared style: json/logfmt from ``fields``, regex from ``template``.

A line is first rendered with two placeholders, :data:`TS` and :data:`CID`, for the values that
change per message; :func:`split` turns it into a :data:`Template` the simulator fills with one
f-string. Template syntax (regex styles): ``{field}`` writes a value, ``[ ... ]`` is written only
when every field inside has a value, ``{{ }} [[ ]]`` are literal braces and brackets.

Example: ``fill(split(render(style, style.event, system="orders", checkpoint="A",
status="SUCCESS")), "2025-05-04T10:30:00.123", "c1")``
"""

from __future__ import annotations

import json
import re
from typing import Any

from tracelab.styles.model import Part, Style

__all__ = ["CID", "TS", "Template", "fill", "logfmt_value", "render", "split"]

TS = "\ue000"
CID = "\ue001"
#: ``(a, b, c, mode)``: mode 0 writes ``a ts b cid c``, 1 ``a cid b ts c``, 2 ``a cid b``.
Template = tuple[str, str, str, int]

_LOGFMT_PLAIN = re.compile(r'[^\s"=\\]+\Z')
_SAMPLE_TS = {"iso8601": "2025-05-04T10:30:00.123", "epoch_s": "1746354600.123",
              "epoch_ms": "1746354600123"}  # fmt: skip


def logfmt_value(text: str) -> str:
    """A logfmt value: bare when it can be, else quoted with ``\\"`` and ``\\\\`` escapes.

    Example: ``logfmt_value('disk "A" full')`` -> ``'"disk \\\\"A\\\\" full"'``
    """
    if _LOGFMT_PLAIN.match(text):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _values(
    style: Style,
    part: Part,
    system: str,
    checkpoint: str | None,
    status: str | None,
    reason: str | None,
) -> dict[str, str | None]:
    by_arrival = part is style.detail and style.join == "oldest_unexplained"
    return {
        "system_id": style.write_system(system),
        "checkpoint_id": checkpoint,
        "status": None if status is None else style.status_out[status],
        # a detail joined by arrival carries no time (like the seed's inventory details)
        "timestamp": TS if part.has("timestamp") and not by_arrival else None,
        "correlation_id": CID,
        "failure_reason": reason,
    }


def _put(obj: dict[str, Any], path: str, value: Any) -> None:
    keys = path.split(".")
    for key in keys[:-1]:
        nxt = obj.get(key)
        if not isinstance(nxt, dict):
            nxt = obj[key] = {}
        obj = nxt
    obj[keys[-1]] = value


def _pairs(part: Part, values: dict[str, str | None]) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = list(part.match)
    for name, paths in part.fields:
        value = values.get(name)
        if value is not None:
            out.append((paths[0], value))
    return out


def _render_json(part: Part, values: dict[str, str | None]) -> str:
    obj: dict[str, Any] = {}
    for path, value in _pairs(part, values):
        _put(obj, path, value)
    line = json.dumps(obj, ensure_ascii=False)
    if part.timestamp in ("epoch_s", "epoch_ms"):
        line = line.replace(f'"{TS}"', TS)
    return line


def _render_logfmt(part: Part, values: dict[str, str | None]) -> str:
    sample = _SAMPLE_TS.get(part.timestamp, "2025-05-04 10:30:00")
    out = []
    for key, value in _pairs(part, values):
        if value == TS:
            text = TS if _LOGFMT_PLAIN.match(sample) else f'"{TS}"'
        elif value == CID:
            text = CID
        elif isinstance(value, bool):
            text = "true" if value else "false"
        else:
            text = logfmt_value(str(value))
        out.append(f"{key}={text}")
    return " ".join(out)


_TOKEN = re.compile(r"\{\{|\}\}|\[\[|\]\]|\{([A-Za-z_]+)\}|\[|\]|[^{}\[\]]+|.", re.S)


def _render_template(template: str, values: dict[str, str | None]) -> str:
    out: list[str] = []
    stack: list[tuple[list[str], bool]] = []
    for m in _TOKEN.finditer(template):
        tok = m.group(0)
        if m.group(1) is not None:
            value = values.get(m.group(1))
            if value is None:
                if stack:
                    stack[-1] = (stack[-1][0], False)
                value = ""
            out.append(value)
        elif tok == "[":
            stack.append((out, True))
            out = []
        elif tok == "]" and stack:
            parent, ok = stack.pop()
            if ok:
                parent.extend(out)
            out = parent
        elif tok in ("{{", "}}", "[[", "]]"):
            out.append(tok[0])
        else:
            out.append(tok)
    return "".join(out)


def render(
    style: Style,
    part: Part,
    *,
    system: str,
    checkpoint: str | None = None,
    status: str | None = None,
    reason: str | None = None,
) -> str:
    """One line of ``part`` (the style's event or detail) with :data:`TS`/:data:`CID` in it.

    Example: ``render(s, s.detail, system="payments", reason="card declined")``
    """
    values = _values(style, part, system, checkpoint, status, reason)
    if part.format == "json":
        return _render_json(part, values)
    if part.format == "logfmt":
        return _render_logfmt(part, values)
    if part.template is None:
        raise ValueError(f"style {style.name} has no template to write its lines with")
    return _render_template(part.template, values)


def split(line: str) -> Template:
    """Turn a rendered line into a :data:`Template`.

    Example: ``split("a\\ue000b\\ue001c")`` -> ``('a', 'b', 'c', 0)``
    """
    if line.count(TS) > 1 or line.count(CID) != 1:
        raise ValueError(
            f"a line template needs one correlation id and at most one timestamp: {line!r}"
        )
    if TS not in line:
        a, b = line.split(CID)
        return a, b, "", 2
    i, j = line.index(TS), line.index(CID)
    if i < j:
        a, rest = line.split(TS)
        b, c = rest.split(CID)
        return a, b, c, 0
    a, rest = line.split(CID)
    b, c = rest.split(TS)
    return a, b, c, 1


def fill(template: Template, ts: str, cid: str) -> str:
    """The line of a template for one timestamp text and correlation id.

    Example: ``fill(("a", "b", "c", 0), "T", "C")`` -> ``'aTbCc'``
    """
    a, b, c, mode = template
    if mode == 0:
        return f"{a}{ts}{b}{cid}{c}"
    if mode == 1:
        return f"{a}{cid}{b}{ts}{c}"
    return f"{a}{cid}{b}"
