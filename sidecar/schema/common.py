"""Shared pieces of the contract: the error body and strict model defaults."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Model(BaseModel):
    """Base for every request, response and event: unknown fields are refused."""

    model_config = ConfigDict(extra="forbid")


class ErrorDetail(Model):
    code: str = Field(description="Stable machine-readable code, e.g. image_not_found.")
    message: str = Field(description="Human-readable explanation; never a traceback.")
    details: dict[str, Any] = Field(default_factory=dict)


class ErrorBody(Model):
    """Every 4xx/5xx response body."""

    error: ErrorDetail
