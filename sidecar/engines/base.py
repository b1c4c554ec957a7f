"""What an engine is: a function of pixels and params that reports through a context.

The context is the engine's only way out: it names stages, reports progress, hands
over previews and, at each of those step boundaries, raises `Cancelled` or
`Preempted` when the scheduler asks. An engine never looks at queues or sockets.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import numpy as np

from ..schema import JobRequest, Op

PreviewLevel = Literal["draft", "preview", "refine", "final", "step"]


class Cancelled(Exception):
    """Raised at a step boundary: the job was cancelled; nothing is kept."""


class Preempted(Exception):
    """Raised at a step boundary: a more urgent job needs the worker; run again later."""


@dataclass
class RunInput:
    request: JobRequest
    pixels: np.ndarray | None  # canonical (H, W, C) uint8/uint16; None for generate
    seed: int
    # Survives pre-emption: an engine may keep finished stages here and skip them
    # when the job runs again.
    saved: dict[str, Any] = field(default_factory=dict)


class JobContext(Protocol):
    def stage(self, name: str, index: int, count: int) -> None: ...

    def progress(self, fraction: float) -> None: ...

    def preview(
        self,
        level: PreviewLevel,
        rgb: np.ndarray,
        *,
        step: int | None = None,
        total_steps: int | None = None,
    ) -> None: ...

    def checkpoint(self) -> None: ...


class Engine(Protocol):
    name: str
    ops: frozenset[Op]

    def run(self, job: RunInput, ctx: JobContext) -> np.ndarray:
        """Return the result: canonical pixels of the input's size and depth."""
        ...
