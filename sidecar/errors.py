"""Errors that reach clients: a stable code, an HTTP status and a plain message.

Every room raises these; only the API turns them into responses. Nothing here may
carry a traceback or internal paths to a client.
"""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """An error with a stable machine-readable code, safe to show to a client."""

    status = 400
    code = "bad_request"

    def __init__(self, message: str, *, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}


class Unauthorized(ApiError):
    status = 401
    code = "unauthorized"


class ForbiddenOrigin(ApiError):
    status = 403
    code = "forbidden_origin"


class ForbiddenHost(ApiError):
    status = 403
    code = "forbidden_host"


class NotFound(ApiError):
    status = 404
    code = "not_found"


class ImageNotFound(ApiError):
    status = 404
    code = "image_not_found"


class JobNotFound(ApiError):
    status = 404
    code = "job_not_found"


class FileNotFound(ApiError):
    """`POST /v1/images/file`: no file at the path."""

    status = 404
    code = "file_not_found"


class MethodNotAllowed(ApiError):
    status = 405
    code = "method_not_allowed"


class Conflict(ApiError):
    status = 409
    code = "conflict"


class PayloadTooLarge(ApiError):
    status = 413
    code = "payload_too_large"


class UnsupportedMediaType(ApiError):
    status = 415
    code = "unsupported_media_type"


class InvalidRequest(ApiError):
    status = 422
    code = "invalid_request"


class InvalidImage(ApiError):
    status = 422
    code = "invalid_image"


class FileUnreadable(ApiError):
    """`POST /v1/images/file`: the path is not a regular file the sidecar may read."""

    status = 422
    code = "file_unreadable"


class UnsupportedPsd(ApiError):
    """A Photoshop document in a mode or depth whose result could not be written back."""

    status = 422
    code = "unsupported_psd"


class PsdWithoutComposite(ApiError):
    """A Photoshop document saved without its composite image."""

    status = 422
    code = "psd_without_composite"


class UnreadablePsd(ApiError):
    """A damaged Photoshop document."""

    status = 422
    code = "unreadable_psd"


class ImageTooLarge(ApiError):
    status = 422
    code = "image_too_large"


class InternalError(ApiError):
    status = 500
    code = "internal_error"


class EngineUnavailable(ApiError):
    status = 503
    code = "engine_unavailable"


class OutOfMemory(ApiError):
    """Not enough memory for this now; the same request may succeed later."""

    status = 503
    code = "out_of_memory"


class ResultGone(ApiError):
    """A done job's result and the image it was made from are both gone from the store."""

    status = 410
    code = "result_gone"


class HeadersTooLarge(ApiError):
    """A header line or the request line over aiohttp's limit (refused before routing)."""

    status = 431
    code = "headers_too_large"


class ResultRemakeFailed(ApiError):
    """A done job's result was gone from the store and making it again failed."""

    status = 503
    code = "result_remake_failed"


ALL_ERRORS: tuple[type[ApiError], ...] = (
    Unauthorized,
    ForbiddenOrigin,
    ForbiddenHost,
    NotFound,
    ImageNotFound,
    JobNotFound,
    FileNotFound,
    MethodNotAllowed,
    Conflict,
    PayloadTooLarge,
    UnsupportedMediaType,
    InvalidRequest,
    InvalidImage,
    FileUnreadable,
    UnsupportedPsd,
    PsdWithoutComposite,
    UnreadablePsd,
    ImageTooLarge,
    InternalError,
    EngineUnavailable,
    OutOfMemory,
    ResultGone,
    HeadersTooLarge,
    ResultRemakeFailed,
)
