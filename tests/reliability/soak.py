"""The soak run behind scripts/soak: a sidecar of its own on 127.0.0.1, clients that
keep submitting, cancelling and starring jobs for a bounded time (or job count),
one WebSocket watching every event. It reports jobs/s, event latency (the event's
timestamp in the sidecar to its arrival here) at p50/p99, the sidecar's RSS over
time, and whether every job ended exactly once. Exit code 1 if any did not."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import aiohttp

sys.path[:0] = [str(Path(__file__).parent), str(Path(__file__).parents[1])]

from live_server import SidecarProcess  # noqa: E402
from load import Watch, one_client, percentile, upload_noise  # noqa: E402

MAX_SECONDS = 3600
MAX_CLIENTS = 64


async def soak(sidecar: SidecarProcess, seconds: float, clients: int, max_jobs: int) -> dict:
    watch = Watch()
    rss: list[tuple[float, float]] = []
    job_ids: list[str] = []
    requests: Counter = Counter()
    auth = {"Authorization": f"Bearer {sidecar.token}"}
    connector = aiohttp.TCPConnector(limit=clients + 4)
    async with aiohttp.ClientSession(connector=connector) as session:
        follower = asyncio.create_task(watch.follow(session, sidecar.url, sidecar.token))
        await asyncio.wait_for(watch.connected.wait(), 10)
        image_id = await upload_noise(session, sidecar.url, auth)
        started = time.monotonic()
        deadline = started + seconds

        async def client(n: int) -> None:
            """Rounds of 5 jobs, each round after the last one's jobs ended: a steady
            load the worker keeps up with, not a backlog that only grows."""
            rng = random.Random(n)
            round_ = 0
            while time.monotonic() < deadline and len(job_ids) < max_jobs:
                mine: list[str] = []
                tag = f"soak-{n}-{round_}"
                requests.update(
                    await one_client(session, sidecar.url, auth, image_id, 5, rng, tag, mine)
                )
                job_ids.extend(mine)
                with contextlib.suppress(AssertionError):  # never ending: counted lost below
                    await watch.until_ended(mine)
                round_ += 1

        async def sample() -> None:
            while True:
                rss.append((time.monotonic() - started, sidecar.rss_mb(), len(watch.ends)))
                await asyncio.sleep(1.0)  # the sampling period: RSS and ends over time

        sampler = asyncio.create_task(sample())
        await asyncio.gather(*(client(n) for n in range(clients)))
        submitted_s = time.monotonic() - started
        with contextlib.suppress(AssertionError):  # what has not ended counts as lost
            await watch.until_ended(job_ids, timeout=120)
        elapsed = time.monotonic() - started
        rss.append((elapsed, sidecar.rss_mb(), len(watch.ends)))
        sampler.cancel()
        follower.cancel()
    ends = [watch.ends.get(j, []) for j in job_ids]
    outcomes = Counter(e[0] if len(e) == 1 else "lost or doubled" for e in ends)
    return {
        "seconds": round(elapsed, 2),
        "submitting_s": round(submitted_s, 2),
        "clients": clients,
        "jobs": len(job_ids),
        "jobs_per_s": round(len(job_ids) / elapsed, 1) if elapsed else 0.0,
        "outcomes": dict(outcomes),
        "lost": outcomes.get("lost or doubled", 0),
        "requests": sum(requests.values()),
        "events": watch.events,
        "event_latency_ms": {
            "p50": round(percentile(watch.latencies_ms, 50), 2),
            "p99": round(percentile(watch.latencies_ms, 99), 2),
            "max": round(max(watch.latencies_ms, default=float("nan")), 2),
        },
        "data_mb": round(_folder_mb(sidecar.root / "data"), 1),
        "rss_mb": [[round(t, 1), round(mb, 1)] for t, mb, _ in rss],
        "jobs_per_s_over_time": _rates(rss),
    }


def _folder_mb(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 1e6


def _rates(samples: list[tuple[float, float, int]]) -> list[list[float]]:
    """[t, jobs/s] over tenths of the run: a throughput that sinks shows here."""
    step = max(1, len(samples) // 10)
    picked = samples[::step]
    return [
        [round(b[0], 1), round((b[2] - a[2]) / (b[0] - a[0]), 1)]
        for a, b in zip(picked, picked[1:], strict=False)
        if b[0] > a[0]
    ]


def report(figures: dict) -> str:
    rss = figures["rss_mb"]
    rates = figures["jobs_per_s_over_time"]
    step = max(1, len(rss) // 10)
    lines = [
        f"soak: {figures['jobs']} jobs from {figures['clients']} clients in "
        f"{figures['seconds']} s: {figures['jobs_per_s']} jobs/s "
        f"({figures['requests']} requests, {figures['events']} events)",
        f"outcomes: {figures['outcomes']}; lost or doubled: {figures['lost']}; "
        f"data folder {figures['data_mb']} MB",
        "event latency: p50 {p50} ms, p99 {p99} ms, max {max} ms".format(
            **figures["event_latency_ms"]
        ),
        "RSS over time (s: MB): "
        + ", ".join(f"{t:g}: {mb:g}" for t, mb in [*rss[::step], rss[-1]][:12]),
        "jobs/s over time (s: jobs/s): " + ", ".join(f"{t:g}: {r:g}" for t, r in rates),
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/soak", description=__doc__)
    parser.add_argument("--seconds", type=float, default=60.0, help="how long to submit")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--max-jobs", type=int, default=100_000, help="stop submitting here")
    parser.add_argument("--quick", action="store_true", help="3 s, 4 clients (for CI)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    if args.quick:
        args.seconds, args.clients = 3.0, 4
    if not 0 < args.seconds <= MAX_SECONDS or not 0 < args.clients <= MAX_CLIENTS:
        parser.error(f"--seconds 0..{MAX_SECONDS}, --clients 1..{MAX_CLIENTS}")
    with tempfile.TemporaryDirectory(prefix="soak-") as root:
        sidecar = SidecarProcess(Path(root), "--engine", "synthetic", "--log-level", "WARNING")
        with sidecar:  # its own folders, 127.0.0.1 only (the sidecar binds nothing else)
            figures = asyncio.run(soak(sidecar, args.seconds, args.clients, args.max_jobs))
            alive = sidecar.proc is not None and sidecar.proc.poll() is None
    print(report(figures))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1) + "\n", encoding="utf-8")
    return 0 if figures["lost"] == 0 and alive else 1


if __name__ == "__main__":
    sys.exit(main())
