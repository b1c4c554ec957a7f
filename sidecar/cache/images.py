"""The content-addressed image store.

One file per image, `images/<id[:2]>/<id>.img`: a 32-byte header (magic, width,
height, channels, depth) and the canonical pixel bytes. Files are written atomically
and checked against their own id, so a damaged or foreign file in the folder is
reported missing and removed, never served. `load` hashes the pixels on every read.
`open_pixels` (the raw result, sent from the file as it is) hashes a file once: a
file this store wrote, or has checked since, is trusted while it is the same file on
disk (device, inode, size and modification time as recorded after the write, the
check or the store's own touch); a file found at start, or changed by anyone else, is
checked first. What this cannot see: bits that rot on the disk itself, and a write in
place that keeps the size and lands within the same clock tick as the store's last
touch of the file (file times are coarse); the next start checks such a file again.

Writes are behind: `put` returns once the pixels are hashed and held in memory, and
one writer thread persists them in order. Until then `has` and `load` serve the
in-memory copy. Pending bytes are bounded (`put` waits when over budget), `flush`
waits for the disk, and `close` flushes. A crash before a write finishes loses
only that copy: the client still holds the pixels and `HEAD` tells it to re-send.
A write that fails (disk full) keeps the image in memory for the rest of the run,
up to a budget (oldest dropped first), so an accepted upload or a finished result
stays servable.

The files have a size limit (`max_bytes`): a write that would pass it first removes
the least recently used files (a write, a load or a `has` is a use; the order lives
in memory and in the files' modification times, so it survives a restart). Never
removed: a file being read, an image still being written (it is not on disk yet),
and the images `set_in_use` names (the inputs of queued and running jobs). When those
alone pass the limit the write goes ahead and the folder is over it until they are
no longer needed. A removed image is simply missing: `has` is False, `load` None.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import stat
import struct
import threading
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, TypeVar

import blake3
import numpy as np

from ..imaging.pixels import DTYPES, raw_nbytes
from .atomic import atomic_write, remove_stale_temps
from .keys import image_id, image_key_header
from .usage import SUFFIX, default_limit, stored_files

_T = TypeVar("_T")
log = logging.getLogger(__name__)

_MAGIC = b"RTIMG\x00\x01\x00"
_HEADER = struct.Struct("<8sIIBB14x")  # 32 bytes
_ID = re.compile(r"^[0-9a-f]{64}$")
DEFAULT_PENDING_BUDGET = 2 << 30  # bytes of pixels awaiting their disk write
DEFAULT_UNSAVED_BUDGET = 1 << 30  # bytes of pixels kept in memory after a failed write
_MISSING = (FileNotFoundError, NotADirectoryError)  # a miss, never an error
_CHECK_CHUNK = 16 << 20  # bytes read at a time when a file is checked once
# A file as it is on disk: device, inode, size, modification time (ns). Another write
# (in place or a new file renamed over it) changes it; the store's touch changes the
# time too, and records the new one.
_Signature = tuple[int, int, int, int]


def _signature(st: os.stat_result) -> _Signature:
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns


@dataclass(frozen=True)
class StoredImage:
    image_id: str
    width: int
    height: int
    channels: int
    depth: int

    @property
    def nbytes(self) -> int:
        return raw_nbytes(self.width, self.height, self.channels, self.depth)


class OpenImage:
    """A stored image's file, open and checked: its canonical pixel bytes are `size`
    bytes from `offset` of `file`, to be sent as they are. The store's limit leaves the
    file alone until `close` (a `with` block closes it)."""

    def __init__(
        self, info: StoredImage, file: BinaryIO, offset: int, release: Callable[[], None]
    ) -> None:
        self.info = info
        self.file = file
        self.offset = offset
        self.size = info.nbytes
        self._release: Callable[[], None] | None = release

    def close(self) -> None:
        release, self._release = self._release, None
        if release is None:
            return
        try:
            self.file.close()
        finally:
            release()

    def __enter__(self) -> OpenImage:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class ImageStore:
    def __init__(
        self,
        root: Path,
        *,
        max_bytes: int | None = None,
        pending_budget: int = DEFAULT_PENDING_BUDGET,
        unsaved_budget: int = DEFAULT_UNSAVED_BUDGET,
    ) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        remove_stale_temps(self.root)
        # files on disk, least recently used first; one lock orders uses and removals
        self._files_lock = threading.Lock()
        self._files: OrderedDict[str, int] = OrderedDict()
        self._used = 0
        for found in stored_files(self.root):
            self._files[found.key] = found.size
            self._used += found.size
        self.max_bytes = max_bytes if max_bytes is not None else default_limit(root, self._used)
        self._reading: Counter[str] = Counter()
        self._trusted: dict[str, _Signature] = {}  # files checked (or written) as they are
        self._in_use: Callable[[], Iterable[str | None]] = tuple
        self._budget = pending_budget
        self._changed = threading.Condition()
        self._pending: dict[str, tuple[StoredImage, np.ndarray]] = {}
        self._pending_bytes = 0
        self._unsaved_budget = unsaved_budget
        self._unsaved: OrderedDict[str, tuple[StoredImage, np.ndarray]] = OrderedDict()
        self._unsaved_bytes = 0
        self._settled: dict[str, list[Callable[[bool], None]]] = {}
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="image-writer")

    def path_for(self, key: str) -> Path:
        if not _ID.match(key):
            raise ValueError("not an image id")
        return self.root / key[:2] / f"{key}{SUFFIX}"

    def has(self, key: str) -> bool:
        """Whether the image is stored (a use: it moves to the end of the eviction order)."""
        if not _ID.match(key):
            return False
        with self._changed:
            if key in self._pending or key in self._unsaved:
                return True
        return self._touch(key)

    def set_in_use(self, images: Callable[[], Iterable[str | None]]) -> None:
        """`images()` names the images the limit must never remove (the inputs of queued
        and running jobs). It is called from the writer thread, with no lock held here."""
        self._in_use = images

    def usage(self) -> tuple[int, int]:
        """Bytes of image files on disk, and how many."""
        with self._files_lock:
            return self._used, len(self._files)

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
            if key in self._pending or key in self._unsaved or self._touch(key):
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

    def when_settled(self, key: str, callback: Callable[[bool], None]) -> None:
        """Call `callback(True)` once `key` is on disk (at once if it is), or
        `callback(False)` once it is known that it will not be (kept in memory only)."""
        with self._changed:
            if key in self._unsaved:
                saved = False
            elif key in self._pending:
                self._settled.setdefault(key, []).append(callback)
                return
            else:
                saved = True
        callback(saved)

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
        return self._open(key, lambda file: self._read_header(key, file))

    def load(self, key: str, *, verify: bool = True) -> np.ndarray | None:
        """The canonical pixels, or None if absent or damaged (then the file is removed)."""
        with self._changed:
            held = self._pending.get(key) or self._unsaved.get(key)
            if held is not None:  # a copy: a pending array's memory is recycled later
                return held[1].copy()
        release = self._hold(key)
        try:
            read = self._read(key)
        finally:
            release()
        if read is None:
            return None
        pixels, signature = read
        if verify:
            if image_id(pixels) != key:
                self._remove(key)
                return None
            self._trust(key, signature)
        self._touch(key)
        return pixels

    def open_pixels(self, key: str) -> OpenImage | None:
        """The stored file of `key`, open, its pixel bytes checked against the id (once
        per file: see the module's notes), to be sent as they are; the limit leaves the
        file alone until the `OpenImage` is closed. None when the image is held in
        memory only (a write still behind, or one that failed: `load` has it), missing,
        or damaged (then the file is removed)."""
        if not _ID.match(key):
            return None
        with self._changed:
            if key in self._pending or key in self._unsaved:
                return None
        release = self._hold(key)
        try:
            file = self.path_for(key).open("rb")
        except _MISSING:
            release()
            self._drop(key)
            return None
        except BaseException:
            release()
            raise
        try:
            info = self._read_header(key, file)
            signature = _signature(os.fstat(file.fileno()))
            with self._files_lock:
                trusted = self._trusted.get(key) == signature
            if not trusted:
                if not _pixels_match(key, info, file, _HEADER.size):
                    raise _Damaged
                self._trust(key, signature)
        except _Damaged:
            file.close()
            release()
            self._remove(key)
            return None
        except BaseException:
            file.close()
            release()
            raise
        self._touch(key)
        return OpenImage(info, file, _HEADER.size, release)

    def _hold(self, key: str) -> Callable[[], None]:
        """Mark `key` as being read (the limit leaves its file alone); returns the
        release, to be called once."""
        with self._files_lock:
            self._reading[key] += 1

        def release() -> None:
            with self._files_lock:
                self._reading[key] -= 1
                if not self._reading[key]:
                    del self._reading[key]

        return release

    def _trust(self, key: str, signature: _Signature) -> None:
        with self._files_lock:
            self._trusted[key] = signature

    def _read(self, key: str) -> tuple[np.ndarray, _Signature] | None:
        """One open file from header to last pixel: a removal meanwhile cannot tear it.
        With the pixels, the file as it was when opened."""

        def pixels_of(file) -> tuple[np.ndarray, _Signature] | None:
            info = self._read_header(key, file)
            signature = _signature(os.fstat(file.fileno()))
            count = info.width * info.height * info.channels
            pixels = np.fromfile(file, dtype=DTYPES[info.depth], count=count)
            if pixels.size != count:  # cut short since the header was read
                return None
            return pixels.reshape(info.height, info.width, info.channels), signature

        return self._open(key, pixels_of)

    def _open(self, key: str, read: Callable[[BinaryIO], _T]) -> _T | None:
        """`read` on the stored file of `key`: a missing file is a miss (and forgotten),
        a damaged one is a miss and removed."""
        try:
            with self.path_for(key).open("rb") as file:
                return read(file)
        except _MISSING:
            self._drop(key)
        except _Damaged:
            self._remove(key)
        return None

    def _read_header(self, key: str, file) -> StoredImage:
        raw = file.read(_HEADER.size)
        parsed = self._parse_header(key, raw, os.fstat(file.fileno()).st_size)
        if parsed is None:
            raise _Damaged
        return parsed

    # -- the size limit ----------------------------------------------------------------
    def _touch(self, key: str) -> bool:
        """Mark a file on disk just used; False when there is none."""
        path = self.path_for(key)
        with self._files_lock:
            trusted = self._trusted.pop(key, None)
            try:
                if trusted is not None and _signature(os.stat(path)) != trusted:
                    trusted = None  # changed on disk since it was checked
                os.utime(path)  # its place in the order after a restart
            except _MISSING:
                self._drop_locked(key)
                return False
            except OSError:
                pass  # a read-only folder: the order in memory still holds
            if trusted is not None:  # the same file: trusted with its new time
                with contextlib.suppress(OSError):
                    self._trusted[key] = _signature(os.stat(path))
            if key in self._files:
                self._files.move_to_end(key)
                return True
            try:  # a file the index does not know (made by another process)
                found = path.stat()
            except OSError:
                return False
            if not stat.S_ISREG(found.st_mode):
                return False
            self._files[key] = found.st_size
            self._used += found.st_size
            return True

    def _make_room(self, size: int) -> None:
        """Remove least recently used files until `size` more bytes fit the limit."""
        with self._files_lock:
            if self._used + size <= self.max_bytes:
                return
        try:
            keep = set(self._in_use())  # outside our locks: it takes the scheduler's
        except Exception:  # never guess: better over the limit than a job's input gone
            log.exception("cannot tell which images jobs need; nothing removed")
            return
        removed = freed = 0
        while True:
            with self._files_lock:
                if self._used + size <= self.max_bytes:
                    break
                victim = next(
                    (k for k in self._files if k not in keep and k not in self._reading), None
                )
                if victim is None:
                    log.warning(
                        "the image store passes its limit (%d bytes): what is left is in use",
                        self.max_bytes,
                    )
                    break
                try:
                    self.path_for(victim).unlink(missing_ok=True)
                except OSError as exc:  # e.g. open in another process (Windows)
                    log.warning("could not remove image %s: %s", victim, exc)
                    keep.add(victim)
                    continue
                freed += self._files[victim]
                self._drop_locked(victim)
                removed += 1
        if removed:
            log.info("image store limit: removed %d least recently used (%d bytes)", removed, freed)

    def _added(self, key: str, size: int) -> None:
        with self._files_lock:
            self._drop_locked(key)
            self._files[key] = size
            self._used += size
            with contextlib.suppress(OSError):  # written here from pixels of this id
                self._trusted[key] = _signature(os.stat(self.path_for(key)))

    def _remove(self, key: str) -> None:
        """A damaged file: deleted, and no longer counted."""
        with self._files_lock:
            self.path_for(key).unlink(missing_ok=True)
            self._drop_locked(key)

    def _drop(self, key: str) -> None:
        with self._files_lock:
            self._drop_locked(key)

    def _drop_locked(self, key: str) -> None:
        self._trusted.pop(key, None)
        size = self._files.pop(key, None)
        if size is not None:
            self._used -= size

    def _persist(self, key: str, on_released: Callable[[], None] | None) -> None:
        info, pixels = self._pending[key]
        header = _HEADER.pack(_MAGIC, info.width, info.height, info.channels, info.depth)
        written = False
        try:
            self._make_room(_HEADER.size + pixels.nbytes)
            atomic_write(self.path_for(key), [header, memoryview(pixels).cast("B")])
            self._added(key, _HEADER.size + pixels.nbytes)
            written = True
        except OSError as exc:  # disk full, permissions: kept in memory for this run
            log.warning("could not store image %s (kept in memory for now): %s", key, exc)
            self._keep_unsaved(info, pixels.copy() if on_released is not None else pixels)
        finally:
            del pixels
            settled = self._forget(key)
            if on_released is not None:
                on_released()
        for callback in settled:
            try:
                callback(written)
            except Exception:  # a caller's bug must not stop the writer
                log.exception("a callback after writing image %s failed", key)

    def _keep_unsaved(self, info: StoredImage, pixels: np.ndarray) -> None:
        with self._changed:
            self._unsaved[info.image_id] = (info, pixels)
            self._unsaved_bytes += pixels.nbytes
            while self._unsaved_bytes > self._unsaved_budget:
                _, (_, dropped) = self._unsaved.popitem(last=False)
                self._unsaved_bytes -= dropped.nbytes

    def _forget(self, key: str) -> list[Callable[[bool], None]]:
        """Drop `key` from the pending writes; the callbacks waiting on it."""
        with self._changed:
            _, pixels = self._pending.pop(key)
            self._pending_bytes -= pixels.nbytes
            self._changed.notify_all()
            return self._settled.pop(key, [])

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


def _pixels_match(key: str, info: StoredImage, file: BinaryIO, offset: int) -> bool:
    """Whether the pixel bytes of `file` from `offset` hash to `key` (the image id:
    keys.image_id of the same pixels), read a chunk at a time."""
    hasher = blake3.blake3(
        image_key_header(info.width, info.height, info.channels, info.depth),
        max_threads=blake3.blake3.AUTO,
    )
    buffer = memoryview(bytearray(min(_CHECK_CHUNK, info.nbytes)))
    file.seek(offset)
    left = info.nbytes
    while left:
        got = file.readinto(buffer[: min(len(buffer), left)])
        if not got:  # cut short since the header was read
            return False
        hasher.update(buffer[:got])
        left -= got
    return hasher.hexdigest() == key


class _Damaged(Exception):
    """A file whose header does not match its id or its size."""
