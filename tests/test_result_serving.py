"""GET /v1/jobs/{id}/result?format=raw (no blend, no shrink) is sent from the image
store's file as it is (sendfile), never loaded: the same bytes and headers as the old
path (the pixels loaded and copied out), for 8 and 16 bits, RGB and RGBA. The store
checks a file against its id once: a file it wrote, or has checked, is trusted while it
is the same file on disk; one found at start, replaced or changed is checked again,
and a damaged one is refused (removed, the result made again), never served. A file
being served is left alone by the store's limit and the response is never cut; a
client that goes away releases it."""

from __future__ import annotations

import asyncio
import os
import sys
import threading

import numpy as np
import pytest
from helpers import async_wait_until, settings_under
from jobs_support import submit, synthetic_app_fixture, upload, wait_for  # noqa: F401

import sidecar.api.jobs as jobs_api
import sidecar.cache.images as store_module
from sidecar.api.keys import IMAGES, SCHEDULER
from sidecar.cache import ImageStore
from sidecar.cache.atomic import atomic_write
from sidecar.cli import build_app
from sidecar.settings import Settings

IMAGE_HEADERS = ("X-Image-Width", "X-Image-Height", "X-Image-Channels", "X-Image-Depth")
OLD_PATH = {"max_side": "300000"}  # fits already: the pixels loaded and copied, as before


def picture(n: int, shape=(48, 64, 3), depth: int = 8) -> np.ndarray:
    rng = np.random.default_rng(n)
    dtype = np.uint8 if depth == 8 else np.uint16
    return rng.integers(0, np.iinfo(dtype).max + 1, shape, dtype=dtype)


async def done_job(app, client, auth, pixels: np.ndarray) -> tuple[str, str]:
    """A done synthetic job (its result differs from its input): its id and result's."""
    image_id = await upload(client, auth, pixels)
    job_id = await submit(client, auth, image_id, steps=1, step_ms=0)
    assert (await wait_for(client, auth, job_id))["state"] == "done"
    result_id = app[SCHEDULER].get(job_id).result_id
    assert result_id != image_id
    return job_id, result_id


async def fetch(client, auth, job_id: str, *, method: str = "GET", **query):
    response = await client.request(
        method, f"/v1/jobs/{job_id}/result", params={"format": "raw", **query}, headers=auth
    )
    return response.status, await response.read(), response.headers


class LoadSpy:
    """The keys `ImageStore.load` is asked for: the served path must not load."""

    def __init__(self, store: ImageStore, monkeypatch) -> None:
        self.keys: list[str] = []
        real = store.load

        def load(key, **kwargs):
            self.keys.append(key)
            return real(key, **kwargs)

        monkeypatch.setattr(store, "load", load)


@pytest.mark.parametrize("depth", [8, 16])
@pytest.mark.parametrize("channels", [3, 4])
async def test_raw_result_is_the_stored_file_byte_for_byte(
    app, client, auth, monkeypatch, depth, channels
):
    pixels = picture(depth + channels, (48, 64, channels), depth)
    job_id, result_id = await done_job(app, client, auth, pixels)
    app[IMAGES].flush()
    expected = app[IMAGES].load(result_id)
    spy = LoadSpy(app[IMAGES], monkeypatch)

    status, body, headers = await fetch(client, auth, job_id)
    assert status == 200
    assert result_id not in spy.keys  # sent from the file, never loaded
    assert body == expected.tobytes()  # what the old path sent: the loaded pixels' bytes
    assert body != pixels.tobytes()
    assert [headers[name] for name in IMAGE_HEADERS] == ["64", "48", str(channels), str(depth)]
    assert headers["Content-Type"] == "application/octet-stream"
    assert headers["Content-Length"] == str(expected.nbytes)

    old_status, old_body, old_headers = await fetch(client, auth, job_id, **OLD_PATH)
    assert result_id in spy.keys  # this one did load
    assert (old_status, old_body) == (status, body)
    for name in (*IMAGE_HEADERS, "Content-Type", "Content-Length"):
        assert old_headers[name] == headers[name], name

    # intensity 1 is the result as it is: the same file
    spy.keys.clear()
    assert (await fetch(client, auth, job_id, intensity="1.0"))[:2] == (200, body)
    assert result_id not in spy.keys

    # HEAD: the same headers, no body
    head_status, head_body, head_headers = await fetch(client, auth, job_id, method="HEAD")
    assert (head_status, head_body) == (200, b"")
    for name in (*IMAGE_HEADERS, "Content-Type", "Content-Length"):
        assert head_headers[name] == headers[name], name


