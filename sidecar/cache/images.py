"""The content-addressed image store.

One file per image, `images/<id[:2]>/<id>.img`: a 32-byte header (magic, width,
height, channels, depth) and the canonical pixel bytes. Files are written atomically
and checked against their own id, so a damaged or foreign file in the folder is
reported missing and removed, never served. `load` (a job's input) and `open_pixels`
(the raw result, sent from the file as it is) hash a file once: a
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

File-backed images (`register_file`: an input read from a file on this machine) are
not copied into the store: it keeps a reference to the file and holds the decoded
pixels in memory while they are needed (file_refs.py); `has`, `info` and `load` serve
them like any other image, until the file changes.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import BinaryIO, TypeVar

import numpy as np

from ..imaging.buffers import BufferPool
from ..imaging.pixels import DTYPES, Limits
from ..imaging.sources import read_image_file
from .atomic import atomic_write, remove_stale_temps
from .file_limit import MISSING, StoredFiles
from .file_refs import DEFAULT_HELD_BUDGET, FileRefs
from .image_file import (
    HEADER,
    ID_PATTERN,
    MAGIC,
    Damaged,
    OpenImage,
    Signature,
    StoredImage,
    parse_header,
    pixels_match,
    signature_of,
)
from .keys import image_id
from .result_file import ResultFile
from .usage import SUFFIX

_T = TypeVar("_T")
log = logging.getLogger(__name__)

DEFAULT_PENDING_BUDGET = 2 << 30  # bytes of pixels awaiting their disk write
DEFAULT_UNSAVED_BUDGET = 1 << 30  # bytes of pixels kept in memory after a failed write


class ImageStore(StoredFiles):
    def __init__(
        self,
        root: Path,
        *,
        max_bytes: int | None = None,
        pending_budget: int = DEFAULT_PENDING_BUDGET,
        unsaved_budget: int = DEFAULT_UNSAVED_BUDGET,
        held_budget: int = DEFAULT_HELD_BUDGET,
    ) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        remove_stale_temps(self.root)
        self._init_files(root, max_bytes)
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
        # image-sized buffers that go round: uploads, loaded inputs, results once written
        self.buffers = BufferPool()
        self._file_refs = FileRefs(root, held_budget)

    def path_for(self, key: str) -> Path:
        if not ID_PATTERN.match(key):
            raise ValueError("not an image id")
        return self.root / key[:2] / f"{key}{SUFFIX}"

    def has(self, key: str) -> bool:
        """Whether the image is stored (a use: it moves to the end of the eviction order)."""
        if not ID_PATTERN.match(key):
            return False
        with self._changed:
            if key in self._pending or key in self._unsaved:
                return True
        return self._touch(key) or self._file_refs.ref(key) is not None

    def register_file(
        self, path: Path, limits: Limits, max_bytes: int | None = None
    ) -> tuple[StoredImage, bool]:
        """The image file at `path` (absolute), decoded as an upload of it is, stored as
        a reference to the file with its pixels held in memory (no copy on disk);
        returns its metadata and whether it was new. Raises the ApiError a client is
        answered with (imaging.sources)."""
        pixels, state = read_image_file(path, limits, max_bytes)
        height, width, channels = pixels.shape
        key = image_id(pixels)
        info = StoredImage(key, width, height, channels, pixels.dtype.itemsize * 8)
        with self._changed:
            if key in self._pending or key in self._unsaved:
                return info, False
        if self._touch(key):  # a copy is stored already
            return info, False
        return info, self._file_refs.add(key, path, pixels, state)

    def release(self, key: str | None) -> None:
        """A file-backed image's pixels are no longer needed in memory (they are read
        from its file again when asked for)."""
        if key is not None:
            self._file_refs.release(key)

    def set_in_use(self, images: Callable[[], Iterable[str | None]]) -> None:
        """`images()` names the images the limit must never remove (the inputs of queued
        and running jobs). It is called from the writer thread, with no lock held here."""
        self._in_use = images

    def usage(self) -> tuple[int, int]:
        """Bytes of image files on disk, and how many."""
        with self._files_lock:
            return self._used, len(self._files)

    def result_file(self) -> ResultFile:
        """A file for a result's rows to be written into while it renders; `put` it
        with the result (or `discard` it)."""
        return ResultFile(self.root, self._writer)

    def put(
        self,
        pixels: np.ndarray,
        key: str | None = None,
        *,
        on_released: Callable[[], None] | None = None,
        written: ResultFile | None = None,
    ) -> tuple[StoredImage, bool]:
        """Store canonical pixels; returns their metadata and whether they were new.
        The disk write happens behind; when the pixels were new, `on_released` is
        called once the store holds no reference to them (until then they must not
        change). `written`: the file the pixels' rows were written into as they were
        made; the write then only finishes it."""
        height, width, channels = pixels.shape
        key = key or image_id(pixels)
        info = StoredImage(key, width, height, channels, pixels.dtype.itemsize * 8)
        with self._changed:
            if key in self._pending or key in self._unsaved or self._touch(key):
                if written is not None:
                    written.discard()
                return info, False
            while self._pending and self._pending_bytes + pixels.nbytes > self._budget:
                self._changed.wait()
            self._pending[key] = (info, pixels)
            self._pending_bytes += pixels.nbytes
        try:
            self._writer.submit(self._persist, key, on_released, written)
        except RuntimeError:  # closed: nothing will write it
            self._forget(key)
            if written is not None:
                written.discard()
            raise
        return info, True

    def writing(self, key: str) -> bool:
        """Whether the write of `key` is still behind."""
        with self._changed:
            return key in self._pending

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
        stored = self._open(key, lambda file: self._read_header(key, file))
        return stored if stored is not None else self._file_refs.info(key)

    def load(self, key: str, *, verify: bool = True) -> np.ndarray | None:
        """The canonical pixels, or None if absent or damaged (then the file is removed)."""
        with self._changed:
            held = self._pending.get(key) or self._unsaved.get(key)
            if held is not None:  # a copy: a pending array's memory is recycled later
                copy = self.buffers.array(held[1].shape, held[1].dtype)
                np.copyto(copy, held[1])
                return copy
        file_backed = self._file_refs.held(key)  # read only, as long as it is held
        if file_backed is not None:
            return file_backed
        release = self._hold(key)
        try:
            read = self._read(key)
        finally:
            release()
        if read is None:
            return self._file_refs.load(key) if ID_PATTERN.match(key) else None
        pixels, signature = read
        with self._files_lock:
            trusted = self._trusted.get(key) == signature
        if verify and not trusted:
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
        if not ID_PATTERN.match(key):
            return None
        with self._changed:
            if key in self._pending or key in self._unsaved:
                return None
        release = self._hold(key)
        try:
            file = self.path_for(key).open("rb")
        except MISSING:
            release()
            self._drop(key)
            return None
        except BaseException:
            release()
            raise
        try:
            info = self._read_header(key, file)
            signature = signature_of(os.fstat(file.fileno()))
            with self._files_lock:
                trusted = self._trusted.get(key) == signature
            if not trusted:
                if not pixels_match(key, info, file, HEADER.size):
                    raise Damaged
                self._trust(key, signature)
        except Damaged:
            file.close()
            release()
            self._remove(key)
            return None
        except BaseException:
            file.close()
            release()
            raise
        self._touch(key)
        return OpenImage(info, file, HEADER.size, release)

    def _read(self, key: str) -> tuple[np.ndarray, Signature] | None:
        """One open file from header to last pixel: a removal meanwhile cannot tear it.
        With the pixels, the file as it was when opened."""

        def pixels_of(file) -> tuple[np.ndarray, Signature] | None:
            info = self._read_header(key, file)
            signature = signature_of(os.fstat(file.fileno()))
            count = info.width * info.height * info.channels
            pixels = self.buffers.array((count,), DTYPES[info.depth])  # warm memory
            if not _read_into(file, memoryview(pixels).cast("B")):
                return None  # cut short since the header was read
            return pixels.reshape(info.height, info.width, info.channels), signature

        return self._open(key, pixels_of)

    def _open(self, key: str, read: Callable[[BinaryIO], _T]) -> _T | None:
        """`read` on the stored file of `key`: a missing file is a miss (and forgotten),
        a damaged one is a miss and removed."""
        try:
            with self.path_for(key).open("rb") as file:
                return read(file)
        except MISSING:
            self._drop(key)
        except Damaged:
            self._remove(key)
        return None

    def _read_header(self, key: str, file) -> StoredImage:
        raw = file.read(HEADER.size)
        parsed = parse_header(key, raw, os.fstat(file.fileno()).st_size)
        if parsed is None:
            raise Damaged
        return parsed

    def _persist(
        self, key: str, on_released: Callable[[], None] | None, ahead: ResultFile | None
    ) -> None:
        info, pixels = self._pending[key]
        header = HEADER.pack(MAGIC, info.width, info.height, info.channels, info.depth)
        written = False
        try:
            self._make_room(HEADER.size + pixels.nbytes)
            if ahead is not None:
                ahead.finish(self.path_for(key), header, pixels)
            else:
                atomic_write(self.path_for(key), [header, memoryview(pixels).cast("B")])
            self._added(key, HEADER.size + pixels.nbytes)
            written = True
        except OSError as exc:  # disk full, permissions: kept in memory for this run
            log.warning("could not store image %s (kept in memory for now): %s", key, exc)
            if ahead is not None:
                ahead.discard()  # its temp file, if the finish did not get to it
            self._keep_unsaved(info, pixels.copy() if on_released is not None else pixels)
        finally:
            settled = self._forget(key)
            if on_released is not None:
                del pixels
                on_released()
            else:  # a result: its buffer goes round unless someone still holds it
                self.buffers.give_array(pixels)
                del pixels
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


def _read_into(file: BinaryIO, view: memoryview) -> bool:
    """Fill `view` from `file`; False when the file ends first."""
    done = 0
    while done < len(view):
        got = file.readinto(view[done:])
        if not got:
            return False
        done += got
    return True
