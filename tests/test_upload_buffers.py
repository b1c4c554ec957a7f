"""Upload buffers are recycled, and recycling never changes a stored image."""

from __future__ import annotations

import asyncio

import cv2
import numpy as np
from helpers import encode_tiff, raw_headers

from sidecar.api.keys import BODY_BUFFERS, IMAGES
from sidecar.cache import ImageStore, image_id
from sidecar.imaging.buffers import BufferPool


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


def test_an_array_buffer_comes_back_only_when_no_other_view_of_it_is_alive():
    pool = BufferPool()
    pixels = pool.array((1200, 1600, 3), np.uint16)  # 11.5 MB: on a pooled buffer
    assert pixels.flags.c_contiguous and pixels.shape == (1200, 1600, 3)
    rgb = pixels[..., :2]  # another view of the same buffer, still alive
    assert not pool.give_array(pixels) and pool.idle_bytes == 0
    del rgb
    same = pixels  # a second name for the same array
    assert not pool.give_array(pixels)
    del same
    assert pool.give_array(pixels) and pool.idle_bytes >= pixels.nbytes
    del pixels
    again = pool.array((1200, 1600, 3), np.uint16)  # the same buffer goes round
    assert pool.idle_bytes == 0
    assert not pool.give_array(np.zeros((1200, 1600, 3), np.uint16))  # not pooled
    small = pool.array((10, 10, 3), np.uint8)  # small arrays are plain numpy
    assert small.base is None and not pool.give_array(small)
    assert again.dtype == np.uint16


def test_the_engine_renders_into_a_pooled_result_with_the_same_bits(portrait16):
    from retouch_support import FAKE_ID, RecordingContext, new_engine, run_op

    from sidecar.engines import RunInput
    from sidecar.schema import JobRequest

    big = cv2.resize(portrait16, (1600, 1200))  # 11.5 MB: big enough to be pooled
    engine = new_engine()
    plain = run_op(engine, big, "beauty")
    pool = BufferPool()
    pool.give(bytearray(big.nbytes))  # a warm buffer waiting
    request = JobRequest(op="beauty", image_id=FAKE_ID, preview={"progressive": False})
    run = RunInput(request=request, seed=0, pixels=big, buffers=pool)
    result = engine.run(run, RecordingContext())
    assert pool.idle_bytes == 0  # the result took it
    assert np.array_equal(result, plain)
    assert pool.give_array(result) and pool.idle_bytes >= big.nbytes


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


async def test_job_inputs_and_results_go_round_and_never_alter_a_result(
    client, auth, app, portrait16
):
    from jobs_support import upload, wait_for
    from retouch_support import new_engine, run_op

    big = cv2.resize(portrait16, (1600, 1200))  # 11.5 MB: pooled
    images = [big.copy() for _ in range(3)]
    for n, pixels in enumerate(images):
        pixels[:8, :8] = n * 4000  # three different images
    results = []
    for pixels in images:  # each job reads its input into, and renders into, pool buffers
        image_id = await upload(client, auth, pixels)
        body = {"op": "beauty", "image_id": image_id, "preview": {"progressive": False}}
        response = await client.post("/v1/jobs", json=body, headers=auth)
        job_id = (await response.json())["job_id"]
        assert (await wait_for(client, auth, job_id, timeout=60))["state"] == "done"
        raw = await client.get(f"/v1/jobs/{job_id}/result?format=raw", headers=auth)
        results.append(np.frombuffer(await raw.read(), np.uint16).reshape(big.shape))
    app[IMAGES].flush()
    assert app[IMAGES].buffers.idle_bytes >= big.nbytes  # inputs and results came back
    engine = new_engine()
    for pixels, result in zip(images, results, strict=True):
        assert np.array_equal(result, run_op(engine, pixels, "beauty"))
