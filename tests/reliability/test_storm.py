"""A storm of random submits, cancels and reprioritisations: every job ends in exactly
one terminal state, its event stream agrees with its status, and the counts add up."""

from __future__ import annotations

import random
from collections import Counter

import numpy as np
import pytest
from jobs_support import EventLog, upload

from sidecar.api.keys import BUS, SCHEDULER
from sidecar.cli import build_app
from sidecar.schema import TERMINAL_STATES

PRIORITIES = ["active", "hero", "normal", "background"]


@pytest.fixture
def app(settings):
    return build_app(settings, engines=["synthetic"])


async def storm(client, auth, image_id: str, jobs: int, rng: random.Random, drained) -> list[str]:
    """Submit `jobs` jobs; between submits, cancel or reprioritise earlier ones at random
    (some already finished, some running, some waiting). `drained()` waits until no job
    is left waiting."""
    ids: list[str] = []
    for n in range(jobs):
        body = {
            "op": "beauty",
            "image_id": image_id,
            "priority": rng.choice(PRIORITIES),
            # one job in ten is long enough to be pre-empted or cancelled mid-run
            # `n` makes each request new: none is answered from the result cache
            "params": {"steps": 8, "step_ms": 5, "n": n}
            if rng.random() < 0.1
            else {"steps": rng.randint(1, 3), "step_ms": rng.randint(0, 3), "n": n},
        }
        response = await client.post("/v1/jobs", json=body, headers=auth)
        assert response.status == 202, await response.text()
        ids.append((await response.json())["job_id"])
        if rng.random() < 0.05:  # now and then the queue drains and a long job runs alone
            await drained()
        for _ in range(rng.choice([0, 0, 1, 2])):
            target = rng.choice(ids[-20:])
            if rng.random() < 0.5:
                response = await client.delete(f"/v1/jobs/{target}", headers=auth)
                assert response.status in (200, 202, 409), await response.text()
            else:
                priority = {"priority": rng.choice(PRIORITIES)}
                response = await client.patch(f"/v1/jobs/{target}", json=priority, headers=auth)
                assert response.status in (200, 409), await response.text()
    return ids


async def test_a_thousand_job_storm_ends_every_job_exactly_once(client, auth, app):
    pixels = np.random.default_rng(3).integers(0, 256, (24, 32, 3), dtype=np.uint8)
    image_id = await upload(client, auth, pixels)
    log = EventLog(app[BUS])
    scheduler = app[SCHEDULER]

    async def drained() -> None:  # the queue changes only with a job's events
        await log.until(lambda: scheduler.counts()[0] == 0, 30, "an empty queue")

    ids = await storm(client, auth, image_id, 1000, random.Random(1234), drained)
    await log.ended(*ids, timeout=120)

    final = {j: scheduler.get(j).state.value for j in ids}
    terminal_events = Counter()
    for job_id in ids:
        kinds = log.types(job_id)
        ends = [k for k in kinds if k in TERMINAL_STATES]
        assert ends == [final[job_id]], (job_id, kinds)
        assert kinds[0] == "queued" and kinds[-1] == final[job_id]
        seqs = [e.seq for e in log.of(job_id)]
        assert seqs == sorted(set(seqs))
        terminal_events[ends[0]] += 1
    counts = Counter(final.values())
    assert sum(counts.values()) == len(ids) == 1000
    assert counts == terminal_events
    assert counts["failed"] == 0
    # the storm really mixed things: cancels, completions and pre-emptions all happened
    assert counts["cancelled"] > 50 and counts["done"] > 50
    assert any("requeued" in log.types(j) for j in ids)
    assert scheduler.counts() == (0, 0)
    # the record on disk agrees: nothing is left queued or running
    assert scheduler.store.unfinished() == []
