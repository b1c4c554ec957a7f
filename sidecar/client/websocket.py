"""The event stream over aiohttp's WebSocket: client messages out as the contract's
models, every message in parsed (sidecar.client.messages)."""

from __future__ import annotations

import time
from collections.abc import Sequence

import aiohttp

from ..schema import CancelMessage, Subscribe
from .errors import CONNECTION_FAILED, SidecarError
from .messages import SocketMessage, parse_frame, parse_text

_ENDS = (
    aiohttp.WSMsgType.CLOSE,
    aiohttp.WSMsgType.CLOSING,
    aiohttp.WSMsgType.CLOSED,
    aiohttp.WSMsgType.ERROR,
)


class WebSocketStream:
    """An open `/v1/ws` (an `EventStream`); `SidecarClient.events()` opens and closes it."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self._ws = ws

    async def subscribe(self, job_ids: Sequence[str]) -> None:
        # Ids the sidecar handed out, maybe thousands, sent once per job added: not
        # checked one by one again (the sidecar checks them).
        message = Subscribe.model_construct(type="subscribe", job_ids=list(job_ids))
        await self._send(message.model_dump_json())

    async def cancel(self, job_id: str) -> None:
        await self._send(CancelMessage(type="cancel", job_id=job_id).model_dump_json())

    async def _send(self, text: str) -> None:
        try:
            await self._ws.send_str(text)
        except (ConnectionError, RuntimeError, aiohttp.ClientError) as exc:
            raise SidecarError(CONNECTION_FAILED, str(exc) or type(exc).__name__) from exc

    def __aiter__(self) -> WebSocketStream:
        return self

    async def __anext__(self) -> SocketMessage:
        while True:
            try:
                message = await self._ws.receive()
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise SidecarError(CONNECTION_FAILED, str(exc) or type(exc).__name__) from exc
            at = time.perf_counter()
            if message.type is aiohttp.WSMsgType.TEXT:
                return parse_text(message.data, at)
            if message.type is aiohttp.WSMsgType.BINARY:
                return parse_frame(message.data, at)
            if message.type in _ENDS:
                raise StopAsyncIteration
            # pings and pongs: aiohttp answers them itself
