"""The client side of `apply` and `batch`: reaching a sidecar (or starting one in this
process), its HTTP calls, following jobs to their end over the WebSocket, and showing
their progress."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import aiohttp
from aiohttp import web
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn

from .api.protocol import JsonErrorRunner
from .settings import LOOPBACK

HEALTH_TIMEOUT_S = 2.0
POLL_S = 0.5  # how often jobs are polled while the WebSocket is down
GIVE_UP_S = 15.0  # a sidecar unreachable this long fails the jobs still waited on
TERMINAL = ("done", "failed", "cancelled")
# Jobs named in one subscribe message: 36 bytes each, well under the sidecar's 256 KiB
# message limit. Past it the tracker follows every job and checks each new one once.
SUBSCRIBE_MAX = 5_000
# Named while no job is watched: an empty list would follow every job. Job ids are 128
# random bits; this one is never handed out in practice (`check_token` asks for it too).
NO_JOB = "0" * 32


class SidecarError(Exception):
    """An error answer from the sidecar (its stable code) or a failed connection."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


@dataclass(frozen=True)
class JobEnd:
    """How a job ended, from its terminal event or its status."""

    state: str  # done | failed | cancelled
    cached: bool = False
    code: str | None = None
    message: str = ""

    @classmethod
    def from_json(cls, data: dict) -> JobEnd:
        state = data.get("state") or data["type"]
        error = data.get("error") or {}
        if state == "cancelled":
            return cls(state, code="cancelled", message=data.get("reason") or "")
        return cls(state, bool(data.get("cached")), error.get("code"), error.get("message", ""))


class SidecarClient:
    """The routes `apply` and `batch` use, on one aiohttp session."""

    def __init__(self, session: aiohttp.ClientSession, port: int, token: str) -> None:
        self.session = session
        self.base = f"http://{LOOPBACK}:{port}"
        self.auth = {"Authorization": f"Bearer {token}"}

    async def _call(self, method: str, path: str, **kwargs) -> bytes:
        """The response body; an error answer or a broken connection raises SidecarError."""
        headers = {**self.auth, **kwargs.pop("headers", {})}
        try:
            async with self.session.request(
                method, self.base + path, headers=headers, **kwargs
            ) as response:
                if response.status >= 400:
                    raise await _error(response)
                return await response.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise SidecarError("connection_failed", str(exc) or type(exc).__name__) from exc

    async def _json(self, method: str, path: str, **kwargs) -> dict:
        try:
            return json.loads(await self._call(method, path, **kwargs))
        except ValueError as exc:
            raise SidecarError("bad_response", f"{method} {path}: not JSON") from exc

    async def check_token(self) -> None:
        """Raises `unauthorized` when the sidecar does not take this token."""
        try:
            await self._call("GET", "/v1/jobs/" + NO_JOB)  # job_not_found if it does
        except SidecarError as exc:
            if exc.code == "unauthorized":
                raise

    async def upload(self, data: bytes, content_type: str) -> str:
        headers = {"Content-Type": content_type}
        return (await self._json("POST", "/v1/images", data=data, headers=headers))["image_id"]

    async def skin_tone(self, image_id: str) -> tuple[float, float] | None:
        tone = await self._json("GET", f"/v1/images/{image_id}/skin-tone")
        return None if tone["a"] is None else (tone["a"], tone["b"])

    async def submit(self, body: dict) -> dict:
        return await self._json("POST", "/v1/jobs", json=body)

    async def status(self, job_id: str) -> dict:
        return await self._json("GET", f"/v1/jobs/{job_id}")

    async def result(self, job_id: str, fmt: str) -> bytes:
        return await self._call("GET", f"/v1/jobs/{job_id}/result", params={"format": fmt})

    async def cancel(self, job_id: str) -> None:
        with contextlib.suppress(SidecarError):  # already ended, or forgotten
            await self._call("DELETE", f"/v1/jobs/{job_id}")

    @contextlib.asynccontextmanager
    async def socket(self) -> AsyncIterator[aiohttp.ClientWebSocketResponse]:
        """The WebSocket; until a subscribe it carries every job's events."""
        url = self.base + "/v1/ws"
        async with self.session.ws_connect(url, headers=self.auth, heartbeat=30) as ws:
            yield ws


