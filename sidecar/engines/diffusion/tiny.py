"""A tiny Stable-Diffusion-style model built from config with fixed seeds, for tests and dev.

It has SD 1.5's shape where it matters to the sidecar: an 8x downsampling VAE with 4 latent
channels, a cross-attention UNet and a CLIP text encoder. Weights are random but deterministic.

    python -m sidecar.engines.diffusion.tiny DIR
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import diffusers
import torch
from safetensors.torch import save_file
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

LORA_RANK = 4
LORA_TARGETS = ("to_q", "to_k", "to_v", "to_out.0")
MERGES = [
    "t h",
    "th e</w>",
    "a n",
    "e r",
    "s k",
    "i n</w>",
    "sk in</w>",
    "f a",
    "c e</w>",
    "fa ce</w>",
]


def build_tiny_pipeline(seed: int = 0) -> diffusers.StableDiffusionPipeline:
    """Builds the whole pipeline in memory, on the CPU, in float32."""
    torch.manual_seed(seed)
    unet = diffusers.UNet2DConditionModel(
        block_out_channels=(32, 64),
        layers_per_block=1,
        sample_size=32,
        in_channels=4,
        out_channels=4,
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=32,
        attention_head_dim=8,
    )
    torch.manual_seed(seed)
    vae = diffusers.AutoencoderKL(
        block_out_channels=(16, 32, 32, 32),
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        latent_channels=4,
        layers_per_block=1,
        norm_num_groups=8,
        sample_size=64,
        scaling_factor=0.18215,
    )
    tokenizer = build_tokenizer()
    torch.manual_seed(seed)
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            hidden_size=32,
            intermediate_size=37,
            num_hidden_layers=2,
            num_attention_heads=2,
            vocab_size=len(tokenizer),
            max_position_embeddings=77,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
            layer_norm_eps=1e-5,
        )
    )
    scheduler = diffusers.EulerDiscreteScheduler(
        num_train_timesteps=1000,
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        prediction_type="epsilon",
        steps_offset=1,
        timestep_spacing="trailing",
    )
    pipe = diffusers.StableDiffusionPipeline(
        vae=vae.train(False),  # inference mode
        text_encoder=text_encoder.train(False),
        tokenizer=tokenizer,
        unet=unet.train(False),
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def build_tokenizer() -> CLIPTokenizer:
    """A hub-free CLIP BPE tokenizer: every byte as a token (with and without the end-of-word
    mark, as CLIP's own vocab has them), a few merges and the two special tokens."""
    symbols = list(bytes_to_unicode().values())
    tokens = symbols + [s + "</w>" for s in symbols]
    tokens += ["".join(merge.split()) for merge in MERGES]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    vocab = {token: index for index, token in enumerate(dict.fromkeys(tokens))}
    with tempfile.TemporaryDirectory() as scratch:
        vocab_file = Path(scratch) / "vocab.json"
        merges_file = Path(scratch) / "merges.txt"
        vocab_file.write_text(json.dumps(vocab), encoding="utf-8")
        merges_file.write_text("#version: 0.2\n" + "\n".join(MERGES) + "\n", encoding="utf-8")
        return CLIPTokenizer(str(vocab_file), str(merges_file), model_max_length=77)


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible map from bytes to printable characters, which CLIP's BPE works on."""
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    codes = list(printable)
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            codes.append(256 + extra)
            extra += 1
    return {byte: chr(code) for byte, code in zip(printable, codes, strict=True)}


def tiny_lora_state_dict(unet: diffusers.UNet2DConditionModel, seed: int = 0) -> dict:
    """Rank-4 LoRA weights for every attention projection of the UNet, in the peft layout
    (`<module>.lora_A.weight`, `<module>.lora_B.weight`) that `load_lora_weights` reads.
    lora_B is non-zero (unlike a fresh training init) so the adapter changes the output."""
    generator = torch.Generator().manual_seed(seed + 1)
    state = {}
    for name, module in unet.named_modules():
        if not isinstance(module, torch.nn.Linear) or ".transformer_blocks." not in name:
            continue
        if not any(name.endswith(f".{target}") for target in LORA_TARGETS):
            continue
        down = torch.randn(LORA_RANK, module.in_features, generator=generator) * 0.2
        up = torch.randn(module.out_features, LORA_RANK, generator=generator) * 0.2
        state[f"{name}.lora_A.weight"] = down
        state[f"{name}.lora_B.weight"] = up
    return state


def save_tiny_model(directory: Path, *, seed: int = 0) -> Path:
    """Writes the diffusers folder, `lora/beauty.safetensors` and the single-file checkpoint
    `tiny-sd.safetensors` (original SD key layout) into `directory`; returns `directory`."""
    directory = Path(directory)
    pipe = build_tiny_pipeline(seed)
    pipe.save_pretrained(directory, safe_serialization=True)
    diffusers.StableDiffusionPipeline.save_lora_weights(
        directory / "lora",
        unet_lora_layers=tiny_lora_state_dict(pipe.unet, seed),
        weight_name="beauty.safetensors",
        safe_serialization=True,
    )
    checkpoint = original_sd_state_dict(pipe.unet, pipe.vae, pipe.text_encoder)
    save_file(checkpoint, directory / "tiny-sd.safetensors")
    return directory


# diffusers only converts original -> diffusers (loaders/single_file_utils.py); what follows is
# the inverse of its convert_ldm_unet_checkpoint / convert_ldm_vae_checkpoint /
# convert_ldm_clip_checkpoint, for the block types this tiny model uses.

UNET_RESNET_NAMES = [
    ("norm1", "in_layers.0"),
    ("conv1", "in_layers.2"),
    ("norm2", "out_layers.0"),
    ("conv2", "out_layers.3"),
    ("time_emb_proj", "emb_layers.1"),
    ("conv_shortcut", "skip_connection"),
]
VAE_ATTENTION_NAMES = [
    ("group_norm", "norm"),
    ("to_q", "q"),
    ("to_k", "k"),
    ("to_v", "v"),
    ("to_out.0", "proj_out"),
]


def original_sd_state_dict(unet, vae, text_encoder) -> dict[str, torch.Tensor]:
    """The three models' weights under the original Stable Diffusion key names, as
    `from_single_file` expects them."""
    state = {}
    for key, value in unet.state_dict().items():
        state["model.diffusion_model." + original_unet_key(key, unet.config)] = value
    for key, value in vae.state_dict().items():
        name = original_vae_key(key, len(vae.config.block_out_channels))
        if name.split(".")[-2] in ("q", "k", "v", "proj_out") and value.ndim == 2:
            value = value[:, :, None, None]  # the original VAE attention uses 1x1 convolutions
        state["first_stage_model." + name] = value
    for key, value in text_encoder.state_dict().items():
        # transformers >= 5.6 flattened CLIPTextModel; the original keys keep `text_model.`
        key = key if key.startswith("text_model.") else "text_model." + key
        state["cond_stage_model.transformer." + key] = value
    return {key: value.detach().contiguous().clone() for key, value in state.items()}


def original_unet_key(key: str, config) -> str:
    fixed = {
        diffusers_key.rsplit(".", 1)[0]: ldm_key.rsplit(".", 1)[0]
        for diffusers_key, ldm_key in diffusers_to_ldm_unet_layers().items()
    }
    module, _, leaf = key.rpartition(".")
    if module in fixed:
        return f"{fixed[module]}.{leaf}"
    if ".resnets." in key:
        for diffusers_name, ldm_name in UNET_RESNET_NAMES:
            key = key.replace(f".{diffusers_name}.", f".{ldm_name}.")
    per_level = config.layers_per_block + 1
    parts = key.split(".")
    if parts[0] == "down_blocks":
        level, kind, index = int(parts[1]), parts[2], int(parts[3])
        if kind == "downsamplers":
            return (
                f"input_blocks.{1 + level * per_level + config.layers_per_block}.0.op." + parts[-1]
            )
        block = 1 + level * per_level + index
        slot = 0 if kind == "resnets" else 1
        return f"input_blocks.{block}.{slot}." + ".".join(parts[4:])
    if parts[0] == "up_blocks":
        level, kind, index = int(parts[1]), parts[2], int(parts[3])
        if kind == "upsamplers":
            has_attention = "CrossAttn" in config.up_block_types[level]
            block = level * per_level + config.layers_per_block
            return f"output_blocks.{block}.{2 if has_attention else 1}.conv." + parts[-1]
        block = level * per_level + index
        slot = 0 if kind == "resnets" else 1
        return f"output_blocks.{block}.{slot}." + ".".join(parts[4:])
    if parts[0] == "mid_block":
        kind, index = parts[1], int(parts[2])
        slot = 1 if kind == "attentions" else 2 * index
        return f"middle_block.{slot}." + ".".join(parts[3:])
    raise ValueError(f"no original name for UNet weight {key}")


def original_vae_key(key: str, levels: int) -> str:
    fixed = {d: o for d, o in diffusers_to_ldm_vae_layers().items()}
    if key in fixed:
        return fixed[key]
    key = key.replace(".conv_shortcut.", ".nin_shortcut.")
    if ".mid_block.attentions.0." in key:
        key = key.replace(".mid_block.attentions.0.", ".mid.attn_1.")
        for diffusers_name, ldm_name in VAE_ATTENTION_NAMES:
            key = key.replace(f".{diffusers_name}.", f".{ldm_name}.")
        return key
    for index in range(2):
        key = key.replace(f".mid_block.resnets.{index}.", f".mid.block_{index + 1}.")
    parts = key.split(".")
    if parts[1] == "down_blocks":
        level = parts[2]
        if parts[3] == "downsamplers":
            return f"{parts[0]}.down.{level}.downsample.conv.{parts[-1]}"
        return f"{parts[0]}.down.{level}.block." + ".".join(parts[4:])
    if parts[1] == "up_blocks":
        level = levels - 1 - int(parts[2])  # the original decoder numbers its levels upward
        if parts[3] == "upsamplers":
            return f"{parts[0]}.up.{level}.upsample.conv.{parts[-1]}"
        return f"{parts[0]}.up.{level}.block." + ".".join(parts[4:])
    return key


def diffusers_to_ldm_unet_layers() -> dict[str, str]:
    from diffusers.loaders.single_file_utils import DIFFUSERS_TO_LDM_MAPPING

    return DIFFUSERS_TO_LDM_MAPPING["unet"]["layers"]


def diffusers_to_ldm_vae_layers() -> dict[str, str]:
    from diffusers.loaders.single_file_utils import DIFFUSERS_TO_LDM_MAPPING

    return DIFFUSERS_TO_LDM_MAPPING["vae"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write the tiny test model into a folder.")
    parser.add_argument("directory", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    directory = save_tiny_model(args.directory, seed=args.seed)
    for path in sorted(directory.rglob("*")):
        if path.is_file():
            print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
