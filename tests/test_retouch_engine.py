"""The retouch engine as a job runs it: intensity, depth and alpha, determinism, the
progressive levels, tiles, pre-emption and odd input."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from retouch_support import RecordingContext, new_engine, run_op, untouched_region

from sidecar.engines import Cancelled, Preempted
from sidecar.engines.retouch import RetouchResume, pyramid, tiles
from sidecar.engines.retouch.ops import LINEAR
from sidecar.schema import Op

OPS = ("beauty", "dodge_burn", "volume", "color")


@pytest.mark.parametrize("op", sorted(o.value for o in LINEAR))
def test_intensity_of_a_linear_op_is_the_blend(engine, portrait, op):
    full = run_op(engine, portrait, op).astype(np.float64)
    for t in (0.25, 0.6):
        partial = run_op(engine, portrait, op, intensity=t).astype(np.float64)
        blend = portrait + t * (full - portrait)
        # `full` is itself rounded, so the blend carries up to t·0.5 LSB of its rounding
        assert np.abs(partial - blend).max() <= 1.0


def test_intensity_of_color_is_recomputed_and_between(engine, portrait):
    """color is non-linear (a shift in Lab): t re-computes with the shift scaled by t."""
    full = run_op(engine, portrait, "color").astype(np.int64)
    half = run_op(engine, portrait, "color", intensity=0.5).astype(np.int64)
    zero = run_op(engine, portrait, "color", intensity=0.0)
    assert np.array_equal(zero, portrait)
    moved_full = np.abs(full - portrait).sum()
    moved_half = np.abs(half - portrait).sum()
    assert 0.3 * moved_full < moved_half < 0.7 * moved_full


@pytest.mark.parametrize("op", OPS)
def test_same_input_same_bits(portrait, op):
    first = run_op(new_engine(), portrait, op)
    second = run_op(new_engine(), portrait, op)  # nothing cached: computed again
    assert np.array_equal(first, second)


@pytest.mark.parametrize("op", OPS)
def test_sixteen_bit_matches_eight_bit(engine, portrait, op):
    wide = portrait.astype(np.uint16) * 257
    out8 = run_op(engine, portrait, op, image_id="11" * 32)
    out16 = run_op(engine, wide, op, image_id="22" * 32)
    assert out16.dtype == np.uint16 and out16.shape == wide.shape
    assert np.abs(out16 / 257.0 - out8).mean() < 0.5
    assert np.abs(out16 / 257.0 - out8).max() <= 4


@pytest.mark.parametrize("op", OPS)
def test_alpha_passes_through_untouched(engine, portrait, op):
    alpha = np.random.default_rng(1).integers(0, 256, portrait.shape[:2], dtype=np.uint8)
    rgba = np.dstack([portrait, alpha])
    out = run_op(engine, rgba, op, image_id="33" * 32)
    assert out.shape == rgba.shape
    assert np.array_equal(out[..., 3], alpha)
    assert np.array_equal(out[..., :3], run_op(engine, portrait, op))


def test_levels_come_in_order_with_their_previews(engine, portrait):
    ctx = RecordingContext()
    run_op(engine, portrait, "beauty", ctx=ctx)
    assert ctx.stages == ["analysis", "draft", "final"]
    assert [p[0] for p in ctx.previews] == ["draft", "final"]
    sides = [max(p[1]) for p in ctx.previews]
    assert sides == [64, 512]
    assert ctx.progress_values == sorted(ctx.progress_values)
    assert ctx.progress_values[-1] == pytest.approx(1.0)


def test_progressive_off_sends_no_preview_and_the_same_bits(engine, portrait):
    from retouch_support import FAKE_ID

    from sidecar.engines import RunInput
    from sidecar.schema import JobRequest

    request = JobRequest(op=Op.beauty, image_id=FAKE_ID, preview={"progressive": False}, params={})
    ctx = RecordingContext()
    quiet = engine.run(RunInput(request=request, seed=0, pixels=portrait), ctx)
    assert ctx.previews == [] and ctx.stages == ["analysis", "final"]
    assert ctx.progress_values[-1] == pytest.approx(1.0)
    assert np.array_equal(quiet, run_op(engine, portrait, "beauty"))


class KeepingCanvases(RecordingContext):
    """Keeps a copy of every final preview's pixels."""

    def __init__(self) -> None:
        super().__init__()
        self.canvases: list[np.ndarray] = []

    def preview(self, level, rgb, *, step=None, total_steps=None):
        super().preview(level, rgb, step=step, total_steps=total_steps)
        self.canvases.append(rgb.copy())


def _recording_final_order(monkeypatch) -> list[list]:
    """Every order of the final's tiles the engine works out, as it uses it."""
    orders, real = [], pyramid.final_boxes
    monkeypatch.setattr(
        pyramid, "final_boxes", lambda render: orders.append(real(render)) or orders[-1]
    )
    return orders


