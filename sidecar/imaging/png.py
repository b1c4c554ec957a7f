"""PNG chunks: reading the metadata ones wherever they are, and writing them.

Metadata chunks: iCCP (ICC profile), eXIf (EXIF), iTXt `XML:com.adobe.xmp` (XMP),
pHYs (resolution) and `Raw profile type iptc` text (IPTC, as ExifTool and ImageMagick
write it; PNG has no chunk of its own for IPTC).
"""

from __future__ import annotations

import struct
import zlib
from typing import BinaryIO

import numpy as np

SIGNATURE = b"\x89PNG\r\n\x1a\n"
XMP_KEY = b"XML:com.adobe.xmp"
IPTC_KEY = b"Raw profile type iptc"
METRES_PER_INCH = 0.0254
_IMAGE_CHUNKS = (b"IDAT", b"IEND")
_METADATA_CHUNKS = (b"eXIf", b"tEXt", b"zTXt", b"iTXt")
MAX_TEXT = 64 * 1024 * 1024  # of one inflated text chunk


def chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(data, zlib.crc32(kind)) & 0xFFFFFFFF
    return struct.pack(">L", len(data)) + kind + data + struct.pack(">L", crc)


def chunks_after_image(file: BinaryIO) -> list[tuple[bytes, bytes]]:
    """The metadata chunks (eXIf and text) after the first IDAT, as (type, data).
    Only chunk headers are read on the way: the pixel data is skipped. A buffered
    file is walked unbuffered (a buffer would read ahead through every IDAT)."""
    raw = getattr(file, "raw", None)
    if raw is None:
        return _walk(file)
    position = file.tell()
    try:
        return _walk(raw)
    finally:
        file.seek(position)  # the buffered file catches up with its raw one


def _walk(file) -> list[tuple[bytes, bytes]]:
    found = []
    file.seek(len(SIGNATURE))
    seen_image = False
    while True:
        head = file.read(8)
        if len(head) < 8:
            return found
        length, kind = struct.unpack(">L4s", head)
        if kind == b"IEND":
            return found
        seen_image = seen_image or kind == b"IDAT"
        if not seen_image or kind not in _METADATA_CHUNKS:
            file.seek(length + 4, 1)
            continue
        data = file.read(length)
        file.seek(4, 1)
        if len(data) < length:
            return found
        found.append((kind, data))


def text_of(kind: bytes, data: bytes) -> tuple[bytes, bytes] | None:
    """(keyword, text bytes) of a tEXt, zTXt or iTXt chunk; None when unreadable."""
    key, sep, rest = data.partition(b"\x00")
    if not sep:
        return None
    try:
        if kind == b"tEXt":
            return key, rest
        if kind == b"zTXt":
            return key, _inflate(rest[1:])
        if kind == b"iTXt":
            compressed, rest = rest[0], rest[2:]
            _language, _, rest = rest.partition(b"\x00")
            _translated, _, text = rest.partition(b"\x00")
            return key, _inflate(text) if compressed else text
    except (zlib.error, IndexError, ValueError):
        return None
    return None


def _inflate(data: bytes) -> bytes:
    inflater = zlib.decompressobj()
    text = inflater.decompress(data, MAX_TEXT)
    if inflater.unconsumed_tail:
        raise ValueError("text chunk too large")
    return text


def iccp(profile: bytes) -> bytes:
    return chunk(b"iCCP", b"ICC Profile\x00\x00" + zlib.compress(profile))


def exif_chunk(blob: bytes) -> bytes:
    return chunk(b"eXIf", blob)


def xmp_chunk(xmp: bytes) -> bytes:
    # iTXt, uncompressed (XMP readers look for the packet as is), no language
    return chunk(b"iTXt", XMP_KEY + b"\x00\x00\x00\x00\x00" + xmp)


def iptc_chunk(iptc: bytes) -> bytes:
    hex_text = iptc.hex()
    lines = "\n".join(hex_text[start : start + 72] for start in range(0, len(hex_text), 72))
    text = f"\niptc\n{len(iptc):8d}\n{lines}\n".encode("ascii")
    return chunk(b"zTXt", IPTC_KEY + b"\x00\x00" + zlib.compress(text))


def iptc_from_text(text: bytes | str) -> bytes | None:
    """IPTC data from a `Raw profile type iptc` text: a name line, a length line and
    the data in hex."""
    if isinstance(text, str):
        text = text.encode("latin-1", "replace")
    parts = text.split(None, 2)
    if len(parts) < 3 or not parts[1].isdigit():
        return None
    try:
        data = bytes.fromhex(parts[2].decode("ascii").replace("\n", "").replace(" ", ""))
    except (ValueError, UnicodeDecodeError):
        return None
    return data if len(data) == int(parts[1]) else None


def phys(dpi: tuple[float, float]) -> bytes:
    per_metre = [max(1, round(value / METRES_PER_INCH)) for value in dpi]
    return chunk(b"pHYs", struct.pack(">LLB", per_metre[0], per_metre[1], 1))


def insert_before_image(png: bytes | bytearray | memoryview, extra: list[bytes]) -> list:
    """The PNG with `extra` chunks before its first IDAT, as chunks for a writer (the
    image data is not copied)."""
    view = memoryview(png).cast("B")
    if bytes(view[:8]) != SIGNATURE:
        raise ValueError("not a PNG")
    at = len(SIGNATURE)
    while at + 8 <= len(view):
        length, kind = struct.unpack(">L4s", view[at : at + 8])
        if kind in _IMAGE_CHUNKS:
            return [view[:at], *extra, view[at:]]
        at += 12 + length
    raise ValueError("PNG without image data")


def encode_gray_alpha(pixels: np.ndarray) -> bytes:
    """A PNG of gray+alpha pixels (H, W, 2), 8 or 16 bit, which OpenCV cannot write.
    Rows use the Up filter, which suits photographs well enough for this rare case."""
    height, width = pixels.shape[:2]
    depth = 16 if pixels.dtype.itemsize == 2 else 8
    rows = pixels.astype(">u2" if depth == 16 else np.uint8, copy=False)
    raw = np.ascontiguousarray(rows).view(np.uint8).reshape(height, -1)
    up = raw.copy()
    up[1:] -= raw[:-1]  # uint8 arithmetic wraps, as the filter wants
    filtered = np.empty((height, up.shape[1] + 1), np.uint8)
    filtered[:, 0] = 2  # Up
    filtered[:, 1:] = up
    header = struct.pack(">LLBBBBB", width, height, depth, 4, 0, 0, 0)
    return b"".join(
        [
            SIGNATURE,
            chunk(b"IHDR", header),
            chunk(b"IDAT", zlib.compress(filtered.tobytes(), 6)),
            chunk(b"IEND", b""),
        ]
    )
