"""The content-addressed image store on disk.

One file per image, `images/<id[:2]>/<id>.img`: a 32-byte header (magic, width,
height, channels, depth) and the canonical pixel bytes. Files are written atomically
and checked on read against their own id, so a damaged or foreign file in the
folder is reported missing and removed, never served.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..imaging.pixels import DTYPES, raw_nbytes
from .atomic import atomic_write, remove_stale_temps
from .keys import image_id

_MAGIC = b"RTIMG\x00\x01\x00"
_HEADER = struct.Struct("<8sIIBB14x")  # 32 bytes
_ID = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class StoredImage:
    image_id: str
    width: int
    height: int
    channels: int
    depth: int


class ImageStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        remove_stale_temps(self.root)

    def path_for(self, image_id_: str) -> Path:
        if not _ID.match(image_id_):
            raise ValueError("not an image id")
        return self.root / image_id_[:2] / f"{image_id_}.img"

    def has(self, image_id_: str) -> bool:
        return _ID.match(image_id_) is not None and self.path_for(image_id_).is_file()

    def put(self, pixels: np.ndarray, key: str | None = None) -> tuple[StoredImage, bool]:
        """Store canonical pixels; returns their metadata and whether they were new."""
        height, width, channels = pixels.shape
        depth = pixels.dtype.itemsize * 8
        key = key or image_id(pixels)
        info = StoredImage(key, width, height, channels, depth)
        path = self.path_for(key)
        if path.is_file():
            return info, False
        header = _HEADER.pack(_MAGIC, width, height, channels, depth)
        atomic_write(path, [header, memoryview(np.ascontiguousarray(pixels)).cast("B")])
        return info, True

    def info(self, image_id_: str) -> StoredImage | None:
        path = self.path_for(image_id_)
        try:
            with path.open("rb") as file:
                raw = file.read(_HEADER.size)
                size = path.stat().st_size
        except FileNotFoundError:
            return None
        parsed = self._parse_header(image_id_, raw, size)
        if parsed is None:
            path.unlink(missing_ok=True)
        return parsed

    def load(self, image_id_: str, *, verify: bool = True) -> np.ndarray | None:
        """The canonical pixels, or None if absent or damaged (then the file is removed)."""
        info = self.info(image_id_)
        if info is None:
            return None
        path = self.path_for(image_id_)
        pixels = np.fromfile(path, dtype=DTYPES[info.depth], offset=_HEADER.size)
        pixels = pixels.reshape(info.height, info.width, info.channels)
        if verify and image_id(pixels) != image_id_:
            path.unlink(missing_ok=True)
            return None
        return pixels

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
