"""EXIF orientation (1–8) is applied the same way to JPEG, PNG and TIFF uploads: the
stored pixels, the reported size and the image id are those of the upright image."""

from __future__ import annotations

import io
import struct
import zlib

import cv2
import numpy as np
import pytest
import tifffile
from PIL import Image, ImageOps

from sidecar.api.keys import IMAGES
from sidecar.cache import image_id
from sidecar.imaging import Limits, decode_image, read_header

# Pillow's own mapping (ImageOps.exif_transpose): what turns the stored image upright
UPRIGHT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
# ... and its inverse, to store an upright pattern the way a camera would
STORED = {**UPRIGHT, 6: Image.Transpose.ROTATE_90, 8: Image.Transpose.ROTATE_270}
BLOCK = 16  # quadrant blocks on JPEG's 16-px MCU grid, so colours do not bleed


def pattern(height: int = 2 * BLOCK, width: int = 3 * BLOCK) -> np.ndarray:
    """Upright RGB: four quadrants of distinct colours, so each of the eight
    orientations gives a different arrangement, and a wider-than-tall shape."""
    image = np.zeros((height, width, 3), np.uint8)
    colours = {(0, 0): (230, 20, 20), (0, 1): (20, 230, 20), (1, 0): (20, 20, 230)}
    image[:] = (240, 240, 240)
    for (row, col), colour in colours.items():
        rows = slice(0, BLOCK) if row == 0 else slice(BLOCK, height)
        cols = slice(0, width - BLOCK) if col == 0 else slice(width - BLOCK, width)
        image[rows, cols] = colour
    return image


def stored(upright: np.ndarray, orientation: int) -> Image.Image:
    image = Image.fromarray(upright)
    return image if orientation == 1 else image.transpose(STORED[orientation])


