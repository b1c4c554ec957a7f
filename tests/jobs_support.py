"""Helpers for the scheduler tests: an app with the synthetic engine, submit, wait."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest
from helpers import raw_headers

from sidecar.cli import build_app

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
    deadline = time.monotonic() + timeout
    while True:
        job = await status(client, auth, job_id)
        if job["state"] in states:
            return job
        assert time.monotonic() < deadline, f"job stuck in {job['state']}"
        await asyncio.sleep(0.01)


class EventLog:
    """Every event the bus publishes, in order (subscribed on the app's own loop)."""

    def __init__(self, bus) -> None:
        self.events: list = []
        self._subscription = bus.subscribe()
        self._task = asyncio.create_task(self._collect())

    async def _collect(self) -> None:
        while (item := await self._subscription.get()) is not None:
            self.events.append(item.event)

    def of(self, job_id: str, kind: str | None = None) -> list:
        return [e for e in self.events if e.job_id == job_id and (kind is None or e.type == kind)]

    def types(self, job_id: str) -> list[str]:
        return [e.type for e in self.of(job_id)]

    def started_order(self) -> list[str]:
        return [e.job_id for e in self.events if e.type == "started"]
