"""The flow engine and orchestrator: simulate traces of a declared flow, with faults and truth.

Each trace gets a correlation id (UUID-like, drawn from the seed) and a start time on a simulated
millisecond clock (starts ``arrival_ms`` apart, so traces overlap). The orchestrator runs the
flow's entry stages, then draws one path and runs its stages; systems of one stage run in
parallel (their lines interleave), a stage ends when its slowest system does. Each system runs its
checkpoints in order; a checkpoint fails with its probability, logs FAILURE (and, in a separate
style, a detail message a little later; the system goes on after the detail), waits the retry
delay and tries again. A checkpoint that still fails after ``retry.limit`` retries stops its
system, and a stopped system ends the trace: no later stage starts (parallel siblings already
running finish their work).

Messages are emitted in time order across systems and traces (a streaming merge), and the same
seed and parameters give byte-identical output. Faults (:class:`Faults`) are drawn from their own
random streams, so a fault rate changes nothing else.

Ground truth is what a perfect normalizer stores: it is computed by replaying each trace's
messages in arrival order through the rules of the normalizer (duplicates by identical bytes,
quarantine for malformed messages, details joined as their declared style says: by arrival to
the oldest unexplained failure (``oldest_unexplained``) or to the nearest failure at or before
their timestamp (``nearest_before``), unmatched details as orphans). The truth follows the style
declarations (system id, separate details, join mode, timestamp precision); it never runs the
normalizer's parser, so it stays an independent check.
"""

from __future__ import annotations

import bisect
import gc
import itertools
import json
import random
from collections import deque
from dataclasses import dataclass, fields
from operator import itemgetter
from pathlib import Path
from typing import Any

from tqdm import tqdm

from tracelab.errors import ConfigError
from tracelab.simulate.emitters import _MS_SUFFIX as _MS
from tracelab.simulate.emitters import _SECOND_CACHE as _HEADS
from tracelab.simulate.emitters import CompiledSystem, compile_system, fill, format_ms
from tracelab.simulate.flows import Flow, System
from tracelab.simulate.sinks import Sink
from tracelab.simulate.truth import truth_summary_path

__all__ = [
    "FAULT_NAMES",
    "Faults",
    "SimulationResult",
    "corrupt",
    "simulate",
]

#: Fault rate names, in CLI order (flags ``--duplicate`` ... ``--clock-skew``).
FAULT_NAMES: tuple[str, ...] = (
    "duplicate",
    "detail_first",
    "missing_detail",
    "orphan_detail",
    "malformed",
    "clock_skew",
)

_EVENT, _DETAIL, _MALFORMED = 0, 1, 2
_BITS = 12  # latency tables have 2**12 entries
_FLUSH_EVERY = 256  # traces between merges
_REDELIVERY_MS = (1, 2000)  # a duplicate arrives this much later


@dataclass(frozen=True, slots=True)
class Faults:
    """Fault injection rates (0..1) and the clock skew (max ms per system).

    - ``duplicate``: share of messages delivered twice (the copy arrives later).
    - ``detail_first``: share of separate failure details delivered before their failure.
    - ``missing_detail``: share of separate failure details that never come.
    - ``orphan_detail``: share of traces that also emit a detail nobody failed for.
    - ``malformed``: share of messages corrupted beyond parsing (quarantine). To keep the truth
      unambiguous a payments-style failure whose intact detail would otherwise be joined to an
      older failure is left intact.
    - ``clock_skew``: each system's clock is off by a fixed whole number of ms in
      ``[-clock_skew, clock_skew]``; the logs (and the truth) carry the skewed time.

    Example: ``Faults(duplicate=0.01, malformed=0.001, clock_skew=250)``
    """

    duplicate: float = 0.0
    detail_first: float = 0.0
    missing_detail: float = 0.0
    orphan_detail: float = 0.0
    malformed: float = 0.0
    clock_skew: int = 0

    def __post_init__(self) -> None:
        for name in FAULT_NAMES[:-1]:
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int | float) or not 0.0 <= v <= 1.0:
                raise ConfigError(f"{name}: a rate between 0 and 1, got {v!r}")
        s = self.clock_skew
        if isinstance(s, bool) or not isinstance(s, int) or s < 0:
            raise ConfigError(f"clock_skew: a whole number of ms >= 0, got {s!r}")

    def as_dict(self) -> dict[str, float]:
        """The rates by name.

        Example: ``Faults().as_dict()["duplicate"]`` -> ``0.0``
        """
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(slots=True)
class SimulationResult:
    """What a run produced: ``summary`` is also written to ``<truth>.summary.json``.

    Example: ``simulate(flow, 10, 1).summary["expected"]["events"]``
    """

    summary: dict[str, Any]
    messages: int
    truth_path: Path | None = None
    summary_path: Path | None = None


