"""The fake sidecar (sidecar.client.FakeSidecar): the client's interface in memory,
whose streams follow jobs as the sidecar's do and whose events the test scripts."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from sidecar.client import CONNECTION_FAILED, FakeSidecar, SidecarApi, SidecarError, Subscribed
from sidecar.schema import Done, JobState, Started


async def _job(fake: FakeSidecar, **params) -> str:
    image_id = (await fake.upload(b"image bytes", "image/png")).image_id
    return (await fake.submit({"op": "beauty", "image_id": image_id, "params": params})).job_id


async def _take(stream, count: int) -> list:
    messages = []
    async with asyncio.timeout(5):
        async for message in stream:
            messages.append(message)
            if len(messages) == count:
                return messages
    return messages


def test_it_offers_the_clients_interface():
    interface = {name for name in dir(SidecarApi) if not name.startswith("_")}
    assert interface <= {name for name in dir(FakeSidecar) if not name.startswith("_")}


async def test_a_stream_follows_every_job_until_a_subscribe_and_replays_a_newly_named_one():
    fake = FakeSidecar()
    first = await _job(fake)
    async with fake.events() as stream:
        second = await _job(fake)  # followed live: every job
        fake.emit(second, "started")
        await stream.subscribe([first])  # first's history comes now; second is left out
        fake.emit(second, "progress", progress=0.5, stage="final")
        fake.finish(first, result=b"pixels")
        messages = await _take(stream, 5)
    kinds = [(m.job_id, m.event.type if m.event else m.reply.type) for m in messages]
    assert kinds == [
        (second, "queued"),
        (second, "started"),
        (None, "subscribed"),
        (first, "queued"),
        (first, "done"),
    ]
    assert messages[2].reply == Subscribed(type="subscribed", job_ids=[first])
    assert (await fake.status(first)).state is JobState.done
    assert await fake.result(first) == b"pixels"
    assert (await fake.status(second)).progress == 0.5


async def test_the_script_drops_streams_makes_it_unreachable_and_fails_calls():
    fake = FakeSidecar()
    job_id = await _job(fake)
    async with fake.events() as stream:
        fake.emit(job_id, "started")
        fake.drop_streams()
        assert [m.event.type for m in await _take(stream, 10)] == ["started"]  # then it ends
    fake.unreachable = True
    with pytest.raises(SidecarError) as gone:
        async with fake.events():
            pass
    assert gone.value.code == CONNECTION_FAILED
    fake.unreachable = False
    fake.fail("status", SidecarError("internal_error", "scripted", status=500))
    with pytest.raises(SidecarError):
        await fake.status(job_id)
    assert (await fake.status(job_id)).state is JobState.running  # it failed once only
    with pytest.raises(SidecarError) as early:
        await fake.result(job_id)
    assert early.value.code == "conflict"


async def test_deliver_sends_an_event_as_it_is_even_one_seen_before():
    fake = FakeSidecar()
    job_id = await _job(fake)
    async with fake.events() as stream:
        done = fake.finish(job_id)
        fake.deliver(done)  # the same done again, as a replay after a restart
        fake.deliver(Started(job_id=job_id, seq=0, ts=done.ts))
        messages = await _take(stream, 3)
    assert [type(m.event) for m in messages] == [Done, Done, Started]


async def test_requests_are_checked_as_the_sidecar_checks_them():
    fake = FakeSidecar()
    image_id = (await fake.upload_pixels(np.zeros((4, 6, 4), np.uint16))).image_id
    with pytest.raises(SidecarError) as refused:
        await fake.submit({"op": "beauty", "image_id": image_id, "intensity": 2})
    assert refused.value.code == "invalid_request" and "intensity" in refused.value.message
    with pytest.raises(SidecarError) as unknown:
        await fake.submit({"op": "beauty", "image_id": "a" * 64})
    assert unknown.value.code == "image_not_found"
    created = await fake.submit({"op": "color", "image_id": image_id, "priority": "hero"})
    status = await fake.reprioritise(created.job_id, "active")
    assert status.priority == "active"
    assert (await fake.cancel(created.job_id)).state is JobState.cancelled
