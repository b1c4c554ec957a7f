"""The tiny Stable-Diffusion-style model, built once per test session, and a fixed txt2img."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

# Nothing in the diffusion tests may reach a model hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from sidecar.engines.diffusion.tiny import save_tiny_model  # noqa: E402


@pytest.fixture(scope="session", name="tiny_model_dir")
def tiny_model_dir_fixture(tmp_path_factory) -> Path:
    """A diffusers folder with `lora/beauty.safetensors` and `tiny-sd.safetensors` inside."""
    return save_tiny_model(tmp_path_factory.mktemp("tiny-sd"))


def txt2img(pipe, *, steps: int = 2, size: int = 64, seed: int = 0) -> np.ndarray:
    """A fixed-seed run returning float pixels, so two runs can be compared bit for bit."""
    return pipe(
        "a portrait, soft light",
        height=size,
        width=size,
        num_inference_steps=steps,
        generator=torch.Generator("cpu").manual_seed(seed),
        output_type="np",
    ).images[0]
