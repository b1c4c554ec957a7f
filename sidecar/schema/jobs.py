"""Jobs: what a client submits, and what it can read back."""

from __future__ import annotations

from enum import StrEnum
from pathlib import PurePath
from typing import Literal

from pydantic import AwareDatetime, Field, FiniteFloat, field_validator, model_validator

from .common import ErrorDetail, Model
from .images import ABSOLUTE_PATH_PATTERN, IMAGE_ID_PATTERN, PATH_MAX_CHARS, absolute_path

JOB_ID_PATTERN = r"^[0-9a-f]{32}$"


class Op(StrEnum):
    beauty = "beauty"
    dodge_burn = "dodge_burn"
    volume = "volume"
    color = "color"
    generate = "generate"


# The ops that retouch an image (every op but `generate`), in the panel's order.
RETOUCH_OPS = tuple(op for op in Op if op is not Op.generate)


class Priority(StrEnum):
    """Queue order, first to last."""

    active = "active"
    hero = "hero"
    normal = "normal"
    background = "background"


class JobState(StrEnum):
    queued = "queued"
    running = "running"
    done = "done"
    failed = "failed"
    cancelled = "cancelled"


TERMINAL_STATES = frozenset({JobState.done, JobState.failed, JobState.cancelled})


class PreviewOptions(Model):
    progressive: bool = Field(
        True,
        description="Show the job as it runs: a 1/8 draft, then the final's tiles, "
        "rendered only while a client follows the job's events (WebSocket or SSE). "
        "Off, or with nobody following, only the final is rendered; the result's "
        "pixels are the same either way.",
    )
    stream_steps: bool = Field(False, description="Send denoising step previews (opt-in).")
    decode_every: int = Field(
        0,
        ge=0,
        le=1000,
        description="With stream_steps: every Nth step preview is a full VAE decode of the "
        "predicted image instead of the 1/8 projection (0: never; costs a decode each).",
    )


# what an output file may be, by suffix; documents (.psd, .psb) need a document source
OUTPUT_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".psd", ".psb")
DOCUMENT_SUFFIXES = (".psd", ".psb")


class OutputFile(Model):
    """Where the sidecar writes a job's result as a file once the job is done (the
    `apply` and `batch` commands with a sidecar on their machine)."""

    path: str = Field(
        min_length=1,
        max_length=PATH_MAX_CHARS,
        pattern=ABSOLUTE_PATH_PATTERN,
        description="Absolute path of the output; its suffix names the format (.png, .jpg, "
        ".jpeg, .tif, .tiff, or .psd/.psb: the source document with the result as a new "
        "layer). Written atomically; an existing file is replaced.",
    )
    source: str | None = Field(
        None,
        min_length=1,
        max_length=PATH_MAX_CHARS,
        pattern=ABSOLUTE_PATH_PATTERN,
        description="Absolute path of the input file whose metadata (ICC profile, EXIF, "
        "XMP, IPTC, resolution, grayscale) the output carries; a document's layers come "
        "from it. Null: no metadata.",
    )

    @field_validator("path", "source")
    @classmethod
    def _absolute(cls, value: str | None) -> str | None:
        return None if value is None else absolute_path(value)

    @model_validator(mode="after")
    def _formats(self) -> OutputFile:
        suffix = PurePath(self.path).suffix.lower()
        if suffix not in OUTPUT_SUFFIXES:
            raise ValueError(f"the output's suffix must be one of {', '.join(OUTPUT_SUFFIXES)}")
        source = PurePath(self.source) if self.source is not None else None
        if source is not None and source == PurePath(self.path):
            raise ValueError("the output must differ from its source")
        source_is_document = source is not None and source.suffix.lower() in DOCUMENT_SUFFIXES
        if (suffix in DOCUMENT_SUFFIXES) != source_is_document:
            raise ValueError("a document output (.psd, .psb) needs a document source, and only it")
        return self


class JobRequest(Model):
    """Body of POST /v1/jobs."""

    op: Op
    image_id: str | None = Field(None, pattern=IMAGE_ID_PATTERN)
    intensity: float = Field(1.0, ge=0.0, le=1.0)
    # finite numbers only: NaN and ±inf have no JSON form, so a queued job would not
    # survive its trip through the SQLite record and a restart
    params: dict[str, FiniteFloat | int | bool | str] = Field(default_factory=dict)
    priority: Priority = Priority.normal
    document_id: str | None = Field(None, min_length=1, max_length=200)
    layer_stack_hash: str | None = Field(None, min_length=1, max_length=128)
    seed: int | None = Field(None, ge=0, lt=2**63)
    preview: PreviewOptions = Field(default_factory=PreviewOptions)
    prompt: str | None = Field(None, max_length=2000)
    output: OutputFile | None = Field(
        None,
        description="Have the sidecar write the result to this file when the job is done; "
        "the job is done once the file is written (failed with write_failed if it cannot "
        "be). Not part of the result's cache key.",
    )

    @model_validator(mode="after")
    def _op_inputs(self) -> JobRequest:
        if self.op is Op.generate:
            if not self.prompt:
                raise ValueError("generate needs a prompt")
        else:
            if self.image_id is None:
                raise ValueError(f"{self.op.value} needs an image_id")
            if self.prompt is not None:
                raise ValueError("prompt is only for generate")
        return self


class JobCreated(Model):
    """Response of POST /v1/jobs (202)."""

    job_id: str = Field(pattern=JOB_ID_PATTERN)
    state: JobState
    position: int | None = Field(None, ge=0, description="Place in the queue; null unless queued.")
    cached: bool


class JobStatus(Model):
    """GET /v1/jobs/{job_id}; also each row of GET /v1/jobs."""

    job_id: str = Field(pattern=JOB_ID_PATTERN)
    op: Op
    state: JobState
    priority: Priority
    position: int | None = Field(None, ge=0)
    progress: float = Field(0.0, ge=0.0, le=1.0)
    stage: str | None = None
    eta_s: float | None = Field(None, ge=0.0)
    error: ErrorDetail | None = None
    cached: bool = False
    precompute: bool = Field(
        False, description="Background work that readies stages; it makes no result."
    )
    created_at: AwareDatetime
    started_at: AwareDatetime | None = None
    finished_at: AwareDatetime | None = None


class JobList(Model):
    jobs: list[JobStatus]


class JobPatch(Model):
    """Body of PATCH /v1/jobs/{job_id}: reprioritise (e.g. star a hero)."""

    priority: Priority


class ResultQuery(Model):
    """Query of GET /v1/jobs/{job_id}/result."""

    format: Literal["raw", "png", "tiff"] = "png"
    intensity: float | None = Field(
        None, ge=0.0, le=1.0, description="Blend original + t·(result − original)."
    )
    max_side: int | None = Field(None, ge=1, le=300_000, description="Downscale to fit.")
