"""The diffusion engine: `generate` (txt2img) and, for the retouch ops, a masked
img2img refine of the classical result on skin. Every denoising step is a step
boundary (cancel and pre-emption raise from the step callback, so no decode runs)
and, with `preview.stream_steps`, a cheap preview of the predicted clean image.

The refine starts from the VAE latent of its crop, kept in the stage cache
(`latents.py`); a precompute run of a retouch op encodes it ahead, so a refine after
precompute skips the encoder.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import cv2
import numpy as np
import torch
from pydantic import Field

from ...cache.stages import StageCache
from ...schema import JobRequest, Op
from ...schema.common import Model
from ...stages.frequency import gaussian
from ..base import Engine, JobContext, RunInput, check_params
from ..retouch import RetouchEngine, RetouchResume
from ..retouch.analysis import Analysis, to_unit_float
from ..retouch.params import RetouchParams
from ..retouch.pyramid import preview_of
from ..retouch.tiles import Box, sample
from .latents import Latents, vae_precision
from .loading import LoadedModel, enable_memory_savers, img2img_pipe, use_lora
from .previews import StepPreviews, capture_x0

log = logging.getLogger(__name__)

REFINE_PROMPT = "natural skin, even skin tone, soft light, detailed skin texture"
MODEL_SIDE = {"sd15": 512, "sdxl": 1024}
OOM_SCALE = 0.75  # the last resort after an out-of-memory error: a smaller canvas
CLASSICAL_SHARE = 0.2  # of a refined job's progress bar


class _Share:
    """A job context whose progress runs over [start, start + span] of the job's."""

    def __init__(self, ctx: JobContext, start: float, span: float) -> None:
        self._ctx, self._start, self._span = ctx, start, span

    def stage(self, name: str, index: int, count: int) -> None:
        self._ctx.stage(name, index, count)

    def progress(self, fraction: float) -> None:
        self._ctx.progress(self._start + self._span * fraction)

    def preview(self, level, rgb, *, step=None, total_steps=None) -> None:
        self._ctx.preview(level, rgb, step=step, total_steps=total_steps)

    def checkpoint(self) -> None:
        self._ctx.checkpoint()


class GenerateParams(Model):
    width: int = Field(512, ge=64, le=2048, multiple_of=8)
    height: int = Field(512, ge=64, le=2048, multiple_of=8)
    steps: int = Field(25, ge=1, le=150)
    guidance: float = Field(7.0, ge=0.0, le=30.0)
    negative_prompt: str | None = Field(None, max_length=2000)


class RefineParams(RetouchParams):
    refine: float = Field(
        0.0, ge=0.0, le=1.0, description="img2img strength on skin after the classical op."
    )
    steps: int = Field(20, ge=1, le=150, description="Denoising steps that run (refine only).")
    guidance: float = Field(5.0, ge=0.0, le=30.0)


@dataclass
class DiffusionResume:
    """What a pre-empted refine keeps: the classical result it refines, or the retouch
    engine's own resume state while that result is still being made."""

    classical: np.ndarray | None = None
    retouch: RetouchResume = field(default_factory=RetouchResume)


