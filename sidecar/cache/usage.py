"""What the image store holds on disk, its default size limit, and clearing it.

The store's files are `<id[:2]>/<id>.img`; their modification time is their last use
(the store touches a file when it is read), so the least recently used order
survives a restart.
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from .atomic import TEMP_PREFIX, fsync_dir

GIB = 1 << 30
DEFAULT_SHARE = 0.25  # of the space the store may take: free disk plus what it holds
DEFAULT_MIN_BYTES = 2 * GIB
DEFAULT_MAX_BYTES = 50 * GIB
SUFFIX = ".img"
REF_SUFFIX = ".ref"  # a file-backed image's reference (file_refs.py)
DEFAULT_LIMIT_TEXT = "a quarter of the free disk where the store lives, 2 to 50 GiB"

_ID = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class StoredFile:
    key: str
    path: Path
    size: int
    used: float  # modification time: the last write or read


def stored_files(root: Path) -> list[StoredFile]:
    """Every image file under `root`, least recently used first."""
    found = []
    if not root.is_dir():
        return found
    for path in root.glob(f"??/*{SUFFIX}"):
        key = path.name[: -len(SUFFIX)]
        if not _ID.match(key) or path.parent.name != key[:2]:
            continue
        try:
            st = path.stat()
        except FileNotFoundError:
            continue
        found.append(StoredFile(key, path, st.st_size, st.st_mtime))
    found.sort(key=lambda f: f.used)
    return found


def default_limit(root: Path, used: int) -> int:
    """A quarter of the space the store may take (the free disk where it lives plus
    what it holds already), at least 2 GiB and at most 50 GiB."""
    free = shutil.disk_usage(_existing(root)).free
    return max(DEFAULT_MIN_BYTES, min(DEFAULT_MAX_BYTES, int((free + used) * DEFAULT_SHARE)))


def clear(root: Path) -> tuple[int, int]:
    """Remove every stored image (and any temp file a crash left); returns how many
    images and their bytes. Only the store's own files go; anything else stays."""
    count = size = 0
    for stored in stored_files(root):
        try:
            stored.path.unlink()
        except FileNotFoundError:
            continue
        count += 1
        size += stored.size
    if root.is_dir():
        # temp files a crash left, and references to files (file_refs.py: no pixels)
        for other in (*root.glob(f"??/{TEMP_PREFIX}*"), *root.glob(f"??/*{REF_SUFFIX}")):
            other.unlink(missing_ok=True)
        for folder in root.iterdir():
            if folder.is_dir() and len(folder.name) == 2:
                try:
                    folder.rmdir()  # only when empty
                except OSError:
                    pass
        fsync_dir(root)
    return count, size


def human(size: int) -> str:
    """1536 → '1.5 KiB'."""
    if size < 1024:
        return f"{size} bytes"
    value = size / 1024
    for unit in ("KiB", "MiB"):
        if value < 1024:
            return f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"


def _existing(path: Path) -> Path:
    """`path`, or its nearest folder that exists (the store may not be made yet)."""
    path = path.absolute()
    while not path.exists() and path.parent != path:
        path = path.parent
    return path if path.exists() else Path(os.sep)
