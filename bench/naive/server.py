"""The naive sidecar: an aiohttp app the benchmarks drive next to the product.

    POST /upload    {"width", "height", "channels", "depth", "pixels": base64} → {"key"}
    POST /apply     {"key", "op", "params", "intensity"} → the result's raw pixels, when
                    done (X-Cached, X-Started and X-Finished say how, and when it ran)
    POST /generate  {"prompt", "width", "height", "steps", "seed", "previews"} → SSE
    GET  /health

Images are kept as .npy files under their key; Applies run one at a time on one
worker thread, in arrival order (FIFO), with results in the pickle cache.

    python -m bench.naive.server --port 7500 --folder /tmp/naive [--model DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from aiohttp import web

from sidecar.engines.retouch import RetouchEngine

from .cache import PickleCache, image_key, result_key
from .retouch import apply_full, load_engine

FOLDER = web.AppKey("folder", Path)
CACHE = web.AppKey("cache", PickleCache)
ENGINE = web.AppKey("engine", RetouchEngine)
WORKER = web.AppKey("worker", ThreadPoolExecutor)
PIPE = web.AppKey("pipe", object)

routes = web.RouteTableDef()


@routes.get("/health")
async def health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


@routes.post("/upload")
async def upload(request: web.Request) -> web.Response:
    body = await request.json()
    dtype = np.uint8 if body["depth"] == 8 else np.dtype("<u2")
    shape = (body["height"], body["width"], body["channels"])
    pixels = np.frombuffer(base64.b64decode(body["pixels"]), dtype).reshape(shape)
    key = image_key(pixels)
    np.save(request.app[FOLDER] / "images" / f"{key}.npy", pixels)
    return web.json_response({"key": key})


def _apply(app: web.Application, body: dict) -> tuple[np.ndarray, bool, float, float]:
    started = time.time()
    op, params, intensity = body["op"], body.get("params", {}), body.get("intensity", 1.0)
    key = result_key(body["key"], op, params, intensity)
    result = app[CACHE].get(key)
    cached = result is not None
    if result is None:
        pixels = np.load(app[FOLDER] / "images" / f"{body['key']}.npy")
        result = apply_full(app[ENGINE], pixels, op, params, intensity)
        app[CACHE].put(key, result)
    return result, cached, started, time.time()


@routes.post("/apply")
async def apply(request: web.Request) -> web.Response:
    body = await request.json()
    loop = asyncio.get_running_loop()
    result, cached, started, finished = await loop.run_in_executor(
        request.app[WORKER], _apply, request.app, body
    )
    height, width, channels = result.shape
    headers = {
        "X-Image-Width": str(width),
        "X-Image-Height": str(height),
        "X-Image-Channels": str(channels),
        "X-Image-Depth": str(result.dtype.itemsize * 8),
        "X-Cached": "true" if cached else "false",
        "X-Started": f"{started:.6f}",
        "X-Finished": f"{finished:.6f}",
    }
    return web.Response(
        body=result.tobytes(), headers=headers, content_type="application/octet-stream"
    )


@routes.post("/generate")
async def generate(request: web.Request) -> web.StreamResponse:
    from .diffusion import generate as run_generate

    body = await request.json()
    loop = asyncio.get_running_loop()
    events: asyncio.Queue[dict] = asyncio.Queue()

    def send(event: dict) -> None:
        loop.call_soon_threadsafe(events.put_nowait, event)

    def run() -> None:
        try:
            run_generate(
                request.app[PIPE],
                send,
                prompt=body["prompt"],
                width=body["width"],
                height=body["height"],
                steps=body["steps"],
                seed=body.get("seed", 0),
                previews=body.get("previews", True),
            )
        except Exception as exc:  # the stream still ends
            send({"type": "done", "ts": time.time(), "error": repr(exc)})
            raise

    job = loop.run_in_executor(request.app[WORKER], run)
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    while True:
        event = await events.get()
        await response.write(f"data: {json.dumps(event)}\n\n".encode())
        if event["type"] == "done":
            break
    await job
    await response.write_eof()
    return response


def build_app(folder: Path, model: Path | None = None) -> web.Application:
    app = web.Application(client_max_size=4 * 1024**3)
    app[FOLDER] = folder
    (folder / "images").mkdir(parents=True, exist_ok=True)
    app[CACHE] = PickleCache(folder / "results")
    app[ENGINE] = load_engine()
    app[WORKER] = ThreadPoolExecutor(max_workers=1, thread_name_prefix="naive-worker")
    if model is not None:
        from .diffusion import load_pipeline

        app[PIPE] = load_pipeline(model)
    app.add_routes(routes)
    app.on_cleanup.append(_close)
    return app


async def _close(app: web.Application) -> None:
    app[WORKER].shutdown(wait=True, cancel_futures=True)
    app[ENGINE].close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="The naive sidecar (benchmark baseline).")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--folder", type=Path, required=True)
    parser.add_argument("--model", type=Path)
    args = parser.parse_args(argv)
    app = build_app(args.folder, args.model)
    web.run_app(app, host="127.0.0.1", port=args.port, print=None, access_log=None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
