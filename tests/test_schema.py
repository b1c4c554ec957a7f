"""The committed JSON Schema matches the pydantic models, and the models hold the rules."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import TypeAdapter, ValidationError

from sidecar.api.openapi import FILE_NAME as OPENAPI_FILE
from sidecar.api.openapi import render_openapi
from sidecar.schema import ClientMessage, JobEvent, JobRequest, Priority
from sidecar.schema.export import render_all

SHARED = Path(__file__).parents[1] / "shared-schema"


def test_committed_schema_matches_models():
    expected = {**render_all(), OPENAPI_FILE: render_openapi()}
    on_disk = {path.name: path.read_text(encoding="utf-8") for path in SHARED.glob("*.json")}
    assert sorted(on_disk) == sorted(expected), "run scripts/export-schema"
    for name, text in expected.items():
        assert on_disk[name] == text, f"{name} drifted: run scripts/export-schema"


def test_job_request_defaults_and_rules():
    job = JobRequest.model_validate({"op": "beauty", "image_id": "a" * 64})
    assert job.intensity == 1.0 and job.priority is Priority.normal
    assert job.preview.progressive is True and job.preview.stream_steps is False
    bad = [
        {"op": "beauty"},  # no image
        {"op": "generate"},  # no prompt
        {"op": "beauty", "image_id": "a" * 64, "prompt": "x"},
        {"op": "beauty", "image_id": "a" * 64, "intensity": 1.5},
        {"op": "beauty", "image_id": "../../etc/passwd"},
        {"op": "sharpen", "image_id": "a" * 64},
        {"op": "beauty", "image_id": "a" * 64, "surprise": 1},
        {"op": "beauty", "image_id": "a" * 64, "priority": "urgent"},
    ]
    for body in bad:
        with pytest.raises(ValidationError):
            JobRequest.model_validate(body)


def test_events_are_discriminated_by_type():
    adapter = TypeAdapter(JobEvent)
    event = adapter.validate_python(
        {
            "type": "progress",
            "job_id": "0" * 32,
            "seq": 3,
            "ts": "2026-01-01T00:00:00Z",
            "progress": 0.5,
            "stage": "skin_mask",
            "eta_s": 2.0,
        }
    )
    assert type(event).__name__ == "Progress"
    with pytest.raises(ValidationError):
        adapter.validate_python(
            {"type": "progress", "job_id": "0" * 32, "seq": 1, "ts": "2026-01-01T00:00:00"}
        )  # naive time, no progress
    message = TypeAdapter(ClientMessage).validate_json(
        '{"type": "cancel", "job_id": "' + "f" * 32 + '"}'
    )
    assert message.job_id == "f" * 32
