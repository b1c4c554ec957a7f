"""Naive streaming of denoising steps: after every step the whole current latent goes
through the VAE, the image is encoded as a JPEG and sent hex-encoded inside a JSON
event. Nothing is skipped and nothing is rate-limited."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import diffusers  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from sidecar.imaging.encode import encode_jpeg  # noqa: E402


def load_pipeline(model_dir: Path) -> diffusers.StableDiffusionPipeline:
    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.float16 if device == "cuda" else torch.float32
    pipe = diffusers.StableDiffusionPipeline.from_pretrained(
        str(model_dir), torch_dtype=dtype, safety_checker=None, local_files_only=True
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(device)


def _jpeg_hex(image: torch.Tensor) -> str:
    """(1, 3, H, W) in [-1, 1] → JPEG → hex."""
    rgb = ((image[0].float().permute(1, 2, 0) + 1.0) * 127.5).clamp(0, 255).round()
    return encode_jpeg(rgb.to(torch.uint8).cpu().numpy()).hex()


def generate(
    pipe: diffusers.StableDiffusionPipeline,
    send: Callable[[dict], None],
    *,
    prompt: str,
    width: int,
    height: int,
    steps: int,
    seed: int = 0,
    previews: bool = True,
) -> None:
    """Run one txt2img job, calling `send` with each event (started, preview, done)."""
    vae = pipe.vae

    def on_step(_pipe, index: int, _timestep, tensors: dict) -> dict:
        if previews:
            with torch.no_grad():
                image = vae.decode(tensors["latents"] / vae.config.scaling_factor).sample
            send(
                {
                    "type": "preview",
                    "step": index + 1,
                    "total_steps": steps,
                    "ts": time.time(),
                    "jpeg_hex": _jpeg_hex(image),
                }
            )
        return tensors

    send({"type": "started", "ts": time.time()})
    out = pipe(
        prompt=prompt,
        width=width,
        height=height,
        num_inference_steps=steps,
        generator=torch.Generator("cpu").manual_seed(seed),
        output_type="np",
        callback_on_step_end=on_step,
    )
    denoised = time.time()
    final = np.clip(np.rint(out.images[0] * 255.0), 0, 255).astype(np.uint8)
    send({"type": "done", "ts": denoised, "jpeg_hex": encode_jpeg(final).hex()})
