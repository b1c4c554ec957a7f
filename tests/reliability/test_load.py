"""Many clients at once against a real sidecar process: a storm of submits, cancels and
stars. Every job ends in exactly one terminal state (on the event stream and on
disk), the queue drains, and the process's memory comes back to where it was."""

from __future__ import annotations

import asyncio
import sqlite3
import statistics

import aiohttp
import pytest
from fuzzing import tally
from helpers import async_wait_until
from live_server import SidecarProcess
from load import Watch, percentile, run_load

from sidecar.jobs.store import KEEP_FINISHED
from sidecar.schema import TERMINAL_STATES

RSS_TOLERANCE_MB = 30


async def settle(sidecar: SidecarProcess, seconds: float = 2.0) -> float:
    """Wait for an empty queue and a quiet moment; the median of a few RSS samples."""

    def drained() -> bool:  # the process's own count, polled
        return sidecar.http().request("GET", "/v1/health").json()["queue"] == {
            "queued": 0,
            "running": 0,
        }

    await async_wait_until(drained, 120, 0.1, "the queue drained")
    # what is measured: the memory of a sidecar left idle for `seconds`, sampled 5 times
    # 0.1 s apart (its allocator and caches settle on no signal)
    await asyncio.sleep(seconds)
    samples = []
    for _ in range(5):
        samples.append(sidecar.rss_mb())
        await asyncio.sleep(0.1)
    return statistics.median(samples)


def states_on_disk(sidecar: SidecarProcess, job_ids: list[str]) -> dict[str, str]:
    path = sidecar.root / "data" / "jobs.sqlite3"
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        rows = db.execute("SELECT job_id, state FROM jobs").fetchall()
    finally:
        db.close()
    wanted = set(job_ids)
    return {job_id: state for job_id, state in rows if job_id in wanted}


async def storm(
    sidecar: SidecarProcess, clients: int, jobs: int, warmup: int, quiet_s: float = 2.0
) -> dict:
    watch = Watch()
    async with aiohttp.ClientSession() as session:
        follower = asyncio.create_task(watch.follow(session, sidecar.url, sidecar.token))
        await asyncio.wait_for(watch.connected.wait(), 10)
        if warmup:  # fills the bounded histories (2,000 jobs), so the baseline is honest
            await run_load(
                sidecar.url, sidecar.token, clients=10, jobs_per_client=warmup, seed=1, watch=watch
            )
        baseline = await settle(sidecar, quiet_s)
        result = await run_load(
            sidecar.url, sidecar.token, clients=clients, jobs_per_client=jobs, seed=2, watch=watch
        )
        after = await settle(sidecar, quiet_s)
        follower.cancel()
    ids = result.job_ids
    assert len(ids) == len(set(ids)) == clients * jobs
    ends = {job_id: watch.ends[job_id] for job_id in ids}
    twice = {j: e for j, e in ends.items() if len(e) != 1}
    assert not twice, list(twice.items())[:5]  # exactly one terminal event each
    on_disk = states_on_disk(sidecar, ids)
    # the same on disk, for the finished jobs the file still holds (it keeps the
    # newest 2,000 while running)
    assert on_disk == {job_id: ends[job_id][0] for job_id in on_disk}
    assert len(on_disk) >= min(len(ids), KEEP_FINISHED)
    assert set(on_disk.values()) <= TERMINAL_STATES - {"failed"}
    tally("requests", sum(result.requests.values()))
    return {
        "jobs": len(ids),
        "done": sum(1 for e in ends.values() if e == ["done"]),
        "cancelled": sum(1 for e in ends.values() if e == ["cancelled"]),
        "jobs_per_s": result.jobs_per_second,
        "event_p50_ms": percentile(watch.latencies_ms, 50),
        "event_p99_ms": percentile(watch.latencies_ms, 99),
        "rss_baseline_mb": baseline,
        "rss_after_mb": after,
    }


def check_memory(figures: dict) -> None:
    print(figures)
    assert figures["rss_after_mb"] <= figures["rss_baseline_mb"] + RSS_TOLERANCE_MB, figures


def test_ten_clients_by_twenty_jobs(tmp_path):
    with SidecarProcess(tmp_path, "--engine", "synthetic") as sidecar:
        figures = asyncio.run(storm(sidecar, clients=10, jobs=20, warmup=0, quiet_s=0.5))
    assert figures["done"] > 50 and figures["cancelled"] > 5
    check_memory(figures)


@pytest.mark.slow
def test_twenty_clients_by_two_hundred_jobs_and_memory_comes_back(tmp_path):
    with SidecarProcess(tmp_path, "--engine", "synthetic") as sidecar:
        figures = asyncio.run(storm(sidecar, clients=20, jobs=200, warmup=220))
    assert figures["done"] > 1000 and figures["cancelled"] > 200
    check_memory(figures)


def test_the_result_index_stays_bounded_and_keeps_the_newest(tmp_path, monkeypatch):
    # The soak found throughput sinking job by job: every save sorted the whole index.
    import sidecar.jobs.store as store_module
    from sidecar.jobs.store import TRIM_EVERY, JobStore

    monkeypatch.setattr(store_module, "KEEP_RESULTS", 300)
    store = JobStore(tmp_path / "jobs.sqlite3")
    keys = [f"key-{n}" for n in range(2000)]
    for key in keys:
        store.save_result(key, key)
    (count,) = store._db.execute("SELECT COUNT(*) FROM results").fetchone()
    assert 300 <= count <= 300 + TRIM_EVERY
    assert store.cached_result(keys[-1]) == keys[-1]
    assert store.cached_result(keys[-300]) == keys[-300]
    assert store.cached_result(keys[0]) is None
    plan = " ".join(
        str(row)
        for row in store._db.execute(
            "EXPLAIN QUERY PLAN SELECT used FROM results ORDER BY used DESC LIMIT 1 OFFSET 5"
        )
    )
    assert "results_used" in plan  # the trim walks the index, it does not sort
    store.close()


def test_finished_jobs_on_disk_stay_bounded_while_the_sidecar_runs(tmp_path, monkeypatch):
    import sidecar.jobs.store as store_module
    from sidecar.jobs.model import now
    from sidecar.jobs.store import JobStore
    from sidecar.schema import JobRequest, JobState, Priority

    monkeypatch.setattr(store_module, "KEEP_FINISHED", 50)
    monkeypatch.setattr(store_module, "PRUNE_EVERY", 100)
    store = JobStore(tmp_path / "jobs.sqlite3")
    request = JobRequest(op="beauty", image_id="0" * 64)
    for n in range(1000):
        store.add(f"{n:032x}", n, request, Priority.normal, 1, now())
        if n % 10:  # one in ten stays queued, and is never pruned
            store.set_state(f"{n:032x}", JobState.done, "r")
    (count,) = store._db.execute("SELECT COUNT(*) FROM jobs").fetchone()
    assert count <= 100 + 50 + 100  # queued ones, the newest finished, one round's worth
    assert len(store.unfinished()) == 100
    store.close()
