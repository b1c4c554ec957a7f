"""POST /v1/images and HEAD /v1/images/{id}: content-addressed, any encoding."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from helpers import (
    GRAY_ALPHA,
    encode_jpeg,
    encode_png,
    encode_tiff,
    encode_tiff_opencv,
    files_under,
    raw_headers,
)

from sidecar.api.keys import IMAGES
from sidecar.cache import ImageStore, image_id
from sidecar.schema import ImageInfo


async def upload(
    client,
    auth,
    body: bytes,
    content_type: str,
    status: int | None = None,
    headers: dict[str, str] | None = None,
) -> dict:
    response = await client.post(
        "/v1/images", data=body, headers={**auth, "Content-Type": content_type, **(headers or {})}
    )
    payload = await response.json()
    if status is not None:
        assert response.status == status, payload
    return payload


async def upload_raw(client, auth, pixels: np.ndarray, status: int | None = None) -> dict:
    response = await client.post(
        "/v1/images", data=pixels.tobytes(), headers={**auth, **raw_headers(pixels)}
    )
    payload = await response.json()
    if status is not None:
        assert response.status == status, payload
    return payload


async def test_png_tiff_and_raw_of_the_same_pixels_share_one_id(
    client, auth, portrait, settings, app
):
    first = await upload(client, auth, encode_png(portrait), "image/png", 201)
    info = ImageInfo.model_validate(first)
    assert (info.width, info.height, info.channels, info.depth) == (512, 512, 3, 8)
    assert info.image_id == image_id(portrait)
    for body, kind in (
        (encode_tiff(portrait), "image/tiff"),
        (encode_tiff(portrait, "zlib"), "image/tiff"),
        (encode_tiff_opencv(portrait), "image/tiff"),
    ):
        again = await upload(client, auth, body, kind, 200)
        assert again == first
    assert (await upload_raw(client, auth, portrait, 200)) == first
    app[IMAGES].flush()
    assert len(files_under(settings.images_dir)) == 1


async def test_jpeg_id_is_that_of_its_decoded_pixels(client, auth, portrait):
    jpeg = encode_jpeg(portrait)
    decoded = cv2.cvtColor(
        cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB
    )
    first = await upload(client, auth, jpeg, "image/jpeg", 201)
    again = await upload_raw(client, auth, np.ascontiguousarray(decoded), 200)
    assert first["image_id"] == again["image_id"] == image_id(decoded)


@pytest.mark.parametrize("channels", [3, 4])
async def test_16_bit_round_trip_is_exact(client, auth, portrait16, settings, app, channels):
    pixels = (
        portrait16
        if channels == 3
        else np.dstack(
            [portrait16, np.linspace(0, 65535, 512 * 512).astype(np.uint16).reshape(512, 512)]
        )
    )
    pixels = np.ascontiguousarray(pixels)
    first = await upload(client, auth, encode_tiff(pixels), "image/tiff", 201)
    assert (first["channels"], first["depth"]) == (channels, 16)
    assert (await upload(client, auth, encode_png(pixels), "image/png", 200)) == first
    assert (await upload(client, auth, encode_tiff_opencv(pixels), "image/tiff", 200)) == first
    assert (await upload_raw(client, auth, pixels, 200)) == first
    app[IMAGES].flush()
    stored = ImageStore(settings.images_dir).load(first["image_id"])
    assert stored.dtype == np.dtype("<u2")
    np.testing.assert_array_equal(stored, pixels)


async def test_gray_becomes_rgb_and_gray_alpha_becomes_rgba(client, auth, portrait):
    gray = np.ascontiguousarray(portrait[:, :, 1])
    info = await upload(client, auth, encode_png(gray), "image/png", 201)
    assert info["channels"] == 3
    assert info["image_id"] == image_id(np.ascontiguousarray(np.dstack([gray] * 3)))
    info = await upload(client, auth, encode_tiff(gray), "image/tiff", 200)
    assert info["channels"] == 3


@pytest.mark.parametrize(("kind", "depth", "extra"), GRAY_ALPHA)
async def test_gray_alpha_tiff_and_png_upload_as_rgba_at_their_depth(
    client, auth, portrait, kind, depth, extra
):
    import io

    import tifffile

    from sidecar.imaging.png import encode_gray_alpha

    gray = np.ascontiguousarray(portrait[:, :, 1])
    alpha = np.ascontiguousarray(portrait[::-1, :, 0])
    pixels = (
        np.dstack([gray, alpha]).astype(np.uint16) * 257
        if depth == 16
        else np.dstack([gray, alpha])
    )
    if kind == "tiff":
        out = io.BytesIO()
        tifffile.imwrite(out, pixels, photometric="minisblack", extrasamples=(extra,))
        body = out.getvalue()
    else:
        body = encode_gray_alpha(pixels)
    info = await upload(client, auth, body, f"image/{kind}", 201)
    assert (info["channels"], info["depth"]) == (4, depth)
    rgba = np.dstack([pixels[..., 0]] * 3 + [pixels[..., 1]])
    assert info["image_id"] == image_id(np.ascontiguousarray(rgba))


async def test_planar_tiff_equals_interleaved(client, auth, portrait16):
    import io

    import tifffile

    out = io.BytesIO()
    planes = np.moveaxis(portrait16, -1, 0)
    tifffile.imwrite(out, planes, photometric="rgb", planarconfig="separate")
    info = await upload(client, auth, out.getvalue(), "image/tiff", 201)
    assert info["image_id"] == image_id(portrait16)


async def test_chunked_upload_without_length(client, auth, portrait):
    body = encode_png(portrait)

    async def chunks():
        for start in range(0, len(body), 10_000):
            yield body[start : start + 10_000]

    response = await client.post(
        "/v1/images", data=chunks(), headers={**auth, "Content-Type": "image/png"}
    )
    assert response.status == 201
    assert (await response.json())["image_id"] == image_id(portrait)


async def test_head_reports_presence(client, auth, portrait):
    key = image_id(portrait)
    response = await client.head(f"/v1/images/{key}", headers=auth)
    assert response.status == 404
    await upload_raw(client, auth, portrait, 201)
    response = await client.head(f"/v1/images/{key}", headers=auth)
    assert response.status == 200


@pytest.mark.parametrize(
    "bad_id",
    ["..%2F..%2Fconfig%2Ftoken", "A" * 64, "0" * 63, "g" * 64, "%2e%2e", "0" * 64 + ".img"],
)
async def test_head_with_malformed_id_is_not_found(client, auth, bad_id):
    response = await client.head(f"/v1/images/{bad_id}", headers=auth)
    assert response.status == 404


async def test_one_pixel_edit_bottom_right_changes_the_id(portrait16):
    edited = portrait16.copy()
    edited[-1, -1, -1] ^= 1
    assert image_id(edited) != image_id(portrait16)
    # shape and depth are part of the key, not only the bytes
    assert image_id(portrait16.view(np.uint8)) != image_id(portrait16)


async def test_big_endian_16_bit_tiff_equals_little_endian(client, auth, portrait16):
    import io

    import tifffile

    out = io.BytesIO()
    tifffile.imwrite(out, portrait16, photometric="rgb", byteorder=">")
    info = await upload(client, auth, out.getvalue(), "image/tiff", 201)
    assert info["image_id"] == image_id(portrait16)
