"""The benchmark's event log fails its waits when its stream ends, instead of waiting
out their timeouts for events that can no longer come; it answers the sidecar's
heartbeat pings while it waits; and the harness's event loop is watched for stalls."""

from __future__ import annotations

import asyncio
import time

import pytest
from aiohttp import WSMsgType, web

from bench import stalls
from bench.events import EventLog
from sidecar.client import SidecarClient
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


async def test_fail_ends_every_wait_at_once_with_the_sidecars_log():
    """What the harness does when the sidecar's process exits under a wait."""
    sidecar = FakeSidecar()
    async with EventLog(sidecar, context=lambda: "--- the last lines of the log ---") as log:
        pending = log.expect(JOB, "done")
        log.fail("the sidecar exited with code -9")
        for waiting in (pending, log.expect(OTHER, "done")):
            with pytest.raises(ConnectionError, match="code -9") as caught:
                await asyncio.wait_for(waiting, 5)
            assert "the last lines of the log" in str(caught.value)
        log.fail("a later reason")  # the first reason stays
        assert "code -9" in log.closed and "later" not in log.closed


async def test_the_log_answers_the_sidecars_heartbeat_pings(aiohttp_server):
    """aiohttp answers a ping only while the stream is read: the log always reads it."""
    pongs: asyncio.Queue = asyncio.Queue()

    async def ws(request: web.Request) -> web.WebSocketResponse:
        socket = web.WebSocketResponse(autoping=False)  # the pongs come to us
        await socket.prepare(request)
        await socket.ping(b"are you there")
        await pongs.put(await socket.receive())
        await socket.close()
        return socket

    app = web.Application()
    app.router.add_get("/v1/ws", ws)
    server = await aiohttp_server(app)
    async with SidecarClient.open(server.port, "token") as client, EventLog(client):
        pong = await asyncio.wait_for(pongs.get(), 10)
    assert (pong.type, pong.data) == (WSMsgType.PONG, b"are you there")


async def test_stalls_of_the_event_loop_are_measured_while_a_stream_is_open():
    stalls.reset()
    assert stalls.longest() is None  # nothing watched
    async with EventLog(FakeSidecar()):
        await asyncio.sleep(2 * stalls.TICK_S)
        time.sleep(0.3)  # blocking work on the loop: what the harness must not do
        await asyncio.sleep(2 * stalls.TICK_S)
    assert stalls.longest() >= 0.25
