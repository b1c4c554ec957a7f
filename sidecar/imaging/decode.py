"""Decoding PNG, JPEG and TIFF (8 and 16 bit) into canonical, upright pixels.

The header is read first (Pillow's parsers, without touching pixel data) so that
our size limits, and only ours, are enforced before any decoding. Pixels are decoded
by tifffile for plain TIFF (uncompressed or deflate, no copy beyond the read) and by
OpenCV for the rest; both keep 16-bit samples, which Pillow would truncate for RGB.
Every decoder is asked for the pixels as stored; the EXIF (JPEG, PNG) or TIFF
orientation read from the header is then applied here, the same way for all three.
"""

from __future__ import annotations

import io
import os
import struct
from dataclasses import dataclass

import cv2
import numpy as np
import tifffile

from ..errors import InvalidImage, OutOfMemory
from .exif import apply_orientation, upright_size
from .metadata import MAGIC, Format, Metadata, metadata_of, open_pillow
from .pixels import Limits, check_dimensions, to_canonical

MEDIA_TYPES: dict[str, Format] = {
    "image/png": "png",
    "image/jpeg": "jpeg",
    "image/jpg": "jpeg",
    "image/tiff": "tiff",
    "image/tif": "tiff",
}
_PILLOW_FORMATS = {"PNG": "png", "JPEG": "jpeg", "TIFF": "tiff", "MPO": "jpeg"}


class BufferReader(io.RawIOBase):
    """A seekable read-only file over a buffer, without copying it (io.BytesIO
    copies a bytearray or array whole, which costs ~0.1 s per 100 MB here)."""

    def __init__(self, data) -> None:
        super().__init__()
        self._view = memoryview(data).cast("B")
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, target) -> int:
        chunk = self._view[self._pos : self._pos + len(target)]
        target[: len(chunk)] = chunk
        self._pos += len(chunk)
        return len(chunk)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: len(self._view)}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def tell(self) -> int:
        return self._pos


def _open(data) -> io.BufferedReader:
    return io.BufferedReader(BufferReader(data))


@dataclass(frozen=True)
class DecodedHeader:
    format: Format
    width: int  # as stored; the decoded pixels are upright (see `upright_size`)
    height: int
    orientation: int = 1
    metadata: Metadata | None = None  # read from a complete file only

    @property
    def upright_size(self) -> tuple[int, int]:
        return upright_size(self.width, self.height, self.orientation)


def sniff_format(data) -> Format | None:
    head = bytes(memoryview(data).cast("B")[:8])
    for magic, fmt in MAGIC:
        if head.startswith(magic):
            return fmt
    return None


def read_header(
    data: bytes | bytearray | memoryview, declared: Format, *, complete: bool
) -> DecodedHeader | None:
    """Parse the image header. With `complete=False` (a body still arriving) return
    None when more bytes are needed; with `complete=True` any failure is an error."""
    if len(data) == 0:
        raise InvalidImage("request body is empty")
    fmt = sniff_format(data)
    if fmt is None:
        if not complete and len(data) < 8:
            return None
        raise InvalidImage(f"body is not a {declared.upper()} file")
    if fmt != declared:
        raise InvalidImage(
            f"body is a {fmt.upper()} file but was sent as {declared.upper()}",
            details={"detected": fmt, "declared": declared},
        )
    file = _open(data)
    try:
        with open_pillow(file, fmt) as image:
            found = _PILLOW_FORMATS.get(image.format or "")
            meta = metadata_of(image, file, fmt, complete=complete)
    except (
        OSError,
        ValueError,
        SyntaxError,
        EOFError,
        LookupError,
        TypeError,
        struct.error,
    ) as exc:
        if not complete:
            return None
        raise InvalidImage(f"cannot read the {fmt.upper()} header") from exc
    if found != fmt:
        raise InvalidImage(f"cannot read the {fmt.upper()} header")
    # A partial body's orientation may still be on its way (a PNG's eXIf after the
    # image data): it is read again from the complete body before decoding.
    return DecodedHeader(fmt, meta.width, meta.height, meta.orientation, meta if complete else None)


def decode_image(data: bytes | bytearray | memoryview, header: DecodedHeader, limits: Limits):
    """Decode a complete body whose header has been checked; return canonical pixels,
    upright. Running out of memory is `OutOfMemory`, whatever the decoder."""
    check_dimensions(header.width, header.height, limits)
    try:
        return _decode(data, header)
    except MemoryError as exc:
        raise _out_of_memory(header) from exc


def _decode(data, header: DecodedHeader) -> np.ndarray:
    pixels = None
    if header.format == "tiff":
        pixels = _decode_plain_tiff(data)
    if pixels is None:
        if header.format == "tiff" and header.orientation != 1:
            data = _orientation_reset(data)
        pixels = _decode_with_opencv(data, header.format)
    if pixels.shape[:2] != (header.height, header.width):
        # The header said one size and the pixels another: refuse rather than guess.
        raise InvalidImage(
            "decoded size does not match the header",
            details={"header": [header.width, header.height], "decoded": pixels.shape[1::-1]},
        )
    return to_canonical(apply_orientation(pixels, header.orientation))


