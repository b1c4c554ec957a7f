"""The benchmark baseline (bench/naive/) does what it claims, flaws included."""

from __future__ import annotations

import base64

import numpy as np
import pytest

from bench.naive.cache import PREFIX_BYTES, PickleCache, image_key, result_key
from bench.naive.retouch import apply_full, load_engine
from bench.naive.server import build_app
from sidecar.cache import image_id
from sidecar.engines.base import RunInput
from sidecar.engines.retouch import RetouchEngine
from sidecar.schema import JobRequest


def _row_past_prefix(pixels: np.ndarray) -> int:
    row_bytes = pixels.shape[1] * pixels.shape[2] * pixels.dtype.itemsize
    return PREFIX_BYTES // row_bytes + 1


def test_naive_key_misses_a_one_pixel_edit_past_64_kb_and_the_product_id_does_not(portrait16):
    edited = portrait16.copy()
    row = _row_past_prefix(portrait16) + 200
    edited[row, 250, 1] ^= 1
    assert image_key(edited) == image_key(portrait16)
    assert image_id(edited) != image_id(portrait16)


def test_naive_key_sees_an_edit_inside_its_first_64_kb(portrait16):
    edited = portrait16.copy()
    edited[0, 0, 0] ^= 1
    assert image_key(edited) != image_key(portrait16)


def test_pickle_cache_round_trip_and_keys_include_params_and_intensity(tmp_path):
    cache = PickleCache(tmp_path / "results")
    key = result_key("k" * 64, "beauty", {"strength": 0.5}, 1.0)
    assert cache.get(key) is None
    value = np.arange(12, dtype=np.uint16).reshape(2, 2, 3)
    cache.put(key, value)
    assert np.array_equal(cache.get(key), value)
    assert key != result_key("k" * 64, "beauty", {"strength": 0.5}, 0.6)
    assert key != result_key("k" * 64, "beauty", {"strength": 0.6}, 1.0)


class _Quiet:
    def stage(self, *args): ...
    def progress(self, *args): ...
    def preview(self, *args, **kwargs): ...
    def checkpoint(self): ...


def test_naive_apply_gives_the_same_pixels_as_the_product_engine(portrait16):
    naive = apply_full(load_engine(), portrait16, "beauty")
    request = JobRequest(op="beauty", image_id=image_id(portrait16))
    product = RetouchEngine().run(RunInput(request=request, seed=0, pixels=portrait16), _Quiet())
    assert np.array_equal(naive, product)


def _upload_body(pixels: np.ndarray) -> dict:
    height, width, channels = pixels.shape
    data = base64.b64encode(pixels.tobytes()).decode()
    return {"width": width, "height": height, "channels": channels, "depth": 16, "pixels": data}


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
async def test_naive_server_answers_an_edited_image_with_the_stale_cached_result(
    aiohttp_client, tmp_path, portrait16
):
    client = await aiohttp_client(build_app(tmp_path / "naive"))
    edited = portrait16.copy()
    edited[_row_past_prefix(portrait16) + 200, 250] = 0  # one black pixel on the face

    async def apply(pixels: np.ndarray):
        async with client.post("/upload", json=_upload_body(pixels)) as r:
            key = (await r.json())["key"]
        async with client.post("/apply", json={"key": key, "op": "beauty"}) as r:
            assert r.status == 200
            return key, r.headers["X-Cached"], await r.read()

    first_key, first_cached, first = await apply(portrait16)
    second_key, second_cached, second = await apply(edited)
    assert (first_cached, second_cached) == ("false", "true")
    assert second_key == first_key and second == first  # the edit is lost
    right = apply_full(load_engine(), edited, "beauty")
    served = np.frombuffer(second, "<u2").reshape(edited.shape)
    assert not np.array_equal(served, right)
