"""Loading the tiny model from a folder and from a single file, img2img over the same
components, per-op LoRAs, device choice and clear errors for anything that is not a model."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from diffusers.loaders.single_file_utils import (
    convert_ldm_clip_checkpoint,
    convert_ldm_unet_checkpoint,
    convert_ldm_vae_checkpoint,
)
from diffusers.utils import USE_PEFT_BACKEND
from diffusion_support import tiny_model_dir_fixture, txt2img  # noqa: F401  (a fixture)
from PIL import Image

from sidecar.engines.diffusion.loading import (
    LoadedModel,
    enable_memory_savers,
    img2img_pipe,
    load_model,
    pick_device,
    use_lora,
)
from sidecar.engines.diffusion.tiny import (
    build_tiny_pipeline,
    original_sd_state_dict,
    save_tiny_model,
)

needs_peft = pytest.mark.skipif(not USE_PEFT_BACKEND, reason="LoRA loading needs peft")
has_accelerator = torch.cuda.is_available() or torch.backends.mps.is_available()


def files_of(directory):
    return {p.relative_to(directory): p.read_bytes() for p in directory.rglob("*") if p.is_file()}


def test_same_seed_writes_identical_files(tiny_model_dir, tmp_path):
    again = save_tiny_model(tmp_path / "again")
    assert files_of(again) == files_of(tiny_model_dir)


def test_different_seed_gives_different_weights():
    first, second = build_tiny_pipeline(0), build_tiny_pipeline(1)
    assert not torch.equal(first.unet.conv_in.weight, second.unet.conv_in.weight)


def test_vae_downsamples_eight_times(tiny_model_dir):
    vae = load_model(tiny_model_dir, device="cpu").pipe.vae
    image = torch.rand(1, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        latent = vae.encode(image).latent_dist.mean
        decoded = vae.decode(latent).sample
    assert latent.shape == (1, 4, 8, 8)
    assert decoded.shape == (1, 3, 64, 64)


def test_folder_loads_and_fixed_seed_txt2img_repeats_bit_for_bit(tiny_model_dir):
    model = load_model(tiny_model_dir, device="cpu")
    assert (model.family, model.device, model.dtype) == ("sd15", "cpu", torch.float32)
    first, second = txt2img(model.pipe), txt2img(model.pipe)
    assert first.shape == (64, 64, 3)
    assert first.std() > 0
    assert np.array_equal(first, second)


def test_single_file_checkpoint_gives_the_same_bits_as_the_folder(tiny_model_dir):
    folder = load_model(tiny_model_dir, device="cpu")
    single = load_model(
        tiny_model_dir / "tiny-sd.safetensors", device="cpu", single_file_config=tiny_model_dir
    )
    assert single.family == "sd15"
    assert np.array_equal(txt2img(single.pipe), txt2img(folder.pipe))


def test_single_file_keys_convert_back_to_exactly_the_diffusers_keys():
    # from_single_file loads non-strictly: a misnamed LayerNorm would keep its default init
    # and go unnoticed by the pixel comparison, so compare key sets through diffusers' own
    # original->diffusers converters.
    pipe = build_tiny_pipeline()
    checkpoint = original_sd_state_dict(pipe.unet, pipe.vae, pipe.text_encoder)
    unet = convert_ldm_unet_checkpoint(checkpoint, dict(pipe.unet.config))
    vae = convert_ldm_vae_checkpoint(checkpoint, dict(pipe.vae.config))
    clip = {
        k.removeprefix("text_model."): v for k, v in convert_ldm_clip_checkpoint(checkpoint).items()
    }
    assert set(unet) == set(pipe.unet.state_dict())
    assert set(vae) == set(pipe.vae.state_dict())
    assert set(clip) == set(pipe.text_encoder.state_dict())


def test_img2img_pipe_shares_the_loaded_components_and_runs(tiny_model_dir):
    model = load_model(tiny_model_dir, device="cpu")
    pipe = img2img_pipe(model)
    assert pipe.unet is model.pipe.unet and pipe.vae is model.pipe.vae
    source = Image.fromarray((txt2img(model.pipe) * 255).astype(np.uint8))
    result = pipe(
        "a portrait",
        image=source,
        strength=0.5,
        num_inference_steps=4,
        generator=torch.Generator("cpu").manual_seed(0),
        output_type="np",
    ).images[0]
    assert result.shape == (64, 64, 3)


def test_memory_savers_keep_the_model_working(tiny_model_dir):
    model = load_model(tiny_model_dir, device="cpu")
    enable_memory_savers(model)
    assert model.pipe.vae.use_tiling
    assert txt2img(model.pipe).shape == (64, 64, 3)


@needs_peft
def test_lora_changes_the_output_and_switching_off_restores_it_without_reload(tiny_model_dir):
    model = load_model(
        tiny_model_dir, device="cpu", loras={"beauty": tiny_model_dir / "lora/beauty.safetensors"}
    )
    assert model.loras == {"beauty": "beauty"}
    unet = model.pipe.unet
    use_lora(model, None)
    plain = txt2img(model.pipe)
    use_lora(model, "beauty")
    with_lora = txt2img(model.pipe)
    use_lora(model, "dodge_burn")  # an op without a LoRA runs the base model
    back = txt2img(model.pipe)
    assert not np.array_equal(plain, with_lora)
    assert np.array_equal(plain, back)
    assert model.pipe.unet is unet


@needs_peft
def test_a_corrupt_lora_file_is_a_value_error_naming_it(tiny_model_dir, tmp_path):
    bad = tmp_path / "broken.safetensors"
    bad.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00not a header")
    with pytest.raises(ValueError, match="broken.safetensors"):
        load_model(tiny_model_dir, device="cpu", loras={"beauty": bad})


def test_a_missing_lora_file_is_a_value_error_naming_it(tiny_model_dir, tmp_path):
    with pytest.raises(ValueError, match="nowhere.safetensors"):
        load_model(tiny_model_dir, device="cpu", loras={"beauty": tmp_path / "nowhere.safetensors"})


def test_describe_names_family_device_dtype_and_loras(tiny_model_dir):
    model = load_model(tiny_model_dir, device="cpu")
    assert model.describe() == f"sd15 {tiny_model_dir.name} on cpu float32, no LoRA"
    with_lora = LoadedModel(
        model.pipe, "sd15", "cpu", torch.float32, "/m/tiny-sd", {"beauty": "beauty"}
    )
    assert with_lora.describe() == "sd15 tiny-sd on cpu float32, LoRA: beauty"


@pytest.mark.skipif(has_accelerator, reason="this machine has an accelerator")
def test_auto_device_is_cpu_without_an_accelerator():
    assert pick_device("auto") == "cpu"


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_asking_for_absent_cuda_is_a_value_error():
    with pytest.raises(ValueError, match="cuda"):
        pick_device("cuda")


def test_unknown_device_is_a_value_error():
    with pytest.raises(ValueError, match="tpu"):
        pick_device("tpu")


def _missing(tmp_path):
    return tmp_path / "no-such-model"


def _text_file(tmp_path):
    path = tmp_path / "model.txt"
    path.write_text("not a model")
    return path


def _empty_folder(tmp_path):
    path = tmp_path / "empty"
    path.mkdir()
    return path


def _corrupt_checkpoint(tmp_path):
    path = tmp_path / "corrupt.safetensors"
    path.write_bytes(b"garbage, not safetensors")
    return path


@pytest.mark.parametrize("make", [_missing, _text_file, _empty_folder, _corrupt_checkpoint])
def test_anything_but_a_model_is_a_value_error_naming_the_path(make, tmp_path):
    path = make(tmp_path)
    with pytest.raises(ValueError, match=path.name):
        load_model(path, device="cpu")


def test_a_safetensors_file_that_is_not_a_checkpoint_is_a_value_error(tiny_model_dir):
    with pytest.raises(ValueError, match="not a Stable Diffusion checkpoint"):
        load_model(tiny_model_dir / "lora/beauty.safetensors", device="cpu")


def test_single_file_without_a_local_config_folder_is_a_value_error(tiny_model_dir, tmp_path):
    # diffusers would otherwise ignore local_files_only and ask the hub for configs.
    checkpoint = tiny_model_dir / "tiny-sd.safetensors"
    for config in (None, tmp_path):
        with pytest.raises(ValueError, match="needs a local diffusers folder"):
            load_model(checkpoint, device="cpu", single_file_config=config)
