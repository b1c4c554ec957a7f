"""The image store's file: a 32-byte header (magic, width, height, channels, depth)
and the canonical pixel bytes; how a header is read and a file's pixels are checked
against their id, and an open, checked file handed out to be sent as it is."""

from __future__ import annotations

import os
import re
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO

import blake3

from ..imaging.pixels import DTYPES, raw_nbytes
from .keys import image_key_header

MAGIC = b"RTIMG\x00\x01\x00"
HEADER = struct.Struct("<8sIIBB14x")  # 32 bytes
ID_PATTERN = re.compile(r"^[0-9a-f]{64}$")
CHECK_CHUNK = 16 << 20  # bytes read at a time when a file is checked once
# A file as it is on disk: device, inode, size, modification time (ns). Another write
# (in place or a new file renamed over it) changes it; the store's touch changes the
# time too, and records the new one.
Signature = tuple[int, int, int, int]


def signature_of(st: os.stat_result) -> Signature:
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


def parse_header(key: str, raw: bytes, size: int) -> StoredImage | None:
    """The stored image a file's header describes, or None when it is not one of ours
    or does not match the file's size."""
    if len(raw) != HEADER.size:
        return None
    magic, width, height, channels, depth = HEADER.unpack(raw)
    if magic != MAGIC or channels not in (3, 4) or depth not in DTYPES:
        return None
    if not width or not height:
        return None
    if size != HEADER.size + raw_nbytes(width, height, channels, depth):
        return None
    return StoredImage(key, width, height, channels, depth)


def pixels_match(key: str, info: StoredImage, file: BinaryIO, offset: int) -> bool:
    """Whether the pixel bytes of `file` from `offset` hash to `key` (the image id:
    keys.image_id of the same pixels), read a chunk at a time."""
    hasher = blake3.blake3(
        image_key_header(info.width, info.height, info.channels, info.depth),
        max_threads=blake3.blake3.AUTO,
    )
    buffer = memoryview(bytearray(min(CHECK_CHUNK, info.nbytes)))
    file.seek(offset)
    left = info.nbytes
    while left:
        got = file.readinto(buffer[: min(len(buffer), left)])
        if not got:  # cut short since the header was read
            return False
        hasher.update(buffer[:got])
        left -= got
    return hasher.hexdigest() == key


class Damaged(Exception):
    """A file whose header does not match its id or its size."""
