"""Figures 2 and 3, and the caches' own table, on a 24 MP 16-bit portrait (beauty).

2. The same Apply again (same image, op and params). Product: answered by the result
   cache; baseline: the pickle file of its first-64-KB key. Both up to the last byte of
   the full result in the client.
3. The first Apply after background precompute (POST /v1/precompute, then the Apply at
   default params) against the baseline's first Apply, which is always cold; with the
   servers' peak RSS over it.

Figure 2's floor (bench/floors.py): a plain sendfile of the same bytes over loopback,
read by the same client code. Blocking work (copying 144 MB images) runs in threads.

The table `cache.md` (product only): cold, again, after precompute at default and at
other params, and after a restart of the sidecar (stages from the disk tier), from
POST /v1/jobs to the done event.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path

import numpy as np

from . import floors
from .harness import Harness, portrait, variant
from .report import Detail, Figure, Options, Outcome, machine, median, number, server_rss


async def precompute(h: Harness, image_id: str) -> None:
    body = {"image_id": image_id, "document_id": image_id[:16], "ops": ["beauty"]}
    started = await h.client.precompute(body)
    for job_id in started.job_ids:
        await h.finished(job_id)


def _apply(image_id: str, **params) -> dict:
    body = {"op": "beauty", "image_id": image_id, "document_id": image_id[:16]}
    return {**body, "params": params} if params else body


async def measure(h: Harness, opts: Options, base: np.ndarray) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {}

    def note(key: str, seconds: float) -> None:
        times.setdefault(key, []).append(seconds * 1000)

    for run in range(opts.n(5, 2)):
        pixels = await asyncio.to_thread(variant, base, run)
        image_id = await h.upload(pixels)
        key = await h.naive_upload(pixels)
        cold = await h.apply(_apply(image_id))
        again = await h.apply(_apply(image_id))
        assert again.cached, "the repeat was not answered from the result cache"
        note("cold", cold.layer)
        note("cold, done", cold.done)
        note("again", again.layer)
        note("again, answer", again.done)
        await asyncio.sleep(opts.settle)
        with h.naive.peak.measure():
            naive_cold = await h.naive_apply(key)
        naive_again = await h.naive_apply(key)
        assert naive_again.cached and not naive_cold.cached
        note("naive cold", naive_cold.seconds)
        note("naive again", naive_again.seconds)

        ready_id = await h.upload(await asyncio.to_thread(variant, base, 100 + run))
        await asyncio.sleep(opts.settle)
        with h.product.peak.measure():
            started = time.perf_counter()
            await precompute(h, ready_id)
            note("precompute itself", time.perf_counter() - started)
            ready = await h.apply(_apply(ready_id))
        assert ready.cached, "precompute did not make the default Apply"
        note("precomputed", ready.layer)
        note("precomputed, done", ready.done)
        other = await h.apply(_apply(ready_id, strength=0.6))
        note("precomputed, other params", other.done)
        times.setdefault("ids", []).append(image_id)  # type: ignore[arg-type]
    return times


async def after_restart(root: Path, base: np.ndarray, ids: list[str]) -> list[float]:
    """The same images, other params, after the sidecar restarts on the same folders."""
    times = []
    async with Harness(root, naive=False) as h:
        warm = base[:200, :200].copy()
        await h.apply({"op": "beauty", "image_id": await h.upload(warm)}, fetch=False)
        for image_id in ids:
            timeline = await h.apply(_apply(image_id, strength=0.85), fetch=False)
            times.append(timeline.done * 1000)
    return times


async def run(opts: Options) -> Outcome:
    width, height = (600, 400) if opts.quick else (6000, 4000)
    base = await asyncio.to_thread(portrait, width, height)
    with tempfile.TemporaryDirectory(prefix="bench-cache-") as tmp:
        async with Harness(Path(tmp)) as h:
            await h.warm_up(base)
            times = await measure(h, opts, base)
            rss = h.product.peak.mb or 0.0, h.naive.peak.mb or 0.0
        ids = times.pop("ids")
        times["restarted"] = await after_restart(Path(tmp), base, ids)  # type: ignore[arg-type]
    transfer = await floors.transfer_floor(base.nbytes, opts)  # the servers have stopped
    size = f"{width}×{height}"
    where = machine()
    full = "to the last byte of the full result in the client"
    kept = "into the buffer the client keeps for results"

    def versus(number: str, title: str, product: str, baseline: str, **how) -> Figure:
        """A figure in ms of two of the runs' timings, the product's and the baseline's."""
        return Figure(number, title, "ms", times[product], times[baseline], machine=where, **how)

    figures = [
        versus(
            "2",
            f"Second Apply, same image and params ({size} 16-bit)",
            "again",
            "naive again",
            product_how=f"POST /v1/jobs (answered cached: true) + GET …/result raw ({kept}),"
            f" {full}",
            baseline_how=f"POST /apply, pickle cache hit, {full}",
            floor=transfer.values,
            floor_how=transfer.how,
            note=f"the product's answer alone (POST → cached: true) took"
            f" {number(median(times['again, answer']))} ms",
        ),
        versus(
            "3",
            "First Apply after background precompute vs the baseline's (cold) first Apply",
            "precomputed",
            "naive cold",
            product_how=f"POST /v1/precompute, wait, then POST /v1/jobs + GET …/result raw"
            f" ({kept}), {full}",
            baseline_how=f"POST /apply, cold (it has no precompute), {full}",
            note=f"the product cold in the same runs took {number(median(times['cold']))} ms"
            f" ({number(median(times['cold, done']))} ms to its done event);"
            f" precompute itself took {number(median(times['precompute itself']))} ms in the"
            " background",
        ),
        server_rss(
            "3",
            "Peak RSS of the server over figure 3 (product: precompute + Apply)",
            (rss[0], rss[1]),
            where,
            opts.n(5, 2),
        ),
    ]
    cold = median(times["cold, done"])
    rows = []
    for key, label in (
        ("cold, done", "first Apply, nothing cached"),
        ("again, answer", "the same Apply again (result cache)"),
        ("precomputed, done", "first Apply after background precompute (default params)"),
        ("precomputed, other params", "after precompute, other params (stages ready)"),
        ("restarted", "after a restart, other params (stages from disk)"),
    ):
        value = median(times[key])
        rows.append([label, f"{number(value)} ms", f"{value / cold:.2f}"])
    meta = {
        "machine": where,
        "runs": opts.n(5, 2),
        "input": f"{width}x{height} RGB 16-bit portrait, beauty, sidecar in its own process;"
        " times from POST /v1/jobs to the done event, as a client sees them",
        "target": "the same Apply again <= 100 ms at 24 MP; after precompute / cold <= 0.35",
    }
    detail = Detail(
        "cache", "Caches: second Apply, precompute, restart", ["case", "time", "÷ cold"], rows, meta
    )
    return Outcome(figures=figures, details=[detail])
