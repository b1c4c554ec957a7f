"""The content-addressed image store.

One file per image, `images/<id[:2]>/<id>.img`: a 32-byte header (magic, width,
height, channels, depth) and the canonical pixel bytes. Files are written atomically
and checked on read against their own id, so a damaged or foreign file in the
folder is reported missing and removed, never served.

Writes are behind: `put` returns once the pixels are hashed and held in memory, and
one writer thread persists them in order. Until then `has` and `load` serve the
in-memory copy. Pending bytes are bounded (`put` waits when over budget), `flush`
waits for the disk, and `close` flushes. A crash before a write finishes loses
only that copy: the client still holds the pixels and `HEAD` tells it to re-send.
A write that fails (disk full) keeps the image in memory for the rest of the run,
up to a budget (oldest dropped first), so an accepted upload or a finished result
stays servable.
"""

from __future__ import annotations

import logging
import re
import struct
import threading
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..imaging.pixels import DTYPES, raw_nbytes
from .atomic import atomic_write, remove_stale_temps
from .keys import image_id

log = logging.getLogger(__name__)

_MAGIC = b"RTIMG\x00\x01\x00"
_HEADER = struct.Struct("<8sIIBB14x")  # 32 bytes
_ID = re.compile(r"^[0-9a-f]{64}$")
DEFAULT_PENDING_BUDGET = 2 << 30  # bytes of pixels awaiting their disk write
DEFAULT_UNSAVED_BUDGET = 1 << 30  # bytes of pixels kept in memory after a failed write


@dataclass(frozen=True)
class StoredImage:
    image_id: str
    width: int
    height: int
    channels: int
    depth: int


