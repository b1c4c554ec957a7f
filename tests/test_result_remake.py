"""GET /v1/jobs/{id}/result for a done job whose result the image store's limit has
removed: the same request runs again as a job of the sidecar's own and the result is
served, the same bytes as before; the done job stays done (no second `done`); requests
at once share one remake; with the input gone too it is 410 result_gone; a remake that
fails or is cancelled is 503 result_remake_failed; the result cache and the job's
record point at the new result, across a restart too."""

from __future__ import annotations

import asyncio
import json

import numpy as np
import pytest
from helpers import settings_under
from jobs_support import status, submit, upload, wait_for

from sidecar.api.keys import BUS, IMAGES, SCHEDULER
from sidecar.cli import build_app
from sidecar.schema import Op
from sidecar.settings import Settings

SIDE = 64
IMAGE_BYTES = 32 + SIDE * SIDE * 3  # one stored file
LIMIT = 12 * IMAGE_BYTES
TIMEOUT = 30.0
IMAGE_HEADERS = ("X-Image-Width", "X-Image-Height", "X-Image-Channels", "X-Image-Depth")


def picture(n: int) -> np.ndarray:
    return np.random.default_rng(n).integers(0, 256, (SIDE, SIDE, 3), dtype=np.uint8)


@pytest.fixture
def small(tmp_path) -> Settings:
    return settings_under(tmp_path, store_max_bytes=LIMIT)


