"""The classical retouch engine: beauty, dodge & burn, volume and color on the CPU,
with no downloaded weights. Always available."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from ...cache.stages import StageCache, stage_key
from ...schema import JobRequest, Op
from ..base import Engine, JobContext, RunInput, check_params
from . import analysis as analysis_mod
from . import codecs, ops, pyramid
from .analysis import Analyser
from .params import RetouchParams
from .pyramid import (
    LevelRender,
    TiledFinal,
    downscale,
    level_size,
    levels_for,
    preview_of,
    render_final_tiled,
)
from .tiles import tiles

VERSION = f"retouch/1+{ops.VERSION}+{analysis_mod.VERSION}"  # goes into result keys
ANALYSIS_WEIGHT = 1_000_000  # progress share of the analysis, in "pixels"


@dataclass
class RetouchResume:
    """What a pre-empted retouch job keeps: its analysis, the levels it finished (the
    last one's pixels seed the final's preview canvas) and a tiled final's tiles."""

    analysis: analysis_mod.Analysis | None = None
    levels_done: set[str] = field(default_factory=set)
    last_level: np.ndarray | None = None
    canvas: np.ndarray | None = None  # the tiled final's preview, tiles pasted in
    final: TiledFinal = field(default_factory=TiledFinal)


class RetouchEngine(Engine):
    name = "retouch"
    ops = frozenset({Op.beauty, Op.dodge_burn, Op.volume, Op.color})
    version = VERSION

    def __init__(self, cache: StageCache | None = None) -> None:
        self.cache = cache or StageCache()
        self._analyser = Analyser(self.cache, codecs.ANALYSIS)
        # the tiled final's tiles, rendered a few at a time (made once, kept)
        self._final_pool = ThreadPoolExecutor(
            pyramid.FINAL_THREADS, thread_name_prefix="retouch-final"
        )

    def validate(self, request: JobRequest) -> None:
        check_params(RetouchParams, request)

    def analyse(self, image_id: str | None, pixels: np.ndarray) -> analysis_mod.Analysis:
        """Faces, skin mask and the field-resolution copy (cached per image id)."""
        return self._analyser.analyse(image_id, lambda: pixels)

    def skin_tone(self, image_id: str, load) -> tuple[float, float] | None:
        """The image's median skin a*, b*: what a batch's session prior is made of."""
        return ops.skin_tone(self._analyser.analyse(image_id, load))

    def close(self) -> None:
        self._final_pool.shutdown(wait=True)
        self._analyser.close()
        self.cache.close()

    def run(self, job: RunInput, ctx: JobContext) -> np.ndarray:
        request, resume = job.request, job.resume_state(RetouchResume)
        op, t = request.op, float(request.intensity)
        params = RetouchParams.model_validate(request.params)
        width, height = job.width_height
        levels = levels_for(width, height, request.preview.progressive)
        count = len(levels) + 1
        ctx.stage("analysis", 0, count)
        analysis = resume.analysis
        if analysis is None:  # the pixels are read only if the analysis is not cached
            analysis = resume.analysis = self._analyser.analyse(request.image_id, job.image)
        plan = self._plan(request, op, params, analysis)
        work = ANALYSIS_WEIGHT + sum(np.prod(level_size(width, height, d)) for _, d in levels)
        done = [0.0]

        def advance(amount: float) -> None:
            done[0] += amount
            ctx.progress(min(done[0] / work, 1.0))

        advance(ANALYSIS_WEIGHT)

        result = None
        for index, (level, divisor) in enumerate(levels, start=1):
            size = level_size(width, height, divisor)
            if level in resume.levels_done:
                done[0] += size[0] * size[1]
                continue
            ctx.stage(level, index, count)
            level_pixels = self._level(request.image_id, job.image, divisor)
            render = LevelRender(plan, level_pixels, 1.0 / divisor, t)
            if level == "final" and width * height > pyramid.TILED_FINAL_PIXELS:
                if resume.canvas is None:
                    last = resume.last_level
                    resume.canvas = preview_of(last if last is not None else level_pixels)
                canvas = resume.canvas

                def report(finished: int, total: int, preview, _size=size) -> None:
                    if preview is not None:
                        ctx.preview("final", preview, step=finished, total_steps=total)
                    advance(_size[0] * _size[1] / total)

                result = render_final_tiled(
                    resume.final, render, canvas, report, self._final_pool, pyramid.FINAL_THREADS
                )
            else:
                for box in tiles(*size):
                    render.tile(box)
                    advance(box.area)
                result = render.result
                ctx.preview(level, preview_of(result))
            resume.levels_done.add(level)
            resume.last_level = result
        assert result is not None
        return result

    def _plan(self, request: JobRequest, op: Op, params: RetouchParams, analysis) -> ops.Plan:
        if request.image_id is None:
            return ops.plan(op, analysis, params)
        key = stage_key(
            ops.VERSION, analysis_mod.VERSION, request.image_id, op.value, params.model_dump_json()
        )
        return self.cache.get_or_compute(key, lambda: ops.plan(op, analysis, params), codecs.PLAN)

    def _level(self, image_id: str | None, load, divisor: int) -> np.ndarray:
        if divisor == 1 or image_id is None:
            return downscale(load(), divisor)
        key = stage_key("level/1", image_id, divisor)
        return self.cache.get_or_compute(key, lambda: downscale(load(), divisor), codecs.ARRAY)
