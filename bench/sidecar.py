"""The two servers the benchmarks drive, each in its own process with its own folders:
a real `retouch-sidecar serve` (the product) and `bench.naive.server` (the baseline).
Each one's output goes to `server.log` in its folder; whatever fails shows its end."""

from __future__ import annotations

import asyncio
import http.client
import math
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from .memory import PeakRss, status_kb

REPO = Path(__file__).resolve().parent.parent
LOG_LINES = 40  # how much of a server's log a failure shows
_LOG_READ = 64 * 1024  # the end of the log read for it


class ServerDied(RuntimeError):
    """A server the harness started exited under it (the message ends with its log)."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """A server process on a free loopback port; `with` starts it and waits for it."""

    health = "/"
    label = "the server"

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_port()
        self.env = {**os.environ, "PYTHONPATH": str(REPO)}
        self.proc: subprocess.Popen | None = None
        self.peak: PeakRss | None = None

    def command(self) -> list[str]:
        raise NotImplementedError

    def start(self) -> None:
        """Start the process without waiting (several may start side by side). Its
        output goes to `server.log` in its folder, shown if it fails to start."""
        self.root.mkdir(parents=True, exist_ok=True)
        with (self.root / "server.log").open("ab") as log:
            self.proc = subprocess.Popen(
                self.command(), env=self.env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT
            )
        self.peak = PeakRss(self.proc.pid)

    @property
    def log_path(self) -> Path:
        return self.root / "server.log"

    def log_tail(self, lines: int = LOG_LINES) -> str:
        """The last `lines` lines of the process's output (stdout and stderr)."""
        try:
            with self.log_path.open("rb") as log:
                log.seek(max(log.seek(0, os.SEEK_END) - _LOG_READ, 0))
                text = log.read().decode(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def describe(self) -> str:
        """Whether the process runs, and the end of its log: what a failure shows."""
        if self.proc is None:
            state = "not started"
        elif self.proc.poll() is None:
            state = f"pid {self.proc.pid}, running"
        else:
            state = f"pid {self.proc.pid}, exited with code {self.proc.returncode}"
        head = f"--- {self.label} ({state}): the last {LOG_LINES} lines of {self.log_path} ---"
        return f"{head}\n{self.log_tail() or '(empty)'}"

    async def exited(self) -> int:
        """Its exit status, once the process has exited, without blocking the event
        loop: its pidfd readable on the loop (Linux), or else a poll every 50 ms."""
        proc = self.proc
        assert proc is not None
        try:
            fd = os.pidfd_open(proc.pid) if proc.poll() is None else None
        except (AttributeError, OSError):  # no pidfd here
            while proc.poll() is None:
                await asyncio.sleep(0.05)
            return proc.returncode
        if fd is not None:
            loop = asyncio.get_running_loop()
            readable = loop.create_future()
            loop.add_reader(fd, lambda: readable.done() or readable.set_result(None))
            try:
                await readable
            finally:
                loop.remove_reader(fd)
                os.close(fd)
        return proc.wait()  # it has exited: no wait

    def __enter__(self):
        if self.proc is None:
            self.start()
        self.wait_ready()
        return self

    def __exit__(self, exc_type=None, exc=None, tb=None) -> None:
        if isinstance(exc, Exception) and str(self.log_path) not in str(exc):
            exc.add_note(self.describe())  # whatever failed, with the end of the log
        self.stop()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_ready(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.label} exited with {self.proc.returncode}\n{self.describe()}"
                )
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                conn.request("GET", self.health)
                if conn.getresponse().status == 200:
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"{self.label} did not start\n{self.describe()}")

    def rss_mb(self) -> float:
        """Resident memory of the process now, in MB (from /proc: NaN where there is none)."""
        assert self.proc is not None
        kb = status_kb(self.proc.pid, "VmRSS")
        return math.nan if kb is None else kb / 1024


class Sidecar(Server):
    """`with Sidecar(root, "--engine", "synthetic") as s:` (the product)."""

    health = "/v1/health"
    label = "the sidecar"

    def __init__(self, root: Path, *serve_args: str) -> None:
        super().__init__(root)
        self.env.update(
            RETOUCH_CACHE_DIR=str(root / "cache"),
            RETOUCH_CONFIG_DIR=str(root / "config"),
            RETOUCH_DATA_DIR=str(root / "data"),
        )
        self.serve_args = serve_args
        self.token = ""

    def command(self) -> list[str]:
        command = [sys.executable, "-m", "sidecar", "serve", "--port", str(self.port)]
        return command + ["--log-level", "WARNING", *self.serve_args]

    def wait_ready(self, timeout: float = 120.0) -> None:
        super().wait_ready(timeout)
        self.token = subprocess.run(
            [sys.executable, "-m", "sidecar", "token"],
            env=self.env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


class NaiveServer(Server):
    """`with NaiveServer(root) as n:` (the baseline, bench/naive/server.py)."""

    health = "/health"
    label = "the naive server"

    def __init__(self, root: Path, model: Path | None = None) -> None:
        super().__init__(root)
        self.model = model

    def command(self) -> list[str]:
        command = [sys.executable, "-m", "bench.naive.server", "--port", str(self.port)]
        command += ["--folder", str(self.root)]
        return command + (["--model", str(self.model)] if self.model else [])
