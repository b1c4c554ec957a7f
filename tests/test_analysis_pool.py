"""The analysis with a pool gives the bits it gives without one: the face search's
detector windows on two graphs, the skin mask's parts beside each other, and the
analysis's own work beside the face search; and it finishes when the pool is busy."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
import pytest

from bench.harness import portrait as bench_portrait
from sidecar.cache.stages import StageCache
from sidecar.engines.retouch.analysis import Analyser, field_copy
from sidecar.imaging.convert import sample_rgb8
from sidecar.stages import skin
from sidecar.stages.face_geometry import Face
from sidecar.stages.face_mesh import FaceFinder
from sidecar.stages.person import PersonSegmenter


@pytest.fixture(scope="module")
def pool():
    with ThreadPoolExecutor(2) as executor:
        yield executor


@pytest.fixture(scope="module")
def field() -> np.ndarray:
    """A bench portrait at the size the analysis sees a 24 MP one (16 bit, noisy)."""
    return bench_portrait(1000, 667)


@pytest.fixture(scope="module")
def crowd(portrait) -> np.ndarray:
    """Three faces of two sizes, with overlapping detections to merge."""
    small = cv2.resize(portrait, (256, 256), interpolation=cv2.INTER_AREA)
    return np.concatenate([portrait, np.pad(small, ((0, 256), (0, 0), (0, 0))), portrait], axis=1)


@pytest.fixture(scope="module")
def finders(pool):
    serial, parallel = FaceFinder(), FaceFinder(pool=pool)
    yield serial, parallel
    serial.close()
    parallel.close()


def same_faces(a: list[Face], b: list[Face]) -> bool:
    return len(a) == len(b) and all(
        np.array_equal(f.points, g.points) and f.box == g.box and f.score == g.score
        for f, g in zip(a, b, strict=True)
    )


@pytest.mark.parametrize("image", ["field", "crowd"])
def test_detector_windows_on_two_graphs_find_the_same_faces_in_the_same_order(
    finders, image, request
):
    pixels = request.getfixturevalue(image)
    serial, parallel = finders
    frame, to_full = sample_rgb8(pixels, 0, 0, pixels.shape[1], pixels.shape[0], 1280)

    faces = parallel.find(pixels)

    assert len(faces) == (1 if image == "field" else 3)
    assert same_faces(faces, serial.find(pixels))
    assert len(parallel._detectors) == 2 and len(serial._detectors) == 1
    assert parallel._detect(frame, to_full) == serial._detect(frame, to_full)


class Counted:
    """A detector graph that counts its calls, slowed down so the other graph gets some."""

    def __init__(self, graph, delay: float) -> None:
        self.graph, self.delay, self.calls = graph, delay, 0

    def process(self, tile):
        self.calls += 1
        threading.Event().wait(self.delay)
        return self.graph.process(tile)


def test_windows_seen_by_either_graph_keep_their_order(finders, crowd):
    serial, parallel = finders
    parallel.find(crowd)  # the graphs are open
    graphs = parallel._detectors
    mine, helper = Counted(graphs[0], 0.02), Counted(graphs[1], 0.0)
    parallel._detectors = [mine, helper]
    try:
        faces = parallel.find(crowd)
    finally:
        parallel._detectors = graphs

    assert mine.calls >= 1 and helper.calls >= 1
    assert same_faces(faces, serial.find(crowd))


def test_a_busy_pool_leaves_the_windows_to_the_caller(finders, field):
    serial, _ = finders
    release = threading.Event()
    with ThreadPoolExecutor(1) as busy:
        busy.submit(release.wait)  # the pool's only worker never gets to the helper
        finder = FaceFinder(pool=busy)
        try:
            faces = finder.find(field)
        finally:
            release.set()
            finder.close()

    assert same_faces(faces, serial.find(field))


def test_skin_mask_parts_beside_each_other_give_the_same_bits(finders, field, pool):
    faces = finders[0].find(field)
    segmenter = PersonSegmenter()
    try:
        person = segmenter.person(field)
    finally:
        segmenter.close()
    lab = skin.field_lab(field)
    alone = skin.skin_mask(field, faces, person)

    release = threading.Event()
    with ThreadPoolExecutor(1) as busy:
        busy.submit(release.wait)
        try:
            stuck = skin.skin_mask(field, faces, person, busy, lab)
        finally:
            release.set()

    assert alone.max() == 1.0
    assert np.array_equal(skin.skin_mask(field, faces, person, pool), alone)
    assert np.array_equal(skin.skin_mask(field, faces, person, pool, lab), alone)
    assert np.array_equal(stuck, alone)


@pytest.mark.parametrize("faceless", [False, True])
def test_analysis_with_a_pool_is_the_analysis_without_one(field, pool, faceless):
    pixels = field
    if faceless:  # a flat gradient
        ramp = np.linspace(0, 65535, field.size).reshape(field.shape)
        pixels = ramp.astype(np.uint16)
    results = []
    for executor in (None, pool):
        analyser = Analyser(StageCache(), pool=executor)
        try:
            results.append(analyser.analyse(None, lambda: pixels))
        finally:
            analyser.close()
    serial, parallel = results

    assert (len(serial.faces) == 0) == faceless
    assert same_faces(list(parallel.faces), list(serial.faces))
    for name in ("rgb", "mask"):
        a, b = getattr(serial, name), getattr(parallel, name)
        assert a.dtype == b.dtype == np.float32 and np.array_equal(a, b)


def test_after_warm_the_first_analysis_makes_no_graph(monkeypatch, pool, field):
    import mediapipe as mp

    analyser = Analyser(StageCache(), pool=pool)
    try:
        analyser.warm()

        def refuse(*args, **kwargs):
            raise AssertionError("a graph made after warm")

        for module, name in (
            (mp.solutions.face_detection, "FaceDetection"),
            (mp.solutions.face_mesh, "FaceMesh"),
            (mp.solutions.selfie_segmentation, "SelfieSegmentation"),
        ):
            monkeypatch.setattr(module, name, refuse)
        analysis = analyser.analyse("warmed", lambda: field)
        assert analysis.faces and analysis.mask.max() > 0.5  # every graph had its turn
    finally:
        analyser.close()


@pytest.mark.parametrize(
    "shape, factor",
    [((4000, 6000, 3), 6), ((2003, 3001, 3), 3), ((7, 13, 4), 5), ((3, 500, 3), 5), ((64, 64), 4)],
)
def test_the_field_copy_is_the_mean_of_each_block_the_edge_ones_cut_short(shape, factor):
    pixels = np.random.default_rng(factor).integers(0, 65536, shape, dtype=np.uint16)
    field = field_copy(pixels, factor)
    height, width = shape[:2]
    assert field.shape == (-(-height // factor), -(-width // factor), *shape[2:])
    assert field.dtype == pixels.dtype
    rows = sorted({0, field.shape[0] // 2, field.shape[0] - 1})
    cols = sorted({0, 1, field.shape[1] // 2, field.shape[1] - 1})
    for i in rows:
        for j in cols:  # field pixel (i, j) covers full pixels (i, j)·factor on
            block = pixels[i * factor : (i + 1) * factor, j * factor : (j + 1) * factor]
            mean = block.reshape(-1, *shape[2:]).mean(axis=0)
            assert np.abs(field[i, j] - mean).max() <= 0.5 + 1e-9, (i, j)


def test_a_field_copy_of_whole_blocks_is_opencvs_own_reduction():
    pixels = np.random.default_rng(1).integers(0, 65536, (600, 900, 3), dtype=np.uint16)
    whole = cv2.resize(pixels, (150, 100), interpolation=cv2.INTER_AREA)
    assert np.array_equal(field_copy(pixels, 6), whole)
