"""WebSocket subscribers that come late: `subscribe` answers `subscribed`, then what
the bus keeps of each newly named job (state events, latest progress and preview
frame) in seq order, then live events; nothing twice on one socket, nothing lost."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

from jobs_support import noise_image_fixture, submit, synthetic_app_fixture  # noqa: F401 (fixtures)

from sidecar.api.keys import BUS
from sidecar.jobs import EventBus
from sidecar.schema import TERMINAL_STATES, PreviewHeader, Progress
from sidecar.schema.events import Done, Queued, StageEvent, Started
from sidecar.schema.frames import decode_preview_frame

UNKNOWN = "f" * 32


class Reader:
    """Every message of one socket, decoded: JSON dicts, and (header, jpeg) for frames."""

    def __init__(self, ws) -> None:
        self.ws = ws
        self.messages: list[dict] = []

    async def next(self, timeout: float = 20.0) -> dict:
        message = await self.ws.receive(timeout=timeout)
        if message.type.name == "TEXT":
            item = json.loads(message.data)
        elif message.type.name == "BINARY":
            header, jpeg = decode_preview_frame(message.data)
            item = {**header.model_dump(mode="json", exclude_none=True), "jpeg": jpeg}
        else:
            raise AssertionError(f"socket closed: {message}")
        self.messages.append(item)
        return item

    async def until(self, predicate, timeout: float = 20.0) -> list[dict]:
        """The messages up to and including the first that `predicate` accepts."""
        start = len(self.messages)
        async with asyncio.timeout(timeout):
            while not predicate(await self.next()):
                pass
        return self.messages[start:]

    async def subscribe(self, job_ids: list[str]) -> list[dict]:
        """Subscribe; the messages before the `subscribed` reply (not included)."""
        await self.ws.send_str(json.dumps({"type": "subscribe", "job_ids": job_ids}))
        got = await self.until(lambda m: m.get("type") == "subscribed")
        assert got[-1]["job_ids"] == sorted(job_ids)
        return got[:-1]


def ended(job_id: str):
    return lambda m: m.get("job_id") == job_id and m["type"] in TERMINAL_STATES


def of(messages: list[dict], job_id: str) -> list[dict]:
    return [m for m in messages if m.get("job_id") == job_id]


def kept(app, job_id: str) -> list:
    """What the bus keeps of a job: state events, latest progress, latest preview."""
    return app[BUS].history(job_id)


async def test_a_finished_job_is_replayed_once_with_its_latest_preview(
    client, auth, token, app, image_id
):
    async with client.ws_connect(f"/v1/ws?token={token}") as first:
        job_id = await submit(client, auth, image_id, steps=4, step_ms=5)
        await Reader(first).until(ended(job_id))
    async with client.ws_connect(f"/v1/ws?token={token}") as ws:
        late = Reader(ws)
        assert await late.subscribe([job_id]) == []  # nothing before `subscribed`
        got = await late.until(ended(job_id))
        # the same set again, then every job: nothing more comes before either reply
        assert await late.subscribe([job_id]) == []
        assert await late.subscribe([]) == []
    history = kept(app, job_id)
    assert [m["seq"] for m in got] == [e.seq for e in history]
    assert [m["seq"] for m in got] == sorted({m["seq"] for m in got})
    types = [m["type"] for m in got]
    assert types[:3] == ["queued", "started", "stage"] and types[-1] == "done"
    assert types.count("preview") == 1 and types.count("progress") <= 1
    texts = [m for m in got if "jpeg" not in m]
    assert texts == [json.loads(e.model_dump_json()) for e in history if e.type != "preview"]
    [frame] = [m for m in got if "jpeg" in m]
    [header] = [e for e in history if isinstance(e, PreviewHeader)]
    assert frame["seq"] == header.seq and frame["url"] == header.url
    assert frame["jpeg"] == app[BUS].preview(job_id, header.seq)


async def test_a_job_subscribed_mid_run_gets_its_past_then_live_events(
    client, auth, token, app, image_id
):
    async with (
        client.ws_connect(f"/v1/ws?token={token}") as first,
        client.ws_connect(f"/v1/ws?token={token}") as ws,
    ):
        late = Reader(ws)
        assert await late.subscribe([UNKNOWN]) == []  # follows nothing that exists
        job_id = await submit(client, auth, image_id, steps=100, step_ms=20)
        watcher = Reader(first)
        await watcher.until(lambda m: m.get("job_id") == job_id and m["type"] == "progress")
        assert of(await late.subscribe([UNKNOWN, job_id]), job_id) == []
        got = of(await late.until(ended(job_id)), job_id)
        await watcher.until(ended(job_id))
        everything = of(watcher.messages, job_id)
    seqs = [m["seq"] for m in got]
    assert seqs == sorted(set(seqs)), seqs  # in order, none twice
    state = [m for m in got if m["type"] not in ("progress", "preview")]
    assert state == [m for m in everything if m["type"] not in ("progress", "preview")]
    expected = [e.seq for e in kept(app, job_id) if not isinstance(e, (Progress, PreviewHeader))]
    assert [m["seq"] for m in state] == expected  # every state event: past and live
    assert state[0]["type"] == "queued" and state[-1]["type"] == "done"
    # live after the replay: previews from after the subscribe came as they happened
    assert sum(m["type"] == "preview" for m in got) > 1
    assert everything[-1] == got[-1]


async def test_an_unknown_job_is_no_error_and_resubscribing_sends_nothing_again(
    client, auth, token, image_id
):
    async with client.ws_connect(f"/v1/ws?token={token}") as ws:
        reader = Reader(ws)
        assert await reader.subscribe([UNKNOWN]) == []
        job_id = await submit(client, auth, image_id, steps=3, step_ms=5)
        first = await reader.subscribe([UNKNOWN, job_id])
        got = first + await reader.until(ended(job_id))
        assert await reader.subscribe([job_id, UNKNOWN]) == []
        assert await reader.subscribe([job_id]) == []
    assert not [m for m in reader.messages if m["type"] == "error"]
    seqs = [m["seq"] for m in got]
    assert seqs == sorted(set(seqs)) and got[0]["type"] == "queued"


async def test_a_job_left_out_of_a_subscribe_is_replayed_in_full_when_named_again(
    client, auth, token, app, image_id
):
    async with client.ws_connect(f"/v1/ws?token={token}") as ws:
        reader = Reader(ws)  # follows every job until it subscribes
        job_id = await submit(client, auth, image_id, steps=3, step_ms=5)
        live = of(await reader.until(ended(job_id)), job_id)
        assert await reader.subscribe([job_id]) == []  # it stayed followed: nothing again
        assert await reader.subscribe([UNKNOWN]) == []
        again = of(await reader.subscribe([job_id]) + await reader.until(ended(job_id)), job_id)
    assert [m["seq"] for m in live][0] == kept(app, job_id)[0].seq
    assert [m["seq"] for m in again] == [e.seq for e in kept(app, job_id)]


async def test_a_cached_job_ending_before_its_answer_is_replayed(client, auth, token, image_id):
    async with client.ws_connect(f"/v1/ws?token={token}") as ws:
        reader = Reader(ws)
        assert await reader.subscribe([UNKNOWN]) == []
        job_id = await submit(client, auth, image_id, steps=2, step_ms=0)
        await reader.subscribe([job_id])
        await reader.until(ended(job_id))
        again = await submit(client, auth, image_id, steps=2, step_ms=0)  # the result cache
        await reader.subscribe([job_id, again])
        got = of(await reader.until(ended(again)), again)
    assert got[-1]["type"] == "done" and got[-1]["cached"] is True
    assert not of(reader.messages[reader.messages.index(got[0]) :], job_id)


class FakeSocket:
    def __init__(self) -> None:
        self.sent: list[dict] = []
        self.changed = asyncio.Event()

    async def send_str(self, text: str) -> None:
        self.sent.append(json.loads(text))
        self.changed.set()

    async def send_bytes(self, data: bytes) -> None:
        header, jpeg = decode_preview_frame(data)
        self.sent.append({"type": "preview", "seq": header.seq, "jpeg": jpeg})
        self.changed.set()

    async def wait_for(self, predicate) -> None:
        async with asyncio.timeout(10):
            while not any(predicate(m) for m in self.sent):
                self.changed.clear()
                await self.changed.wait()


async def dispatched() -> None:
    """The bus dispatches through the loop's callback queue: a callback queued after
    the publishes runs after them."""
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    loop.call_soon(done.set_result, None)
    await done


async def test_events_published_between_the_switch_and_the_replay_come_once():
    from sidecar.api.stream import _Replay, _send_events

    job = "a" * 32
    bus = EventBus(asyncio.get_running_loop())
    at = datetime.now(UTC)
    subscription = bus.subscribe({UNKNOWN})
    bus.publish(Queued(job_id=job, seq=1, ts=at, position=0))
    bus.publish(Started(job_id=job, seq=2, ts=at))
    await dispatched()
    reply = {"type": "subscribed", "job_ids": sorted([UNKNOWN, job])}
    subscription.follow({UNKNOWN, job}, _Replay(reply, {UNKNOWN, job}, [job]))
    # after the switch, before the sender reads the history: queued live and kept
    bus.publish(StageEvent(job_id=job, seq=3, ts=at, stage="s", index=0, count=1))
    bus.publish(Progress(job_id=job, seq=4, ts=at, progress=0.5, stage="s"))
    header = PreviewHeader(job_id=job, seq=5, ts=at, level="draft", width=1, height=1)
    bus.publish(header, b"jpeg")
    await dispatched()
    ws = FakeSocket()
    sender = asyncio.create_task(_send_events(ws, None, subscription, bus))  # type: ignore[arg-type]
    try:
        await ws.wait_for(lambda m: m.get("seq") == 5)
        bus.publish(Done(job_id=job, seq=6, ts=at, cached=False, result_url="/r"))
        await ws.wait_for(lambda m: m["type"] == "done")
        # a second subscribe naming the job again replays nothing
        subscription.follow({job}, _Replay({"type": "subscribed", "job_ids": [job]}, {job}, []))
        await ws.wait_for(lambda m: m.get("job_ids") == [job])
    finally:
        bus.unsubscribe(subscription)
        await sender
    assert [m["type"] for m in ws.sent] == [
        "subscribed",
        "queued",
        "started",
        "stage",
        "progress",
        "preview",
        "done",
        "subscribed",
    ]
    assert [m.get("seq") for m in ws.sent[1:-1]] == [1, 2, 3, 4, 5, 6]
    assert ws.sent[5]["jpeg"] == b"jpeg"
