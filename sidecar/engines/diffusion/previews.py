"""Denoising previews without the VAE: the scheduler's predicted clean latent (x0)
projected to RGB with a fixed linear map, at latent resolution (1/8).

A full VAE decode per step costs about as much as a denoising step; the projection
costs a 4×3 matrix product. The factors are the public approximations for the SD 1.5
and SDXL latent spaces (ComfyUI and InvokeAI publish the same figures).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import cv2
import numpy as np
import torch

LATENT_RGB = {
    "sd15": (
        [
            [0.3512, 0.2297, 0.3227],
            [0.3250, 0.4974, 0.2350],
            [-0.2829, 0.1762, 0.2721],
            [-0.2120, -0.2616, -0.7177],
        ],
        [0.0, 0.0, 0.0],
    ),
    "sdxl": (
        [
            [0.3920, 0.4054, 0.4549],
            [-0.2634, -0.0196, 0.0653],
            [0.0568, 0.1687, -0.0755],
            [-0.3112, -0.2359, -0.2076],
        ],
        [0.1084, -0.0175, -0.0011],
    ),
}
MIN_INTERVAL = 0.2  # seconds between step previews
UPSCALE = 4  # 64 px of latent → 256 px on screen


def latent_to_rgb(latents: torch.Tensor, family: str, upscale: int = UPSCALE) -> np.ndarray:
    """(1, 4, h, w) latents → (h·upscale, w·upscale, 3) uint8 RGB."""
    factors, bias = LATENT_RGB.get(family, LATENT_RGB["sd15"])
    weight = torch.tensor(factors, dtype=torch.float32, device=latents.device)
    offset = torch.tensor(bias, dtype=torch.float32, device=latents.device)
    with torch.no_grad():
        rgb = torch.einsum("chw,cr->hwr", latents[0].float(), weight) + offset
        rgb = ((rgb + 1.0) * 127.5).clamp(0, 255).round().to(torch.uint8).cpu().numpy()
    if upscale > 1:
        height, width = rgb.shape[:2]
        rgb = cv2.resize(rgb, (width * upscale, height * upscale), interpolation=cv2.INTER_LINEAR)
    return rgb


class StepPreviews:
    """Keeps the newest x0 the scheduler predicted and decides when a preview is due."""

    def __init__(
        self,
        family: str,
        enabled: bool,
        interval: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.family = family
        self.enabled = enabled
        self.interval = MIN_INTERVAL if interval is None else interval
        self.clock = clock
        self.x0: torch.Tensor | None = None
        self._last = float("-inf")
        self.sent = 0

    def due(self, final_step: bool) -> bool:
        if not self.enabled or self.x0 is None:
            return False
        now = self.clock()
        if final_step or now - self._last >= self.interval:
            self._last = now
            return True
        return False

    def image(self) -> np.ndarray:
        assert self.x0 is not None
        self.sent += 1
        return latent_to_rgb(self.x0, self.family)


def capture_x0(scheduler, previews: StepPreviews):
    """Wrap `scheduler.step` so every step leaves its predicted clean latent behind.
    Returns a function that undoes the wrap."""
    original = scheduler.step
    shadowed = "step" in vars(scheduler)

    def step(model_output, timestep, sample, *args, **kwargs):
        out = original(model_output, timestep, sample, *args, **kwargs)
        x0 = getattr(out, "pred_original_sample", None)
        if x0 is None and isinstance(out, tuple) and len(out) > 1:
            x0 = out[1]
        previews.x0 = (x0 if x0 is not None else _first(out)).detach()
        return out

    scheduler.step = step

    def undo() -> None:
        if shadowed:
            scheduler.step = original
        else:
            del scheduler.step

    return undo


def _first(out):
    return out[0] if isinstance(out, tuple) else out.prev_sample
