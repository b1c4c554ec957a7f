"""What a file says besides its pixels: orientation, colour profile, EXIF, XMP, IPTC.

Read from the header with Pillow's parsers, used directly rather than through
`Image.open`: that one refuses images over Pillow's own pixel limit (about 179 MP)
before we can check ours, and the size limits here are ours alone (pixels.Limits),
checked from this same header. Nothing here decodes pixels.
"""

from __future__ import annotations

import struct
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import BinaryIO, Literal

from PIL import Image, ImageFile, JpegImagePlugin, PngImagePlugin, TiffImagePlugin

from . import png
from .exif import EXIF_IFD, apply_orientation, orientation_of, strip_prefix, upright_size
from .jpeg import IPTC_RESOURCE, resource

Format = Literal["png", "jpeg", "tiff"]

MAGIC: tuple[tuple[bytes, Format], ...] = (
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"\xff\xd8\xff", "jpeg"),
    (b"II*\x00", "tiff"),
    (b"MM\x00*", "tiff"),
    (b"II+\x00", "tiff"),  # BigTIFF
    (b"MM\x00+", "tiff"),
)

GRAY_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N"})
GPS_IFD = 0x8825
INTEROP_IFD = 0xA005
# IFD0 tags of a TIFF that describe the picture (the rest describe its storage)
TIFF_EXIF_TAGS = (270, 271, 272, 274, 305, 306, 315, 33432)
TIFF_ORIENTATION = 274
TIFF_XMP, TIFF_IPTC, TIFF_PHOTOSHOP = 700, 33723, 34377
_BITS_PER_SAMPLE, _PHOTOMETRIC, _SAMPLES_PER_PIXEL, _EXTRA_SAMPLES = 258, 262, 277, 338

__all__ = [
    "Metadata",
    "apply_orientation",
    "open_pillow",
    "read_file_metadata",
    "read_metadata",
]


@dataclass(frozen=True)
class Metadata:
    """A file's metadata, read when it is decoded, for writing its retouched copy."""

    format: Format
    width: int  # as stored, before orientation
    height: int
    orientation: int = 1  # EXIF/TIFF orientation, 1–8; the decoded pixels are upright
    gray: bool = False  # one colour channel (with or without alpha)
    icc: bytes | None = None
    exif: bytes | None = None  # TIFF-structured EXIF block, as in the file
    xmp: bytes | None = None
    iptc: bytes | None = None  # IPTC-IIM records
    dpi: tuple[float, float] | None = None

    @property
    def rotated(self) -> bool:
        return self.orientation != 1

    @property
    def upright_size(self) -> tuple[int, int]:
        return upright_size(self.width, self.height, self.orientation)


class _TiffHeader(TiffImagePlugin.TiffImageFile):
    """Pillow's TIFF parser, which also reads the header of a 16-bit gray+alpha TIFF.
    Pillow has no mode for those pixels and refuses the file ("unknown pixel mode");
    we never decode with Pillow, so such a header is read as its 8-bit twin (mode LA:
    gray), with the file's own tags (and so its depth) left as they are."""

    def _setup(self) -> None:
        try:
            super()._setup()
        except SyntaxError:
            tags = self.tag_v2
            bits = tags.get(_BITS_PER_SAMPLE)
            if tags.get(_PHOTOMETRIC) != 1 or bits not in ((16, 16), (16,)):
                raise
            if tags.get(_SAMPLES_PER_PIXEL) != 2 or len(tags.get(_EXTRA_SAMPLES, ())) != 1:
                raise
            tags[_BITS_PER_SAMPLE] = (8, 8)
            try:
                super()._setup()
            finally:
                tags[_BITS_PER_SAMPLE] = bits


