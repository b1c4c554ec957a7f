"""The refine's VAE latent, readied ahead: a precompute run encodes it into the stage
cache, a refine after it skips the encoder and makes the same bytes as one without, a
pre-empted precompute resumes at the encoder, another model, size or input never takes
a latent that is not its own, and the disk tier keeps it across a restart."""

from __future__ import annotations

import numpy as np
import pytest
from diffusion_support import tiny_model_dir_fixture  # noqa: F401  (the fixture)
from jobs_support import upload, wait_for
from retouch_support import FAKE_ID, RecordingContext

from sidecar.api.keys import ENGINES
from sidecar.cache.disk import DiskTier
from sidecar.cache.stages import StageCache
from sidecar.cli import build_app
from sidecar.engines import Preempted, RunInput
from sidecar.engines.diffusion import engine as engine_module
from sidecar.engines.diffusion.engine import DiffusionEngine
from sidecar.engines.diffusion.loading import load_model
from sidecar.engines.diffusion.tiny import save_tiny_model
from sidecar.schema import JobRequest, Op
from sidecar.settings import Settings

REFINE = {"refine": 0.5, "steps": 1, "guidance": 1.0}  # one step, no guidance: quick


@pytest.fixture(autouse=True)
def small_canvas(monkeypatch):
    """Refines at 128 px a side, not the model's 512: the same code, a 16th of the work."""
    monkeypatch.setitem(engine_module.MODEL_SIDE, "sd15", 128)


@pytest.fixture(scope="module")
def model(tiny_model_dir):
    return load_model(tiny_model_dir, device="cpu", loras={})


@pytest.fixture(scope="module")
def other_model(tmp_path_factory):
    """Another tiny model: the same shapes, other weights."""
    folder = save_tiny_model(tmp_path_factory.mktemp("tiny-sd-other"), seed=1)
    return load_model(folder, device="cpu", loras={})


def count_encodes(model, monkeypatch) -> list[int]:
    """How often the model's VAE encoder runs from now on (for this test)."""
    calls = [0]
    vae = model.pipe.vae
    original = vae.encode

    def encode(*args, **kwargs):
        calls[0] += 1
        return original(*args, **kwargs)

    monkeypatch.setattr(vae, "encode", encode)
    return calls


def precompute(diffusion, pixels, ctx=None, run=None) -> tuple[np.ndarray, RecordingContext]:
    """A precompute run of beauty at default params, as the scheduler makes it."""
    request = JobRequest(op="beauty", image_id=FAKE_ID, priority="background")
    run = run or RunInput(request=request, seed=3, pixels=pixels, ahead=True)
    ctx = ctx or RecordingContext()
    return diffusion.run(run, ctx), ctx


def refine(diffusion, pixels, *, seed=5, intensity=1.0) -> np.ndarray:
    request = JobRequest(op="beauty", image_id=FAKE_ID, params=REFINE, intensity=intensity)
    return diffusion.run(RunInput(request=request, seed=seed, pixels=pixels), RecordingContext())


def test_precompute_readies_the_latent_and_a_refine_skips_the_encoder(
    model, engine, portrait, monkeypatch
):
    encodes = count_encodes(model, monkeypatch)
    ahead = DiffusionEngine(model, engine, StageCache())
    result, ctx = precompute(ahead, portrait)
    assert "latent" in ctx.stages and encodes[0] == 1  # encoded in the background
    plain = JobRequest(op="beauty", image_id=FAKE_ID, priority="background")
    same = ahead.run(RunInput(request=plain, seed=3, pixels=portrait), RecordingContext())
    assert np.array_equal(result, same)  # readying the latent changes no result
    warm = refine(ahead, portrait)
    assert encodes[0] == 1  # the refine took the latent from the cache
    cold = refine(DiffusionEngine(model, engine, StageCache()), portrait)
    assert encodes[0] == 2  # the same refine with nothing cached encodes
    assert warm.dtype == cold.dtype and warm.shape == cold.shape
    assert warm.tobytes() == cold.tobytes()  # and makes the same bytes
    assert not np.array_equal(warm, result)  # (the refine did change the pixels)


def test_a_refine_without_precompute_still_keeps_its_latent(model, engine, portrait, monkeypatch):
    encodes = count_encodes(model, monkeypatch)
    diffusion = DiffusionEngine(model, engine, StageCache())
    first = refine(diffusion, portrait, seed=1)
    again = refine(diffusion, portrait, seed=1)  # from the cache, as it was kept
    other = refine(diffusion, portrait, seed=2)  # another seed: the same latent
    assert encodes[0] == 1
    assert first.tobytes() == again.tobytes() and not np.array_equal(first, other)


