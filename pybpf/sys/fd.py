"""An object that owns one kernel file descriptor: maps, programs and links all are.

Closing is explicit (``close()`` or a ``with`` block) and idempotent; ``__del__`` is a safety net
only. A closed object refuses to hand out its fd, so a stale number is never passed to the kernel.
"""

from __future__ import annotations

import os


class FDObject:
    _fd: int = -1

    def _describe(self) -> str:
        """How a message names this object ("map 'events'")."""
        return type(self).__name__.lower()

    @property
    def fd(self) -> int:
        if self._fd < 0:
            raise ValueError(f"{self._describe()} is closed")
        return self._fd

    @property
    def closed(self) -> bool:
        return self._fd < 0

    def close(self) -> None:
        """Drop this fd. The kernel frees the object when no fd, pin or user is left."""
        fd, self._fd = self._fd, -1
        if fd >= 0:
            os.close(fd)

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        if getattr(self, "_fd", -1) >= 0:
            self.close()
