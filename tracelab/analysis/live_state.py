"""What the live dashboard shows, kept up to date from the rows added since the last look.

:class:`LiveState` reads only new rows at each :meth:`~LiveState.update` (see
:mod:`tracelab.analysis.live_queries`) and keeps small aggregates: events and failures per second
and system, rows stored per second, the traces in flight (started, not finished by the declared
flow's rules), the newest failures, failures still awaiting their detail, and a history of the
join backlog and the consumer lag. Everything is bounded: per-second series hold ``history_s``
seconds, finished traces are forgotten, and traces silent for ``forget_after_s`` are dropped.
Each update returns a :class:`Snapshot` of plain DataFrames (no widgets here).

Clock: ages and windows are measured against the wall clock while the database is being written
(its newest event is within the window); for a database that is no longer written (a finished
run, a report) the newest event's time stands in for "now" (``clock="auto"``).

Example::

    state = LiveState(open_readonly("x.db"), load_flow("data/flows/default.yaml"), window_s=60)
    snap = state.update()
    snap.counters["in_flight"], snap.stuck.head()
"""

from __future__ import annotations

import sqlite3
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from tracelab.analysis import live_queries as q
from tracelab.errors import ConfigError

__all__ = ["LiveState", "Snapshot"]

_US = 1_000_000
_NEWEST = 50  # newest failures kept


def _stored_text(us: int) -> str:
    """Stored timestamp form of UTC microseconds."""
    return datetime.fromtimestamp(us / _US, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _second_us(text: str) -> int:
    """UTC microseconds of ``YYYY-MM-DDTHH:MM:SS``."""
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()) * _US


def _ts(us: list[int]) -> np.ndarray:
    """UTC microseconds as naive datetime64 values (pandas keeps them as datetime columns)."""
    return np.asarray(us, dtype="int64").astype("datetime64[us]")


@dataclass
class Snapshot:
    """One refresh of the dashboard: counters and the frames each figure draws.

    ``now`` is the clock used (``clock`` says which: "wall" or "data"). Frames:
    ``ingest`` (time, rows: rows stored per second), ``failure_rate`` (system_id, events,
    failures, rate over the window), ``in_flight`` (correlation_id, started, age_s, idle_s,
    last_system, last_checkpoint, events), ``stuck`` (the in-flight traces idle longer than
    ``stuck_after_s``, longest idle first), ``failures`` (newest first: ts, system_id,
    checkpoint_id, correlation_id, failure_reason, join_state), ``backlog`` (time,
    awaiting_detail, orphans), ``lag`` (partition, end_offset, stored, lag; empty without Kafka)
    and ``lag_history`` (time, lag).

    Example: ``snap.counters["messages"]``
    """

    now: pd.Timestamp
    clock: str
    window_s: float
    counters: dict[str, float]
    ingest: pd.DataFrame
    failure_rate: pd.DataFrame
    in_flight: pd.DataFrame
    stuck: pd.DataFrame
    failures: pd.DataFrame
    backlog: pd.DataFrame
    lag: pd.DataFrame = field(default_factory=pd.DataFrame)
    lag_history: pd.DataFrame = field(default_factory=pd.DataFrame)


class _Trace:
    __slots__ = ("events", "fails", "first_us", "hit", "last_cp", "last_sys", "last_us")

    def __init__(self, ts_us: int) -> None:
        self.first_us = ts_us
        self.last_us = ts_us
        self.last_sys = ""
        self.last_cp = ""
        self.events = 0
        self.hit: set[tuple[str, str]] = set()
        self.fails: dict[tuple[str, str], int] = {}


