"""File-backed images: inputs the sidecar read from a file on this machine
(`POST /v1/images/file`), kept as a reference to that file instead of a second copy of
their pixels.

A reference is `<id[:2]>/<id>.ref` in the image store's folder: the file's absolute
path, its size and modification time (ns) when it was read, and the image's shape, as
JSON, written atomically and fsynced, so a queued job's image survives a crash as an
uploaded one does. The decoded pixels are held in memory while they are likely to be
needed: until `release` (the scheduler's, when the image's last unfinished job ends),
within `held_budget` bytes (least recently used dropped first). Held pixels are read
only and handed out as they are, never copied. When they are not held they are
decoded from the file again (`imaging.sources`, as when first read) and checked
against the id. A file that is gone, not the same size, or of another modification
time makes the image missing, as an evicted upload is, and its reference is removed.

References are read when first asked for; at start only the newest `MAX_REFS` are
kept. They take no part in the store's size limit (a few hundred bytes each).
"""

from __future__ import annotations

import logging
import os
import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np
from pydantic import Field, ValidationError

from ..errors import ApiError, OutOfMemory
from ..imaging.pixels import Limits
from ..imaging.sources import FileState, file_state, read_image_file
from ..schema import Model
from .atomic import atomic_write
from .image_file import ID_PATTERN, StoredImage
from .keys import image_id
from .usage import REF_SUFFIX

log = logging.getLogger("sidecar.cache.images")  # one log for the store

DEFAULT_HELD_BUDGET = 1 << 30  # bytes of decoded file-backed pixels held in memory
MAX_REFS = 20_000  # references kept at start, the newest
_REF_MAX_BYTES = 16 * 1024
_ANY_SIZE = Limits(max_megapixels=1e9, max_side=10**9)  # checked when first read


class FileRef(Model):
    """A reference's record on disk."""

    path: str = Field(min_length=1)
    size: int = Field(ge=0)
    mtime_ns: int
    width: int = Field(ge=1)
    height: int = Field(ge=1)
    channels: int = Field(ge=3, le=4)
    depth: int

    @property
    def state(self) -> FileState:
        return FileState(self.size, self.mtime_ns)

    def info(self, key: str) -> StoredImage:
        return StoredImage(key, self.width, self.height, self.channels, self.depth)


class FileRefs:
    """The image store's file-backed images (see the module)."""

    def __init__(self, root: Path, held_budget: int = DEFAULT_HELD_BUDGET) -> None:
        self.root = root
        self._lock = threading.Lock()
        self._refs: dict[str, FileRef] = {}  # read so far
        self._held: OrderedDict[str, np.ndarray] = OrderedDict()
        self._held_bytes = 0
        self._budget = held_budget
        _prune(root, MAX_REFS)

    def path_for(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}{REF_SUFFIX}"

    def add(self, key: str, path: Path, pixels: np.ndarray, state: FileState) -> bool:
        """Reference `path` for the image `key` (its `pixels`, read in `state`) and hold
        the pixels; whether the reference is new."""
        height, width, channels = pixels.shape
        depth = pixels.dtype.itemsize * 8
        ref = FileRef(
            path=str(path),
            size=state.size,
            mtime_ns=state.mtime_ns,
            width=width,
            height=height,
            channels=channels,
            depth=depth,
        )
        known = self.ref(key)
        if known != ref:
            try:
                atomic_write(self.path_for(key), [ref.model_dump_json().encode()])
            except OSError as exc:  # disk full: known for this run only
                log.warning("could not store the reference of image %s: %s", key, exc)
            with self._lock:
                self._refs[key] = ref
        self.hold(key, pixels)
        return known is None

    def ref(self, key: str) -> FileRef | None:
        """The reference of `key` while its file is unchanged; None otherwise (a stale
        reference is removed)."""
        if not ID_PATTERN.match(key):
            return None
        with self._lock:
            ref = self._refs.get(key)
        if ref is None:
            ref = self._read(key)
            if ref is None:
                return None
        if file_state(Path(ref.path)) != ref.state:
            self.forget(key)
            return None
        return ref

    def info(self, key: str) -> StoredImage | None:
        ref = self.ref(key)
        return ref.info(key) if ref is not None else None

    def held(self, key: str) -> np.ndarray | None:
        """The pixels of `key` if they are held (read only: never written to)."""
        with self._lock:
            pixels = self._held.get(key)
            if pixels is not None:
                self._held.move_to_end(key)
            return pixels

    def load(self, key: str) -> np.ndarray | None:
        """The pixels of `key`: held, or decoded from the file again and checked; None
        when the image is not file-backed or its file changed."""
        pixels = self.held(key)
        if pixels is not None:
            return pixels
        ref = self.ref(key)
        if ref is None:
            return None
        try:
            pixels, state = read_image_file(Path(ref.path), _ANY_SIZE)
        except OutOfMemory as exc:
            raise MemoryError(exc.message) from exc
        except ApiError as exc:  # gone, unreadable, or no longer an image we read
            log.info("file-backed image %s is gone: %s", key, exc.message)
            self.forget(key)
            return None
        if state != ref.state or image_id(pixels) != key:
            self.forget(key)
            return None
        self.hold(key, pixels)
        return pixels

    def hold(self, key: str, pixels: np.ndarray) -> None:
        pixels.flags.writeable = False  # handed out as they are
        with self._lock:
            self._drop_held(key)
            if pixels.nbytes > self._budget:
                return
            self._held[key] = pixels
            self._held_bytes += pixels.nbytes
            while self._held_bytes > self._budget:
                self._drop_held(next(iter(self._held)))

    def release(self, key: str) -> None:
        """The held pixels of `key` are no longer needed in memory."""
        with self._lock:
            self._drop_held(key)

    def forget(self, key: str) -> None:
        """`key` is no longer file-backed: its file changed or went."""
        with self._lock:
            self._refs.pop(key, None)
            self._drop_held(key)
        try:
            self.path_for(key).unlink(missing_ok=True)
        except OSError as exc:
            log.warning("could not remove the reference of image %s: %s", key, exc)

    def _drop_held(self, key: str) -> None:
        pixels = self._held.pop(key, None)
        if pixels is not None:
            self._held_bytes -= pixels.nbytes

    def _read(self, key: str) -> FileRef | None:
        path = self.path_for(key)
        try:
            with path.open("rb") as file:
                raw = file.read(_REF_MAX_BYTES + 1)
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as exc:
            log.warning("could not read the reference of image %s: %s", key, exc)
            return None
        try:
            if len(raw) > _REF_MAX_BYTES:
                raise ValueError("too long")
            ref = FileRef.model_validate_json(raw)
        except (ValidationError, ValueError):  # damaged or foreign: a miss, removed
            path.unlink(missing_ok=True)
            return None
        with self._lock:
            self._refs[key] = ref
        return ref


def _prune(root: Path, keep: int) -> None:
    """Remove all but the newest `keep` references (by modification time)."""
    found = []
    for path in root.glob(f"??/*{REF_SUFFIX}"):
        try:
            found.append((path.stat().st_mtime_ns, path))
        except OSError:
            continue
    if len(found) <= keep:
        return
    found.sort()
    for _, path in found[: len(found) - keep]:
        try:
            os.unlink(path)
        except OSError:
            pass
