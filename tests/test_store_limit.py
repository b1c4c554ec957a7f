"""The image store's size limit: least recently used uploads and results go when a write
would pass it; what queued and running jobs need, and what is being read, stays; an
evicted result is made again, an evicted upload is a 404; `cache info` and `cache
clear` on the command line."""

from __future__ import annotations

import json
import os
import shutil
import threading
from http.server import ThreadingHTTPServer
from types import SimpleNamespace

import numpy as np
import pytest
from helpers import FakeHealth, files_under, free_port, settings_under
from jobs_support import submit, upload, wait_for

import sidecar.cache.images
from sidecar import cli
from sidecar.api.keys import IMAGES
from sidecar.cache import ImageStore
from sidecar.cache.usage import GIB, default_limit
from sidecar.settings import Settings

SIDE = 128
IMAGE_BYTES = 32 + SIDE * SIDE * 3  # header and pixels: one stored file
LIMIT = 2_000_000  # about 40 of them


def picture(n: int, side: int = SIDE) -> np.ndarray:
    return np.random.default_rng(n).integers(0, 256, (side, side, 3), dtype=np.uint8)


def on_disk(root) -> int:
    return sum(path.stat().st_size for path in files_under(root))


# -- the store on its own ----------------------------------------------------------------
def test_a_write_past_the_limit_removes_the_least_recently_used(tmp_path):
    store = ImageStore(tmp_path, max_bytes=3 * IMAGE_BYTES)
    keys = [store.put(picture(n))[0].image_id for n in range(3)]
    store.flush()
    assert store.load(keys[0]) is not None  # a read is a use: keys[1] is now the oldest
    store.put(picture(3))
    store.flush()
    assert [store.has(key) for key in keys] == [True, False, True]
    assert store.load(keys[1]) is None and store.info(keys[1]) is None  # a miss, no error
    assert store.usage() == (3 * IMAGE_BYTES, 3) and on_disk(tmp_path) == 3 * IMAGE_BYTES
    store.close()


def test_images_in_use_and_being_read_are_never_removed(tmp_path, monkeypatch):
    store = ImageStore(tmp_path, max_bytes=3 * IMAGE_BYTES)
    needed, served = (store.put(picture(n))[0].image_id for n in range(2))
    store.flush()
    store.set_in_use(lambda: {needed, None})
    reading, release = threading.Event(), threading.Event()
    real_read = sidecar.cache.images._read_into

    def slow_read(*args, **kwargs):
        reading.set()
        assert release.wait(10)
        return real_read(*args, **kwargs)

    monkeypatch.setattr(sidecar.cache.images, "_read_into", slow_read)
    loaded: list = []
    reader = threading.Thread(target=lambda: loaded.append(store.load(served)))
    reader.start()
    assert reading.wait(10)
    monkeypatch.setattr(sidecar.cache.images, "_read_into", real_read)
    fillers = [store.put(picture(n))[0].image_id for n in range(10, 16)]
    store.flush()
    assert store.has(needed) and store.path_for(served).is_file()
    release.set()
    reader.join(10)
    np.testing.assert_array_equal(loaded[0], picture(1))
    assert sum(store.has(key) for key in fillers) == 1
    assert store.usage()[0] <= 3 * IMAGE_BYTES
    store.close()


def test_images_in_use_may_pass_the_limit_rather_than_go(tmp_path):
    store = ImageStore(tmp_path, max_bytes=2 * IMAGE_BYTES)
    keys = [store.put(picture(n))[0].image_id for n in range(2)]
    store.flush()
    store.set_in_use(lambda: keys)
    new = store.put(picture(2))[0].image_id
    store.flush()
    assert all(store.has(key) for key in [*keys, new])
    store.set_in_use(tuple)
    store.put(picture(3))
    store.flush()
    assert store.usage()[0] <= 2 * IMAGE_BYTES
    store.close()


def test_the_order_of_use_survives_a_restart(tmp_path):
    store = ImageStore(tmp_path)
    keys = [store.put(picture(n))[0].image_id for n in range(3)]
    store.close()
    for when, key in enumerate(keys):  # written long ago, in this order
        os.utime(store.path_for(key), (1_000_000 + when, 1_000_000 + when))
    reopened = ImageStore(tmp_path, max_bytes=3 * IMAGE_BYTES)
    assert reopened.usage() == (3 * IMAGE_BYTES, 3)
    assert reopened.has(keys[0])  # used now: keys[1] is the oldest
    reopened.put(picture(3))
    reopened.flush()
    assert [reopened.has(key) for key in keys] == [True, False, True]
    reopened.close()


def test_a_file_removed_behind_the_store_is_a_miss(tmp_path):
    store = ImageStore(tmp_path, max_bytes=10 * IMAGE_BYTES)
    key = store.put(picture(0))[0].image_id
    store.flush()
    store.path_for(key).unlink()
    assert store.info(key) is None and store.load(key) is None and not store.has(key)
    assert store.usage() == (0, 0)
    assert store.put(picture(0))[1] is True  # stored again
    store.flush()
    assert store.usage() == (IMAGE_BYTES, 1)
    store.close()


def test_the_default_limit_is_a_share_of_the_free_disk(tmp_path, monkeypatch):
    def free(gib):
        monkeypatch.setattr(shutil, "disk_usage", lambda path: SimpleNamespace(free=gib))

    free(1 * GIB)
    assert default_limit(tmp_path / "not" / "yet", 0) == 2 * GIB  # at least 2 GiB
    free(40 * GIB)
    assert default_limit(tmp_path, 4 * GIB) == 11 * GIB  # a quarter of free + held
    free(1000 * GIB)
    assert default_limit(tmp_path, 0) == 50 * GIB  # at most 50 GiB


