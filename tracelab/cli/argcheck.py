"""Checks of command-line values that argparse's types let through: empty text, NaN, negatives.

Each raises :class:`~tracelab.errors.UsageError` with one line naming the option; the CLI prints
it and exits 2. An empty ``--bootstrap ""`` or ``--group ""`` must never fall back to a default
silently (that joins a default group on a default broker), and ``--until-idle nan`` would never
idle.

Example::

    from tracelab.cli.argcheck import check_seconds, check_text

    check_text("--group", "")        # UsageError: --group must not be empty
    check_seconds("--until-idle", float("nan"))  # UsageError: ... a number of seconds >= 0
"""

from __future__ import annotations

import math

from tracelab.errors import UsageError

__all__ = ["check_count", "check_seconds", "check_text"]


def check_text(option: str, value: str | None) -> str | None:
    """``value`` unless it was given but is empty or only whitespace (None: not given).

    Example: ``check_text("--topic", "raw-logs")`` -> ``'raw-logs'``
    """
    if value is not None and not value.strip():
        raise UsageError(f"{option} must not be empty")
    return value


def check_seconds(option: str, value: float | None) -> float | None:
    """``value`` if it is a finite number of seconds >= 0 (None: not given).

    Example: ``check_seconds("--until-idle", 5.0)`` -> ``5.0``
    """
    if value is not None and not (math.isfinite(value) and value >= 0):
        raise UsageError(f"{option} must be a number of seconds >= 0, got {value}")
    return value


def check_count(option: str, value: int | None, minimum: int = 1) -> int | None:
    """``value`` if it is at least ``minimum`` (None: not given).

    Example: ``check_count("--batch-size", 100)`` -> ``100``
    """
    if value is not None and value < minimum:
        raise UsageError(f"{option} must be at least {minimum}, got {value}")
    return value
