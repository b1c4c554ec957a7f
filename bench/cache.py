"""The caches, against a real sidecar process, on a 24 MP 16-bit portrait (beauty):

- a cold Apply (new pixels): POST /v1/jobs to its `done` event;
- the same Apply again (same pixels, op, params): answered from the result cache;
- an Apply after background precompute of the image has finished, against cold, at
  the default params (made ahead) and at other params (only the stages were ready);
- the same cold Apply after a restart of the sidecar (stages from the disk tier).

    .venv/bin/python -m bench.cache            # 6000×4000, 3 runs
    .venv/bin/python -m bench.cache --quick    # 600×400, 1 run (CI)
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

from .client import Events, upload
from .report import arguments, machine, median, publish
from .retouch import portrait16
from .sidecar import Sidecar


async def apply(
    session, sidecar: Sidecar, events: Events, image_id: str, params: dict | None = None
) -> tuple[float, bool]:
    """Seconds from POST to done (as the client sees it), and whether it was cached."""
    body = {"op": "beauty", "image_id": image_id, "document_id": image_id[:16]}
    if params:
        body["params"] = params
    started = time.perf_counter()
    async with session.post(f"{sidecar.url}/v1/jobs", json=body, headers=sidecar.auth) as r:
        created = await r.json()
    if created["cached"]:
        return time.perf_counter() - started, True
    done = await asyncio.wait_for(events.expect(created["job_id"], "done"), 600)
    return done - started, False


async def precompute(session, sidecar: Sidecar, events: Events, image_id: str) -> None:
    body = {"image_id": image_id, "document_id": image_id[:16], "ops": ["beauty"]}
    async with session.post(f"{sidecar.url}/v1/precompute", json=body, headers=sidecar.auth) as r:
        jobs = (await r.json())["job_ids"]
    for job_id in jobs:
        await asyncio.wait_for(events.expect(job_id, "done"), 600)


async def measure(root: Path, width: int, height: int, runs: int) -> dict[str, list[float]]:
    base = portrait16(width, height)
    times: dict[str, list[float]] = {}
    variants = []
    for run in range(runs * 2):
        pixels = base.copy()
        pixels[-1, -1, 0] = run  # a new image each time: nothing cached
        variants.append(pixels)
    with Sidecar(root) as sidecar:
        async with aiohttp.ClientSession() as session, Events(session, sidecar) as events:
            warm = await upload(session, sidecar, base[:256, :256].copy())
            await apply(session, sidecar, events, warm)  # the models load once
            ids = []
            for run in range(runs):
                cold_id = await upload(session, sidecar, variants[run])
                ids.append(cold_id)
                times.setdefault("cold", []).append(
                    (await apply(session, sidecar, events, cold_id))[0]
                )
                again, cached = await apply(session, sidecar, events, cold_id)
                assert cached, "the repeat was not answered from the cache"
                times.setdefault("again", []).append(again)
                ready_id = await upload(session, sidecar, variants[runs + run])
                await precompute(session, sidecar, events, ready_id)
                times.setdefault("precomputed", []).append(
                    (await apply(session, sidecar, events, ready_id))[0]
                )
                times.setdefault("precomputed, other params", []).append(
                    (await apply(session, sidecar, events, ready_id, {"strength": 0.6}))[0]
                )
    with Sidecar(root) as sidecar:  # a restart: stages come from the disk tier
        async with aiohttp.ClientSession() as session, Events(session, sidecar) as events:
            warm = await upload(session, sidecar, base[:200, :200].copy())
            await apply(session, sidecar, events, warm)
            for image_id in ids:
                body = {"op": "beauty", "image_id": image_id, "params": {"strength": 0.85}}
                started = time.perf_counter()
                url = f"{sidecar.url}/v1/jobs"
                async with session.post(url, json=body, headers=sidecar.auth) as r:
                    job_id = (await r.json())["job_id"]
                done = await asyncio.wait_for(events.expect(job_id, "done"), 600)
                times.setdefault("restarted", []).append(done - started)
    return times


def main(argv: list[str] | None = None) -> int:
    args = arguments(__doc__, "600×400, one run (CI)", argv)
    width, height = (600, 400) if args.quick else (6000, 4000)
    runs = args.runs or (1 if args.quick else 3)
    with tempfile.TemporaryDirectory(prefix="bench-cache-") as tmp:
        times = asyncio.run(measure(Path(tmp), width, height, runs))
    cold = median(times["cold"])
    rows = []
    for key, label in (
        ("cold", "first Apply, nothing cached"),
        ("again", "the same Apply again (result cache)"),
        ("precomputed", "first Apply after background precompute (default params)"),
        ("precomputed, other params", "after precompute, other params (stages ready)"),
        ("restarted", "after a restart, other params (stages from disk)"),
    ):
        value = median(times[key])
        rows.append([label, f"{value * 1000:.0f} ms", f"{value / cold:.2f}"])
    meta = {
        "machine": machine(),
        "runs": runs,
        "input": f"{width}x{height} RGB 16-bit portrait, beauty, sidecar in its own process;"
        " times from POST /v1/jobs to the done event, as a client sees them",
        "target": "the same Apply again <= 100 ms at 24 MP; after precompute / cold <= 0.35",
    }
    publish(
        args,
        "cache",
        "Caches: second Apply, precompute, restart",
        ["case", "time", "÷ cold"],
        rows,
        meta,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
