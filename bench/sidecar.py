"""The two servers the benchmarks drive, each in its own process with its own folders:
a real `retouch-sidecar serve` (the product) and `bench.naive.server` (the baseline)."""

from __future__ import annotations

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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """A server process on a free loopback port; `with` starts it and waits for it."""

    health = "/"

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

    def log_tail(self) -> str:
        try:
            return (self.root / "server.log").read_text(errors="replace")[-3000:]
        except OSError:
            return ""

    def __enter__(self):
        if self.proc is None:
            self.start()
        self.wait_ready()
        return self

    def __exit__(self, *exc) -> None:
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
                    f"{type(self).__name__} exited with {self.proc.returncode}:\n" + self.log_tail()
                )
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                conn.request("GET", self.health)
                if conn.getresponse().status == 200:
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"{type(self).__name__} did not start:\n" + self.log_tail())

    def rss_mb(self) -> float:
        """Resident memory of the process now, in MB (from /proc: NaN where there is none)."""
        assert self.proc is not None
        kb = status_kb(self.proc.pid, "VmRSS")
        return math.nan if kb is None else kb / 1024


class Sidecar(Server):
    """`with Sidecar(root, "--engine", "synthetic") as s:` (the product)."""

    health = "/v1/health"

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

    def __init__(self, root: Path, model: Path | None = None) -> None:
        super().__init__(root)
        self.model = model

    def command(self) -> list[str]:
        command = [sys.executable, "-m", "bench.naive.server", "--port", str(self.port)]
        command += ["--folder", str(self.root)]
        return command + (["--model", str(self.model)] if self.model else [])
