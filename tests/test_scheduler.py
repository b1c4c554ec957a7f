"""The queue: priority order, starring, pre-emption, cancel, failures, results."""

from __future__ import annotations

import asyncio
import threading

import cv2
import numpy as np
import pytest
from jobs_support import EventLog, status, stepper_fixture, submit, upload, wait_for  # noqa: F401

from sidecar.api.keys import BUS, IMAGES, SCHEDULER
from sidecar.cli import build_app
from sidecar.engines import Engine
from sidecar.engines.stepping import Stepper, StepperTimeout
from sidecar.schema import JobState, Op


@pytest.fixture
def app(settings):
    return build_app(settings, engines=["synthetic"])


@pytest.fixture
def small() -> np.ndarray:
    return np.random.default_rng(5).integers(0, 256, (48, 64, 3), dtype=np.uint8)


@pytest.fixture
async def image_id(client, auth, small) -> str:
    return await upload(client, auth, small)


@pytest.fixture
async def events(client, app):
    log = EventLog(app[BUS])
    yield log


async def test_waiting_jobs_run_in_priority_order(client, auth, image_id, events, stepper):
    blocker = await submit(client, auth, image_id, priority="hero", steps=3)
    await stepper.reached(blocker, 1)  # held in its first step while the others queue
    order = ["background", "normal", "hero", "normal", "active", "background"]
    ids = [await submit(client, auth, image_id, priority=p, steps=1) for p in order]
    stepper.open()
    for job_id in ids:
        await wait_for(client, auth, job_id)
    await events.ended(*ids)
    expected = [ids[4], ids[2], ids[1], ids[3], ids[0], ids[5]]
    assert events.started_order() == [blocker, *expected]
    assert "requeued" not in events.types(blocker)  # a hero is never pre-empted


async def test_starring_moves_a_job_to_the_front_without_interrupting(
    client, auth, image_id, events, stepper
):
    running = await submit(client, auth, image_id, steps=3)
    await stepper.reached(running, 1)  # held there until the queue has been rearranged
    queued = [await submit(client, auth, image_id, steps=1) for _ in range(3)]
    assert [(await status(client, auth, j))["position"] for j in queued] == [0, 1, 2]
    response = await client.patch(f"/v1/jobs/{queued[2]}", json={"priority": "hero"}, headers=auth)
    assert response.status == 200
    assert (await response.json())["position"] == 0
    assert (await status(client, auth, queued[0]))["position"] == 1
    stepper.open()
    for job_id in queued:
        await wait_for(client, auth, job_id)
    await events.ended(*queued)
    assert events.started_order() == [running, queued[2], queued[0], queued[1]]
    assert "requeued" not in events.types(running)


async def test_active_job_preempts_at_a_step_boundary_and_the_other_resumes(
    client, auth, image_id, events, app, stepper
):
    background = await submit(client, auth, image_id, steps=20)

    # a step done, so the pre-empted run has saved steps to go on from; held in step 2
    # (each step's progress is in the log before the next step ends: the bus coalesces
    # progress a subscriber has not taken yet)
    def progressed(n: int):
        return events.until(lambda: len(events.of(background, "progress")) >= n)

    stepper.release(background)
    await stepper.reached(background, 2)
    await progressed(1)
    active = await submit(client, auth, image_id, priority="active", steps=2)
    stepper.release(background)  # it ends step 2 and gives way there
    stepper.release(active, 2)
    done_active = await wait_for(client, auth, active)
    await progressed(2)
    for step in range(3, 21):  # the resumed run, a step at a time
        await stepper.reached(background, step)
        stepper.release(background)
        await progressed(step)
    done_background = await wait_for(client, auth, background)
    stepper.open()
    await events.ended(active, background)
    assert done_active["state"] == done_background["state"] == "done"
    types = events.types(background)
    assert "requeued" in types
    assert events.started_order()[:3] == [background, active, background]
    # it gave way at the first boundary after the active job came: two steps in
    before = events.of(background)[: types.index("requeued")]
    assert [e.progress for e in before if e.type == "progress"][-1] == pytest.approx(2 / 20)
    # the pre-empted job went on from its saved steps instead of starting over
    fractions = [e.progress for e in events.of(background, "progress")]
    assert fractions == sorted(fractions) and len(fractions) == 20
    # and its pixels are those of an uninterrupted run
    plain = await submit(client, auth, image_id, steps=20, step_ms=0, params={"x": 1})
    await wait_for(client, auth, plain)
    a = await (await client.get(f"/v1/jobs/{background}/result?format=raw", headers=auth)).read()
    b = await (await client.get(f"/v1/jobs/{plain}/result?format=raw", headers=auth)).read()
    assert a == b