class DiffusionEngine(Engine):
    name = "diffusion"
    preview_clock: Callable[[], float] = time.monotonic  # what step previews are timed by

    def __init__(self, model: LoadedModel, retouch: RetouchEngine, cache: StageCache) -> None:
        self.model = model
        self.retouch = retouch
        self.cache = cache
        self.latents = Latents(model, cache)
        self.ops = frozenset({Op.generate, *retouch.ops})
        self.version = f"diffusion/1+{retouch.version}+{model.describe()}"

    def describe(self) -> str:
        return self.model.describe()

    def validate(self, request: JobRequest) -> None:
        check_params(GenerateParams if request.op is Op.generate else RefineParams, request)

    def skin_tone(self, image_id: str, load) -> tuple[float, float] | None:
        return self.retouch.skin_tone(image_id, load)

    def warm(self) -> None:
        self.retouch.warm()  # the model itself is loaded before the sidecar starts

    def close(self) -> None:
        self.retouch.close()

    def run(self, job: RunInput, ctx: JobContext) -> np.ndarray:
        if job.request.op is Op.generate:
            return self._generate(job, ctx)
        params = RefineParams.model_validate(job.request.params)
        classical = RetouchParams.model_validate(
            params.model_dump(include=set(RetouchParams.model_fields), exclude_none=True)
        )
        plain = job.request.model_copy(update={"params": classical.model_dump(exclude_none=True)})
        share = CLASSICAL_SHARE if params.refine > 0 else 1.0
        resume = job.resume_state(DiffusionResume)
        result = resume.classical
        if result is None:
            inner = dataclasses.replace(job, request=plain, resume=resume.retouch)
            result = resume.classical = self.retouch.run(inner, _Share(ctx, 0.0, share))
        if params.refine <= 0:
            if job.ahead:  # a precompute: ready what a refine of this result starts from
                self._ready_latent(job, ctx, result)
            return result
        return self._refine(job, _Share(ctx, share, 1.0 - share), params, result)

    # -- generate ------------------------------------------------------------------
    def _generate(self, job: RunInput, ctx: JobContext) -> np.ndarray:
        request = job.request
        params = GenerateParams.model_validate(request.params)
        ctx.stage("denoise", 0, 2)
        use_lora(self.model, None)
        pipe = self.model.pipe

        def call(scale: float, on_step) -> np.ndarray:
            width, height = (_snap(params.width * scale), _snap(params.height * scale))
            out = pipe(
                prompt=request.prompt,
                negative_prompt=params.negative_prompt,
                width=width,
                height=height,
                num_inference_steps=params.steps,
                **_denoise_args(job.seed, params.guidance, on_step),
            )
            return out.images[0]

        image = self._denoise(pipe, call, params.steps, request, ctx)
        ctx.stage("decode", 1, 2)
        rgb = np.clip(np.rint(image * 255.0), 0, 255).astype(np.uint8)
        if rgb.shape[:2] != (params.height, params.width):  # made smaller after an OOM
            rgb = cv2.resize(rgb, (params.width, params.height), interpolation=cv2.INTER_CUBIC)
        ctx.preview("final", rgb)
        return rgb

    # -- refine ----------------------------------------------------------------------
    def _refine(
        self, job: RunInput, ctx: JobContext, params: RefineParams, result: np.ndarray
    ) -> np.ndarray:
        request = job.request
        target = self._refine_target(job, result)
        if target is None:
            return result
        analysis, box, crop = target
        ctx.stage("refine", 0, 2)
        pipe = img2img_pipe(self.model)
        use_lora(self.model, request.op.value)

        def call(scale: float, on_step) -> np.ndarray:
            latent = self.latents.latent(request.image_id, crop, self._refine_size(crop, scale))
            out = pipe(
                prompt=REFINE_PROMPT,
                # a copy: the cached array stays as it was for the next refine
                image=torch.tensor(latent, dtype=pipe.unet.dtype, device=self.model.pipe.device),
                strength=params.refine,
                # img2img runs strength × num_inference_steps: `steps` are those that run
                num_inference_steps=math.ceil(params.steps / params.refine),
                **_denoise_args(job.seed, params.guidance, on_step),
            )
            return out.images[0]

        refined = self._denoise(pipe, call, params.steps, request, ctx)
        ctx.stage("merge", 1, 2)
        refined = cv2.resize(refined, (box.width, box.height), interpolation=cv2.INTER_CUBIC)
        # the diffusion pass contributes tone and shape; texture stays the classical one
        sigma = max(analysis.face_width / analysis.scale / 60.0, 1.0)
        merged = gaussian(refined, sigma) + (crop - gaussian(crop, sigma))
        mask = sample(analysis.mask, (analysis.width, analysis.height), box)[..., None]
        out = crop + mask * (merged - crop)
        top = float(np.iinfo(result.dtype).max)
        refined_result = result.copy()
        refined_result[box.y0 : box.y1, box.x0 : box.x1, :3] = np.clip(
            np.rint(out * top), 0, top
        ).astype(result.dtype)
        ctx.preview("final", preview_of(refined_result))
        return refined_result

    def _ready_latent(self, job: RunInput, ctx: JobContext, result: np.ndarray) -> None:
        """Encode now, in a precompute's background time, the latent a refine of
        `result` would start from (at the size it would use), so that refine skips the
        encoder. The stage before it is a step boundary: a waiting user job goes first,
        and the op's result, kept in the resume state, is not made again."""
        target = self._refine_target(job, result)
        if target is None:
            return
        _, _, crop = target
        ctx.stage("latent", 0, 1)
        self.latents.latent(job.request.image_id, crop, self._refine_size(crop, 1.0))

    def _refine_target(
        self, job: RunInput, result: np.ndarray
    ) -> tuple[Analysis, Box, np.ndarray] | None:
        """The image's analysis, the skin's box and `result` there as float RGB; None
        without skin (nothing to refine)."""
        analysis = self.retouch.analyse(job.request.image_id, job.image())
        box = _skin_box(analysis)
        if box is None:
            return None
        return analysis, box, to_unit_float(result[box.y0 : box.y1, box.x0 : box.x1])

    def _refine_size(self, crop: np.ndarray, scale: float) -> tuple[int, int]:
        """The size the refine encodes and denoises `crop` at (smaller after an OOM)."""
        side = MODEL_SIDE.get(self.model.family, 512)
        return _fit(crop.shape[1], crop.shape[0], side * scale)

    # -- the denoising loop ------------------------------------------------------------
    def _denoise(self, pipe, call: Callable, steps: int, request: JobRequest, ctx) -> np.ndarray:
        previews = StepPreviews(
            self.model.family, request.preview.stream_steps, clock=self.preview_clock
        )
        undo = capture_x0(pipe.scheduler, previews)

        def on_step(_pipe, index: int, _timestep, tensors: dict) -> dict:
            total = _pipe._num_timesteps if hasattr(_pipe, "_num_timesteps") else steps
            ctx.progress(min((index + 1) / max(total, 1), 1.0) * 0.95)  # may raise: stop
            if previews.due(index + 1 >= total):
                every = request.preview.decode_every
                decode = every > 0 and (index + 1) % every == 0
                image = _decoded(_pipe, previews.x0) if decode else previews.image()
                ctx.preview("step", image, step=index + 1, total_steps=total)
            return tensors

        try:
            return self._with_memory_retries(call, on_step, ctx)
        finally:
            undo()

    def _with_memory_retries(self, call: Callable, on_step, ctx) -> np.ndarray:
        """Out of GPU memory: retry with attention slicing and VAE tiling, then on a
        smaller canvas; each retry is announced as a stage. Never a dead worker."""
        try:
            return call(1.0, on_step)
        except torch.OutOfMemoryError:
            log.warning("out of memory; retrying with attention slicing and VAE tiling")
            _free_memory()
            enable_memory_savers(self.model)
            ctx.stage("retry: out of memory, with memory savers", 0, 1)
        try:
            return call(1.0, on_step)
        except torch.OutOfMemoryError:
            log.warning("out of memory again; retrying at %.0f%% size", OOM_SCALE * 100)
            _free_memory()
            ctx.stage(f"retry: out of memory, at {OOM_SCALE:.0%} size", 0, 1)
        return call(OOM_SCALE, on_step)


