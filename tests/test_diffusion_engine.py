"""The diffusion engine on the tiny model: streamed steps, cancel within a step, same
seed same bits, previews without the VAE decoder, the out-of-memory path, and the
masked refine of a retouch op."""

from __future__ import annotations

import asyncio
import json
import struct

import aiohttp
import numpy as np
import pytest
import torch
from diffusion_support import tiny_model_dir_fixture  # noqa: F401  (the fixture)
from retouch_support import FAKE_ID, RecordingContext, new_engine, skin_core, untouched_region

from sidecar.engines import Cancelled, RunInput
from sidecar.engines.diffusion.engine import DiffusionEngine
from sidecar.engines.diffusion.loading import load_model
from sidecar.schema import JobRequest


@pytest.fixture
def engine(tiny_model_dir):
    model = load_model(tiny_model_dir, device="cpu", loras={})
    retouch = new_engine()
    return DiffusionEngine(model, retouch, retouch.cache)


def generate(engine, ctx=None, *, steps=6, stream=True, seed=7, size=64, decode_every=0):
    request = JobRequest(
        op="generate",
        prompt="a portrait",
        params={"steps": steps, "width": size, "height": size},
        preview={"stream_steps": stream, "decode_every": decode_every},
    )
    ctx = ctx or RecordingContext()
    return engine.run(RunInput(request=request, seed=seed), ctx), ctx


class CancelAt(RecordingContext):
    """Cancels at the k-th progress report, as the worker does for a DELETE."""

    def __init__(self, k: int) -> None:
        super().__init__()
        self.k = k

    def progress(self, fraction):
        super().progress(fraction)
        if len(self.progress_values) == self.k:
            raise Cancelled


def count_decodes(engine) -> list[int]:
    calls = [0]
    vae = engine.model.pipe.vae
    original = vae.decode

    def decode(*args, **kwargs):
        calls[0] += 1
        return original(*args, **kwargs)

    vae.decode = decode
    return calls


def test_steps_stream_in_order_and_previews_never_decode(engine, monkeypatch):
    monkeypatch.setattr("sidecar.engines.diffusion.previews.MIN_INTERVAL", 0.0)
    decodes = count_decodes(engine)
    engine_previews = []
    image, ctx = generate(engine, steps=6)
    engine_previews = [p for p in ctx.previews if p[0] == "step"]
    assert image.shape == (64, 64, 3) and image.dtype == np.uint8
    assert [p[2] for p in engine_previews] == list(range(1, 7))
    assert all(p[3] == 6 for p in engine_previews)
    assert engine_previews[0][1] == (32, 32)  # the 8×8 latent, 4× up
    assert ctx.previews[-1][0] == "final"
    assert decodes[0] == 1  # the final image only: six step previews cost no decode
    assert ctx.progress_values == sorted(ctx.progress_values)


def test_every_nth_step_can_be_fully_decoded_on_request(engine, monkeypatch):
    monkeypatch.setattr("sidecar.engines.diffusion.previews.MIN_INTERVAL", 0.0)
    decodes = count_decodes(engine)
    _, ctx = generate(engine, steps=6, decode_every=3)
    sizes = [p[1] for p in ctx.previews if p[0] == "step"]
    assert decodes[0] == 2 + 1  # steps 3 and 6, then the final image
    assert sizes == [(32, 32), (32, 32), (64, 64), (32, 32), (32, 32), (64, 64)]


def test_previews_are_throttled_and_can_be_turned_off(engine):
    ticks = iter(range(1, 100))
    engine.preview_clock = lambda: next(ticks) * 0.125  # a step takes 0.125 s here
    _, throttled = generate(engine, steps=8)
    steps = [p[2] for p in throttled.previews if p[0] == "step"]
    # one preview per 0.2 s at most: every other step, and the last one always
    assert steps == [1, 3, 5, 7, 8]
    _, quiet = generate(engine, steps=8, stream=False)
    assert [p[0] for p in quiet.previews] == ["final"]


def test_same_seed_same_bits_and_another_seed_differs(engine):
    first, _ = generate(engine, seed=3)
    second, _ = generate(engine, seed=3)
    other, _ = generate(engine, seed=4)
    assert np.array_equal(first, second)
    assert not np.array_equal(first, other)


def test_cancel_at_step_k_stops_within_one_step(engine):
    decodes = count_decodes(engine)
    ctx = CancelAt(3)
    with pytest.raises(Cancelled):
        generate(engine, ctx, steps=10)
    assert len(ctx.progress_values) == 3  # no step ran after the one that saw the cancel
    assert decodes[0] == 0  # and nothing was decoded on the way out


def test_out_of_memory_retries_with_memory_savers_then_smaller(engine, monkeypatch):
    unet = engine.model.pipe.unet
    forward = unet.forward
    failures = [2]

    def flaky(*args, **kwargs):
        if failures[0] > 0:
            failures[0] -= 1
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return forward(*args, **kwargs)

    monkeypatch.setattr(unet, "forward", flaky)
    image, ctx = generate(engine, steps=3, size=128)
    assert image.shape == (128, 128, 3)  # made at 75 %, then brought back to the asked size
    retries = [s for s in ctx.stages if s.startswith("retry")]
    assert len(retries) == 2 and "memory savers" in retries[0] and "75%" in retries[1]


