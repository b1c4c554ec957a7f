"""aiohttp belongs to two rooms: the server (sidecar/api) and the client
(sidecar/client). Every other module, the batch included, reaches the sidecar through
sidecar.client, and inside the client only the HTTP and WebSocket modules touch it."""

from __future__ import annotations

import ast
from pathlib import Path

import sidecar

ROOT = Path(sidecar.__file__).parent
AIOHTTP_ROOMS = ("api", "client")
CLIENT_ON_AIOHTTP = {"http.py", "websocket.py", "in_process.py"}


def _imports_aiohttp(path: Path) -> bool:
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names = [node.module or ""]
        else:
            continue
        if any(name == "aiohttp" or name.startswith("aiohttp.") for name in names):
            return True
    return False


def test_aiohttp_is_imported_only_in_api_and_client():
    importers = {
        path.relative_to(ROOT).as_posix() for path in ROOT.rglob("*.py") if _imports_aiohttp(path)
    }
    outside = {path for path in importers if path.split("/")[0] not in AIOHTTP_ROOMS}
    assert outside == set(), outside
    in_client = {path.split("/", 1)[1] for path in importers if path.startswith("client/")}
    assert in_client == CLIENT_ON_AIOHTTP
