"""Tie a helper child process to its parent, so it never outlives it.

A child that outlives its parent keeps the parent's input files and stdout open: a downstream
pipe (``tracelab normalize big.log --parallel | cat``) would never end. On Linux the kernel
kills the child when the parent dies (``PR_SET_PDEATHSIG``, even after SIGKILL of the parent);
everywhere, the child also checks its parent's pid whenever it waits on it.

Example (in the child)::

    from tracelab.ingest.lifeline import die_with_parent, put_while_parent_lives

    die_with_parent(parent_pid)
    put_while_parent_lives(queue, item, parent_pid)
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import queue as queue_module
import signal
import sys
from typing import Any

__all__ = ["die_with_parent", "parent_gone", "put_while_parent_lives"]

_PR_SET_PDEATHSIG = 1


def parent_gone(parent: int) -> bool:
    """Whether the process with pid ``parent`` is no longer this process's parent.

    Example: ``parent_gone(os.getppid())`` -> ``False``
    """
    return os.getppid() != parent


def die_with_parent(parent: int) -> None:
    """Ask the kernel to SIGKILL this process when its parent dies; exit now if it already has.

    Linux only (elsewhere the pid checks of :func:`put_while_parent_lives` remain).

    Example: ``die_with_parent(parent_pid)``
    """
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    if parent_gone(parent):  # died before the request took effect
        os._exit(1)


def put_while_parent_lives(queue: Any, item: Any, parent: int, poll: float = 1.0) -> None:
    """``queue.put(item)``, but exit at once when the parent dies while the queue is full.

    Example: ``put_while_parent_lives(q, batch, parent_pid)``
    """
    while True:
        try:
            queue.put(item, timeout=poll)
            return
        except queue_module.Full:
            if parent_gone(parent):
                os._exit(1)
