"""The rooms of docs/design.md stay one-way: the server side never imports torch."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize(
    "room",
    [
        "sidecar.api",
        "sidecar.jobs",
        "sidecar.imaging",
        "sidecar.schema",
        "sidecar.cache",
        "sidecar.cli",
        "sidecar.stages.face_geometry",
        "sidecar.stages.face_mesh",
        "sidecar.stages.skin",
        "sidecar.engines.retouch",
    ],
)
def test_room_does_not_import_torch(room):
    code = (
        "import importlib, importlib.util, sys\n"
        f"if importlib.util.find_spec({room!r}) is None:\n"
        "    print('absent'); sys.exit(0)\n"
        f"importlib.import_module({room!r})\n"
        "print('torch' in sys.modules, 'diffusers' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    ).stdout.strip()
    assert out in ("False False", "absent"), f"{room} imports torch/diffusers"


def test_schema_and_imaging_do_not_import_aiohttp():
    code = (
        "import sys, sidecar.schema, sidecar.imaging, sidecar.cache\n"
        "print('aiohttp' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    ).stdout.strip()
    assert out == "False"
