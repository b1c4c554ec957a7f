"""What an engine is: a function of pixels and params that reports through a context.

The context is the engine's only way out: it names stages, reports progress, hands
over previews and, at each of those step boundaries, raises `Cancelled` or
`Preempted` when the scheduler asks. An engine never looks at queues or sockets.

`Engine` names everything the rest of the sidecar reads of an engine; an engine
subclasses it and sets `name`, `version` and `ops` and defines `run`, and whatever else
it offers (`validate`, `close`, `describe`, `skin_tone`) over the defaults.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol, TypeVar

import numpy as np
from pydantic import BaseModel, ValidationError

from ..errors import InvalidRequest
from ..imaging.buffers import BufferPool
from ..schema import JobRequest, Op

PreviewLevel = Literal["draft", "preview", "refine", "final", "step"]
Loader = Callable[[], np.ndarray | None]
Resume = TypeVar("Resume")


class Cancelled(Exception):
    """Raised at a step boundary: the job was cancelled; nothing is kept."""


class Preempted(Exception):
    """Raised at a step boundary: a more urgent job needs the worker; run again later."""


class ImageGone(Exception):
    """The job's image was removed from the store before the engine read it."""


@dataclass(kw_only=True)
class RunInput:
    """One run of one job, as its engine sees it."""

    request: JobRequest
    seed: int
    job_id: str | None = None  # the job this is a run of (None outside the scheduler)
    pixels: np.ndarray | None = None  # canonical (H, W, C) uint8/uint16; None until loaded
    # Reads the pixels on first use, so an engine whose stages are cached can show a
    # draft before a 24 MP image has come off the disk.
    loader: Loader | None = None
    size: tuple[int, int] | None = None  # (width, height), known before the pixels are
    # The engine's own state, kept across a pre-emption: what an earlier run of this job
    # finished, so the next run skips it. Opaque to everyone but the engine; see
    # `resume_state`.
    resume: object | None = None
    # Whether anyone watches the job now (asked at each level): its draft and the
    # final's tile previews are made only then. None: the request's `progressive` says.
    watched: Callable[[], bool] | None = None
    # A precompute: nobody watches, but a later Apply with other params will, so the
    # engine readies what that one's draft needs (not the draft itself).
    ahead: bool = False
    # Where an image-sized result may be allocated (warm memory that goes round; see
    # imaging.buffers); None: plain numpy.
    buffers: BufferPool | None = None
    # Told of each band of the result's rows [y0, y1) once it is final, with the result
    # array, so the rows can be stored while the rest renders; None: nobody asks.
    on_rows: Callable[[np.ndarray, int, int], None] | None = None

    def new_array(self, shape: tuple[int, ...], dtype) -> np.ndarray:
        """An uninitialised array for a result, on a pooled buffer when there is a pool."""
        if self.buffers is None:
            return np.empty(shape, dtype)
        return self.buffers.array(shape, dtype)

    def is_watched(self) -> bool:
        if not self.request.preview.progressive:
            return False
        return self.watched() if self.watched is not None else True

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

    def resume_state(self, kind: type[Resume]) -> Resume:
        """The engine's state of type `kind` (a dataclass the engine defines, made with
        no arguments): the one an earlier, pre-empted run of this job left, or a new
        one. It is kept in `resume`, so what the engine records in it survives the
        next pre-emption."""
        if not isinstance(self.resume, kind):
            self.resume = kind()
        return self.resume


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


SkinToneMeter = Callable[[str, Loader], tuple[float, float] | None]


class Engine:
    """The contract every engine meets, with defaults for what is optional."""

    name: str  # shown in /v1/health; one engine may serve several ops
    ops: frozenset[Op]  # the ops it runs
    version: str = ""  # goes into result keys: change it whenever the pixels would change

    # Optional capabilities: None when the engine has none. `describe()` says what is
    # loaded (model, LoRAs) for /v1/health; `skin_tone(image_id, load)` measures the
    # image's median skin a*, b* (for a batch's session prior) or None without skin.
    describe: Callable[[], str] | None = None
    skin_tone: SkinToneMeter | None = None

    def run(self, job: RunInput, ctx: JobContext) -> np.ndarray:
        """Return the result: canonical pixels of the input's size and depth."""
        raise NotImplementedError

    def validate(self, request: JobRequest) -> None:
        """Refuse a bad request up front (raise an ApiError), so it fails at submit
        instead of in the queue. By default every request is taken."""

    def warm(self) -> None:
        """Load now what the first job would load (graphs, weights), so that the first
        Apply after a start is as quick as the next. Called once, in the background, when
        the sidecar starts as a program; a job that comes meanwhile waits for no more
        than it would have loaded itself. By default there is nothing to load."""

    def close(self) -> None:
        """Free what the engine holds; called once, when the sidecar stops."""


def check_params(model: type[BaseModel], request: JobRequest) -> None:
    """Validate a request's params against an op's model: 422 with the field errors."""
    try:
        model.model_validate(request.params)
    except ValidationError as exc:
        errors_ = exc.errors(include_url=False, include_input=False, include_context=False)
        raise InvalidRequest(
            f"bad params for {request.op.value}", details={"errors": errors_}
        ) from None
