"""Precompute, action prediction and health."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from .common import Model
from .images import IMAGE_ID_PATTERN
from .jobs import Op


class PrecomputeRequest(Model):
    """Body of POST /v1/precompute: run the stages these ops need, in the background."""

    image_id: str = Field(pattern=IMAGE_ID_PATTERN)
    document_id: str = Field(min_length=1, max_length=200)
    layer_stack_hash: str | None = Field(None, min_length=1, max_length=128)
    ops: list[Op] | None = None


class PrecomputeStarted(Model):
    """Response of POST /v1/precompute (202)."""

    document_id: str
    job_ids: list[str] = Field(description="The background jobs readying the stages.")
    cancelled: int = Field(0, ge=0, description="Precompute of other documents stopped.")


class ActionRecord(Model):
    """Body of POST /v1/actions: the user applied `action` on a document."""

    document_id: str = Field(min_length=1, max_length=200)
    action: Op


class Prediction(Model):
    """GET /v1/predictions?after=ACTION."""

    next: Op | None
    probability: float | None = Field(None, ge=0.0, le=1.0)


class EngineInfo(Model):
    available: bool
    detail: str = ""


class QueueCounts(Model):
    queued: int = Field(0, ge=0)
    running: int = Field(0, ge=0)


class StoreUsage(Model):
    """The image store (uploads and results) on disk."""

    used_bytes: int = Field(ge=0, description="Bytes of stored image files.")
    limit_bytes: int = Field(
        gt=0, description="The limit: least recently used images are removed beyond it."
    )
    images: int = Field(ge=0, description="Stored images.")


class Health(Model):
    """GET /v1/health (no token needed)."""

    status: Literal["ok", "degraded"]
    version: str
    device: str
    engines: dict[str, EngineInfo]
    queue: QueueCounts
    store: StoreUsage
