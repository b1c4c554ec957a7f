"""What the driver tells whoever shows the shoot's progress (`batch`'s display), as it
happens: workers coming and going, images sent, ended and sent again."""

from __future__ import annotations

from dataclasses import dataclass

from .items import Done


@dataclass(frozen=True)
class Placed:
    """The cluster is reached and this many workers are being started."""

    where: str  # "local[2]", "auto", "HOST:PORT"
    workers: int
    per_worker: str  # "1 CPU", "1 GPU, 1 CPU"
    nodes: int


@dataclass(frozen=True)
class WorkerUp:
    """A worker's engine is loaded (at the start, or after a restart)."""

    worker: int
    node: str
    pid: int


@dataclass(frozen=True)
class WorkerDown:
    """A worker's process or node died; `gone` when Ray will not restart it."""

    worker: int
    reason: str
    gone: bool


@dataclass(frozen=True)
class Sent:
    worker: int
    name: str
    attempt: int


@dataclass(frozen=True)
class Resent:
    """An image whose worker died on it goes to the next free worker."""

    worker: int  # the one that died on it
    name: str
    attempt: int  # the attempt to come
    reason: str


@dataclass(frozen=True)
class Ended:
    """An image's end: done (written) or failed; `worker` is None when no worker
    answered for it (every attempt lost)."""

    worker: int | None
    done: Done


Event = Placed | WorkerUp | WorkerDown | Sent | Resent | Ended
