"""What travels between the driver and a worker: an image's paths (`Item`), one attempt
at it (`Order`), how it ended (`Done`); and what every worker is made with (`Setup`,
with the batch's `FileIO`). Small, picklable, and never pixels."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from ..imaging.pixels import Limits
from ..schema import JobRequest
from .claims import Write

STAGE_BYTES = 512 << 20  # a worker's stage cache: one image's analysis and plan, and more


@dataclass(frozen=True)
class Item:
    """One file of the shoot: paths on the folder every node sees, never pixels."""

    index: int  # its place in the plan: heroes first, then by name
    name: str
    source: Path
    target: Path
    hero: bool = False


@dataclass(frozen=True)
class Order:
    """One attempt at an item, as a worker is given it."""

    item: Item
    run: str  # the run's id, in the name of each output's claim
    attempt: int = 1
    prior: dict = field(default_factory=dict)  # the color session prior, or nothing
    measure_tone: bool = False  # one of the first images whose skin tone makes the prior


@dataclass(frozen=True)
class Done:
    """How an item ended on a worker (or, `worker_lost`, on none)."""

    name: str
    status: str  # done | failed
    code: str | None = None
    message: str = ""
    decoded: bool = False  # its upload was taken (for the color prior's count)
    tone: tuple[float, float] | None = None
    tone_failed: bool = False
    written: bool = False  # this attempt replaced the output (False when done: an
    # earlier attempt, whose worker died before answering, had written these bits)
    seconds: float = 0.0


class FileIO(Protocol):
    """The batch's files, handed to every worker (`sidecar.batch.on_cluster.ShootFiles`)."""

    def read(self, source: Path) -> tuple[bytes | memoryview, str]:
        """The upload body of `source` and its media type."""
        ...

    def request(self, image_id: str, name: str, hero: bool, prior: dict) -> JobRequest: ...

    def result_format(self, target: Path) -> str: ...

    def write(self, target: Path, result: bytes, source: Path, write: Write) -> None:
        """The result (PNG or TIFF) as the output file, its chunks put by `write`."""
        ...


@dataclass(frozen=True)
class Setup:
    """What every worker is made with, once, when it starts."""

    files: FileIO
    limits: Limits = field(default_factory=Limits)
    max_upload_bytes: int = 2_500_000_000
    stage_bytes: int = STAGE_BYTES