def open_pillow(file: BinaryIO, fmt: Format) -> ImageFile.ImageFile:
    """Pillow's parser for `fmt` over `file` (headers only; no pixel-count guard)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if fmt == "png":
            return PngImagePlugin.PngImageFile(file)
        if fmt == "jpeg":
            return JpegImagePlugin.jpeg_factory(file)
        return _TiffHeader(file)


def read_metadata(file: BinaryIO, fmt: Format, *, complete: bool = True) -> Metadata:
    """The metadata of an image file. With `complete`, a PNG's chunks after its image
    data are read too (the pixel data is skipped, not decoded)."""
    with open_pillow(file, fmt) as image:
        return metadata_of(image, file, fmt, complete=complete)


def read_file_metadata(path: Path) -> Metadata | None:
    """The metadata of an image file on disk; None when it is not a PNG, JPEG or TIFF
    or its headers cannot be read."""
    with path.open("rb") as file:
        head = file.read(8)
        fmt = next((kind for magic, kind in MAGIC if head.startswith(magic)), None)
        if fmt is None:
            return None
        file.seek(0)
        try:
            return read_metadata(file, fmt)
        except (ValueError, SyntaxError, EOFError, KeyError, IndexError, TypeError):
            return None


def metadata_of(
    image: ImageFile.ImageFile, file: BinaryIO, fmt: Format, *, complete: bool
) -> Metadata:
    width, height = image.size
    if fmt == "tiff":  # Pillow gives a TIFF's size turned upright; ours is as stored
        width, height = image.tag_v2[256], image.tag_v2[257]
    info = image.info
    dpi = info.get("dpi")
    meta = Metadata(
        format=fmt,
        width=width,
        height=height,
        gray=_is_gray(image),
        icc=info.get("icc_profile") or None,
        dpi=(float(dpi[0]), float(dpi[1])) if dpi and min(dpi) > 0 else None,
    )
    if fmt == "tiff":
        return _tiff_metadata(image, meta)
    exif = strip_prefix(info["exif"]) if info.get("exif") else None
    xmp = _as_bytes(info.get("xmp"))
    if fmt == "jpeg":
        photoshop = info.get("photoshop") or {}
        iptc = photoshop.get(IPTC_RESOURCE) if isinstance(photoshop, dict) else None
    else:
        raw = info.get(png.IPTC_KEY.decode())
        iptc = png.iptc_from_text(raw) if raw else None
        if complete and not (exif and xmp and iptc):
            exif, xmp, iptc = _png_after_image(file, exif, xmp, iptc)
    return replace(meta, orientation=orientation_of(exif), exif=exif, xmp=xmp, iptc=iptc or None)


def _is_gray(image: ImageFile.ImageFile) -> bool:
    # Pillow opens a 16-bit gray+alpha PNG as RGBA (it has no mode for it); its raw
    # mode still says LA.
    rawmode = getattr(getattr(image, "png", None), "im_rawmode", None) or ""
    return image.mode in GRAY_MODES or rawmode.startswith("LA")


def _png_after_image(file: BinaryIO, exif, xmp, iptc):
    """eXIf, XMP and IPTC chunks a PNG holds after its image data (Pillow stops at it)."""
    for kind, data in png.chunks_after_image(file):
        if kind == b"eXIf" and exif is None:
            exif = data
            continue
        text = png.text_of(kind, data) if kind in (b"tEXt", b"zTXt", b"iTXt") else None
        if text is None:
            continue
        if text[0] == png.XMP_KEY and xmp is None:
            xmp = text[1]
        elif text[0] == png.IPTC_KEY and iptc is None:
            iptc = png.iptc_from_text(text[1])
    return exif, xmp, iptc


def _tiff_metadata(image: TiffImagePlugin.TiffImageFile, meta: Metadata) -> Metadata:
    tags = image.tag_v2
    orientation = tags.get(TIFF_ORIENTATION, 1)
    iptc = _tag_bytes(tags, TIFF_IPTC)
    if iptc is None:
        resources = _tag_bytes(tags, TIFF_PHOTOSHOP)
        iptc = resource(resources, IPTC_RESOURCE) if resources else None
    return replace(
        meta,
        orientation=orientation if orientation in range(1, 9) else 1,
        exif=_tiff_exif(image),
        xmp=_tag_bytes(tags, TIFF_XMP),
        iptc=iptc or None,
    )


def _tiff_exif(image: TiffImagePlugin.TiffImageFile) -> bytes | None:
    """A TIFF's descriptive tags and its Exif and GPS IFDs, as one EXIF block."""
    try:
        source = image.getexif()
        out = Image.Exif()
        for tag in TIFF_EXIF_TAGS:
            if tag in source:
                out[tag] = source[tag]
        if str(out.get(270, "")).startswith('{"shape"'):
            del out[270]  # tifffile's note of the array's shape, not a description
        found = len(out) > 0
        for tag in (EXIF_IFD, GPS_IFD):
            if tag not in source:
                continue
            ifd = dict(source.get_ifd(tag))
            if tag == EXIF_IFD and INTEROP_IFD in ifd:
                interop = source.get_ifd(INTEROP_IFD)
                if interop:
                    ifd[INTEROP_IFD] = dict(interop)
                else:
                    del ifd[INTEROP_IFD]
            if ifd:
                out.get_ifd(tag).update(ifd)
                found = True
        if not found:
            return None
        return strip_prefix(out.tobytes())
    except (KeyError, ValueError, TypeError, OSError, struct.error, SyntaxError):
        return None  # an unreadable Exif IFD: the file's other metadata still goes


def _tag_bytes(tags, code: int) -> bytes | None:
    value = tags.get(code)
    if value is None:
        return None
    if isinstance(value, bytes):
        return value or None
    if isinstance(value, str):
        return value.encode("utf-8") or None
    if isinstance(value, tuple) and value and all(isinstance(item, bytes) for item in value):
        return b"".join(value) or None
    if isinstance(value, tuple) and all(isinstance(item, int) for item in value):
        kind = tags.tagtype.get(code)
        fmt = {1: "B", 7: "B", 3: "H", 4: "L"}.get(kind, "L")
        return struct.pack(f"{tags._endian}{len(value)}{fmt}", *value) or None
    return None


def _as_bytes(value) -> bytes | None:
    if isinstance(value, bytes):
        return value or None
    if isinstance(value, str):
        return value.encode("utf-8") or None
    return None
