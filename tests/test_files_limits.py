"""Our size limits are the only ones (Pillow's own pixel guard does not refuse a valid
image within them), and running out of memory while taking an upload is a clear 503."""

from __future__ import annotations

import io
import struct
import zlib

import cv2
import numpy as np
import pytest
import tifffile

import sidecar.api.images
from sidecar.errors import ImageTooLarge, OutOfMemory
from sidecar.imaging import Limits, check_dimensions, decode_image, read_header
from sidecar.schema import ErrorBody

SIDE = 13_400  # 179.6 MP: within our 300 MP, over Pillow's default guard (2 × 89.5 MP)


def chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">L", len(data)) + kind + data + struct.pack(">L", crc)


def gray_png(width: int, height: int) -> bytes:
    """A valid 8-bit gray PNG of zeros, compressed without holding its pixels."""
    row = bytes(width + 1)  # filter byte + samples
    deflate = zlib.compressobj(9)
    parts = [deflate.compress(row * min(200, height - top)) for top in range(0, height, 200)]
    parts.append(deflate.flush())
    header = struct.pack(">LLBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", b"".join(parts))
        + chunk(b"IEND", b"")
    )


@pytest.fixture(scope="module")
def big_png() -> bytes:
    return gray_png(SIDE, SIDE)


def test_a_180_mp_png_passes_the_header_checks(big_png):
    assert len(big_png) < 1_000_000
    header = read_header(big_png, "png", complete=True)
    assert (header.width, header.height) == (SIDE, SIDE)
    check_dimensions(header.width, header.height, Limits())  # within 300 MP: no error
    assert read_header(big_png[:200], "png", complete=False).width == SIDE


def test_the_small_png_maker_is_a_real_png():
    pixels = cv2.imdecode(np.frombuffer(gray_png(40, 30), np.uint8), cv2.IMREAD_UNCHANGED)
    assert pixels.shape == (30, 40) and not pixels.any()


async def test_a_180_mp_png_upload_reaches_the_decoder(client, auth, big_png, monkeypatch):
    seen = []

    def decode(data, header, limits):  # stands in for decoding 540 MB of RGB
        seen.append((header.width, header.height))
        return np.zeros((4, 4, 3), np.uint8)

    monkeypatch.setattr(sidecar.api.images, "decode_image", decode)
    response = await client.post(
        "/v1/images", data=big_png, headers={**auth, "Content-Type": "image/png"}
    )
    assert response.status == 201, await response.text()
    assert seen == [(SIDE, SIDE)]


@pytest.mark.parametrize("size", [(20_000, 20_000), (300_001, 1)])
async def test_over_our_limits_is_refused_from_the_header(client, auth, size, monkeypatch):
    def never(*args):
        raise AssertionError("decoded an image over the limit")

    monkeypatch.setattr(sidecar.api.images, "decode_image", never)
    width, height = size
    header = struct.pack(">LLBBBBB", width, height, 8, 0, 0, 0, 0)
    body = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0"))
    response = await client.post(
        "/v1/images", data=body + chunk(b"IEND", b""), headers={**auth, "Content-Type": "image/png"}
    )
    assert response.status == 422
    error = ErrorBody.model_validate_json(await response.text()).error
    assert error.code == "image_too_large"
    assert error.details["max_megapixels"] == 300 and error.details["width"] == width


def test_over_the_limit_from_a_tiff_header_too():
    out = io.BytesIO()
    tifffile.imwrite(out, np.zeros((8, 8), np.uint8))
    data = bytearray(out.getvalue())
    with tifffile.TiffFile(io.BytesIO(bytes(data))) as tif:
        width_at = tif.pages.first.tags[256].valueoffset
        height_at = tif.pages.first.tags[257].valueoffset
    struct.pack_into("<L", data, width_at, 20_000)
    struct.pack_into("<L", data, height_at, 20_000)
    header = read_header(bytes(data), "tiff", complete=True)
    assert (header.width, header.height) == (20_000, 20_000)
    with pytest.raises(ImageTooLarge):
        decode_image(bytes(data), header, Limits())


async def test_memory_error_while_decoding_is_a_503_with_advice(
    client, auth, portrait, monkeypatch
):
    def decode(data, header, limits):
        raise MemoryError

    monkeypatch.setattr(sidecar.api.images, "decode_image", decode)
    ok, png = cv2.imencode(".png", portrait)
    response = await client.post(
        "/v1/images", data=png.tobytes(), headers={**auth, "Content-Type": "image/png"}
    )
    assert response.status == 503
    text = await response.text()
    assert "Traceback" not in text
    error = ErrorBody.model_validate_json(text).error
    assert error.code == "out_of_memory"
    assert "retry" in error.message and "smaller image" in error.message

    monkeypatch.undo()  # memory back: the same upload goes through
    response = await client.post(
        "/v1/images", data=png.tobytes(), headers={**auth, "Content-Type": "image/png"}
    )
    assert response.status == 201


def test_decoders_running_out_of_memory_are_out_of_memory_not_corrupt(monkeypatch):
    pixels = np.arange(64 * 48 * 3, dtype=np.uint16).reshape(64, 48, 3)
    tiff = io.BytesIO()
    tifffile.imwrite(tiff, pixels, photometric="rgb", compression="zlib")
    data = tiff.getvalue()

    def no_memory(*args, **kwargs):
        raise MemoryError

    with monkeypatch.context() as patch:  # tifffile's inflating
        patch.setattr(tifffile.TiffPage, "asarray", no_memory)
        with pytest.raises(OutOfMemory) as caught:
            decode_image(data, read_header(data, "tiff", complete=True), Limits())
    assert caught.value.status == 503 and caught.value.details["width"] == 48

    def cv_no_memory(*args, **kwargs):
        error = cv2.error("Failed to allocate 1 bytes")
        error.code = cv2.Error.StsNoMem
        raise error

    ok, png = cv2.imencode(".png", pixels)
    with monkeypatch.context() as patch:  # OpenCV's decoders
        patch.setattr(cv2, "imdecode", cv_no_memory)
        with pytest.raises(OutOfMemory):
            decode_image(png.tobytes(), read_header(png.tobytes(), "png", complete=True), Limits())
