"""Where simulated messages go: a tiny interface, so that Kafka is one more sink, not a rewrite.

A sink takes one raw message at a time (``value`` bytes exactly as emitted, ``key`` the
correlation id, ``system`` the emitting system) and is closed once at the end. Sinks are context
managers. ``write_many`` has a default that loops over ``write``; fast sinks override it.
"""

from __future__ import annotations

import sys
from abc import ABC, abstractmethod
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO

from tracelab.closing import ClosesOnExit
from tracelab.errors import ConfigError

__all__ = ["FileSink", "ListSink", "Sink"]


class Sink(ClosesOnExit, ABC):
    """Receives raw log messages in emission order.

    Example:
        with FileSink("out.log") as sink:
            sink.write(b'{"system": "inventory", ...}', key="c1", system="inventory")
    """

    __slots__ = ()

    #: Whether the sink uses each message's key and system (Kafka routes by them). A sink that
    #: does not gets whole batches through :meth:`write_values`, the simulator's fast path.
    routes_messages: bool = True

    @abstractmethod
    def write(self, value: bytes, key: str, system: str) -> None:
        """Send one message (``value`` without a line ending)."""

    def write_values(self, values: list[bytes]) -> None:
        """Send several messages that need no key or system (default: one ``write`` each).

        Example: ``sink.write_values([b"line 1", b"line 2"])``
        """
        for value in values:
            self.write(value, "", "")

    def write_many(
        self, values: Iterable[bytes], keys: Iterable[str], systems: Iterable[str]
    ) -> None:
        """Send several messages in order (default: one ``write`` each).

        Example: ``sink.write_many([b"a", b"b"], ["c1", "c2"], ["orders", "orders"])``
        """
        for value, key, system in zip(values, keys, systems, strict=True):
            self.write(value, key, system)

    def flush(self) -> None:  # noqa: B027 - optional hook
        """Hand what was written so far to the destination (a live run calls it twice a second)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Flush and release resources (idempotent)."""


class FileSink(Sink):
    """Writes one message per line (``\\n``) to a file, or to stdout for ``-``.

    Example: ``with FileSink("data/raw/run.log") as sink: simulate(flow, 10, 1, sink=sink)``
    """

    __slots__ = ("_fh", "_owns", "count", "path")

    routes_messages = False  # a file keeps lines only

    def __init__(self, path: str | Path, buffer_size: int = 1 << 20) -> None:
        self.path = str(path)
        self.count = 0
        if self.path == "-":
            self._fh: BinaryIO = sys.stdout.buffer
            self._owns = False
        else:
            p = Path(path)
            try:
                p.parent.mkdir(parents=True, exist_ok=True)
                self._fh = open(p, "wb", buffering=buffer_size)  # noqa: SIM115 - closed in close()
            except OSError as exc:
                raise ConfigError(f"cannot write {p}: {exc.strerror or exc}") from None
            self._owns = True

    def write(self, value: bytes, key: str, system: str) -> None:
        """Append ``value`` and a newline."""
        self._fh.write(value + b"\n")
        self.count += 1

    def write_many(
        self, values: Iterable[bytes], keys: Iterable[str], systems: Iterable[str]
    ) -> None:
        """Append all ``values``, one per line, in one call."""
        values = list(values)
        if values:
            self._fh.write(b"\n".join(values) + b"\n")
            self.count += len(values)

    def write_values(self, values: list[bytes]) -> None:
        """Fast path for the simulator: append encoded messages, one per line.

        Example: ``sink.write_values([b"line 1", b"line 2"])``
        """
        if values:
            self._fh.write(b"\n".join(values))
            self._fh.write(b"\n")
            self.count += len(values)

    def write_lines(self, text_lines: list[str]) -> None:
        """Fast path for the simulator: str lines, UTF-8 (lone surrogates = raw bytes).

        Example: ``sink.write_lines(["line 1", "line 2"])``
        """
        if text_lines:
            # encoding line by line keeps ASCII lines on CPython's fast path
            self._fh.write(b"\n".join([t.encode("utf-8", "surrogateescape") for t in text_lines]))
            self._fh.write(b"\n")
            self.count += len(text_lines)

    def flush(self) -> None:
        """Write the buffered lines to the file, so that a reader following it sees them."""
        if not self._fh.closed:
            self._fh.flush()

    def close(self) -> None:
        """Flush, and close the file unless it is stdout."""
        fh = self._fh
        if fh.closed:
            return
        fh.flush()
        if self._owns:
            fh.close()


class ListSink(Sink):
    """Keeps messages in memory (tests, notebooks): ``messages`` is a list of (value, key, system).

    Example: ``sink = ListSink(); simulate(flow, 5, 1, sink=sink); len(sink.messages)``
    """

    __slots__ = ("messages",)

    def __init__(self) -> None:
        self.messages: list[tuple[bytes, str, str]] = []

    def write(self, value: bytes, key: str, system: str) -> None:
        """Keep one message."""
        self.messages.append((value, key, system))

    def values(self) -> bytes:
        """All values as one newline-terminated byte string (what a FileSink would write).

        Example: ``sink.values().count(b"\\n") == len(sink.messages)``
        """
        return b"".join(v + b"\n" for v, _, _ in self.messages)
