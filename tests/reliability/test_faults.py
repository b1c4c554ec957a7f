"""Faults injected into a running sidecar: an engine that raises or runs out of memory
mid-job, a full disk under the caches, clients that vanish mid-stream. The job in
question ends in one clear terminal state, the worker lives on and the next job runs;
nothing already accepted is lost."""

from __future__ import annotations

import asyncio
import errno
import json
import threading

import numpy as np
import pytest
from fuzzing import tally
from helpers import async_wait_until
from jobs_support import EventLog, submit, upload, wait_for

import sidecar.cache.disk
import sidecar.cache.images
from sidecar.api import create_app
from sidecar.api.keys import BUS, IMAGES
from sidecar.cache import ImageStore
from sidecar.engines.synthetic import SyntheticEngine
from sidecar.jobs import JobStore


class OutOfMemoryError(RuntimeError):
    """Stands in for torch.OutOfMemoryError (a RuntimeError, not a MemoryError)."""


class FaultyEngine(SyntheticEngine):
    """The synthetic engine, with a fault at step `fail_at` when params name one."""

    name = "faulty"

    def run(self, job, ctx):
        fault = job.request.params.get("fault")
        if fault is None:
            return super().run(job, ctx)
        fail_at = int(job.request.params.get("fail_at", 2))
        ctx.stage("faulty", 0, 1)
        for step in range(fail_at):
            ctx.progress((step + 1) / (fail_at + 2))
        tally("faults")
        if fault == "raise":
            raise RuntimeError("a bug deep in the engine /home/user/secret/path")
        if fault == "memory":
            raise MemoryError("numpy could not allocate 9.3 GiB")
        if fault == "gpu_memory":
            raise OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        raise AssertionError(fault)


@pytest.fixture
def app(settings):
    engine = FaultyEngine()
    return create_app(
        settings,
        token="t" * 32,
        images_store=ImageStore(settings.images_dir),
        job_store=JobStore(settings.jobs_db),
        engines=dict.fromkeys(engine.ops, engine),
    )


@pytest.fixture
def auth():
    return {"Authorization": "Bearer " + "t" * 32}


@pytest.fixture
async def image_id(client, auth):
    return await upload(client, auth, np.full((32, 48, 3), 90, np.uint8))


@pytest.mark.parametrize(
    "fault,code",
    [("raise", "internal_error"), ("memory", "out_of_memory"), ("gpu_memory", "out_of_memory")],
)
async def test_a_fault_mid_job_fails_that_job_and_the_next_one_runs(
    client, auth, app, image_id, fault, code, caplog
):
    log = EventLog(app[BUS])
    broken = await submit(client, auth, image_id, params={"fault": fault, "fail_at": 3})
    after = await submit(client, auth, image_id, steps=3, step_ms=1)
    status = await wait_for(client, auth, broken)
    assert status["state"] == "failed"
    assert status["error"]["code"] == code
    assert "secret" not in json.dumps(status)  # the detail is in the log only
    assert (await wait_for(client, auth, after))["state"] == "done"
    await log.ended(broken, after)  # after ran once broken's every event was out
    kinds = log.types(broken)
    assert kinds[-1] == "failed" and kinds.count("failed") == 1
    assert [e.error.code for e in log.of(broken, "failed")] == [code]
    assert any(r.levelname == "ERROR" and broken in r.getMessage() for r in caplog.records)


async def test_a_hundred_faults_in_a_row_leave_the_worker_working(client, auth, image_id):
    faults = ["raise", "memory", "gpu_memory"]
    ids = [
        await submit(client, auth, image_id, params={"fault": faults[n % 3], "fail_at": n % 4})
        for n in range(99)
    ]
    last = await submit(client, auth, image_id, steps=2, step_ms=1)
    assert (await wait_for(client, auth, last, timeout=60))["state"] == "done"
    states = {(await wait_for(client, auth, j))["state"] for j in ids}
    assert states == {"failed"}


def no_space(*args, **kwargs):
    tally("faults")
    raise OSError(errno.ENOSPC, "No space left on device")


async def test_a_full_disk_under_the_stage_cache_skips_the_entry_and_the_job_succeeds(
    aiohttp_client, settings, monkeypatch, portrait, caplog
):
    from sidecar.cli import build_app

    monkeypatch.setattr(sidecar.cache.disk, "atomic_write", no_space)
    app = build_app(settings)  # the real retouch engine with its stage disk tier
    client = await aiohttp_client(app)
    auth = {"Authorization": f"Bearer {settings.token_path.read_text().strip()}"}
    image_id = await upload(client, auth, np.ascontiguousarray(portrait[::4, ::4]))
    body = {"op": "beauty", "image_id": image_id}
    created = await (await client.post("/v1/jobs", json=body, headers=auth)).json()
    status = await wait_for(client, auth, created["job_id"], timeout=60)
    assert status["state"] == "done"
    result = await client.get(f"/v1/jobs/{created['job_id']}/result?format=raw", headers=auth)
    assert result.status == 200
    stages = settings.stages_dir
    assert not [p for p in stages.rglob("*") if p.is_file()]  # skipped, no torn files
    assert "could not store stage" in caplog.text


