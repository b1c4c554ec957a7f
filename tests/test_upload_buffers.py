"""Upload buffers are recycled, and recycling never changes a stored image."""

from __future__ import annotations

import asyncio

import numpy as np
from helpers import encode_tiff, raw_headers

from sidecar.api.buffers import BufferPool
from sidecar.api.keys import BODY_BUFFERS, IMAGES
from sidecar.cache import ImageStore, image_id


def test_pool_reuses_a_fitting_buffer_and_bounds_idle_memory():
    pool = BufferPool(max_idle_bytes=1000, max_idle=2)
    first = pool.take(400)
    pool.give(first)
    assert pool.take(300) is first  # fits (not more than twice the size + slack)
    pool.give(first)
    assert pool.take(500) is not first  # too small: a new one
    for size in (400, 400, 400):
        pool.give(bytearray(size))
    assert pool.idle_bytes <= 1000
    pool.give(bytearray(5000))  # over the bound alone: not kept
    assert pool.idle_bytes <= 1000


def variants(base: np.ndarray, count: int) -> list[np.ndarray]:
    out = []
    for i in range(count):
        pixels = base.copy()
        pixels[i % base.shape[0], -1, 0] ^= 1 + i
        out.append(pixels)
    return out


async def test_recycled_buffers_never_alter_stored_images(client, auth, app, portrait16, settings):
    images = variants(portrait16, 12)
    bodies = [(p.tobytes(), raw_headers(p)) for p in images[:6]]
    bodies += [(encode_tiff(p), {"Content-Type": "image/tiff"}) for p in images[6:]]

    async def send(body, headers):
        response = await client.post("/v1/images", data=body, headers={**auth, **headers})
        assert response.status == 201, await response.text()
        return (await response.json())["image_id"]

    ids = []
    for round_ in range(3):  # sequential and concurrent, so buffers are handed on mid-write
        if round_ == 0:
            ids = [await send(*b) for b in bodies[:4]]
        else:
            batch = bodies[4 * round_ : 4 * round_ + 4]
            ids += await asyncio.gather(*(send(*b) for b in batch))
    assert ids == [image_id(p) for p in images]
    app[IMAGES].flush()
    reopened = ImageStore(settings.images_dir)
    for key, pixels in zip(ids, images, strict=True):
        np.testing.assert_array_equal(reopened.load(key, verify=True), pixels)
    assert app[BODY_BUFFERS].idle_bytes > 0  # buffers did come back for reuse