def exif_bytes(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    exif[0x010F] = "Test camera"
    return exif.tobytes()


def jpeg_file(upright: np.ndarray, orientation: int) -> bytes:
    out = io.BytesIO()
    stored(upright, orientation).save(
        out, "JPEG", quality=100, subsampling=0, exif=exif_bytes(orientation)
    )
    return out.getvalue()


def png_file(upright: np.ndarray, orientation: int) -> bytes:
    out = io.BytesIO()
    stored(upright, orientation).save(out, "PNG", exif=exif_bytes(orientation))
    return out.getvalue()


def png_with_exif_after_pixels(upright: np.ndarray, orientation: int) -> bytes:
    """A PNG whose eXIf chunk follows its image data, which PNG allows."""
    out = io.BytesIO()
    stored(upright, orientation).save(out, "PNG")
    data = out.getvalue()
    blob = exif_bytes(orientation)[6:]
    crc = zlib.crc32(b"eXIf" + blob) & 0xFFFFFFFF
    chunk = struct.pack(">L", len(blob)) + b"eXIf" + blob + struct.pack(">L", crc)
    end = data.rindex(b"IEND") - 4
    return data[:end] + chunk + data[end:]


def tiff_file(upright: np.ndarray, orientation: int, depth: int = 8) -> bytes:
    """tifffile, uncompressed: the sidecar's own TIFF decoder."""
    pixels = np.asarray(stored(upright, orientation))
    if depth == 16:
        pixels = pixels.astype(np.uint16) * 257
    out = io.BytesIO()
    tags = [(274, "H", 1, orientation, True)]
    tifffile.imwrite(out, pixels, photometric="rgb", extratags=tags)
    return out.getvalue()


def tiff_lzw_file(upright: np.ndarray, orientation: int) -> bytes:
    """Pillow with LZW: decoded by OpenCV (libtiff)."""
    out = io.BytesIO()
    image = stored(upright, orientation)
    image.save(out, "TIFF", compression="tiff_lzw", tiffinfo={274: orientation})
    return out.getvalue()


async def upload(client, auth, body: bytes, content_type: str) -> dict:
    response = await client.post(
        "/v1/images", data=body, headers={**auth, "Content-Type": content_type}
    )
    payload = await response.json()
    assert response.status in (200, 201), payload
    return payload


def test_the_test_files_are_what_pillow_shows_upright():
    upright = pattern()
    for orientation in range(1, 9):
        for make in (png_file, tiff_lzw_file):
            shown = ImageOps.exif_transpose(Image.open(io.BytesIO(make(upright, orientation))))
            np.testing.assert_array_equal(np.asarray(shown.convert("RGB")), upright)


@pytest.mark.parametrize("orientation", range(1, 9))
async def test_jpeg_every_orientation_is_stored_upright(client, auth, app, orientation):
    upright = pattern()
    data = jpeg_file(upright, orientation)
    info = await upload(client, auth, data, "image/jpeg")
    assert (info["width"], info["height"]) == (upright.shape[1], upright.shape[0])

    # exactly libjpeg's pixels as stored, turned upright by Pillow's mapping
    as_stored = cv2.imdecode(
        np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION
    )
    expected = Image.fromarray(cv2.cvtColor(as_stored, cv2.COLOR_BGR2RGB))
    if orientation != 1:
        expected = expected.transpose(UPRIGHT[orientation])
    expected = np.ascontiguousarray(np.asarray(expected))
    assert info["image_id"] == image_id(expected)
    pixels = app[IMAGES].load(info["image_id"])
    np.testing.assert_array_equal(pixels, expected)
    assert np.abs(pixels.astype(int) - upright).max() <= 8  # and it is the pattern


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("make", [png_file, tiff_file, tiff_lzw_file])
async def test_png_and_tiff_orientations_are_stored_upright(client, auth, make, orientation):
    upright = pattern()
    info = await upload(client, auth, make(upright, orientation), f"image/{make.__name__[:3]}")
    assert (info["width"], info["height"]) == (upright.shape[1], upright.shape[0])
    assert info["image_id"] == image_id(upright)


@pytest.mark.parametrize("orientation", [6, 8])
async def test_16_bit_tiff_and_exif_after_png_pixels(client, auth, orientation):
    upright = pattern()
    info = await upload(client, auth, tiff_file(upright, orientation, 16), "image/tiff")
    assert info["image_id"] == image_id(np.ascontiguousarray(upright.astype(np.uint16) * 257))
    late = png_with_exif_after_pixels(upright, orientation)
    assert Image.open(io.BytesIO(late)).info.get("exif") is None  # Pillow stops at IDAT
    info = await upload(client, auth, late, "image/png")
    assert info["image_id"] == image_id(upright)


def test_header_reports_stored_size_and_orientation():
    upright = pattern()
    header = read_header(jpeg_file(upright, 6), "jpeg", complete=True)
    assert (header.width, header.height, header.orientation) == (32, 48, 6)
    assert header.upright_size == (48, 32)
    pixels = decode_image(jpeg_file(upright, 6), header, Limits())
    assert pixels.shape == (32, 48, 3) and pixels.flags.c_contiguous


def test_unreadable_orientation_values_are_ignored():
    upright = pattern()
    for value in (0, 9, 65535):
        exif = Image.Exif()
        exif[0x0112] = value
        out = io.BytesIO()
        Image.fromarray(upright).save(out, "JPEG", quality=100, exif=exif.tobytes())
        header = read_header(out.getvalue(), "jpeg", complete=True)
        assert header.orientation == 1, value
        assert decode_image(out.getvalue(), header, Limits()).shape == upright.shape


@pytest.mark.parametrize("orientation", [3, 6, 8])
async def test_16_bit_gray_lzw_tiff_is_stored_upright(client, auth, orientation):
    """16-bit gray with LZW: decoded by OpenCV's other TIFF path."""
    upright = (pattern()[:, :, 0].astype(np.uint16) * 257) ^ 0x5A
    image = Image.fromarray(upright)  # I;16
    if orientation != 1:
        image = image.transpose(STORED[orientation])
    out = io.BytesIO()
    image.save(out, "TIFF", compression="tiff_lzw", tiffinfo={274: orientation})
    info = await upload(client, auth, out.getvalue(), "image/tiff")
    assert (info["width"], info["height"], info["depth"]) == (48, 32, 16)
    assert info["image_id"] == image_id(np.ascontiguousarray(np.dstack([upright] * 3)))
