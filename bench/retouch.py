"""Figures 1 and 4, and the retouch engine's own table, on a 24 MP 16-bit portrait.

1. Time to first visible pixels after Apply. Product: POST /v1/jobs to the first preview
   (the 1/8 draft) arriving on the WebSocket. Baseline: POST /apply to the last byte of
   the result, which is the first thing it shows. Both already hold the image; neither
   cache knows it. Also the time until the product's full result is in the client
   (done, then GET …/result raw), and the servers' peak RSS over the Applies.
4. Intensity change. Product: the slider is the layer's opacity, i.e. the original and
   the result blended at the size on screen (1024 px; numpy here, the compositor in
   Photoshop); and the exact blend at full resolution from the sidecar
   (GET …/result?intensity=). Baseline: the Apply again at the new intensity.

The table `retouch.md`: per op, from the job's `started` event to its first preview and
to `done` (the sidecar's own timestamps): cold, stages cached (another op on the same
image), progressive off, a close-up (skin in most tiles), and a photograph with no face
(nothing to change: the face search alone).
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path

import numpy as np

from sidecar.imaging.convert import rgb8_rounded
from sidecar.imaging.encode import fit_within
from sidecar.schema import RETOUCH_OPS

from . import floors
from .harness import Harness, event_time, portrait, variant
from .report import Detail, Figure, Options, Outcome, machine, median, number, server_rss, timed

SCREEN_SIDE = 1024


def on_screen(pixels: np.ndarray) -> np.ndarray:
    return rgb8_rounded(fit_within(pixels, SCREEN_SIDE), pixels.dtype.itemsize * 8)


def blend(original: np.ndarray, result: np.ndarray, t: float) -> np.ndarray:
    """What a layer at opacity t shows over the original."""
    mixed = original.astype(np.float32)
    mixed += np.float32(t) * (result.astype(np.float32) - mixed)
    return mixed.astype(np.uint8)


async def apply_figures(h: Harness, opts: Options, base: np.ndarray) -> Outcome:
    runs = opts.n(5, 2)
    first, layer, naive, lerp, exact, again = [], [], [], [], [], []
    timelines = []
    for run in range(runs):
        pixels = variant(base, run)
        image_id = await h.upload(pixels)
        key = await h.naive_upload(pixels)
        for side in ("product", "naive") if run % 2 == 0 else ("naive", "product"):
            await asyncio.sleep(opts.settle)
            if side == "product":
                with h.product.peak.measure():
                    timeline = await h.apply({"op": "beauty", "image_id": image_id})
            else:
                with h.naive.peak.measure():
                    reply = await h.naive_apply(key)
        assert not reply.cached and not timeline.cached
        first.append(timeline.first)
        layer.append(timeline.layer)
        naive.append(reply.seconds)
        timelines.append(timeline)
        # figure 4: the slider at 0.6
        result = np.frombuffer(await h.result(timeline.job_id), pixels.dtype).reshape(pixels.shape)
        shown = await asyncio.gather(*(asyncio.to_thread(on_screen, p) for p in (pixels, result)))
        lerp.append(median(timed(lambda shown=shown: blend(*shown, 0.6), 5)))
        started = time.perf_counter()
        await h.result(timeline.job_id, intensity=0.6)
        exact.append(time.perf_counter() - started)
        again.append((await h.naive_apply(key, intensity=0.6)).seconds)

    size = f"{base.shape[1]}×{base.shape[0]}"
    where = machine()
    # the run with the median time to the full result, for the plot
    middle = sorted(timelines, key=lambda t: t.layer)[len(timelines) // 2]
    ms = [[v * 1000 for v in values] for values in (first, layer, naive, lerp, exact, again)]
    first_ms, layer_ms, naive_ms, lerp_ms, exact_ms, again_ms = ms
    level = middle.previews[0][1] if middle.previews else "final"
    figures = [
        Figure(
            "1",
            f"First visible pixels after Apply ({size} 16-bit, beauty, cold)",
            "ms",
            first_ms,
            naive_ms,
            words=("sooner", "later"),
            product_how=f"POST /v1/jobs → first preview ({level}) on the WebSocket",
            baseline_how="POST /apply → last byte of the full-resolution result",
            machine=where,
        ),
        Figure(
            "1b",
            "Full result in the client after Apply (same runs)",
            "ms",
            layer_ms,
            naive_ms,
            product_how="POST /v1/jobs → done event → GET …/result raw (into the buffer the"
            " client keeps for results), last byte",
            baseline_how="POST /apply → last byte of the result",
            machine=where,
            note="the product renders the 1/8 draft first, then the final's tiles"
            " (two at a time, centre first, previews as they finish)",
        ),
        server_rss(
            "1",
            "Peak RSS of the server over the Applies of figure 1",
            (h.product.peak.mb or 0.0, h.naive.peak.mb or 0.0),
            where,
            runs,
        ),
        Figure(
            "4",
            "Intensity change (slider to 0.6) after an Apply",
            "ms",
            lerp_ms,
            again_ms,
            product_how=f"layer opacity: original and result blended at {SCREEN_SIDE} px"
            " (numpy stand-in for the compositor)",
            baseline_how="POST /apply at intensity 0.6: the whole op again",
            machine=where,
        ),
        Figure(
            "4b",
            "Intensity change, exact blend at full resolution",
            "ms",
            exact_ms,
            again_ms,
            product_how="GET …/result?intensity=0.6&format=raw (blend in the sidecar)",
            baseline_how="POST /apply at intensity 0.6: the whole op again",
            machine=where,
        ),
    ]
    plot = {
        "apply": {
            "size": size,
            "product": [
                {"t": t, "level": lvl, "step": step, "total": total}
                for t, lvl, step, total in middle.previews
            ],
            "product_done": middle.done,
            "product_layer": middle.layer,
            "naive": median(naive),
            "runs": runs,
        }
    }
    return Outcome(figures=figures, plot=plot)


async def _timed_job(h: Harness, body: dict) -> dict:
    """Seconds from `started` to the first preview and to `done` (sidecar clock)."""
    created = await h.submit(body)
    job_id = created.job_id
    await h.finished(job_id)
    mine = [message.event for message in h.events.of(job_id)]
    started = next(event_time(e) for e in mine if e.type == "started")
    preview = next((e for e in mine if e.type == "preview"), None)  # none: progressive off
    done = next(event_time(e) for e in mine if e.type == "done")
    return {
        "first": None if preview is None else event_time(preview) - started,
        "level": None if preview is None else preview.level,
        "done": done - started,
    }


async def per_op_table(h: Harness, opts: Options, base: np.ndarray) -> Detail:
    runs = opts.n(3, 1)
    times: dict[tuple[str, str], list[dict]] = {}
    n = 100
    for _ in range(runs):
        for op in RETOUCH_OPS:
            for mode in ("cold", "cold, progressive off"):
                n += 1
                image_id = await h.upload(variant(base, n))
                body = {"op": op, "image_id": image_id}
                if mode != "cold":
                    body["preview"] = {"progressive": False}
                times.setdefault((op, mode), []).append(await _timed_job(h, body))
                if mode == "cold":  # the same image, another op: its stages are cached
                    other = RETOUCH_OPS[(RETOUCH_OPS.index(op) + 1) % len(RETOUCH_OPS)]
                    body = {"op": other, "image_id": image_id}
                    times.setdefault((other, "stages cached"), []).append(await _timed_job(h, body))
    width, height = base.shape[1], base.shape[0]
    close = await asyncio.to_thread(portrait, width, height, closeup=True)
    for op in ("beauty", "color"):
        for _ in range(runs):
            n += 1
            image_id = await h.upload(variant(close, n))
            body = {"op": op, "image_id": image_id}
            times.setdefault((op, "cold, close-up"), []).append(await _timed_job(h, body))
    # nothing to retouch: nothing changes
    scene = await asyncio.to_thread(portrait, width, height, no_face=True)
    for _ in range(runs):
        n += 1
        image_id = await h.upload(variant(scene, n))
        body = {"op": "beauty", "image_id": image_id}
        times.setdefault(("beauty", "cold, no face"), []).append(await _timed_job(h, body))
    rows = []
    modes = ("cold", "stages cached", "cold, progressive off", "cold, close-up", "cold, no face")
    for op in RETOUCH_OPS:
        for mode in modes:
            got = times.get((op, mode))
            if got:
                firsts = [g["first"] for g in got if g["first"] is not None]
                shown = "— (none sent)"
                if firsts:
                    shown = f"{number(median(firsts) * 1000)} ms ({got[0]['level']})"
                rows.append([op, mode, shown, f"{median([g['done'] for g in got]):.2f} s"])
    meta = {
        "machine": machine(),
        "runs": runs,
        "input": f"{width}x{height} RGB 16-bit portrait, sidecar in its own process,"
        " times from its own event timestamps (started → first preview, started → done)",
        "target": "first preview <= 400 ms cold and <= 150 ms with stages cached;"
        " full result <= 8 s cold (24 MP); progressive off sends no preview",
    }
    header = ["op", "case", "first preview (level)", "done"]
    return Detail("retouch", "Retouch engine: first preview and full result", header, rows, meta)


async def run(opts: Options) -> Outcome:
    width, height = (600, 400) if opts.quick else (6000, 4000)
    base = portrait(width, height)
    with tempfile.TemporaryDirectory(prefix="bench-retouch-") as tmp:
        async with Harness(Path(tmp)) as h:
            await h.warm_up(base)
            outcome = await apply_figures(h, opts, base)
            outcome.details.append(await per_op_table(h, opts, base))
    await floors.apply_floor(outcome, opts, base)  # 1b: compute alone + the bytes moved
    return outcome
