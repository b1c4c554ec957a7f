"""Where a shoot runs: the value of `batch --cluster`."""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_LOCAL_WORKERS = 256
_LOCAL = re.compile(r"local\[(\d+)\]")
_HOST_PORT = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9][A-Za-z0-9.\-]*):(\d{1,5})")


@dataclass(frozen=True)
class ClusterAddress:
    """`auto` (the running cluster found the usual way: RAY_ADDRESS, or the one `ray
    start` made on this machine), `HOST:PORT` (a cluster's head), or `local[N]` (a
    cluster started here for the run, with N workers)."""

    address: str  # what ray.init is given: "auto", "HOST:PORT" or "local"
    local_workers: int | None = None

    @property
    def local(self) -> bool:
        return self.local_workers is not None

    def __str__(self) -> str:
        return f"local[{self.local_workers}]" if self.local else self.address


def parse_address(text: str) -> ClusterAddress:
    """The `--cluster` value; ValueError says what is expected."""
    text = text.strip()
    expected = "expected auto, local[N] or HOST:PORT"
    if text == "auto":
        return ClusterAddress("auto")
    local = _LOCAL.fullmatch(text)
    if local:
        workers = int(local.group(1))
        if not 1 <= workers <= MAX_LOCAL_WORKERS:
            raise ValueError(f"--cluster {text}: N is 1 to {MAX_LOCAL_WORKERS}")
        return ClusterAddress("local", workers)
    if text.startswith("ray://"):
        raise ValueError(
            f"--cluster {text}: Ray Client addresses are not taken; run the command on a "
            "node of the cluster with --cluster auto (or the head's HOST:PORT)"
        )
    found = _HOST_PORT.fullmatch(text)
    if found and 0 < int(found.group(2)) < 65536:
        return ClusterAddress(text)
    raise ValueError(f"--cluster {text!r}: {expected}")
