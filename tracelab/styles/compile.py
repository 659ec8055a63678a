"""Compile declared styles into one dispatching parser: a :class:`Registry`.

``Registry.parse(value)`` never raises on any input; it returns

- ``None`` for a blank message (only whitespace), which is not a message at all;
- ``(EVENT, system_id, checkpoint_id, timestamp, status, correlation_id, failure_reason,
  join_state, attributes)`` for a checkpoint log;
- ``(DETAIL, system_id, correlation_id, failure_reason, timestamp)`` for a separate failure
  detail (``timestamp`` None when the style joins by arrival, ``oldest_unexplained``);
- ``(BAD, reason)`` for anything that cannot be normalized; ``no style matched`` when no style
  claims the message.

Dispatch never tries every style on every line: a JSON object is decoded once and looked up by
the values of the ``match`` fields (an index per field path); a text line is tried only against
regex styles whose literal prefix it starts with or whose longest literal it contains, and is
decoded as logfmt only when it holds a ``key=`` of some logfmt style's ``match``. Among the
styles that claim a message the first declared wins.

**Regex styles and time.** Python's ``re`` backtracks: a user pattern with nested or adjacent
unbounded quantifiers over the same characters (``(.*?)\\s+-\\s+``) can take time quadratic or
worse in the line length. The built-in patterns use possessive quantifiers and are tested to
scale linearly; a user pattern is bounded only by the message size cap of the pipeline.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from operator import itemgetter
from typing import Any

import msgspec

from tracelab.errors import StyleError
from tracelab.record import JOIN_AWAITING, JOIN_INLINE, JOIN_NO_REASON
from tracelab.styles import emit, times
from tracelab.styles.model import BAD, DETAIL, EVENT, Part, Style

__all__ = ["Parsed", "Registry", "loads_json"]

Parsed = tuple[Any, ...]

_loads = json.loads
_dumps = json.dumps
_fast_loads = msgspec.json.decode
_FastError = msgspec.MsgspecError
_MISSING: Any = object()
_INVALID: Any = object()


def loads_json(text: str) -> Any:
    """``json.loads`` with msgspec's C decoder in front (several times faster).

    Any text msgspec does not take (NaN, lone surrogates, malformed) goes to ``json.loads``, so
    the result, or the error and its message, is always exactly what ``json.loads`` gives.

    Example: ``loads_json('{"a": 1}')`` -> ``{'a': 1}``
    """
    try:
        return _fast_loads(text)
    except _FastError:
        return _loads(text)


def _show(value: object, limit: int = 60) -> str:
    """A short printable rendering of an offending value for a quarantine reason."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _scalar(value: object) -> Any:
    """A field value as stripped text: None when absent/empty, _INVALID when not scalar."""
    if value is None or value is _MISSING:
        return None
    if type(value) is str:
        return value.strip() or None
    if isinstance(value, bool):
        return _INVALID
    if isinstance(value, int | float):
        return str(value)
    return _INVALID


def _get(obj: Any, keys: tuple[str, ...]) -> Any:
    for key in keys:
        if type(obj) is not dict:
            return _MISSING
        obj = obj.get(key, _MISSING)
        if obj is _MISSING:
            return _MISSING
    return obj


def _loose(key: str) -> str:
    return key.lower().replace("-", "").replace("_", "").strip()


# ---------------------------------------------------------------------------------------------
# logfmt

_PAIR = re.compile(r'\s*+([^\s="]++)(?:=(?:"((?:[^"\\]++|\\.)*+)"|([^\s"]*+)))?+', re.S)
_UNESCAPE = re.compile(r"\\(.)", re.S)
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r"}


def logfmt_decode(text: str, pos: int = 0, end: int | None = None) -> dict[str, Any] | None:
    """A logfmt line as a dict (bare keys are ``True``), or None when it is not logfmt.

    Linear in the line length: an unterminated quote ends the decoding at once.

    Example: ``logfmt_decode('a=1 b="x \\\\"y\\\\"" c')`` -> ``{'a': '1', 'b': 'x "y"', 'c': True}``
    """
    end = len(text) if end is None else end
    if text.find('"', pos, end) < 0:
        return _logfmt_unquoted(text[pos:end])
    return _logfmt_pairs(text, pos, end)


