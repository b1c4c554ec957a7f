"""Speed of the retouch engine behind a real sidecar process, on a 24 MP 16-bit portrait.

For each op, measured from the job's `started` event to its first preview and to
`done` (the sidecar's own event timestamps, so the upload is not counted):
- cold: a new image (no stage cached), progressive (draft 1/8 first);
- cold, progressive off: the naive way, where the first thing shown is the final;
- stages cached: the same image again with another op or other params.

    .venv/bin/python -m bench.retouch            # 6000×4000, 3 runs per op
    .venv/bin/python -m bench.retouch --quick    # 600×400, 1 run (CI)
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from datetime import datetime
from pathlib import Path

import aiohttp
import cv2
import numpy as np

from .client import Events, upload
from .report import arguments, machine, median, publish
from .sidecar import Sidecar

OPS = ("beauty", "dodge_burn", "volume", "color")


def portrait16(width: int, height: int, closeup: bool = False) -> np.ndarray:
    from skimage import data

    face = data.astronaut().astype(np.float32) * 257.0
    if closeup:  # the head fills the frame: skin in most tiles, the slow case
        face = face[30:250, 90:420]
    big = cv2.resize(face, (width, height), interpolation=cv2.INTER_CUBIC)
    noise = np.random.default_rng(0).normal(0, 64, big.shape).astype(np.float32)
    return np.clip(big + noise, 0, 65535).astype(np.uint16)


def _ts(event: dict) -> float:
    return datetime.fromisoformat(event["ts"]).timestamp()


async def timed_job(session, sidecar: Sidecar, events: Events, body: dict) -> dict:
    """Seconds from `started` to the first preview and to `done`."""
    async with session.post(f"{sidecar.url}/v1/jobs", json=body, headers=sidecar.auth) as r:
        assert r.status == 202, await r.text()
        job_id = (await r.json())["job_id"]
    await asyncio.wait_for(events.expect(job_id, "done"), 600)
    mine = [e for _, e in events.arrivals if e.get("job_id") == job_id]
    started = next(_ts(e) for e in mine if e["type"] == "started")
    first = next(e for e in mine if e["type"] == "preview")
    done = next(_ts(e) for e in mine if e["type"] == "done")
    return {"first": _ts(first) - started, "level": first["level"], "done": done - started}


async def run(args) -> tuple[list[list], dict]:
    width, height = (600, 400) if args.quick else (6000, 4000)
    runs = args.runs or (1 if args.quick else 3)
    base = portrait16(width, height)
    times: dict[tuple[str, str], list[dict]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-retouch-") as tmp:
        with Sidecar(Path(tmp)) as sidecar:
            async with aiohttp.ClientSession() as session, Events(session, sidecar) as events:
                # the sidecar is already running when a retoucher works: warm its models
                warm_id = await upload(session, sidecar, base[:256, :256].copy())
                await timed_job(session, sidecar, events, {"op": "beauty", "image_id": warm_id})
                variant = 0
                for _ in range(runs):
                    for op in OPS:
                        for mode in ("cold", "cold, progressive off"):
                            variant += 1
                            pixels = base.copy()
                            pixels[-1, -1, 0] = variant  # a new image: nothing cached
                            image_id = await upload(session, sidecar, pixels)
                            body = {"op": op, "image_id": image_id}
                            if mode != "cold":
                                body["preview"] = {"progressive": False}
                            times.setdefault((op, mode), []).append(
                                await timed_job(session, sidecar, events, body)
                            )
                            if mode == "cold":
                                # the same image again, another op: its stages are cached
                                other = OPS[(OPS.index(op) + 1) % len(OPS)]
                                body = {"op": other, "image_id": image_id}
                                times.setdefault((other, "stages cached"), []).append(
                                    await timed_job(session, sidecar, events, body)
                                )
                # worst case for the final level: a close-up, skin in most tiles
                close = portrait16(width, height, closeup=True)
                for op in ("beauty", "color"):
                    for _ in range(runs):
                        variant += 1
                        pixels = close.copy()
                        pixels[-1, -1, 0] = variant
                        image_id = await upload(session, sidecar, pixels)
                        body = {"op": op, "image_id": image_id}
                        times.setdefault((op, "cold, close-up"), []).append(
                            await timed_job(session, sidecar, events, body)
                        )
    rows = []
    for op in OPS:
        for mode in ("cold", "stages cached", "cold, progressive off", "cold, close-up"):
            got = times.get((op, mode))
            if not got:
                continue
            rows.append(
                [
                    op,
                    mode,
                    f"{median([g['first'] for g in got]) * 1000:.0f} ms ({got[0]['level']})",
                    f"{median([g['done'] for g in got]):.2f} s",
                ]
            )
    cold = median([g["first"] for op in OPS for g in times[(op, "cold")]])
    naive = median([g["first"] for op in OPS for g in times[(op, "cold, progressive off")]])
    meta = {
        "machine": machine(),
        "runs": runs,
        "input": f"{width}x{height} RGB 16-bit portrait (sample portrait upscaled, noise added),"
        " sidecar in its own process, times from its own event timestamps",
        "target": "first preview <= 500 ms cold and <= 150 ms with stages cached;"
        " full result <= 8 s cold (24 MP)",
        "first_preview_gain": f"progressive {cold * 1000:.0f} ms vs naive {naive * 1000:.0f} ms"
        f" ({naive / cold:.0f}x sooner), medians over all ops",
    }
    return rows, meta


def main(argv: list[str] | None = None) -> int:
    args = arguments(__doc__, "small image, one run (CI)", argv)
    rows, meta = asyncio.run(run(args))
    publish(
        args,
        "retouch",
        "Retouch engine: first preview and full result",
        ["op", "case", "first preview (level)", "done"],
        rows,
        meta,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
