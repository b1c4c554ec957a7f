"""The program's own sidecar warms its engines (makes their graphs) on the worker
thread before the first job: a job that comes meanwhile waits, then runs; an engine
that cannot be warmed leaves the worker working."""

from __future__ import annotations

import asyncio
import threading

import numpy as np
from jobs_support import status, submit, upload, wait_for

from sidecar import cli
from sidecar.api.keys import ENGINES
from sidecar.engines.synthetic import SyntheticEngine
from sidecar.schema import Op


class GatedEngine(SyntheticEngine):
    """Its warm waits for the test's gate; it says where and when it warmed and ran."""

    ops = frozenset({Op.color})

    def __init__(self) -> None:
        self.log: list[tuple[str, str]] = []
        self.warming = threading.Event()
        self.gate = threading.Event()

    def warm(self) -> None:
        self.log.append(("warm", threading.current_thread().name))
        self.warming.set()
        assert self.gate.wait(30), "the test never opened the gate"

    def run(self, job, ctx):
        self.log.append(("run", threading.current_thread().name))
        return super().run(job, ctx)


class UnwarmableEngine(SyntheticEngine):
    ops = frozenset({Op.volume})

    def warm(self) -> None:
        raise RuntimeError("no graph today")


async def test_the_worker_warms_each_engine_before_its_first_job(
    aiohttp_client, settings, monkeypatch, caplog
):
    monkeypatch.setattr(cli, "_program", True)  # as `serve` and `batch` run
    app = cli.build_app(settings, engines=["synthetic"])
    gated, unwarmable = GatedEngine(), UnwarmableEngine()
    app[ENGINES][Op.color] = gated
    app[ENGINES][Op.volume] = unwarmable
    client = await aiohttp_client(app)
    auth = {"Authorization": f"Bearer {settings.token_path.read_text().strip()}"}
    pixels = np.random.default_rng(3).integers(0, 256, (32, 48, 3), dtype=np.uint8)
    image_id = await upload(client, auth, pixels)

    assert await asyncio.to_thread(gated.warming.wait, 30)
    job = await submit(client, auth, image_id, op="color", steps=2, step_ms=0)
    other = await submit(client, auth, image_id, op="volume", steps=2, step_ms=0)
    assert (await status(client, auth, job))["state"] == "queued"  # behind the warm-up
    gated.gate.set()

    assert (await wait_for(client, auth, job))["state"] == "done"
    assert (await wait_for(client, auth, other))["state"] == "done"  # unwarmed, it runs
    assert gated.log == [("warm", "job-worker"), ("run", "job-worker")]  # warmed once
    assert "could not warm the synthetic engine" in caplog.text


async def test_a_sidecar_started_by_other_code_does_not_warm(aiohttp_client, settings):
    app = cli.build_app(settings, engines=["synthetic"])  # as the tests build theirs
    gated = app[ENGINES][Op.color] = GatedEngine()
    client = await aiohttp_client(app)
    auth = {"Authorization": f"Bearer {settings.token_path.read_text().strip()}"}
    pixels = np.random.default_rng(4).integers(0, 256, (32, 48, 3), dtype=np.uint8)
    job = await submit(client, auth, await upload(client, auth, pixels), op="color", steps=1)
    assert (await wait_for(client, auth, job))["state"] == "done"
    assert gated.log == [("run", "job-worker")]
