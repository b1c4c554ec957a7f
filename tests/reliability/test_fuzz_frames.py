"""Event frames and client messages, fuzzed: the preview-frame decoder takes any bytes
without crashing, and whatever a client sends down /v1/ws (any text, any bytes, any
frame at all) gets an answer or a clean close: never a dead server, never a leaked
subscription."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC

import aiohttp
import pytest
import raw_ws
from fuzzing import fuzz, tally
from helpers import wait_until
from hypothesis import given
from hypothesis import strategies as st
from live_server import LiveServer, synthetic_server

from sidecar.api.keys import BUS
from sidecar.api.stream import MAX_CLIENT_MESSAGE
from sidecar.schema import PreviewHeader
from sidecar.schema.frames import FrameError, decode_preview_frame, encode_preview_frame

JOB_ID = st.text("0123456789abcdef", min_size=32, max_size=32)
PROBE = "f00d" * 8
headers = st.builds(
    PreviewHeader,
    job_id=JOB_ID,
    seq=st.integers(0, 2**53),
    ts=st.datetimes(timezones=st.just(UTC)),
    level=st.sampled_from(["draft", "preview", "refine", "final", "step"]),
    step=st.none() | st.integers(0, 10_000),
    total_steps=st.none() | st.integers(1, 10_000),
    width=st.integers(1, 100_000),
    height=st.integers(1, 100_000),
    url=st.none() | st.text(max_size=80),
)


@fuzz(300)
@given(headers, st.binary(max_size=2000))
def test_a_frame_decodes_to_what_was_encoded(header, jpeg):
    assert decode_preview_frame(encode_preview_frame(header, jpeg)) == (header, jpeg)


@fuzz(300)
@given(headers, st.binary(max_size=200), st.data())
def test_a_damaged_frame_is_a_frame_error_and_nothing_else(header, jpeg, data):
    frame = bytearray(encode_preview_frame(header, jpeg))
    how = data.draw(st.sampled_from(["cut", "flip", "length", "random"]))
    if how == "cut":
        frame = frame[: data.draw(st.integers(0, len(frame) - 1))]
    elif how == "flip":
        for _ in range(data.draw(st.integers(1, 8))):
            frame[data.draw(st.integers(0, len(frame) - 1))] ^= data.draw(st.integers(1, 255))
    elif how == "length":
        frame[:4] = data.draw(st.integers(0, 2**32 - 1)).to_bytes(4, "big")
    else:
        frame = bytearray(data.draw(st.binary(max_size=300)))
    try:
        decoded, rest = decode_preview_frame(frame)
    except FrameError:
        return
    assert isinstance(decoded, PreviewHeader) and isinstance(rest, bytes)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with synthetic_server(tmp_path_factory.mktemp("ws")) as live:
        yield live


class Socket:
    """One client socket (aiohttp, on the server's loop) kept across examples."""

    def __init__(self, server: LiveServer) -> None:
        self.server = server

        async def open_():
            self.session = aiohttp.ClientSession()
            return await self.session.ws_connect(f"{server.url}/v1/ws?token={server.token}")

        self.ws = server.call(open_())

    def exchange(self, message: str | bytes) -> list[dict]:
        """Send `message`, then a subscribe to PROBE; return every reply before the
        answer to that subscribe."""

        async def go():
            if isinstance(message, bytes):
                await self.ws.send_bytes(message)
            else:
                await self.ws.send_str(message)
            await self.ws.send_str(json.dumps({"type": "subscribe", "job_ids": [PROBE]}))
            replies = []
            async with asyncio.timeout(10):
                while True:
                    reply = await self.ws.receive()
                    assert reply.type is aiohttp.WSMsgType.TEXT, reply
                    body = json.loads(reply.data)
                    if body.get("type") == "subscribed" and body["job_ids"] == [PROBE]:
                        return replies
                    if "seq" not in body:  # a reply, not a job's event
                        replies.append(body)

        return self.server.call(go())

    def close(self) -> None:
        async def go():
            await self.ws.close()
            await self.session.close()

        self.server.call(go())


@pytest.fixture(scope="module")
def live_socket(server):
    sock = Socket(server)
    yield sock
    sock.close()


def json_values():
    scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40)
    return st.recursive(
        scalars,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner),
        max_leaves=12,
    )


client_messages = st.one_of(
    st.text(max_size=300),
    st.binary(max_size=300),
    json_values().map(json.dumps),
    st.fixed_dictionaries(
        {"type": st.sampled_from(["subscribe", "cancel", "ping", ""])},
        optional={"job_ids": st.lists(JOB_ID | st.text(max_size=40)), "job_id": json_values()},
    ).map(json.dumps),
)


@fuzz(150)
@given(client_messages)
def test_any_client_message_gets_one_clear_answer_and_the_socket_lives_on(live_socket, message):
    tally("requests")
    replies = live_socket.exchange(message)
    assert len(replies) <= 1, replies
    if isinstance(message, bytes):
        assert replies[0]["error"]["code"] == "invalid_request"
    for reply in replies:
        assert reply["type"] in ("subscribed", "cancel_accepted", "error"), reply
        if reply["type"] == "error":
            assert reply["error"]["code"] in ("invalid_request", "job_not_found", "conflict")


frames = st.lists(
    st.builds(
        raw_ws.frame,
        opcode=st.integers(0, 15),
        payload=st.binary(max_size=300),
        fin=st.booleans(),
        rsv=st.integers(0, 7),
        masked=st.booleans(),
    ),
    min_size=1,
    max_size=4,
).map(b"".join)


@fuzz(120)
@given(frames | st.binary(min_size=1, max_size=400))
def test_any_bytes_on_the_socket_never_hurt_the_server(server, stream):
    tally("requests")
    sock = raw_ws.connect(server.port, server.token)
    try:
        sock.sendall(stream)
        raw_ws.drain(sock, 0.05)
    except (ConnectionError, TimeoutError):
        pass
    finally:
        sock.close()
    assert server.http().request("GET", "/v1/health").status == 200


def test_closed_sockets_leave_no_subscription_behind(server):
    bus = server.app[BUS]
    base = bus.subscriber_count
    sockets = [raw_ws.connect(server.port, server.token) for _ in range(10)]
    for sock in sockets[:5]:
        sock.sendall(raw_ws.frame(1, b'{"type": "subscribe", "job_ids": []}'))
    for sock in sockets[5:]:
        sock.sendall(raw_ws.frame(3, b"x", rsv=7))  # protocol error: the server closes
    for sock in sockets:
        sock.close()
    # the server's handlers unsubscribe as they end, on its own thread: nothing to
    # wait on there but the count (polled)
    wait_until(lambda: bus.subscriber_count <= base, 10, 0.02, "the subscriptions gone")


def test_a_message_over_the_limit_closes_that_socket_only(server, live_socket):
    sock = raw_ws.connect(server.port, server.token)
    sock.sendall(raw_ws.frame(1, b"x" * (MAX_CLIENT_MESSAGE + 1)))
    answer = raw_ws.drain(sock, 2)
    sock.close()
    assert answer[:1] == b"\x88"  # a close frame
    assert int.from_bytes(answer[2:4], "big") == 1009  # message too big
    assert live_socket.exchange('{"type": "subscribe", "job_ids": []}') == [
        {"type": "subscribed", "job_ids": []}
    ]  # the other socket goes on
