"""Nothing queued is lost: after a clean stop or a crash, queued and interrupted jobs
come back in their order and run to the end; what the ETA learned survives too."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import subprocess
import sys

import aiohttp
import numpy as np
from helpers import async_wait_until, free_port
from jobs_support import status, submit, upload, wait_for

from sidecar.cli import build_app
from sidecar.jobs import JobStore
from sidecar.schema import Op


def noise() -> np.ndarray:
    return np.random.default_rng(11).integers(0, 256, (40, 60, 3), dtype=np.uint8)


async def test_a_clean_stop_keeps_queued_and_running_work(aiohttp_client, settings):
    first = await aiohttp_client(build_app(settings, engines=["synthetic"]))
    auth = {"Authorization": f"Bearer {settings.token_path.read_text().strip()}"}
    image_id = await upload(first, auth, noise())
    running = await submit(first, auth, image_id, steps=100, step_ms=20)
    await wait_for(first, auth, running, {"running"})
    waiting = [
        await submit(first, auth, image_id, priority=p, steps=2, step_ms=1)
        for p in ("background", "normal", "hero")
    ]
    await first.close()  # the running job stops at its next step boundary

    second = await aiohttp_client(build_app(settings, engines=["synthetic"]))
    listed = (await (await second.get("/v1/jobs", headers=auth)).json())["jobs"]
    assert [j["job_id"] for j in listed] == [waiting[2], running, waiting[1], waiting[0]]
    assert {j["state"] for j in listed} <= {"queued", "running"}  # the worker is already on it
    # event seqs go on increasing across the restart: a client drops what it has seen
    replay = await (await second.get(f"/v1/jobs/{running}/events", headers=auth)).text()
    seqs = [int(line[4:]) for line in replay.splitlines() if line.startswith("id: ")]
    assert seqs and min(seqs) > 10_000
    later = await submit(second, auth, image_id, steps=1, step_ms=1)
    for job_id in [running, *waiting, later]:
        assert (await wait_for(second, auth, job_id, timeout=30))["state"] == "done"
    # a job submitted after the restart still queues behind the ones from before it
    order = {j: (await status(second, auth, j))["started_at"] for j in [waiting[1], later]}
    assert order[waiting[1]] < order[later]


async def test_what_the_eta_learned_survives_a_restart(aiohttp_client, settings):
    first = await aiohttp_client(build_app(settings, engines=["synthetic"]))
    auth = {"Authorization": f"Bearer {settings.token_path.read_text().strip()}"}
    image_id = await upload(first, auth, noise())
    job_id = await submit(first, auth, image_id, steps=4, step_ms=50)
    await wait_for(first, auth, job_id)
    await first.close()
    known = JobStore(settings.jobs_db).run_times()
    ((op, _), seconds), *_ = known.items()
    assert op is Op.beauty and 0.15 < seconds < 5

    second = await aiohttp_client(build_app(settings, engines=["synthetic"]))
    # other params, or the result would come from the cache without running
    job_id = await submit(second, auth, image_id, steps=4, step_ms=50, params={"variant": 2})
    first_progress = None
    async with second.ws_connect(f"/v1/ws?token={auth['Authorization'][7:]}") as ws:
        async with asyncio.timeout(20):
            while first_progress is None:
                message = await ws.receive_json()
                if message["type"] == "progress" and message["job_id"] == job_id:
                    first_progress = message
    # at 25 % a fresh model would still say nothing; the learned one already knows
    assert first_progress["eta_s"] is not None


def start_sidecar(tmp_path, port: int) -> subprocess.Popen:
    env = {
        **os.environ,
        "RETOUCH_CACHE_DIR": str(tmp_path / "cache"),
        "RETOUCH_CONFIG_DIR": str(tmp_path / "config"),
        "RETOUCH_DATA_DIR": str(tmp_path / "data"),
    }
    return subprocess.Popen(
        [sys.executable, "-m", "sidecar", "serve", "--port", str(port), "--engine", "synthetic"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def wait_healthy(session: aiohttp.ClientSession, base: str, proc) -> None:
    async def healthy() -> bool:  # another process: its health answer, polled
        assert proc.poll() is None, "sidecar exited"
        try:
            async with session.get(f"{base}/v1/health") as response:
                return response.status == 200
        except aiohttp.ClientConnectionError:
            return False

    await async_wait_until(healthy, 60, 0.1, "the sidecar up")


async def sse_events(session: aiohttp.ClientSession, base: str, auth: dict, job_id: str):
    """The job's events from its SSE stream (GET /v1/jobs/{id}/events), as they come;
    the stream ends with the job."""
    async with session.get(f"{base}/v1/jobs/{job_id}/events", headers=auth) as response:
        assert response.status == 200, "a queued job was lost"
        async for line in response.content:
            if line.startswith(b"data: "):
                yield json.loads(line[6:])


async def test_a_killed_sidecar_runs_its_interrupted_and_queued_jobs_again(tmp_path):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = start_sidecar(tmp_path, port)
    try:
        async with aiohttp.ClientSession() as session:
            await wait_healthy(session, base, proc)
            token = (tmp_path / "config" / "token").read_text().strip()
            auth = {"Authorization": f"Bearer {token}"}
            pixels = noise()
            headers = {
                **auth,
                "Content-Type": "application/octet-stream",
                "X-Image-Width": "60",
                "X-Image-Height": "40",
                "X-Image-Channels": "3",
                "X-Image-Depth": "8",
            }
            async with session.post(
                f"{base}/v1/images", data=pixels.tobytes(), headers=headers
            ) as r:
                image_id = (await r.json())["image_id"]
            ids = []
            for steps in (200, 3, 3):
                params = {"steps": steps, "step_ms": 10}
                body = {"op": "beauty", "image_id": image_id, "params": params}
                async with session.post(f"{base}/v1/jobs", json=body, headers=auth) as r:
                    assert r.status == 202
                    ids.append((await r.json())["job_id"])
            async with asyncio.timeout(60):  # kill it mid-job, some steps in
                async for event in sse_events(session, base, auth, ids[0]):
                    if event["type"] == "progress" and event["progress"] > 0.05:
                        break
            # the image is on disk already: POST /v1/jobs answers 202 only once it is
            proc.kill()  # kill -9 (TerminateProcess on Windows)
            proc.wait(10)

            proc = start_sidecar(tmp_path, port)
            await wait_healthy(session, base, proc)
            states = {}
            async with asyncio.timeout(60):
                for job_id in ids:  # each stream ends with its job's end
                    async for event in sse_events(session, base, auth, job_id):
                        states[job_id] = event["type"]
            assert states == dict.fromkeys(ids, "done")
    finally:
        proc.kill()
        proc.wait(10)


async def test_finished_jobs_keep_their_status_result_and_end_across_a_restart(
    aiohttp_client, settings
):
    first = await aiohttp_client(build_app(settings, engines=["synthetic"]))
    auth = {"Authorization": f"Bearer {settings.token_path.read_text().strip()}"}
    image_id = await upload(first, auth, noise())
    done = await submit(first, auth, image_id, steps=2, step_ms=1)
    await wait_for(first, auth, done)
    cancelled = await submit(first, auth, image_id, steps=500, step_ms=10)
    await (await first.delete(f"/v1/jobs/{cancelled}", headers=auth)).read()
    await wait_for(first, auth, cancelled)
    before = await (await first.get(f"/v1/jobs/{done}/result?format=raw", headers=auth)).read()
    await first.close()

    # a client that had not fetched its result yet finds it after the restart
    second = await aiohttp_client(build_app(settings, engines=["synthetic"]))
    assert (await status(second, auth, done))["state"] == "done"
    assert (await status(second, auth, cancelled))["state"] == "cancelled"
    result = await second.get(f"/v1/jobs/{done}/result?format=raw", headers=auth)
    assert result.status == 200 and await result.read() == before
    stream = await (await second.get(f"/v1/jobs/{done}/events", headers=auth)).text()
    assert '"type":"done"' in stream  # the stream replays the end, it does not hang


async def test_a_failed_job_keeps_its_error_across_a_restart(aiohttp_client, settings):
    first = await aiohttp_client(build_app(settings, engines=["synthetic"]))
    auth = {"Authorization": f"Bearer {settings.token_path.read_text().strip()}"}
    image_id = await upload(first, auth, noise())
    failed = await submit(first, auth, image_id, params={"steps": "many"})  # int() fails
    error = (await wait_for(first, auth, failed))["error"]
    await first.close()
    second = await aiohttp_client(build_app(settings, engines=["synthetic"]))
    job = await status(second, auth, failed)
    assert job["state"] == "failed" and job["error"] == error


def test_a_crash_right_after_the_202_or_the_done_loses_nothing(tmp_path):
    """kill -9 while an image's write is still behind its 202: the job still has its
    image. kill -9 the moment a job is reported done: it is still done after the
    restart, at once (never running or queued again), and its result is there."""
    from helpers import raw_headers
    from live_server import SidecarProcess

    sidecar = SidecarProcess(tmp_path, "--engine", "synthetic").start()
    try:
        rng = np.random.default_rng(8)
        big = rng.integers(0, 256, (1500, 2000, 3), dtype=np.uint8)  # 9 MB: a slow write
        http = sidecar.http()
        image_id = http.request("POST", "/v1/images", big.tobytes(), raw_headers(big)).json()[
            "image_id"
        ]
        job = {"op": "beauty", "image_id": image_id, "params": {"steps": 1, "step_ms": 0}}
        first = http.json("POST", "/v1/jobs", job).json()["job_id"]
        sidecar.kill()
        sidecar.start()
        assert finished(sidecar, first)["state"] == "done"
        job["params"]["again"] = 1
        second = sidecar.http().json("POST", "/v1/jobs", job).json()["job_id"]
        assert finished(sidecar, second)["state"] == "done"
        sidecar.kill()  # the moment it is reported done
        # done is durable: on disk before it was reported, so no second run follows
        with sqlite3.connect(tmp_path / "data" / "jobs.sqlite3") as db:
            row = db.execute("SELECT state FROM jobs WHERE job_id = ?", (second,)).fetchone()
        assert row == ("done",)
        sidecar.start()
        assert sidecar.http().request("GET", f"/v1/jobs/{second}").json()["state"] == "done"
        result = sidecar.http().request("GET", f"/v1/jobs/{second}/result?format=raw")
        assert result.status == 200 and len(result.body) == big.nbytes
    finally:
        sidecar.stop()


def finished(sidecar, job_id: str) -> dict:
    """The job's status once it has ended: its SSE stream ends with its end."""
    stream = sidecar.http().request("GET", f"/v1/jobs/{job_id}/events", timeout=60)
    assert stream.status == 200, stream.body[:300]  # known, not job_not_found
    job = sidecar.http().request("GET", f"/v1/jobs/{job_id}").json()
    assert job["state"] in ("done", "failed", "cancelled"), job
    return job


