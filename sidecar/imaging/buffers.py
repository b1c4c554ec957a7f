"""Reusable image-sized buffers: upload bodies, a job's input, a job's result.

A 24 MP 16-bit image is 144 MB. Faulting in that much fresh memory costs more than
filling it (measured here: ~0.5 GB/s for first-touch pages against ~10 GB/s for a copy
into warm ones), and glibc hands every allocation of over 32 MB straight back to the
system when it is freed, so every new full-size array would pay again. The pool keeps
the buffers of finished uploads, inputs and results for the next one, up to a bound on
idle memory; the same few buffers then go round: an upload's body becomes the stored
image, a job reads its input into one, renders its result into another, and each comes
back here once nothing refers to it.

An array from `array()` views a pooled buffer; `give_array()` takes the buffer back
only when no other view of it is alive (CPython's reference counts say so), so a
buffer is never handed out twice while someone may still read it.
"""

from __future__ import annotations

import sys
import threading

import numpy as np

DEFAULT_MAX_IDLE_BYTES = 1 << 30
DEFAULT_MAX_IDLE = 2
SMALLEST = 4 << 20  # arrays under this are left to malloc: pooling them gains nothing


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

    def array(self, shape: tuple[int, ...], dtype) -> np.ndarray:
        """An uninitialised C-contiguous array on a pooled buffer (a plain one when
        small)."""
        dtype = np.dtype(dtype)
        nbytes = int(np.prod(shape)) * dtype.itemsize
        if nbytes < SMALLEST:
            return np.empty(shape, dtype)
        root = np.frombuffer(self.take(nbytes), np.uint8)
        return root[:nbytes].view(dtype).reshape(shape)

    def give_array(self, array: np.ndarray) -> bool:
        """Take back the buffer under `array` (from `array()` or an upload body), which
        the caller no longer uses; True when it was taken. Refused, and left to the
        garbage collector, when the array is not on a pooled buffer or another view of
        it, or another reference to this array, is alive."""
        root = array.base
        if not isinstance(root, np.ndarray) or not isinstance(root.base, memoryview):
            return False
        buffer = root.base.obj
        if not isinstance(buffer, bytearray):
            return False
        # references to `array`: the caller's, this argument and getrefcount's own; to
        # `root`: `array.base`, the local name and getrefcount's own
        if sys.getrefcount(array) > 3 or sys.getrefcount(root) > 3:
            return False
        self.give(buffer)
        return True

    @property
    def idle_bytes(self) -> int:
        return sum(len(b) for b in self._idle)
