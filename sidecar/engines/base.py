"""What an engine is: a function of pixels and params that reports through a context.

The context is the engine's only way out: it names stages, reports progress, hands
over previews and, at each of those step boundaries, raises `Cancelled` or
`Preempted` when the scheduler asks. An engine never looks at queues or sockets.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import numpy as np
from pydantic import BaseModel, ValidationError

from ..errors import InvalidRequest
from ..schema import JobRequest, Op

PreviewLevel = Literal["draft", "preview", "refine", "final", "step"]


class Cancelled(Exception):
    """Raised at a step boundary: the job was cancelled; nothing is kept."""


class Preempted(Exception):
    """Raised at a step boundary: a more urgent job needs the worker; run again later."""


class ImageGone(Exception):
    """The job's image was removed from the store before the engine read it."""


@dataclass
class RunInput:
    request: JobRequest
    pixels: np.ndarray | None  # canonical (H, W, C) uint8/uint16; None until loaded
    seed: int
    # Survives pre-emption: an engine may keep finished stages here and skip them
    # when the job runs again.
    saved: dict[str, Any] = field(default_factory=dict)
    # Reads the pixels on first use, so an engine whose stages are cached can show a
    # draft before a 24 MP image has come off the disk.
    loader: Callable[[], np.ndarray | None] | None = None
    size: tuple[int, int] | None = None  # (width, height), known before the pixels are

    @property
    def width_height(self) -> tuple[int, int]:
        if self.size is not None:
            return self.size
        height, width = self.image().shape[:2]
        return width, height

    def image(self) -> np.ndarray:
        """The canonical (H, W, C) uint8/uint16 pixels (read now if not yet)."""
        if self.pixels is None and self.loader is not None:
            self.pixels = self.loader()
        if self.pixels is None:
            raise ImageGone
        return self.pixels


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


def check_params(model: type[BaseModel], request: JobRequest) -> None:
    """Validate a request's params against an op's model: 422 with the field errors."""
    try:
        model.model_validate(request.params)
    except ValidationError as exc:
        errors_ = exc.errors(include_url=False, include_input=False, include_context=False)
        raise InvalidRequest(
            f"bad params for {request.op.value}", details={"errors": errors_}
        ) from None


def validate_request(engine: Engine, request: JobRequest) -> None:
    """An engine may check a request's params up front (`validate`, raising an
    ApiError), so a bad request is refused at submit instead of failing in the queue."""
    check = getattr(engine, "validate", None)
    if check is not None:
        check(request)


def close_engine(engine: Engine) -> None:
    close = getattr(engine, "close", None)
    if close is not None:
        close()