def _out_of_memory(header: DecodedHeader) -> OutOfMemory:
    return OutOfMemory(
        "not enough memory to decode this image now: retry when other work has finished, "
        "or send a smaller image",
        details={"width": header.width, "height": header.height},
    )


def _decode_with_opencv(data, fmt: Format) -> np.ndarray:
    buffer = np.frombuffer(data, dtype=np.uint8)
    # As stored: orientation is applied by the caller, the same way for every format.
    # JPEG: 8-bit colour (gray and CMYK become RGB). PNG/TIFF: keep bit depth and alpha.
    flags = cv2.IMREAD_UNCHANGED
    if fmt == "jpeg":
        flags = cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION
    try:
        decoded = cv2.imdecode(buffer, flags)
    except cv2.error as exc:
        if exc.code == cv2.Error.StsNoMem:
            raise MemoryError(str(exc)) from exc
        raise InvalidImage(f"{fmt.upper()} data is corrupt or truncated") from exc
    if decoded is None:
        raise InvalidImage(f"{fmt.upper()} data is corrupt or truncated")
    if decoded.ndim == 3 and decoded.shape[2] == 3:
        decoded = cv2.cvtColor(decoded, cv2.COLOR_BGR2RGB)
    elif decoded.ndim == 3 and decoded.shape[2] == 4:
        decoded = cv2.cvtColor(decoded, cv2.COLOR_BGRA2RGBA)
    return decoded


_DECODE_THREADS = min(4, os.cpu_count() or 1)
# none, deflate, PackBits, LZMA: the codecs tifffile has built in (LZW needs imagecodecs)
_PLAIN_COMPRESSION = {1, 8, 32946, 32773, 34925}
_LZW = 5
_PHOTOMETRIC_GRAY_RGB = {1, 2}  # min-is-black, RGB


def _decode_plain_tiff(data) -> np.ndarray | None:
    """Fast path for the common TIFF: first page, uint 8/16, RGB(A) or gray, no
    exotic codec. Uncompressed contiguous pixels are returned as a view of `data`
    (no copy). Returns None to hand anything else to OpenCV/libtiff."""
    try:
        with tifffile.TiffFile(_open(data)) as tif:
            page = tif.pages.first
            if int(page.compression) == _LZW and page.samplesperpixel == 2:
                # OpenCV (libtiff) would read it as gray and drop the alpha unsaid
                raise InvalidImage(
                    "a gray TIFF with alpha compressed with LZW cannot be read without "
                    "losing its alpha: save it uncompressed or with ZIP compression",
                    details={"compression": "lzw", "samples": 2},
                )
            if (
                int(page.compression) not in _PLAIN_COMPRESSION
                or int(page.photometric) not in _PHOTOMETRIC_GRAY_RGB
                or page.bitspersample not in (8, 16)
                or int(page.sampleformat) != 1
                or int(page.fillorder) != 1
                or page.axes not in ("YX", "YXS", "SYX")
            ):
                return None
            end = len(memoryview(data).cast("B"))
            for offset, count in zip(page.dataoffsets, page.databytecounts, strict=True):
                if count == 0 or offset + count > end:
                    raise InvalidImage("TIFF data is truncated")
            if int(page.compression) == 1 and page.is_contiguous:
                dtype = np.dtype(page.dtype).newbyteorder(tif.byteorder)
                pixels = np.frombuffer(
                    data, dtype=dtype, count=page.size, offset=page.dataoffsets[0]
                ).reshape(page.shape)
            else:  # compressed strips/tiles inflate in parallel
                pixels = page.asarray(maxworkers=_DECODE_THREADS)
            if page.axes == "SYX":
                pixels = np.moveaxis(pixels, 0, -1)
            return pixels
    except (InvalidImage, MemoryError):
        raise
    except Exception as exc:  # tifffile raises many types on malformed input
        raise InvalidImage("TIFF data is corrupt or truncated") from exc


def _orientation_reset(data) -> bytearray:
    """A copy of a TIFF with orientation 1: OpenCV (libtiff) applies some TIFF
    orientations itself, depending on the layout; this way it applies none and the
    caller applies the file's, as for every other file."""
    try:
        with tifffile.TiffFile(_open(data)) as tif:
            tag = tif.pages.first.tags.get(274)
            kind = {3: "H", 4: "L"}.get(int(tag.dtype)) if tag is not None else None
            at, byteorder = (tag.valueoffset, tif.byteorder) if kind else (0, "<")
    except MemoryError:
        raise
    except Exception as exc:  # tifffile raises many types on malformed input
        raise InvalidImage("TIFF data is corrupt or truncated") from exc
    copy = bytearray(data)
    if kind:
        struct.pack_into(byteorder + kind, copy, at, 1)
    return copy


def decode_preview(jpeg: bytes) -> np.ndarray:
    """One of our own preview JPEGs as contiguous 8-bit RGB."""
    return np.ascontiguousarray(_decode_with_opencv(jpeg, "jpeg"))
