"""Retouched files: a result's pixels written as JPEG, PNG or TIFF with the
metadata of the file they came from.

Kept: the ICC profile byte for byte (the pixels are never converted, so they stay in
its colour space), EXIF (orientation reset to 1, as the pixels are upright), XMP,
IPTC, resolution, bit depth, alpha, and grayscale (a gray input's result, which the
retouch ran on as RGB, becomes one channel again).
"""

from __future__ import annotations

import io
import re
from dataclasses import replace
from typing import Literal

import cv2
import numpy as np
from PIL import Image

from ..errors import ApiError
from . import jpeg, png
from .decode import decode_image, read_header, sniff_format
from .exif import EXIF_PREFIX, upright_exif
from .metadata import Metadata
from .pixels import Limits
from .tiff import encode_tiff

OutputFormat = Literal["png", "jpeg", "tiff"]
JPEG_QUALITY = 95
PNG_COMPRESSION = 1  # as the sidecar's own PNGs: 16-bit photographs hardly compress more
_ANY_SIZE = Limits(max_megapixels=1e9, max_side=10**9)  # the sidecar checked the input
_JPEG_XMP_MAX = 65504 - 29  # one APP1 segment less its XMP name
_JPEG_EXIF_MAX = 65533
_XMP_ORIENTATION = (
    re.compile(rb"(tiff:Orientation\s*=\s*[\"'])\s*[1-8]\s*([\"'])"),
    re.compile(rb"(<tiff:Orientation>)\s*[1-8]\s*(</tiff:Orientation>)"),
)


def output_format(name: str) -> OutputFormat:
    """The format a file name asks for (.png, .jpg/.jpeg, .tif/.tiff)."""
    suffix = name.rsplit(".", 1)[-1].lower()
    return {"png": "png", "jpg": "jpeg", "jpeg": "jpeg", "tif": "tiff", "tiff": "tiff"}[suffix]


def output_file(result, fmt: OutputFormat, meta: Metadata | None) -> list:
    """The output file, as chunks for `atomic_write`, from the sidecar's result (a PNG
    or TIFF of upright RGB(A) pixels at the input's depth)."""
    kind = _result_kind(result)
    if fmt == "png" and kind == "png" and not (meta and meta.gray):
        # Same pixels, same format: the metadata goes in without encoding again.
        view = memoryview(result).cast("B")
        width, height = (int.from_bytes(view[at : at + 4], "big") for at in (16, 20))
        return png.insert_before_image(view, _png_chunks(outgoing(meta, width, height, False)))
    return encode_output(_decoded(result, kind), fmt, meta)


def decode_result(result) -> np.ndarray:
    """The sidecar's result (a PNG or TIFF) as canonical pixels."""
    return _decoded(result, _result_kind(result))


def _result_kind(result) -> Literal["png", "tiff"]:
    kind = sniff_format(result)
    if kind not in ("png", "tiff"):
        raise ValueError("the sidecar's result is not a PNG or TIFF")
    return kind


def _decoded(result, kind: Literal["png", "tiff"]) -> np.ndarray:
    try:
        return decode_image(result, read_header(result, kind, complete=True), _ANY_SIZE)
    except ApiError as exc:
        raise ValueError(f"the sidecar's result: {exc.message}") from exc


def encode_output(pixels: np.ndarray, fmt: OutputFormat, meta: Metadata | None) -> list:
    """Canonical pixels (upright RGB/RGBA, 8 or 16 bit) as a file of `fmt` carrying
    `meta` (the input's metadata), in chunks for `atomic_write`."""
    pixels, out = as_written(pixels, meta)
    channels = pixels.shape[2]
    if fmt == "jpeg":
        return [_encode_jpeg(pixels, out)]
    if fmt == "tiff":
        return [encode_tiff(pixels, out)]
    if channels == 2:
        data = png.encode_gray_alpha(pixels)
    else:
        code = {1: None, 3: cv2.COLOR_RGB2BGR, 4: cv2.COLOR_RGBA2BGRA}[channels]
        bgr = pixels[:, :, 0] if code is None else cv2.cvtColor(pixels, code)
        ok, encoded = cv2.imencode(".png", bgr, [cv2.IMWRITE_PNG_COMPRESSION, PNG_COMPRESSION])
        if not ok:
            raise ValueError("PNG encoding failed")
        data = encoded.data
    return png.insert_before_image(data, _png_chunks(out))