def _logfmt_unquoted(text: str) -> dict[str, Any] | None:
    """:func:`logfmt_decode` of a line without any ``"``: its whitespace-separated words are
    the pairs (``key``, ``key=``, ``key=value``; the value may hold ``=``), which is what
    :func:`_logfmt_pairs` reads from such a line, several times faster."""
    out: dict[str, Any] = {}
    for word in text.split():
        key, eq, value = word.partition("=")
        if not key:
            return None
        out.setdefault(key, value if eq else True)
    return out


def _logfmt_pairs(text: str, pos: int, end: int) -> dict[str, Any] | None:
    """:func:`logfmt_decode` pair by pair, quoted values and escapes included."""
    out: dict[str, Any] = {}
    match = _PAIR.match
    while pos < end:
        m = match(text, pos, end)
        if m is None or m.end() == pos:
            if text[pos:end].isspace():  # trailing whitespace
                break
            return None
        key, quoted, bare = m.groups()
        if quoted is not None:
            if "\\" in quoted:
                quoted = _UNESCAPE.sub(lambda e: _ESCAPES.get(e.group(1), e.group(1)), quoted)
            out.setdefault(key, quoted)
        else:
            out.setdefault(key, True if bare is None else bare)
        pos = m.end()
        if pos < end and not text[pos].isspace():
            return None
    return out


# ---------------------------------------------------------------------------------------------
# one part of a style, compiled


