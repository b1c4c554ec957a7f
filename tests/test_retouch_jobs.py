"""The retouch engine behind the queue: the default sidecar retouches real portraits,
streams its levels, refuses bad params up front, and a newer Apply supersedes."""

from __future__ import annotations

import asyncio
import json

import numpy as np
from helpers import async_wait_until
from jobs_support import read_until_done, status, upload, wait_for

from sidecar.api.keys import BUS


async def submit(client, auth, image_id: str, *, op: str, params: dict, **extra) -> str:
    body = {"op": op, "image_id": image_id, "params": params, **extra}
    response = await client.post("/v1/jobs", json=body, headers=auth)
    assert response.status == 202, await response.text()
    return (await response.json())["job_id"]


async def test_the_default_sidecar_retouches_and_streams_levels_to_a_watcher(
    app, client, auth, token, portrait
):
    image_id = await upload(client, auth, portrait)
    health = await (await client.get("/v1/health")).json()
    assert "retouch" in health["engines"]
    async with client.ws_connect(f"/v1/ws?token={token}") as ws:  # someone watches
        job_id = await submit(client, auth, image_id, op="beauty", params={})
        texts, frames = await read_until_done(ws, job_id)
    events = [e for e in texts if e["job_id"] == job_id]
    assert events[-1]["type"] == "done"
    stages = [e["stage"] for e in events if e["type"] == "stage"]
    assert stages == ["analysis", "draft", "final"]
    assert [header["level"] for header, _ in frames] == ["draft", "final"]
    raw = await client.get(f"/v1/jobs/{job_id}/result?format=raw", headers=auth)
    result = np.frombuffer(await raw.read(), np.uint8).reshape(portrait.shape)
    assert not np.array_equal(result, portrait)
    assert np.abs(result.astype(int) - portrait).mean() < 3  # a retouch, not a new image

    # nobody watching: no draft and no preview (the same bits either way: the engine's
    # tests); a second image, since the same request is answered from the result cache
    await async_wait_until(lambda: app[BUS].subscriber_count == 0, what="socket gone")
    other = portrait.copy()
    other[0, 0] ^= 1
    other_id = await upload(client, auth, other)
    job_id = await submit(client, auth, other_id, op="beauty", params={})

    async def done() -> bool:  # status reads only: a subscription would be a watcher
        return (await status(client, auth, job_id))["state"] == "done"

    await async_wait_until(done, timeout=60, what="the unwatched job done")
    response = await client.get(f"/v1/jobs/{job_id}/events", headers=auth)
    text = await asyncio.wait_for(response.text(), 60)
    events = [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: ")]
    assert [e["stage"] for e in events if e["type"] == "stage"] == ["analysis", "final"]
    assert not [e for e in events if e["type"] == "preview"]


async def test_sixteen_bit_rgba_comes_back_sixteen_bit_rgba(client, auth, portrait):
    alpha = np.full(portrait.shape[:2], 40000, np.uint16)
    pixels = np.dstack([portrait.astype(np.uint16) * 257, alpha])
    image_id = await upload(client, auth, pixels)
    job_id = await submit(client, auth, image_id, op="color", params={})
    assert (await wait_for(client, auth, job_id, timeout=60))["state"] == "done"
    raw = await client.get(f"/v1/jobs/{job_id}/result?format=raw", headers=auth)
    assert raw.headers["X-Image-Depth"] == "16" and raw.headers["X-Image-Channels"] == "4"
    result = np.frombuffer(await raw.read(), "<u2").reshape(pixels.shape)
    assert np.array_equal(result[..., 3], alpha)


async def test_bad_params_are_refused_at_submit(client, auth, portrait):
    image_id = await upload(client, auth, portrait)
    for params in ({"strength": 3}, {"strength": "lots"}, {"unknown": 1}):
        body = {"op": "beauty", "image_id": image_id, "params": params}
        response = await client.post("/v1/jobs", json=body, headers=auth)
        assert response.status == 422, params
        assert (await response.json())["error"]["code"] == "invalid_request"


async def test_a_newer_apply_on_the_same_document_supersedes_the_older(client, auth, portrait):
    image_id = await upload(client, auth, portrait)
    doc = {"document_id": "doc-1"}
    first = await submit(client, auth, image_id, op="beauty", params={"strength": 0.5}, **doc)
    second = await submit(client, auth, image_id, op="beauty", params={"strength": 0.7}, **doc)
    other_op = await submit(client, auth, image_id, op="color", params={}, **doc)
    elsewhere = await submit(client, auth, image_id, op="beauty", params={"strength": 0.6})
    assert (await wait_for(client, auth, first, timeout=60))["state"] == "cancelled"
    for job_id in (second, other_op, elsewhere):
        assert (await wait_for(client, auth, job_id, timeout=60))["state"] == "done"
    text = await (await client.get(f"/v1/jobs/{first}/events", headers=auth)).text()
    last = json.loads([line for line in text.splitlines() if line.startswith("data: ")][-1][6:])
    assert last["type"] == "cancelled" and last["reason"] == f"superseded by {second}"


async def test_skin_tone_is_the_skins_median_chroma(client, auth, portrait):
    image_id = await upload(client, auth, portrait)
    tone = await (await client.get(f"/v1/images/{image_id}/skin-tone", headers=auth)).json()
    assert tone["image_id"] == image_id
    assert 5 < tone["a"] < 40 and 5 < tone["b"] < 40  # warm skin: red and yellow
    grey = await upload(client, auth, np.full((64, 64, 3), 128, np.uint8))
    none = await (await client.get(f"/v1/images/{grey}/skin-tone", headers=auth)).json()
    assert none["a"] is None and none["b"] is None
    missing = await client.get(f"/v1/images/{'0' * 64}/skin-tone", headers=auth)
    assert missing.status == 404
