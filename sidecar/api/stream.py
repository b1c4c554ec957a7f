"""Live events: WebSocket (JSON text + binary preview frames), Server-Sent Events,
and preview JPEGs by URL.

Binary frame: uint32 big-endian header length | header JSON | JPEG bytes.

A WebSocket client that subscribes to jobs gets, after the `subscribed` reply, what
the bus keeps of each newly named job (state events, latest progress, latest preview
frame) and then its live events: one sender task per socket writes both, in seq order
per job, and skips whatever this socket was already sent, so nothing comes twice and
nothing published between the history and the live stream is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import OrderedDict
from dataclasses import dataclass

from aiohttp import WSCloseCode, WSMsgType, web
from aiohttp_sse import sse_response
from pydantic import TypeAdapter, ValidationError

from .. import errors
from ..imaging.decode import decode_preview
from ..jobs import EventBus, Published, Subscription
from ..jobs.events import TERMINAL
from ..schema import TERMINAL_STATES, CancelMessage, ClientMessage, Subscribe
from ..schema.frames import encode_preview_frame
from .keys import BUS, SCHEDULER, SOCKETS

log = logging.getLogger(__name__)
routes = web.RouteTableDef()
_client_message = TypeAdapter(ClientMessage)
MAX_CLIENT_MESSAGE = 256 * 1024
CLOSE_TIMEOUT = 2.0  # a client that does not take its close frame is cut off
FINISHED_JOB_WAIT = 2.0  # for a finished job's terminal event still on its way
SEQS_KEPT = 10_000  # jobs whose last sent seq one socket remembers (the latest ones)


async def close_socket(
    ws: web.WebSocketResponse, transport: asyncio.BaseTransport | None, code: int, message: bytes
) -> None:
    """Close politely, but never wait on a client that has stopped reading: after
    CLOSE_TIMEOUT the connection is aborted, dropping what its buffers still hold
    (a plain transport close would wait for the client to read them)."""
    try:
        await asyncio.wait_for(ws.close(code=code, message=message), CLOSE_TIMEOUT)
    except (TimeoutError, ConnectionError):
        if isinstance(transport, asyncio.WriteTransport):
            transport.abort()


def _decimal(text: str) -> bool:
    return text.isascii() and text.isdigit()


def preview_frame(item: Published) -> bytes:
    return encode_preview_frame(item.event, item.jpeg or b"")  # type: ignore[arg-type]


@routes.get("/v1/jobs/{job_id}/previews/{seq}")
async def preview(request: web.Request) -> web.Response:
    job = request.app[SCHEDULER].get(request.match_info["job_id"])
    seq = request.match_info["seq"]
    # isdigit() alone lets "²" through, which int() refuses
    jpeg = request.app[BUS].preview(job.job_id, int(seq)) if _decimal(seq) else None
    if jpeg is None:
        raise errors.NotFound(
            "that preview is gone; a newer one replaced it", details={"seq": seq[:20]}
        )
    cache = {"Cache-Control": "private, max-age=3600"}
    fmt = request.query.get("format", "jpeg")
    if fmt == "jpeg":
        return web.Response(body=jpeg, content_type="image/jpeg", headers=cache)
    if fmt != "raw":
        raise errors.InvalidRequest("format must be jpeg or raw", details={"format": fmt[:20]})
    # Raw 8-bit RGB, for hosts that cannot decode a JPEG themselves (Photoshop's imaging
    # API takes pixels): the panel's draft layer.
    rgb = decode_preview(jpeg)
    height, width = rgb.shape[:2]
    headers = {
        **cache,
        "X-Image-Width": str(width),
        "X-Image-Height": str(height),
        "X-Image-Channels": "3",
        "X-Image-Depth": "8",
    }
    return web.Response(
        body=rgb.tobytes(), headers=headers, content_type="application/octet-stream"
    )


@routes.get("/v1/jobs/{job_id}/events")
async def job_events(request: web.Request) -> web.StreamResponse:
    """SSE for one job; ends with its terminal event; `Last-Event-ID` resumes."""
    job = request.app[SCHEDULER].get(request.match_info["job_id"])
    bus = request.app[BUS]
    last_id = request.headers.get("Last-Event-ID", "")
    last = int(last_id) if _decimal(last_id) else -1
    subscription = bus.subscribe({job.job_id})  # before the history, so nothing falls between
    try:
        async with sse_response(request) as stream:
            for event in bus.history(job.job_id, last):
                await stream.send(event.model_dump_json(), id=str(event.seq))
                last = event.seq
                if isinstance(event, TERMINAL):
                    return stream
            wait = None
            if job.state in TERMINAL_STATES:
                # Its terminal event is behind `last` (the client saw it: resuming after
                # it used to wait forever) or on its way to the subscription.
                if job.last_seq <= last:
                    return stream
                wait = FINISHED_JOB_WAIT
            while (item := await _next(subscription, wait)) is not None:
                event = item.event
                if event.seq <= last:  # type: ignore[attr-defined]
                    continue
                await stream.send(event.model_dump_json(), id=str(event.seq))  # type: ignore[attr-defined]
                last = event.seq  # type: ignore[attr-defined]
                if isinstance(event, TERMINAL):
                    break
        return stream
    finally:
        bus.unsubscribe(subscription)


async def _next(subscription: Subscription, wait: float | None) -> Published | None:
    try:
        async with asyncio.timeout(wait):
            return await subscription.get()
    except TimeoutError:
        return None


@routes.get("/v1/ws")
async def websocket(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(heartbeat=20.0, max_msg_size=MAX_CLIENT_MESSAGE)
    await ws.prepare(request)
    bus = request.app[BUS]
    subscription = bus.subscribe()
    request.app[SOCKETS][ws] = request.transport
    sender = asyncio.create_task(_send_events(ws, request.transport, subscription, bus))
    try:
        async for message in ws:
            if message.type is WSMsgType.TEXT:
                reply = _handle_client_message(request, subscription, message.data)
            elif message.type is WSMsgType.BINARY:
                reply = _error(errors.InvalidRequest("send JSON text"))
            else:
                continue
            if reply is not None:
                with contextlib.suppress(ConnectionError):
                    await ws.send_str(json.dumps(reply))
    finally:
        bus.unsubscribe(subscription)
        sender.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sender
        request.app[SOCKETS].pop(ws, None)
    return ws


@dataclass
class _Replay:
    """A subscribe as the socket's sender meets it among the events: send `reply`,
    forget what was sent of jobs outside `follows` (None: every job), then send what
    the bus keeps of `job_ids` that this socket has not been sent yet."""

    reply: dict
    follows: set[str] | None
    job_ids: list[str]


async def _send_events(
    ws: web.WebSocketResponse,
    transport: asyncio.BaseTransport | None,
    subscription: Subscription,
    bus: EventBus,
) -> None:
    """Drain this client's subscription into its socket. Only this task waits on a slow
    client; the bus never does."""
    sent: OrderedDict[str, int] = OrderedDict()  # job id -> last seq sent on this socket
    try:
        while (item := await subscription.get()) is not None:
            if isinstance(item.event, _Replay):
                await _replay(ws, item.event, subscription, bus, sent)
            elif item.event.seq > sent.get(item.job_id, -1):  # type: ignore[attr-defined]
                await _send(ws, item, sent)
    except (ConnectionError, RuntimeError):
        return  # the client went away mid-send
    if subscription.overflowed:
        await close_socket(ws, transport, WSCloseCode.TRY_AGAIN_LATER, b"too slow: reconnect")


async def _replay(
    ws: web.WebSocketResponse,
    replay: _Replay,
    subscription: Subscription,
    bus: EventBus,
    sent: OrderedDict[str, int],
) -> None:
    await ws.send_str(json.dumps(replay.reply))
    if replay.follows is not None:
        # A job left out starts over when named again: what this socket was sent of
        # it (while it followed every job, say) the client may not have kept.
        for job_id in [job_id for job_id in sent if job_id not in replay.follows]:
            del sent[job_id]
    for job_id in replay.job_ids:
        if subscription.wants(job_id):  # not left out again by a later subscribe
            for past in bus.replay(job_id, sent.get(job_id, -1)):
                await _send(ws, past, sent)


async def _send(ws: web.WebSocketResponse, item: Published, sent: OrderedDict[str, int]) -> None:
    if item.jpeg is not None:
        await ws.send_bytes(preview_frame(item))
    else:
        await ws.send_str(item.event.model_dump_json())  # type: ignore[attr-defined]
    sent[item.job_id] = item.event.seq  # type: ignore[attr-defined]
    sent.move_to_end(item.job_id)
    if len(sent) > SEQS_KEPT:
        sent.popitem(last=False)


def _handle_client_message(request: web.Request, subscription: Subscription, text: str):
    try:
        message = _client_message.validate_json(text)
    except ValidationError as exc:
        error = errors.InvalidRequest(
            "expected {type: subscribe, job_ids} or {type: cancel, job_id}",
            details={
                "errors": exc.errors(include_url=False, include_input=False, include_context=False)
            },
        )
        return _error(error)
    if isinstance(message, Subscribe):
        # The reply and the history go out through the sender, behind what it still
        # holds for these jobs; jobs that stay subscribed have been followed live.
        before = subscription.job_ids
        named = list(dict.fromkeys(message.job_ids))
        fresh = [job_id for job_id in named if before is None or job_id not in before]
        reply = {"type": "subscribed", "job_ids": sorted(named)}
        follows = set(named) or None
        subscription.follow(follows, _Replay(reply, follows, fresh))
        return None
    if isinstance(message, CancelMessage):
        try:
            job = request.app[SCHEDULER].cancel(message.job_id)
        except errors.ApiError as exc:
            return _error(exc, job_id=message.job_id)
        return {"type": "cancel_accepted", "job_id": job.job_id, "state": job.state.value}
    return None


def _error(error: errors.ApiError, **extra) -> dict:
    return {
        "type": "error",
        **extra,
        "error": {"code": error.code, "message": error.message, "details": error.details},
    }