async def test_blends_shrinks_and_encodings_still_load(app, client, auth, monkeypatch):
    job_id, result_id = await done_job(app, client, auth, picture(1, depth=16))
    spy = LoadSpy(app[IMAGES], monkeypatch)
    status, body, headers = await fetch(client, auth, job_id, intensity="0.5", max_side="32")
    assert status == 200 and headers["X-Image-Width"] == "32"
    assert len(body) == 32 * 24 * 3 * 2
    response = await client.get(f"/v1/jobs/{job_id}/result", params={"format": "png"}, headers=auth)
    assert response.status == 200 and response.headers["Content-Type"] == "image/png"
    assert spy.keys.count(result_id) == 2


async def test_the_body_is_the_same_where_the_loop_cannot_sendfile(app, client, auth, monkeypatch):
    job_id, result_id = await done_job(app, client, auth, picture(2, (48, 64, 4), 16))
    app[IMAGES].flush()
    expected = app[IMAGES].load(result_id).tobytes()

    async def no_sendfile(*args, **kwargs):
        raise NotImplementedError

    monkeypatch.setattr(asyncio.get_running_loop(), "sendfile", no_sendfile)
    status, body, _ = await fetch(client, auth, job_id)
    assert (status, body) == (200, expected)


# -- integrity --------------------------------------------------------------------


def damage(path) -> None:
    """One flipped bit in the last pixel, written in place (same file, same size)."""
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01
    path.write_bytes(bytes(data))


async def start(aiohttp_client, settings: Settings):
    app = build_app(settings, engines=["synthetic"])
    client = await aiohttp_client(app)
    token = settings.token_path.read_text().strip()
    return app, client, {"Authorization": f"Bearer {token}"}


async def test_a_damaged_file_found_at_start_is_refused_and_made_again(aiohttp_client, settings):
    app, client, auth = await start(aiohttp_client, settings)
    job_id, result_id = await done_job(app, client, auth, picture(3, depth=16))
    first = (await fetch(client, auth, job_id))[:2]
    path = app[IMAGES].path_for(result_id)
    await client.close()  # the store is flushed and closed
    damage(path)

    app, client, auth = await start(aiohttp_client, settings)
    ran = {job.job_id for job, _ in app[SCHEDULER].listing()}
    again = await fetch(client, auth, job_id)
    assert again[:2] == first  # made again: the good bytes, never the damaged ones
    remakes = [job for job, _ in app[SCHEDULER].listing() if job.job_id not in ran]
    assert len(remakes) == 1 and remakes[0].result_id == result_id
    assert app[IMAGES].load(result_id) is not None  # the new file checks out


async def test_a_good_file_found_at_start_is_checked_once(aiohttp_client, settings, monkeypatch):
    app, client, auth = await start(aiohttp_client, settings)
    job_id, _ = await done_job(app, client, auth, picture(4))
    first = await fetch(client, auth, job_id)
    await client.close()

    checks = []
    real = store_module.pixels_match
    monkeypatch.setattr(store_module, "pixels_match", lambda *a: checks.append(a[0]) or real(*a))
    app, client, auth = await start(aiohttp_client, settings)
    ran = {job.job_id for job, _ in app[SCHEDULER].listing()}
    assert (await fetch(client, auth, job_id))[:2] == first[:2]
    assert (await fetch(client, auth, job_id))[:2] == first[:2]
    assert len(checks) == 1  # the first serve checked it; the second trusted it
    assert {job.job_id for job, _ in app[SCHEDULER].listing()} == ran  # nothing remade


async def test_a_file_changed_on_disk_after_its_check_is_checked_again(app, client, auth):
    job_id, result_id = await done_job(app, client, auth, picture(5, (48, 64, 4)))
    first = (await fetch(client, auth, job_id))[:2]
    store = app[IMAGES]
    path = store.path_for(result_id)

    # replaced by another file (a copy renamed over it: a new inode)
    damaged = bytearray(path.read_bytes())
    damaged[40] ^= 0x80
    atomic_write(path, [bytes(damaged)])
    assert (await fetch(client, auth, job_id))[:2] == first  # refused, made again
    assert path.read_bytes() != bytes(damaged)

    # written over in place: same inode and size. The store tells by the modification
    # time; set it apart here as a later write would (file times are coarse: a write
    # within the same tick as the store's own touch keeps its time, see images.py)
    before = os.stat(path)
    damage(path)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns + 10_000_000))
    assert (await fetch(client, auth, job_id))[:2] == first
    assert store.load(result_id) is not None


# -- the store's limit while a file is served ---------------------------------------

SIDE = 64
IMAGE_BYTES = 32 + SIDE * SIDE * 3
LIMIT = 12 * IMAGE_BYTES


@pytest.fixture
def small(tmp_path) -> Settings:
    return settings_under(tmp_path, store_max_bytes=LIMIT)


async def fill(client, auth, store: ImageStore, first: int, count: int) -> None:
    for n in range(count):
        await upload(client, auth, picture(first + n, (SIDE, SIDE, 3)))
        store.flush()


