"""The client's one exception: the sidecar's error answer, with its stable code, or an
exchange that failed on the way (a connection, a body that is not the contract's)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from ..schema import ErrorBody, ErrorDetail

# Codes of failures the client names itself; every other code is the sidecar's own.
CONNECTION_FAILED = "connection_failed"  # no answer: refused, reset, timed out
BAD_RESPONSE = "bad_response"  # an answer that is not the contract's JSON
INVALID_REQUEST = "invalid_request"  # the sidecar's code for a body it refuses
FIELD_ERRORS_SHOWN = 3
M = TypeVar("M", bound=BaseModel)


class SidecarError(Exception):
    """An error answer of the sidecar (`code` is its stable code, `status` the HTTP
    status) or a failed exchange (`connection_failed`, `bad_response`, `http_NNN` for
    an error answer without the JSON body)."""

    def __init__(
        self,
        code: str,
        message: str,
        *,
        status: int | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status
        self.details = details or {}

    @classmethod
    def from_detail(cls, error: ErrorDetail, status: int | None = None) -> SidecarError:
        """The error of an error body; the message names the first few fields that a
        refused request got wrong (pydantic's field errors), to say what to fix."""
        message = error.message
        for field in (error.details.get("errors") or [])[:FIELD_ERRORS_SHOWN]:
            where = ".".join(str(part) for part in field.get("loc", ()))
            message += f"; {where}: {field.get('msg', '')}"
        return cls(error.code, message, status=status, details=error.details)

    @classmethod
    def from_answer(cls, status: int, reason: str, body: bytes) -> SidecarError:
        """The error of an HTTP error answer: its JSON body, or `http_<status>`."""
        try:
            return cls.from_detail(ErrorBody.model_validate_json(body).error, status)
        except (ValidationError, ValueError, TypeError, AttributeError):
            return cls(f"http_{status}", reason, status=status)

    @classmethod
    def refused_request(cls, exc: ValidationError, what: str = "request body") -> SidecarError:
        """A request refused before it is sent, in the words the sidecar would use."""
        errors = exc.errors(include_url=False, include_input=False, include_context=False)
        detail = ErrorDetail(
            code=INVALID_REQUEST, message=f"invalid {what}", details={"errors": errors}
        )
        return cls.from_detail(detail, 422)


def parse_request(model: type[M], data: Mapping[str, Any] | M, what: str = "request body") -> M:
    """A request as its model; one the sidecar would refuse raises its invalid_request."""
    if isinstance(data, model):
        return data
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise SidecarError.refused_request(exc, what) from None
