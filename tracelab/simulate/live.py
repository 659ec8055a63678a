"""The orchestrator in real time: traces start at a steady rate on the wall clock and each message
is sent when its time comes, until a duration passes, a trace count is reached or a stop is asked.

Traces come from the batch flow engine (:mod:`tracelab.simulate.engine`: same flows, faults and
truth rules), started at the wall clock (UTC, milliseconds): a trace's timestamps are the times
its messages are sent. Start times form a Poisson process of ``rate`` traces per second, drawn from
the seed. Messages wait in one heap ordered by send time (ties keep each trace's own order), so
the state held is the traces in flight, bounded by ``rate`` x the longest trace.

Truth: a trace's expected events are appended to the truth file (and flushed) when its last
message has been sent, and ``<truth>.summary.json`` is rewritten atomically every few seconds, so
both are consistent whenever the run stops. On stop the orchestrator starts no new trace and lets
the traces in flight finish in real time for up to ``drain_s`` seconds; traces still in flight
then (or at once if ``cut`` is set, e.g. by a second Ctrl-C) are **cut**: their truth is what
was actually sent, replayed through the same rules, and the summary counts them.

Example::

    from tracelab.simulate.live import simulate_live
    with FileSink("live.log") as sink:
        simulate_live(load_flow("data/flows/default.yaml"), rate=50, seed=1, sink=sink,
                      duration=10, truth_path="live.truth.jsonl")
"""

from __future__ import annotations

import heapq
import json
import os
import random
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tqdm import tqdm

from tracelab.errors import ConfigError
from tracelab.simulate.engine import (
    Faults,
    SimulationResult,
    _clean_line,
    _Engine,
    _replay,
    _truth_line,
)
from tracelab.simulate.flows import Flow
from tracelab.simulate.sinks import Sink
from tracelab.simulate.truth import truth_summary_path

__all__ = ["LiveTrace", "simulate_live"]

_TICK_S = 0.05  # longest sleep between two looks at the clock
_SUMMARY_EVERY_S = 5.0
_FLUSH_EVERY_S = 0.5
_RESYNC_MS = 5_000  # further behind schedule than this (a suspended process): start afresh


class LiveTrace:
    """One trace in flight: its records, how many are still to send, and its truth when whole.

    Example: ``LiveTrace("abc", recs, truth_lines, dirty=False, details=1)``
    """

    __slots__ = ("cid", "details", "dirty", "left", "recs", "sent", "truth")

    def __init__(
        self, cid: str, recs: list[list[Any]], truth: list[str], dirty: bool, details: int
    ) -> None:
        self.cid = cid
        self.recs = recs
        self.truth = truth
        self.dirty = dirty
        self.details = details
        self.left = len(recs)
        self.sent: list[list[Any]] = []


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")


