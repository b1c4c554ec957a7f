"""Job requests with random fields, on the real retouch engine: each is queued (202),
or refused at once with a stable code (404, 422, 503), and every job that was queued
runs to done or cancelled: none fails in the engine for a request the API let in."""

from __future__ import annotations

import json

import numpy as np
import pytest
from fuzzing import fuzz, tally
from helpers import raw_headers
from hypothesis import given
from hypothesis import strategies as st
from jobs_support import until_ended
from live_server import LiveServer

from sidecar.api.keys import BUS, SCHEDULER
from sidecar.api.openapi_routes import OPERATIONS
from sidecar.settings import Settings

OPS = ["beauty", "dodge_burn", "volume", "color", "generate"]
PARAMS = ["strength", "prior_a", "prior_b", "refine", "steps", "guidance", "width"]
EXPECTED = {
    202: None,
    404: {"image_not_found"},
    413: {"payload_too_large"},
    415: {"unsupported_media_type"},
    422: {"invalid_request"},
    503: {"engine_unavailable"},
}


@pytest.fixture(scope="module")
def server(tmp_path_factory, portrait):
    root = tmp_path_factory.mktemp("jobs")
    settings = Settings(cache_dir=root / "cache", config_dir=root / "config", data_dir=root / "d")
    with LiveServer(settings) as live:  # the real engines
        pixels = np.ascontiguousarray(portrait[::8, ::8])  # 64×64: quick to retouch
        answer = live.http().request("POST", "/v1/images", pixels.tobytes(), raw_headers(pixels))
        live.image_id = answer.json()["image_id"]
        yield live


def scalars():
    return (
        st.none()
        | st.booleans()
        | st.integers(-(2**70), 2**70)
        | st.floats()
        | st.floats(-2, 200)
        | st.text(max_size=20)
    )


def any_json():
    return st.recursive(
        scalars(),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
        max_leaves=8,
    )


def valid_bodies(image_id: str):
    """Requests the contract allows (an op's own params included)."""

    def for_op(op: str):
        params = {"strength": st.floats(0, 1)}
        if op == "color":
            params |= {"prior_a": st.floats(-128, 127), "prior_b": st.floats(-128, 127)}
        fields = {
            "image_id": st.just(image_id),
            "intensity": st.floats(0, 1),
            "params": st.fixed_dictionaries({}, optional=params),
            "priority": st.sampled_from(["active", "hero", "normal", "background"]),
            "document_id": st.sampled_from(["doc-a", "doc-b"]) | st.text(min_size=1, max_size=200),
            "layer_stack_hash": st.none() | st.text(min_size=1, max_size=128),
            "seed": st.integers(0, 2**63 - 1),
            "preview": st.fixed_dictionaries(
                {},
                optional={
                    "progressive": st.booleans(),
                    "stream_steps": st.booleans(),
                    "decode_every": st.integers(0, 1000),
                },
            ),
        }
        if op == "generate":
            fields = {"prompt": st.text(min_size=1, max_size=40)}
        return st.fixed_dictionaries({"op": st.just(op)}, optional=fields)

    return st.sampled_from(OPS).flatmap(for_op)


def job_bodies(image_id: str):
    """Valid requests, and valid requests with one field broken, dropped or added."""

    def broken(body: dict, data) -> dict:
        body = dict(body)
        key = data.draw(st.sampled_from(sorted({*body, *FIELDS})))
        how = data.draw(st.sampled_from(["garbage", "drop", "extreme"]))
        if how == "drop":
            body.pop(key, None)
        elif how == "garbage":
            body[key] = data.draw(any_json())
        else:
            body[key] = data.draw(
                st.sampled_from([-1, 2**64, 1e308, -0.0, "", "x" * 5000, [], {}, None, True])
            )
        return body

    valid = valid_bodies(image_id)
    return valid | st.tuples(valid, st.data()).map(lambda pair: broken(*pair))


FIELDS = ["op", "image_id", "intensity", "params", "priority", "document_id", "seed",
          "layer_stack_hash", "preview", "prompt", "surprise"]  # fmt: skip


def check(answer) -> None:
    tally("requests")
    assert answer.status in EXPECTED, (answer.status, answer.body[:300])
    if answer.status != 202:
        assert answer.code in EXPECTED[answer.status], answer.body[:300]


def test_random_job_requests_are_queued_or_refused_and_queued_ones_run(server):
    accepted: list[str] = []

    @fuzz(200)
    @given(job_bodies(server.image_id))
    def submit(body):
        text = json.dumps(body).encode()  # NaN and Infinity included, as Python writes them
        answer = server.http().json("POST", "/v1/jobs", text)
        check(answer)
        if answer.status == 202:
            accepted.append(answer.json()["job_id"])

    submit()
    assert len(accepted) >= 10, f"{len(accepted)} accepted: the strategy is off"
    print("accepted", len(accepted))
    scheduler = server.app[SCHEDULER]
    server.call(until_ended(server.app[BUS], scheduler, accepted, timeout=120), timeout=130)
    failed = [scheduler.get(j) for j in accepted if scheduler.get(j).state.value == "failed"]
    assert not failed, [(j.request, j.error) for j in failed]


JSON_ROUTES = [op for op in OPERATIONS if op.body is not None]


@fuzz(60)
@given(st.sampled_from(JSON_ROUTES), any_json(), st.data())
def test_random_json_to_every_json_route_is_answered_cleanly(server, op, body, data):
    path = op.path.replace("{job_id}", data.draw(st.just("0" * 32) | st.text("0123456789abcdef")))
    answer = server.http().json(op.method.upper(), path, json.dumps(body).encode())
    tally("requests")
    assert 200 <= answer.status < 500, (op.path, answer.status, answer.body[:300])
    if answer.status >= 400:
        assert answer.code is not None, answer.body[:300]
