"""The job queue and its event stream, against a real sidecar process (synthetic engine).

Measured side by side in one run:
- reprioritisation: how long after an `active` job is submitted (or a waiting job is
  PATCHed to `active`) it starts, while a `normal` job is running, in ms and in steps of
  the running job; against a `hero`, which waits for the running job to finish (what a
  queue without pre-emption gives every urgent job);
- event throughput: many short jobs while 20 WebSocket clients listen;
- memory: the sidecar's peak RSS growth while one job makes 1,000 previews, with and
  without a client that never reads its socket;
- a storm of random submits, cancels and reprioritisations: every job ends once.

Figure 9 (bench/queue.py) measures the same pre-emption with the real engine against
the naive FIFO; this table is the queue's own, on the synthetic engine.
"""

from __future__ import annotations

import asyncio
import base64
import os
import random
import socket
import statistics
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np

from sidecar.client import SidecarClient, SidecarError
from sidecar.schema import TERMINAL_STATES

from .events import EventLog
from .jobs import synthetic_job, wait_state
from .report import Detail, Options, Outcome, machine, median
from .sidecar import Sidecar


def stalled_websocket(port: int, token: str) -> socket.socket:
    """Completes the WebSocket handshake, then never reads again (a client the typed
    client cannot be: it always reads)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        f"GET /v1/ws?token={token} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)
    if not head.startswith(b"HTTP/1.1 101"):
        raise RuntimeError(f"WebSocket handshake refused: {head[:40]!r}")
    return sock


# -- reprioritisation ----------------------------------------------------------------
async def urgent_latency(client: SidecarClient, image_id, how: str, step_ms: int, rng) -> float:
    """Seconds from the request to the urgent job's `started` event, while a normal job
    of 20 steps is part-way through."""
    async with EventLog(client) as events:
        running = await synthetic_job(client, image_id, steps=20, step_ms=step_ms)
        await wait_state(client, running, {"running"})
        await asyncio.sleep(rng.uniform(0.1, 0.5) * 20 * step_ms / 1000)
        if how == "patch":
            waiting = await synthetic_job(client, image_id, steps=1, step_ms=1)
            started = events.expect(waiting, "started")
            t0 = time.perf_counter()
            await client.reprioritise(waiting, "active")
        else:
            t0 = time.perf_counter()
            waiting = await synthetic_job(client, image_id, how, steps=1, step_ms=1)
            started = events.expect(waiting, "started")
        latency = await asyncio.wait_for(started, 60) - t0
        await wait_state(client, running)
        await wait_state(client, waiting)
    return latency


# -- event throughput ---------------------------------------------------------------
async def throughput(client: SidecarClient, image_id, clients: int, jobs: int) -> dict:
    listeners = [EventLog(client) for _ in range(clients)]
    for listener in listeners:
        await listener.__aenter__()
    try:
        t0 = time.perf_counter()
        ids = [
            await synthetic_job(client, image_id, steps=5, step_ms=0, preview_side=64)
            for _ in range(jobs)
        ]
        for job_id in ids:
            await wait_state(client, job_id)
        last = [listener.expect(ids[-1], "done") for listener in listeners]
        await asyncio.wait_for(asyncio.gather(*last), 60)
        elapsed = time.perf_counter() - t0
        mine = set(ids)
        counts = [
            sum(m.event.job_id in mine and m.event.type != "preview" for m in x.arrivals)
            for x in listeners
        ]
        state_kinds = {"queued", "started", "stage", "done"}
        states = [
            sum(m.event.job_id in mine and m.event.type in state_kinds for m in x.arrivals)
            for x in listeners
        ]
        frames = [x.frames for x in listeners]
    finally:
        for listener in listeners:
            await listener.__aexit__()
    return {
        "elapsed": elapsed,
        "events_per_client": statistics.median(counts),
        "frames_per_client": statistics.median(frames),
        "state_events_complete": len(set(states)) == 1 and states[0] == jobs * 4,
        "total_rate": (sum(counts) + sum(frames)) / elapsed,
    }


# -- memory with a stalled client ---------------------------------------------------
async def peak_growth(
    client: SidecarClient, sidecar: Sidecar, image_id, previews: int, stalled: bool
) -> dict:
    stall = (
        await asyncio.to_thread(stalled_websocket, sidecar.port, sidecar.token) if stalled else None
    )
    peak, stop = [0.0], threading.Event()
    base = sidecar.rss_mb()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], sidecar.rss_mb())
            time.sleep(0.005)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        async with EventLog(client) as live:
            job_id = await synthetic_job(
                client,
                image_id,
                steps=previews,
                step_ms=0,
                preview_side=384,
                soften=False,  # full-detail previews: ~100 KB each
            )
            await asyncio.wait_for(live.expect(job_id, "done"), 300)
            frames, frame_bytes = live.frames, live.frame_bytes
    finally:
        stop.set()
        sampler.join()
        if stall is not None:
            stall.close()
    return {"growth": peak[0] - base, "live_frames": frames, "mb": frame_bytes / 1e6}


# -- storm ----------------------------------------------------------------------------
async def storm(client: SidecarClient, image_id, jobs: int, seed: int) -> dict:
    rng = random.Random(seed)
    priorities = ["active", "hero", "normal", "background"]
    async with EventLog(client) as events:
        t0 = time.perf_counter()
        ids: list[str] = []
        for n in range(jobs):
            params = (  # `n` keeps every request new (no result-cache answers)
                {"steps": 8, "step_ms": 5, "n": n}
                if rng.random() < 0.1
                else {"steps": rng.randint(1, 3), "step_ms": rng.randint(0, 3), "n": n}
            )
            ids.append(await synthetic_job(client, image_id, rng.choice(priorities), **params))
            if rng.random() < 0.05:
                await asyncio.sleep(0.03)
            for _ in range(rng.choice([0, 0, 1, 2])):
                job_id = rng.choice(ids[-20:])
                try:  # 200 or 202; 409 when the job has ended
                    if rng.random() < 0.5:
                        await client.cancel(job_id)
                    else:
                        await client.reprioritise(job_id, rng.choice(priorities))
                except SidecarError as exc:
                    assert exc.status == 409, exc
        submitted = time.perf_counter() - t0
        final = {j: (await wait_state(client, j)).state.value for j in ids}
        elapsed = time.perf_counter() - t0
        await asyncio.sleep(0.2)
        ends = Counter()
        for message in events.arrivals:
            if message.event.type in TERMINAL_STATES:
                ends[message.event.job_id] += 1
    counts = Counter(final.values())
    return {
        "jobs": jobs,
        "counts": dict(counts),
        "exactly_once": all(ends[j] == 1 for j in ids) and sum(ends.values()) == jobs,
        "add_up": sum(counts.values()) == jobs,
        "submitted_s": submitted,
        "elapsed_s": elapsed,
    }


async def run(opts: Options) -> Outcome:
    quick = opts.quick
    runs = opts.n(20, 3)
    step_ms = 20 if quick else 50
    rng = random.Random(7)
    pixels = np.random.default_rng(0).integers(0, 256, (512, 768, 3), dtype=np.uint8)
    rows: list[list] = []
    with tempfile.TemporaryDirectory(prefix="bench-scheduler-") as tmp:
        with Sidecar(Path(tmp), "--engine", "synthetic") as sidecar:
            async with SidecarClient.open(sidecar.port, sidecar.token) as client:
                image_id = (await client.upload_pixels(pixels[:96, :128].copy())).image_id
                latency: dict[str, list[float]] = {"active": [], "patch": [], "hero": []}
                hero_runs = max(runs // 2, 2)
                for i in range(runs):  # interleaved, so all three meet the same machine state
                    for how in ("active", "patch", "hero"):
                        if how == "hero" and i >= hero_runs:
                            continue
                        latency[how].append(
                            await urgent_latency(client, image_id, how, step_ms, rng)
                        )
                labels = {
                    "active": "submit `active` while a normal job runs",
                    "patch": "PATCH a waiting job to `active`",
                    "hero": "submit `hero` (no pre-emption: waits for the running job)",
                }
                for how, values in latency.items():
                    ms = median(values) * 1000
                    rows.append(
                        [
                            labels[how],
                            f"{ms:.0f} ms",
                            f"{ms / step_ms:.2f} steps",
                            f"max {max(values) * 1000:.0f} ms over {len(values)} runs",
                        ]
                    )
                ratio = median(latency["hero"]) / median(latency["active"])
                rows.append(["hero ÷ active (median)", f"{ratio:.1f}×", "", "pre-emption's gain"])

                clients = 20
                jobs = 20 if quick else 200
                tp = await throughput(client, image_id, clients, jobs)
                rows.append(
                    [
                        f"events to {clients} WebSocket clients ({jobs} jobs of 5 steps)",
                        f"{tp['total_rate']:.0f} msgs/s",
                        f"{tp['events_per_client']:.0f} JSON + {tp['frames_per_client']:.0f} "
                        "frames per client",
                        "every state event reached every client"
                        if tp["state_events_complete"]
                        else "STATE EVENTS MISSING",
                    ]
                )

                big = (await client.upload_pixels(pixels)).image_id
                previews = 100 if quick else 1000
                await peak_growth(client, sidecar, big, 20, stalled=False)  # warm-up
                free = await peak_growth(client, sidecar, big, previews, stalled=False)
                held = await peak_growth(client, sidecar, big, previews, stalled=True)
                for label, m in (("no stalled client", free), ("one stalled client", held)):
                    rows.append(
                        [
                            f"peak RSS growth, {previews} previews (384 px), {label}",
                            f"{m['growth']:.1f} MB",
                            f"{m['live_frames']} frames to the live client",
                            f"an unbounded per-client queue would hold up to {m['mb']:.0f} MB",
                        ]
                    )

                s = await storm(client, image_id, 100 if quick else 1000, seed=1234)
                rows.append(
                    [
                        f"storm: {s['jobs']} jobs, random cancel/reprioritise",
                        f"{s['elapsed_s']:.1f} s",
                        ", ".join(f"{k} {v}" for k, v in sorted(s["counts"].items())),
                        "each ended exactly once, counts add up"
                        if s["exactly_once"] and s["add_up"]
                        else "MISMATCH",
                    ]
                )
    meta = {
        "machine": machine(),
        "runs": runs,
        "input": f"synthetic engine ({step_ms} ms steps for latency), sidecar in its own process, "
        "clients over loopback",
        "target": "an active job starts within one step of the running job (median)",
    }
    ok = tp["state_events_complete"] and s["exactly_once"] and s["add_up"]
    header = ["what", "median", "also", "note"]
    detail = Detail(
        "scheduler", "Job queue and event stream", header, rows, {**meta, "checks_passed": ok}
    )
    return Outcome(details=[detail])