def simulate_live(
    flow: Flow,
    rate: float,
    seed: int,
    faults: Faults | None = None,
    sink: Sink | None = None,
    truth_path: str | Path | None = None,
    *,
    duration: float | None = None,
    max_traces: int | None = None,
    drain_s: float = 10.0,
    stop: threading.Event | None = None,
    cut: threading.Event | None = None,
    progress: bool = False,
    on_tick: Callable[[dict[str, Any]], None] | None = None,
) -> SimulationResult:
    """Run ``flow`` live: ``rate`` traces per second in real time, messages to ``sink``.

    Stops after ``duration`` seconds, ``max_traces`` traces, or when ``stop`` is set; then the
    traces in flight finish in real time for up to ``drain_s`` seconds (or until ``cut`` is
    set) and the rest are cut. The summary is the batch one plus ``mode`` ("live"), ``rate``,
    ``started_at``, ``stopped_at``, ``stopped_by`` ("duration", "traces" or "stop"), ``cut``
    (traces cut) and ``max_in_flight``; ``expected`` covers exactly the truth file's lines.
    ``on_tick`` receives the running figures about twice a second (tests, dashboards).

    Example: ``simulate_live(flow, rate=200, seed=1, sink=sink, duration=600)``
    """
    if isinstance(rate, bool) or not isinstance(rate, int | float) or not rate > 0:
        raise ConfigError(f"rate: traces per second > 0, got {rate!r}")
    if duration is not None and not duration >= 0:  # also refuses NaN
        raise ConfigError(f"duration: seconds >= 0, got {duration!r}")
    if drain_s < 0:
        raise ConfigError(f"drain: seconds >= 0, got {drain_s!r}")
    faults = faults or Faults()
    stop = stop or threading.Event()
    cut = cut or threading.Event()
    eng = _Engine(flow, seed, faults)
    r_start = random.Random(f"tracelab:{seed}:live-starts")
    mean_gap_ms = 1000.0 / rate
    exp = {"events": 0, "joined": 0, "orphans": 0, "duplicates": 0, "quarantined": 0,
           "awaiting_detail": 0}  # fmt: skip
    tp = Path(truth_path) if truth_path is not None else None
    truth_fh = None
    if tp is not None:
        try:
            tp.parent.mkdir(parents=True, exist_ok=True)
            truth_fh = open(tp, "wb")  # noqa: SIM115 - closed in finally
        except OSError as exc:
            raise ConfigError(f"cannot write {tp}: {exc.strerror or exc}") from None
    fast = sink is not None and not sink.routes_messages
    heap: list[tuple[int, int, list[Any], LiveTrace]] = []
    seq = 0
    started = completed = cut_traces = messages = max_in_flight = 0
    in_flight: set[LiveTrace] = set()
    t_begin = _now_ms()
    next_start = float(t_begin)
    stopped_by = "stop"
    stopping_at: int | None = None
    truth_out: list[str] = []
    bar = tqdm(
        total=max_traces, unit="trace", disable=not progress, mininterval=0.5, dynamic_ncols=True
    )
    last_report = (time.monotonic(), 0, 0)
    next_flush = next_summary = time.monotonic()
    next_report = next_flush + 0.5

    stopped_at: list[str] = []  # fixed once, so the returned and the written summary agree

    def summary(done: bool) -> dict[str, Any]:
        if done and not stopped_at:
            stopped_at.append(_iso(_now_ms()))
        return {
            "flow": flow.name,
            "seed": seed,
            "mode": "live",
            "rate": rate,
            "traces": completed + cut_traces,
            "messages": messages,
            "cut": cut_traces,
            "in_flight": 0 if done else len(in_flight),
            "max_in_flight": max_in_flight,
            "started_at": _iso(t_begin),
            "stopped_at": stopped_at[0] if done else None,
            "stopped_by": stopped_by if done else None,
            "complete": done,
            "paths": eng.counts["paths"],
            "stopped_in": eng.counts["stopped_in"],
            "faults": eng.counts["faults"],
            "fault_rates": faults.as_dict(),
            "clock_skew_ms": {s.name: s.skew for s in eng.systems.values()},
            "expected": dict(exp),
        }

    def write_summary(done: bool) -> None:
        if tp is None:
            return
        sp = truth_summary_path(tp)
        tmp = sp.with_name(sp.name + ".tmp")
        tmp.write_text(json.dumps(summary(done), indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, sp)

    def finish(tr: LiveTrace, whole: bool) -> None:
        """Account a trace whose messages are all sent (or which is cut): truth, counts."""
        nonlocal completed, cut_traces
        in_flight.discard(tr)
        if whole and not tr.dirty:
            exp["events"] += len(tr.recs) - tr.details
            exp["joined"] += tr.details
            truth_out.extend(tr.truth)
        else:
            rows = _replay(tr.recs if whole else tr.sent, exp)
            exp["awaiting_detail"] += sum(1 for r in rows if r[2] and r[3] is None)
            truth_out.extend(_truth_line(r, tr.cid) for r in rows)
        if whole:
            completed += 1
        else:
            cut_traces += 1
        tr.recs = tr.sent = tr.truth = []  # type: ignore[assignment]

    def start_trace(t0: int) -> None:
        nonlocal seq, started, max_in_flight
        cid, recs = eng.trace(t0)
        if eng.dirty:
            truth: list[str] = []  # replayed when whole: detail joins depend on arrival order
        else:
            truth = [_clean_line(r, cid) for r in recs if not r[3]]
        tr = LiveTrace(cid, recs, truth, eng.dirty, eng.n_det)
        in_flight.add(tr)
        max_in_flight = max(max_in_flight, len(in_flight))
        for rec in recs:
            heapq.heappush(heap, (rec[0], seq, rec, tr))
            seq += 1
        started += 1

    try:
        while True:
            now = _now_ms()
            if stopping_at is None:
                if stop.is_set():
                    stopped_by, stopping_at = "stop", now
                elif duration is not None and now - t_begin >= duration * 1000:
                    stopped_by, stopping_at = "duration", now
                elif max_traces is not None and started >= max_traces:
                    stopped_by, stopping_at = "traces", now
            if stopping_at is None:
                if now - next_start > _RESYNC_MS:
                    next_start = float(now)
                while next_start <= now and (max_traces is None or started < max_traces):
                    start_trace(int(next_start))
                    next_start += r_start.expovariate(1.0) * mean_gap_ms
            # send everything that is due, in send-time order
            due_values: list[bytes] = []
            while heap and heap[0][0] <= now:
                _, _, rec, tr = heapq.heappop(heap)
                value = rec[1].encode("utf-8", "surrogateescape")
                if sink is not None:
                    if fast:
                        due_values.append(value)
                    else:
                        sink.write(value, rec[9], rec[2].name)
                messages += 1
                tr.left -= 1
                if tr.left == 0:
                    finish(tr, whole=True)
                else:
                    tr.sent.append(rec)
            if due_values:
                sink.write_values(due_values)  # type: ignore[union-attr]
            if truth_out and truth_fh is not None:
                truth_fh.write(("\n".join(truth_out) + "\n").encode("utf-8", "surrogateescape"))
                truth_fh.flush()
            truth_out.clear()
            mono = time.monotonic()
            if stopping_at is not None and (
                not heap or cut.is_set() or now - stopping_at >= drain_s * 1000
            ):
                for tr in sorted(in_flight, key=lambda t: t.cid):
                    finish(tr, whole=False)
                heap.clear()
                if truth_out and truth_fh is not None:
                    truth_fh.write(("\n".join(truth_out) + "\n").encode("utf-8", "surrogateescape"))
                truth_out.clear()
                break
            if mono >= next_flush:
                flush = getattr(sink, "flush", None)
                if callable(flush):
                    flush()
                next_flush = mono + _FLUSH_EVERY_S
            if mono >= next_report:
                t_prev, n_prev, m_prev = last_report
                dt = max(1e-9, mono - t_prev)
                figures = {
                    "traces_per_s": (started - n_prev) / dt,
                    "messages_per_s": (messages - m_prev) / dt,
                    "in_flight": len(in_flight),
                    "started": started,
                    "messages": messages,
                }
                bar.update(started - bar.n)
                bar.set_postfix_str(
                    f"{figures['traces_per_s']:.0f} traces/s, "
                    f"{figures['messages_per_s']:.0f} msg/s, {len(in_flight)} in flight",
                    refresh=False,
                )
                if on_tick is not None:
                    on_tick(figures)
                last_report = (mono, started, messages)
                next_report = mono + 0.5
            if mono >= next_summary:
                write_summary(False)
                next_summary = mono + _SUMMARY_EVERY_S
            wake = next_start if stopping_at is None else float("inf")
            if heap:
                wake = min(wake, heap[0][0])
            pause = min(_TICK_S, max(0.0, (wake - _now_ms()) / 1000))
            if pause > 0:
                # a stop wakes the wait at once; while draining, only a cut does
                (cut if stopping_at is not None else stop).wait(pause)
    finally:
        bar.update(started - bar.n)
        bar.close()
        if truth_fh is not None:
            truth_fh.close()
    result = SimulationResult(summary(True), messages, tp)
    if tp is not None:
        write_summary(True)
        result.summary_path = truth_summary_path(tp)
    return result
