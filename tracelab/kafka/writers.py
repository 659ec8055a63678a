"""Where a consumer's batches are stored: in its own process, or in a writer child process.

Both writers take ``(records, offsets, commit)`` jobs and give back, in order, the summary of
each stored batch with the Kafka commit it allows.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import sys
import threading
import time
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tracelab.errors import KafkaIOError, StoreError
from tracelab.ingest.boundary import DEFAULT_MAX_MESSAGE_BYTES
from tracelab.ingest.pipeline import Normalizer, prepare
from tracelab.ingest.shards import open_store
from tracelab.ingest.store import Summary

if TYPE_CHECKING:
    pass

log = logging.getLogger(__name__)

__all__ = ["InlineWriter", "ProcessWriter"]

#: Send buffer asked for the socket to the writer child: a parsed 10k-message batch is ~2.5 MB.
_SEND_BUFFER_BYTES = 8 << 20


class InlineWriter:
    """Stores each batch in this process before the next poll (one core)."""

    __slots__ = ("store", "normalizer", "_done")

    def __init__(
        self, db: str | Path, styles: Any = None, *, max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    ) -> None:
        self.store = open_store(db)
        self.normalizer = Normalizer(self.store, styles, max_bytes=max_bytes)
        self._done: list[tuple[Summary, dict[Any, Any]]] = []

    @property
    def skipped(self) -> int:
        return self.store.skipped

    def submit(self, records: list[Any], offsets: dict[Any, int], commit: dict[Any, Any]) -> None:
        self._done.append((self.normalizer.process_batch(records, offsets=offsets), commit))

    def completed(self, wait: bool = False) -> list[tuple[Summary, dict[Any, Any]]]:
        done, self._done = self._done, []
        return done

    def close(self) -> None:
        self.store.close()


def _writer_main(db: str, conn: Any, max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> None:
    """The writer process: store each batch it receives; answer with its summary.

    A job is ``(records, None, offsets)`` (raw: parse here) or ``(items, blanks, offsets)``
    (already parsed by the consumer process, see :meth:`ProcessWriter.submit`). Each answer
    carries how long this process has been busy (wall seconds not spent waiting for a job), by
    which the consumer shares the parsing.
    """
    import queue

    for sig in (signal.SIGINT, signal.SIGTERM):  # the consumer process decides when to stop
        signal.signal(sig, signal.SIG_IGN)
    # A reader thread takes each batch off the socket as soon as it is sent, so the consumer
    # process never blocks on a full socket buffer while this one is busy writing.
    jobs: queue.SimpleQueue[Any] = queue.SimpleQueue()

    def read() -> None:
        try:
            while True:
                job = conn.recv()
                jobs.put(job)
                if job is None:
                    return
        except (EOFError, OSError):  # the consumer process is gone (even kill -9): stop
            jobs.put(None)

    store = None
    try:
        from tracelab.styles import load_registry

        styles = load_registry(json.loads(os.environ.get("TRACELAB_STYLE_FILES", "[]")))
        store = open_store(db)
        write = store.write_batch
        conn.send(("ready",))
        busy = 0.0  # the work only, not the start-up
        threading.Thread(target=read, name="tracelab-writer-recv", daemon=True).start()
        while True:
            job = jobs.get()
            if job is None:
                break
            started = time.perf_counter()
            payload, blanks, offsets = job
            if blanks is None:
                payload, blanks = prepare(payload, styles, max_bytes=max_bytes)
            summary = write(payload, blank=blanks, offsets=offsets)
            busy += time.perf_counter() - started
            conn.send(("done", summary, store.skipped, busy))
    except BaseException as exc:  # noqa: BLE001 - reported to the consumer process
        with contextlib.suppress(Exception):
            conn.send(("error", type(exc).__name__, str(exc)))
    finally:
        if store is not None:
            store.close()
        conn.close()


def _writer_entry(argv: list[str]) -> None:
    """Entry point of the writer child: ``DB FD MAX_BYTES``."""
    from multiprocessing.connection import Connection

    db, fd, max_bytes = argv
    _writer_main(db, Connection(int(fd)), int(max_bytes))


class ProcessWriter:
    """Stores batches in a child process while this one polls the next (both cores busy).

    At most ``depth`` batches are in flight; results come back in order, each with the Kafka
    commit it allows. The child stops after its current batch when this process dies.
    """

    __slots__ = (
        "_conn", "_proc", "_pending", "_done", "_skipped", "_starting", "_writer_busy", "depth",
        "styles", "max_bytes", "_cpu0",
    )  # fmt: skip

    def __init__(
        self,
        db: str | Path,
        depth: int = 2,
        styles: Any = None,
        max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    ) -> None:
        import socket
        import subprocess
        from multiprocessing.connection import Connection

        # A plain child interpreter (not multiprocessing's spawn, which would re-run an
        # unguarded __main__ script), talking over a socket pair with pickle framing.
        ours, theirs = socket.socketpair()
        # A whole batch fits in the socket (as far as the kernel allows: net.core.wmem_max), so
        # sending one never waits for the writer's reader thread, which needs the GIL between
        # reads while the writer's main thread is storing.
        with contextlib.suppress(OSError):
            ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, _SEND_BUFFER_BYTES)
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            [str(Path(__file__).resolve().parents[2]), env.get("PYTHONPATH", "")]
        ).rstrip(os.pathsep)
        # the child reads the same style files (the variable itself is read by both)
        self.styles = styles
        env["TRACELAB_STYLE_FILES"] = json.dumps(
            [f for f in (styles.files if styles is not None else ()) if f]
        )
        if styles is not None:
            env.pop("TRACELAB_STYLES", None)  # already among styles.files
        code = (
            "import sys; from tracelab.kafka.writers import _writer_entry;"
            " _writer_entry(sys.argv[1:])"
        )
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-c", code, str(db), str(theirs.fileno()), str(max_bytes)],
                pass_fds=[theirs.fileno()],
                stdin=subprocess.DEVNULL,
                env=env,
                start_new_session=True,  # a terminal's Ctrl-C goes to the consumer, not here
            )
        finally:
            theirs.close()
        self._conn = Connection(ours.detach())
        self._pending: deque[dict[Any, Any]] = deque()
        self._done: list[tuple[Summary, dict[Any, Any]]] = []
        self._skipped = 0
        # The writer's busy seconds at its last answer, and when that answer came: with
        # this process's own CPU time they say which side has worked less (see submit).
        self._writer_busy = (0.0, time.monotonic())
        # This process's CPU seconds so far: only what it spends from now on is compared (a
        # notebook kernel or a benchmark may have worked a lot before calling consume).
        self._cpu0 = time.process_time()
        self.depth = depth
        self.max_bytes = max_bytes
        # The child's first message is "ready" (the database opened fine). It is read with the
        # first result instead of waited for here, so the child's start overlaps the consumer's
        # group join rather than delaying it.
        self._starting = True

    @property
    def skipped(self) -> int:
        return self._skipped

    def _receive(self) -> Any:
        try:
            msg = self._conn.recv()
        except (EOFError, OSError):
            raise StoreError("the SQLite writer process stopped unexpectedly") from None
        if msg[0] == "error":
            if msg[1] == "StoreError":
                raise StoreError(msg[2])
            raise KafkaIOError(f"the SQLite writer process failed: {msg[1]}: {msg[2]}")
        return msg

    def _collect(self) -> None:
        msg = self._receive()
        if self._starting:
            self._starting = False
            if msg[0] == "ready":
                return
        _, summary, skipped, busy = msg
        self._skipped = skipped
        self._writer_busy = (busy, time.monotonic())
        self._done.append((summary, self._pending.popleft()))

    def _writer_is_behind(self) -> bool:
        """Whether the writer has done more work than this process and is still busy.

        Parsing goes to whichever process has worked less so far, which keeps both cores
        equally busy whatever the cost of Kafka decoding, parsing and SQLite writing is here.
        This process's work is its CPU time; the writer's is the wall time it spent on batches,
        which also counts what its CPU time misses and still holds it up: the disk, and its
        reader thread taking the GIL to unpickle the next batch. That is known as of the
        writer's last answer; since then it has been working (batches are pending), so the wall
        time since that answer is added.
        """
        if not self._pending:
            return False
        busy, at = self._writer_busy
        return time.process_time() - self._cpu0 < busy + (time.monotonic() - at)

    def submit(self, records: list[Any], offsets: dict[Any, int], commit: dict[Any, Any]) -> None:
        """Hand a batch to the writer, parsed here when the writer is the busier process."""

        job: tuple[Any, list[Any] | None, dict[Any, int]] = (records, None, offsets)
        if self._writer_is_behind():
            items, blanks = prepare(records, self.styles, max_bytes=self.max_bytes)
            job = (items, blanks, offsets)
        while len(self._pending) >= self.depth:
            self._collect()
        try:
            self._conn.send(job)
        except (OSError, ValueError):
            raise StoreError("the SQLite writer process stopped unexpectedly") from None
        self._pending.append(commit)

    def completed(self, wait: bool = False) -> list[tuple[Summary, dict[Any, Any]]]:
        while self._pending and (wait or self._conn.poll()):
            self._collect()
        done, self._done = self._done, []
        return done

    def close(self) -> None:
        import subprocess

        with contextlib.suppress(Exception):
            self._conn.send(None)
        try:
            self._proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait(timeout=10)
        self._conn.close()
