"""Predictive prefetch: the action model, its file, and the two routes."""

from __future__ import annotations

import json
import logging

import pytest

from sidecar.jobs import predict
from sidecar.jobs.predict import THRESHOLD, ActionPredictor
from sidecar.schema import Op, Prediction


@pytest.fixture
def path(tmp_path):
    return tmp_path / "data" / "actions.json"


@pytest.fixture
def predictor(path) -> ActionPredictor:
    return ActionPredictor(path)


def apply(predictor: ActionPredictor, document_id: str, *actions: Op) -> None:
    for action in actions:
        predictor.record(document_id, action)


def test_starting_probabilities_are_the_documented_ones(predictor):
    expected = {
        Op.dodge_burn: (Op.volume, 14 / 22),
        Op.volume: (Op.beauty, 12.4 / 20.4),
        Op.beauty: (Op.color, 0.20),
        Op.color: (None, None),
        Op.generate: (None, None),
    }
    for after, (next_op, probability) in expected.items():
        prediction = predictor.predict(after)
        assert prediction.next == next_op, after
        assert prediction.probability == pytest.approx(probability), after


def test_after_dodge_burn_volume_is_predicted_and_prefetched(predictor):
    prediction = predictor.predict(Op.dodge_burn)
    assert prediction.next is Op.volume
    assert prediction.probability >= THRESHOLD
    assert predictor.should_prefetch(prediction)


def test_a_weak_prior_does_not_prefetch(predictor):
    prediction = predictor.predict(Op.beauty)
    assert prediction.next is Op.color
    assert not predictor.should_prefetch(prediction)


def test_record_returns_the_prediction_for_what_comes_next(predictor):
    assert predictor.record("doc", Op.dodge_burn) == predictor.predict(Op.dodge_burn)


def test_own_history_overrides_the_priors_after_a_few_dozen_actions(predictor):
    for n in range(40):
        apply(predictor, f"doc-{n}", Op.dodge_burn, Op.color)
    prediction = predictor.predict(Op.dodge_burn)
    assert prediction.next is Op.color
    assert prediction.probability == pytest.approx(40 / 62)
    assert predictor.should_prefetch(prediction)


def test_history_can_make_an_unknown_source_predictable(predictor):
    apply(predictor, "doc", Op.color, Op.generate)
    prediction = predictor.predict(Op.color)
    assert prediction.next is Op.generate
    assert prediction.probability == 1.0


def test_transitions_are_counted_only_within_the_same_document(predictor):
    # interleaved, color on one document and generate on the other: in arrival order
    # they alternate, but each document only ever repeats its own action
    for _ in range(30):
        predictor.record("a", Op.color)
        predictor.record("b", Op.generate)
    assert predictor.predict(Op.color) == Prediction(next=Op.color, probability=1.0)
    assert predictor.predict(Op.generate) == Prediction(next=Op.generate, probability=1.0)


def test_only_the_most_recent_documents_are_remembered(predictor):
    predictor.record("oldest", Op.color)
    for n in range(predict.MAX_DOCUMENTS):
        predictor.record(f"doc-{n}", Op.beauty)
    predictor.record("oldest", Op.generate)  # its color was forgotten: no transition
    assert predictor.predict(Op.color).next is None


def test_ties_break_by_op_name(tmp_path):
    predictor = ActionPredictor(tmp_path / "actions.json")
    apply(predictor, "a", Op.generate, Op.volume)
    apply(predictor, "b", Op.generate, Op.beauty)
    assert predictor.predict(Op.generate).next is Op.beauty


def test_learned_counts_survive_a_restart(predictor, path):
    for n in range(40):
        apply(predictor, f"doc-{n}", Op.dodge_burn, Op.color)
    before = predictor.predict(Op.dodge_burn)
    predictor.close()
    reloaded = ActionPredictor(path)
    assert reloaded.predict(Op.dodge_burn) == before
    assert reloaded.predict(Op.volume) == predictor.predict(Op.volume)


def test_the_file_holds_only_own_counts_not_the_priors(predictor, path):
    apply(predictor, "doc", Op.dodge_burn, Op.color)
    saved = json.loads(path.read_text())
    assert saved == {"version": 1, "transitions": {"dodge_burn": {"color": 1}}}


def test_a_missing_file_starts_from_the_priors(path):
    assert not path.exists()
    assert ActionPredictor(path).predict(Op.dodge_burn).next is Op.volume
    assert not path.exists()  # nothing learned, nothing written