async def test_preemption_waits_for_the_step_in_progress(client, auth, image_id, events, stepper):
    slow = await submit(client, auth, image_id, steps=4)
    await stepper.reached(slow, 1)  # in its first step, held there
    active = await submit(client, auth, image_id, priority="active", steps=1)
    # the active job waits while the step is in progress, however long it takes
    assert (await status(client, auth, active))["state"] == "queued"
    assert (await status(client, auth, slow))["state"] == "running"
    stepper.open()
    await wait_for(client, auth, active)
    await events.ended(active)
    requeued = events.of(slow, "requeued")[0]
    started = [e for e in events.of(active, "started")][0]
    assert requeued.seq > 0 and started.ts >= requeued.ts


async def test_cancel_queued_running_finished_and_unknown(client, auth, image_id, events, stepper):
    running = await submit(client, auth, image_id, steps=50)
    await stepper.reached(running, 1)  # held in its first step while it is cancelled
    queued = await submit(client, auth, image_id, steps=1)

    response = await client.delete(f"/v1/jobs/{queued}", headers=auth)
    assert response.status == 200 and (await response.json())["state"] == "cancelled"

    response = await client.delete(f"/v1/jobs/{running}", headers=auth)
    assert response.status == 202
    stepper.open()  # it stops at the end of the step it is in
    final = await wait_for(client, auth, running, timeout=2.0)
    assert final["state"] == "cancelled"
    assert final["progress"] < 1.0
    result = await client.get(f"/v1/jobs/{running}/result", headers=auth)
    assert result.status == 409

    quick = await submit(client, auth, image_id, steps=1)
    await wait_for(client, auth, quick)
    response = await client.delete(f"/v1/jobs/{quick}", headers=auth)
    assert response.status == 409
    assert (await response.json())["error"]["code"] == "conflict"

    response = await client.delete("/v1/jobs/" + "0" * 32, headers=auth)
    assert response.status == 404
    assert (await response.json())["error"]["code"] == "job_not_found"
    await events.ended(queued, running, quick)  # quick ran after the others' every event
    assert events.types(queued) == ["queued", "cancelled"]
    assert events.types(running).count("cancelled") == 1


async def test_two_clients_cancelling_at_once_cancel_once(client, auth, image_id, events, stepper):
    running = await submit(client, auth, image_id, steps=50)
    await stepper.reached(running, 1)  # held in its first step while it is cancelled
    other = await submit(client, auth, image_id, steps=1)
    responses = await asyncio.gather(
        *(client.delete(f"/v1/jobs/{running}", headers=auth) for _ in range(2))
    )
    assert sorted(r.status for r in responses) in ([200, 202], [202, 202])
    stepper.open()
    await wait_for(client, auth, running)
    await wait_for(client, auth, other)
    await events.ended(running, other)  # other ran after running's every event
    assert events.types(running).count("cancelled") == 1
    assert (await status(client, auth, other))["state"] == "done"  # not the wrong job


async def test_events_carry_seq_stage_progress_and_eta(client, auth, image_id, events):
    first = await submit(client, auth, image_id, steps=5, step_ms=10)
    await wait_for(client, auth, first)
    second = await submit(client, auth, image_id, steps=5, step_ms=10, params={"n": 2})
    await wait_for(client, auth, second)
    await events.ended(first, second)
    for job_id in (first, second):
        seqs = [e.seq for e in events.of(job_id)]
        assert seqs == list(range(len(seqs)))
        assert events.types(job_id)[:3] == ["queued", "started", "stage"]
        assert events.types(job_id)[-1] == "done"
    # the second run of the same op and size knows how long it will take from the start
    assert events.of(second, "progress")[0].eta_s is not None
    assert events.of(second, "progress")[-1].eta_s == pytest.approx(0.0, abs=0.05)


def test_a_step_never_released_fails_with_a_clear_error_instead_of_hanging():
    stepper = Stepper(timeout=0.05)
    stepper.release("other")  # another job's release is not this one's
    with pytest.raises(StepperTimeout, match="job a waited 0.05 s in step 3"):
        stepper.step("a", 3)
    assert stepper.at("a") == 3
    stepper.release()  # any job's
    stepper.step("a", 4)
    stepper.open()
    stepper.step("a", 5)