class LiveState:
    """Incremental aggregates of a tracelab database being written (see the module docstring).

    ``flow`` is the declared flow (``tracelab.simulate.flows.Flow``): a trace is finished when it
    logged the last checkpoints of one route's final stage, or when a checkpoint failed more
    often than its system retries.
    Example: ``LiveState(conn, flow, window_s=300, stuck_after_s=30)``
    """

    def __init__(
        self,
        conn: sqlite3.Connection,
        flow: Any,
        *,
        window_s: float = 300.0,
        stuck_after_s: float = 30.0,
        history_s: float | None = None,
        forget_after_s: float | None = None,
        clock: str = "auto",
    ) -> None:
        if not window_s > 0 or not stuck_after_s > 0:
            raise ConfigError("window_s and stuck_after_s must be > 0 seconds")
        if clock not in ("auto", "wall", "data"):
            raise ConfigError(f"clock must be auto, wall or data, got {clock!r}")
        self.conn = conn
        self.window_s = float(window_s)
        self.stuck_after_s = float(stuck_after_s)
        self.history_s = float(history_s or max(window_s, 900.0))
        self.forget_after_s = float(forget_after_s or max(3600.0, 10 * stuck_after_s))
        self.clock = clock
        self._ends = q.flow_ends(flow)
        self._end_pairs = frozenset().union(*self._ends) if self._ends else frozenset()
        self._limits = q.retry_limits(flow)
        self._last: dict[str, int] | None = None
        self._per_sec: dict[int, dict[str, list[int]]] = defaultdict(dict)
        self._ingest: dict[int, int] = defaultdict(int)
        self._traces: dict[str, _Trace] = {}
        self._finished: dict[str, int] = {}
        self._newest: deque[list[Any]] = deque(maxlen=_NEWEST)
        self._awaiting: dict[int, int] = {}
        self._backlog: deque[tuple[int, int, int]] = deque()
        self._lag: deque[tuple[int, int]] = deque()
        self._newest_us: int | None = None
        self.updates = 0

    # -- reading ---------------------------------------------------------------------------

    def _now_us(self) -> tuple[int, str]:
        wall = time.time_ns() // 1000
        newest = self._newest_us
        if self.clock == "wall" or newest is None:
            return wall, "wall"
        if self.clock == "data" or wall - newest > self.window_s * _US:
            return newest, "data"
        return wall, "wall"

    def _read(self) -> None:
        conn = self.conn
        upto = {t: q.max_id(conn, t) for t in ("events", "details", "quarantine")}
        if self._last is None:
            self._newest_us = q.newest_event_us(conn)
            ref, _ = self._now_us()
            rows = q.events_since(
                conn, _stored_text(ref - int(self.history_s * _US)), upto["events"]
            )
            after = {}
            for t in ("events", "details", "quarantine"):
                last_row = conn.execute(
                    f"SELECT ingested_at FROM {t} WHERE id = ?",  # noqa: S608 - fixed names
                    (upto[t],),
                ).fetchone()
                if last_row is None:
                    after[t] = upto[t]
                    continue
                newest_in = _second_us(last_row[0][:19])
                since = _stored_text(newest_in - int(self.history_s * _US))
                after[t] = q.first_id_ingested_since(conn, t, since) - 1
        else:
            after = self._last
            rows = q.events_between(conn, after["events"], upto["events"])
        for t in ("events", "details", "quarantine"):
            for sec, n in q.stored_per_second(conn, t, after[t], upto[t]):
                self._ingest[_second_us(sec)] += n
        self._last = upto
        self._absorb(rows)

    def _absorb(self, rows: list[tuple[Any, ...]]) -> None:
        ends, end_pairs, limits = self._ends, self._end_pairs, self._limits
        traces, finished = self._traces, self._finished
        per_sec = self._per_sec
        for eid, system, cp, ts_us, status, cid, reason, join_state in rows:
            if ts_us is None:
                continue
            if self._newest_us is None or ts_us > self._newest_us:
                self._newest_us = ts_us
            failed = status == "FAILURE"
            cell = per_sec[ts_us // _US].get(system)
            if cell is None:
                per_sec[ts_us // _US][system] = [1, int(failed)]
            else:
                cell[0] += 1
                cell[1] += failed
            if failed:
                self._newest.append([eid, ts_us, system, cp, cid, reason, join_state])
                if join_state == "awaiting_detail":
                    self._awaiting[eid] = ts_us
            if cid in finished:
                continue
            tr = traces.get(cid)
            if tr is None:
                tr = traces[cid] = _Trace(ts_us)
            tr.events += 1
            if ts_us < tr.first_us:
                tr.first_us = ts_us
            if ts_us >= tr.last_us:
                tr.last_us, tr.last_sys, tr.last_cp = ts_us, system, cp
            done = False
            if failed:
                key = (system, cp)
                n = tr.fails.get(key, 0) + 1
                tr.fails[key] = n
                done = n > limits.get(system, 1 << 30)
            elif (system, cp) in end_pairs:
                tr.hit.add((system, cp))
                done = any(e <= tr.hit for e in ends)
            if done:
                del traces[cid]
                finished[cid] = ts_us

    def _trim(self, now: int) -> None:
        horizon = now - int(self.history_s * _US)
        for sec in [s for s in self._per_sec if s * _US < horizon]:
            del self._per_sec[sec]
        for sec in [s for s in self._ingest if s < horizon - 60 * _US]:
            del self._ingest[sec]
        keep_finished = now - int(max(self.history_s, 2 * self.stuck_after_s) * _US)
        for cid in [c for c, t in self._finished.items() if t < keep_finished]:
            del self._finished[cid]
        forget = now - int(self.forget_after_s * _US)
        for cid in [c for c, t in self._traces.items() if t.last_us < forget]:
            del self._traces[cid]
        for eid in [e for e, t in self._awaiting.items() if t < horizon]:
            del self._awaiting[eid]
        while self._backlog and self._backlog[0][0] < horizon:
            self._backlog.popleft()
        while self._lag and self._lag[0][0] < horizon:
            self._lag.popleft()

    # -- the snapshot ----------------------------------------------------------------------

    def update(self, lag: pd.DataFrame | None = None) -> Snapshot:
        """Read what was added since the last update and return the new snapshot; ``lag`` is a
        frame with ``partition, end_offset, stored, lag`` (see ``tracelab.kafka.PartitionLag``)
        if known.

        Example: ``snap = state.update()``
        """
        self._read()
        now, clock = self._now_us()
        if self._awaiting:
            still = q.still_awaiting(self.conn, list(self._awaiting))
            for eid in [e for e in self._awaiting if e not in still]:
                del self._awaiting[eid]
        pending = [f[0] for f in self._newest if f[6] == "awaiting_detail"]
        if pending:
            fresh = q.reasons_of(self.conn, pending)
            for f in self._newest:
                if f[0] in fresh:
                    f[5], f[6] = fresh[f[0]]
        orphans = q.orphan_count(self.conn)
        window_from = now - int(self.window_s * _US)
        awaiting = sum(1 for t in self._awaiting.values() if t >= window_from)
        self._backlog.append((now, awaiting, orphans))
        if lag is not None and not lag.empty:
            self._lag.append((now, int(lag["lag"].sum())))
        self._trim(now)
        self.updates += 1
        return self._snapshot(now, clock, awaiting, orphans, lag)

    def _snapshot(
        self, now: int, clock: str, awaiting: int, orphans: int, lag: pd.DataFrame | None
    ) -> Snapshot:
        window_from = now - int(self.window_s * _US)
        totals: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        for sec, cells in self._per_sec.items():
            if sec * _US >= window_from:
                for system, (n, f) in cells.items():
                    t = totals[system]
                    t[0] += n
                    t[1] += f
        systems = sorted(totals)
        rate = pd.DataFrame(
            {
                "system_id": systems,
                "events": [totals[s][0] for s in systems],
                "failures": [totals[s][1] for s in systems],
                "rate": [totals[s][1] / totals[s][0] if totals[s][0] else 0.0 for s in systems],
            }
        )
        secs = sorted(s for s in self._ingest if s >= window_from - _US)
        ingest = pd.DataFrame({"time": _ts(secs), "rows": [self._ingest[s] for s in secs]})
        items = list(self._traces.items())

        def traces_frame(pairs: list[tuple[str, Any]]) -> pd.DataFrame:
            return pd.DataFrame(
                {
                    "correlation_id": [c for c, _ in pairs],
                    "started": _ts([t.first_us for _, t in pairs]),
                    "age_s": [(now - t.first_us) / _US for _, t in pairs],
                    "idle_s": [(now - t.last_us) / _US for _, t in pairs],
                    "last_system": [t.last_sys for _, t in pairs],
                    "last_checkpoint": [t.last_cp for _, t in pairs],
                    "events": [t.events for _, t in pairs],
                }
            )

        flight = traces_frame(items)
        limit = now - int(self.stuck_after_s * _US)
        stuck_items = sorted(
            ((c, t) for c, t in items if t.last_us < limit), key=lambda x: (x[1].last_us, x[0])
        )
        stuck = flight.iloc[0:0] if not stuck_items else traces_frame(stuck_items)
        newest = list(reversed(self._newest))
        fails = pd.DataFrame(
            {
                "ts": _ts([f[1] for f in newest]),
                **{
                    name: [f[i] for f in newest]
                    for i, name in enumerate(
                        (
                            "system_id",
                            "checkpoint_id",
                            "correlation_id",
                            "failure_reason",
                            "join_state",
                        ),
                        start=2,
                    )  # fmt: skip
                },
            }
        )
        backlog = pd.DataFrame(
            {
                "time": _ts([b[0] for b in self._backlog]),
                "awaiting_detail": [b[1] for b in self._backlog],
                "orphans": [b[2] for b in self._backlog],
            }
        )
        lag_hist = pd.DataFrame(
            {"time": _ts([x[0] for x in self._lag]), "lag": [x[1] for x in self._lag]}
        )
        counts = q.counters(self.conn)
        recent = [self._ingest.get(s, 0) for s in secs[-6:-1]]  # whole seconds only
        counters: dict[str, float] = {
            "messages": counts.get("messages", 0),
            "events": counts.get("events", 0),
            "rows_per_s": sum(recent) / len(recent) if recent else 0.0,
            "in_flight": len(items),
            "stuck": len(stuck_items),
            "events_in_window": int(sum(t[0] for t in totals.values())),
            "failures_in_window": int(sum(t[1] for t in totals.values())),
            "awaiting_detail": awaiting,
            "orphans": orphans,
            "lag": int(lag["lag"].sum()) if lag is not None and not lag.empty else -1,
        }
        return Snapshot(
            now=pd.Timestamp(np.datetime64(now, "us")),
            clock=clock,
            window_s=self.window_s,
            counters=counters,
            ingest=ingest,
            failure_rate=rate,
            in_flight=flight,
            stuck=stuck,
            failures=fails,
            backlog=backlog,
            lag=lag if lag is not None else pd.DataFrame(),
            lag_history=lag_hist,
        )