def test_the_final_takes_the_tiles_it_leaves_alone_first_then_goes_from_the_centre(
    monkeypatch,
):
    monkeypatch.setattr(tiles, "TILE", 128)
    support = np.zeros((64, 64), np.float32)
    support[8:24, 40:56] = 1.0  # the op changes only the top right: 2 × 2 tiles of 128
    render = SimpleNamespace(width=512, height=512, plan=SimpleNamespace(support=support))
    order = [(box.x0, box.y0) for box in pyramid.final_boxes(render)]
    changed = [(256, 0), (384, 0), (256, 128), (384, 128)]
    assert sorted(order[-4:]) == sorted(changed)  # the 12 left alone go first, at once
    assert order[-4:] == [(256, 128), (384, 128), (256, 0), (384, 0)]  # by band, centre first
    left_alone = [(b.x0, b.y0) for b in tiles.tiles(512, 512, centre_first=True)]
    assert order[:12] == [xy for xy in left_alone if xy not in changed]
    # so the two bottom bands, nothing in them to render, are finished before any work
    boxes = pyramid.final_boxes(render)
    bands = pyramid.Bands(boxes, set())
    finished = [band for box in boxes[:12] if bands.finish(box) for band in [(box.y0, box.y1)]]
    assert sorted(finished) == [(256, 384), (384, 512)]


def test_nobody_watching_makes_no_draft_and_a_late_watcher_sees_every_tile_so_far(
    engine, portrait, monkeypatch
):
    from retouch_support import FAKE_ID

    from sidecar.engines import RunInput
    from sidecar.schema import JobRequest

    monkeypatch.setattr(pyramid, "TILED_FINAL_PIXELS", 100_000)
    monkeypatch.setattr(tiles, "TILE", 128)
    monkeypatch.setattr(pyramid, "PREVIEW_INTERVAL", 0.0)
    monkeypatch.setattr(pyramid, "FINAL_THREADS", 1)  # tiles finish in order
    orders = _recording_final_order(monkeypatch)
    watched = run_op(engine, portrait, "volume")
    request = JobRequest(op=Op.volume, image_id=FAKE_ID, params={})
    ctx = KeepingCanvases()

    # nobody watches until six of the final's tiles have been reported
    def arrived() -> bool:
        return ctx.stages[-1] == "final" and len(ctx.progress_values) >= 1 + 6

    run = RunInput(request=request, seed=0, pixels=portrait, watched=arrived)
    late = engine.run(run, ctx)
    assert np.array_equal(late, watched)
    assert "draft" not in ctx.stages
    assert [p[2] for p in ctx.previews] == list(range(7, 17))  # from its arrival on
    # the first canvas it saw already held the seven tiles finished by then; the rest
    # came later (canvas scale 1: the image is 512 px)
    first, last = ctx.canvases[0], ctx.canvases[-1]
    for index, box in enumerate(orders[-1]):
        region = (slice(box.y0, box.y1), slice(box.x0, box.x1))
        assert np.array_equal(first[region], last[region]) == (index < 7), index


def test_large_images_finish_in_tiles_from_the_centre_with_the_same_bits(
    engine, portrait, monkeypatch
):
    untiled = run_op(engine, portrait, "dodge_burn")
    monkeypatch.setattr(pyramid, "TILED_FINAL_PIXELS", 100_000)  # 512² is "large" now
    monkeypatch.setattr(tiles, "TILE", 128)
    monkeypatch.setattr(pyramid, "PREVIEW_INTERVAL", 0.0)
    ctx = RecordingContext()
    tiled = run_op(engine, portrait, "dodge_burn", ctx=ctx)
    assert np.array_equal(tiled, untiled)
    finals = [p for p in ctx.previews if p[0] == "final"]
    assert len(finals) == 16 and [p[2] for p in finals] == list(range(1, 17))
    order = tiles.tiles(512, 512, centre_first=True)
    # band by band from the centre (of the two middle bands, the upper first), each
    # band's tiles from its middle out; a band is whole before the next begins
    assert [b.y0 for b in order] == [128] * 4 + [256] * 4 + [0] * 4 + [384] * 4
    assert [b.x0 for b in order[:4]] == [128, 256, 0, 384]


def test_the_band_through_the_centre_renders_first_and_bands_go_outward():
    order = tiles.tiles(6000, 4000, centre_first=True)  # 6 × 4 tiles of 1024 px
    assert (order[0].x0, order[0].y0) == (2048, 1024)  # the tile nearest the centre
    bands = [b.y0 for b in order]
    assert bands == [1024] * 6 + [2048] * 6 + [0] * 6 + [3072] * 6
    assert sorted((b.x0, b.y0) for b in order) == sorted(
        (b.x0, b.y0) for b in tiles.tiles(6000, 4000)
    )


