"""Content-addressed images: what an upload returns."""

from __future__ import annotations

from pathlib import PurePath
from typing import Literal

from pydantic import Field, field_validator

from .common import Model

IMAGE_ID_PATTERN = r"^[0-9a-f]{64}$"


class ImageInfo(Model):
    """Response of POST /v1/images (201 new, 200 already stored)."""

    image_id: str = Field(
        pattern=IMAGE_ID_PATTERN,
        description="BLAKE3 hex digest of the canonical header line and pixel bytes.",
    )
    width: int = Field(ge=1)
    height: int = Field(ge=1)
    channels: Literal[3, 4]
    depth: Literal[8, 16]


class SkinTone(Model):
    """GET /v1/images/{image_id}/skin-tone: the skin's median a*, b* (CIELAB), the
    material of a batch's session prior for `color`; nulls when there is no skin."""

    image_id: str = Field(pattern=IMAGE_ID_PATTERN)
    a: float | None = None
    b: float | None = None


class RawPixelHeaders(Model):
    """The X-Image-* headers of a raw-pixel upload (application/octet-stream)."""

    width: int = Field(ge=1, description="X-Image-Width")
    height: int = Field(ge=1, description="X-Image-Height")
    channels: Literal[3, 4] = Field(description="X-Image-Channels")
    depth: Literal[8, 16] = Field(description="X-Image-Depth; 16-bit samples little-endian")

    @field_validator("width", "height", "channels", "depth", mode="before")
    @classmethod
    def _decimal_header(cls, value: object) -> object:
        # Header values arrive as text; accept plain decimal digits only ("1e3" is not).
        if isinstance(value, str) and value.isascii() and value.isdigit():
            return int(value)
        return value


PATH_MAX_CHARS = 4096
# absolute on POSIX (/…) or Windows (C:\… or \\server\…), no NUL character; the
# sidecar checks that it is absolute on its own system too
ABSOLUTE_PATH_PATTERN = r"^(/|[A-Za-z]:[\\/]|\\\\)[^\x00]*$"


def absolute_path(value: str) -> str:
    """A path the sidecar may be given: absolute on its machine, no NUL character."""
    if "\x00" in value:
        raise ValueError("a path holds no NUL character")
    if not PurePath(value).is_absolute():
        raise ValueError("the path must be absolute")
    return value


class ImageFileRequest(Model):
    """Body of POST /v1/images/file: an image file on the sidecar's machine, which the
    sidecar reads itself (no upload) and keeps a reference to, not a copy."""

    path: str = Field(
        min_length=1,
        max_length=PATH_MAX_CHARS,
        pattern=ABSOLUTE_PATH_PATTERN,
        description="Absolute path of a PNG, JPEG or TIFF file, or a Photoshop document "
        "(.psd, .psb: its composite).",
    )

    @field_validator("path")
    @classmethod
    def _absolute(cls, value: str) -> str:
        return absolute_path(value)
