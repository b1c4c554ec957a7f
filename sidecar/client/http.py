"""`SidecarClient`: the sidecar's HTTP routes and its WebSocket on one aiohttp session.
Requests and answers are the contract's pydantic models (sidecar.schema); every error
answer, broken connection or answer outside the contract is a SidecarError."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp
from pydantic import BaseModel, ValidationError

from ..schema import (
    Health,
    ImageFileRequest,
    ImageInfo,
    JobCreated,
    JobList,
    JobPatch,
    JobRequest,
    JobStatus,
    PrecomputeRequest,
    PrecomputeStarted,
    Priority,
    RawPixelHeaders,
    ResultQuery,
    SkinTone,
)
from ..settings import LOOPBACK
from .errors import BAD_RESPONSE, CONNECTION_FAILED, M, SidecarError, parse_request
from .messages import NO_JOB
from .websocket import WebSocketStream

CONNECT_TIMEOUT_S = 10.0
HEARTBEAT_S = 30.0
RAW_MEDIA_TYPE = "application/octet-stream"
# RawPixelHeaders' fields as the headers of a raw-pixel upload (and of a raw result)
RAW_HEADER_NAMES = {
    "width": "X-Image-Width",
    "height": "X-Image-Height",
    "channels": "X-Image-Channels",
    "depth": "X-Image-Depth",
}


def raw_pixel_headers(pixels: Any) -> dict[str, str]:
    """The headers of a raw-pixel upload of `pixels` (an array H×W×C, uint8 or uint16),
    as they are: nothing is checked, so a test can send what the sidecar refuses."""
    height, width, channels = pixels.shape
    values = {"width": width, "height": height, "channels": channels}
    values["depth"] = pixels.dtype.itemsize * 8
    headers = {RAW_HEADER_NAMES[name]: str(value) for name, value in values.items()}
    return {"Content-Type": RAW_MEDIA_TYPE, **headers}


class SidecarClient:
    """A client of the sidecar at 127.0.0.1:`port`, on the aiohttp `session` it is
    given (`SidecarClient.open` makes one and closes it)."""

    def __init__(
        self, session: aiohttp.ClientSession, port: int, token: str, *, host: str = LOOPBACK
    ) -> None:
        self.session = session
        self.port = port
        self.base = f"http://{host}:{port}"
        # a sidecar on this machine reads inputs and writes outputs itself
        self.local = host == LOOPBACK
        self.auth = {"Authorization": f"Bearer {token}"}

    @classmethod
    @contextlib.asynccontextmanager
    async def open(
        cls, port: int, token: str, *, connect_timeout_s: float = CONNECT_TIMEOUT_S
    ) -> AsyncIterator[SidecarClient]:
        """A client on a session of its own (no overall time limit: a large result may
        take its time), closed on the way out."""
        timeout = aiohttp.ClientTimeout(sock_connect=connect_timeout_s)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            yield cls(session, port, token)

    # -- the exchange ------------------------------------------------------------------

    async def _call(
        self,
        method: str,
        path: str,
        *,
        auth: bool = True,
        into: bytearray | None = None,
        **kwargs,
    ) -> bytes | bytearray:
        """The answer's body; an error answer or a broken connection raises. With
        `into`, a body of known length is read straight into that buffer (see
        `result`)."""
        headers = {**(self.auth if auth else {}), **kwargs.pop("headers", {})}
        try:
            async with self.session.request(
                method, self.base + path, headers=headers, **kwargs
            ) as response:
                if response.status >= 400:
                    body = await response.read()
                    raise SidecarError.from_answer(response.status, response.reason or "", body)
                if into is None:
                    return await response.read()
                return await read_into(response, into)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise SidecarError(CONNECTION_FAILED, str(exc) or type(exc).__name__) from exc

    async def _model(self, model: type[M], method: str, path: str, **kwargs) -> M:
        body = await self._call(method, path, **kwargs)
        try:
            return model.model_validate_json(body)
        except ValidationError:
            what = f"{method} {path}: not a {model.__name__}"
            raise SidecarError(BAD_RESPONSE, what) from None

    # -- the routes --------------------------------------------------------------------

    async def health(self, timeout_s: float | None = None) -> Health:
        """GET /v1/health (public: no token is sent)."""
        timeout = aiohttp.ClientTimeout(total=timeout_s) if timeout_s is not None else None
        extra = {"timeout": timeout} if timeout is not None else {}
        return await self._model(Health, "GET", "/v1/health", auth=False, **extra)

    async def check_token(self) -> None:
        try:
            await self._call("GET", "/v1/jobs/" + NO_JOB)  # job_not_found if it takes it
        except SidecarError as exc:
            if exc.code == "unauthorized":
                raise

    async def upload(self, data: bytes | memoryview, content_type: str) -> ImageInfo:
        headers = {"Content-Type": content_type}
        return await self._model(ImageInfo, "POST", "/v1/images", data=data, headers=headers)

    async def register_file(self, path: str) -> ImageInfo:
        body = parse_request(ImageFileRequest, {"path": path}, "request body")
        return await self._model(ImageInfo, "POST", "/v1/images/file", json=_json(body))

    async def upload_pixels(self, pixels: Any) -> ImageInfo:
        headers = raw_pixel_headers(pixels)
        fields = {name: headers[header] for name, header in RAW_HEADER_NAMES.items()}
        parse_request(RawPixelHeaders, fields, "X-Image-* headers")
        body = pixels.tobytes()
        return await self._model(ImageInfo, "POST", "/v1/images", data=body, headers=headers)

    async def skin_tone(self, image_id: str) -> SkinTone:
        return await self._model(SkinTone, "GET", f"/v1/images/{image_id}/skin-tone")

    async def submit(self, request: JobRequest | Mapping[str, Any]) -> JobCreated:
        body = parse_request(JobRequest, request, "request body")
        return await self._model(JobCreated, "POST", "/v1/jobs", json=_json(body))

    async def status(self, job_id: str) -> JobStatus:
        return await self._model(JobStatus, "GET", f"/v1/jobs/{job_id}")

    async def list_jobs(self) -> JobList:
        return await self._model(JobList, "GET", "/v1/jobs")

    async def result(
        self,
        job_id: str,
        query: ResultQuery | Mapping[str, Any] | None = None,
        *,
        into: bytearray | None = None,
    ) -> bytes | bytearray:
        """The result's bytes (`query`: format png, tiff or raw, blend, downscale).
        With `into`, they are read straight into that buffer, resized to the answer's
        length, and it is returned: a client that fetches one large result after another
        keeps one warm buffer instead of a new one and a copy each time."""
        query = parse_request(ResultQuery, query or {}, "query")
        params = {name: str(value) for name, value in _json(query).items()}
        return await self._call("GET", f"/v1/jobs/{job_id}/result", params=params, into=into)

    async def cancel(self, job_id: str) -> JobStatus:
        return await self._model(JobStatus, "DELETE", f"/v1/jobs/{job_id}")

    async def reprioritise(self, job_id: str, priority: Priority | str) -> JobStatus:
        body = parse_request(JobPatch, {"priority": priority}, "request body")
        return await self._model(JobStatus, "PATCH", f"/v1/jobs/{job_id}", json=_json(body))

    async def precompute(self, request: PrecomputeRequest | Mapping[str, Any]) -> PrecomputeStarted:
        body = parse_request(PrecomputeRequest, request, "request body")
        return await self._model(PrecomputeStarted, "POST", "/v1/precompute", json=_json(body))

    @contextlib.asynccontextmanager
    async def events(self) -> AsyncIterator[WebSocketStream]:
        """The WebSocket (`/v1/ws`); until a subscribe it carries every job's events.
        Messages of any size are taken: the sidecar on loopback is trusted."""
        url = self.base + "/v1/ws"
        try:
            ws = await self.session.ws_connect(
                url, headers=self.auth, heartbeat=HEARTBEAT_S, max_msg_size=0
            )
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise SidecarError(CONNECTION_FAILED, str(exc) or type(exc).__name__) from exc
        async with ws:
            yield WebSocketStream(ws)


async def read_into(response: aiohttp.ClientResponse, into: bytearray) -> bytearray:
    """The body of `response` in `into`, resized to its length: straight in when the
    answer says its length (a file sent as it is), else read whole and copied."""
    size = response.content_length
    if size is None:
        into[:] = await response.read()
        return into
    if len(into) != size:
        del into[size:]
        into.extend(bytes(size - len(into)))
    got = 0
    with memoryview(into) as view:
        async for chunk in response.content.iter_any():
            end = got + len(chunk)
            if end > size:
                raise SidecarError(BAD_RESPONSE, f"the answer is longer than its {size} bytes")
            view[got:end] = chunk
            got = end
    if got != size:
        raise SidecarError(CONNECTION_FAILED, f"the answer ended after {got} of {size} bytes")
    return into


def _json(model: BaseModel) -> dict[str, Any]:
    """A request as it is sent: the fields it was given (the sidecar fills in the same
    defaults), in JSON form."""
    return model.model_dump(mode="json", exclude_unset=True)
