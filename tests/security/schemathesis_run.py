"""Runs schemathesis (its CLI, every check) against a live sidecar and reads its report."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

# Every check runs on every operation except where OpenAPI cannot say what the API
# does, each named with its reason:
CONFIG = """
# 503 engine_unavailable is the contract's answer for `generate` without a model.
[checks.not_a_server_error]
expected-statuses = ["2xx", "3xx", "4xx", "503"]

# A plain GET is not a WebSocket handshake: 400 is the right answer to it.
[[operations]]
include-name = "GET /v1/ws"
checks.positive_data_acceptance.enabled = false

# The X-Image-* headers are required for raw pixels only and ignored for encoded
# files; OpenAPI cannot tie a header to a content type.
[[operations]]
include-name = "POST /v1/images"
checks.positive_data_acceptance.enabled = false
checks.negative_data_rejection.enabled = false

# Whether an absolute path names an image file the sidecar may read is the file
# system's to say (404 file_not_found, 422 file_unreadable, invalid_image), not the
# schema's.
[[operations]]
include-name = "POST /v1/images/file"
checks.positive_data_acceptance.enabled = false

# A cancelled job stays readable (state "cancelled"): DELETE cancels, it does not erase.
[[operations]]
include-path-regex = "^/v1/jobs/[{]job_id[}]"
checks.use_after_free.enabled = false

# image_id vs prompt depends on the op, and each op has its own params: the engine
# refuses what the JSON Schema alone lets through (422, never a queued failure).
[[operations]]
include-name = "POST /v1/jobs"
checks.positive_data_acceptance.enabled = false
"""


def run_schemathesis(
    url: str, token: str, workdir: Path, *, max_examples: int, seed: int | None, timeout: int
) -> dict:
    """Run every phase against `url`; returns the JSON report (exit code included)
    and the console output under "output"."""
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "schemathesis.toml"
    config.write_text(CONFIG, encoding="utf-8")
    command = [
        str(Path(sys.executable).with_name("schemathesis")),
        "--config-file",
        str(config),
        "--no-color",
        "run",
        f"{url}/v1/openapi.json",
        "--header",
        f"Authorization: Bearer {token}",
        "--max-examples",
        str(max_examples),
        # one worker: hypothesis describing lambdas from two threads at once trips a
        # CPython 3.11 ast bug ("AST constructor recursion depth mismatch")
        "--workers",
        "1",
        "--generation-database",
        "none",
        "--report",
        "json",
        "--report-dir",
        str(workdir / "report"),
        "--request-timeout",
        "20",
    ]
    if seed is not None:
        command += ["--seed", str(seed)]
    done = subprocess.run(
        command, cwd=workdir, capture_output=True, text=True, timeout=timeout, check=False
    )
    (report_path,) = (workdir / "report").glob("json-*.json")
    report = json.loads(report_path.read_text(encoding="utf-8"))
    report["output"] = done.stdout[-20000:] + done.stderr[-5000:]
    report["returncode"] = done.returncode
    return report
