"""Stage results keyed by content: the image id, the stage's version and its
parameters. A second Apply on the same pixels skips the landmarks, the skin mask and
the op's fields. Two tiers: memory (LRU within a byte budget) and, for values that
come with a codec, disk (`DiskTier`: arrays in safetensors, checksummed, atomic,
size-capped), which survives restarts. Nothing is ever pickled.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

import blake3
import numpy as np

from .disk import DiskTier

T = TypeVar("T")
DEFAULT_BUDGET = 1 << 30


def stage_key(*parts: object) -> str:
    material = "\x1f".join(str(part) for part in parts).encode()
    return blake3.blake3(material).hexdigest()


def nbytes_of(value: Any) -> int:
    """Bytes held by arrays in a value (arrays, tuples/lists/dicts of them, objects
    with a __dict__), plus a small constant for the rest."""
    if isinstance(value, np.ndarray):
        return value.nbytes
    if isinstance(value, list | tuple):
        return 64 + sum(nbytes_of(v) for v in value)
    if isinstance(value, dict):
        return 64 + sum(nbytes_of(v) for v in value.values())
    if hasattr(value, "__dict__"):
        return nbytes_of(vars(value))
    if hasattr(value, "__dataclass_fields__"):
        return 64 + sum(nbytes_of(getattr(value, f)) for f in value.__dataclass_fields__)
    return 64


class Codec(Protocol[T]):
    """How a stage's value goes to disk: named arrays plus JSON-able metadata."""

    def encode(self, value: T) -> tuple[dict[str, np.ndarray], dict]: ...

    def decode(self, arrays: dict[str, np.ndarray], meta: dict) -> T: ...


class StageCache:
    def __init__(self, budget_bytes: int = DEFAULT_BUDGET, disk: DiskTier | None = None) -> None:
        self._budget = budget_bytes
        self.disk = disk
        self.disk_hits = 0
        self._lock = threading.Lock()
        self._items: OrderedDict[str, tuple[Any, int]] = OrderedDict()
        self._used = 0
        self.hits = 0
        self.misses = 0

    def get(self, key: str) -> Any | None:
        with self._lock:
            item = self._items.get(key)
            if item is None:
                self.misses += 1
                return None
            self._items.move_to_end(key)
            self.hits += 1
            return item[0]

    def put(self, key: str, value: Any) -> None:
        size = nbytes_of(value)
        if size > self._budget:
            return
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._used -= old[1]
            self._items[key] = (value, size)
            self._used += size
            while self._used > self._budget:
                _, (_, dropped) = self._items.popitem(last=False)
                self._used -= dropped

    def get_or_compute(
        self, key: str, compute: Callable[[], T], codec: Codec[T] | None = None
    ) -> T:
        value = self.get(key)
        if value is not None:
            return value
        if codec is not None and self.disk is not None:
            stored = self.disk.get(key)
            if stored is not None:
                try:
                    value = codec.decode(*stored)
                except (KeyError, ValueError, TypeError, IndexError):
                    value = None  # an older layout: compute it again
                if value is not None:
                    self.disk_hits += 1
                    self.put(key, value)
                    return value
        value = compute()
        self.put(key, value)
        if codec is not None and self.disk is not None:
            self.disk.put(key, *codec.encode(value))
        return value

    @property
    def used_bytes(self) -> int:
        return self._used

    def close(self) -> None:
        """Finish the disk writes still behind (a clean shutdown loses nothing)."""
        if self.disk is not None:
            self.disk.close()

    def __contains__(self, key: str) -> bool:
        with self._lock:
            return key in self._items