def test_the_setting_comes_from_the_flag_or_the_environment(monkeypatch):
    monkeypatch.setenv("RETOUCH_STORE_MAX_BYTES", "7000000")
    assert Settings().store_max_bytes == 7_000_000
    args = cli._parser().parse_args(["serve", "--store-max-bytes", "5000000"])
    assert cli._settings(args).store_max_bytes == 5_000_000
    monkeypatch.delenv("RETOUCH_STORE_MAX_BYTES")
    assert Settings().store_max_bytes is None
    assert cli.main(["cache", "info", "--store-max-bytes", "0"]) == 2  # a bad setting


# -- through the app, with jobs running ----------------------------------------------------
@pytest.fixture
def limited(tmp_path) -> Settings:
    return settings_under(tmp_path, store_max_bytes=LIMIT)


@pytest.fixture
async def limited_client(aiohttp_client, limited):
    app = cli.build_app(limited, engines=["synthetic"])
    client = await aiohttp_client(app)
    token = limited.token_path.read_text().strip()
    return app, client, {"Authorization": f"Bearer {token}"}


async def result(client, auth, job_id: str):
    response = await client.get(f"/v1/jobs/{job_id}/result?format=raw", headers=auth)
    return response.status, await response.read()


async def test_a_store_filled_past_its_limit_while_jobs_run(limited_client, limited):
    app, client, auth = limited_client
    store = app[IMAGES]
    inputs = {n: await upload(client, auth, picture(n)) for n in range(6)}
    jobs = {n: await submit(client, auth, key, steps=4, step_ms=50) for n, key in inputs.items()}
    # uploads pour in while the jobs wait and run: far more than the limit holds
    fillers = [await upload(client, auth, picture(100 + n)) for n in range(60)]
    for n, job_id in jobs.items():
        job = await wait_for(client, auth, job_id)
        assert job["state"] == "done", (n, job["error"])  # no job lost its input
    store.flush()
    used, count = store.usage()
    assert used <= LIMIT and on_disk(limited.images_dir) == used
    assert count == len(files_under(limited.images_dir))
    first = await client.head(f"/v1/images/{fillers[0]}", headers=auth)
    assert first.status == 404  # the oldest upload went: the documented unknown-id answer

    made = {}
    for n, job_id in jobs.items():
        status, made[n] = await result(client, auth, job_id)
        assert status == 200

    health = await (await client.get("/v1/health")).json()
    assert health["store"] == {"used_bytes": used, "limit_bytes": LIMIT, "images": count}

    # more uploads push every result and input out: a result whose input is gone too is
    # gone for good (410); sending the pixels again and submitting makes it again
    for n in range(60):
        await upload(client, auth, picture(200 + n))
    store.flush()
    assert store.usage()[0] <= LIMIT and on_disk(limited.images_dir) <= LIMIT
    for n, job_id in jobs.items():
        status, body = await result(client, auth, job_id)
        assert status == 410 and json.loads(body)["error"]["code"] == "result_gone"
        gone = await client.head(f"/v1/images/{inputs[n]}", headers=auth)
        assert gone.status == 404  # the client still holds the pixels: it sends them again
        assert await upload(client, auth, picture(n)) == inputs[n]
        again = await submit(client, auth, inputs[n], steps=4, step_ms=50)
        assert (await wait_for(client, auth, again))["state"] == "done"
        assert await result(client, auth, again) == (200, made[n])  # the same pixels
    store.flush()
    assert store.usage()[0] <= LIMIT and on_disk(limited.images_dir) <= LIMIT


# -- the command line ------------------------------------------------------------------
def test_cache_info_and_clear(tmp_path, capsys):
    cache_dir = tmp_path / "cache"
    store = ImageStore(cache_dir / "images")
    keys = [store.put(picture(n))[0].image_id for n in range(3)]
    store.close()
    stage = cache_dir / "stages" / "kept.stage"
    stage.parent.mkdir(parents=True)
    stage.write_bytes(b"a stage file")
    flags = ["--cache-dir", str(cache_dir), "--port", str(free_port())]

    assert cli.main(["cache", "info", *flags, "--store-max-bytes", "5000000"]) == 0
    out = capsys.readouterr().out
    assert str(cache_dir / "images") in out
    assert f"used:   {3 * IMAGE_BYTES} bytes" in out and "limit:  5000000 bytes" in out
    assert "images: 3" in out
    assert cli.main(["cache", "info", *flags]) == 0
    assert "default: a quarter of the free disk" in capsys.readouterr().out

    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeHealth)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        port = str(server.server_address[1])
        assert cli.main(["cache", "clear", "--cache-dir", str(cache_dir), "--port", port]) == 1
        assert f"a sidecar answers on port {port}" in capsys.readouterr().err
        assert all(ImageStore(cache_dir / "images").has(key) for key in keys)
    finally:
        server.shutdown()
        server.server_close()

    assert cli.main(["cache", "clear", *flags]) == 0
    assert "removed 3 stored images" in capsys.readouterr().out
    assert files_under(cache_dir / "images") == [] and stage.is_file()
    assert cli.main(["cache", "info", *flags]) == 0
    assert "images: 0" in capsys.readouterr().out
