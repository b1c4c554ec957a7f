"""The VAE latent of an image: a stage slot the diffusion engine fills.

Encoding a 1 MP crop through the VAE is one of the slow parts of an img2img pass; its
result is cached like every other stage, under a key naming this version, the model
and what was encoded, so a second run on the same pixels skips the encoder. This room
holds no torch: the engine computes the array and hands it over.
"""

from __future__ import annotations

from ..cache.stages import stage_key

VERSION = "latent/1"


def latent_key(model: str, *parts: object) -> str:
    """Cache key of the latent of whatever `parts` name, under `model`."""
    return stage_key(VERSION, model, *parts)
