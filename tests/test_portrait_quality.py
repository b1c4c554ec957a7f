"""Every op on every image of the portrait set (tests/portraits/): hair, brows, eyes,
lips, clothes and background stay untouched, each op does what a retoucher means on the
face's skin, and a photograph without a face is left exactly as it was.

`scripts/quality` writes the same measurements as a report with contact sheets.
"""

from __future__ import annotations

import numpy as np
import pytest
from portrait_metrics import CRITERIA, KEEP_OUT, MAX_CHANGED, failures
from portrait_quality import OPS, evaluate
from portrait_set import NO_FACE, REAL, REGIONS, portrait_set

SET = portrait_set()
FACES = [p for p in SET if p.has_face]


@pytest.fixture(scope="module")
def evaluations(engine):
    return {portrait.name: evaluate(portrait, engine) for portrait in SET}


def test_the_set_covers_what_retouchers_shoot():
    assert len(REAL) >= 6 and len(FACES) >= 8 and len(NO_FACE) >= 2
    for portrait in FACES:
        assert set(portrait.regions) == set(REGIONS)
        assert portrait.regions["skin"].sum() > 500, portrait.name
        claimed = sum(mask.astype(np.int32) for mask in portrait.regions.values())
        assert claimed.max() == 1, f"{portrait.name}: regions overlap"


@pytest.mark.parametrize("name", [p.name for p in FACES])
def test_every_face_is_found(evaluations, name):
    expected = 6 if name == "group" else 1
    assert evaluations[name].faces == expected


@pytest.mark.parametrize("name", [p.name for p in FACES])
@pytest.mark.parametrize("op", OPS)
def test_only_skin_changes(evaluations, name, op):
    shares = evaluations[name].regions[op]
    over = {region: shares[region] for region in KEEP_OUT if shares[region] > MAX_CHANGED}
    assert not over, f"{name} {op}: changed more than {MAX_CHANGED:.0%} of {over}"
    assert shares["skin"] > 0.1, f"{name} {op}: hardly touched the skin"


@pytest.mark.parametrize("name", [p.name for p in FACES])
@pytest.mark.parametrize("op", sorted(CRITERIA))
def test_each_op_meets_its_criteria_on_skin(evaluations, name, op):
    assert failures(op, evaluations[name].metrics[op]) == []


@pytest.mark.parametrize("name", NO_FACE)
def test_a_photograph_without_a_face_is_left_exactly_alone(evaluations, name):
    evaluation = evaluations[name]
    assert evaluation.faces == 0
    for op in OPS:
        assert np.array_equal(evaluation.results[op], evaluation.portrait.pixels), op