def test_a_preempted_job_resumes_where_it_stopped_with_the_same_bits(engine, portrait, monkeypatch):
    monkeypatch.setattr(pyramid, "TILED_FINAL_PIXELS", 100_000)
    monkeypatch.setattr(tiles, "TILE", 128)
    plain = run_op(engine, portrait, "beauty")
    resume = RetouchResume()
    ctx = RecordingContext(preempt_at=12)  # a few tiles into the final level
    with pytest.raises(Preempted):
        run_op(engine, portrait, "beauty", ctx=ctx, resume=resume)
    done_before = set(resume.final.tiles_done)
    assert 0 < len(done_before) < 16
    again = RecordingContext()
    resumed = run_op(engine, portrait, "beauty", ctx=again, resume=resume)
    assert np.array_equal(resumed, plain)
    # the levels and tiles already done were not sent again
    assert "draft" not in again.stages
    assert len([p for p in again.previews if p[0] == "final"]) <= 16 - len(done_before) + 1


def test_stages_are_cached_between_ops_on_the_same_image(portrait):
    engine = new_engine()
    run_op(engine, portrait, "beauty")
    misses = engine.cache.misses
    run_op(engine, portrait, "color")
    # the analysis and the pyramid levels were served from the cache; only the plan is new
    assert engine.cache.misses == misses + 1


@pytest.mark.parametrize(
    "pixels",
    [
        np.zeros((1, 1, 3), np.uint8),
        np.full((3, 5, 4), 200, np.uint8),
        np.full((64, 48, 3), 128, np.uint8),  # flat grey: no face, no skin
        np.random.default_rng(3).integers(0, 65536, (40, 70, 3), dtype=np.uint16),
    ],
    ids=["1x1", "3x5-rgba", "flat-grey", "noise-16bit"],
)
@pytest.mark.parametrize("op", OPS)
def test_odd_images_give_a_result_of_their_own_size(pixels, op):
    engine = new_engine()
    out = run_op(engine, pixels, op)
    assert out.shape == pixels.shape and out.dtype == pixels.dtype


def test_no_face_leaves_a_faceless_image_alone(engine):
    sky = np.zeros((200, 300, 3), np.uint8)
    sky[...] = (90, 140, 220)
    for op in OPS:
        out = run_op(engine, sky, op, image_id="44" * 32)
        assert np.array_equal(out, sky)


def test_untouched_region_is_most_of_a_portrait(engine, portrait):
    analysis = engine.analyse("55" * 32, portrait)
    assert 0.6 < untouched_region(analysis).mean() < 0.99


def test_the_tiled_final_on_two_threads_has_the_bits_of_one(portrait16, monkeypatch):
    monkeypatch.setattr(pyramid, "TILED_FINAL_PIXELS", 100_000)
    monkeypatch.setattr(tiles, "TILE", 128)
    monkeypatch.setattr(pyramid, "PREVIEW_INTERVAL", 0.0)
    monkeypatch.setattr(pyramid, "FINAL_THREADS", 1)
    one = run_op(new_engine(), portrait16, "beauty")
    monkeypatch.setattr(pyramid, "FINAL_THREADS", 2)
    ctx = RecordingContext()
    two = run_op(new_engine(), portrait16, "beauty", ctx=ctx)
    assert two.dtype == np.uint16 and np.array_equal(two, one)
    finals = [p for p in ctx.previews if p[0] == "final"]
    assert [p[2] for p in finals] == list(range(1, 17))


class CancelMidFinal(RecordingContext):
    """Cancels at the third tile of the final level."""

    final_reports = 0

    def progress(self, fraction):
        super().progress(fraction)
        if self.stages[-1] == "final":
            self.final_reports += 1
            if self.final_reports == 3:
                raise Cancelled


def test_a_cancel_mid_final_on_two_threads_stops_at_a_tile_boundary(portrait16, monkeypatch):
    monkeypatch.setattr(pyramid, "TILED_FINAL_PIXELS", 100_000)
    monkeypatch.setattr(tiles, "TILE", 128)
    monkeypatch.setattr(pyramid, "FINAL_THREADS", 2)
    orders = _recording_final_order(monkeypatch)
    engine = new_engine()
    plain = run_op(engine, portrait16, "beauty")
    resume = RetouchResume()
    with pytest.raises(Cancelled):
        run_op(engine, portrait16, "beauty", ctx=CancelMidFinal(), resume=resume)
    # three tiles reported, the one running beside the third finished; none started after
    assert resume.final.tiles_done == {0, 1, 2, 3}
    result = resume.final.result
    for index, box in enumerate(orders[-1]):
        region = (slice(box.y0, box.y1), slice(box.x0, box.x1))
        expected = plain if index in resume.final.tiles_done else portrait16
        assert np.array_equal(result[region], expected[region])