def corrupt(line: str, mode: int) -> str:
    """Damage a line so that no tolerant parser can read it (quarantine), keeping it unique.

    ``mode`` 0 puts an invalid UTF-8 byte in the middle (a lone surrogate, written with
    ``surrogateescape``); mode 1 truncates JSON before its closing quote and brace and puts the
    invalid byte after the first character of any other line (no style reads it: every style
    works on valid UTF-8).

    Example: ``corrupt('{"a": "b"}', 1)`` -> ``'{"a": "b'``
    """
    if mode == 0:
        mid = len(line) // 2
        return line[:mid] + "\udcff" + line[mid:]
    if line.startswith("{"):
        return line[:-2]
    return line[:1] + "\udcff" + line[1:]


# ---------------------------------------------------------------------------------------------
# compiled flow


def _truth_template(
    system: str, checkpoint: str, status: str, reason: str | None
) -> tuple[str, str, str]:
    """One truth line (the six schema fields, stored forms) as the text before, between and
    after its timestamp and correlation id: ``f"{a}{ts}{b}{cid}{c}"``."""
    head = json.dumps(
        {"system_id": system, "checkpoint_id": checkpoint, "timestamp": "\ue000"},
        ensure_ascii=False,
    )[:-1]
    tail = json.dumps(
        {"status": status, "correlation_id": "\ue001", "failure_reason": reason},
        ensure_ascii=False,
    )[1:]
    out = head + ", " + tail
    i = out.index("\ue000")
    j = out.index("\ue001")
    return out[:i], "000Z" + out[i + 1 : j], out[j + 1 :]


class _Cp:
    __slots__ = (
        "cum",
        "det",
        "fail",
        "lat",
        "name",
        "p",
        "reasons",
        "succ",
        "system",
        "t_fail",
        "t_succ",
        "total",
    )

    def truth_failure(self, reason: str | None) -> tuple[str, str, str]:
        """The truth template of this checkpoint failing with ``reason`` (None: never came)."""
        tpl = self.t_fail.get(reason)
        if tpl is None:
            tpl = _truth_template(self.system, self.name, "FAILURE", reason)
            self.t_fail[reason] = tpl
        return tpl

    def __init__(self, sysc: CompiledSystem, i: int, system: System, lat: tuple[int, ...]) -> None:
        cp = system.checkpoints[i]
        self.name = cp.name
        self.system = sysc.output
        self.t_succ = _truth_template(sysc.output, cp.name, "SUCCESS", None)
        self.t_fail: dict[str | None, tuple[str, str, str]] = {}
        self.p = cp.failure_probability
        self.reasons = cp.reasons
        self.cum = list(itertools.accumulate(cp.weights))
        self.total = self.cum[-1] if self.cum else 0.0
        self.succ = sysc.success[i]
        self.fail = sysc.failure[i]
        self.det = sysc.detail[i]
        self.lat = cp.latency.table(1 << _BITS) if cp.latency is not None else lat


