"""A ``with`` block that calls ``close()`` on the way out, for sinks and stores alike."""

from __future__ import annotations

from types import TracebackType
from typing import Self

__all__ = ["ClosesOnExit"]


class ClosesOnExit:
    """Mixin: ``with obj:`` returns ``obj`` and calls ``obj.close()`` however the block ends.

    Example:
        with SQLiteStore("x.db") as store:
            store.summary()
    """

    __slots__ = ()

    def close(self) -> None:
        """Release resources (subclasses override; idempotent)."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
