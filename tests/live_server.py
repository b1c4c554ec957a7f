"""Real servers for the reliability and security tests: the app on 127.0.0.1 in a
thread of its own (for synchronous clients: hypothesis, schemathesis), and a
`retouch-sidecar serve` process (for kill -9, restarts and its memory)."""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import math
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

from helpers import free_port, settings_under, wait_until

from sidecar.api import AccessLogger
from sidecar.cli import build_app
from sidecar.settings import LOOPBACK, Settings


class Response:
    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def json(self):
        return json.loads(self.body)

    @property
    def code(self) -> str | None:
        """The error code of a JSON error body, or None."""
        try:
            return self.json()["error"]["code"]
        except (ValueError, KeyError, TypeError):
            return None


class Http:
    """A tiny synchronous client: one request per connection, nothing hidden."""

    def __init__(self, port: int, token: str | None) -> None:
        self.port = port
        self.token = token

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def request(
        self, method: str, path: str, body: bytes | None = None, headers=None, *, timeout=30
    ) -> Response:
        conn = http.client.HTTPConnection(LOOPBACK, self.port, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers={**self.auth, **(headers or {})})
            answer = conn.getresponse()
            return Response(answer.status, dict(answer.getheaders()), answer.read())
        finally:
            conn.close()

    def json(self, method: str, path: str, payload, headers=None) -> Response:
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        return self.request(
            method, path, body, {"Content-Type": "application/json", **(headers or {})}
        )


class LiveServer:
    """`with LiveServer(settings) as server:` serves the real app on a free loopback
    port from a background thread until the block ends."""

    def __init__(self, settings: Settings, engines=("retouch",), app=None) -> None:
        self.settings = settings
        self.app = app if app is not None else build_app(settings, engines=engines)
        self.token = settings.token_path.read_text().strip()
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.port = 0

    def __enter__(self) -> LiveServer:
        from aiohttp import web

        self._thread.start()

        async def start():
            self._runner = web.AppRunner(self.app, access_log_class=AccessLogger)
            await self._runner.setup()
            site = web.TCPSite(self._runner, LOOPBACK, 0)
            await site.start()
            return self._runner.addresses[0][1]

        self.port = self.call(start())
        return self

    def __exit__(self, *exc) -> None:
        self.call(self._runner.cleanup(), timeout=60)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()

    def call(self, coro, timeout: float = 30):
        """Run a coroutine on the server's loop and return its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def http(self, token: str | None = "") -> Http:
        return Http(self.port, self.token if token == "" else token)


@contextlib.contextmanager
def synthetic_server(root: Path, **settings) -> Iterator[LiveServer]:
    """`with synthetic_server(root) as server:` a LiveServer with the synthetic engine
    only (fast, no models), its folders under `root`, `settings` overriding the rest."""
    with LiveServer(settings_under(root, **settings), engines=("synthetic",)) as live:
        yield live


class SidecarProcess:
    """A real `python -m sidecar serve` with its own folders under `root`; it can be
    killed with SIGKILL and started again on the same port and folders."""

    def __init__(self, root: Path, *serve_args: str, port: int | None = None) -> None:
        self.root = root
        self.port = port or free_port()
        self.serve_args = serve_args
        self.env = {
            **os.environ,
            "RETOUCH_CACHE_DIR": str(root / "cache"),
            "RETOUCH_CONFIG_DIR": str(root / "config"),
            "RETOUCH_DATA_DIR": str(root / "data"),
        }
        self.proc: subprocess.Popen | None = None
        self.log_path = root / "sidecar.log"

    def start(self, timeout: float = 60) -> SidecarProcess:
        command = [sys.executable, "-m", "sidecar", "serve", "--port", str(self.port)]
        self.root.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [*command, *self.serve_args], env=self.env, stdout=log, stderr=log
            )
        wait_until(self._healthy, timeout, what="the sidecar up")
        return self

    def _healthy(self) -> bool:
        """Whether it answers /v1/health: the one sign, from another process, that it is
        up (polled)."""
        assert self.proc is not None and self.proc.poll() is None, (
            "the sidecar exited: " + self.log()[-2000:]
        )
        try:
            return self.http().request("GET", "/v1/health", timeout=2).status == 200
        except OSError:
            return False

    @property
    def token(self) -> str:
        return (self.root / "config" / "token").read_text().strip()

    def http(self) -> Http:
        path = self.root / "config" / "token"
        return Http(self.port, path.read_text().strip() if path.exists() else None)

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def kill(self) -> None:
        """kill -9: no shutdown handler runs, like a crash or a power cut."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()  # SIGKILL on POSIX, TerminateProcess on Windows
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()

    def rss_mb(self) -> float:
        """Resident memory from /proc (Linux); NaN where there is no /proc to ask."""
        assert self.proc is not None
        status = Path(f"/proc/{self.proc.pid}/status")
        if not status.exists():
            return math.nan
        for line in status.read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise AssertionError("no VmRSS")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def __enter__(self) -> SidecarProcess:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