def test_refine_changes_skin_only_and_keeps_the_seed(engine, portrait):
    def refine(seed):
        request = JobRequest(op="beauty", image_id=FAKE_ID, params={"refine": 0.4, "steps": 4})
        ctx = RecordingContext()
        out = engine.run(RunInput(request=request, seed=seed, pixels=portrait), ctx)
        return out, ctx

    out, ctx = refine(5)
    again, _ = refine(5)
    classical = engine.retouch.run(
        RunInput(request=JobRequest(op="beauty", image_id=FAKE_ID), seed=5, pixels=portrait),
        RecordingContext(),
    )
    assert np.array_equal(out, again)
    assert "refine" in ctx.stages and "merge" in ctx.stages
    analysis = engine.retouch.analyse(FAKE_ID, portrait)
    outside = untouched_region(analysis)
    diff = np.abs(out.astype(int) - classical.astype(int))
    assert diff[outside].max() <= 1  # the refine only touches skin
    assert diff[skin_core(analysis)].mean() > 0.5  # and it does touch it


def test_refine_reuses_the_cached_latent(engine, portrait):
    vae = engine.model.pipe.vae
    calls = [0]
    original = vae.encode

    def encode(*args, **kwargs):
        calls[0] += 1
        return original(*args, **kwargs)

    vae.encode = encode
    request = JobRequest(op="color", image_id=FAKE_ID, params={"refine": 0.3, "steps": 3})
    for _ in range(2):
        engine.run(RunInput(request=request, seed=1, pixels=portrait), RecordingContext())
    assert calls[0] == 1


def test_each_op_gets_its_own_lora_without_a_reload(tiny_model_dir, portrait):
    lora = tiny_model_dir / "lora" / "beauty.safetensors"
    with_lora = load_model(tiny_model_dir, device="cpu", loras={"beauty": lora})
    plain = load_model(tiny_model_dir, device="cpu", loras={})
    retouch = new_engine()
    engines = [DiffusionEngine(m, retouch, retouch.cache) for m in (with_lora, plain)]
    unet = with_lora.pipe.unet

    def refine(engine, op):
        request = JobRequest(op=op, image_id=FAKE_ID, params={"refine": 0.5, "steps": 2})
        return engine.run(RunInput(request=request, seed=9, pixels=portrait), RecordingContext())

    assert not np.array_equal(refine(engines[0], "beauty"), refine(engines[1], "beauty"))
    # color has no LoRA: the adapter is switched off for it, on the same loaded UNet
    assert np.array_equal(refine(engines[0], "color"), refine(engines[1], "color"))
    assert with_lora.pipe.unet is unet


async def test_a_sidecar_with_a_model_generates_and_streams(
    aiohttp_client, settings, tiny_model_dir
):
    from jobs_support import wait_for

    from sidecar.cli import build_app

    settings = settings.model_copy(update={"model": tiny_model_dir, "device": "cpu"})
    client = await aiohttp_client(build_app(settings))
    auth = {"Authorization": f"Bearer {settings.token_path.read_text().strip()}"}
    health = await (await client.get("/v1/health")).json()
    assert "sd15" in health["engines"]["diffusion"]["detail"]
    body = {
        "op": "generate",
        "prompt": "a portrait",
        "params": {"steps": 4, "width": 64, "height": 64},
        "preview": {"stream_steps": True},
    }
    token = auth["Authorization"][7:]
    async with client.ws_connect(f"/v1/ws?token={token}") as ws:
        response = await client.post("/v1/jobs", json=body, headers=auth)
        assert response.status == 202, await response.text()
        job_id = (await response.json())["job_id"]
        events = []
        async with asyncio.timeout(60):
            while not events or events[-1]["type"] != "done":
                message = await ws.receive()
                if message.type is aiohttp.WSMsgType.BINARY:
                    (length,) = struct.unpack(">I", message.data[:4])
                    events.append(json.loads(message.data[4 : 4 + length]))
                else:
                    events.append(json.loads(message.data))
    assert (await wait_for(client, auth, job_id, timeout=60))["state"] == "done"
    seqs = [e["seq"] for e in events]
    assert seqs == sorted(set(seqs))
    steps = [e["step"] for e in events if e["type"] == "preview" and e["level"] == "step"]
    assert steps and steps == sorted(steps) and steps[-1] == 4
    raw = await client.get(f"/v1/jobs/{job_id}/result?format=raw", headers=auth)
    assert raw.headers["X-Image-Width"] == "64" and len(await raw.read()) == 64 * 64 * 3
    bad = {**body, "params": {"steps": 4, "width": 65}}
    response = await client.post("/v1/jobs", json=bad, headers=auth)
    assert response.status == 422
