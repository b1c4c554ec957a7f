"""Figure 9: how soon the user's Apply starts while a 10-image batch runs.

Both servers get the same ten portraits as a batch (ten Applies queued at once) and,
once the first of them is done, an Apply on the document in front. Product: the
front Apply is `active` and pre-empts the running batch job at its next step boundary
(the batch's remaining jobs are then cancelled, to save time). Baseline: its one
worker takes Applies in arrival order (FIFO), so the front Apply waits for the batch.
Measured: the front Apply's start (each server's own clock, against the client's at
the request; one machine, one clock) and its first visible pixels in the client, with
the servers' peak RSS. Each run uses new params, so no result cache answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import time
from pathlib import Path

from sidecar.client import SidecarError

from .harness import Harness, event_time, portrait, variant
from .jobs import wait_state
from .report import Figure, Options, Outcome, machine, median, number, server_rss

BATCH = 10


async def product_run(h: Harness, ids: list[str], front: str, strength: float) -> dict:
    params = {"strength": strength}
    batch = []
    for n, image_id in enumerate(ids):
        body = {"op": "beauty", "image_id": image_id, "params": params, "document_id": f"s{n}"}
        batch.append((await h.submit(body)).job_id)
    await h.finished(batch[0])
    wall, clock = time.time(), time.perf_counter()
    body = {
        "op": "beauty",
        "image_id": front,
        "params": params,
        "priority": "active",
        "document_id": "front",
    }
    job_id = (await h.submit(body)).job_id
    first = await asyncio.wait_for(h.events.expect(job_id, "preview"), 900)
    await h.finished(job_id)
    started = next(m.event for m in h.events.of(job_id) if m.event.type == "started")
    for other in batch[1:]:
        with contextlib.suppress(SidecarError):  # 409: it has ended already
            await h.client.cancel(other)
    for other in batch[1:]:
        await asyncio.wait_for(wait_state(h.client, other), 900)
    return {"start": event_time(started) - wall, "first": first - clock}


async def naive_run(h: Harness, keys: list[str], front: str, strength: float) -> dict:
    params = {"strength": strength}
    batch = [asyncio.create_task(h.naive_apply(key, params=params)) for key in keys]
    await asyncio.wait(batch, return_when=asyncio.FIRST_COMPLETED)
    reply = await h.naive_apply(front, params=params)
    await asyncio.gather(*batch)
    assert not reply.cached
    return {"start": reply.started_wall - reply.submitted_wall, "first": reply.seconds}


async def run(opts: Options) -> Outcome:
    width, height = (300, 200) if opts.quick else (3000, 2000)
    runs = opts.n(5, 1)
    base = portrait(width, height)
    shoot = [variant(base, n) for n in range(BATCH)]
    front = variant(base, BATCH)
    got: dict[str, list[dict]] = {"product": [], "naive": []}
    with tempfile.TemporaryDirectory(prefix="bench-queue-") as tmp:
        async with Harness(Path(tmp)) as h:
            await h.warm_up(base)
            ids = [await h.upload(p) for p in shoot]
            keys = [await h.naive_upload(p) for p in shoot]
            front_id, front_key = await h.upload(front), await h.naive_upload(front)
            for run in range(runs):
                strength = round(0.9 - 0.01 * run, 3)
                for side in ("product", "naive") if run % 2 == 0 else ("naive", "product"):
                    await asyncio.sleep(opts.settle)
                    if side == "product":
                        with h.product.peak.measure():
                            got[side].append(await product_run(h, ids, front_id, strength))
                    else:
                        with h.naive.peak.measure():
                            got[side].append(await naive_run(h, keys, front_key, strength))
            rss = h.product.peak.mb or 0.0, h.naive.peak.mb or 0.0

    def ms(side: str, key: str) -> list[float]:
        return [r[key] * 1000 for r in got[side]]

    where = machine()
    what = f"{BATCH} × {width}×{height} 16-bit, beauty"
    return Outcome(
        figures=[
            Figure(
                "9",
                f"Start of the front Apply while a batch runs ({what})",
                "ms",
                ms("product", "start"),
                ms("naive", "start"),
                words=("sooner", "later"),
                product_how="`active` job submitted once the batch's first job is done → its"
                " started event (pre-empts the running batch job)",
                baseline_how="the same Apply, queued FIFO behind the batch on the one worker →"
                " its worker starting it",
                machine=where,
            ),
            Figure(
                "9b",
                "First visible pixels of that front Apply",
                "ms",
                ms("product", "first"),
                ms("naive", "first"),
                words=("sooner", "later"),
                product_how="POST → first preview on the WebSocket",
                baseline_how="POST → last byte of the result (after the batch)",
                machine=where,
                note=f"the baseline's batch took {number(median(ms('naive', 'first')) / 1000)} s"
                " to clear before it",
            ),
            server_rss("9", "Peak RSS of the server over figure 9", (rss[0], rss[1]), where, runs),
        ]
    )