async def start(aiohttp_client, settings: Settings):
    app = build_app(settings, engines=["synthetic"])
    client = await aiohttp_client(app)
    token = settings.token_path.read_text().strip()
    return app, client, {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def served(aiohttp_client, small):
    return await start(aiohttp_client, small)


class Watch:
    """Every event the bus publishes from now on, read as the test goes."""

    def __init__(self, bus) -> None:
        self._subscription = bus.subscribe()
        self.seen: list = []

    async def until(self, match) -> object:
        while True:
            item = await asyncio.wait_for(self._subscription.get(), TIMEOUT)
            assert item is not None, "the bus closed"
            self.seen.append(item.event)
            if match(item.event):
                return item.event

    async def drain(self) -> list:
        """What has been dispatched so far."""
        while self._subscription.pending:
            self.seen.append((await self._subscription.get()).event)
        return self.seen

    def of(self, job_id: str, kind: str) -> list:
        return [e for e in self.seen if e.job_id == job_id and e.type == kind]


async def result(client, auth, job_id: str, **query) -> tuple[int, bytes, dict]:
    response = await client.get(
        f"/v1/jobs/{job_id}/result", params={"format": "raw", **query}, headers=auth
    )
    headers = {name: response.headers.get(name) for name in IMAGE_HEADERS}
    return response.status, await response.read(), headers


async def done_job(app, client, auth, n: int, **params) -> tuple[str, str, tuple]:
    """A done job on a new upload: its id, its input's id and its first result."""
    image_id = await upload(client, auth, picture(n))
    job_id = await submit(client, auth, image_id, **params)
    assert (await wait_for(client, auth, job_id))["state"] == "done"
    first = await result(client, auth, job_id)
    assert first[0] == 200
    return job_id, image_id, first


async def evict(app, client, auth, victim: str, *, keep: str | None = None) -> None:
    """Uploads until the store's limit removes `victim`; `keep`, used just before,
    is newer than it and outlives it."""
    store = app[IMAGES]
    store.flush()
    if keep is not None:
        assert store.has(keep)  # a use
    for n in range(4 * LIMIT // IMAGE_BYTES):
        await upload(client, auth, picture(10_000 + n))
        store.flush()
        if not store.path_for(victim).is_file():  # looked at without a use
            break
    else:
        pytest.fail("the store's limit never removed the result")
    assert store.load(victim) is None
    assert keep is None or store.path_for(keep).is_file()


def new_jobs(app, known: set[str]) -> list:
    return [job for job, _ in app[SCHEDULER].listing() if job.job_id not in known]


async def test_an_evicted_result_is_made_again_and_the_job_stays_done(served):
    app, client, auth = served
    watch = Watch(app[BUS])
    job_id, image_id, first = await done_job(app, client, auth, 1, steps=8, step_ms=20)
    old_result = app[SCHEDULER].get(job_id).result_id
    await evict(app, client, auth, old_result, keep=image_id)

    asked = asyncio.create_task(result(client, auth, job_id))
    started = await watch.until(lambda e: e.type == "started" and e.job_id != job_id)
    assert (await status(client, auth, job_id))["state"] == "done"  # while it is remade
    again = await asyncio.wait_for(asked, TIMEOUT)
    assert again == first  # status, the very bytes, the X-Image-* headers

    job = await status(client, auth, job_id)
    assert job["state"] == "done" and job["error"] is None
    remade = app[SCHEDULER].get(started.job_id)
    assert remade.state.value == "done" and not remade.precompute
    assert remade.request.op is Op.beauty and remade.seed == app[SCHEDULER].get(job_id).seed
    # content-addressed: the same pixels are the same id, and it is stored again
    assert app[SCHEDULER].get(job_id).result_id == remade.result_id == old_result
    assert app[IMAGES].has(old_result)
    await watch.drain()
    assert len(watch.of(job_id, "done")) == 1  # from the first run only
    since = watch.seen[watch.seen.index(started) :]
    assert all(e.job_id != job_id for e in since)  # the done job emitted nothing more
    assert new_jobs(app, {job_id}) == [remade]  # one remake

    # a blend and a downscale are made from the remade result as before
    blended = await result(client, auth, job_id, intensity="0.5", max_side="32")
    assert blended[0] == 200 and blended[2]["X-Image-Width"] == "32"


async def test_requests_at_once_share_one_remake(served):
    app, client, auth = served
    watch = Watch(app[BUS])
    job_id, image_id, first = await done_job(app, client, auth, 2, steps=10, step_ms=30)
    await evict(app, client, auth, app[SCHEDULER].get(job_id).result_id, keep=image_id)

    answers = await asyncio.wait_for(
        asyncio.gather(*(result(client, auth, job_id) for _ in range(4))), TIMEOUT
    )
    assert answers == [first] * 4
    await watch.drain()
    started = {e.job_id for e in watch.seen if e.type == "started"}
    assert len(started - {job_id}) == 1  # one job ran for all four
    assert len(new_jobs(app, {job_id})) == 1
    assert len(watch.of(job_id, "done")) == 1


async def test_with_the_input_gone_too_it_is_410(served):
    app, client, auth = served
    job_id, image_id, first = await done_job(app, client, auth, 3, steps=2, step_ms=5)
    await evict(app, client, auth, app[SCHEDULER].get(job_id).result_id)
    assert not app[IMAGES].path_for(image_id).is_file()  # it was older: it went first

    code, body, _ = await result(client, auth, job_id)
    error = json.loads(body)["error"]
    assert code == 410 and error["code"] == "result_gone"
    assert "upload the image and Apply again" in error["message"]
    assert error["details"] == {"image_id": image_id}
    assert (await status(client, auth, job_id))["state"] == "done"
    assert new_jobs(app, {job_id}) == []  # nothing was queued

    # the client still holds the pixels: once they are back, the result is made again
    assert await upload(client, auth, picture(3)) == image_id
    assert await result(client, auth, job_id) == first


async def test_a_remake_that_is_cancelled_or_fails_is_503(served, monkeypatch):
    app, client, auth = served
    watch = Watch(app[BUS])
    job_id, image_id, first = await done_job(app, client, auth, 4, steps=40, step_ms=25)
    await evict(app, client, auth, app[SCHEDULER].get(job_id).result_id, keep=image_id)

    asked = asyncio.create_task(result(client, auth, job_id))
    started = await watch.until(lambda e: e.type == "started" and e.job_id != job_id)
    cancel = await client.delete(f"/v1/jobs/{started.job_id}", headers=auth)
    assert cancel.status == 202
    code, body, _ = await asyncio.wait_for(asked, TIMEOUT)
    error = json.loads(body)["error"]
    assert code == 503 and error["code"] == "result_remake_failed"
    assert error["details"] == {"reason": "cancelled", "job_id": started.job_id}
    assert (await status(client, auth, job_id))["state"] == "done"

    def broken(job, ctx):
        raise RuntimeError("the engine broke")

    monkeypatch.setattr(app[SCHEDULER].engines[Op.beauty], "run", broken)
    code, body, _ = await result(client, auth, job_id)
    error = json.loads(body)["error"]
    assert code == 503 and error["code"] == "result_remake_failed"
    assert error["details"]["reason"] == "failed"
    assert error["details"]["error"] == "internal_error"
    assert (await status(client, auth, job_id))["state"] == "done"

    monkeypatch.undo()  # the engine works again: so does the next request
    assert await result(client, auth, job_id) == first
    await watch.drain()
    assert len(watch.of(job_id, "done")) == 1


async def test_the_cache_and_the_record_point_at_the_remade_result(aiohttp_client, small):
    app, client, auth = await start(aiohttp_client, small)
    job_id, image_id, first = await done_job(app, client, auth, 5, steps=3, step_ms=5)
    await evict(app, client, auth, app[SCHEDULER].get(job_id).result_id, keep=image_id)
    assert await result(client, auth, job_id) == first
    remade = app[SCHEDULER].get(job_id).result_id

    # the same Apply again is answered from the result cache with the remade result
    again = await submit(client, auth, image_id, steps=3, step_ms=5)
    assert (await status(client, auth, again))["cached"]
    assert app[SCHEDULER].get(again).result_id == remade
    assert await result(client, auth, again) == first
    await client.close()

    # after a restart the job's record and the cache still agree, with no job run
    app, client, auth = await start(aiohttp_client, small)
    assert app[SCHEDULER].get(job_id).result_id == remade
    assert await result(client, auth, job_id) == first
    third = await submit(client, auth, image_id, steps=3, step_ms=5)
    assert (await status(client, auth, third))["cached"]
    assert {job.job_id for job, _ in app[SCHEDULER].listing()} == {job_id, again, third}
