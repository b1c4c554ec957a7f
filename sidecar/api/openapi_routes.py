"""Every route of the HTTP API in one table: method, path, what it takes and what it
answers, in terms of the contract's pydantic models. `openapi.py` turns the table into
the OpenAPI document; a test checks the table against the app's router, so a route
cannot be added without being described here. (The browser panel's static files under
/panel are not part of the JSON API and are left out.)"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel

from ..schema import (
    ActionRecord,
    Health,
    ImageFileRequest,
    ImageInfo,
    JobCreated,
    JobList,
    JobPatch,
    JobRequest,
    JobStatus,
    Model,
    PrecomputeRequest,
    PrecomputeStarted,
    Prediction,
    RawPixelHeaders,
    ResultQuery,
    SkinTone,
)
from ..schema.images import IMAGE_ID_PATTERN
from ..schema.jobs import JOB_ID_PATTERN
from .actions import PredictionQuery

BINARY = {"type": "string", "format": "binary"}
UPLOAD_MEDIA_TYPES = ("image/png", "image/jpeg", "image/tiff", "application/octet-stream")


class PreviewQuery(Model):
    """Query of GET /v1/jobs/{job_id}/previews/{seq}."""

    format: Literal["jpeg", "raw"] = "jpeg"


@dataclass(frozen=True)
class Reply:
    """One success answer: a JSON model, or raw media types (each a binary string)."""

    model: type[BaseModel] | None = None
    media: tuple[str, ...] = ()
    headers: tuple[str, ...] = ()  # response headers always sent with it
    description: str = ""
    links: dict[str, Link] = field(default_factory=dict)  # where its values lead


@dataclass(frozen=True)
class Link:
    """An OpenAPI link: a value of this answer used in another operation's request."""

    method: str
    path: str
    parameters: dict[str, str] = field(default_factory=dict)
    body: dict | None = None


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    summary: str
    replies: dict[int, Reply]
    errors: tuple[int, ...] = ()  # statuses answered with ErrorBody (403 is added to all)
    body: type[BaseModel] | None = None  # a JSON request body
    body_media: tuple[str, ...] = ()  # a binary request body in one of these types
    query: type[BaseModel] | None = None
    headers: type[BaseModel] | None = None  # optional request headers, as a model
    header_names: dict[str, str] = field(default_factory=dict)  # field -> header name
    public: bool = False  # no token needed
    description: str = ""


PATH_PARAMETERS = {
    "image_id": {"type": "string", "pattern": IMAGE_ID_PATTERN},
    "job_id": {"type": "string", "pattern": JOB_ID_PATTERN},
    "seq": {"type": "integer", "minimum": 0},
    "document_id": {"type": "string", "minLength": 1, "maxLength": 200},
}

IMAGE_HEADERS = ("X-Image-Width", "X-Image-Height", "X-Image-Channels", "X-Image-Depth")
JSON_ERRORS = (413, 415, 422)  # a JSON body: too large, not JSON, invalid fields

_IMAGE = "$response.body#/image_id"
_JOB = {"job_id": "$response.body#/job_id"}
IMAGE_LINKS = {
    "exists": Link("head", "/v1/images/{image_id}", {"image_id": _IMAGE}),
    "skin_tone": Link("get", "/v1/images/{image_id}/skin-tone", {"image_id": _IMAGE}),
    "retouch": Link("post", "/v1/jobs", body={"op": "beauty", "image_id": _IMAGE}),
    "precompute": Link(
        "post", "/v1/precompute", body={"image_id": _IMAGE, "document_id": "document"}
    ),
}
JOB_LINKS = {
    "status": Link("get", "/v1/jobs/{job_id}", _JOB),
    "reprioritise": Link("patch", "/v1/jobs/{job_id}", _JOB),
    "cancel": Link("delete", "/v1/jobs/{job_id}", _JOB),
    "result": Link("get", "/v1/jobs/{job_id}/result", _JOB),
    "events": Link("get", "/v1/jobs/{job_id}/events", _JOB),
}