class _Sys:
    __slots__ = (
        "compiled",
        "cps",
        "ddelay",
        "dres",
        "dtw",
        "dup_details",
        "limit",
        "name",
        "orphan_reasons",
        "out",
        "plan",
        "res",
        "retry",
        "sep",
        "skew",
        "ts_detail",
        "tw",
    )

    def __init__(self, system: System, skew: int, flow: Flow) -> None:
        c = compile_system(system, flow.styles.styles[system.style])
        lat = system.latency.table(1 << _BITS)
        self.name = system.name
        self.out = c.output  # the system_id the normalizer stores
        self.compiled = c
        self.cps = [_Cp(c, i, system, lat) for i in range(len(system.checkpoints))]
        # success lines are built with an f-string from the template's parts (mode 0: ts first)
        self.plan = [(cp, cp.lat, cp.p, *cp.succ) for cp in self.cps]
        self.sep = c.separate
        self.ts_detail = c.by_time  # details join the nearest failure at or before them
        self.dup_details = c.separate and not c.detail_has_ts  # equal reasons, equal bytes
        self.tw, self.dtw = c.ts_text, c.detail_ts_text  # None: iso8601, the fast form
        self.res, self.dres = c.resolution, c.detail_resolution
        self.limit = system.retry.limit
        self.retry = system.retry.delay.table(1 << _BITS)
        self.ddelay = system.detail_delay.table(1 << _BITS)
        self.skew = skew
        reasons = [r for cp in system.checkpoints for r in cp.reasons]
        self.orphan_reasons = reasons or ["Failure detail without a failure"]

    def stamp(self, pt: int) -> tuple[str, str]:
        """``(printed time as the truth stores it, text the line carries)`` of an event."""
        if self.tw is None:
            ts = format_ms(pt)
            return ts, ts
        return format_ms(pt - pt % self.res), self.tw(pt)

    def dstamp(self, pt: int) -> tuple[str, str]:
        """Like :meth:`stamp`, for a detail."""
        if self.dtw is None:
            ts = format_ms(pt)
            return ts, ts
        return format_ms(pt - pt % self.dres), self.dtw(pt)


def _head(sec: int) -> str:
    """``YYYY-MM-DDTHH:MM:SS`` of an epoch second (fills the shared cache)."""
    return format_ms(sec * 1000)[:19]


def _uuid(bits: int) -> str:
    h = f"{bits:032x}"
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) & 3]}{h[17:20]}-{h[20:]}"


# ---------------------------------------------------------------------------------------------
# the engine