class _Reader:
    """Reads one part (event or detail) of one style; ``read`` returns None when not claimed."""

    __slots__ = (
        "style", "part", "kind", "order", "name", "need_status", "forbid_status", "match",
        "fields", "top", "flat", "regex", "extra_groups", "prefix", "needle", "ts", "join",
        "separate", "const_system", "flat_match", "flat_fields", "flat_forbid", "systems",
        "statuses", "slots", "n_match", "tree", "group_slots", "flat_read",
    )  # fmt: skip

    def __init__(self, style: Style, part: Part, kind: int) -> None:
        self.style = style
        self.part = part
        self.kind = kind
        self.order = (style.order, kind)
        self.name = style.name
        self.ts = times.reader(part.timestamp)
        self.join = style.join
        self.separate = style.detail is not None
        self.const_system = style.system
        sibling = style.detail if kind == EVENT else style.event
        same = sibling is not None and sibling.format == part.format and part.format != "regex"
        # json/logfmt: a message with the status or checkpoint field is the style's event, one
        # with neither its detail (when both parts share the format)
        self.need_status = kind == EVENT and same
        self.forbid_status: tuple[tuple[str, ...], ...] = ()
        if kind == DETAIL and same:
            self.forbid_status = tuple(
                self._keys(p)
                for name in ("status", "checkpoint_id")
                for p in style.event.paths(name)
            )
        self.match = tuple((self._keys(p), _norm_const(c, part.format)) for p, c in part.match)
        self.fields = tuple((n, tuple(self._keys(p) for p in ps)) for n, ps in part.fields)
        used = [k for _, alts in self.fields for k in alts] + [k for k, _ in self.match]
        self.flat = all(len(k) == 1 for k in used)
        # flat JSON/logfmt (every path one key): plain dict lookups on the hot path
        self.flat_match = tuple((k[0], c) for k, c in self.match) if self.flat else ()
        self.flat_fields = (
            tuple((n, tuple(k[0] for k in alts)) for n, alts in self.fields) if self.flat else ()
        )
        self.flat_forbid = tuple(k[0] for k in self.forbid_status if len(k) == 1)
        self.systems: dict[str, str] = {}  # raw system value -> system id, cached
        self.statuses: dict[str, str] = {}  # raw status value -> SUCCESS/FAILURE, cached
        alts = dict(self.flat_fields)
        # the alternatives of system, checkpoint, status, timestamp, correlation id, reason
        self.slots = tuple(alts.get(n, ()) for n in _FIELDS)
        self.n_match = len(self.flat_match)
        # every declared path (match constants and all alternatives) is never an attribute
        self.tree = _path_tree(used)
        self.top = frozenset(k[0] for k in used)
        self.regex = None
        self.group_slots: Callable[[tuple[Any, ...]], tuple[Any, ...]] | None = None
        self.extra_groups: tuple[str, ...] = ()
        self.prefix = self.needle = ""
        if part.format == "regex" and part.pattern is not None:
            self.regex = re.compile(part.pattern)
            self.extra_groups = tuple(g for g in self.regex.groupindex if g not in _FIELD_SET)
            self.prefix, self.needle = _literals(self.regex)
            # the six fields in build's order, straight from m.groups() + (None,): a field the
            # pattern has no group for reads the padding None
            index = self.regex.groupindex
            self.group_slots = itemgetter(
                *(index[n] - 1 if n in index else self.regex.groups for n in _FIELDS)
            )
        # flat paths and every forbidden key a plain one: read_flat may take the message
        self.flat_read = self.flat and len(self.flat_forbid) == len(self.forbid_status)

    def _keys(self, path: str) -> tuple[str, ...]:
        return tuple(path.split(".")) if self.part.format == "json" else (path,)

    # -- extraction -----------------------------------------------------------------------

    def _extract(self, obj: dict[str, Any]) -> tuple[dict[str, Any], Any] | None:
        """Field values by normalized name and the attributes; None when not claimed."""
        if self.flat_read:
            return self._extract_flat(obj)
        for keys, const in self.match:
            value = obj.get(keys[0], _MISSING) if len(keys) == 1 else _get(obj, keys)
            if value != const or (type(value) is bool) != (type(const) is bool):
                return None
        for keys in self.forbid_status:
            if (_get(obj, keys) if len(keys) > 1 else obj.get(keys[0], _MISSING)) is not _MISSING:
                return None
        found: dict[str, Any] = {}
        used: list[tuple[str, ...]] = [k for k, _ in self.match]
        for name, alts in self.fields:
            for keys in alts:
                value = obj.get(keys[0], _MISSING) if len(keys) == 1 else _get(obj, keys)
                if value is not _MISSING:
                    found[name] = value
                    used.append(keys)
                    break
        attributes = None
        if self.flat:
            extra = obj.keys() - self.top
            if extra and self.style.loose_keys:
                extra -= self._loosen(obj, extra, found)
            if extra:
                attributes = {k: v for k, v in obj.items() if k in extra}
        else:
            attributes = _without(obj, self.tree)
        if self.need_status and "status" not in found and "checkpoint_id" not in found:
            return None
        return found, attributes

    def _extract_flat(self, obj: dict[str, Any]) -> tuple[dict[str, Any], Any] | None:
        """:meth:`_extract` where every path is one key (the built-ins, logfmt)."""
        get = obj.get
        missing = _MISSING
        for key, const in self.flat_match:
            value = get(key, missing)
            if value != const or (type(value) is bool) != (type(const) is bool):
                return None
        for key in self.flat_forbid:
            if key in obj:
                return None
        found: dict[str, Any] = {}
        for name, alts in self.flat_fields:
            for key in alts:
                value = get(key, missing)
                if value is not missing:
                    found[name] = value
                    break
        attributes = None
        extra = obj.keys() - self.top
        if extra:
            if self.style.loose_keys:
                extra -= self._loosen(obj, extra, found)
            if extra:
                attributes = {k: v for k, v in obj.items() if k in extra}
        if self.need_status and "status" not in found and "checkpoint_id" not in found:
            return None
        return found, attributes

    def _loosen(self, obj: dict[str, Any], extra: set[str], found: dict[str, Any]) -> set[str]:
        """Fill missing fields from keys equal to a declared one ignoring case, '-' and '_';
        returns the keys so taken."""
        missing: dict[str, str] = {}
        for name, alts in self.fields:
            if name not in found:
                for keys in alts:
                    missing.setdefault(_loose(keys[0]), name)
        taken: set[str] = set()
        if not missing:
            return taken
        for key in obj:
            if key in extra:
                name = missing.get(_loose(key))
                if name is not None and name not in found:
                    found[name] = obj[key]
                    taken.add(key)
        return taken

    # -- reading --------------------------------------------------------------------------

    def read_obj(self, obj: dict[str, Any]) -> Parsed | None:
        if self.flat_read:
            got = self.read_flat(obj)
            if got is not _MISSING:
                return got
        got = self._extract(obj)
        if got is None:
            return None
        found, attributes = got
        # the message's own key order (sorting would cost n log n on a message of many keys)
        attributes = _dumps(attributes, ensure_ascii=False) if attributes else None
        return self._build(found, attributes)

    def read_flat(self, obj: dict[str, Any]) -> Any:
        """:meth:`read_obj` for flat paths: lookups straight into the tuple. ``_MISSING`` when
        a field is absent but a key of another spelling might fill it (``loose_keys``): that
        is left to the general path."""
        get = obj.get
        miss = _MISSING
        for key, const in self.flat_match:
            value = get(key, miss)
            if value != const or (type(value) is bool) != (type(const) is bool):
                return None
        for key in self.flat_forbid:
            if key in obj:
                return None
        vals: list[Any] = []
        used = self.n_match
        for alts in self.slots:
            value = None
            for key in alts:
                value = get(key, miss)
                if value is not miss:
                    used += 1
                    break
                value = None
            vals.append(value)
        extra = None
        if len(obj) > used:
            extra = obj.keys() - self.top
            if extra and self.style.loose_keys and None in vals:
                return _MISSING  # the general path reads keys of another spelling
        if (
            self.need_status
            and vals[1] is None
            and vals[2] is None
            and not any(k in obj for k in self.slots[1] + self.slots[2])
        ):
            return None
        attributes = None
        if extra:
            attributes = _dumps({k: v for k, v in obj.items() if k in extra}, ensure_ascii=False)
        return self.build(*vals, attributes)

    def read_text(self, text: str, pos: int = 0, end: int | None = None) -> Parsed | None:
        m = self.regex.fullmatch(text, pos, len(text) if end is None else end)  # type: ignore[union-attr]
        if m is None:
            return None
        attributes = None
        if self.extra_groups:
            groups = m.groupdict()
            extra = {g: groups[g] for g in self.extra_groups if groups[g] is not None}
            if extra:
                attributes = _dumps(extra, ensure_ascii=False)
        # a group that did not take part is None
        return self.build(*self.group_slots(m.groups() + (None,)), attributes)  # type: ignore[misc]

    def _build(self, found: dict[str, Any], attributes: str | None) -> Parsed:
        return self.build(*map(found.get, _FIELDS), attributes)

    def build(
        self,
        raw: Any,
        checkpoint: Any,
        status_raw: Any,
        ts_raw: Any,
        cid: Any,
        reason: Any,
        attributes: str | None,
    ) -> Parsed:
        """The parsed tuple of one message's raw field values (None: absent)."""
        system = self.const_system
        if system is None:
            if raw is None:
                return (BAD, "missing system")
            system = self.systems.get(raw) if type(raw) is str else None
            if system is None:
                if type(raw) is not str:
                    return (BAD, f"unknown system {_show(raw)}")
                system = self.style.system_id(raw)
                if not system:
                    return (BAD, "missing system")
                if len(self.systems) < 1024:
                    self.systems[raw] = system
        cid_raw = cid
        cid = (cid.strip() or None) if type(cid) is str else _scalar(cid)
        if cid is None:
            return (BAD, "missing correlation_id")
        if cid is _INVALID:
            return (BAD, f"correlation_id is not text: {_show(cid_raw)}")
        if reason is not None:
            reason = reason.strip() if type(reason) is str else _dumps(reason, ensure_ascii=False)
            reason = reason or None
        if self.kind == DETAIL:
            if reason is None:
                if self.forbid_status:
                    return (BAD, "message has neither checkpoint/status nor failure_reason")
                return (BAD, "failure detail without a reason")
            ts = None
            if ts_raw is not None:
                ts = self.ts(ts_raw)
                if ts is None:
                    return (BAD, f"invalid timestamp {_show(ts_raw)}")
            if self.join == "nearest_before":
                if ts is None:
                    return (BAD, "failure detail without a timestamp")
            else:
                ts = None  # joined by arrival: the join must not read a time into it
            return (DETAIL, system, cid, reason, ts)
        cp_raw = checkpoint
        checkpoint = (
            (checkpoint.strip() or None) if type(checkpoint) is str else _scalar(checkpoint)
        )
        if checkpoint is None:
            return (BAD, "missing checkpoint")
        if checkpoint is _INVALID:
            return (BAD, f"checkpoint is not text: {_show(cp_raw)}")
        if type(status_raw) is not str:
            if status_raw is None:
                return (BAD, "missing status")
            return (BAD, f"status {_show(status_raw)} is not SUCCESS or FAILURE")
        status = self.statuses.get(status_raw)
        if status is None:
            status = self.style.status.get(status_raw.strip().lower())
            if status is not None and len(self.statuses) < 1024:
                self.statuses[status_raw] = status
        if status is None:
            return (BAD, f"status {_show(status_raw.strip())} is not SUCCESS or FAILURE")
        if ts_raw is None:
            return (BAD, "missing timestamp")
        ts = self.ts(ts_raw)
        if ts is None:
            return (BAD, f"invalid timestamp {_show(ts_raw)}")
        if status == "SUCCESS":
            if reason is not None:  # a reason on a success is kept, as an attribute
                extra = {} if attributes is None else _loads(attributes)
                extra.setdefault("failure_reason", reason)
                attributes = _dumps(extra, ensure_ascii=False, sort_keys=True)
            return (EVENT, system, checkpoint, ts, status, cid, None, None, attributes)
        if reason is not None:
            state = JOIN_INLINE
        elif self.separate:
            state = JOIN_AWAITING
        else:
            state = JOIN_NO_REASON
        return (EVENT, system, checkpoint, ts, status, cid, reason, state, attributes)


