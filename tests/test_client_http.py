"""The typed client (sidecar.client.SidecarClient) against the real app: requests and
answers are the contract's models, the event stream carries typed events and preview
frames, and every error is a SidecarError with the sidecar's stable code."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from helpers import free_port
from jobs_support import synthetic_app_fixture  # noqa: F401 (fixture)

from sidecar.client import (
    CancelAccepted,
    SidecarClient,
    SidecarError,
    Subscribed,
    connect,
)
from sidecar.schema import (
    Done,
    Health,
    ImageInfo,
    JobCreated,
    JobStatus,
    PreviewHeader,
    Queued,
)


@pytest.fixture
def sidecar(client, token) -> SidecarClient:
    return SidecarClient(client.session, client.server.port, token)


@pytest.fixture
def pixels() -> np.ndarray:
    return np.random.default_rng(3).integers(0, 65536, (40, 56, 3), dtype=np.uint16)


async def test_a_job_from_upload_to_result_in_the_contracts_models(sidecar, pixels):
    health = await sidecar.health()
    assert isinstance(health, Health) and health.status == "ok"
    info = await sidecar.upload_pixels(pixels)
    assert isinstance(info, ImageInfo)
    assert (info.width, info.height, info.channels, info.depth) == (56, 40, 3, 16)
    async with sidecar.events() as stream:
        created = await sidecar.submit(
            {"op": "beauty", "image_id": info.image_id, "params": {"steps": 3, "step_ms": 0}}
        )
        assert isinstance(created, JobCreated)
        await stream.subscribe([created.job_id])
        messages = []
        async with asyncio.timeout(20):
            async for message in stream:
                messages.append(message)
                if isinstance(message.event, Done):
                    break
    replies = [m.reply for m in messages if m.reply is not None]
    assert replies == [Subscribed(type="subscribed", job_ids=[created.job_id])]
    events = [m.event for m in messages if m.event is not None]
    assert isinstance(events[0], Queued) and all(e.job_id == created.job_id for e in events)
    seqs = [e.seq for e in events]
    assert seqs == sorted(set(seqs))  # each once, in order (live, then no replay twice)
    frames = [m for m in messages if isinstance(m.event, PreviewHeader)]
    assert frames and all(m.jpeg[:2] == b"\xff\xd8" and m.size > len(m.jpeg) for m in frames)
    status = await sidecar.status(created.job_id)
    assert isinstance(status, JobStatus) and status.state == "done"
    assert created.job_id in [job.job_id for job in (await sidecar.list_jobs()).jobs]
    raw = await sidecar.result(created.job_id, {"format": "raw"})
    assert len(raw) == pixels.nbytes
    half = await sidecar.result(created.job_id, {"format": "raw", "max_side": 28})
    assert len(half) == pixels.nbytes // 4
    # read into one kept buffer: the same bytes, the buffer resized to each answer
    kept = bytearray(b"x" * 10)
    got = await sidecar.result(created.job_id, {"format": "raw"}, into=kept)
    assert got is kept and kept == raw
    got = await sidecar.result(created.job_id, {"format": "raw", "max_side": 28}, into=kept)
    assert got is kept and kept == half
    png = await sidecar.result(created.job_id, {"format": "png"})
    got = await sidecar.result(created.job_id, {"format": "png"}, into=kept)
    assert got is kept and kept == png and kept[:4] == b"\x89PNG"
    with pytest.raises(SidecarError) as refused:
        await sidecar.cancel(created.job_id)  # it has ended
    assert (refused.value.code, refused.value.status) == ("conflict", 409)


async def test_errors_carry_the_sidecars_code(client, sidecar):
    with pytest.raises(SidecarError) as missing:
        await sidecar.status("f" * 32)
    assert (missing.value.code, missing.value.status) == ("job_not_found", 404)
    with pytest.raises(SidecarError) as no_image:
        await sidecar.skin_tone("0" * 64)
    assert no_image.value.code == "image_not_found"
    stranger = SidecarClient(client.session, client.server.port, "not-the-token")
    with pytest.raises(SidecarError) as wrong:
        await stranger.check_token()
    assert wrong.value.code == "unauthorized"
    await sidecar.check_token()  # the right one passes
    async with SidecarClient.open(free_port(), "token") as nobody:
        with pytest.raises(SidecarError) as gone:
            await nobody.status("f" * 32)
    assert gone.value.code == "connection_failed"


async def test_a_request_refused_before_it_is_sent_reads_as_the_sidecars_refusal(
    client, auth, sidecar, pixels
):
    image_id = (await sidecar.upload_pixels(pixels)).image_id
    body = {"op": "beauty", "image_id": image_id, "params": {"x": float("nan")}}
    with pytest.raises(SidecarError) as local:
        await sidecar.submit(body)
    response = await client.post("/v1/jobs", json=body, headers=auth)  # sent as it is
    remote = SidecarError.from_answer(response.status, response.reason, await response.read())
    assert (local.value.code, local.value.status) == (remote.code, remote.status)
    assert local.value.message == remote.message
    assert "params.x.float: Input should be a finite number" in remote.message


async def test_a_cancel_over_the_socket_is_answered_there(sidecar, pixels):
    image_id = (await sidecar.upload_pixels(pixels)).image_id
    created = await sidecar.submit(
        {"op": "beauty", "image_id": image_id, "params": {"steps": 200, "step_ms": 20}}
    )
    async with sidecar.events() as stream:
        await stream.subscribe([created.job_id])
        await stream.cancel(created.job_id)
        async with asyncio.timeout(20):
            async for message in stream:
                if isinstance(message.reply, CancelAccepted):
                    break
    assert message.reply.job_id == created.job_id
    assert message.job_id == created.job_id


async def test_connect_uses_the_sidecar_that_answers_or_starts_one(client, token):
    async with connect(client.server.port, token, lambda: None) as (running, in_process):
        assert not in_process and running.port == client.server.port
    with pytest.raises(SidecarError) as refused:
        async with connect(client.server.port, "not-the-token", lambda: None):
            pass
    assert refused.value.code == "unauthorized"
