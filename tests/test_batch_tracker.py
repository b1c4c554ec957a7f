"""The job tracker (sidecar.client.tracker) that `apply` and `batch` follow their jobs
with: it subscribes to its own jobs and relies on the sidecar's replay, so a job that
ended before `watch` still ends for it; after a reconnection it reads the watched
jobs' statuses again; and a job ends once, whatever comes twice."""

from __future__ import annotations

import asyncio
import contextlib
import json
from datetime import UTC, datetime

from helpers import Changes
from jobs_support import noise_image_fixture, submit, synthetic_app_fixture  # noqa: F401 (fixtures)

from sidecar.api.keys import BUS
from sidecar.client import FakeSidecar, JobEnd, JobTracker, SidecarClient, SidecarError
from sidecar.schema import Done, Progress, Started


@contextlib.asynccontextmanager
async def tracking(sidecar, seen: list):
    tracker = JobTracker(sidecar, lambda key, event: seen.append((key, event.type)))
    running = asyncio.create_task(tracker.run())
    try:
        await asyncio.wait_for(tracker.connected.wait(), 10)
        yield tracker
    finally:
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running


def real(client, token) -> SidecarClient:
    return SidecarClient(client.session, client.server.port, token)


async def test_a_job_that_ended_before_watch_ends_through_the_socket(
    client, auth, token, app, image_id, monkeypatch
):
    polled = []
    original = SidecarClient.status

    async def status(self, job_id):
        polled.append(job_id)
        return await original(self, job_id)

    monkeypatch.setattr(SidecarClient, "status", status)
    seen: list = []
    async with tracking(real(client, token), seen) as tracker:
        async with client.ws_connect(f"/v1/ws?token={token}") as ws:
            job_id = await submit(client, auth, image_id, steps=3, step_ms=0)
            async with asyncio.timeout(20):
                async for message in ws:
                    if message.type.name == "TEXT" and json.loads(message.data)["type"] == "done":
                        break
        await tracker.watch(job_id, "mine")
        key, ended_id, end = await asyncio.wait_for(tracker.ended.get(), 10)
        # the socket follows only the tracker's own job
        followed = [s.job_ids for s in app[BUS]._subscribers if s.job_ids is not None]
    assert (key, ended_id) == ("mine", job_id)
    assert end == JobEnd("done", cached=False)
    assert polled == []  # the replay, not a status poll
    assert ("mine", "queued") in seen and ("mine", "started") in seen
    assert followed == [{job_id}]
    assert tracker.watched == {}


async def test_past_the_subscribe_limit_it_follows_every_job_and_checks_new_ones(
    client, auth, token, image_id, monkeypatch
):
    monkeypatch.setattr("sidecar.client.tracker.SUBSCRIBE_MAX", 1)
    async with tracking(real(client, token), []) as tracker:
        slow = await submit(client, auth, image_id, steps=40, step_ms=20)  # fast waits on it
        await tracker.watch(slow, "slow")
        async with client.ws_connect(f"/v1/ws?token={token}") as ws:
            fast = await submit(client, auth, image_id, steps=2, step_ms=0, params={"seed": 2})
            async with asyncio.timeout(20):
                async for message in ws:
                    if message.type.name != "TEXT":
                        continue
                    event = json.loads(message.data)
                    if event["type"] == "done" and event["job_id"] == fast:
                        break
        await tracker.watch(fast, "fast")  # two watched: every job, and a status check
        ends = [await asyncio.wait_for(tracker.ended.get(), 20) for _ in range(2)]
    assert sorted((key, end.state) for key, _, end in ends) == [("fast", "done"), ("slow", "done")]


def _done(job_id: str, seq: int) -> Done:
    now = datetime.now(UTC)
    return Done(job_id=job_id, seq=seq, ts=now, cached=False, result_url="/v1/jobs/x/result")


def _drain(queue: asyncio.Queue) -> list:
    items = []
    while not queue.empty():
        items.append(queue.get_nowait())
    return items


async def _two_jobs(fake: FakeSidecar) -> tuple[str, str]:
    image_id = (await fake.upload(b"an image", "image/png")).image_id
    body = {"op": "beauty", "image_id": image_id}
    return (await fake.submit(body)).job_id, (await fake.submit(body)).job_id


def _asked(fake: FakeSidecar) -> list[str]:
    return [job_id for method, job_id in fake.calls if method == "status"]