class _Engine:
    """Generates one trace at a time; records are lists
    [emit_ms, line, sys, kind, checkpoint, printed_ms, failed, reason, link, cid]."""

    __slots__ = (
        "counts",
        "dirty",
        "entry",
        "n_det",
        "seen_reasons",
        "f",
        "flow",
        "paths",
        "path_cum",
        "r_dup",
        "r_first",
        "r_flow",
        "r_ids",
        "r_mal",
        "r_miss",
        "r_orphan",
        "sep_systems",
        "systems",
    )

    def __init__(self, flow: Flow, seed: int, faults: Faults) -> None:
        self.flow = flow
        self.f = faults
        mk = random.Random
        self.r_flow = mk(f"tracelab:{seed}:flow")
        self.r_ids = mk(f"tracelab:{seed}:ids")
        self.r_dup = mk(f"tracelab:{seed}:duplicate")
        self.r_first = mk(f"tracelab:{seed}:detail_first")
        self.r_miss = mk(f"tracelab:{seed}:missing_detail")
        self.r_orphan = mk(f"tracelab:{seed}:orphan_detail")
        self.r_mal = mk(f"tracelab:{seed}:malformed")
        r_skew = mk(f"tracelab:{seed}:clock_skew")
        sk = faults.clock_skew
        self.systems = {
            n: _Sys(s, r_skew.randint(-sk, sk) if sk else 0, flow) for n, s in flow.systems.items()
        }
        self.entry = [[self.systems[n] for n in st] for st in flow.entry]
        self.paths = [
            (p.name, [[self.systems[n] for n in st] for st in p.stages]) for p in flow.paths
        ]
        self.path_cum = list(itertools.accumulate(p.probability for p in flow.paths))
        self.sep_systems = [s for s in self.systems.values() if s.sep]
        self.dirty = False  # whether the current trace needs a full replay for its truth
        self.n_det = 0
        self.seen_reasons: set[tuple[str, str, str]] = set()
        self.counts: dict[str, Any] = {
            "paths": {p.name: 0 for p in flow.paths},
            "stopped_in": {n: 0 for n in flow.systems},
            "faults": {n: 0 for n in FAULT_NAMES[:-1]},
        }

    # -- one system ---------------------------------------------------------------------------

    def _system(self, s: _Sys, t: int, cid: str, recs: list[list[Any]]) -> tuple[int, bool]:
        rf = self.r_flow
        rnd = rf.random
        bits = rf.getrandbits
        append = recs.append
        heads = _HEADS
        ms = _MS
        skew = s.skew
        fast = s.tw is None
        for cp, lat, p, sa, sb, sc, mode in s.plan:
            attempt = 0
            while True:
                t += lat[bits(_BITS)]
                if p and rnd() < p:
                    t, stop = self._failure(s, cp, t, cid, recs, attempt)
                    if stop:
                        return t, False
                    attempt += 1
                    continue
                pt = t + skew
                if fast:
                    sec = pt // 1000
                    h = heads.get(sec) or _head(sec)
                    ts = text = h + ms[pt - sec * 1000]
                else:
                    ts, text = s.stamp(pt)
                line = f"{sa}{text}{sb}{cid}{sc}" if mode == 0 else fill(cp.succ, text, cid)
                append([t, line, s, _EVENT, cp, ts, False, None, None, cid])
                break
        return t, True

    def _failure(
        self, s: _Sys, cp: _Cp, t: int, cid: str, recs: list[list[Any]], attempt: int
    ) -> tuple[int, bool]:
        """Log a failed attempt (and its detail); the time to go on from, and whether to stop."""
        rf = self.r_flow
        f = self.f
        r = bisect.bisect_right(cp.cum, rf.random() * cp.total) if len(cp.cum) > 1 else 0
        ts, text = s.stamp(t + s.skew)
        line = fill(cp.fail[r], text, cid)
        reason = cp.reasons[r]
        if s.sep:
            ev = [t, line, s, _EVENT, cp, ts, True, None, None, cid]
            td = t + s.ddelay[rf.getrandbits(_BITS)]
            if f.missing_detail and self.r_miss.random() < f.missing_detail:
                self.counts["faults"]["missing_detail"] += 1
                self.dirty = True
                recs.append(ev)
            else:
                pd, dtext = s.dstamp(td + s.skew)
                dline = fill(cp.det[r], dtext, cid)
                self.n_det += 1
                if s.dup_details:
                    # identical bytes (same system, trace and reason) count as a duplicate
                    key = (s.out, s.compiled.style.name, reason)
                    if key in self.seen_reasons:
                        self.dirty = True
                    self.seen_reasons.add(key)
                if f.detail_first and self.r_first.random() < f.detail_first:
                    self.counts["faults"]["detail_first"] += 1
                    self.dirty = True
                    det = [t, dline, s, _DETAIL, None, pd, False, reason, None, cid]
                    recs.append(det)
                    recs.append(ev)
                else:
                    det = [td, dline, s, _DETAIL, None, pd, False, reason, None, cid]
                    recs.append(ev)
                    recs.append(det)
                ev[8] = det
            t = td
        else:
            recs.append([t, line, s, _EVENT, cp, ts, True, reason, None, cid])
        if attempt >= s.limit:
            return t, True
        return t + s.retry[rf.getrandbits(_BITS)], False

    def _stage(
        self, stage: list[_Sys], t: int, cid: str, recs: list[list[Any]]
    ) -> tuple[int, bool]:
        end = t
        ok = True
        for s in stage:
            e, good = self._system(s, t, cid, recs)
            if e > end:
                end = e
            if not good:
                ok = False
                self.counts["stopped_in"][s.name] += 1
        return end, ok

    # -- one trace ----------------------------------------------------------------------------

    def trace(self, t0: int) -> tuple[str, list[list[Any]]]:
        """The correlation id and all records of one trace, in arrival order."""
        cid = _uuid(self.r_ids.getrandbits(128))
        recs: list[list[Any]] = []
        self.dirty = False
        self.n_det = 0
        if self.seen_reasons:
            self.seen_reasons = set()
        t = t0
        ok = True
        for stage in self.entry:
            t, ok = self._stage(stage, t, cid, recs)
            if not ok:
                break
        if ok and self.paths:
            i = bisect.bisect_right(self.path_cum, self.r_flow.random())
            name, stages = self.paths[min(i, len(self.paths) - 1)]
            self.counts["paths"][name] += 1
            for stage in stages:
                t, ok = self._stage(stage, t, cid, recs)
                if not ok:
                    break
        f = self.f
        faults = self.counts["faults"]
        if f.orphan_detail and self.sep_systems and self.r_orphan.random() < f.orphan_detail:
            ro = self.r_orphan
            s = self.sep_systems[ro.randrange(len(self.sep_systems))]
            reason = s.orphan_reasons[ro.randrange(len(s.orphan_reasons))]
            ocid = _uuid(ro.getrandbits(128))
            te = t0 + ro.randrange(max(1, t - t0))
            pd, dtext = s.dstamp(te + s.skew)
            line = fill(s.compiled.detail_template(reason), dtext, ocid)
            recs.append([te, line, s, _DETAIL, None, pd, False, reason, None, ocid])
            faults["orphan_detail"] += 1
            self.dirty = True
        if f.malformed and self._malform(recs):
            self.dirty = True
        if f.duplicate:
            rd = self.r_dup
            rate = f.duplicate
            lo, hi = _REDELIVERY_MS
            extra = []
            for rec in recs:
                if rd.random() < rate and rec[3] != _MALFORMED:
                    copy = rec.copy()
                    copy[0] = rec[0] + rd.randint(lo, hi)
                    extra.append(copy)
            if extra:
                faults["duplicate"] += len(extra)
                recs.extend(extra)
                self.dirty = True
        if self.dirty:
            recs.sort(key=itemgetter(0))  # arrival order, for the replay (the merge re-sorts)
        return cid, recs

    def _malform(self, recs: list[list[Any]]) -> bool:
        rm = self.r_mal
        rate = self.f.malformed
        any_hit = False
        for rec in recs:
            if rm.random() < rate:
                rec[3] = _MALFORMED
                any_hit = True
        if not any_hit:
            return False
        # A timestamped (payments-style) failure lost while its detail survives would leave that
        # detail to the rules' reading of "nearest failure" when an older failure is unmatched:
        # keep such a failure intact.
        unmatched: set[tuple[str, str]] = set()
        for rec in sorted(recs, key=itemgetter(5)):
            s = rec[2]
            if not (s.ts_detail and rec[6] and rec[4] is not None):
                continue
            key = (s.out, rec[9])
            det = rec[8]
            det_ok = det is not None and det[3] != _MALFORMED
            if rec[3] == _MALFORMED:
                if det_ok and key in unmatched:
                    rec[3] = _EVENT
            elif not det_ok:
                unmatched.add(key)
        n = 0
        for rec in recs:
            if rec[3] == _MALFORMED:
                rec[1] = corrupt(rec[1], rm.getrandbits(1))
                n += 1
        self.counts["faults"]["malformed"] += n
        return True


