"""Malformed uploads get a 4xx JSON error with a stable code and leave nothing on disk."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from helpers import encode_jpeg, encode_png, encode_tiff, encode_tiff_opencv, files_under

from sidecar.cli import build_app
from sidecar.settings import Settings


async def post(client, auth, body, headers) -> tuple[int, dict]:
    response = await client.post(
        "/v1/images", data=body, headers={**auth, **headers}, skip_auto_headers=["Content-Type"]
    )
    return response.status, await response.json()


def raw(width, height, channels=3, depth=8) -> dict[str, str]:
    return {
        "Content-Type": "application/octet-stream",
        "X-Image-Width": str(width),
        "X-Image-Height": str(height),
        "X-Image-Channels": str(channels),
        "X-Image-Depth": str(depth),
    }


def encode_tiff_zlib(pixels):
    return encode_tiff(pixels, "zlib")


def assert_nothing_stored(settings):
    assert files_under(settings.images_dir) == []


@pytest.fixture(scope="module")
def small() -> np.ndarray:
    return np.random.default_rng(1).integers(0, 256, (64, 96, 3), dtype=np.uint8)


@pytest.mark.parametrize("kind", ["png", "jpeg", "tiff", "tiff-lzw"])
@pytest.mark.parametrize("keep", [0.5, 0.98])
async def test_truncated_files_are_invalid(client, auth, settings, small, kind, keep):
    encoders = {
        "png": encode_png,
        "jpeg": encode_jpeg,
        "tiff": encode_tiff,
        "tiff-lzw": encode_tiff_opencv,
    }
    body = encoders[kind](small)
    body = body[: int(len(body) * keep)]
    media = "image/tiff" if kind.startswith("tiff") else f"image/{kind}"
    status, payload = await post(client, auth, body, {"Content-Type": media})
    assert status == 422, payload
    assert payload["error"]["code"] == "invalid_image"
    assert_nothing_stored(settings)


@pytest.mark.parametrize("media", ["image/png", "image/jpeg", "image/tiff"])
@pytest.mark.parametrize("body", [b"", b"\x89P", b"not an image at all" * 10, bytes(5000)])
async def test_garbage_and_empty_bodies_are_invalid(client, auth, settings, media, body):
    status, payload = await post(client, auth, body, {"Content-Type": media})
    assert status == 422
    assert payload["error"]["code"] == "invalid_image"
    assert_nothing_stored(settings)


async def test_format_must_match_content_type(client, auth, settings, small):
    status, payload = await post(client, auth, encode_png(small), {"Content-Type": "image/jpeg"})
    assert status == 422
    assert payload["error"]["details"] == {"detected": "png", "declared": "jpeg"}
    assert_nothing_stored(settings)


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Content-Type": "text/plain"},
        {"Content-Type": "image/gif"},
        {"Content-Type": "application/json"},
    ],
)
async def test_wrong_content_type_is_415(client, auth, settings, small, headers):
    status, payload = await post(client, auth, encode_png(small), headers)
    assert status == 415
    assert payload["error"]["code"] == "unsupported_media_type"
    assert "image/png" in payload["error"]["details"]["accepted"]
    assert_nothing_stored(settings)


@pytest.mark.parametrize("delta", [-1, 1, -3 * 96])
async def test_raw_length_must_match_headers(client, auth, settings, small, delta):
    body = small.tobytes()
    body = body[:delta] if delta < 0 else body + b"\0" * delta
    status, payload = await post(client, auth, body, raw(96, 64))
    assert status == 422
    assert payload["error"]["code"] == "invalid_image"
    assert payload["error"]["details"]["expected"] == small.nbytes
    assert_nothing_stored(settings)


async def test_raw_length_mismatch_is_caught_without_content_length(client, auth, settings, small):
    body = small.tobytes() + b"\0" * 10

    async def chunks():
        yield body[:1000]
        yield body[1000:]

    status, payload = await post(client, auth, chunks(), raw(96, 64))
    assert status == 422
    assert payload["error"]["code"] == "invalid_image"
    assert_nothing_stored(settings)


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Image-Width": "96"},  # others missing
        {**raw(96, 64), "X-Image-Channels": "2"},
        {**raw(96, 64), "X-Image-Depth": "32"},
        {**raw(96, 64), "X-Image-Width": "-5"},
        {**raw(96, 64), "X-Image-Width": "0"},
        {**raw(96, 64), "X-Image-Height": "1e3"},
        {**raw(96, 64), "X-Image-Width": "ninety"},
    ],
)
async def test_bad_raw_headers_are_invalid_request(client, auth, settings, small, headers):
    headers = {"Content-Type": "application/octet-stream", **headers}
    status, payload = await post(client, auth, small.tobytes(), headers)
    assert status == 422
    assert payload["error"]["code"] == "invalid_request"
    assert payload["error"]["details"]["errors"]
    assert_nothing_stored(settings)


@pytest.mark.parametrize(
    "width,height", [(1_000_000_000, 1), (100_000, 100_000), (400_000, 2), (2**40, 2**40)]
)
async def test_absurd_raw_dimensions_are_refused_before_the_body(
    client, auth, settings, width, height
):
    status, payload = await post(client, auth, b"\0" * 1000, raw(width, height))
    assert status == 422
    assert payload["error"]["code"] == "image_too_large"
    assert_nothing_stored(settings)


@pytest.fixture
async def tight_client(aiohttp_client, tmp_path):
    settings = Settings(
        cache_dir=tmp_path / "c",
        config_dir=tmp_path / "k",
        max_upload_bytes=50_000,
        max_megapixels=0.01,
    )
    app = build_app(settings)
    token = settings.token_path.read_text().strip()
    return await aiohttp_client(app), {"Authorization": f"Bearer {token}"}, settings


async def test_body_over_the_byte_cap_is_413(tight_client):
    client, auth, settings = tight_client
    noise = np.random.default_rng(2).integers(0, 256, (200, 200, 3), dtype=np.uint8)
    body = encode_png(noise)
    assert len(body) > 50_000
    status, payload = await post(client, auth, body, {"Content-Type": "image/png"})
    assert status == 413
    assert payload["error"]["code"] == "payload_too_large"

    async def chunks():  # no Content-Length: the cap is enforced while streaming
        for start in range(0, len(body), 8192):
            yield body[start : start + 8192]

    status, payload = await post(client, auth, chunks(), {"Content-Type": "image/png"})
    assert status == 413
    assert_nothing_stored(settings)


@pytest.mark.parametrize(
    "encode,media",
    [(encode_png, "image/png"), (encode_jpeg, "image/jpeg"), (encode_tiff_zlib, "image/tiff")],
)
async def test_too_many_megapixels_is_422(tight_client, encode, media):
    client, auth, settings = tight_client
    flat = np.zeros((200, 200, 3), dtype=np.uint8)  # 0.04 MP > 0.01 MP, compresses small
    body = encode(flat)
    assert len(body) < 50_000  # under the byte cap: the pixel count is what is refused
    status, payload = await post(client, auth, body, {"Content-Type": media})
    assert status == 422
    assert payload["error"]["code"] == "image_too_large"
    assert payload["error"]["details"]["width"] == 200
    assert_nothing_stored(settings)


async def test_oversized_png_is_refused_from_its_header_before_the_body_ends(
    aiohttp_client, tmp_path
):
    settings = Settings(cache_dir=tmp_path / "c", config_dir=tmp_path / "k", max_megapixels=1)
    client = await aiohttp_client(build_app(settings))
    auth = {"Authorization": f"Bearer {settings.token_path.read_text().strip()}"}
    noise = np.random.default_rng(3).integers(0, 256, (1500, 1500, 3), dtype=np.uint8)
    body = encode_png(noise)
    sent = 0

    async def chunks():
        nonlocal sent
        for start in range(0, len(body), 64 * 1024):
            sent = start
            yield body[start : start + 64 * 1024]
            # what is tested: a body that trickles in, as over a real network, which the
            # refusal from its header overtakes (not a wait for anything)
            await asyncio.sleep(0.005)

    status, payload = await post(client, auth, chunks(), {"Content-Type": "image/png"})
    assert status == 422
    assert payload["error"]["code"] == "image_too_large"
    assert sent < len(body) // 2
    assert_nothing_stored(settings)