#: The normalized fields in the order :meth:`_Reader.build` takes their raw values.
_FIELDS = ("system_id", "checkpoint_id", "status", "timestamp", "correlation_id", "failure_reason")
_FIELD_SET = frozenset(_FIELDS)


def _norm_const(value: Any, fmt: str) -> Any:
    if fmt == "logfmt":
        if isinstance(value, bool):
            return "true" if value else "false"
        return str(value)
    return value


def _path_tree(used: Sequence[tuple[str, ...]]) -> dict[str, Any]:
    """The declared paths as a tree of keys (leaves ``True``), for :func:`_without`."""
    tree: dict[str, Any] = {}
    for keys in used:
        node = tree
        for key in keys[:-1]:
            node = node.setdefault(key, {})
            if node is True:
                break
        else:
            node[keys[-1]] = True
    return tree


def _without(obj: dict[str, Any], tree: dict[str, Any]) -> dict[str, Any] | None:
    """A copy of ``obj`` without the declared leaves (emptied objects dropped); None if empty."""

    def strip(o: dict[str, Any], t: dict[str, Any]) -> dict[str, Any]:
        out = {}
        for k, v in o.items():
            sub = t.get(k)
            if sub is True:
                continue
            if sub and type(v) is dict:
                v = strip(v, sub)
                if not v:
                    continue
            out[k] = v
        return out

    rest = strip(obj, tree)
    return rest or None


