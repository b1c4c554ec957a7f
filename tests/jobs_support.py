"""Helpers for the scheduler tests: an app with the synthetic engine, submit, wait."""

from __future__ import annotations

import asyncio
import json
import struct

import numpy as np
import pytest
from helpers import Changes, raw_headers

from sidecar.api.keys import BUS, ENGINES
from sidecar.cli import build_app
from sidecar.engines.stepping import Stepper
from sidecar.engines.synthetic import SyntheticEngine
from sidecar.jobs.events import COALESCED

TERMINAL = {"done", "failed", "cancelled"}


@pytest.fixture(name="app")
def synthetic_app_fixture(settings):
    """The app with the synthetic engine (timed steps, pixels as they are): import it
    into a test module to have its `client` use it."""
    return build_app(settings, engines=["synthetic"])


@pytest.fixture(name="image_id")
async def noise_image_fixture(client, auth) -> str:
    """A small noise image, uploaded: jobs on it take as long as their steps say."""
    pixels = np.random.default_rng(4).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    return await upload(client, auth, pixels)


@pytest.fixture(name="stepper")
def stepper_fixture(app, client):
    """The app's synthetic engine under the test's hand: each job step waits for
    `stepper.release(...)` (or `open()`), and `await stepper.reached(job_id, k)` waits
    for a job to be in its step k (sidecar/engines/stepping.py). Opened at the end, so
    no held step outlives the test (this tears down before `client` does)."""
    stepper = attach_stepper(app)
    yield stepper
    stepper.open()


def attach_stepper(app) -> Stepper:
    """A Stepper on every synthetic engine of `app` (open it when done)."""
    engines = {id(e): e for e in app[ENGINES].values() if isinstance(e, SyntheticEngine)}
    assert engines, "the app has no synthetic engine"
    stepper = Stepper()
    for engine in engines.values():
        engine.stepper = stepper
    return stepper


async def upload(client, auth, pixels: np.ndarray) -> str:
    response = await client.post(
        "/v1/images", data=pixels.tobytes(), headers={**auth, **raw_headers(pixels)}
    )
    assert response.status in (200, 201), await response.text()
    return (await response.json())["image_id"]


async def submit(
    client, auth, image_id: str, *, priority="normal", steps=5, step_ms=20, op="beauty", **extra
) -> str:
    body = {
        "op": op,
        "image_id": image_id,
        "priority": priority,
        "params": {"steps": steps, "step_ms": step_ms, **extra.pop("params", {})},
        **extra,
    }
    response = await client.post("/v1/jobs", json=body, headers=auth)
    assert response.status == 202, await response.text()
    return (await response.json())["job_id"]


async def status(client, auth, job_id: str) -> dict:
    response = await client.get(f"/v1/jobs/{job_id}", headers=auth)
    assert response.status == 200, await response.text()
    return await response.json()


async def wait_for(client, auth, job_id: str, states=TERMINAL, timeout=30.0) -> dict:
    """The job's status once its state is one of `states`: read again at each of the
    job's state events on the app's bus (subscribed before the first read, so no change
    falls between; a state changes before its event is published)."""
    bus = client.app[BUS]
    subscription = bus.subscribe({job_id})
    job: dict = {}
    try:
        async with asyncio.timeout(timeout):
            while (job := await status(client, auth, job_id))["state"] not in states:
                await _next_state_event(subscription)
    except TimeoutError:
        raise AssertionError(f"job stuck in {job.get('state')}") from None
    finally:
        bus.unsubscribe(subscription)
    return job


async def until_ended(bus, scheduler, job_ids, timeout: float = 30.0) -> None:
    """Until every job in `job_ids` is done, failed or cancelled, checked at each of
    their state events on `bus`; on the loop the app runs on (a LiveServer's: through
    `server.call`)."""
    wanted = set(job_ids)
    subscription = bus.subscribe(wanted)

    def unfinished() -> list[str]:
        return [j for j in wanted if scheduler.get(j).state.value not in TERMINAL]

    try:
        async with asyncio.timeout(timeout):
            while unfinished():
                await _next_state_event(subscription)
    except TimeoutError:
        raise AssertionError(f"jobs stuck: {unfinished()[:5]}") from None
    finally:
        bus.unsubscribe(subscription)


async def _next_state_event(subscription) -> None:
    """Until the subscription hands out a state event (progress and previews change no
    state)."""
    while True:
        item = await subscription.get()
        assert item is not None, "the bus closed the subscription"
        if not isinstance(item.event, COALESCED):
            return


class EventLog:
    """Every event the bus publishes, in order (subscribed on the app's own loop)."""

    def __init__(self, bus) -> None:
        self.events: list = []
        self._ended: set[str] = set()
        self._changes = Changes()
        self._subscription = bus.subscribe()
        self._task = asyncio.create_task(self._collect())

    async def _collect(self) -> None:
        while (item := await self._subscription.get()) is not None:
            self.events.append(item.event)
            if item.event.type in TERMINAL:
                self._ended.add(item.job_id)
            self._changes.note()

    async def until(self, predicate, timeout: float = 10.0, what: str = ""):
        """Until `predicate()` holds, checked as each event reaches the log."""
        return await self._changes.until(predicate, timeout, what)

    async def ended(self, *job_ids: str, timeout: float = 30.0) -> None:
        """Until each job's terminal event is in the log. The bus hands out state events
        in the order they were published: every state event published before the last
        of these ends is in the log too (a job's own, and those of jobs run before it)."""
        wanted = set(job_ids)
        await self._changes.until(lambda: wanted <= self._ended, timeout, f"ends of {wanted}")

    def of(self, job_id: str, kind: str | None = None) -> list:
        return [e for e in self.events if e.job_id == job_id and (kind is None or e.type == kind)]

    def types(self, job_id: str) -> list[str]:
        return [e.type for e in self.of(job_id)]

    def started_order(self) -> list[str]:
        return [e.job_id for e in self.events if e.type == "started"]


def decode_frame(data: bytes) -> tuple[dict, bytes]:
    (length,) = struct.unpack(">I", data[:4])
    return json.loads(data[4 : 4 + length]), data[4 + length :]


async def read_until_done(ws, job_id: str, timeout=20.0) -> tuple[list[dict], list]:
    """The WebSocket's text events and binary previews (header, JPEG) until `job_id` ends."""
    texts, frames = [], []
    async with asyncio.timeout(timeout):
        while True:
            message = await ws.receive()
            if message.type.name == "TEXT":
                event = json.loads(message.data)
                texts.append(event)
                if event.get("job_id") == job_id and event["type"] in (
                    "done",
                    "failed",
                    "cancelled",
                ):
                    return texts, frames
            elif message.type.name == "BINARY":
                frames.append(decode_frame(message.data))
            else:
                raise AssertionError(f"socket closed: {message}")
