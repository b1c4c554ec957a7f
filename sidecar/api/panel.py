"""The browser panel at /panel/: the same plugin/ code the Photoshop panel runs, with a
canvas-backed adapter and a sample portrait, so the product can be used and tested in
any browser. Static files only; they hold no secrets, so they need no token (the page
asks for it, as the Photoshop panel does).

plugin/ is CommonJS (what UXP and Node load). Browsers are given one script in which
each module is wrapped in a `define(name, function (require, module, exports) {…})`
call; browser/loader.js links them. Nothing is evaluated from strings.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from aiohttp import web

from .. import errors

routes = web.RouteTableDef()

PLUGIN_DIR = Path(__file__).resolve().parents[2] / "plugin"
SAMPLE_PORTRAIT = Path(__file__).resolve().parents[1] / "data" / "sample-portrait.jpg"
# Modules the browser never runs: the Photoshop side and its entry point.
HOST_ONLY = {"photoshop-adapter.js", "main.js"}
_ASSET_NAME = re.compile(r"^((browser|icons)/)?[a-z0-9][a-z0-9._-]*\.(css|png|svg)$")
_CONTENT_TYPES = {".css": "text/css", ".png": "image/png", ".svg": "image/svg+xml"}
_HEADERS = {
    "Cache-Control": "no-cache",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}


def _csp(request: web.Request) -> str:
    host = request.host  # already checked against 127.0.0.1/localhost:port
    return (
        "default-src 'none'; script-src 'self'; style-src 'self'; "
        f"img-src 'self' blob: data:; connect-src 'self' ws://{host}; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )


def _file(path: Path, content_type: str, request: web.Request) -> web.Response:
    try:
        body = path.read_bytes()
    except OSError:
        raise errors.NotFound("the browser panel's files are not installed here") from None
    headers = {**_HEADERS, "Content-Security-Policy": _csp(request)}
    return web.Response(body=body, content_type=content_type, headers=headers)


def bundle(plugin_dir: Path = PLUGIN_DIR) -> str:
    """Every module the browser panel needs, each wrapped for browser/loader.js."""
    names = sorted(
        p.relative_to(plugin_dir).as_posix()
        for p in [*plugin_dir.glob("*.js"), *plugin_dir.glob("browser/*.js")]
        if p.name not in HOST_ONLY and p.name != "loader.js"
    )
    parts = []
    for name in names:
        source = (plugin_dir / name).read_text(encoding="utf-8")
        parts.append(f"define({json.dumps(name)}, function (require, module, exports) {{\n")
        parts.append(f"{source}\n}});\n")
    parts.append('require("browser/start.js");\n')
    return "".join(parts)


@routes.get("/panel")
async def panel_root(request: web.Request) -> web.Response:
    raise web.HTTPFound("/panel/")


@routes.get("/panel/")
async def panel_page(request: web.Request) -> web.Response:
    return _file(PLUGIN_DIR / "browser" / "index.html", "text/html", request)


@routes.get("/panel/loader.js")
async def panel_loader(request: web.Request) -> web.Response:
    return _file(PLUGIN_DIR / "browser" / "loader.js", "text/javascript", request)


@routes.get("/panel/modules.js")
async def panel_modules(request: web.Request) -> web.Response:
    try:
        text = bundle()
    except OSError:
        raise errors.NotFound("the browser panel's files are not installed here") from None
    headers = {**_HEADERS, "Content-Security-Policy": _csp(request)}
    return web.Response(text=text, content_type="text/javascript", headers=headers)


@routes.get("/panel/sample-portrait.jpg")
async def panel_sample(request: web.Request) -> web.Response:
    return _file(SAMPLE_PORTRAIT, "image/jpeg", request)


@routes.get(r"/panel/{asset:((browser|icons)/)?[^/]+\.(css|png|svg)}")
async def panel_asset(request: web.Request) -> web.Response:
    name = request.match_info["asset"]
    if not _ASSET_NAME.match(name):
        raise errors.NotFound("no such panel file", details={"path": name[:80]})
    path = PLUGIN_DIR / name
    return _file(path, _CONTENT_TYPES[path.suffix], request)
