"""Writes the JSON Schema of the contract to shared-schema/ (one file per group)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter

from . import events, images, jobs, service
from .common import ErrorBody

SCHEMA_ID_BASE = "https://retouch.local/schema/v1/"

GROUPS: dict[str, dict[str, Any]] = {
    "errors": {"ErrorBody": ErrorBody},
    "images": {
        "ImageInfo": images.ImageInfo,
        "ImageFileRequest": images.ImageFileRequest,
        "RawPixelHeaders": images.RawPixelHeaders,
        "SkinTone": images.SkinTone,
    },
    "jobs": {
        "JobRequest": jobs.JobRequest,
        "JobCreated": jobs.JobCreated,
        "JobStatus": jobs.JobStatus,
        "JobList": jobs.JobList,
        "JobPatch": jobs.JobPatch,
        "ResultQuery": jobs.ResultQuery,
    },
    "events": {
        "JobEvent": events.JobEvent,
        "ClientMessage": events.ClientMessage,
    },
    "service": {
        "PrecomputeRequest": service.PrecomputeRequest,
        "PrecomputeStarted": service.PrecomputeStarted,
        "ActionRecord": service.ActionRecord,
        "Prediction": service.Prediction,
        "Health": service.Health,
    },
}


def group_schema(group: str) -> dict[str, Any]:
    """One JSON Schema document whose $defs hold every model of the group."""
    defs: dict[str, Any] = {}
    for name, model in GROUPS[group].items():
        schema = TypeAdapter(model).json_schema(ref_template="#/$defs/{model}")
        defs.update(schema.pop("$defs", {}))
        defs[name] = schema
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"{SCHEMA_ID_BASE}{group}.json",
        "title": f"retouch sidecar API v1: {group}",
        "$defs": dict(sorted(defs.items())),
    }


def render_all() -> dict[str, str]:
    """File name → file text, exactly as committed under shared-schema/."""
    return {
        f"{group}.json": json.dumps(group_schema(group), indent=2, sort_keys=True) + "\n"
        for group in GROUPS
    }


def write_all(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in render_all().items():
        path = directory / name
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
        written.append(path)
    return written
