"""Image files on this machine read by the sidecar itself (`POST /v1/images/file`, and a
file-backed image read again): decoded exactly as an upload of the same file is, or, for
a Photoshop document, its composite as `batch` uploads it, so the pixels, and so the
image id, are the same either way.

A file is read through one open descriptor: its size and modification time (ns) are
taken from it before and after the read, and a file that changed meanwhile is refused.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import (
    ApiError,
    FileNotFound,
    FileUnreadable,
    InvalidImage,
    OutOfMemory,
    PayloadTooLarge,
    PsdWithoutComposite,
    UnreadablePsd,
    UnsupportedPsd,
)
from . import psd
from .decode import decode_image, read_header, sniff_format
from .metadata import Format
from .pixels import Limits, check_dimensions

# the formats an input file is read as, by suffix (anything else: from its first bytes)
SUFFIX_FORMATS: dict[str, Format] = {
    ".png": "png",
    ".jpg": "jpeg",
    ".jpeg": "jpeg",
    ".tif": "tiff",
    ".tiff": "tiff",
}

_DOCUMENT_ERRORS: dict[str, type[ApiError]] = {
    "unsupported_psd": UnsupportedPsd,
    "psd_without_composite": PsdWithoutComposite,
    "unreadable_psd": UnreadablePsd,
}
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)  # no effect on a regular file; never waits


@dataclass(frozen=True)
class FileState:
    """A file as it was read: its size and modification time (ns)."""

    size: int
    mtime_ns: int

    @classmethod
    def of(cls, st: os.stat_result) -> FileState:
        return cls(st.st_size, st.st_mtime_ns)


def file_state(path: Path) -> FileState | None:
    """The regular file at `path` as it is now; None when it is gone or not one."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return FileState.of(st) if stat.S_ISREG(st.st_mode) else None


def read_image_file(
    path: Path, limits: Limits, max_bytes: int | None = None
) -> tuple[np.ndarray, FileState]:
    """The canonical, upright pixels of the image file at `path` (absolute), and the
    file's state when read. Raises the ApiError a client is answered with: the file is
    missing (`file_not_found`), unreadable or not a regular file (`file_unreadable`),
    over `max_bytes` (`payload_too_large`, as its upload would be), not an image we
    read (`invalid_image`), too large (`image_too_large`), a document that cannot be
    retouched (its psd code), or there is no memory for it now (`out_of_memory`)."""
    if not path.is_absolute():
        raise FileNotFound("no such file: the path is not absolute", details={"path": str(path)})
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):  # a FIFO would block the open
            raise FileUnreadable("not a regular file", details={"path": str(path)})
        fd = os.open(path, os.O_RDONLY | _NONBLOCK | getattr(os, "O_BINARY", 0))
    except FileNotFoundError as exc:
        raise FileNotFound("no such file", details={"path": str(path)}) from exc
    except OSError as exc:
        raise _unreadable(path, exc) from exc
    try:
        with os.fdopen(fd, "rb") as file:
            before = _regular(path, os.fstat(file.fileno()), max_bytes)
            try:
                if psd.is_psd(path):
                    pixels = _document(path, limits)
                else:
                    data = file.read()
                    pixels = _decode(path, data, limits)
                    del data
            except MemoryError as exc:
                raise OutOfMemory(
                    "not enough memory to read this image now: retry when other work has finished",
                    details={"path": str(path)},
                ) from exc
            after = FileState.of(os.fstat(file.fileno()))
    except OSError as exc:
        raise _unreadable(path, exc) from exc
    if after != before:
        raise FileUnreadable("the file changed while it was read", details={"path": str(path)})
    return pixels, before


def _regular(path: Path, st: os.stat_result, max_bytes: int | None) -> FileState:
    if not stat.S_ISREG(st.st_mode):
        raise FileUnreadable("not a regular file", details={"path": str(path)})
    if max_bytes is not None and st.st_size > max_bytes:
        raise PayloadTooLarge(
            f"the file is over the limit of {max_bytes} bytes",
            details={"path": str(path), "max_bytes": max_bytes},
        )
    return FileState.of(st)


def _decode(path: Path, data: bytes, limits: Limits) -> np.ndarray:
    """As `POST /v1/images` decodes the same bytes sent as the suffix's media type."""
    fmt = SUFFIX_FORMATS.get(path.suffix.lower()) or sniff_format(data)
    if fmt is None:
        raise InvalidImage("not a PNG, JPEG or TIFF file", details={"path": str(path)})
    header = read_header(data, fmt, complete=True)
    check_dimensions(header.width, header.height, limits)
    return decode_image(data, header, limits)


def _document(path: Path, limits: Limits) -> np.ndarray:
    """A Photoshop document's composite, as `batch` reads it for its upload."""
    try:
        psd.check_document(path, limits)
        pixels, _ = psd.read_composite(path)
    except psd.PsdError as exc:
        kind = _DOCUMENT_ERRORS.get(exc.code, UnreadablePsd)
        raise kind(exc.message, details={"path": str(path)}) from exc
    return pixels


def _unreadable(path: Path, exc: OSError) -> FileUnreadable:
    reason = exc.strerror or type(exc).__name__
    return FileUnreadable(f"cannot read the file: {reason}", details={"path": str(path)})