async def test_a_second_done_by_event_or_poll_ends_a_job_once_and_later_events_are_ignored():
    fake = FakeSidecar()
    a, b = await _two_jobs(fake)
    seen: list = []
    tracker = JobTracker(fake, lambda key, event: seen.append((key, event.type)))
    await tracker.watch(a, "first")  # no socket yet: nothing to subscribe
    await tracker.watch(b, "second")
    fake.finish(a)
    fake.finish(b)

    tracker._event(_done(a, 5))
    tracker._event(_done(a, 0))  # the sidecar restarted: the job's history, seq from 0
    tracker._event(Progress(job_id=a, seq=1, ts=datetime.now(UTC), progress=0.5, stage="final"))
    await tracker._poll()  # the socket is back: a poll sees a done too
    await tracker._poll([a, b])  # as watch() does past SUBSCRIBE_MAX
    tracker._event(_done(b, 9))  # b's done event after the poll took it

    ends = _drain(tracker.ended)
    assert [(key, job_id, end.state) for key, job_id, end in ends] == [
        ("first", a, "done"),
        ("second", b, "done"),
    ]
    assert seen == []  # no event of an ended job reaches the display
    assert _asked(fake) == [b]  # an ended job is not asked about again
    assert tracker.watched == {}


async def test_a_done_replayed_after_the_job_ended_through_the_sidecar_is_ignored(
    client, auth, token, image_id
):
    seen: list = []
    async with tracking(real(client, token), seen) as tracker:
        job_id = await submit(client, auth, image_id, steps=2, step_ms=0)
        await tracker.watch(job_id, "mine")
        first = await asyncio.wait_for(tracker.ended.get(), 20)
        events = len(seen)
        # a reconnect's poll and a replayed done, as after a restart
        await tracker._poll([job_id])
        tracker._event(_done(job_id, 0))
        tracker._event(Started(job_id=job_id, seq=1, ts=datetime.now(UTC)))
        assert tracker.ended.empty()
    assert first[:2] == ("mine", job_id) and first[2].state == "done"
    assert len(seen) == events


async def test_after_a_reconnection_the_watched_jobs_statuses_are_read_again(monkeypatch):
    """A job that ended while no stream was open, on a sidecar that kept its status but
    not its events (it restarted): the resync after the reconnection ends it."""
    fake = FakeSidecar()
    job_id, _ = await _two_jobs(fake)
    seen: list = []
    changes = Changes()  # noted at each event the tracker handles and each failed poll
    failed_polls: list[str] = []
    status = fake.status

    async def failing_status(asked):
        try:
            return await status(asked)
        except SidecarError:
            failed_polls.append(asked)
            changes.note()
            raise

    monkeypatch.setattr(fake, "status", failing_status)
    async with tracking(fake, seen) as tracker:
        handled: list = []
        handle = tracker._event

        def handle_and_note(event):
            handle(event)
            handled.append(event)
            changes.note()

        monkeypatch.setattr(tracker, "_event", handle_and_note)
        await tracker.watch(job_id, "mine")
        fake.emit(job_id, "started")
        await changes.until(lambda: ("mine", "started") in seen, what="the started event")
        fake.unreachable = True
        fake.drop_streams()
        fake.finish(job_id, "failed", code="out_of_memory", message="the GPU is full")
        fake.history.clear()  # the restarted sidecar replays nothing
        await changes.until(lambda: failed_polls, what="a poll while unreachable")
        assert tracker.watched  # not ended yet
        fake.unreachable = False
        key, ended_id, end = await asyncio.wait_for(tracker.ended.get(), 10)
        late = _done(job_id, 0)
        fake.deliver(late)  # a late terminal event of the ended job
        await changes.until(lambda: late in handled, what="the late done handled")
    assert (key, ended_id) == ("mine", job_id)
    assert end == JobEnd("failed", code="out_of_memory", message="the GPU is full")
    methods = [method for method, _ in fake.calls]
    reconnected = len(methods) - methods[::-1].index("events") - 1
    assert methods.count("events") == 2 and "status" in methods[reconnected:]  # the resync
    assert [kind for _, kind in seen] == ["queued", "started"]
    assert tracker.ended.empty() and tracker.watched == {}


async def test_a_sidecar_gone_for_good_fails_the_jobs_still_waited_on(monkeypatch):
    monkeypatch.setattr("sidecar.client.tracker.GIVE_UP_S", 0.2)
    monkeypatch.setattr("sidecar.client.tracker.POLL_S", 0.05)
    fake = FakeSidecar()
    job_id, _ = await _two_jobs(fake)
    async with tracking(fake, []) as tracker:
        await tracker.watch(job_id, "mine")
        fake.unreachable = True
        fake.drop_streams()
        _, _, end = await asyncio.wait_for(tracker.ended.get(), 10)
    assert end == JobEnd("failed", code="sidecar_unreachable", message="connection lost")
