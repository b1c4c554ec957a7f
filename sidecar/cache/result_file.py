"""A result's file in the image store, written while the result is still rendered.

A large final is rendered a tile at a time. Each band of rows that is final (every
tile across it done) is written into a temp file in the store as soon as it is, and
flushed to disk, on the store's writer thread while the rest renders. When the result
is complete the store (`ImageStore.put(..., written=file)`) writes the rows not yet in
the file, syncs it and renames it onto the result's id, so the result is on disk a
band's write after its last tile rather than a whole image's write after it. The file
is only ever renamed whole: until then it is a temp file, which a crash leaves for the
next start to remove (atomic.remove_stale_temps).
"""

from __future__ import annotations

import logging
import os
import threading
from concurrent.futures import Executor
from pathlib import Path
from typing import BinaryIO

import numpy as np

from .atomic import open_temp, rename_onto
from .image_file import HEADER

log = logging.getLogger(__name__)

_sync = getattr(os, "fdatasync", os.fsync)  # the data is what matters until the rename


def _source(pixels: np.ndarray) -> tuple:
    """Which array rows come from: its memory, shape and type."""
    return pixels.__array_interface__["data"][0], pixels.shape, pixels.dtype.str


class ResultFile:
    """The rows of one result written behind its render. `rows` is called from the
    render's threads; the writes, `finish` and `discard`'s clean-up run on `writer` (the
    store's single writer thread), in the order they were asked for."""

    def __init__(self, root: Path, writer: Executor) -> None:
        self._root = root
        self._writer = writer
        self._lock = threading.Lock()
        self._ended = False  # finished or discarded: nothing more is written
        self._source: tuple | None = None  # the array the rows were written from
        # the writer thread's own state
        self._file: BinaryIO | None = None
        self._tmp: Path | None = None
        self._written: set[tuple[int, int]] = set()
        self._broken = False

    def rows(self, pixels: np.ndarray, y0: int, y1: int) -> None:
        """Rows [y0, y1) of `pixels` (the C-contiguous result being rendered) are final
        and will not change: write them behind."""
        with self._lock:
            if self._ended:
                return
            self._source = self._source or _source(pixels)
            if _source(pixels) != self._source:
                raise ValueError("rows of another array than the result's")
        try:
            self._writer.submit(self._write, pixels, y0, y1)
        except RuntimeError:  # the store is closing: the finish writes them, if any
            pass

    def finish(self, path: Path, header: bytes, pixels: np.ndarray) -> None:
        """On the writer thread: the whole of `pixels` in the file, synced and renamed
        onto `path`. Rows of another array than `pixels` are all written again. Raises
        OSError as a plain write would (the temp file is then gone)."""
        with self._lock:
            self._ended = True
            same = self._source == _source(pixels)
        if not same:  # (a broken file is gone already: the finish opens a new one)
            self._written.clear()
        try:
            file = self._open(pixels)
            height = pixels.shape[0]
            for y0, y1 in _missing(self._written, height):
                self._put(file, pixels, y0, y1)
            file.seek(0)
            file.write(header)
            file.flush()
            os.fsync(file.fileno())
            self._close()
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp, self._tmp = self._tmp, None
            assert tmp is not None
            rename_onto(tmp, path)
        except BaseException:
            self._remove()
            raise

    def discard(self) -> None:
        """Nothing of it is wanted (the run was cancelled, failed or pre-empted, or the
        result was already stored): the temp file goes, once writes asked for are done."""
        with self._lock:
            if self._ended:
                return
            self._ended = True
        try:
            self._writer.submit(self._remove)
        except RuntimeError:  # the store is closing: its writer has done all it will
            self._remove()

    # -- on the writer thread ---------------------------------------------------------
    def _write(self, pixels: np.ndarray, y0: int, y1: int) -> None:
        if self._ended or self._broken:
            return
        try:
            file = self._open(pixels)
            self._put(file, pixels, y0, y1)
            file.flush()
            _sync(file.fileno())
        except OSError as exc:  # the finish tries again with a plain write
            log.warning("could not write a result's rows ahead: %s", exc)
            self._broken = True
            self._remove()

    def _open(self, pixels: np.ndarray) -> BinaryIO:
        if self._file is None:
            self._tmp, self._file = open_temp(self._root / "result", buffering=0)
            self._file.truncate(HEADER.size + pixels.nbytes)
            self._written.clear()
        return self._file

    def _put(self, file: BinaryIO, pixels: np.ndarray, y0: int, y1: int) -> None:
        view = memoryview(pixels[y0:y1]).cast("B")
        file.seek(HEADER.size + y0 * (pixels.nbytes // pixels.shape[0]))
        while view:
            view = view[file.write(view) :]
        self._written.add((y0, y1))

    def _close(self) -> None:
        file, self._file = self._file, None
        if file is not None:
            file.close()

    def _remove(self) -> None:
        try:
            self._close()
        finally:
            tmp, self._tmp = self._tmp, None
            if tmp is not None:
                tmp.unlink(missing_ok=True)


def _missing(written: set[tuple[int, int]], height: int) -> list[tuple[int, int]]:
    """The row ranges of [0, height) not covered by `written`."""
    gaps, at = [], 0
    for y0, y1 in sorted(written):
        if y0 > at:
            gaps.append((at, y0))
        at = max(at, y1)
    if at < height:
        gaps.append((at, height))
    return gaps
