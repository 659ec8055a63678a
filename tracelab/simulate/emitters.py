"""Native log lines of a flow's systems, written in their declared styles.

Nothing here knows a style: :func:`compile_system` asks the style registry
(:mod:`tracelab.styles.emit`) for every line a system can write and keeps them as
:data:`~tracelab.styles.emit.Template` tuples for the simulator's hot path: a template is filled
with :func:`~tracelab.styles.emit.fill` (``template, timestamp text, correlation id``), with
checkpoint, status and reason already baked in.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from tracelab.simulate.flows import System
from tracelab.styles import Style
from tracelab.styles.emit import Template, fill, render, split
from tracelab.styles.times import resolution_ms, writer

__all__ = ["CompiledSystem", "Template", "compile_system", "fill", "format_ms"]


_MS_SUFFIX: tuple[str, ...] = tuple(f".{i:03d}" for i in range(1000))
_SECOND_CACHE: dict[int, str] = {}


def format_ms(epoch_ms: int) -> str:
    """Render epoch milliseconds the way the simulator writes them (naive UTC, ms).

    Example: ``format_ms(1746354600123)`` -> ``'2025-05-04T10:30:00.123'``
    """
    sec, ms = divmod(epoch_ms, 1000)
    head = _SECOND_CACHE.get(sec)
    if head is None:
        if len(_SECOND_CACHE) > 500_000:
            _SECOND_CACHE.clear()
        head = datetime.fromtimestamp(sec, UTC).strftime("%Y-%m-%dT%H:%M:%S")
        _SECOND_CACHE[sec] = head
    return head + _MS_SUFFIX[ms]


@dataclass(frozen=True, slots=True)
class CompiledSystem:
    """Templates of one system; fill each with ``fill(template, ts_text, cid)``.

    ``success[i]``: checkpoint ``i`` succeeded. ``failure[i][r]``: it failed with reason ``r``
    (the same template for every ``r`` in separate styles). ``detail[i][r]``: the separate
    detail of that failure (``None`` in inline styles). ``output`` is the ``system_id`` the
    normalizer stores for these lines; ``by_time`` whether details join by timestamp
    (``nearest_before``) and ``detail_has_ts`` whether a detail line carries its time.
    ``ts_text``/``detail_ts_text`` write epoch ms as the style does (None: iso8601, the
    simulator's own fast form); ``resolution``/``detail_resolution``: precision written, in ms.

    Example: ``fill(compile_system(system, style).success[0], "2025-05-04T10:30:00.123", "c1")``
    """

    name: str
    style: Style
    output: str
    separate: bool
    by_time: bool
    detail_has_ts: bool
    success: tuple[Template, ...]
    failure: tuple[tuple[Template, ...], ...]
    detail: tuple[tuple[Template, ...] | None, ...]
    ts_text: Callable[[int], str] | None
    detail_ts_text: Callable[[int], str] | None
    resolution: int
    detail_resolution: int

    def detail_template(self, reason: str) -> Template:
        """A detail template for any reason (used for orphan details).

        Example: ``fill(compiled.detail_template("lost"), ts, "c9")``
        """
        if not self.separate or self.style.detail is None:
            raise ValueError(f"{self.name} writes no separate details")
        return split(render(self.style, self.style.detail, system=self.name, reason=reason))


def _text_writer(kind: str) -> Callable[[int], str] | None:
    return None if kind == "iso8601" else writer(kind, format_ms)


def compile_system(system: System, style: Style) -> CompiledSystem:
    """Precompute every line template of a declared system written in ``style``.

    Example: ``compile_system(flow.systems["payments"], registry.styles["text-separate"])``
    """
    name = system.name

    def line(cp: str, status: str, reason: str | None = None) -> Template:
        return split(render(style, style.event, system=name, checkpoint=cp, status=status,
                            reason=reason))  # fmt: skip

    success = tuple(line(c.name, "SUCCESS") for c in system.checkpoints)
    failure: list[tuple[Template, ...]] = []
    detail: list[tuple[Template, ...] | None] = []
    sep = style.detail
    for c in system.checkpoints:
        if sep is not None:
            one = line(c.name, "FAILURE")
            failure.append(tuple(one for _ in c.reasons))
            detail.append(
                tuple(split(render(style, sep, system=name, reason=r)) for r in c.reasons)
            )
        else:
            failure.append(tuple(line(c.name, "FAILURE", r) for r in c.reasons))
            detail.append(None)
    by_time = style.join == "nearest_before"
    has_ts = sep is not None and any(t[3] != 2 for d in detail if d for t in d)
    if sep is not None and not has_ts:
        has_ts = split(render(style, sep, system=name, reason="x"))[3] != 2
    return CompiledSystem(
        name,
        style,
        style.output_system(name),
        sep is not None,
        by_time,
        has_ts,
        success,
        tuple(failure),
        tuple(detail),
        _text_writer(style.event.timestamp),
        _text_writer(sep.timestamp) if sep is not None else None,
        resolution_ms(style.event.timestamp),
        resolution_ms(sep.timestamp) if sep is not None else 1,
    )
