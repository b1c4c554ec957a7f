"""The VAE latent a refine starts from, kept in the stage cache (memory and disk).

A refine encodes its crop of the classical result through the VAE: one of the slow
parts of an img2img pass, and the same work for every refine of the same pixels.
Precompute does it ahead (a precompute run of a retouch op readies the latent its
refine would start from), and every refine looks here first.

The key names everything the encoder's numbers depend on: the image, this encoding's
version, the model's VAE (`vae_identity`: its files, config, device, dtype and the
library versions), the size encoded at, the VAE's dtype and tiling, and a digest of
the very pixels encoded, so a latent is never handed to a model, a size or pixels it
was not made from. On disk it is one float32 array (`ArrayCodec`), never pickled.

The latent is the encoder's mean (the mode of its distribution), never a sample: it
does not depend on the job's seed and draws nothing from the job's generator, so a
refine takes the same noise and makes the same bits whether its latent came from the
cache or from the encoder just now.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import blake3
import cv2
import diffusers
import numpy as np
import torch

from ...cache.stages import StageCache
from ...stages.latent import latent_key
from ..retouch.codecs import ARRAY
from .loading import LoadedModel

VERSION = "vae-encode/2"  # change it whenever what is encoded, or how, changes


class Latents:
    """The VAE latents of one loaded model, through the stage cache."""

    def __init__(self, model: LoadedModel, cache: StageCache) -> None:
        self.model = model
        self.cache = cache
        self.identity = vae_identity(model)

    def latent(self, image_id: str, crop: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        """The scaled latent, (1, C, h/8, w/8) float32, of `crop` (RGB float32 in 0..1)
        resized to `size` (width, height): from the cache, or encoded now and kept."""
        image = cv2.resize(crop, size, interpolation=cv2.INTER_AREA)
        return self.cache.get_or_compute(
            self.key(image_id, image), lambda: self._encode(image), ARRAY
        )

    def key(self, image_id: str, image: np.ndarray) -> str:
        """The cache key of the latent of `image`, the encoder's input (H, W, 3)."""
        vae = self.model.pipe.vae
        height, width = image.shape[:2]
        pixels = memoryview(np.ascontiguousarray(image, np.float32)).cast("B")
        digest = blake3.blake3(pixels).hexdigest()
        return latent_key(
            self.identity,
            VERSION,
            image_id,
            f"{width}x{height}",
            vae.dtype,
            f"tiling={bool(getattr(vae, 'use_tiling', False))}",
            digest,
        )

    def _encode(self, image: np.ndarray) -> np.ndarray:
        pipe = self.model.pipe
        tensor = torch.from_numpy(image).permute(2, 0, 1)[None] * 2.0 - 1.0
        with torch.no_grad(), vae_precision(pipe.vae) as vae:
            tensor = tensor.to(vae.device, vae.dtype)
            latent = vae.encode(tensor).latent_dist.mode()
        return (latent * pipe.vae.config.scaling_factor).float().cpu().numpy()


def vae_identity(model: LoadedModel) -> str:
    """What the VAE is, as far as its numbers go: the model's weight files (path, size,
    modification time: a model replaced in place is another model), the VAE's config,
    the device and dtype it runs in, and the torch and diffusers versions."""
    vae = model.pipe.vae
    source = Path(model.source).resolve()
    files = sorted(source.glob("vae/*")) if source.is_dir() else [source]
    stats = [(f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in files if f.is_file()]
    device = model.device
    if device == "cuda":
        device = f"cuda {torch.cuda.get_device_name(vae.device)}"
    material = {
        "family": model.family,
        "source": str(source),
        "files": stats,
        "config": dict(vae.config),
        "device": device,
        "dtype": str(model.dtype),
        "torch": torch.__version__,
        "diffusers": diffusers.__version__,
    }
    text = json.dumps(material, sort_keys=True, default=str)
    return blake3.blake3(text.encode()).hexdigest()[:32]


@contextlib.contextmanager
def vae_precision(vae):
    """The VAE in float32 while it works if its config asks for it (SDXL's overflows in
    float16); diffusers' pipelines do the same around their own decode."""
    upcast = vae.dtype == torch.float16 and getattr(vae.config, "force_upcast", False)
    if upcast:
        vae.to(torch.float32)
    try:
        yield vae
    finally:
        if upcast:
            vae.to(torch.float16)
