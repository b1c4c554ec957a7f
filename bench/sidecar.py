"""A real `retouch-sidecar serve` process for the benchmarks, with its own folders."""

from __future__ import annotations

import http.client
import os
import socket
import subprocess
import sys
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Sidecar:
    """`with Sidecar(root, "--engine", "synthetic") as s:` starts one and waits for it."""

    def __init__(self, root: Path, *serve_args: str) -> None:
        self.port = free_port()
        self.env = {
            **os.environ,
            "RETOUCH_CACHE_DIR": str(root / "cache"),
            "RETOUCH_CONFIG_DIR": str(root / "config"),
            "RETOUCH_DATA_DIR": str(root / "data"),
        }
        self.serve_args = serve_args
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> Sidecar:
        command = [sys.executable, "-m", "sidecar", "serve", "--port", str(self.port)]
        command += ["--log-level", "WARNING", *self.serve_args]
        self.proc = subprocess.Popen(command, env=self.env)
        self.token = subprocess.run(
            [sys.executable, "-m", "sidecar", "token"],
            env=self.env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        self.wait_ready()
        return self

    def __exit__(self, *exc) -> None:
        assert self.proc is not None
        self.proc.terminate()
        self.proc.wait(timeout=30)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def wait_ready(self) -> None:
        for _ in range(300):
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                conn.request("GET", "/v1/health")
                if conn.getresponse().status == 200:
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("sidecar did not start")

    def rss_mb(self) -> float:
        """Resident memory of the sidecar process now, in MB."""
        assert self.proc is not None
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise RuntimeError("no VmRSS")