async def test_a_full_disk_under_the_image_store_keeps_results_and_uploads_servable(
    client, auth, app, monkeypatch, caplog
):
    # the write behind the response fails: the pixels stay in memory for this run
    monkeypatch.setattr(sidecar.cache.images, "atomic_write", no_space)
    pixels = np.random.default_rng(4).integers(0, 256, (40, 30, 3), dtype=np.uint8)
    image_id = await upload(client, auth, pixels)
    app[IMAGES].flush()
    assert (await client.head(f"/v1/images/{image_id}", headers=auth)).status == 200
    job_id = await submit(client, auth, image_id, steps=2, step_ms=1)
    assert (await wait_for(client, auth, job_id))["state"] == "done"
    app[IMAGES].flush()
    result = await client.get(f"/v1/jobs/{job_id}/result?format=raw", headers=auth)
    assert result.status == 200, await result.text()
    assert "could not store image" in caplog.text
    assert not [p for p in app[IMAGES].root.rglob("*") if p.is_file()]


async def test_clients_that_vanish_mid_stream_cost_nothing(client, auth, app, image_id):
    bus = app[BUS]
    base = bus.subscriber_count
    job_id = await submit(client, auth, image_id, steps=60, step_ms=10, params={"preview_every": 1})
    watcher = await client.ws_connect(f"/v1/ws?token={auth['Authorization'][7:]}")
    for _ in range(5):  # WebSockets dropped without a close frame, mid-stream
        ws = await client.ws_connect(f"/v1/ws?token={auth['Authorization'][7:]}")
        await ws.receive()
        ws._response.connection.transport.abort()
        tally("faults")
    for _ in range(5):  # SSE readers that hang up after the first bytes
        response = await client.get(f"/v1/jobs/{job_id}/events", headers=auth)
        await response.content.readany()
        response.connection.transport.abort()
        tally("faults")
    seen = []
    async with asyncio.timeout(30):
        while True:
            message = await watcher.receive()
            if message.type.name == "TEXT":
                event = json.loads(message.data)
                seen.append(event["type"])
                if event.get("job_id") == job_id and event["type"] == "done":
                    break
    await watcher.close()
    assert (await wait_for(client, auth, job_id))["state"] == "done"
    # the vanished clients' handlers unsubscribe once they notice: nothing to wait on
    # but the count (polled)
    await async_wait_until(lambda: bus.subscriber_count <= base, 4, 0.02, "subscriptions gone")


def test_images_kept_in_memory_after_failed_writes_are_bounded(tmp_path, monkeypatch):
    monkeypatch.setattr(sidecar.cache.images, "atomic_write", no_space)
    store = ImageStore(tmp_path, unsaved_budget=3 * 1000)
    ids = [store.put(np.full((10, 25, 4), n, np.uint8))[0].image_id for n in range(5)]
    store.flush()
    assert [store.has(key) for key in ids] == [False, False, True, True, True]
    assert store.load(ids[-1])[0, 0, 0] == 4
    store.close()


async def test_a_cancel_racing_the_end_of_a_job_is_refused_or_honoured(
    client, auth, app, image_id, monkeypatch
):
    # schemathesis found it: DELETE answered 202 ("stops at its next step boundary")
    # while the worker was storing the result, and the job then ended done
    store = app[IMAGES]
    real_put = store.put
    storing = asyncio.Event()
    answered = threading.Event()
    loop = asyncio.get_running_loop()

    def slow_put(*args, **kwargs):
        loop.call_soon_threadsafe(storing.set)
        # a large result being hashed: still at it when the DELETE is answered
        assert answered.wait(10), "the DELETE was never answered"
        return real_put(*args, **kwargs)

    monkeypatch.setattr(store, "put", slow_put)
    job_id = await submit(client, auth, image_id, steps=1, step_ms=1)
    await asyncio.wait_for(storing.wait(), 10)
    try:
        answer = await client.delete(f"/v1/jobs/{job_id}", headers=auth)
    finally:
        answered.set()
    assert answer.status == 409, await answer.text()
    assert (await wait_for(client, auth, job_id))["state"] == "done"