async def _error(response: aiohttp.ClientResponse) -> SidecarError:
    try:
        error = (await response.json(content_type=None))["error"]
        message = error.get("message", "")
        fields = (error.get("details") or {}).get("errors") or []
        for field in fields[:3]:  # pydantic's field errors: what to fix in the request
            where = ".".join(str(part) for part in field.get("loc", ()))
            message += f"; {where}: {field.get('msg', '')}"
        return SidecarError(error["code"], message)
    except (ValueError, KeyError, TypeError, AttributeError, aiohttp.ClientError):
        return SidecarError(f"http_{response.status}", response.reason or "")


async def _answers(session: aiohttp.ClientSession, port: int) -> bool:
    url = f"http://{LOOPBACK}:{port}/v1/health"
    try:
        timeout = aiohttp.ClientTimeout(total=HEALTH_TIMEOUT_S)
        async with session.get(url, timeout=timeout) as response:
            body = await response.json(content_type=None)
            return response.status == 200 and body.get("status") == "ok"
    except (aiohttp.ClientError, TimeoutError, ValueError, AttributeError):
        return False


@contextlib.asynccontextmanager
async def connect(
    port: int, token: str, start_app: Callable[[], web.Application]
) -> AsyncIterator[tuple[SidecarClient, bool]]:
    """A client of the sidecar on 127.0.0.1:`port` if one answers, else of one started
    here on an ephemeral port and stopped on the way out (models load once for the
    whole command). Yields the client and whether the sidecar is in-process."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(sock_connect=10)) as session:
        if await _answers(session, port):
            client = SidecarClient(session, port, token)
            await client.check_token()
            yield client, False
            return
        runner = JsonErrorRunner(start_app(), access_log=None, shutdown_timeout=10)
        await runner.setup()
        try:
            site = web.TCPSite(runner, LOOPBACK, 0)
            await site.start()
            bound = runner.addresses[0][1]
            yield SidecarClient(session, bound, token), True
        finally:
            await runner.cleanup()


class JobTracker:
    """Follows jobs to their end: events over the WebSocket, polling while it is down.
    The socket follows the watched jobs only, named in a subscribe each time one is
    added; the sidecar sends a newly named job's events so far, so an end that came
    before the submit's answer still arrives. (A job's events that reached the socket
    before it was named are dropped here: the first subscribe on a socket leaves it
    out, so the sidecar replays them in full when it is named.) Ended jobs come out of
    `ended` as (key, job_id, JobEnd), where key is what the caller gave `watch`;
    callers may put their own items there too."""

    def __init__(self, client: SidecarClient, on_event: Callable[[object, dict], None]) -> None:
        self.client = client
        self.on_event = on_event
        self.ended: asyncio.Queue = asyncio.Queue()
        self.watched: dict[str, object] = {}
        self.connected = asyncio.Event()
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._subscribing = asyncio.Lock()  # one subscribe message at a time, latest last

    async def watch(self, job_id: str, key: object) -> None:
        self.watched[job_id] = key
        await self._subscribe()
        if len(self.watched) > SUBSCRIBE_MAX:  # following every job: it may have ended
            with contextlib.suppress(SidecarError):
                await self._poll([job_id])

    async def _subscribe(self) -> None:
        """Name every job still watched (or, past SUBSCRIBE_MAX, every job) to the
        socket, if it is open; the sidecar sends each newly named job's events so far."""
        async with self._subscribing:
            if self._ws is None:
                return
            job_ids = list(self.watched) or [NO_JOB]
            if len(job_ids) > SUBSCRIBE_MAX:
                job_ids = []
            with contextlib.suppress(ConnectionError, aiohttp.ClientError):
                await self._ws.send_json({"type": "subscribe", "job_ids": job_ids})

    async def run(self) -> None:
        unreachable_since: float | None = None
        while True:
            try:
                async with self.client.socket() as ws:
                    self._ws = ws
                    await self._subscribe()
                    self.connected.set()
                    # for jobs the sidecar no longer keeps events of (it restarted)
                    await self._poll()
                    unreachable_since = None
                    async for message in ws:
                        if message.type is aiohttp.WSMsgType.TEXT:
                            event = json.loads(message.data)
                            if "job_id" in event:
                                self._event(event)
            except (aiohttp.ClientError, TimeoutError, SidecarError, ValueError):
                pass
            finally:
                self._ws = None
            self.connected.set()  # polling stands in until the socket is back
            try:
                await self._poll()
                unreachable_since = None
            except SidecarError:
                unreachable_since = unreachable_since or time.monotonic()
                if time.monotonic() - unreachable_since > GIVE_UP_S:
                    lost = JobEnd("failed", code="sidecar_unreachable", message="connection lost")
                    for job_id in list(self.watched):
                        self._end(job_id, lost)
            await asyncio.sleep(POLL_S)

    def _event(self, event: dict) -> None:
        job_id = event["job_id"]
        if job_id not in self.watched:  # another client's job, or one already ended
            return
        if event["type"] in TERMINAL:
            self._end(job_id, JobEnd.from_json(event))
        else:
            self.on_event(self.watched[job_id], event)

    def _end(self, job_id: str, end: JobEnd) -> None:
        # A job leaves `watched` at its first end: a second done (replayed after a restart
        # or a reconnect, or seen by a poll too) finds nothing, so its output is fetched,
        # written and counted once.
        if job_id in self.watched:
            self.ended.put_nowait((self.watched.pop(job_id), job_id, end))

    async def _poll(self, job_ids: list[str] | None = None) -> None:
        for job_id in list(self.watched) if job_ids is None else job_ids:
            if job_id not in self.watched:  # ended meanwhile (an event, an earlier await)
                continue
            try:
                status = await self.client.status(job_id)
            except SidecarError as exc:
                if exc.code != "job_not_found":
                    raise
                self._end(job_id, JobEnd("failed", code="job_not_found", message=exc.message))
                continue
            if status["state"] in TERMINAL:
                self._end(job_id, JobEnd.from_json(status))

    async def cancel_all(self, settle_s: float = 3.0) -> None:
        """Cancel every job still watched; wait a little for running ones to stop, so a
        sidecar stopped right after keeps nothing queued for its next start."""
        for job_id in list(self.watched):
            await self.client.cancel(job_id)
        deadline = time.monotonic() + settle_s
        while self.watched and time.monotonic() < deadline:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.ended.get(), deadline - time.monotonic())


