"""Stage results keyed by content: the image id, the stage's version and its
parameters. A second Apply on the same pixels skips the landmarks, the skin mask and
the op's fields. Two tiers: memory (LRU within a byte budget) and, for values that
come with a codec, disk (`DiskTier`: arrays in safetensors, checksummed, atomic,
size-capped), which survives restarts. Nothing is ever pickled.

A job of a batch keeps nothing in memory after it ends: the scheduler opens a
`StageScope` on the worker thread for such a job, every entry the job uses there (a
hit or a put, in any stage cache) is noted, and closing the scope drops those entries
from the memory tier; the disk tier keeps them, so a later job on the same image
still starts from them. The panel's jobs (priority `active`, and its precompute)
open none: their entries stay in memory for the next Apply. Work done ahead of an image's jobs (the
batch's analysis in the imaging pool) is noted the same way and dropped once the
image's jobs have ended (`StageScopes`).
"""

from __future__ import annotations

import contextlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextvars import ContextVar, Token
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


class StageScope:
    """The stage entries a job uses while it runs on one thread, dropped from memory
    when it ends: `StageScope.open()` on that thread, `close()` there afterwards."""

    def __init__(self) -> None:
        self._used: dict[tuple[int, str], tuple[StageCache, str]] = {}
        self._token: Token | None = None

    @classmethod
    def open(cls) -> StageScope:
        scope = cls()
        scope._token = _SCOPE.set(scope)
        return scope

    def note(self, cache: StageCache, key: str) -> None:
        self._used[(id(cache), key)] = (cache, key)

    def close(self) -> None:
        """Stop noting (on the thread that opened it) and drop what was noted."""
        self.detach()
        used, self._used = self._used, {}
        for cache, key in used.values():
            cache.forget(key)

    def detach(self) -> None:
        """Stop noting, keeping what was noted in memory until `close`."""
        if self._token is not None:
            _SCOPE.reset(self._token)
            self._token = None


class StageScopes:
    """The scopes of the jobs that keep nothing in memory after they end (`begin` and
    `end` on the thread that runs the job), and of work done ahead of an image's jobs
    (`ahead`, e.g. a batch's analysis in the imaging pool before its job is queued):
    kept until `drop(image_id)`, when the image's jobs have ended."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: dict[str, StageScope] = {}
        self._ahead: dict[str, list[StageScope]] = {}

    def begin(self, job_id: str) -> None:
        self._running[job_id] = StageScope.open()

    def end(self, job_id: str) -> None:
        scope = self._running.pop(job_id, None)
        if scope is not None:
            scope.close()

    @contextlib.contextmanager
    def ahead(self, image_id: str) -> Iterator[None]:
        scope = StageScope.open()
        try:
            yield
        finally:
            scope.detach()
            with self._lock:
                self._ahead.setdefault(image_id, []).append(scope)

    def drop(self, image_id: str | None) -> None:
        with self._lock:
            scopes = self._ahead.pop(image_id, []) if image_id is not None else []
        for scope in scopes:
            scope.close()


# the scope of the job running on this thread, if any (per thread, never shared)
_SCOPE: ContextVar[StageScope | None] = ContextVar("stage_scope", default=None)


def _note(cache: StageCache, key: str) -> None:
    scope = _SCOPE.get()
    if scope is not None:
        scope.note(cache, key)


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
        _note(self, key)
        return item[0]

    def put(self, key: str, value: Any) -> None:
        size = nbytes_of(value)
        if size > self._budget:
            return
        _note(self, key)
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

    def forget(self, key: str) -> None:
        """Drop `key` from the memory tier (the disk tier keeps it)."""
        with self._lock:
            item = self._items.pop(key, None)
            if item is not None:
                self._used -= item[1]

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