def test_a_precompute_preempted_at_the_encoder_resumes_there(model, engine, portrait, monkeypatch):
    class PreemptAtLatent(RecordingContext):
        def stage(self, name, index, count):
            super().stage(name, index, count)
            if name == "latent" and self.stages.count("latent") == 1:
                raise Preempted

    encodes = count_encodes(model, monkeypatch)
    diffusion = DiffusionEngine(model, engine, StageCache())
    request = JobRequest(op="beauty", image_id=FAKE_ID, priority="background")
    run = RunInput(request=request, seed=3, pixels=portrait, ahead=True)
    ctx = PreemptAtLatent()
    with pytest.raises(Preempted):
        precompute(diffusion, portrait, ctx, run)
    assert encodes[0] == 0  # it gave way before the encoder
    classical = []
    original = engine.run
    monkeypatch.setattr(engine, "run", lambda *a: classical.append(1) or original(*a))
    precompute(diffusion, portrait, ctx, run)  # the same job, run again
    assert classical == [] and encodes[0] == 1  # the op's result kept, only the latent made
    refine(diffusion, portrait)
    assert encodes[0] == 1


def test_another_model_size_or_input_never_takes_a_wrong_latent(
    model, other_model, engine, portrait, monkeypatch
):
    shared = StageCache()
    precompute(DiffusionEngine(model, engine, shared), portrait)
    encodes = count_encodes(other_model, monkeypatch)
    other = refine(DiffusionEngine(other_model, engine, shared), portrait)
    assert encodes[0] == 1  # other weights: its own latent
    alone = refine(DiffusionEngine(other_model, engine, StageCache()), portrait)
    assert other.tobytes() == alone.tobytes()

    encodes = count_encodes(model, monkeypatch)
    diffusion = DiffusionEngine(model, engine, shared)
    refine(diffusion, portrait, intensity=0.6)  # other classical pixels under the refine
    assert encodes[0] == 1
    monkeypatch.setitem(engine_module.MODEL_SIDE, "sd15", 96)  # another size to encode at
    smaller = refine(diffusion, portrait)
    assert encodes[0] == 2
    alone = refine(DiffusionEngine(model, engine, StageCache()), portrait)
    assert smaller.tobytes() == alone.tobytes()


def test_the_latent_survives_a_restart_on_the_disk_tier(
    model, engine, portrait, tmp_path, monkeypatch
):
    before = StageCache(disk=DiskTier(tmp_path / "stages"))
    precompute(DiffusionEngine(model, engine, before), portrait)
    before.close()  # the disk writes done, as at a clean stop
    encodes = count_encodes(model, monkeypatch)
    after = StageCache(disk=DiskTier(tmp_path / "stages"))
    warm = refine(DiffusionEngine(model, engine, after), portrait)
    assert encodes[0] == 0 and after.disk_hits == 1
    cold = refine(DiffusionEngine(model, engine, StageCache()), portrait)
    assert warm.tobytes() == cold.tobytes()


async def test_through_the_sidecar_a_refine_after_precompute_skips_the_encoder(
    aiohttp_client, tmp_path, tiny_model_dir, portrait, monkeypatch
):
    async def sidecar(name: str):
        settings = Settings(
            cache_dir=tmp_path / name / "cache",
            config_dir=tmp_path / name / "config",
            port=0,
            model=tiny_model_dir,
            device="cpu",
        )
        app = build_app(settings)
        client = await aiohttp_client(app)
        auth = {"Authorization": f"Bearer {settings.token_path.read_text().strip()}"}
        encodes = count_encodes(app[ENGINES][Op.beauty].model, monkeypatch)
        return client, auth, encodes

    body = {"op": "beauty", "params": REFINE, "seed": 5}
    results = []
    for name, ahead in (("precomputed", True), ("cold", False)):
        client, auth, encodes = await sidecar(name)
        image_id = await upload(client, auth, portrait)
        if ahead:
            request = {"image_id": image_id, "document_id": "doc-1", "ops": ["beauty"]}
            response = await client.post("/v1/precompute", json=request, headers=auth)
            assert response.status == 202, await response.text()
            for job_id in (await response.json())["job_ids"]:
                job = await wait_for(client, auth, job_id, timeout=60)
                assert job["state"] == "done" and job["precompute"]
            assert encodes[0] == 1  # the precompute job encoded the latent
        response = await client.post("/v1/jobs", json={**body, "image_id": image_id}, headers=auth)
        assert response.status == 202, await response.text()
        job_id = (await response.json())["job_id"]
        assert (await wait_for(client, auth, job_id, timeout=60))["state"] == "done"
        assert encodes[0] == 1  # after precompute: none more; cold: the refine's own
        raw = await client.get(f"/v1/jobs/{job_id}/result?format=raw", headers=auth)
        assert raw.status == 200
        results.append(await raw.read())
    assert results[0] == results[1]