def as_written(pixels: np.ndarray, meta: Metadata | None) -> tuple[np.ndarray, Metadata | None]:
    """Canonical pixels as an output of an input with `meta` holds them (one channel, or
    two with alpha, where the input was gray), and the metadata it carries."""
    if meta is not None and meta.gray:
        pixels = to_gray(pixels)
    height, width, channels = pixels.shape
    return pixels, outgoing(meta, width, height, gray=channels <= 2)


def to_gray(pixels: np.ndarray) -> np.ndarray:
    """(H, W, 1) or, with alpha, (H, W, 2): the luma of RGB (equal channels stay exact)."""
    if pixels.shape[2] == 4:
        gray = cv2.cvtColor(pixels, cv2.COLOR_RGBA2GRAY)
        return np.ascontiguousarray(np.dstack([gray, pixels[:, :, 3]]))
    return cv2.cvtColor(pixels, cv2.COLOR_RGB2GRAY)[:, :, None]


def outgoing(meta: Metadata | None, width: int, height: int, gray: bool) -> Metadata | None:
    """The input's metadata as it is written with upright pixels of `width` × `height`."""
    if meta is None:
        return None
    icc = meta.icc if meta.icc and _icc_fits(meta.icc, gray) else None
    exif = upright_exif(meta.exif, width, height, meta.rotated) if meta.exif else None
    xmp = meta.xmp
    if xmp and meta.rotated:
        for pattern in _XMP_ORIENTATION:
            xmp = pattern.sub(rb"\g<1>1\g<2>", xmp)
    dpi = meta.dpi
    if dpi and meta.orientation in (5, 6, 7, 8):
        dpi = (dpi[1], dpi[0])
    return replace(meta, orientation=1, icc=icc, exif=exif, xmp=xmp, dpi=dpi)


def _icc_fits(icc: bytes, gray: bool) -> bool:
    """Whether the profile's colour space is the output's (a CMYK JPEG's profile does
    not describe the RGB it was decoded to)."""
    return icc[16:20] == (b"GRAY" if gray else b"RGB ")


def _png_chunks(meta: Metadata | None) -> list[bytes]:
    if meta is None:
        return []
    chunks = []
    if meta.icc:
        chunks.append(png.iccp(meta.icc))
    if meta.dpi:
        chunks.append(png.phys(meta.dpi))
    if meta.exif:
        chunks.append(png.exif_chunk(meta.exif))
    if meta.xmp:
        chunks.append(png.xmp_chunk(meta.xmp))
    if meta.iptc:
        chunks.append(png.iptc_chunk(meta.iptc))
    return chunks


def _encode_jpeg(pixels: np.ndarray, meta: Metadata | None) -> bytes:
    channels = pixels.shape[2]
    pixels = pixels[:, :, :1] if channels <= 2 else pixels[:, :, :3]  # alpha dropped
    if pixels.dtype != np.uint8:
        pixels = cv2.convertScaleAbs(np.ascontiguousarray(pixels), alpha=1 / 257)
    pixels = np.ascontiguousarray(pixels[:, :, 0] if pixels.shape[2] == 1 else pixels)
    options: dict = {"quality": JPEG_QUALITY}
    if meta is not None:
        if meta.icc:
            options["icc_profile"] = meta.icc
        if meta.exif and len(meta.exif) + len(EXIF_PREFIX) <= _JPEG_EXIF_MAX:
            options["exif"] = EXIF_PREFIX + meta.exif
        if meta.xmp and len(meta.xmp) <= _JPEG_XMP_MAX:
            options["xmp"] = meta.xmp
        if meta.dpi:
            options["dpi"] = meta.dpi
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "JPEG", **options)
    data = out.getvalue()
    segment = jpeg.app13(meta.iptc) if meta is not None and meta.iptc else None
    return jpeg.insert_after_app_segments(data, [segment]) if segment else data