OPERATIONS: tuple[Operation, ...] = (
    Operation(
        "get",
        "/v1/health",
        "Whether the sidecar runs, its engines and queue (no token needed).",
        {200: Reply(Health)},
        public=True,
    ),
    Operation(
        "get",
        "/v1/openapi.json",
        "This document (no token needed).",
        {200: Reply(media=("application/json",), description="The OpenAPI document.")},
        public=True,
    ),
    Operation(
        "post",
        "/v1/images",
        "Upload an image: PNG, JPEG or TIFF (8/16 bit), or raw interleaved pixels.",
        {
            201: Reply(ImageInfo, description="Stored.", links=IMAGE_LINKS),
            200: Reply(ImageInfo, description="Already stored.", links=IMAGE_LINKS),
        },
        errors=(413, 415, 422),
        body_media=UPLOAD_MEDIA_TYPES,
        headers=RawPixelHeaders,
        header_names=dict(
            zip(("width", "height", "channels", "depth"), IMAGE_HEADERS, strict=True)
        ),
        description="Raw pixels (application/octet-stream) need the four X-Image-* headers.",
    ),
    Operation(
        "post",
        "/v1/images/file",
        "Take an image file on this machine: the sidecar reads it itself (no upload).",
        {
            201: Reply(ImageInfo, description="Taken: a reference to the file.", links=IMAGE_LINKS),
            200: Reply(ImageInfo, description="Already stored.", links=IMAGE_LINKS),
        },
        errors=(404, *JSON_ERRORS, 503),
        body=ImageFileRequest,
        description="The path is absolute; the file is decoded as its upload would be (a "
        "Photoshop document: its composite). The store keeps a reference to the file, not a "
        "copy: once the file changes or goes, the image is missing (404 on HEAD).",
    ),
    Operation(
        "head",
        "/v1/images/{image_id}",
        "Whether an image is stored (so an upload can be skipped).",
        {200: Reply(description="Stored.")},
        errors=(404,),
    ),
    Operation(
        "get",
        "/v1/images/{image_id}/skin-tone",
        "The image's median skin a*, b* (CIELAB).",
        {200: Reply(SkinTone)},
        errors=(404, 503),
    ),
    Operation(
        "post",
        "/v1/jobs",
        "Submit a job.",
        {202: Reply(JobCreated, links=JOB_LINKS)},
        errors=(404, *JSON_ERRORS, 503),
        body=JobRequest,
    ),
    Operation("get", "/v1/jobs", "Every known job, in queue order.", {200: Reply(JobList)}),
    Operation(
        "get", "/v1/jobs/{job_id}", "One job's status.", {200: Reply(JobStatus)}, errors=(404,)
    ),
    Operation(
        "patch",
        "/v1/jobs/{job_id}",
        "Change a waiting or running job's priority (star a hero).",
        {200: Reply(JobStatus)},
        errors=(404, 409, *JSON_ERRORS),
        body=JobPatch,
    ),
    Operation(
        "delete",
        "/v1/jobs/{job_id}",
        "Cancel a job.",
        {
            200: Reply(JobStatus, description="Cancelled (or already was)."),
            202: Reply(JobStatus, description="Running: stops at its next step boundary."),
        },
        errors=(404, 409),
    ),
    Operation(
        "get",
        "/v1/jobs/{job_id}/result",
        "A done job's result, optionally blended (intensity) and downscaled (max_side).",
        {
            200: Reply(
                media=("image/png", "image/tiff", "application/octet-stream"),
                headers=IMAGE_HEADERS,
            )
        },
        errors=(404, 409, 410, 422, 503),
        query=ResultQuery,
    ),
    Operation(
        "get",
        "/v1/jobs/{job_id}/events",
        "Server-Sent Events of one job, ending with its terminal event.",
        {200: Reply(media=("text/event-stream",))},
        errors=(404,),
        description="Send Last-Event-ID to resume after that event's seq.",
    ),
    Operation(
        "get",
        "/v1/jobs/{job_id}/previews/{seq}",
        "One of a job's newest preview images.",
        {200: Reply(media=("image/jpeg", "application/octet-stream"))},
        errors=(404, 422),
        query=PreviewQuery,
    ),
    Operation(
        "get",
        "/v1/ws",
        "WebSocket of every job's events (JSON text and binary preview frames).",
        {101: Reply(description="Switched to the WebSocket protocol.")},
        errors=(400,),
        description="A request that is not a WebSocket handshake is answered 400.",
    ),
    Operation(
        "post",
        "/v1/precompute",
        "Ready the stages of an image's ops in the background, for one document.",
        {202: Reply(PrecomputeStarted)},
        errors=(404, *JSON_ERRORS),
        body=PrecomputeRequest,
    ),
    Operation(
        "delete",
        "/v1/precompute/{document_id}",
        "Stop a document's precompute.",
        {200: Reply(PrecomputeStarted)},
        errors=(422,),
    ),
    Operation(
        "post",
        "/v1/actions",
        "Record that the user applied an op; answers the likely next one.",
        {200: Reply(Prediction)},
        errors=JSON_ERRORS,
        body=ActionRecord,
    ),
    Operation(
        "get",
        "/v1/predictions",
        "The likely next op after one.",
        {200: Reply(Prediction)},
        errors=(422,),
        query=PredictionQuery,
    ),
)
