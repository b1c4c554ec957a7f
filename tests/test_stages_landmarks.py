"""Face landmarks: the bundled portrait's face, found at any size, depth and layout."""

from __future__ import annotations

import threading

import cv2
import numpy as np
import pytest

from sidecar.stages import face_geometry, face_mesh
from sidecar.stages.face_geometry import Face, region_polygons
from sidecar.stages.face_mesh import FaceFinder


@pytest.fixture(scope="module")
def face(finder, portrait) -> Face:
    (face,) = finder.find(portrait)
    return face


def centre(polygon: np.ndarray) -> np.ndarray:
    return polygon.mean(axis=0)


def inside(polygon: np.ndarray, point: np.ndarray) -> bool:
    return cv2.pointPolygonTest(polygon, (float(point[0]), float(point[1])), False) > 0


def test_portrait_has_one_face_with_478_points_inside_the_image(finder, portrait):
    faces = finder.find(portrait)

    assert len(faces) == 1
    face = faces[0]
    assert face.points.shape == (478, 2) and face.points.dtype == np.float32
    assert (face.points >= 0).all() and (face.points < 512).all()
    x0, y0, x1, y1 = face.box
    assert 170 < x0 < 190 and 260 < x1 < 280 and 60 < y0 < 80 and 170 < y1 < 185
    assert face.width == pytest.approx(x1 - x0) and 80 < face.width < 105
    assert face.score > 0.8


def test_landmarks_are_in_anatomical_order(face):
    regions = region_polygons(face)
    eyes = sorted(centre(p)[0] for p in regions["eyes"])
    eye_y = max(centre(p)[1] for p in regions["eyes"])
    brow_y = max(centre(p)[1] for p in regions["brows"])
    nose_tip = face.points[4]
    lips = centre(regions["lips"][0])

    assert brow_y < eye_y < nose_tip[1] < lips[1]
    assert eyes[0] < nose_tip[0] < eyes[1]
    assert eyes[1] - eyes[0] > 0.3 * face.width
    for eye, iris in zip(regions["eyes"], regions["irises"], strict=True):
        assert inside(eye, centre(iris))
    for nostril in regions["nostrils"]:
        assert nose_tip[1] - 5 < centre(nostril)[1] < lips[1]


def test_region_polygons_are_simple_closed_loops(face):
    big = face.scaled(8)  # room for the rasteriser to agree with the exact areas
    for name, polygons in region_polygons(big).items():
        assert polygons, name
        for polygon in polygons:
            assert polygon.dtype == np.float32 and polygon.ndim == 2 and polygon.shape[1] == 2
            canvas = np.zeros((4200, 4200), np.uint8)
            cv2.fillPoly(canvas, [np.round(polygon).astype(np.int32)], 1)
            exact = abs(cv2.contourArea(polygon))
            # a self-crossing loop (a brow walked the wrong way) fills far more than it measures
            assert canvas.sum() == pytest.approx(exact, rel=0.15), name


def test_lips_polygon_is_the_outer_contour(face):
    lips = region_polygons(face)["lips"][0]
    mouth_centre = (face.points[13] + face.points[14]) / 2
    assert inside(lips, mouth_centre)
    assert 0 in face_geometry.LIPS and 13 not in face_geometry.LIPS


def test_upscaled_portrait_gives_the_same_face_in_its_own_coordinates(finder, portrait, face):
    large = cv2.resize(portrait, (2048, 2048), interpolation=cv2.INTER_CUBIC)

    (found,) = finder.find(large)

    error = np.abs(found.points - face.points * 4)
    assert error.max() < 8 and error.mean() < 3


def test_small_face_in_a_large_canvas_maps_back_to_full_resolution(finder, portrait, face):
    canvas = np.full((2560, 2560, 3), 255, np.uint8)  # the portrait is 20% of the frame
    canvas[1000:1512, 700:1212] = portrait

    (found,) = finder.find(canvas)

    error = np.abs(found.points - (face.points + (700, 1000)))
    assert error.max() < 3 and error.mean() < 1.5


def test_face_in_a_long_strip_is_found(finder, portrait, face):
    strip = np.zeros((512, 6512, 3), np.uint8)  # the face is under 2% of the long side
    strip[:, 3000:3512] = portrait

    (found,) = finder.find(strip)

    assert np.abs(found.points - (face.points + (3000, 0))).max() < 3


