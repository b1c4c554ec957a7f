"""Streaming denoising previews: what they cost, against the naive way.

On the tiny model (CPU here; a real model where a GPU is lent), side by side in one run:
- step rate of `generate` with step previews streamed vs off (the cost of streaming);
- the naive preview (a full VAE decode of the current latents every step, as JPEG,
  hex in JSON) vs ours (x0 projected to RGB at 1/8, JPEG in a binary frame): step
  rate, bytes per frame and per second;
- time from POST /v1/jobs to the first step preview on a WebSocket, against a real
  sidecar started with --model.

    .venv/bin/python -m bench.diffusion            # 256 px, 30 steps, 5 runs
    .venv/bin/python -m bench.diffusion --quick    # 64 px, 6 steps, 2 runs (CI)
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import aiohttp  # noqa: E402
import torch  # noqa: E402

from sidecar.engines import RunInput  # noqa: E402
from sidecar.engines.diffusion.engine import DiffusionEngine  # noqa: E402
from sidecar.engines.diffusion.loading import load_model  # noqa: E402
from sidecar.engines.diffusion.tiny import save_tiny_model  # noqa: E402
from sidecar.engines.retouch import RetouchEngine  # noqa: E402
from sidecar.imaging.encode import encode_jpeg  # noqa: E402
from sidecar.schema import JobRequest  # noqa: E402

from .client import Events  # noqa: E402
from .report import arguments, machine, median, publish  # noqa: E402
from .sidecar import Sidecar  # noqa: E402


class Tally:
    """A job context that counts what would go over the wire."""

    def __init__(self, naive_pipe=None) -> None:
        self.frames = 0
        self.bytes = 0
        self._naive = naive_pipe

    def stage(self, *args) -> None: ...

    def checkpoint(self) -> None: ...

    def progress(self, fraction: float) -> None:
        if self._naive is not None:  # the naive way: decode what we have, every step
            latents = self._naive.latest
            with torch.no_grad():
                image = self._naive.vae.decode(latents / self._naive.vae.config.scaling_factor)
            rgb = ((image.sample[0].permute(1, 2, 0) + 1) * 127.5).clamp(0, 255)
            jpeg = encode_jpeg(rgb.to(torch.uint8).numpy())
            message = json.dumps({"type": "preview", "jpeg_hex": jpeg.hex()})
            self.frames += 1
            self.bytes += len(message)

    def preview(self, level, rgb, *, step=None, total_steps=None) -> None:
        if level == "step":
            header = json.dumps({"type": "preview", "level": level, "step": step}).encode()
            self.frames += 1
            self.bytes += 4 + len(header) + len(encode_jpeg(rgb))


def steps_per_second(engine, size: int, steps: int, mode: str) -> tuple[float, Tally]:
    pipe = engine.model.pipe
    tally = Tally(pipe if mode == "naive" else None)
    if mode == "naive":  # keep the newest latents where the naive context can see them
        original = pipe.scheduler.step

        def step(*args, **kwargs):
            out = original(*args, **kwargs)
            pipe.latest = out.prev_sample if hasattr(out, "prev_sample") else out[0]
            return out

        pipe.scheduler.step = step
    request = JobRequest(
        op="generate",
        prompt="a portrait",
        params={"steps": steps, "width": size, "height": size},
        preview={"stream_steps": mode == "streamed"},
    )
    started = time.perf_counter()
    engine.run(RunInput(request, None, 1, {}), tally)
    elapsed = time.perf_counter() - started
    if mode == "naive":
        del pipe.scheduler.step
    return steps / elapsed, tally


async def first_preview(model_dir: Path, size: int, steps: int, runs: int) -> list[float]:
    times = []
    with tempfile.TemporaryDirectory(prefix="bench-diffusion-") as tmp:
        args = ("--model", str(model_dir), "--device", "cpu")
        with Sidecar(Path(tmp), *args) as sidecar:
            async with aiohttp.ClientSession() as session, Events(session, sidecar) as events:
                for run in range(runs + 1):
                    body = {
                        "op": "generate",
                        "prompt": f"a portrait {run}",
                        "params": {"steps": steps, "width": size, "height": size},
                        "preview": {"stream_steps": True},
                    }
                    started = time.perf_counter()
                    url = f"{sidecar.url}/v1/jobs"
                    async with session.post(url, json=body, headers=sidecar.auth) as r:
                        job_id = (await r.json())["job_id"]
                    arrived = await asyncio.wait_for(events.expect(job_id, "preview"), 120)
                    await asyncio.wait_for(events.expect(job_id, "done"), 300)
                    if run:  # the first job warms the model's kernels
                        times.append(arrived - started)
    return times


def main(argv: list[str] | None = None) -> int:
    args = arguments(__doc__, "64 px, 6 steps, 2 runs (CI)", argv)
    size, steps = (64, 6) if args.quick else (256, 30)
    runs = args.runs or (2 if args.quick else 5)
    with tempfile.TemporaryDirectory(prefix="tiny-sd-") as tmp:
        model_dir = save_tiny_model(Path(tmp))
        model = load_model(model_dir, device="cpu")
        retouch = RetouchEngine()
        engine = DiffusionEngine(model, retouch, retouch.cache)
        steps_per_second(engine, size, steps, "off")  # warm-up
        rates: dict[str, list[float]] = {"off": [], "streamed": [], "naive": []}
        tallies: dict[str, Tally] = {}
        for _ in range(runs):  # interleaved so all three meet the same machine state
            for mode in rates:
                rate, tallies[mode] = steps_per_second(engine, size, steps, mode)
                rates[mode].append(rate)
        first = asyncio.run(first_preview(model_dir, size, steps, runs))
    off = median(rates["off"])
    rows = []
    for mode, label in (
        ("off", "step previews off"),
        ("streamed", "streamed: x0 → RGB at 1/8, binary frame"),
        ("naive", "naive: full VAE decode per step, JPEG, hex in JSON"),
    ):
        tally = tallies[mode]
        rate = median(rates[mode])
        per_frame = tally.bytes / tally.frames if tally.frames else 0
        rows.append(
            [
                label,
                f"{rate:.1f}",
                f"{rate / off:.2f}",
                f"{tally.frames}",
                f"{per_frame / 1000:.1f} KB" if tally.frames else "n/a",
                f"{tally.bytes / tally.frames * rate / 1000:.0f} KB/s" if tally.frames else "n/a",
            ]
        )
    meta = {
        "machine": machine() + ", " + ("cuda" if torch.cuda.is_available() else "CPU"),
        "runs": runs,
        "input": f"tiny SD-style model (scripts/make-tiny-model), generate {size}×{size},"
        f" {steps} steps; previews at most every 200 ms",
        "target": "step rate streamed / off >= 0.95",
        "first_step_preview": f"{median(first) * 1000:.0f} ms from POST /v1/jobs to the first"
        " step preview on a WebSocket (median, real sidecar with --model)",
    }
    header = ["previews", "steps/s", "vs off", "frames", "bytes/frame", "bytes/s"]
    publish(args, "diffusion", "Diffusion: streaming denoising previews", header, rows, meta)
    return 0


if __name__ == "__main__":
    sys.exit(main())
