"""The per-message fault boundary: what turns one bad message into a quarantine row, not a crash.

Two places call it. :func:`tracelab.ingest.pipeline.prepare` quarantines a message that is too large
(without parsing it) or whose parsing raised anything at all; the store quarantines a message
whose *row* cannot be stored (a lone surrogate escape that passed ``json.loads`` and cannot be
encoded as UTF-8, a value SQLite refuses) after making its text storable has not helped. Only
failures of the database itself (locked, full, corrupt, read-only, I/O) stop a run.

Example::

    from tracelab.ingest.boundary import storable_text

    storable_text("sur\\ud800")  # 'sur\\\\ud800': the escape as it was written in the JSON
"""

from __future__ import annotations

import sqlite3
from typing import Any, Final

import apsw

__all__ = [
    "DEFAULT_MAX_MESSAGE_BYTES",
    "error_reason",
    "is_database_failure",
    "raw_bytes",
    "storable",
    "storable_text",
    "too_large_reason",
]

#: Messages longer than this (bytes, line ending trimmed) are quarantined unparsed.
DEFAULT_MAX_MESSAGE_BYTES: Final = 1 << 20

# SQLite's primary result codes that mean the database (not one row) is the problem.
_DATABASE_CODES: Final = (
    "SQLITE_BUSY",
    "SQLITE_LOCKED",
    "SQLITE_FULL",
    "SQLITE_CORRUPT",
    "SQLITE_NOTADB",
    "SQLITE_READONLY",
    "SQLITE_IOERR",
    "SQLITE_CANTOPEN",
    "SQLITE_NOMEM",
    "SQLITE_PROTOCOL",
    "SQLITE_PERM",
    "SQLITE_INTERRUPT",
    "SQLITE_ABORT",
    "SQLITE_SCHEMA",
    "SQLITE_ERROR",  # SQL logic error: the schema is not what it should be
)


# The store's APSW errors that concern one row's values (as SQLITE_CONSTRAINT, _TOOBIG, _MISMATCH,
# _RANGE, or a value APSW cannot bind); any other APSW error is the database's or the connection's.
_ROW_ERRORS: Final = (
    apsw.ConstraintError,
    apsw.TooBigError,
    apsw.MismatchError,
    apsw.RangeError,
    apsw.BindingsError,
)


def is_database_failure(exc: BaseException) -> bool:
    """Whether ``exc`` is the database failing (stop the run) rather than one message's data.

    Takes the errors of the store's connection (APSW) and of Python's ``sqlite3``.

    Example: ``is_database_failure(sqlite3.OperationalError("database is locked"))`` -> ``True``
    """
    if not isinstance(exc, Exception):
        return True  # KeyboardInterrupt, SystemExit, ...: never swallowed
    if isinstance(exc, MemoryError):
        return True
    if isinstance(exc, apsw.Error):  # the store's connection (APSW)
        return not isinstance(exc, _ROW_ERRORS)
    if not isinstance(exc, sqlite3.Error):
        return False
    name = getattr(exc, "sqlite_errorname", None) or ""
    if name:  # constraint, too big, mismatch, range: one row's values
        return name.startswith(_DATABASE_CODES)
    # Without a result code: binding a value (ProgrammingError, InterfaceError) is one row's
    # problem; an operational or internal error is the database's.
    return (
        isinstance(
            exc, sqlite3.OperationalError | sqlite3.InternalError | sqlite3.NotSupportedError
        )
        or type(exc) is sqlite3.DatabaseError
    )


def too_large_reason(size: int, limit: int) -> str:
    """The quarantine reason of a message over the size cap.

    Example: ``too_large_reason(2_000_000, 1_048_576)`` -> ``'too large: 2000000 bytes ...'``
    """
    return f"too large: {size} bytes (limit {limit}; --max-message-bytes)"


def error_reason(exc: BaseException, stage: str) -> str:
    """A quarantine reason naming the exception (ASCII, short, always storable).

    Example: ``error_reason(ValueError("x"), "storing")``
    -> ``'error while storing: ValueError: x'``
    """
    detail = str(exc).encode("ascii", "backslashreplace").decode("ascii")
    if len(detail) > 200:
        detail = detail[:197] + "..."
    return f"error while {stage}: {type(exc).__name__}: {detail}"


def raw_bytes(value: Any) -> bytes:
    """The message's bytes for quarantine, whatever type it came as (None is empty).

    Example: ``raw_bytes("a\\ud800")`` -> ``b'a\\\\ud800'``
    """
    if value is None:
        return b""
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    return str(value).encode("utf-8", "backslashreplace")


def storable_text(text: str) -> str:
    """``text`` with every lone surrogate written as its ``\\uXXXX`` escape (valid UTF-8).

    JSON allows ``"\\ud800"``; Python decodes it to a lone surrogate, which UTF-8 (and so
    SQLite) cannot hold. The escape keeps what was logged, readable and distinct.

    Example: ``storable_text("a\\udc80b")`` -> ``'a\\\\udc80b'``
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def storable(parsed: tuple[Any, ...]) -> tuple[Any, ...]:
    """A parsed tuple with every text field made storable (see :func:`storable_text`).

    Example: ``storable((0, "orders", "sur\\ud800"))[2]`` -> ``'sur\\\\ud800'``
    """
    return tuple(storable_text(v) if type(v) is str else v for v in parsed)