def test_16_bit_and_rgba_give_the_same_faces_as_8_bit(finder, portrait, portrait16, face):
    rgba = np.dstack([portrait, np.full(portrait.shape[:2], 9, np.uint8)])
    rgba16 = np.dstack([portrait16, np.full(portrait.shape[:2], 65535, np.uint16)])

    for pixels in (portrait16, rgba, rgba16):
        (found,) = finder.find(pixels)
        np.testing.assert_allclose(found.points, face.points, atol=1.0)


@pytest.mark.parametrize(
    "pixels",
    [
        np.zeros((1, 1, 3), np.uint8),
        np.zeros((3, 5, 4), np.uint8),
        np.full((2, 2, 3), 40000, np.uint16),
        np.full((300, 1, 3), 200, np.uint8),
        np.full((256, 384, 3), 128, np.uint8),
        np.random.default_rng(3).integers(0, 256, (512, 512, 3), dtype=np.uint8),
    ],
    ids=["1x1", "3x5-rgba", "2x2-16bit", "300x1", "flat-gray", "noise"],
)
def test_images_without_faces_give_no_faces(finder, pixels):
    assert finder.find(pixels) == []


def test_two_faces_side_by_side_are_both_found(finder, portrait, face):
    pair = np.concatenate([portrait, portrait], axis=1)

    faces = finder.find(pair)

    assert len(faces) == 2
    left, right = sorted(faces, key=lambda f: f.box[0])
    np.testing.assert_allclose(left.points, face.points, atol=3)
    np.testing.assert_allclose(right.points, face.points + (512, 0), atol=3)


def test_faces_come_largest_first_and_are_capped(portrait):
    small = cv2.resize(portrait, (256, 256), interpolation=cv2.INTER_AREA)
    row = np.concatenate([portrait, np.pad(small, ((0, 256), (0, 0), (0, 0))), portrait], axis=1)
    finder = FaceFinder(max_faces=2)
    try:
        faces = finder.find(row)
        everyone = FaceFinder().find(row)
    finally:
        finder.close()

    assert len(everyone) == 3
    assert [f.area for f in everyone] == sorted((f.area for f in everyone), reverse=True)
    assert everyone[-1].width < 0.6 * everyone[0].width
    assert len(faces) == 2 and all(f.width > 80 for f in faces)


def test_find_is_deterministic(finder, portrait, face):
    again = finder.find(portrait)[0]
    fresh = FaceFinder()
    try:
        other = fresh.find(portrait)[0]
    finally:
        fresh.close()

    assert np.array_equal(again.points, face.points)
    assert np.array_equal(other.points, face.points)
    assert again.box == face.box and again.score == face.score


def test_finder_can_be_shared_between_threads(finder, portrait, face):
    results: list[list[Face]] = []

    def work():
        results.append(finder.find(portrait))

    threads = [threading.Thread(target=work) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(results) == 3
    assert all(np.array_equal(r[0].points, face.points) for r in results)


def test_closed_finder_reopens_on_next_use(portrait, face):
    finder = FaceFinder()
    finder.close()  # closing before first use is fine
    finder.find(portrait)
    finder.close()

    assert np.array_equal(finder.find(portrait)[0].points, face.points)
    finder.close()


def test_scaled_face_maps_points_and_box(face):
    half = face.scaled(0.5)

    np.testing.assert_allclose(half.points, face.points * 0.5, rtol=1e-6)
    np.testing.assert_allclose(half.box, np.array(face.box) * 0.5, rtol=1e-6)
    assert half.width == pytest.approx(face.width / 2, rel=1e-6)
    assert half.score == face.score and half.points.dtype == np.float32


def test_face_points_are_read_only(face):
    with pytest.raises(ValueError):
        face.points[0, 0] = 0


@pytest.mark.parametrize(
    "pixels",
    [np.zeros((8, 8), np.uint8), np.zeros((8, 8, 3), np.float32), np.zeros((8, 8, 2), np.uint8)],
    ids=["2d", "float", "2-channels"],
)
def test_non_canonical_pixels_are_rejected(finder, pixels):
    with pytest.raises(ValueError):
        finder.find(pixels)


def test_version_names_the_stage():
    assert face_mesh.VERSION.startswith("landmarks/")