async def test_done_comes_only_once_the_result_and_its_record_are_on_disk(
    aiohttp_client, settings, auth, portrait, monkeypatch
):
    """While a result is still being written its job stays running: `done` (status and
    record) comes after the file is on disk, so a crash in between runs the job again
    instead of taking back a `done` a client already acted on."""
    import threading

    from sidecar.cache import images as image_store

    client = await aiohttp_client(build_app(settings))
    image_id = await upload(client, auth, portrait)
    entered, release = threading.Event(), threading.Event()
    write = image_store.atomic_write

    def slow_write(path, parts):
        entered.set()
        assert release.wait(30)
        return write(path, parts)

    monkeypatch.setattr(image_store, "atomic_write", slow_write)
    response = await client.post(
        "/v1/jobs", json={"op": "beauty", "image_id": image_id}, headers=auth
    )
    job_id = (await response.json())["job_id"]
    assert await asyncio.to_thread(entered.wait, 60)  # the result is being written

    assert (await status(client, auth, job_id))["state"] == "running"
    with sqlite3.connect(settings.jobs_db) as db:
        row = db.execute("SELECT state FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
    assert row != ("done",)

    release.set()
    assert (await wait_for(client, auth, job_id))["state"] == "done"
    with sqlite3.connect(settings.jobs_db) as db:
        row = db.execute("SELECT state FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
    assert row == ("done",)
