"""Uploads fuzzed over real HTTP: random bodies, media types and X-Image-* headers.
Every answer is 200/201 with the pixels' true id, or a 4xx JSON error with a stable
code; a refused upload leaves no file, and the store holds exactly what was accepted."""

from __future__ import annotations

import numpy as np
import pytest
from fuzzing import fuzz, tally
from helpers import encode_png, encode_tiff
from hypothesis import given
from hypothesis import strategies as st
from live_server import synthetic_server

from sidecar.api.keys import IMAGES
from sidecar.cache.keys import image_id

MAX_BYTES = 200_000
CODES = {
    "invalid_request",
    "invalid_image",
    "image_too_large",
    "payload_too_large",
    "unsupported_media_type",
}
MEDIA = [
    "image/png",
    "image/jpeg",
    "image/tiff",
    "image/jpg",
    "image/tif",
    "application/octet-stream",
    "IMAGE/PNG",
    "image/png; charset=binary",
    "text/plain",
    "application/json",
    "image/gif",
    "",
    "multipart/form-data; boundary=x",
]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("uploads")
    with synthetic_server(
        root, max_upload_bytes=MAX_BYTES, max_megapixels=0.02, max_side=400
    ) as live:
        live.accepted = set()
        yield live
        live.app[IMAGES].flush()
        images = live.settings.images_dir
        stored = {p.stem for p in images.rglob("*.img")}
        leftovers = [p for p in images.rglob("*") if p.name.startswith(".tmp-")]
        assert stored == live.accepted and not leftovers


def header_value():
    """Header values as sent: bytes, UTF-8 included. No control characters: HTTP
    has no such header, and aiohttp's parser answers them with its own plain 400
    before the app sees the request."""
    text = st.text(st.characters(blacklist_categories=("Cc", "Cs")), max_size=8)
    return st.one_of(
        st.integers(-5, 500).map(str),
        st.sampled_from(["3", "4", "8", "16", "1e2", "0x10", " 8", "٣", "", "9" * 20]),
        text,
    ).map(str.encode)


def check(server, answer, body: bytes, headers: dict) -> None:
    tally("requests")
    stored = server.settings.images_dir
    if answer.status in (200, 201):
        info = answer.json()
        server.accepted.add(info["image_id"])
        if headers.get("Content-Type") == "application/octet-stream":
            depth = np.dtype(np.uint8) if info["depth"] == 8 else np.dtype("<u2")
            shape = (info["height"], info["width"], info["channels"])
            assert image_id(np.frombuffer(body, depth).reshape(shape)) == info["image_id"]
        return
    assert 400 <= answer.status < 500, (answer.status, answer.body[:300])
    assert answer.code in CODES, answer.body[:300]
    on_disk = {p.stem for p in stored.rglob("*.img")}
    assert on_disk <= server.accepted, "a refused upload left a file"


raw_headers = st.fixed_dictionaries(
    {},
    optional={
        "X-Image-Width": header_value(),
        "X-Image-Height": header_value(),
        "X-Image-Channels": header_value(),
        "X-Image-Depth": header_value(),
    },
)


@fuzz(150)
@given(st.sampled_from(MEDIA), raw_headers, st.binary(max_size=3000))
def test_random_bodies_and_headers_are_refused_cleanly(server, media, extra, body):
    headers = {**extra, **({"Content-Type": media} if media else {})}
    answer = server.http().request("POST", "/v1/images", body, headers)
    check(server, answer, body, headers)


@fuzz(150)
@given(
    st.integers(1, 40),
    st.integers(1, 40),
    st.sampled_from([3, 4]),
    st.sampled_from([8, 16]),
    st.integers(-2, 2),
    st.data(),
)
def test_raw_pixels_near_the_right_length(server, width, height, channels, depth, slack, data):
    size = width * height * channels * depth // 8
    body = data.draw(st.binary(min_size=max(size + slack, 0), max_size=max(size + slack, 0)))
    headers = {
        "Content-Type": "application/octet-stream",
        "X-Image-Width": str(width),
        "X-Image-Height": str(height),
        "X-Image-Channels": str(channels),
        "X-Image-Depth": str(depth),
    }
    answer = server.http().request("POST", "/v1/images", body, headers)
    check(server, answer, body, headers)
    assert (answer.status in (200, 201)) == (slack == 0), answer.body[:200]


@fuzz(60)
@given(
    st.integers(1, 600),
    st.integers(1, 600),
    st.sampled_from([np.uint8, np.uint16]),
    st.sampled_from(["png", "tiff"]),
)
def test_encoded_images_of_any_size_are_stored_or_refused_by_the_limits(
    server, width, height, dtype, kind
):
    pixels = np.full((height, width, 3), 7, dtype=dtype)
    body = encode_png(pixels) if kind == "png" else encode_tiff(pixels, "zlib")
    headers = {"Content-Type": f"image/{kind}"}
    answer = server.http().request("POST", "/v1/images", body, headers)
    check(server, answer, body, headers)
    fits = width * height <= 20_000 and max(width, height) <= 400 and len(body) <= MAX_BYTES
    assert (answer.status in (200, 201)) == fits, (width, height, answer.body[:200])


def test_a_body_cut_off_mid_upload_leaves_nothing(server):
    import socket

    server.app[IMAGES].flush()  # earlier uploads' writes land first
    before = {p.stem for p in server.settings.images_dir.rglob("*.img")}
    for declared, sent in [(30_000, 10_000), (MAX_BYTES - 1, 1)]:
        sock = socket.create_connection(("127.0.0.1", server.port))
        sock.sendall(
            (
                f"POST /v1/images HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
                f"Authorization: Bearer {server.token}\r\nContent-Type: image/png\r\n"
                f"Content-Length: {declared}\r\n\r\n"
            ).encode()
            + b"\x89PNG\r\n\x1a\n"
            + bytes(sent)
        )
        sock.close()  # the client goes away mid-body
    assert server.http().request("GET", "/v1/health").status == 200
    server.app[IMAGES].flush()
    assert {p.stem for p in server.settings.images_dir.rglob("*.img")} == before
