"""Atomic file writes: a temp file in the same folder, fsync, rename, fsync the folder.

A reader sees either the old file or the whole new one, never a part, even if the
process is killed mid-write; a crash leaves at most a `.tmp-*` file, which
`remove_stale_temps` clears on the next start.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterable
from pathlib import Path

TEMP_PREFIX = ".tmp-"


def atomic_write(path: Path, chunks: Iterable[bytes | memoryview], *, mode: int = 0o600) -> None:
    tmp = write_temp(path, chunks, mode=mode)
    try:
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def write_temp(path: Path, chunks: Iterable[bytes | memoryview], *, mode: int = 0o600) -> Path:
    """`chunks` in a new temp file beside `path` (`.tmp-NAME.XXXXXXXX`), fsynced; the
    caller renames it onto `path` or removes it. Nothing is left behind on an error."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{TEMP_PREFIX}{path.name}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb", buffering=0) as file:
            for chunk in chunks:
                view = memoryview(chunk)
                while view:
                    written = file.write(view)
                    view = view[written:]
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
