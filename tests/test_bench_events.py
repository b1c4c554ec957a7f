"""The benchmark's event log fails its waits when its stream ends, instead of waiting
out their timeouts for events that can no longer come."""

from __future__ import annotations

import asyncio

import pytest

from bench.events import EventLog
from sidecar.client.fake import FakeSidecar

JOB, OTHER = "a" * 32, "b" * 32


async def test_a_done_that_arrives_resolves_its_wait():
    sidecar = FakeSidecar()
    async with EventLog(sidecar) as log:
        waiting = log.expect(JOB, "done", "failed", "cancelled")
        sidecar.emit(JOB, "queued", position=0)
        sidecar.finish(JOB)
        arrived = await asyncio.wait_for(waiting, 5)
        assert [m.event.type for m in log.of(JOB)] == ["queued", "done"]
        assert arrived == log.of(JOB)[-1].at  # the done message's arrival


async def test_a_closed_stream_fails_pending_and_later_waits_at_once():
    sidecar = FakeSidecar()
    async with EventLog(sidecar) as log:
        pending = log.expect(JOB, "done")
        sidecar.drop_streams()
        with pytest.raises(ConnectionError, match="closed the event stream"):
            await asyncio.wait_for(pending, 5)
        with pytest.raises(ConnectionError):
            await asyncio.wait_for(log.expect(OTHER, "done"), 5)
