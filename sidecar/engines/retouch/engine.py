"""The classical retouch engine: beauty, dodge & burn, volume and color on the CPU,
with no downloaded weights. Always available."""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
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
    canvas: pyramid.FinalCanvas | None = None  # what a watcher sees of the final
    final: TiledFinal = field(default_factory=TiledFinal)


class RetouchEngine(Engine):
    name = "retouch"
    ops = frozenset({Op.beauty, Op.dodge_burn, Op.volume, Op.color})
    version = VERSION

    def __init__(self, cache: StageCache | None = None) -> None:
        self.cache = cache or StageCache()
        # the final's tiles, rendered a few at a time, and work beside the analysis
        # (made once, kept)
        self._final_pool = ThreadPoolExecutor(
            pyramid.FINAL_THREADS, thread_name_prefix="retouch-final"
        )
        self._analyser = Analyser(self.cache, codecs.ANALYSIS, self._final_pool)

    def validate(self, request: JobRequest) -> None:
        check_params(RetouchParams, request)

    def analyse(self, image_id: str | None, pixels: np.ndarray) -> analysis_mod.Analysis:
        """Faces, skin mask and the field-resolution copy (cached per image id)."""
        return self._analyser.analyse(image_id, lambda: pixels)

    def skin_tone(self, image_id: str, load) -> tuple[float, float] | None:
        """The image's median skin a*, b*: what a batch's session prior is made of."""
        return ops.skin_tone(self._analyser.analyse(image_id, load))

    def warm(self) -> None:
        self._analyser.warm()

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
        draft = self._draft_beside(job, levels, resume)
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
        for index, (level, divisor) in enumerate(levels, start=1):
            size = level_size(width, height, divisor)
            if level == "final":
                ctx.stage(level, index, count)
                return self._final(job, ctx, resume, plan, t, advance)
            if level in resume.levels_done or not job.is_watched():
                done[0] += size[0] * size[1]  # nobody to show it to: not made
                if job.ahead:  # but ready for the Apply after this precompute
                    self._level(request.image_id, job.image, divisor)
                continue
            ctx.stage(level, index, count)
            if draft is not None and level == "draft":
                pixels = draft.result()
            else:
                pixels = self._level(request.image_id, job.image, divisor)
            render = LevelRender(plan, pixels, 1 / divisor, t)
            for box in tiles(*size):
                render.tile(box)
                advance(box.area)
            ctx.preview(level, preview_of(render.result))
            resume.levels_done.add(level)
            resume.last_level = render.result
        raise AssertionError("the levels end with the final")

    def _draft_beside(self, job: RunInput, levels, resume: RetouchResume) -> Future | None:
        """For a watched job whose analysis is not cached: the draft's pixels (a 1/8
        reduction of the full image), made on the pool while the analysis runs."""
        divisor = dict(levels).get("draft")
        if divisor is None or resume.analysis is not None or not job.is_watched():
            return None
        if job.request.image_id is not None and self._analyser.cached(job.request.image_id):
            return None  # the draft's turn comes at once: made then
        pixels = job.image()  # read here, once: both threads use it
        return self._final_pool.submit(self._level, job.request.image_id, lambda: pixels, divisor)

    def _final(self, job: RunInput, ctx: JobContext, resume: RetouchResume, plan, t, advance):
        """The final level on the engine's pool; its tiles are shown as they finish
        while someone watches a large image, and the whole once on a small one."""
        width, height = job.width_height
        pixels = job.image()
        resumed = resume.final.result is not None  # a pre-empted run's tiles are in it
        out = resume.final.result if resumed else job.new_array(pixels.shape, pixels.dtype)
        render = LevelRender(plan, pixels, 1.0, t, out, resumed)
        tiled = width * height > pyramid.TILED_FINAL_PIXELS
        area = width * height

        def canvas() -> pyramid.FinalCanvas:
            if resume.canvas is None:  # the draft under it, or the input when none
                under = resume.last_level
                if under is None:
                    under = self._level(job.request.image_id, job.image, 8)
                resume.canvas = pyramid.FinalCanvas(under, width, height)
                boxes = pyramid.final_boxes(render)  # the tiles finished before anyone watched
                for index in sorted(resume.final.tiles_done):
                    resume.canvas.paste(render.result, boxes[index])
            return resume.canvas

        bands = pyramid.Bands(pyramid.final_boxes(render), resume.final.tiles_done)
        # one band is written whole at the end, as it would be anyway
        ahead = job.on_rows if len(bands) > 1 else None

        def on_tile(box) -> None:
            if resume.canvas is not None:
                resume.canvas.paste(render.result, box)
            if ahead is not None and bands.finish(box):
                ahead(render.result, box.y0, box.y1)

        def report(finished: int, total: int, box) -> None:
            if tiled and job.is_watched():
                shown = canvas()
                if shown.due(finished == total):
                    ctx.preview("final", shown.pixels, step=finished, total_steps=total)
            advance(area / total)

        if ahead is not None:  # the bands finished before a pre-emption
            for y0, y1 in bands.finished():
                ahead(render.result, y0, y1)
        result = render_final_tiled(
            resume.final, render, report, self._final_pool, pyramid.FINAL_THREADS, on_tile
        )
        # finished: the resume state lets go of the result (its buffer may go round)
        resume.final, resume.canvas = TiledFinal(), None
        if not tiled and job.is_watched():
            ctx.preview("final", preview_of(result))
        return result

    def _plan(self, request: JobRequest, op: Op, params: RetouchParams, analysis) -> ops.Plan:
        if request.image_id is None:
            return ops.plan(op, analysis, params)
        key = stage_key(
            ops.VERSION, analysis_mod.VERSION, request.image_id, op.value, params.model_dump_json()
        )
        # in memory only: from the analysis a plan takes about 0.1 s, and on disk each
        # one (13 MB at 24 MP, for every image, op and set of params) cost the batch
        # 7 % of its time in writes that a later job with other params cannot use
        return self.cache.get_or_compute(key, lambda: ops.plan(op, analysis, params))

    def _level(self, image_id: str | None, load, divisor: int) -> np.ndarray:
        if divisor == 1 or image_id is None:
            return downscale(load(), divisor)
        key = stage_key("level/1", image_id, divisor)
        return self.cache.get_or_compute(key, lambda: downscale(load(), divisor), codecs.ARRAY)
