"""Figures 5f and 5g: the first diffusion refine after background precompute against
the same refine cold, on the tiny model (part of the diffusion module's run).

With a diffusion model loaded, precompute of a retouch op also encodes, through the
VAE, the crop a refine of its result starts from, and keeps the latent in the stage
cache; the refine after it skips the encoder. Each run takes two new variants of the
portrait (new image ids, so nothing is cached): one is refined cold, the other is
precomputed first (POST /v1/precompute, beauty, waited for) and then refined; the two
orders alternate from run to run.

- 5f: time to done, POST /v1/jobs to the `done` event in the client.
- 5g: the refine pass alone, the job's `refine` stage event to its `merge` stage event
  (the sidecar's clock): the latent, the denoising and the decode. Only the latent
  differs between the two sides: the cold one encodes it there. The encode is also
  timed alone, in the precompute jobs: their `latent` stage event (the last step
  boundary before the encoder) to their `done` event; that is the encoder time saved.
"""

from __future__ import annotations

import asyncio
import time

from .harness import Harness, event_time, portrait, variant
from .report import Figure, Options, median, number

REFINE = 0.3


def _body(image_id: str, steps: int) -> dict:
    params = {"refine": REFINE, "steps": steps}
    return {"op": "beauty", "image_id": image_id, "seed": 1, "params": params}


async def _refine(h: Harness, image_id: str, steps: int) -> dict[str, float]:
    """One refine job: seconds to its done event, and its refine pass (refine → merge)."""
    timeline = await h.apply(_body(image_id, steps), fetch=False)
    stages = {
        m.event.stage: event_time(m.event)
        for m in h.events.of(timeline.job_id)
        if m.event.type == "stage"
    }
    return {"done": timeline.done, "refine": stages["merge"] - stages["refine"]}


async def _precompute(h: Harness, image_id: str) -> dict[str, float]:
    """Precompute beauty on the image, waited for: its seconds, and its encode's (each
    precompute job must have readied the latent: its `latent` stage)."""
    started = time.perf_counter()
    body = {"image_id": image_id, "document_id": image_id[:16], "ops": ["beauty"]}
    encode = 0.0
    for job_id in (await h.client.precompute(body)).job_ids:
        await h.finished(job_id)
        times = {
            m.event.stage if m.event.type == "stage" else m.event.type: event_time(m.event)
            for m in h.events.of(job_id)
            if m.event.type in ("stage", "done")
        }
        assert "latent" in times, f"the precompute readied no latent: {sorted(times)}"
        encode += times["done"] - times["latent"]
    return {"ahead": time.perf_counter() - started, "encode": encode}


async def figures(h: Harness, opts: Options, where: str) -> list[Figure]:
    """Figures 5f and 5g, measured in `h` (a sidecar with the tiny model loaded)."""
    width, height = (512, 384) if opts.quick else (1536, 1024)
    steps = 2 if opts.quick else 10
    base = await asyncio.to_thread(portrait, width, height)
    warm = await asyncio.to_thread(variant, base, 999)
    await _refine(h, await h.upload(warm), steps)  # the encoder's and the refine's first run
    got: dict[str, list[dict[str, float]]] = {"cold": [], "precomputed": []}
    ahead: list[dict[str, float]] = []
    for run in range(opts.n(5, 2)):
        order = ["cold", "precomputed"] if run % 2 == 0 else ["precomputed", "cold"]
        for side in order:
            pixels = await asyncio.to_thread(variant, base, 2 * run + (side == "precomputed"))
            image_id = await h.upload(pixels)
            if side == "precomputed":
                ahead.append(await _precompute(h, image_id))
            got[side].append(await _refine(h, image_id, steps))

    def ms(side: str, field: str) -> list[float]:
        return [job[field] * 1000 for job in got[side]]

    saved = median(ms("cold", "refine")) - median(ms("precomputed", "refine"))
    encode = number(median([job["encode"] for job in ahead]) * 1000)
    precompute = number(median([job["ahead"] for job in ahead]) * 1000)
    what = f"tiny model, {width}×{height} 16-bit, beauty, refine {REFINE}, {steps} steps"
    return [
        Figure(
            "5f",
            f"First diffusion refine after background precompute vs cold ({what})",
            "ms",
            ms("precomputed", "done"),
            ms("cold", "done"),
            product_how="POST /v1/precompute (beauty: its stages, its result and the VAE"
            " latent its refine starts from), waited for, then POST /v1/jobs beauty with"
            " a refine → the done event",
            baseline_how="the product cold: the same refine of a new image, nothing cached",
            machine=where,
            note=f"the encode it skips took {encode} ms in the precompute jobs (their latent"
            f" stage → done); precompute itself took {precompute} ms in the background",
        ),
        Figure(
            "5g",
            "The refine pass alone (latent, denoising, decode), after precompute vs cold",
            "ms",
            ms("precomputed", "refine"),
            ms("cold", "refine"),
            product_how="the job's refine → merge stage events, its latent from the stage cache",
            baseline_how="the same interval of the cold refine, which runs the VAE encoder",
            machine=where,
            note=f"the medians differ by {number(saved)} ms; the encode alone, the one"
            f" difference in the work, took {encode} ms in the precompute jobs (on the tiny"
            " model the denoising and the decode dominate, and a run's noise can hide it)",
        ),
    ]
