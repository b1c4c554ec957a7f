"""EXIF orientation: reading it, applying it to pixels, and resetting it in an EXIF block.

An EXIF block here is the TIFF-structured data of a JPEG's APP1 (without its
`Exif\\0\\0` prefix) or of a PNG's eXIf chunk. It is patched in place, byte for byte
otherwise, so maker notes and every other tag survive.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

EXIF_PREFIX = b"Exif\x00\x00"
ORIENTATION = 0x0112
EXIF_IFD = 0x8769
PIXEL_X = 0xA002  # PixelXDimension, in the Exif IFD
PIXEL_Y = 0xA003
_SHORT, _LONG = 3, 4
_TYPE_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4}


@dataclass(frozen=True)
class Entry:
    tag: int
    type: int
    count: int
    value_at: int  # where the value is: inside the entry, or at its offset


def strip_prefix(data: bytes) -> bytes:
    return data[len(EXIF_PREFIX) :] if data.startswith(EXIF_PREFIX) else data


def _endian(blob: bytes) -> str | None:
    if blob[:4] == b"II*\x00":
        return "<"
    if blob[:4] == b"MM\x00*":
        return ">"
    return None


def _entries(blob: bytes, endian: str, offset: int) -> tuple[list[Entry], int] | None:
    """The entries of the IFD at `offset` and where its next-IFD offset is; None when
    the IFD is out of bounds."""
    if offset < 8 or offset + 2 > len(blob):
        return None
    (count,) = struct.unpack_from(endian + "H", blob, offset)
    end = offset + 2 + 12 * count
    if end + 4 > len(blob):
        return None
    entries = []
    for index in range(count):
        at = offset + 2 + 12 * index
        tag, kind, number = struct.unpack_from(endian + "HHL", blob, at)
        size = _TYPE_SIZES.get(kind, 1) * number
        value_at = at + 8 if size <= 4 else struct.unpack_from(endian + "L", blob, at + 8)[0]
        entries.append(Entry(tag, kind, number, value_at))
    return entries, end


def _ifd0(blob: bytes) -> tuple[str, list[Entry], int] | None:
    endian = _endian(blob)
    if endian is None or len(blob) < 8:
        return None
    (offset,) = struct.unpack_from(endian + "L", blob, 4)
    found = _entries(blob, endian, offset)
    return None if found is None else (endian, *found)


def _read_int(blob: bytes, endian: str, entry: Entry) -> int | None:
    if entry.count != 1 or entry.type not in (_SHORT, _LONG):
        return None
    fmt = endian + ("H" if entry.type == _SHORT else "L")
    if entry.value_at + struct.calcsize(fmt) > len(blob):
        return None
    return struct.unpack_from(fmt, blob, entry.value_at)[0]


def _write_int(blob: bytearray, endian: str, entry: Entry, value: int) -> None:
    if entry.count != 1 or entry.type not in (_SHORT, _LONG):
        return
    if entry.type == _SHORT and value > 0xFFFF:
        return
    fmt = endian + ("H" if entry.type == _SHORT else "L")
    if entry.value_at + struct.calcsize(fmt) <= len(blob):
        struct.pack_into(fmt, blob, entry.value_at, value)


def orientation_of(blob: bytes | None) -> int:
    """The EXIF orientation (1–8) of an EXIF block; 1 when absent or unreadable."""
    if not blob:
        return 1
    blob = strip_prefix(blob)
    found = _ifd0(blob)
    if found is None:
        return 1
    endian, entries, _ = found
    for entry in entries:
        if entry.tag == ORIENTATION:
            value = _read_int(blob, endian, entry)
            return value if value in range(1, 9) else 1
    return 1


def upright_exif(blob: bytes, width: int, height: int, rotated: bool) -> bytes:
    """The EXIF block for upright pixels of `width` × `height`: orientation 1, pixel
    dimensions the output's, and, when the pixels were turned, no thumbnail (IFD1
    shows the image as it was stored). Everything else is kept byte for byte."""
    blob = strip_prefix(blob)
    found = _ifd0(blob)
    if found is None:
        return blob
    endian, entries, next_at = found
    out = bytearray(blob)
    for entry in entries:
        if entry.tag == ORIENTATION:
            _write_int(out, endian, entry, 1)
        elif entry.tag == EXIF_IFD:
            offset = _read_int(blob, endian, entry)
            sub = _entries(blob, endian, offset) if offset else None
            for inner in sub[0] if sub else ():
                if inner.tag in (PIXEL_X, PIXEL_Y):
                    _write_int(out, endian, inner, width if inner.tag == PIXEL_X else height)
    if rotated:
        struct.pack_into(endian + "L", out, next_at, 0)
    return bytes(out)


def apply_orientation(pixels: np.ndarray, orientation: int) -> np.ndarray:
    """The upright view of pixels stored with an EXIF orientation (no copy)."""
    if orientation == 2:
        return pixels[:, ::-1]
    if orientation == 3:
        return pixels[::-1, ::-1]
    if orientation == 4:
        return pixels[::-1]
    if orientation == 5:
        return pixels.swapaxes(0, 1)
    if orientation == 6:  # turned 90° clockwise to view
        return pixels.swapaxes(0, 1)[:, ::-1]
    if orientation == 7:
        return pixels[::-1, ::-1].swapaxes(0, 1)
    if orientation == 8:  # turned 90° counter-clockwise to view
        return pixels.swapaxes(0, 1)[::-1]
    return pixels


def upright_size(width: int, height: int, orientation: int) -> tuple[int, int]:
    return (height, width) if orientation in (5, 6, 7, 8) else (width, height)
