"""GET /v1/images/{id}/skin-tone: the one computation outside the worker thread, kept
bounded (docs/design.md, "Who computes"): one at a time in the imaging pool, so
uploads keep a thread; a warm image is read from the stage cache."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

import numpy as np
import pytest
from helpers import Changes
from jobs_support import upload

from sidecar.api.images import SKIN_TONE_AT_ONCE, _run_gated
from sidecar.api.keys import ENGINES, IMAGING_POOL, SKIN_TONE_GATE
from sidecar.schema import Op


class BlockingTone:
    """A skin-tone measure that waits for `go` and records how many run at once."""

    def __init__(self) -> None:
        self.go = threading.Event()
        self.entered = threading.Event()
        self.lock = threading.Lock()
        self.running = self.most = self.calls = 0

    def skin_tone(self, image_id, load):
        with self.lock:
            self.running += 1
            self.calls += 1
            self.most = max(self.most, self.running)
        self.entered.set()
        try:
            assert self.go.wait(10), "never released"
            load()
            return (12.5, 20.0)
        finally:
            with self.lock:
                self.running -= 1


class CountedGate(asyncio.Semaphore):
    """The skin-tone gate, noting each request that comes to it."""

    def __init__(self, value: int) -> None:
        super().__init__(value)
        self.asked = 0
        self.changes = Changes()

    async def acquire(self):
        self.asked += 1
        self.changes.note()
        return await super().acquire()


async def test_one_skin_tone_at_a_time_and_uploads_go_on_meanwhile(app, aiohttp_client, auth):
    tone = BlockingTone()
    app[ENGINES][Op.color].skin_tone = tone.skin_tone  # this engine's measure, blocking
    gate = app[SKIN_TONE_GATE] = CountedGate(SKIN_TONE_AT_ONCE)
    client = await aiohttp_client(app)
    ids = [await upload(client, auth, np.full((32, 32, 3), v, np.uint8)) for v in (1, 2, 3)]

    async def get(image_id):
        response = await client.get(f"/v1/images/{image_id}/skin-tone", headers=auth)
        assert response.status == 200, await response.text()
        return await response.json()

    requests = [asyncio.create_task(get(i)) for i in ids]
    try:
        assert await asyncio.to_thread(tone.entered.wait, 10)
        # all three at the gate: one measuring, the others waiting there (were they let
        # through, they would have asked the pool for a thread when they came to it)
        await gate.changes.until(lambda: gate.asked == 3, what="three requests at the gate")
        # three skin tones are waiting on the imaging pool's two threads: an upload still
        # gets one
        fresh = await asyncio.wait_for(upload(client, auth, np.zeros((8, 8, 3), np.uint8)), 5)
        assert fresh and tone.calls == 1
    finally:
        tone.go.set()
    answers = await asyncio.wait_for(asyncio.gather(*requests), 10)

    assert tone.most == 1 and tone.calls == 3
    assert [(a["image_id"], a["a"], a["b"]) for a in answers] == [(i, 12.5, 20.0) for i in ids]


async def test_a_request_that_goes_away_keeps_the_gate_until_its_thread_is_done():
    gate = asyncio.Semaphore(1)
    entered, release = threading.Event(), threading.Event()

    def compute(timeout):
        entered.set()
        return release.wait(timeout)

    with ThreadPoolExecutor(max_workers=2) as pool:
        request = SimpleNamespace(app={IMAGING_POOL: pool})
        task = asyncio.create_task(_run_gated(request, gate, compute, 10))
        assert await asyncio.to_thread(entered.wait, 10)  # its computation runs
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert gate.locked()  # its computation still runs: no second one may start
        release.set()
        await asyncio.wait_for(gate.acquire(), 5)
        gate.release()


async def test_a_failing_computation_frees_the_gate():
    gate = asyncio.Semaphore(1)

    def fail():
        raise RuntimeError("mediapipe broke")

    with ThreadPoolExecutor(max_workers=1) as pool:
        request = SimpleNamespace(app={IMAGING_POOL: pool})
        with pytest.raises(RuntimeError):
            await _run_gated(request, gate, fail)
        assert not gate.locked()
        assert await _run_gated(request, gate, lambda: 7) == 7


async def test_a_second_skin_tone_reads_the_cached_analysis(client, app, auth, portrait):
    image_id = await upload(client, auth, portrait)
    cache = app[ENGINES][Op.color].cache

    first = await (await client.get(f"/v1/images/{image_id}/skin-tone", headers=auth)).json()
    misses, hits = cache.misses, cache.hits
    second = await (await client.get(f"/v1/images/{image_id}/skin-tone", headers=auth)).json()

    assert first == second and first["a"] is not None
    assert cache.misses == misses and cache.hits == hits + 1