class ImageStore:
    def __init__(
        self,
        root: Path,
        *,
        pending_budget: int = DEFAULT_PENDING_BUDGET,
        unsaved_budget: int = DEFAULT_UNSAVED_BUDGET,
    ) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        remove_stale_temps(self.root)
        self._budget = pending_budget
        self._changed = threading.Condition()
        self._pending: dict[str, tuple[StoredImage, np.ndarray]] = {}
        self._pending_bytes = 0
        self._unsaved_budget = unsaved_budget
        self._unsaved: OrderedDict[str, tuple[StoredImage, np.ndarray]] = OrderedDict()
        self._unsaved_bytes = 0
        self._after_write: dict[str, list[Callable[[], None]]] = {}
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="image-writer")

    def path_for(self, key: str) -> Path:
        if not _ID.match(key):
            raise ValueError("not an image id")
        return self.root / key[:2] / f"{key}.img"

    def has(self, key: str) -> bool:
        if not _ID.match(key):
            return False
        with self._changed:
            if key in self._pending or key in self._unsaved:
                return True
        return self.path_for(key).is_file()

    def put(
        self,
        pixels: np.ndarray,
        key: str | None = None,
        *,
        on_released: Callable[[], None] | None = None,
    ) -> tuple[StoredImage, bool]:
        """Store canonical pixels; returns their metadata and whether they were new.
        The disk write happens behind; when the pixels were new, `on_released` is
        called once the store holds no reference to them (until then they must not
        change)."""
        height, width, channels = pixels.shape
        key = key or image_id(pixels)
        info = StoredImage(key, width, height, channels, pixels.dtype.itemsize * 8)
        with self._changed:
            if key in self._pending or key in self._unsaved or self.path_for(key).is_file():
                return info, False
            while self._pending and self._pending_bytes + pixels.nbytes > self._budget:
                self._changed.wait()
            self._pending[key] = (info, pixels)
            self._pending_bytes += pixels.nbytes
        try:
            self._writer.submit(self._persist, key, on_released)
        except RuntimeError:  # closed: nothing will write it
            self._forget(key)
            raise
        return info, True

    def writing(self, key: str) -> bool:
        """Whether the write of `key` is still behind."""
        with self._changed:
            return key in self._pending

    def wait_written(self, key: str) -> None:
        """Wait until the write behind `put` of `key` has finished (or failed)."""
        with self._changed:
            self._changed.wait_for(lambda: key not in self._pending)

    def after_write(self, key: str, callback: Callable[[], None]) -> None:
        """Call `callback` once `key` is on disk: at once if it is, after its write if
        that is still behind, never if the write failed."""
        with self._changed:
            if key in self._unsaved:
                return
            if key in self._pending:
                self._after_write.setdefault(key, []).append(callback)
                return
        callback()

    def flush(self) -> None:
        """Wait until every accepted image is on disk (or its write has failed)."""
        marker: Future = self._writer.submit(lambda: None)
        marker.result()

    def close(self) -> None:
        self._writer.shutdown(wait=True)

    def info(self, key: str) -> StoredImage | None:
        with self._changed:
            held = self._pending.get(key) or self._unsaved.get(key)
            if held is not None:
                return held[0]
        path = self.path_for(key)
        try:
            with path.open("rb") as file:
                raw = file.read(_HEADER.size)
                size = path.stat().st_size
        except FileNotFoundError:
            return None
        parsed = self._parse_header(key, raw, size)
        if parsed is None:
            path.unlink(missing_ok=True)
        return parsed

    def load(self, key: str, *, verify: bool = True) -> np.ndarray | None:
        """The canonical pixels, or None if absent or damaged (then the file is removed)."""
        with self._changed:
            held = self._pending.get(key) or self._unsaved.get(key)
            if held is not None:  # a copy: a pending array's memory is recycled later
                return held[1].copy()
        info = self.info(key)
        if info is None:
            return None
        path = self.path_for(key)
        pixels = np.fromfile(path, dtype=DTYPES[info.depth], offset=_HEADER.size)
        pixels = pixels.reshape(info.height, info.width, info.channels)
        if verify and image_id(pixels) != key:
            path.unlink(missing_ok=True)
            return None
        return pixels

    def _persist(self, key: str, on_released: Callable[[], None] | None) -> None:
        info, pixels = self._pending[key]
        header = _HEADER.pack(_MAGIC, info.width, info.height, info.channels, info.depth)
        written = False
        try:
            atomic_write(self.path_for(key), [header, memoryview(pixels).cast("B")])
            written = True
        except OSError as exc:  # disk full, permissions: kept in memory for this run
            log.warning("could not store image %s (kept in memory for now): %s", key, exc)
            self._keep_unsaved(info, pixels.copy() if on_released is not None else pixels)
        finally:
            del pixels
            callbacks = self._forget(key)
            if on_released is not None:
                on_released()
        for callback in callbacks if written else ():
            try:
                callback()
            except Exception:  # a caller's bug must not stop the writer
                log.exception("a callback after writing image %s failed", key)

    def _keep_unsaved(self, info: StoredImage, pixels: np.ndarray) -> None:
        with self._changed:
            self._unsaved[info.image_id] = (info, pixels)
            self._unsaved_bytes += pixels.nbytes
            while self._unsaved_bytes > self._unsaved_budget:
                _, (_, dropped) = self._unsaved.popitem(last=False)
                self._unsaved_bytes -= dropped.nbytes

    def _forget(self, key: str) -> list[Callable[[], None]]:
        with self._changed:
            _, pixels = self._pending.pop(key)
            self._pending_bytes -= pixels.nbytes
            self._changed.notify_all()
            return self._after_write.pop(key, [])

    @staticmethod
    def _parse_header(key: str, raw: bytes, size: int) -> StoredImage | None:
        if len(raw) != _HEADER.size:
            return None
        magic, width, height, channels, depth = _HEADER.unpack(raw)
        if magic != _MAGIC or channels not in (3, 4) or depth not in DTYPES:
            return None
        if not width or not height:
            return None
        if size != _HEADER.size + raw_nbytes(width, height, channels, depth):
            return None
        return StoredImage(key, width, height, channels, depth)