class Display:
    """An overall bar (images done of all, time left) and a line for the image being
    worked on: its stage and progress. Where the console is not a terminal (CI, a
    pipe) the bars are off and only plain lines are printed."""

    def __init__(self, total: int, console: Console) -> None:
        self.console = console
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TaskProgressColumn(),
            TextColumn("{task.fields[detail]}"),
            TimeRemainingColumn(),
            console=console,
            disable=not console.is_terminal,
        )
        self.total = total
        self.count = 0
        self.overall = self.progress.add_task("images", total=total, detail=f"0/{total}")
        self.current = self.progress.add_task("", total=1.0, detail="waiting")

    def __enter__(self) -> Display:
        self.progress.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.progress.stop()

    def job_event(self, name: str, event: dict) -> None:
        kind = event["type"]
        if kind == "started":
            self.progress.update(self.current, description=name, completed=0, detail="started")
        elif kind == "stage":
            detail = f"{event['stage']} ({event['index'] + 1}/{event['count']})"
            self.progress.update(self.current, description=name, detail=detail)
        elif kind == "progress":
            eta = event.get("eta_s")
            detail = event["stage"] + (f", {eta:.0f} s left" if eta is not None else "")
            self.progress.update(
                self.current, description=name, completed=event["progress"], detail=detail
            )
        elif kind == "requeued":
            self.progress.update(self.current, detail=f"requeued: {event.get('reason', '')}")

    def finished(self, outcome) -> None:
        self.count += 1
        self.progress.update(self.overall, advance=1, detail=f"{self.count}/{self.total}")
        line = f"{outcome.status:<8} {outcome.name}"
        if outcome.status == "failed":
            line += f": {outcome.code}" + (f" ({outcome.message})" if outcome.message else "")
        self.note(line)

    def note(self, text: str) -> None:
        self.console.print(text, markup=False, highlight=False, soft_wrap=True)
