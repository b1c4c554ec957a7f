"""Settings: CLI flags > environment (RETOUCH_*) > defaults."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import platformdirs
from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

APP_NAME = "retouch-sidecar"
LOOPBACK = "127.0.0.1"


def _default_cache_dir() -> Path:
    return Path(platformdirs.user_cache_dir(APP_NAME))


def _default_config_dir() -> Path:
    return Path(platformdirs.user_config_dir(APP_NAME))


def _default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir(APP_NAME))


class Settings(BaseSettings):
    """Everything the sidecar can be configured with."""

    model_config = SettingsConfigDict(env_prefix="RETOUCH_", extra="forbid")

    host: Literal["127.0.0.1"] = Field(
        LOOPBACK, description="Bind address. Loopback only: no other value is accepted."
    )
    port: int = Field(7431, ge=0, le=65535, description="TCP port (0 picks a free one).")
    cache_dir: Path = Field(default_factory=_default_cache_dir)
    config_dir: Path = Field(default_factory=_default_config_dir)
    data_dir: Path = Field(
        default_factory=_default_data_dir, description="Queued work (jobs.sqlite3)."
    )
    model: Path | None = Field(None, description="Local diffusers folder or .safetensors file.")
    model_config_dir: Path | None = Field(
        None,
        description="With a single-file model: a local diffusers folder with its configs "
        "(model_index.json, tokenizer; no weights needed). Nothing is ever downloaded.",
    )
    loras: dict[str, Path] = Field(
        default_factory=dict,
        description='Per-op LoRA .safetensors files, e.g. {"beauty": "/models/skin.safetensors"}.',
    )
    device: Literal["auto", "cpu", "cuda", "mps"] = "auto"
    stage_memory_bytes: int = Field(
        128 << 20,
        gt=0,
        description="Memory for cached stages (faces, masks, levels, latents); the disk "
        "tier keeps what falls out of it.",
    )
    stage_disk_bytes: int = Field(
        8 << 30, ge=0, description="Disk for cached stages (0: memory only); LRU beyond it."
    )
    store_max_bytes: int | None = Field(
        None,
        gt=0,
        description="Disk for stored images (uploads and results); the least recently used "
        "go beyond it. Default: a quarter of the free disk where the store lives (plus what "
        "it holds), at least 2 GiB, at most 50 GiB, worked out at start.",
    )
    max_upload_bytes: int = Field(
        2_500_000_000, gt=0, description="Largest request body accepted by POST /v1/images."
    )
    max_megapixels: float = Field(300.0, gt=0, description="Largest image accepted, in MP.")
    max_side: int = Field(300_000, gt=0, description="Longest image side accepted, in px.")
    allowed_origins: list[str] = Field(
        default_factory=list,
        description="Extra browser origins allowed besides the sidecar's own (loopback) origin.",
    )

    @field_validator("allowed_origins")
    @classmethod
    def _no_wildcards(cls, origins: list[str]) -> list[str]:
        for origin in origins:
            if origin in ("*", "null") or not origin.startswith(("http://", "https://")):
                raise ValueError(f"not an allowed origin: {origin!r}")
        return [origin.rstrip("/") for origin in origins]

    @property
    def token_path(self) -> Path:
        return self.config_dir / "token"

    @property
    def jobs_db(self) -> Path:
        return self.data_dir / "jobs.sqlite3"

    @property
    def stages_dir(self) -> Path:
        return self.cache_dir / "stages"

    @property
    def images_dir(self) -> Path:
        return self.cache_dir / "images"
