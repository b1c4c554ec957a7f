"""Writing TIFF (8/16 bit, gray or RGB, with or without alpha) with its metadata.

tifffile writes the pixels, ICC profile (34675), XMP (700), IPTC (33723) and the
descriptive IFD0 tags (Make, Model, Artist, ...). It will not write the Exif and GPS
IFD pointers, so they are written as placeholder tags of the neighbouring code (the
IFD stays sorted), renumbered afterwards to point at the IFDs appended to the file.
"""

from __future__ import annotations

import io
import struct
from typing import BinaryIO

import numpy as np
import tifffile
from PIL import Image, TiffImagePlugin

from .exif import EXIF_IFD
from .metadata import GPS_IFD, TIFF_EXIF_TAGS, TIFF_IPTC, TIFF_XMP, Metadata

# a classic (32-bit offset) TIFF holds up to 4 GiB; past this tifffile writes BigTIFF
_CLASSIC_MAX = 2**32 - 2**25
_SUB_IFDS = {EXIF_IFD: EXIF_IFD - 1, GPS_IFD: GPS_IFD - 1}  # pointer tag: placeholder


def encode_tiff(pixels: np.ndarray, meta: Metadata | None) -> memoryview:
    """An uncompressed TIFF of (H, W, C) pixels, C 1–4 (2 and 4: with alpha)."""
    out = io.BytesIO()
    encode_tiff_into(out, pixels, meta)
    return out.getbuffer()


def encode_tiff_into(out: BinaryIO, pixels: np.ndarray, meta: Metadata | None) -> None:
    """`encode_tiff` written into `out`, an empty file open for reading and writing: a
    file on disk takes the pixels from the array as they are (into a BytesIO they are
    copied twice on the way)."""
    channels = pixels.shape[2]
    bigtiff = pixels.nbytes > _CLASSIC_MAX
    exif = _load_exif(meta.exif) if meta and meta.exif else None
    extratags, sub_ifds = _tags(meta, exif, with_sub_ifds=not bigtiff)
    tifffile.imwrite(
        _handle(out),
        pixels[:, :, 0] if channels == 1 else pixels,
        bigtiff=bigtiff,
        byteorder="<",
        photometric="rgb" if channels >= 3 else "minisblack",
        extrasamples=("unassalpha",) if channels in (2, 4) else None,
        iccprofile=meta.icc if meta else None,
        resolution=meta.dpi if meta and meta.dpi else None,
        resolutionunit="INCH" if meta and meta.dpi else None,
        metadata=None,
        software=False,
        extratags=extratags,
    )
    if sub_ifds:
        _append_sub_ifds(out, sub_ifds)


def _load_exif(blob: bytes) -> Image.Exif | None:
    exif = Image.Exif()
    try:
        exif.load(b"Exif\x00\x00" + blob)
    except (ValueError, TypeError, OSError, struct.error, SyntaxError):
        return None
    return exif


def _tags(meta: Metadata | None, exif: Image.Exif | None, *, with_sub_ifds: bool):
    tags: list[tuple] = []
    sub_ifds: dict[int, dict] = {}
    if exif is not None:
        for tag in TIFF_EXIF_TAGS:
            value = exif.get(tag)
            if isinstance(value, str) and value.isascii():
                tags.append((tag, "s", 0, value, True))
            elif isinstance(value, int) and 0 <= value <= 0xFFFF:
                tags.append((tag, "H", 1, value, True))
        for pointer, placeholder in _SUB_IFDS.items():
            ifd = _sub_ifd(exif, pointer) if with_sub_ifds else None
            if ifd:
                sub_ifds[placeholder] = (pointer, ifd)
                tags.append((placeholder, "I", 1, 0, True))
    if meta is not None and meta.xmp:
        tags.append((TIFF_XMP, "B", len(meta.xmp), meta.xmp, True))
    if meta is not None and meta.iptc:
        tags.append((TIFF_IPTC, 7, len(meta.iptc), meta.iptc, True))
    return tags, sub_ifds


def _sub_ifd(exif: Image.Exif, pointer: int) -> dict:
    try:
        ifd = dict(exif.get_ifd(pointer))
        if pointer == EXIF_IFD and 0xA005 in ifd:  # Interoperability IFD inside it
            interop = exif.get_ifd(0xA005)
            if interop:
                ifd[0xA005] = dict(interop)
            else:
                del ifd[0xA005]
        return ifd
    except (KeyError, ValueError, TypeError, struct.error):
        return {}


def _append_sub_ifds(out: BinaryIO, sub_ifds: dict[int, tuple[int, dict]]) -> None:
    """Write each sub-IFD at the end of the file and point its placeholder tag at it,
    renamed to the real pointer tag."""
    out.seek(0)
    with tifffile.TiffFile(_handle(out)) as tif:
        entries = {tag.code: tag.offset for tag in tif.pages.first.tags}
    patches = []
    for placeholder, (pointer, values) in sub_ifds.items():
        at = entries.get(placeholder)
        if at is None:
            continue
        end = out.seek(0, io.SEEK_END)
        start = end + (end & 1)
        ifd = TiffImagePlugin.ImageFileDirectory_v2(ifh=b"II*\x00\x08\x00\x00\x00", group=pointer)
        for tag, value in values.items():
            ifd[tag] = value
        out.write(b"\x00" * (start - end) + ifd.tobytes(start))
        patches.append((at, pointer, start))
    for at, pointer, start in patches:
        out.seek(at)
        out.write(struct.pack("<HHLL", pointer, 4, 1, start))
    out.seek(0, io.SEEK_END)


def _handle(out: BinaryIO) -> tifffile.FileHandle:
    """`out` for tifffile, named: a file from a descriptor has a number for its name,
    which tifffile cannot take."""
    return tifffile.FileHandle(out, name="output.tif")