# ---------------------------------------------------------------------------------------------
# ground truth: replay a trace through the normalizer's rules


def _replay(recs: list[list[Any]], exp: dict[str, int]) -> list[list[Any]]:
    """Expected event rows [system, checkpoint, printed_ms, status, reason] of one trace."""
    seen: set[str] = set()
    rows: list[list[Any]] = []
    fifo_fail: dict[tuple[str, str], deque[list[Any]]] = {}
    fifo_det: dict[tuple[str, str], deque[str]] = {}
    ts_fail: dict[tuple[str, str], list[list[Any]]] = {}
    ts_det: dict[tuple[str, str], list[tuple[int, str]]] = {}
    dups = quar = joined = 0
    for rec in recs:
        line = rec[1]
        if line in seen:
            dups += 1
            continue
        seen.add(line)
        kind = rec[3]
        s = rec[2]
        if kind == _MALFORMED:
            quar += 1
            continue
        if kind == _EVENT:
            failed = rec[6]
            row = [rec[4], rec[5], failed, rec[7]]
            rows.append(row)
            if failed and s.sep:
                key = (s.out, rec[9])
                if s.ts_detail:
                    ts_fail.setdefault(key, []).append(row)
                else:
                    q = fifo_det.get(key)
                    if q:
                        row[3] = q.popleft()
                        joined += 1
                    else:
                        fifo_fail.setdefault(key, deque()).append(row)
        else:
            key = (s.out, rec[9])
            if s.ts_detail:
                ts_det.setdefault(key, []).append((rec[5], rec[7]))
            else:
                qf = fifo_fail.get(key)
                if qf:
                    qf.popleft()[3] = rec[7]
                    joined += 1
                else:
                    fifo_det.setdefault(key, deque()).append(rec[7])
    orphans = sum(len(q) for q in fifo_det.values())
    for key, dets in ts_det.items():
        open_fails = sorted(ts_fail.get(key, ()), key=itemgetter(1))
        for printed, reason in sorted(dets, key=itemgetter(0)):
            best = None
            for row in open_fails:
                if row[1] <= printed:
                    best = row
                else:
                    break
            if best is None:
                orphans += 1
            else:
                best[3] = reason
                open_fails.remove(best)
                joined += 1
    exp["events"] += len(rows)
    exp["joined"] += joined
    exp["orphans"] += orphans
    exp["duplicates"] += dups
    exp["quarantined"] += quar
    return rows


