"""A load driver for a live sidecar: N clients, each submitting jobs and now and then
cancelling or starring one of its own, while one WebSocket watches every event.
Used by the load test and by scripts/soak."""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime

import aiohttp
import numpy as np
from helpers import Changes

from sidecar.schema import TERMINAL_STATES

PRIORITIES = ["active", "hero", "normal", "background"]


@dataclass
class Watch:
    """Every event the WebSocket delivered: terminal events per job, and how long each
    event took from the sidecar's timestamp to this client."""

    ends: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    latencies_ms: list[float] = field(default_factory=list)
    events: int = 0
    closed: str | None = None
    connected: asyncio.Event = field(default_factory=asyncio.Event)
    changes: Changes = field(default_factory=Changes)  # noted at each end and the close

    async def follow(self, session: aiohttp.ClientSession, url: str, token: str) -> None:
        async with session.ws_connect(f"{url}/v1/ws?token={token}", max_msg_size=0) as ws:
            self.connected.set()
            async for message in ws:
                if message.type is aiohttp.WSMsgType.BINARY:
                    continue
                if message.type is not aiohttp.WSMsgType.TEXT:
                    break
                arrived = datetime.now(UTC)
                event = json.loads(message.data)
                if "seq" not in event:
                    continue
                self.events += 1
                sent = datetime.fromisoformat(event["ts"].replace("Z", "+00:00"))
                self.latencies_ms.append((arrived - sent).total_seconds() * 1000)
                if event["type"] in TERMINAL_STATES:
                    self.ends[event["job_id"]].append(event["type"])
                    self.changes.note()
            self.closed = f"closed: {ws.close_code}"
            self.changes.note()

    def ended(self, job_ids) -> bool:
        return all(self.ends.get(j) for j in job_ids)

    async def until_ended(self, job_ids, timeout: float = 120.0) -> bool:
        """Until every job in `job_ids` has had its terminal event, or the socket closed
        (then False); AssertionError after `timeout` seconds."""
        await self.changes.until(
            lambda: self.ended(job_ids) or self.closed, timeout, "the jobs' ends"
        )
        return self.ended(job_ids)


@dataclass
class LoadResult:
    job_ids: list[str]
    requests: Counter
    seconds: float

    @property
    def jobs_per_second(self) -> float:
        return len(self.job_ids) / self.seconds if self.seconds else 0.0


async def upload_noise(session, url: str, auth: dict, seed: int = 3) -> str:
    pixels = np.random.default_rng(seed).integers(0, 256, (24, 32, 3), dtype=np.uint8)
    headers = {
        **auth,
        "Content-Type": "application/octet-stream",
        "X-Image-Width": "32",
        "X-Image-Height": "24",
        "X-Image-Channels": "3",
        "X-Image-Depth": "8",
    }
    async with session.post(f"{url}/v1/images", data=pixels.tobytes(), headers=headers) as r:
        assert r.status in (200, 201), await r.text()
        return (await r.json())["image_id"]


async def one_client(
    session, url: str, auth: dict, image_id: str, jobs: int, rng: random.Random, tag: str, out
) -> Counter:
    """Submit `jobs` jobs; between submits cancel or star one of this client's own."""
    requests: Counter = Counter()
    mine: list[str] = []
    for n in range(jobs):
        long = rng.random() < 0.1  # now and then one long enough to be cancelled mid-run
        params = {"steps": 6 if long else rng.randint(1, 3), "step_ms": 5 if long else 1}
        body = {
            "op": "beauty",
            "image_id": image_id,
            "priority": rng.choice(PRIORITIES),
            "params": {**params, "tag": tag, "n": n},  # unique: never a cached answer
        }
        async with session.post(f"{url}/v1/jobs", json=body, headers=auth) as r:
            requests[f"submit {r.status}"] += 1
            assert r.status == 202, await r.text()
            job_id = (await r.json())["job_id"]
        mine.append(job_id)
        out.append(job_id)
        roll = rng.random()
        if roll < 0.25:
            target = rng.choice(mine[-10:])
            async with session.delete(f"{url}/v1/jobs/{target}", headers=auth) as r:
                requests[f"cancel {r.status}"] += 1
                assert r.status in (200, 202, 409), await r.text()
        elif roll < 0.45:
            target = rng.choice(mine[-10:])
            star = {"priority": "hero"}
            async with session.patch(f"{url}/v1/jobs/{target}", json=star, headers=auth) as r:
                requests[f"star {r.status}"] += 1
                assert r.status in (200, 409), await r.text()
    return requests


async def run_load(
    url: str, token: str, *, clients: int, jobs_per_client: int, seed: int, watch: Watch
) -> LoadResult:
    auth = {"Authorization": f"Bearer {token}"}
    connector = aiohttp.TCPConnector(limit=clients + 4)
    async with aiohttp.ClientSession(connector=connector) as session:
        image_id = await upload_noise(session, url, auth)
        job_ids: list[str] = []
        started = time.perf_counter()
        counts = await asyncio.gather(
            *(
                one_client(
                    session,
                    url,
                    auth,
                    image_id,
                    jobs_per_client,
                    random.Random(seed * 1000 + n),
                    f"{seed}-{n}",
                    job_ids,
                )
                for n in range(clients)
            )
        )
        if not await watch.until_ended(job_ids):
            raise AssertionError(f"the watching socket was {watch.closed}")
        seconds = time.perf_counter() - started
    return LoadResult(job_ids, sum(counts, Counter()), seconds)


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")
