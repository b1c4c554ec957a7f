"""Background precompute: a later Apply finds its stages ready; switching or closing a
document stops it; it gives way to any user job; a likely next action prefetches."""

from __future__ import annotations

import numpy as np
import pytest
from jobs_support import EventLog, attach_stepper, upload, wait_for

from sidecar.api.keys import BUS, ENGINES, SCHEDULER
from sidecar.cli import build_app
from sidecar.schema import Op


async def precompute(client, auth, image_id, document_id, ops=None) -> dict:
    body = {"image_id": image_id, "document_id": document_id}
    if ops:
        body["ops"] = ops
    response = await client.post("/v1/precompute", json=body, headers=auth)
    assert response.status == 202, await response.text()
    return await response.json()


async def test_an_apply_after_precompute_finds_its_stages_ready(client, auth, app, portrait):
    image_id = await upload(client, auth, portrait)
    started = await precompute(client, auth, image_id, "doc-1", ["beauty"])
    assert len(started["job_ids"]) == 1
    job = await wait_for(client, auth, started["job_ids"][0], timeout=60)
    assert job["state"] == "done" and job["precompute"] and job["priority"] == "background"
    result = await client.get(f"/v1/jobs/{job['job_id']}/result", headers=auth)
    assert result.status == 409  # precompute makes no result
    cache = app[ENGINES][Op.beauty].cache
    misses = cache.misses
    body = {"op": "beauty", "image_id": image_id, "document_id": "doc-1"}
    response = await client.post("/v1/jobs", json=body, headers=auth)
    created = await response.json()
    assert created["cached"] and created["state"] == "done"  # made ahead, at default params
    other = {**body, "params": {"strength": 0.5}}
    response = await client.post("/v1/jobs", json=other, headers=auth)
    apply_id = (await response.json())["job_id"]
    assert (await wait_for(client, auth, apply_id, timeout=60))["state"] == "done"
    assert cache.misses == misses + 1  # only the plan for the new params was computed


async def test_switching_documents_stops_the_other_precompute(client, auth, app, portrait):
    first = await upload(client, auth, portrait)
    second = await upload(client, auth, portrait[::-1].copy())
    blocker = await client.post(
        "/v1/jobs", json={"op": "color", "image_id": first, "priority": "hero"}, headers=auth
    )
    blocker_id = (await blocker.json())["job_id"]
    doc1 = await precompute(client, auth, first, "doc-1")
    assert len(doc1["job_ids"]) == 4  # every retouch op
    doc2 = await precompute(client, auth, second, "doc-2", ["volume"])
    assert doc2["cancelled"] == 4
    for job_id in doc1["job_ids"]:
        job = await wait_for(client, auth, job_id, timeout=60)
        assert job["state"] == "cancelled"
    assert (await wait_for(client, auth, doc2["job_ids"][0], timeout=60))["state"] == "done"
    await wait_for(client, auth, blocker_id, timeout=60)
    closed = await client.delete("/v1/precompute/doc-2", headers=auth)
    assert closed.status == 200 and (await closed.json())["cancelled"] == 0  # already done


async def test_precompute_of_an_unknown_image_is_a_404(client, auth):
    body = {"image_id": "a" * 64, "document_id": "doc"}
    response = await client.post("/v1/precompute", json=body, headers=auth)
    assert response.status == 404
    assert (await response.json())["error"]["code"] == "image_not_found"


@pytest.fixture
def slow_app(settings):
    return build_app(settings, engines=["synthetic"])


async def test_background_work_gives_way_to_a_user_job(aiohttp_client, slow_app, settings):
    client = await aiohttp_client(slow_app)
    auth = {"Authorization": f"Bearer {settings.token_path.read_text().strip()}"}
    pixels = np.random.default_rng(4).integers(0, 256, (32, 48, 3), dtype=np.uint8)
    image_id = await upload(client, auth, pixels)
    scheduler = slow_app[SCHEDULER]
    events = EventLog(slow_app[BUS])
    stepper = attach_stepper(slow_app)
    try:
        # a long background job, as precompute's would be
        body = {
            "op": "beauty",
            "image_id": image_id,
            "priority": "background",
            "params": {"steps": 40},
        }
        response = await client.post("/v1/jobs", json=body, headers=auth)
        background = (await response.json())["job_id"]
        stepper.release(background)
        await stepper.reached(background, 2)  # a step done, held in the next
        user = {"op": "beauty", "image_id": image_id, "params": {"steps": 2}}
        user_id = (await (await client.post("/v1/jobs", json=user, headers=auth)).json())["job_id"]
        stepper.release(background)  # it ends that step and gives way there
        stepper.release(user_id, 2)  # the user job's every step; none more for background
        done = await wait_for(client, auth, user_id, timeout=30)
        # the normal job ran while the background one waited for it (pre-empted at a step)
        assert scheduler.get(background).state.value in ("queued", "running")
        await events.until(lambda: events.of(background, "requeued"), what="background requeued")
        assert done["state"] == "done"
        stepper.open()
        assert (await wait_for(client, auth, background, timeout=30))["state"] == "done"
    finally:
        stepper.open()


async def test_a_likely_next_action_prefetches_its_stages(client, auth, app, portrait):
    image_id = await upload(client, auth, portrait)
    body = {"op": "dodge_burn", "image_id": image_id, "document_id": "doc-1"}
    job_id = (await (await client.post("/v1/jobs", json=body, headers=auth)).json())["job_id"]
    await wait_for(client, auth, job_id, timeout=60)
    for document_id, action in (("doc-1", "dodge_burn"), ("doc-2", "beauty")):
        response = await client.post(
            "/v1/actions", json={"document_id": document_id, "action": action}, headers=auth
        )
        assert response.status == 200
    jobs = (await (await client.get("/v1/jobs", headers=auth)).json())["jobs"]
    prefetched = [j for j in jobs if j["precompute"]]
    # dodge_burn → volume (0.64) is prefetched; beauty → color (0.20) is not
    assert [j["op"] for j in prefetched] == ["volume"]
