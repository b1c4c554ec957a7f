"""Hostile requests against a live server (raw HTTP, nothing normalised on the way):
traversal in every id parameter, odd digits, the token in queries, the caps on JSON
bodies, undeclared methods. Each is a clear 4xx with a stable code; none touches a
file outside the stores, none is a 500."""

from __future__ import annotations

import re

import numpy as np
import pytest
from fuzzing import tally
from helpers import raw_headers
from jobs_support import until_ended
from live_server import LiveServer

from sidecar.api.keys import BUS, IMAGES, SCHEDULER
from sidecar.api.openapi_routes import OPERATIONS

TRAVERSALS = [
    "..",
    "%2e%2e",
    "..%2f..%2f..%2fetc%2fpasswd",
    "..%5c..%5cwindows",
    "%2e%2e%2f%2e%2e%2fconfig%2ftoken",
    "....%2f%2f",
    "%252e%252e%252f",
    "..%00",
    "%00",
    "token",
    "a" * 5000,
    "%C2%B2",
    "%E2%80%AE",
    "-1",
    "0x10",
    "%20",
    "CON",
]


@pytest.fixture
def server(settings):
    with LiveServer(settings, engines=("synthetic",)) as live:
        yield live


@pytest.fixture
def job(server, portrait) -> tuple[str, str]:
    """(image_id, job_id) of a finished job with previews."""
    http = server.http()
    pixels = np.ascontiguousarray(portrait[:64, :64])
    image_id = http.request("POST", "/v1/images", pixels.tobytes(), raw_headers(pixels)).json()[
        "image_id"
    ]
    body = {"op": "beauty", "image_id": image_id, "params": {"steps": 2, "step_ms": 1}}
    job_id = http.json("POST", "/v1/jobs", body).json()["job_id"]
    scheduler = server.app[SCHEDULER]
    server.call(until_ended(server.app[BUS], scheduler, [job_id], timeout=10), timeout=15)
    assert scheduler.get(job_id).state.value == "done"
    return image_id, job_id


def tree(root) -> dict[str, int]:
    """Every file under root (SQLite's own files left out) with its size."""
    return {
        str(path.relative_to(root)): path.stat().st_size
        for path in root.rglob("*")
        if path.is_file() and "jobs.sqlite3" not in path.name
    }


def fill(path: str, ids: dict[str, str], hostile: str, name: str) -> str:
    return re.sub(r"{(\w+)}", lambda m: hostile if m[1] == name else ids[m[1]], path)


def test_traversal_in_every_id_parameter_is_refused(server, job, tmp_path):
    image_id, job_id = job
    canary = tmp_path / "config" / "token"
    ids = {"image_id": image_id, "job_id": job_id, "seq": "0", "document_id": "doc"}
    server.app[IMAGES].flush()
    before = tree(tmp_path)
    http = server.http()
    tried = 0
    for op in OPERATIONS:
        for name in re.findall(r"{(\w+)}", op.path):
            for hostile in TRAVERSALS:
                path = fill(op.path, ids, hostile, name)
                body = b'{"priority": "hero"}' if op.method == "patch" else None
                headers = {"Content-Type": "application/json"} if body else {}
                answer = http.request(op.method.upper(), path, body, headers)
                tried += 1
                tally("requests")
                assert answer.status < 500, (op.method, path, answer.body[:300])
                if name != "document_id":  # a document id is a name, never a path
                    assert answer.status in (404, 422), (op.method, path, answer.status)
                    if op.method != "head":
                        assert answer.code is not None, (op.method, path, answer.body[:200])
                assert canary.read_text().strip().encode() not in answer.body
    assert tried > 100
    server.app[IMAGES].flush()
    assert tree(tmp_path) == before  # nothing written, nothing removed


def test_a_preview_seq_of_non_ascii_digits_is_not_found(server, job):
    # "²".isdigit() is True and int("²") raises: this was a 500
    _, job_id = job
    for seq in ("%C2%B2", "%D9%A3", "%EF%BC%91"):  # superscript two, Arabic-Indic, fullwidth
        answer = server.http().request("GET", f"/v1/jobs/{job_id}/previews/{seq}")
        assert answer.status == 404 and answer.code == "not_found", answer.body


def test_an_odd_or_future_last_event_id_never_hangs(server, job):
    # resuming after the terminal event used to wait on a finished job forever
    _, job_id = job
    for last in ("\u00b2", "-1", "1e3", "", "9" * 400):
        answer = server.http().request(
            "GET", f"/v1/jobs/{job_id}/events", headers={"Last-Event-ID": last}
        )
        assert answer.status == 200, (last, answer.body[:200])


def test_the_token_in_a_query_is_no_option(server, job):
    # `?token=` authenticates a GET; the routes with query options used to refuse it
    # as an unknown option (422), so an <img src> of a result could never load
    _, job_id = job
    http = server.http(token=None)
    token = server.token
    answer = http.request("GET", f"/v1/jobs/{job_id}/result?format=png&token={token}")
    assert answer.status == 200 and answer.headers["Content-Type"] == "image/png"
    answer = http.request("GET", f"/v1/predictions?after=beauty&token={token}")
    assert answer.status == 200, answer.body
    answer = http.request("GET", f"/v1/predictions?after=beauty&color=1&token={token}")
    assert answer.status == 422 and answer.code == "invalid_request"


def test_a_405_names_the_methods_the_route_takes(server):
    for method, path in [("TRACE", "/v1/jobs"), ("PUT", "/v1/images"), ("POST", "/v1/health")]:
        answer = server.http().request(method, path)
        assert answer.status == 405 and answer.code == "method_not_allowed"
        assert answer.headers.get("Allow"), (method, path)


def test_a_document_id_over_the_limit_is_refused_on_delete_too(server):
    answer = server.http().request("DELETE", "/v1/precompute/" + "d" * 201)
    assert answer.status == 422 and answer.code == "invalid_request"
    assert server.http().request("DELETE", "/v1/precompute/" + "d" * 200).status == 200


@pytest.mark.parametrize(
    "path", ["/v1/jobs", "/v1/precompute", "/v1/actions", "/v1/jobs/" + "0" * 32]
)
def test_json_bodies_over_a_megabyte_are_413(server, path):
    method = "PATCH" if path.count("/") == 3 else "POST"
    body = b'{"document_id": "' + b"x" * (2 << 20) + b'"}'
    answer = server.http().request(method, path, body, {"Content-Type": "application/json"})
    assert answer.status == 413 and answer.code == "payload_too_large"


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"null",
        b"[]",
        b'"beauty"',
        b"{",
        b'{"op": "beauty", "image_id": "' + b"0" * 64 + b'", "intensity": NaN}',
        b'{"op": "beauty", "image_id": "' + b"0" * 64 + b'", "intensity": Infinity}',
        b'{"op": "beauty", "image_id": "' + b"0" * 64 + b'", "params": {"s": 1e999}}',
        b'{"op": "beauty", "image_id": "' + b"0" * 64 + b'", "document_id": "\\ud800"}',
        b'{"op": "beauty", "op": "volume"}',
        b"\xff\xfe{}",
        b'{"op": "beauty", "image_id": "' + b"0" * 64 + b'", "seed": ' + b"9" * 5000 + b"}",
        b"[" * 100_000 + b"]" * 100_000,
    ],
)
def test_hostile_job_bodies_are_422(server, body):
    answer = server.http().request("POST", "/v1/jobs", body, {"Content-Type": "application/json"})
    assert answer.status == 422 and answer.code == "invalid_request", answer.body[:300]