def _clean_line(rec: list[Any], cid: str) -> str:
    """The truth line of an event record of a trace no fault touched."""
    cp = rec[4]
    if not rec[6]:
        a, b, c = cp.t_succ
    else:
        det = rec[8]
        a, b, c = cp.truth_failure(rec[7] if det is None else det[7])
    return f"{a}{rec[5]}{b}{cid}{c}"


def _truth_line(row: list[Any], cid: str) -> str:
    """The truth line of a replayed row [checkpoint, ts, failed, reason]."""
    cp = row[0]
    a, b, c = cp.truth_failure(row[3]) if row[2] else cp.t_succ
    return f"{a}{row[1]}{b}{cid}{c}"


# ---------------------------------------------------------------------------------------------
# orchestrator


def _write_lines(fh: Any, lines: list[str]) -> None:
    fh.write(b"\n".join([t.encode("utf-8") for t in lines]))
    fh.write(b"\n")


def simulate(
    flow: Flow,
    traces: int,
    seed: int,
    faults: Faults | None = None,
    sink: Sink | None = None,
    truth_path: str | Path | None = None,
    progress: bool = False,
) -> SimulationResult:
    """Simulate ``traces`` traces of ``flow``, send every message to ``sink`` in emission order.

    With ``truth_path``, writes the expected ``events`` rows as JSON Lines (six schema fields,
    timestamps in the stored form) and ``<truth_path>.summary.json``. The returned summary has
    ``traces, messages, paths, stopped_in, faults, clock_skew_ms, expected`` where ``expected``
    counts ``events, joined, orphans, duplicates, quarantined, awaiting_detail``;
    ``messages == events + joined + orphans + duplicates + quarantined``.

    Example:
        with FileSink("run.log") as sink:
            result = simulate(load_flow("data/flows/default.yaml"), 1000, 7, Faults(), sink)
    """
    if isinstance(traces, bool) or not isinstance(traces, int) or traces < 0:
        raise ConfigError(f"traces: a whole number >= 0, got {traces!r}")
    faults = faults or Faults()
    eng = _Engine(flow, seed, faults)
    arrival = flow.arrival.table(1 << _BITS)
    bits = eng.r_flow.getrandbits
    fast = sink is not None and not sink.routes_messages
    exp = {"events": 0, "joined": 0, "orphans": 0, "duplicates": 0, "quarantined": 0,
           "awaiting_detail": 0}  # fmt: skip
    messages = 0
    truth_fh = None
    tp = Path(truth_path) if truth_path is not None else None
    if tp is not None:
        try:
            tp.parent.mkdir(parents=True, exist_ok=True)
            truth_fh = open(tp, "wb", buffering=1 << 20)  # noqa: SIM115
        except OSError as exc:
            raise ConfigError(f"cannot write {tp}: {exc.strerror or exc}") from None
    buf: list[list[Any]] = []
    truth_lines: list[str] = []
    t0 = flow.start_ms
    key0 = itemgetter(0)
    bar = tqdm(total=traces, unit="trace", disable=not progress, mininterval=0.5)

    def flush(watermark: int | None) -> None:
        nonlocal buf, messages
        buf.sort(key=key0)
        cut = len(buf) if watermark is None else bisect.bisect_left(buf, watermark, key=key0)
        if not cut:
            return
        out = buf[:cut]
        buf = buf[cut:]
        messages += cut
        if sink is None:
            return
        if fast:
            sink.write_values([r[1].encode("utf-8", "surrogateescape") for r in out])
        else:
            write = sink.write
            for r in out:
                write(r[1].encode("utf-8", "surrogateescape"), r[9], r[2].name)

    gc_was_enabled = gc.isenabled()
    if fast or sink is None:
        # records hold no reference cycles, so the collector would only slow this down; other
        # sinks (Kafka clients) may make cyclic garbage, so they keep it
        gc.disable()
    try:
        for i in range(traces):
            cid, recs = eng.trace(t0)
            if eng.dirty:
                rows = _replay(recs, exp)
                for row in rows:
                    if row[2] and row[3] is None:
                        exp["awaiting_detail"] += 1
                if truth_fh is not None:
                    truth_lines.extend(_truth_line(row, cid) for row in rows)
            else:
                exp["events"] += len(recs) - eng.n_det
                exp["joined"] += eng.n_det
                if truth_fh is not None:
                    truth_lines.extend(_clean_line(r, cid) for r in recs if not r[3])
            buf.extend(recs)
            t0 += arrival[bits(_BITS)]
            if (i + 1) % _FLUSH_EVERY == 0:
                flush(t0)
                bar.update(_FLUSH_EVERY)
                if truth_fh is not None and truth_lines:
                    _write_lines(truth_fh, truth_lines)
                    truth_lines.clear()
        flush(None)
        bar.update(traces % _FLUSH_EVERY)
        if truth_fh is not None and truth_lines:
            _write_lines(truth_fh, truth_lines)
    finally:
        if gc_was_enabled:
            gc.enable()
        bar.close()
        if truth_fh is not None:
            truth_fh.close()
    summary: dict[str, Any] = {
        "flow": flow.name,
        "seed": seed,
        "traces": traces,
        "messages": messages,
        "paths": eng.counts["paths"],
        "stopped_in": eng.counts["stopped_in"],
        "faults": eng.counts["faults"],
        "fault_rates": faults.as_dict(),
        "clock_skew_ms": {s.name: s.skew for s in eng.systems.values()},
        "expected": exp,
    }
    result = SimulationResult(summary, messages, tp)
    if tp is not None:
        sp = truth_summary_path(tp)
        sp.write_text(json.dumps(summary, indent=2, sort_keys=False) + "\n", encoding="utf-8")
        result.summary_path = sp
    return result
