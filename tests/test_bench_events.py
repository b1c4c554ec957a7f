"""The benchmark's event log fails its waits when its stream ends, instead of waiting
out their timeouts for events that can no longer come."""

from __future__ import annotations

import asyncio

import pytest

from bench.events import EventLog
from sidecar.client.fake import FakeSidecar


async def test_a_done_that_arrives_resolves_its_wait():
    sidecar = FakeSidecar()
    async with EventLog(sidecar) as log:
        waiting = log.expect("job-1", "done", "failed", "cancelled")
        sidecar.emit("job-1", "queued", position=0)
        sidecar.finish("job-1")
        arrived = await asyncio.wait_for(waiting, 5)
        assert arrived > 0 and [m.event.type for m in log.of("job-1")] == ["queued", "done"]


async def test_a_closed_stream_fails_pending_and_later_waits_at_once():
    sidecar = FakeSidecar()
    async with EventLog(sidecar) as log:
        pending = log.expect("job-1", "done")
        sidecar.drop_streams()
        with pytest.raises(ConnectionError, match="closed the event stream"):
            await asyncio.wait_for(pending, 5)
        with pytest.raises(ConnectionError):
            await asyncio.wait_for(log.expect("job-2", "done"), 5)
