"""Skin mask: the portrait's skin is in, its features, hair, suit and background are out."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from helpers import closing_fixture

from sidecar.stages import skin
from sidecar.stages.face_geometry import Face, region_polygons
from sidecar.stages.person import PersonSegmenter
from sidecar.stages.skin import face_regions_mask, skin_mask

CHEEKS_AND_CHIN = [(195, 125), (255, 122), (225, 170)]
HAIR = [(200, 40), (270, 60), (170, 100), (290, 110), (230, 50)]
BACKGROUND = [(5, 5), (506, 5), (470, 60), (330, 130)]
FLAG_AND_SUIT = [(40, 150), (20, 40), (60, 250), (100, 300), (300, 330), (60, 400), (380, 420)]


@pytest.fixture(scope="module")
def faces(finder, portrait) -> list[Face]:
    return finder.find(portrait)


segmenter = closing_fixture(PersonSegmenter)


@pytest.fixture(scope="module")
def person(segmenter, portrait) -> np.ndarray:
    return segmenter.person(portrait)


@pytest.fixture(scope="module")
def mask(portrait, faces, person) -> np.ndarray:
    return skin_mask(portrait, faces, person)


def at(mask: np.ndarray, point) -> float:
    x, y = point
    return float(mask[int(round(y)), int(round(x))])


def test_mask_is_float32_in_unit_range_at_image_size(mask):
    assert mask.shape == (512, 512) and mask.dtype == np.float32
    assert mask.min() == 0.0 and mask.max() == 1.0


def test_far_from_skin_is_exactly_zero_and_core_skin_exactly_one(mask):
    assert (mask == 0).mean() > 0.8
    assert (mask == 1).sum() > 1000
    assert not ((mask > 0) & (mask < skin.LOW)).any()
    assert not ((mask < 1) & (mask > skin.HIGH)).any()


def test_cheeks_chin_and_nose_are_skin(mask, faces):
    nose = [faces[0].points[i] for i in (5, 6, 195, 197)]
    for point in CHEEKS_AND_CHIN + nose:
        assert at(mask, point) > 0.8, point


def test_the_fringe_over_the_forehead_is_not_skin(mask):
    # the same colour and light as the forehead below it, but hair
    for point in [(200, 70), (210, 68), (230, 72)]:
        assert at(mask, point) == 0, point


def test_eyes_brows_lips_and_nostrils_are_not_skin(mask, faces):
    face = faces[0]
    regions = region_polygons(face)
    points = [face.points[468], face.points[473], (face.points[13] + face.points[14]) / 2]
    points += [p.mean(axis=0) for name in skin.FEATURES for p in regions[name]]
    for point in points:
        assert at(mask, point) < 0.05, point
    inside = face_regions_mask(mask.shape, faces, skin.FEATURES) > 0
    assert mask[inside].max() < 0.05


def test_hair_background_flag_and_suit_are_not_skin(mask):
    for point in HAIR + BACKGROUND + FLAG_AND_SUIT:
        assert at(mask, point) < 0.05, point
    assert mask[230:].max() < 0.1  # the whole suit, helmet and flag below the neck
    assert mask[:40].max() < 0.05  # the top of the hair and the background above it


def test_neck_below_the_chin_is_included(mask):
    # in the chin's shadow and half hidden by the collar: only its lit part
    neck = mask[170:180, 200:245]
    assert neck.max() == 1.0 and neck.mean() > 0.2


def test_same_skin_away_from_the_face_needs_the_person_mask(portrait, faces, person):
    arm = portrait.copy()  # cheek skin, enlarged, pasted onto the suit
    arm[300:380, 80:140] = cv2.resize(portrait[112:132, 250:266], (60, 80), cv2.INTER_CUBIC)
    nobody = person.copy()
    nobody[280:400, 60:160] = 0

    assert skin_mask(arm, faces, person)[320:360, 95:125].min() > 0.8
    assert skin_mask(arm, faces, nobody)[280:400, 60:160].max() == 0


def test_skin_mask_is_deterministic(portrait, faces, person, mask, segmenter):
    assert np.array_equal(skin_mask(portrait, faces, person), mask)
    assert np.array_equal(segmenter.person(portrait), person)


def test_16_bit_and_rgba_give_the_same_mask(portrait, portrait16, faces, person, mask, segmenter):
    rgba = np.dstack([portrait, np.zeros(portrait.shape[:2], np.uint8)])
    for pixels in (portrait16, rgba):
        assert np.array_equal(skin_mask(pixels, faces, person), mask)
        np.testing.assert_allclose(segmenter.person(pixels), person, atol=0.02)


def test_without_faces_nothing_is_skin(portrait, person):
    # a landscape or a product shot is left alone, whatever its colours
    none = skin_mask(portrait, [], person)

    assert none.dtype == np.float32 and none.shape == (512, 512)
    assert none.max() == 0


def test_working_copy_at_another_size_gives_the_same_regions(portrait, faces, segmenter):
    large = cv2.resize(portrait, (1024, 1024), interpolation=cv2.INTER_CUBIC)
    scaled = [face.scaled(2) for face in faces]

    result = skin_mask(large, scaled, segmenter.person(large))

    assert result.shape == (1024, 1024) and result.dtype == np.float32
    for x, y in CHEEKS_AND_CHIN:
        assert at(result, (2 * x, 2 * y)) > 0.8
    for x, y in HAIR + BACKGROUND:
        assert at(result, (2 * x, 2 * y)) < 0.05
    for i in (468, 473):
        assert at(result, scaled[0].points[i]) < 0.05


@pytest.mark.parametrize("shape", [(1, 1, 3), (3, 5, 4), (7, 300, 3)])
def test_tiny_images_give_a_mask_without_error(segmenter, shape):
    pixels = np.full(shape, 180, np.uint8)
    person = segmenter.person(pixels)

    result = skin_mask(pixels, [], person)

    assert person.shape == shape[:2] and person.dtype == np.float32
    assert result.shape == shape[:2] and result.dtype == np.float32
    assert ((result >= 0) & (result <= 1)).all()


def test_faces_partly_or_wholly_outside_the_image_are_handled(portrait, faces, person):
    face = faces[0]
    partly = Face(face.points - (200, 0), (face.box[0] - 200, *face.box[1:]), face.score)
    partly = partly.scaled(1.0)  # recompute the box from the shifted points
    away = Face(face.points + 5000, tuple(v + 5000 for v in face.box), face.score)

    result = skin_mask(portrait, [partly, away], person)

    assert result.shape == (512, 512)
    assert ((result >= 0) & (result <= 1)).all()


def test_person_mask_covers_the_astronaut_and_not_the_background(person):
    assert person.shape == (512, 512) and person.dtype == np.float32
    assert 0 <= person.min() and person.max() <= 1
    assert person[100, 225] > 0.9 and person[300, 100] > 0.9  # face and suit
    assert person[5, 5] < 0.05 and person[60, 470] < 0.05  # flag corner and backdrop


def test_face_regions_mask_fills_the_named_polygons(faces):
    oval = face_regions_mask((512, 512), faces, ["face_oval"])
    features = face_regions_mask((512, 512), faces, skin.FEATURES)
    eyes = face_regions_mask((512, 512), faces, ["eyes"])

    assert oval.dtype == np.float32 and set(np.unique(oval)) == {0.0, 1.0}
    x0, y0, x1, y1 = faces[0].box
    assert 0.6 < oval.sum() / ((x1 - x0) * (y1 - y0)) < 0.9  # an oval fills ~3/4 of its box
    assert (features <= oval).all() and 0 < eyes.sum() < features.sum()
    assert face_regions_mask((512, 512), [], ["eyes"]).sum() == 0


def test_mismatched_person_mask_is_rejected(portrait, faces):
    with pytest.raises(ValueError):
        skin_mask(portrait, faces, np.ones((256, 256), np.float32))


def test_non_canonical_pixels_are_rejected(portrait, faces, person):
    with pytest.raises(ValueError):
        skin_mask(portrait.astype(np.float32), faces, person)


def test_version_names_the_stage():
    assert skin.VERSION.startswith("skin/")
