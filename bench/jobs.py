"""Jobs on the product through its client (sidecar.client): a new synthetic-engine job,
and waiting for a job's state by polling its status."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Collection

from sidecar.client import SidecarClient
from sidecar.schema import TERMINAL_STATES, JobStatus

POLL_S = 0.005
_NONCE = itertools.count()


async def synthetic_job(
    client: SidecarClient, image_id: str, priority: str = "normal", **params
) -> str:
    """A synthetic-engine job; a nonce param makes each one new, so none is answered
    from the result cache (these benchmarks measure the queue, not the cache)."""
    params.setdefault("nonce", next(_NONCE))
    body = {"op": "beauty", "image_id": image_id, "priority": priority, "params": params}
    return (await client.submit(body)).job_id


async def wait_state(
    client: SidecarClient, job_id: str, states: Collection[str] = TERMINAL_STATES
) -> JobStatus:
    while True:
        status = await client.status(job_id)
        if status.state in states:
            return status
        await asyncio.sleep(POLL_S)