class BrokenEngine(Engine):
    name = "broken"
    ops = frozenset({Op.color})

    def run(self, job, ctx):
        ctx.stage("about to fail", 0, 1)
        raise RuntimeError("engine bug with a secret path /home/someone")


async def test_a_failing_job_fails_alone_and_the_worker_goes_on(aiohttp_client, settings, small):
    app = build_app(settings, engines=["synthetic"])
    from sidecar.api.keys import ENGINES

    app[ENGINES][Op.color] = BrokenEngine()
    client = await aiohttp_client(app)
    auth = {"Authorization": f"Bearer {settings.token_path.read_text().strip()}"}
    image_id = await upload(client, auth, small)
    bad = await submit(client, auth, image_id, op="color")
    good = await submit(client, auth, image_id)
    failed = await wait_for(client, auth, bad)
    assert failed["state"] == "failed"
    assert failed["error"]["code"] == "internal_error"
    assert "secret" not in str(failed)
    assert (await wait_for(client, auth, good))["state"] == "done"


async def test_bad_job_requests(client, auth, image_id):
    cases = [
        ({"op": "beauty", "image_id": "f" * 64}, 404, "image_not_found"),
        ({"op": "generate", "prompt": "a portrait"}, 503, "engine_unavailable"),
        ({"op": "beauty"}, 422, "invalid_request"),
        ({"op": "beauty", "image_id": image_id, "priority": "urgent"}, 422, "invalid_request"),
    ]
    for body, code, error in cases:
        response = await client.post("/v1/jobs", json=body, headers=auth)
        assert response.status == code, body
        assert (await response.json())["error"]["code"] == error
    response = await client.post(
        "/v1/jobs", data=b"{not json", headers={**auth, "Content-Type": "application/json"}
    )
    assert response.status == 422
    response = await client.post(
        "/v1/jobs",
        data=b"op=beauty",
        headers={**auth, "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status == 415
    response = await client.post(
        "/v1/jobs", data=b"[" * 2_000_000, headers={**auth, "Content-Type": "application/json"}
    )
    assert response.status == 413


async def test_result_formats_intensity_and_size(client, auth, image_id, small):
    job_id = await submit(client, auth, image_id, steps=3, step_ms=1)
    await wait_for(client, auth, job_id)
    response = await client.get(f"/v1/jobs/{job_id}/result?format=raw", headers=auth)
    assert response.status == 200
    assert response.headers["X-Image-Width"] == "64"
    full = np.frombuffer(await response.read(), np.uint8).reshape(small.shape)
    assert not np.array_equal(full, small)
    response = await client.get(f"/v1/jobs/{job_id}/result?format=raw&intensity=0.5", headers=auth)
    half = np.frombuffer(await response.read(), np.uint8).reshape(small.shape)
    expected = np.rint(small + 0.5 * (full.astype(np.float32) - small))
    assert np.abs(half.astype(int) - expected).max() <= 1
    response = await client.get(f"/v1/jobs/{job_id}/result?format=png&max_side=32", headers=auth)
    assert response.headers["Content-Type"] == "image/png"
    assert response.headers["X-Image-Width"] == "32"
    response = await client.get(f"/v1/jobs/{job_id}/result?format=gif", headers=auth)
    assert response.status == 422
    # a blend at a smaller size: shrunk first, then blended, within 1 LSB of the other order
    response = await client.get(
        f"/v1/jobs/{job_id}/result?format=raw&intensity=0.5&max_side=32", headers=auth
    )
    small_half = np.frombuffer(await response.read(), np.uint8).reshape(24, 32, 3)
    shrunk = cv2.resize(half, (32, 24), interpolation=cv2.INTER_AREA)
    assert np.abs(small_half.astype(int) - shrunk).max() <= 1


async def test_same_request_gives_the_same_bits(client, auth, image_id):
    a = await submit(client, auth, image_id, steps=3, step_ms=1)
    b = await submit(client, auth, image_id, steps=3, step_ms=1)
    await wait_for(client, auth, a)
    await wait_for(client, auth, b)
    ra = await (await client.get(f"/v1/jobs/{a}/result?format=raw", headers=auth)).read()
    rb = await (await client.get(f"/v1/jobs/{b}/result?format=raw", headers=auth)).read()
    assert ra == rb


async def test_listing_is_in_queue_order(client, auth, image_id, stepper):
    running = await submit(client, auth, image_id, steps=20)
    await stepper.reached(running, 1)  # held there while the queue is listed
    low = await submit(client, auth, image_id, priority="background", steps=1)
    high = await submit(client, auth, image_id, priority="hero", steps=1)
    response = await client.get("/v1/jobs", headers=auth)
    jobs = (await response.json())["jobs"]
    assert [j["job_id"] for j in jobs[:3]] == [running, high, low]
    assert [j["position"] for j in jobs[:3]] == [None, 0, 1]
    health = await (await client.get("/v1/health")).json()
    assert health["queue"] == {"queued": 2, "running": 1}
    assert "synthetic" in health["engines"]


def test_only_the_scheduler_changes_a_job_state_and_the_worker_does_not_know_it():
    import ast
    import inspect

    from sidecar.jobs import precompute, queue, remake, results, steps, worker

    for module in (worker, steps, queue, precompute, results, remake):
        tree = ast.parse(inspect.getsource(module))
        targets = [
            target
            for node in ast.walk(tree)
            if isinstance(node, ast.Assign | ast.AugAssign | ast.AnnAssign)
            for target in (node.targets if isinstance(node, ast.Assign) else [node.target])
        ]
        assert not [t for t in targets if isinstance(t, ast.Attribute) and t.attr == "state"]
    imported = [
        node.module or ""
        for node in ast.walk(ast.parse(inspect.getsource(worker)))
        if isinstance(node, ast.ImportFrom)
    ]
    assert not [name for name in imported if "scheduler" in name]


@pytest.fixture
def hold(app, client):
    """The image store's writer held (until set): a write put now stays behind."""
    held = threading.Event()
    app[IMAGES]._writer.submit(held.wait)
    yield held
    held.set()  # whatever the test did: the app's close waits for the writer


async def _started_while_its_image_is_written(app, client, auth, small, events, stepper):
    """Upload `small` while the writer is held, so its write stays behind; POST a job on
    it; return the pending POST and the job id once the job runs."""
    image_id = await upload(client, auth, small)
    assert app[IMAGES].writing(image_id)
    body = {"op": "beauty", "image_id": image_id, "params": {"steps": 2, "step_ms": 1}}
    posting = asyncio.ensure_future(client.post("/v1/jobs", json=body, headers=auth))
    job_id = (await events.until(events.started_order, what="the job started"))[0]
    await stepper.reached(job_id, 1)
    return posting, job_id


def _on_disk(app, job_id: str) -> JobState | None:
    store = app[SCHEDULER].store
    rows = {row.job_id: row for row in store.unfinished() + store.finished(100)}
    return rows[job_id].state if job_id in rows else None


async def test_a_job_runs_before_its_just_uploaded_image_is_on_disk_and_is_recorded_with_it(
    app, client, auth, small, events, stepper, hold
):
    posting, job_id = await _started_while_its_image_is_written(
        app, client, auth, small, events, stepper
    )
    # running, but neither on disk nor answered while its image is not on disk
    assert not posting.done() and _on_disk(app, job_id) is None
    hold.set()
    response = await posting
    assert response.status == 202
    created = await response.json()
    assert created["job_id"] == job_id and created["state"] == "running"
    assert _on_disk(app, job_id) is JobState.running  # as it stood when recorded
    stepper.open()
    assert (await wait_for(client, auth, job_id))["state"] == "done"
    assert _on_disk(app, job_id) is JobState.done


async def test_a_job_that_ends_before_its_image_is_on_disk_is_recorded_as_it_ended(
    app, client, auth, small, events, stepper, hold
):
    posting, job_id = await _started_while_its_image_is_written(
        app, client, auth, small, events, stepper
    )
    cancelled = await client.delete(f"/v1/jobs/{job_id}", headers=auth)
    assert cancelled.status == 202  # running: it stops at its next step boundary
    stepper.open()
    await events.ended(job_id)
    assert events.types(job_id)[-1] == "cancelled" and _on_disk(app, job_id) is None
    hold.set()
    response = await posting
    assert response.status == 202 and (await response.json())["state"] == "cancelled"
    assert _on_disk(app, job_id) is JobState.cancelled
