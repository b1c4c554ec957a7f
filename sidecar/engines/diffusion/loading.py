"""Loading a local Stable Diffusion model (a diffusers folder or a single .safetensors file)
onto the best device, with optional per-operation LoRA adapters. Nothing is ever downloaded."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import diffusers
import torch
from diffusers.utils import USE_PEFT_BACKEND
from safetensors import SafetensorError, safe_open

FAMILY_PIPELINES = {
    "sd15": (diffusers.StableDiffusionPipeline, diffusers.StableDiffusionImg2ImgPipeline),
    "sdxl": (diffusers.StableDiffusionXLPipeline, diffusers.StableDiffusionXLImg2ImgPipeline),
}
SDXL_KEY_PREFIX = "conditioner.embedders.1."
UNET_KEY_PREFIX = "model.diffusion_model."
# What diffusers raises on a folder or file it cannot make sense of.
LOAD_ERRORS = (OSError, ValueError, KeyError, RuntimeError, TypeError, SafetensorError)


@dataclass(frozen=True)
class LoadedModel:
    """A txt2img pipeline and what it is; `loras` maps an op name to its adapter name."""

    pipe: diffusers.DiffusionPipeline
    family: str
    device: str
    dtype: torch.dtype
    source: str
    loras: dict[str, str] = field(default_factory=dict)

    def describe(self) -> str:
        """One line for /v1/health, e.g. "sd15 tiny-sd on cpu float32, LoRA: beauty"."""
        name = Path(self.source).stem
        dtype = str(self.dtype).removeprefix("torch.")
        lora = "LoRA: " + ", ".join(sorted(self.loras)) if self.loras else "no LoRA"
        return f"{self.family} {name} on {self.device} {dtype}, {lora}"


def pick_device(requested: str = "auto") -> str:
    """`auto` picks cuda, then mps, then cpu; asking for a device that is absent is an error."""
    available = {
        "cuda": torch.cuda.is_available(),
        "mps": torch.backends.mps.is_available(),
        "cpu": True,
    }
    if requested == "auto":
        return next(device for device, present in available.items() if present)
    if requested not in available:
        raise ValueError(f"unknown device {requested!r}: use auto, cuda, mps or cpu")
    if not available[requested]:
        raise ValueError(f"device {requested!r} was asked for but is not available here")
    return requested


def load_model(
    path: Path,
    *,
    device: str = "auto",
    loras: dict[str, Path] | None = None,
    single_file_config: Path | None = None,
) -> LoadedModel:
    """Loads a diffusers folder (has model_index.json) or a single .safetensors checkpoint.

    A single file carries weights only, so it needs `single_file_config`: a local diffusers
    folder of the same family (configs and tokenizer; its weights are not read). Every
    failure to load is a ValueError.
    """
    path = Path(path)
    device = pick_device(device)
    dtype = torch.float32 if device == "cpu" else torch.float16
    if path.is_dir() and (path / "model_index.json").is_file():
        pipe, family = _load_folder(path, dtype)
    elif path.is_file() and path.suffix == ".safetensors":
        pipe, family = _load_single_file(path, dtype, single_file_config)
    elif not path.exists():
        raise ValueError(f"model not found: {path}")
    else:
        raise ValueError(
            f"not a model: {path} (expected a diffusers folder with model_index.json "
            "or a .safetensors checkpoint)"
        )
    pipe.to(device)
    pipe.set_progress_bar_config(disable=True)
    adapters = _load_loras(pipe, loras or {})
    return LoadedModel(pipe, family, device, dtype, str(path), adapters)


def img2img_pipe(model: LoadedModel) -> diffusers.DiffusionPipeline:
    """An img2img pipeline over the same components (same UNet object, same LoRAs); no reload."""
    pipe = FAMILY_PIPELINES[model.family][1].from_pipe(model.pipe)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def use_lora(model: LoadedModel, op: str | None) -> None:
    """Makes only `op`'s adapter active, or none when op is None or has no LoRA."""
    if not model.loras:
        return
    adapter = model.loras.get(op) if op is not None else None
    if adapter is None:
        model.pipe.disable_lora()
        return
    model.pipe.enable_lora()
    model.pipe.set_adapters([adapter])


def enable_memory_savers(model: LoadedModel) -> None:
    """Attention slicing and VAE tiling: slower, but fits where memory is short."""
    model.pipe.enable_attention_slicing()
    model.pipe.vae.enable_tiling()


def _load_folder(path: Path, dtype: torch.dtype) -> tuple[diffusers.DiffusionPipeline, str]:
    try:
        index = json.loads((path / "model_index.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ValueError(f"unreadable model_index.json in {path}: {error}") from error
    family = "sdxl" if "StableDiffusionXL" in str(index.get("_class_name", "")) else "sd15"
    try:
        pipe = FAMILY_PIPELINES[family][0].from_pretrained(
            path, dtype=dtype, use_safetensors=True, local_files_only=True
        )
    except LOAD_ERRORS as error:
        raise ValueError(f"cannot load the model folder {path}: {error}") from error
    return pipe, family


def _load_single_file(
    path: Path, dtype: torch.dtype, config: Path | None
) -> tuple[diffusers.DiffusionPipeline, str]:
    family = checkpoint_family(path)
    # Without a config, diffusers 0.42 drops local_files_only and goes to the hub for one.
    if config is None or not (Path(config) / "model_index.json").is_file():
        raise ValueError(
            f"the checkpoint {path} needs a local diffusers folder of the same family "
            f"({family}) as its config (--model-config DIR); got {config}"
        )
    try:
        pipe = FAMILY_PIPELINES[family][0].from_single_file(
            str(path), config=str(config), dtype=dtype, local_files_only=True
        )
    except LOAD_ERRORS as error:
        raise ValueError(f"cannot load the checkpoint {path}: {error}") from error
    return pipe, family


def checkpoint_family(path: Path) -> str:
    """ "sdxl" or "sd15", from the key names of an original-layout checkpoint (header only)."""
    try:
        with safe_open(str(path), framework="pt") as checkpoint:
            keys = list(checkpoint.keys())
    except (SafetensorError, OSError) as error:
        raise ValueError(f"not a readable .safetensors file: {path}: {error}") from error
    if not any(key.startswith(UNET_KEY_PREFIX) for key in keys):
        raise ValueError(f"not a Stable Diffusion checkpoint (no UNet weights): {path}")
    return "sdxl" if any(key.startswith(SDXL_KEY_PREFIX) for key in keys) else "sd15"


def _load_loras(pipe: diffusers.DiffusionPipeline, loras: dict[str, Path]) -> dict[str, str]:
    for op, path in loras.items():
        if not Path(path).is_file():
            raise ValueError(f"LoRA for {op} not found: {path}")
    if loras and not USE_PEFT_BACKEND:
        raise ValueError("LoRA files need the 'peft' package, which is not installed")
    adapters = {}
    for op, path in loras.items():
        try:
            pipe.load_lora_weights(str(path), adapter_name=op)
        except LOAD_ERRORS as error:
            raise ValueError(f"cannot load the LoRA for {op} from {path}: {error}") from error
        adapters[op] = op
    return adapters
