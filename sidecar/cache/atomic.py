"""Atomic file writes: a temp file in the same folder, fsync, rename, fsync the folder.

A reader sees either the old file or the whole new one, never a part, even if the
process is killed mid-write; a crash leaves at most a `.tmp-*` file, which
`remove_stale_temps` clears on the next start.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import BinaryIO

TEMP_PREFIX = ".tmp-"


def atomic_write(path: Path, chunks: Iterable[bytes | memoryview], *, mode: int = 0o600) -> None:
    rename_onto(write_temp(path, chunks, mode=mode), path)


def atomic_fill(path: Path, fill: Callable[[BinaryIO], None], *, mode: int = 0o600) -> None:
    """`atomic_write` of what `fill(file)` writes into the temp file (open for reading
    and writing, so a writer may seek back and patch what it wrote)."""
    rename_onto(_fill_temp(path, fill, mode), path)


def rename_onto(tmp: Path, path: Path) -> None:
    """The finished temp file becomes `path` (removed if that fails), and the rename
    is made durable."""
    try:
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def write_temp(path: Path, chunks: Iterable[bytes | memoryview], *, mode: int = 0o600) -> Path:
    """`chunks` in a new temp file beside `path` (`.tmp-NAME.XXXXXXXX`), fsynced; the
    caller renames it onto `path` or removes it. Nothing is left behind on an error."""

    def write_chunks(file: BinaryIO) -> None:
        for chunk in chunks:
            view = memoryview(chunk)
            while view:
                written = file.write(view)
                view = view[written:]

    return _fill_temp(path, write_chunks, mode, buffering=0)


def open_temp(path: Path, mode: int = 0o600, buffering: int = -1) -> tuple[Path, BinaryIO]:
    """A new temp file beside `path` (`.tmp-NAME.XXXXXXXX`), open for reading and
    writing; the caller fills it, then renames it onto `path` or removes it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{TEMP_PREFIX}{path.name}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL, mode)
    try:
        return tmp, os.fdopen(fd, "w+b", buffering=buffering)
    except BaseException:
        os.close(fd)
        tmp.unlink(missing_ok=True)
        raise


def _fill_temp(path: Path, fill: Callable[[BinaryIO], None], mode: int, buffering=-1) -> Path:
    tmp, file = open_temp(path, mode, buffering)
    try:
        with file:
            fill(file)
            file.flush()
            os.fsync(file.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def fsync_dir(directory: Path) -> None:
    if os.name != "posix":
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def remove_stale_temps(root: Path) -> int:
    """Delete temp files left by a crash; returns how many."""
    removed = 0
    if root.is_dir():
        for tmp in root.rglob(f"{TEMP_PREFIX}*"):
            tmp.unlink(missing_ok=True)
            removed += 1
    return removed