@pytest.mark.parametrize("unlinked", [False, True])
async def test_a_file_being_served_is_not_removed_under_the_response(
    aiohttp_client, small, monkeypatch, unlinked
):
    if unlinked and sys.platform == "win32":
        pytest.skip("an open file cannot be removed on Windows")
    app, client, auth = await start(aiohttp_client, small)
    store = app[IMAGES]
    pixels = picture(6, (SIDE, SIDE, 3))
    job_id, result_id = await done_job(app, client, auth, pixels)
    first = (await fetch(client, auth, job_id))[:2]
    path = store.path_for(result_id)
    input_path = store.path_for(app[SCHEDULER].get(job_id).request.image_id)

    sending, go_on = asyncio.Event(), asyncio.Event()
    real = jobs_api.file_part_response

    async def paused(*args, **kwargs):
        sending.set()
        await go_on.wait()
        return await real(*args, **kwargs)

    monkeypatch.setattr(jobs_api, "file_part_response", paused)
    asked = asyncio.create_task(fetch(client, auth, job_id))
    await asyncio.wait_for(sending.wait(), 30)
    await fill(client, auth, store, 1000, 4 * LIMIT // IMAGE_BYTES)  # past the limit 4×
    assert not input_path.exists()  # the limit did remove what it may
    assert path.is_file()  # but not the file being served
    if unlinked:  # removed anyway (another process): the open file still serves
        path.unlink()
    go_on.set()
    assert (await asyncio.wait_for(asked, 30))[:2] == first  # whole and the same

    if not unlinked:  # released: the limit may remove it now
        await fill(client, auth, store, 2000, 4 * LIMIT // IMAGE_BYTES)
        assert not path.exists()


async def test_a_client_gone_mid_body_releases_the_file(app, client, auth):
    # large enough that the body cannot sit whole in the loopback socket's buffers
    job_id, result_id = await done_job(app, client, auth, picture(7, (2048, 2048, 4), 16))
    app[IMAGES].flush()
    response = await client.get(f"/v1/jobs/{job_id}/result", params={"format": "raw"}, headers=auth)
    assert response.status == 200
    assert len(await response.content.readexactly(1 << 20)) == 1 << 20
    assert app[IMAGES]._reading[result_id] == 1  # held while it is sent
    response.close()  # the connection goes, most of the body unsent
    await async_wait_until(
        lambda: result_id not in app[IMAGES]._reading, 30, what="the file released"
    )
    status, body, _ = await fetch(client, auth, job_id)  # and served whole again
    assert status == 200 and len(body) == 2048 * 2048 * 4 * 2


# -- the store on its own -----------------------------------------------------------


def test_open_pixels_is_none_while_held_in_memory_then_the_file(tmp_path, portrait16):
    store = ImageStore(tmp_path)
    hold = threading.Event()
    store._writer.submit(hold.wait)  # the writer is busy: the next write stays behind
    info, _ = store.put(portrait16)
    assert store.writing(info.image_id)
    assert store.open_pixels(info.image_id) is None  # `load` has it from memory
    hold.set()
    store.flush()
    with store.open_pixels(info.image_id) as opened:
        assert store._reading[info.image_id] == 1
        opened.file.seek(opened.offset)
        assert opened.file.read(opened.size) == portrait16.tobytes()
        assert opened.file.read() == b""  # nothing after the pixels
    assert info.image_id not in store._reading
    assert store.open_pixels("0" * 64) is None and store.open_pixels("../x") is None
    store.close()


def test_a_store_trusts_what_it_wrote_and_checks_what_it_found(tmp_path, portrait, monkeypatch):
    checks = []
    real = store_module.pixels_match
    monkeypatch.setattr(store_module, "pixels_match", lambda *a: checks.append(a[0]) or real(*a))
    store = ImageStore(tmp_path)
    key = store.put(portrait)[0].image_id
    store.flush()
    store.open_pixels(key).close()
    assert checks == []  # written here
    store.close()

    again = ImageStore(tmp_path)
    for _ in range(3):
        again.open_pixels(key).close()
    assert checks == [key]  # found at start: checked once

    damage(again.path_for(key))
    os.utime(again.path_for(key), ns=(0, 10**9))
    assert again.open_pixels(key) is None  # changed: checked again, damaged, removed
    assert not again.path_for(key).exists()
    assert checks == [key, key]


def test_a_touch_after_a_change_does_not_make_the_change_trusted(tmp_path, portrait):
    store = ImageStore(tmp_path)
    key = store.put(portrait)[0].image_id
    store.flush()
    store.open_pixels(key).close()  # trusted: written here
    path = store.path_for(key)
    before = os.stat(path)
    damage(path)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns + 10_000_000))
    assert store.has(key)  # a use: the store touches the file, giving it a new time
    assert store.open_pixels(key) is None  # still checked, found damaged, removed
    assert not path.exists()
    store.close()