def _literals(pattern: re.Pattern[str]) -> tuple[str, str]:
    """The literal text a pattern's matches start with, and the longest literal they contain."""
    if pattern.flags & re.IGNORECASE:
        return "", ""
    try:
        from re import _constants as C  # noqa: N812
        from re import _parser

        items = list(_parser.parse(pattern.pattern, pattern.flags & ~re.UNICODE))
    except Exception:  # noqa: BLE001 - an optimisation only
        return "", ""
    runs: list[str] = []
    run: list[str] = []
    starts_literal = True
    for i, (op, av) in enumerate(items):
        if op is C.AT and i == 0:
            continue
        if op is C.LITERAL:
            run.append(chr(av))
            continue
        if run:
            runs.append("".join(run))
            run = []
        elif not runs:
            starts_literal = False
    if run:
        runs.append("".join(run))
    prefix = runs[0] if runs and starts_literal else ""
    needle = max(runs, key=len, default="")
    return prefix, needle if len(needle) >= 3 else ""


# ---------------------------------------------------------------------------------------------
# the registry


class Registry:
    """Every declared style, in declaration order (first declared wins), compiled for dispatch.

    Example: ``Registry(builtin_styles()).parse(b'{"system": "inventory", ...}')[0]`` -> ``0``
    """

    def __init__(self, styles: Sequence[Style], files: Sequence[str] = ()) -> None:
        self.styles: dict[str, Style] = {}
        for style in styles:
            if style.name in self.styles:
                first = self.styles[style.name]
                raise StyleError(
                    f"{style.source}: style {style.name}: already declared in {first.source}"
                )
            self.styles[style.name] = style
        #: The style files loaded, in order (a child process reloads them from here).
        self.files: tuple[str, ...] = tuple(files)
        readers: list[_Reader] = []
        for style in sorted(self.styles.values(), key=lambda s: s.order):
            readers.append(_Reader(style, style.event, EVENT))
            if style.detail is not None:
                readers.append(_Reader(style, style.detail, DETAIL))
        self._readers = readers
        json_readers = [r for r in readers if r.part.format == "json"]
        self._json_wild: list[_Reader] = []
        index: dict[tuple[str, ...], dict[str, list[_Reader]]] = {}
        for r in json_readers:
            key = next(((k, c) for k, c in r.match if type(c) is str), None)
            if key is None:
                self._json_wild.append(r)
            else:
                index.setdefault(key[0], {}).setdefault(key[1], []).append(r)
        self._json_index = [(k, t) for k, t in index.items()]
        self._has_json = bool(json_readers)
        logfmt = [r for r in readers if r.part.format == "logfmt"]
        self._logfmt_wild = [r for r in logfmt if not any(type(c) is str for _, c in r.match)]
        lindex: dict[str, dict[str, list[_Reader]]] = {}
        for r in logfmt:
            if r in self._logfmt_wild:
                continue
            key, const = next((k, c) for k, c in r.match if type(c) is str)
            lindex.setdefault(key[0], {}).setdefault(const, []).append(r)
        self._logfmt_index = list(lindex.items())
        self._logfmt_needles = tuple(f"{k}=" for k in lindex)
        self._has_logfmt = bool(logfmt)
        self._regex = [r for r in readers if r.regex is not None]
        self._by_char: dict[str, list[_Reader]] = {}
        self._regex_cache: dict[str, list[_Reader]] = {}
        for style in self.styles.values():
            self._check_round_trip(style)

    # -- dispatch -------------------------------------------------------------------------

    def _json_candidates(self, obj: dict[str, Any]) -> list[_Reader]:
        cands = self._json_wild
        extra: list[_Reader] = []
        for keys, table in self._json_index:
            value = obj.get(keys[0], _MISSING) if len(keys) == 1 else _get(obj, keys)
            if type(value) is str:
                found = table.get(value)
                if found:
                    extra.extend(found)
        if not extra:
            return cands
        return sorted([*cands, *extra], key=_order)

    def _regex_candidates(self, first: str) -> list[_Reader]:
        cands = self._regex_cache.get(first)
        if cands is None:
            cands = [r for r in self._regex if not r.prefix or r.prefix[0] == first]
            if len(self._regex_cache) < 4096:
                self._regex_cache[first] = cands
        return cands

    def _logfmt_winner(self, text: str, pos: int, end: int) -> tuple[_Reader, Parsed] | None:
        if not self._logfmt_wild:
            for needle in self._logfmt_needles:
                if text.find(needle, pos, end) >= 0:
                    break
            else:
                return None
        obj = logfmt_decode(text, pos, end)
        if obj is None:
            return None
        cands = list(self._logfmt_wild)
        for key, table in self._logfmt_index:
            value = obj.get(key)
            if type(value) is str:
                cands.extend(table.get(value, ()))
        for r in sorted(cands, key=_order):
            got = r.read_obj(obj)
            if got is not None:
                return r, got
        return None

    def dispatch(
        self, text: str, pos: int = 0, end: int | None = None
    ) -> tuple[str | None, Parsed]:
        """``(name of the style that took it, parsed tuple)`` for the non-empty text between
        ``pos`` and ``end`` (the message without surrounding whitespace; no copy is made).

        Example: ``registry.dispatch("2025-05-04T10:30:00 ORDER: A - SUCCESS (ID: x)")[0]``
        -> ``'text-separate'``
        """
        end = len(text) if end is None else end
        first = text[pos]
        json_error = None
        if self._has_json and (first == "{" or first == "["):
            try:
                obj = loads_json(text)
            except ValueError as exc:
                json_error = f"not valid JSON: {exc}"
            except RecursionError:
                json_error = "not valid JSON: nested too deeply"
            else:
                if type(obj) is not dict:
                    return None, (BAD, f"JSON value is a {type(obj).__name__}, not an object")
                for r in self._json_candidates(obj):
                    got = r.read_obj(obj)
                    if got is not None:
                        return r.name, got
                return None, (BAD, "no style matched")
        winner = self._logfmt_winner(text, pos, end) if self._has_logfmt else None
        limit = winner[0].order if winner else None
        for r in self._regex_candidates(first):
            if limit is not None and r.order > limit:
                break
            if r.prefix and not text.startswith(r.prefix, pos, end):
                continue
            if r.needle and text.find(r.needle, pos, end) < 0:
                continue
            got = r.read_text(text, pos, end)
            if got is not None:
                return r.name, got
        if winner:
            return winner[0].name, winner[1]
        return None, (BAD, json_error or "no style matched")

    def parse(self, value: bytes) -> Parsed | None:
        """Normalize one raw message; never raises. See the module docstring for the tuples.

        Example: ``registry.parse(b'2025-05-04T10:30:00 ORDER: A - SUCCESS (ID: x)')[1]``
        -> ``'orders'``
        """
        try:
            text = value.decode("utf-8")
        except UnicodeDecodeError as exc:
            return (BAD, f"not valid UTF-8: byte 0x{value[exc.start]:02x} at position {exc.start}")
        except (AttributeError, TypeError):
            return (BAD, f"message is not bytes but {type(value).__name__}")
        pos, end = _bounds(text)
        if pos == end:
            if not value.strip():  # blank: nothing but ASCII whitespace
                return None
            return (BAD, "message has only whitespace or control characters")
        try:
            return self.dispatch(text, pos, end)[1]
        except Exception as exc:  # noqa: BLE001 - last line of defence: bad input never crashes
            return (BAD, f"unparseable message ({type(exc).__name__}: {_show(str(exc))})")

    def explain(self, value: bytes) -> tuple[str | None, Parsed | None]:
        """Like :meth:`parse`, with the name of the style that took the message (None: none).

        Example: ``registry.explain(b"hello")`` -> ``(None, (2, 'no style matched'))``
        """
        try:
            text = value.decode("utf-8")
        except UnicodeDecodeError:
            return None, self.parse(value)
        pos, end = _bounds(text)
        if pos == end:
            return None, self.parse(value)
        try:
            return self.dispatch(text, pos, end)
        except Exception:  # noqa: BLE001
            return None, self.parse(value)

    # -- checks ---------------------------------------------------------------------------

    def sample(self, style: Style, system: str = "sample_system") -> list[tuple[str, str, Parsed]]:
        """Lines ``style`` writes for ``system`` (a success, a failure, a detail), each with the
        tuple its own part reads back: ``[(what, line, parsed), ...]``.

        Example: ``registry.sample(registry.styles["text-inline"], "orders")[0][1]``
        """
        ms = 1746354600123
        ts = times.writer(style.event.timestamp, _iso_ms)(ms)
        cid = "c0ffee-0042"
        out = []
        reason = "Sample failure reason"
        cases: list[tuple[str, Part, int, dict[str, Any]]] = [
            ("success", style.event, EVENT, {"checkpoint": "CHECKPOINT_1", "status": "SUCCESS"}),
        ]
        if style.detail is None and style.event.has("failure_reason"):
            cases.append(
                ("failure", style.event, EVENT,
                 {"checkpoint": "CHECKPOINT_1", "status": "FAILURE", "reason": reason})
            )  # fmt: skip
        else:
            cases.append(
                ("failure", style.event, EVENT, {"checkpoint": "CHECKPOINT_1", "status": "FAILURE"})
            )
            if style.detail is not None:
                cases.append(("detail", style.detail, DETAIL, {"reason": reason}))
        for what, part, kind, values in cases:
            if part.format == "regex" and part.template is None:
                continue
            tpl = emit.split(emit.render(style, part, system=system, **values))
            pts = times.writer(part.timestamp, _iso_ms)(ms) if part is style.detail else ts
            line = emit.fill(tpl, pts, cid)
            reader = _Reader(style, part, kind)
            if part.format == "regex":
                got = reader.read_text(line)
            elif part.format == "json":
                got = reader.read_obj(loads_json(line))
            else:
                obj = logfmt_decode(line)
                got = None if obj is None else reader.read_obj(obj)
            out.append((what, line, got))
        return out

    def _check_round_trip(self, style: Style) -> None:
        """A template (or field mapping) must read back what it wrote, through its own part."""
        system = style.system or "sample_system"
        want_system = style.output_system(system)
        for what, line, got in self.sample(style, system):
            key = "detail.template" if what == "detail" else "template"
            if style.event.format != "regex" and what != "detail":
                key = "fields"
            if what == "detail" and style.detail and style.detail.format != "regex":
                key = "detail.fields"
            err = f"{style.source}: style {style.name}: {key}: "
            if got is None:
                raise StyleError(f"{err}writes {line!r}, which its own pattern does not match")
            if got[0] == BAD:
                raise StyleError(f"{err}writes {line!r}, read back as bad: {got[1]}")
            if got[1] != want_system:
                raise StyleError(
                    f"{err}writes {line!r}, read back as system {got[1]!r}, not {want_system!r}"
                )
            if got[0] == EVENT and (got[2] != "CHECKPOINT_1" or got[5] != "c0ffee-0042"):
                raise StyleError(
                    f"{err}writes {line!r}, read back as checkpoint {got[2]!r} and "
                    f"correlation id {got[5]!r}"
                )
            if got[0] == DETAIL and (got[2] != "c0ffee-0042" or got[3] != "Sample failure reason"):
                raise StyleError(f"{err}writes {line!r}, read back as {got[2:4]!r}")
            inline = style.detail is None and style.event.has("failure_reason")
            if what == "failure" and inline and got[6] != "Sample failure reason":
                raise StyleError(f"{err}writes {line!r}, read back without its failure reason")


def _bounds(text: str) -> tuple[int, int]:
    """Where ``text`` starts and ends without surrounding whitespace (``str.strip`` would copy
    a long message; messages rarely carry more than a line ending)."""
    pos, end = 0, len(text)
    while pos < end and text[pos].isspace():
        pos += 1
    while end > pos and text[end - 1].isspace():
        end -= 1
    return pos, end


def _order(r: _Reader) -> tuple[int, int]:
    return r.order


def _iso_ms(ms: int) -> str:
    text = times.reader("epoch_ms")(ms) or ""
    return text[:23]


ParseFunction = Callable[[bytes], "Parsed | None"]