@pytest.mark.parametrize(
    "content",
    [
        b"{not json",
        b"\xff\xfe\x00garbage",
        b"[1, 2, 3]",
        b'{"version": 1, "transitions": {"sharpen": {"color": 3}}}',
        b'{"version": 1, "transitions": {"beauty": {"liquify": 3}}}',
        b'{"version": 1, "transitions": {"beauty": {"color": -5}}}',
        b'{"version": 1, "transitions": {"beauty": {"color": "5"}}}',
        b'{"version": 2, "transitions": {}}',
        b'{"transitions": {"beauty": {"color": 5}}}',
        b'{"version": 1, "transitions": {}, "extra": true}',
        b"",
    ],
    ids=[
        "corrupt",
        "not-utf8",
        "list",
        "unknown-source-op",
        "unknown-next-op",
        "negative",
        "string-count",
        "other-version",
        "no-version",
        "extra-field",
        "empty",
    ],
)
def test_a_foreign_file_is_ignored_with_a_warning_and_replaced(path, content, caplog):
    path.parent.mkdir(parents=True)
    path.write_bytes(content)
    with caplog.at_level(logging.WARNING, logger=predict.__name__):
        predictor = ActionPredictor(path)
    assert any(record.levelno == logging.WARNING for record in caplog.records)
    assert predictor.predict(Op.dodge_burn).next is Op.volume  # priors only
    apply(predictor, "doc", Op.color, Op.beauty)
    assert json.loads(path.read_text())["transitions"] == {"color": {"beauty": 1}}


def test_an_oversized_file_is_ignored(path):
    path.parent.mkdir(parents=True)
    path.write_bytes(b" " * (predict.MAX_FILE_BYTES + 1))
    assert ActionPredictor(path).predict(Op.color).next is None


def test_the_save_is_atomic_and_leaves_no_temp_files(predictor, path, monkeypatch):
    writes = []
    real = predict.atomic_write

    def spy(target, chunks, **kwargs):
        writes.append(target)
        real(target, chunks, **kwargs)

    monkeypatch.setattr(predict, "atomic_write", spy)
    apply(predictor, "doc", Op.dodge_burn, Op.volume, Op.beauty)
    assert writes == [path, path]
    assert [p.name for p in path.parent.iterdir()] == ["actions.json"]


def test_a_failed_save_does_not_lose_learning_and_close_retries(predictor, path, monkeypatch):
    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(predict, "atomic_write", broken)
    prediction = predictor.record("doc", Op.color)
    apply(predictor, "doc", Op.generate)  # the save fails; the request still succeeds
    assert prediction.next is None
    assert predictor.predict(Op.color).next is Op.generate
    monkeypatch.undo()
    predictor.close()
    assert ActionPredictor(path).predict(Op.color).next is Op.generate


# routes


async def test_posted_action_and_prediction_route_agree(client, auth):
    response = await client.post(
        "/v1/actions", json={"document_id": "doc-1", "action": "dodge_burn"}, headers=auth
    )
    assert response.status == 200, await response.text()
    posted = await response.json()
    assert posted["next"] == "volume"
    assert posted["probability"] == pytest.approx(14 / 22)
    response = await client.get("/v1/predictions", params={"after": "dodge_burn"}, headers=auth)
    assert response.status == 200
    assert await response.json() == posted


async def test_prediction_with_nothing_known_is_null(client, auth):
    response = await client.get("/v1/predictions", params={"after": "generate"}, headers=auth)
    assert response.status == 200
    assert await response.json() == {"next": None, "probability": None}


async def test_action_routes_need_the_token(client):
    response = await client.post("/v1/actions", json={"document_id": "d", "action": "beauty"})
    assert response.status == 401
    response = await client.get("/v1/predictions", params={"after": "beauty"})
    assert response.status == 401


@pytest.mark.parametrize(
    "body",
    [
        {"document_id": "doc", "action": "sharpen"},
        {"document_id": "", "action": "beauty"},
        {"action": "beauty"},
        {"document_id": "doc", "action": "beauty", "extra": 1},
    ],
)
async def test_a_bad_action_is_invalid(client, auth, body):
    response = await client.post("/v1/actions", json=body, headers=auth)
    assert response.status == 422
    assert (await response.json())["error"]["code"] == "invalid_request"


@pytest.mark.parametrize("params", [{}, {"after": "sharpen"}, {"after": ""}])
async def test_a_bad_after_is_invalid(client, auth, params):
    response = await client.get("/v1/predictions", params=params, headers=auth)
    assert response.status == 422
    assert (await response.json())["error"]["code"] == "invalid_request"


async def test_recorded_actions_are_saved_in_the_data_dir(client, auth, settings):
    for action in ("dodge_burn", "color"):
        response = await client.post(
            "/v1/actions", json={"document_id": "doc", "action": action}, headers=auth
        )
        assert response.status == 200
    saved = json.loads((settings.data_dir / "actions.json").read_text())
    assert saved["transitions"] == {"dodge_burn": {"color": 1}}