def _decoded(pipe, x0: torch.Tensor) -> np.ndarray:
    """The opt-in full preview: the predicted clean latent through the VAE."""
    with torch.no_grad(), vae_precision(pipe.vae) as vae:
        image = vae.decode(x0.to(vae.dtype) / vae.config.scaling_factor).sample
    rgb = ((image[0].float().permute(1, 2, 0) + 1.0) * 127.5).clamp(0, 255).round()
    return rgb.to(torch.uint8).cpu().numpy()


def _free_memory() -> None:
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _snap(value: float) -> int:
    return max(64, int(value) // 8 * 8)


def _fit(width: int, height: int, side: float) -> tuple[int, int]:
    scale = side / max(width, height)
    return _snap(width * scale), _snap(height * scale)


def _skin_box(analysis) -> Box | None:
    """The skin's bounding box at full resolution, with a margin."""
    ys, xs = np.nonzero(analysis.mask > 0)
    if len(xs) == 0:
        return None
    scale = analysis.scale
    x0, x1 = xs.min() / scale, (xs.max() + 1) / scale
    y0, y1 = ys.min() / scale, (ys.max() + 1) / scale
    margin = 0.05 * max(x1 - x0, y1 - y0)
    return Box(
        max(int(x0 - margin), 0),
        max(int(y0 - margin), 0),
        min(int(np.ceil(x1 + margin)), analysis.width),
        min(int(np.ceil(y1 + margin)), analysis.height),
    )


def _denoise_args(seed: int, guidance: float, on_step) -> dict:
    """What every denoising call shares: the job's seed on a CPU generator (the same
    noise on any device, so the same bits for the same seed), the guidance, float
    output, and the step callback (previews, cancel, pre-emption)."""
    return {
        "guidance_scale": guidance,
        "generator": torch.Generator("cpu").manual_seed(seed),
        "output_type": "np",
        "callback_on_step_end": on_step,
    }
