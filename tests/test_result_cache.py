"""A second Apply with the same pixels, op, params and seed is answered from the
result cache at once, without queueing, across restarts; anything that changes the
result (one pixel, the layer stack, params, intensity, seed) misses."""

from __future__ import annotations

from jobs_support import upload, wait_for

from sidecar.api.keys import IMAGES, SCHEDULER
from sidecar.cli import build_app


async def apply(client, auth, image_id: str, **extra) -> dict:
    body = {"op": "beauty", "image_id": image_id, "params": {"strength": 0.8}, **extra}
    response = await client.post("/v1/jobs", json=body, headers=auth)
    assert response.status == 202, await response.text()
    return await response.json()


async def result_bytes(client, auth, job_id: str) -> bytes:
    response = await client.get(f"/v1/jobs/{job_id}/result?format=raw", headers=auth)
    assert response.status == 200
    return await response.read()


async def test_a_repeated_apply_is_answered_from_the_cache(client, auth, portrait):
    image_id = await upload(client, auth, portrait)
    first = await apply(client, auth, image_id, layer_stack_hash="stack-1")
    assert not first["cached"] and first["state"] in ("queued", "running")
    await wait_for(client, auth, first["job_id"], timeout=60)
    again = await apply(client, auth, image_id, layer_stack_hash="stack-1")
    assert again["cached"] and again["state"] == "done" and again["position"] is None
    assert await result_bytes(client, auth, again["job_id"]) == await result_bytes(
        client, auth, first["job_id"]
    )
    events = await (await client.get(f"/v1/jobs/{again['job_id']}/events", headers=auth)).text()
    kinds = [line for line in events.splitlines() if line.startswith("data: ")]
    assert len(kinds) == 1 and '"type":"done"' in kinds[0] and '"cached":true' in kinds[0]


async def test_anything_that_changes_the_result_misses(client, auth, portrait):
    image_id = await upload(client, auth, portrait)
    base = await apply(client, auth, image_id)
    await wait_for(client, auth, base["job_id"], timeout=60)
    variants = [
        {"layer_stack_hash": "another-stack"},
        {"params": {"strength": 0.5}},
        {"intensity": 0.5},
        {"seed": 12345},
        {"op": "color", "params": {}},
    ]
    for extra in variants:
        assert not (await apply(client, auth, image_id, **extra))["cached"], extra
    edited = portrait.copy()
    edited[-1, -1, 2] ^= 1  # one bit of the bottom-right pixel
    other_id = await upload(client, auth, edited)
    assert other_id != image_id
    assert not (await apply(client, auth, other_id))["cached"]


async def test_the_cache_survives_a_restart_and_a_lost_result_is_made_again(
    aiohttp_client, settings, portrait
):
    first = await aiohttp_client(build_app(settings))
    auth = {"Authorization": f"Bearer {settings.token_path.read_text().strip()}"}
    image_id = await upload(first, auth, portrait)
    job = await apply(first, auth, image_id)
    done = await wait_for(first, auth, job["job_id"], timeout=60)
    assert done["state"] == "done"
    await first.close()

    app = build_app(settings)
    second = await aiohttp_client(app)
    again = await apply(second, auth, image_id)
    assert again["cached"] and again["state"] == "done"
    expected = await result_bytes(second, auth, again["job_id"])

    # the result's file goes missing: the next Apply computes it again, same bits
    store = app[IMAGES]
    store.flush()
    store.path_for(app[SCHEDULER].get(again["job_id"]).result_id).unlink()
    redo = await apply(second, auth, image_id)
    assert not redo["cached"]
    await wait_for(second, auth, redo["job_id"], timeout=60)
    assert await result_bytes(second, auth, redo["job_id"]) == expected
