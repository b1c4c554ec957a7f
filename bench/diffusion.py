"""Figure 5: streaming denoising previews against the naive way, on the tiny model.

Both servers load the tiny SD-style model (scripts/make-tiny-model) and run `generate`
with the same size, steps and seed; each job has a new prompt, so the product's result
cache never answers. Measured from each server's own events:
- step rate with previews on and off: steps ÷ the time from the start of denoising to
  the end of the pipeline's final decode (product: its `denoise` and `decode` stage
  events; baseline: its `started` and `done` events);
- bytes per preview (product: the binary WebSocket frame, x0 projected to RGB at 1/8 and
  upscaled 4×, at most 5 a second; baseline: the SSE event with the JPEG in hex) and all
  bytes one job sends (every event, the final image included);
- time from the request to the first step preview in the client.

Figures 5f and 5g (`diffusion_refine.py`), in the same sidecar: the first refine after
background precompute (its VAE latent ready) against the same refine cold.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from . import diffusion_refine
from .harness import Harness, event_time
from .report import Figure, Options, Outcome, machine, median

# each figure's unit: the scale from the measured field, and which way is better
UNITS: dict[str, tuple[float, dict]] = {
    "steps/s": (1.0, {"lower_is_better": False}),
    "KB": (1e-3, {"words": ("smaller", "larger")}),  # from bytes
    "ms": (1000.0, {"words": ("sooner", "later")}),  # from seconds
}


async def product_job(h: Harness, size: int, steps: int, previews: bool, prompt: str) -> dict:
    body = {
        "op": "generate",
        "prompt": prompt,
        "seed": 1,
        "params": {"steps": steps, "width": size, "height": size},
        "preview": {"stream_steps": previews},
    }
    started = time.perf_counter()
    created = await h.submit(body)
    job_id = created.job_id
    await h.finished(job_id, 600)
    mine = h.events.of(job_id)
    stages = {m.event.stage: event_time(m.event) for m in mine if m.event.type == "stage"}
    frames = [m for m in mine if m.event.type == "preview" and m.event.level == "step"]
    return {
        "rate": steps / (stages["decode"] - stages["denoise"]),
        "frame_bytes": [m.size for m in frames],
        "job_bytes": h.events.bytes_by_job[job_id],
        "first": frames[0].at - started if frames else None,
        "points": [
            {"t": m.at - started, "step": m.event.step, "total": m.event.total_steps}
            for m in frames
        ],
    }


async def naive_job(h: Harness, size: int, steps: int, previews: bool, prompt: str) -> dict:
    body = {"prompt": prompt, "width": size, "height": size, "steps": steps, "seed": 1}
    body["previews"] = previews
    started = time.perf_counter()
    events: list[tuple[float, dict, int]] = []
    buffer = b""
    async with h.session.post(f"{h.naive_url}/generate", json=body) as r:
        assert r.status == 200, await r.text()
        async for chunk in r.content.iter_any():
            buffer += chunk
            while b"\n\n" in buffer:
                message, buffer = buffer.split(b"\n\n", 1)
                event = json.loads(message.removeprefix(b"data: "))
                events.append((time.perf_counter(), event, len(message) + 2))
    kinds = {e["type"]: e for _, e, _ in events}
    assert "error" not in kinds["done"], kinds["done"]["error"]
    frames = [(t, e, n) for t, e, n in events if e["type"] == "preview"]
    return {
        "rate": steps / (kinds["done"]["ts"] - kinds["started"]["ts"]),
        "frame_bytes": [n for _, _, n in frames],
        "job_bytes": sum(n for _, _, n in events),
        "first": frames[0][0] - started if frames else None,
        "points": [
            {"t": t - started, "step": e["step"], "total": e["total_steps"]} for t, e, _ in frames
        ],
    }


def build_tiny_model(folder: Path) -> Path:
    """scripts/make-tiny-model, in a child process (torch stays out of this one)."""
    command = [sys.executable, "-m", "sidecar.engines.diffusion.tiny", str(folder)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"building the tiny model failed:\n{done.stderr[-3000:]}")
    return folder


async def run(opts: Options) -> Outcome:
    size, steps = (64, 6) if opts.quick else (256, 30)
    runs = opts.n(5, 2)
    got: dict[str, list[dict]] = {}
    where = machine() + ", CPU (torch)"
    with tempfile.TemporaryDirectory(prefix="bench-diffusion-") as tmp:
        root = Path(tmp)
        model = await asyncio.to_thread(build_tiny_model, root / "tiny")
        async with Harness(root, "--model", str(model), "--device", "cpu", naive_model=model) as h:
            await product_job(h, size, steps, True, "warm up")  # kernels, allocator
            await naive_job(h, size, steps, True, "warm up")
            for run in range(runs):  # interleaved, so all four meet the same machine state
                order = ["product", "naive"] if run % 2 == 0 else ["naive", "product"]
                for side in order:
                    job = product_job if side == "product" else naive_job
                    for previews in (True, False):
                        key = f"{side} {'on' if previews else 'off'}"
                        got.setdefault(key, []).append(
                            await job(h, size, steps, previews, f"a portrait {run} {key}")
                        )
            refine_figures = await diffusion_refine.figures(h, opts, where)
    what = f"tiny model, {size}×{size}, {steps} steps"

    def values(key: str, field: str, scale: float = 1.0) -> list[float]:
        out = []
        for job in got[key]:
            value = job[field]
            if isinstance(value, list):
                value = sum(value) / len(value) if value else None
            if value is not None:
                out.append(value * scale)
        return out

    def side_by_side(number: str, title: str, unit: str, previews: str, field: str, **how):
        """A figure of one field of the jobs, both sides with step previews `previews`
        ("on", "off"); the unit gives the field's scale and which way is better."""
        scale, wording = UNITS[unit]
        product = values(f"product {previews}", field, scale)
        baseline = values(f"naive {previews}", field, scale)
        return Figure(number, title, unit, product, baseline, machine=where, **wording, **how)

    product_frames = median([len(j["frame_bytes"]) for j in got["product on"]])
    figures = [
        side_by_side(
            "5a",
            f"Diffusion step rate, step previews on ({what})",
            "steps/s",
            "on",
            "rate",
            product_how="streamed previews (x0 → RGB at 1/8, at most every 200 ms and the last"
            " step), steps ÷ time between its denoise and decode stage events",
            baseline_how="full VAE decode + JPEG + hex in SSE JSON after every step, steps ÷"
            " time between its started and done events",
            note=f"the product sent {product_frames:.0f} step previews a job, the baseline {steps}",
        ),
        side_by_side(
            "5b",
            "Diffusion step rate, step previews off",
            "steps/s",
            "off",
            "rate",
            product_how="the same job with preview.stream_steps false",
            baseline_how="the same pipeline with no step callback work",
            note="both run the same diffusers pipeline here; a ratio near 1 is expected",
        ),
        side_by_side(
            "5c",
            "Bytes per step preview",
            "KB",
            "on",
            "frame_bytes",
            product_how="binary WebSocket frame: header + JPEG of the 4× upscaled 1/8 projection",
            baseline_how=f"SSE event: JSON with the {size} px JPEG in hex",
        ),
        side_by_side(
            "5d",
            "Bytes sent per job, step previews on",
            "KB",
            "on",
            "job_bytes",
            product_how="every WebSocket message of the job (events, previews, final image)",
            baseline_how="the whole SSE stream (events, previews, final image)",
        ),
        side_by_side(
            "5e",
            "First step preview after the request",
            "ms",
            "on",
            "first",
            product_how="POST /v1/jobs → first step preview on the WebSocket",
            baseline_how="POST /generate → first preview event on the SSE stream",
        ),
        *refine_figures,
    ]
    # for the plot, each side's run with its median step rate
    middle = {
        side: sorted(got[f"{side} on"], key=lambda job: job["rate"])[runs // 2]
        for side in ("product", "naive")
    }
    plot = {
        "diffusion": {
            "what": what,
            "product": middle["product"]["points"],
            "naive": middle["naive"]["points"],
        }
    }
    return Outcome(figures=figures, plot=plot)
