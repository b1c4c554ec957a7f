"""Image decoding under random bytes, shapes and damage: it gives canonical pixels or
one of the API's own errors (a clear 4xx), never another exception, and never pixels
other than the header promised."""

from __future__ import annotations

import numpy as np
import pytest
from fuzzing import fuzz, tally
from helpers import encode_jpeg, encode_png, encode_tiff, encode_tiff_opencv
from hypothesis import given
from hypothesis import strategies as st

from sidecar.errors import ApiError
from sidecar.imaging import Limits, canonical_from_raw, decode_image, read_header, to_canonical
from sidecar.imaging.decode import sniff_format

LIMITS = Limits(max_megapixels=1.0, max_side=4096)  # a damaged header may claim anything
FORMATS = ["png", "jpeg", "tiff"]


def decode(data: bytes, declared: str) -> np.ndarray | None:
    """The upload path's decoding: pixels, or None for an ApiError (a 4xx)."""
    tally("decodes")
    try:
        header = read_header(data, declared, complete=True)
        pixels = decode_image(data, header, LIMITS)
    except ApiError as exc:
        assert 400 <= exc.status < 500, exc
        return None
    assert pixels.flags.c_contiguous and pixels.ndim == 3 and pixels.shape[2] in (3, 4)
    assert pixels.dtype in (np.uint8, np.dtype("<u2"))
    assert pixels.shape[:2] == (header.height, header.width)
    assert header.width * header.height <= LIMITS.max_pixels
    return pixels


def _samples() -> dict[str, bytes]:
    rng = np.random.default_rng(5)
    rgb8 = rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)
    rgba16 = rng.integers(0, 65536, (20, 18, 4), dtype=np.uint16)
    gray = rng.integers(0, 256, (16, 16), dtype=np.uint8)
    return {
        "png": encode_png(rgb8),
        "png16": encode_png(rgba16),
        "jpeg": encode_jpeg(rgb8),
        "tiff": encode_tiff(rgb8),
        "tiff16": encode_tiff(rgba16),
        "tiff-zlib": encode_tiff(gray, "zlib"),
        "tiff-lzw": encode_tiff_opencv(rgb8),
    }


SAMPLES = _samples()


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_the_undamaged_samples_decode(name):
    data = SAMPLES[name]
    assert decode(data, sniff_format(data)) is not None


@fuzz(400)
@given(st.sampled_from(sorted(SAMPLES)), st.data())
def test_damaged_files_decode_or_are_refused_cleanly(name, data):
    body = bytearray(SAMPLES[name])
    for _ in range(data.draw(st.integers(1, 6))):
        how = data.draw(st.sampled_from(["flip", "cut", "insert", "delete", "splice"]))
        spot = data.draw(st.integers(0, max(len(body) - 1, 0)))
        if how == "flip" and body:
            body[spot] ^= data.draw(st.integers(1, 255))
        elif how == "cut":
            del body[spot:]
        elif how == "insert":
            body[spot:spot] = data.draw(st.binary(min_size=1, max_size=64))
        elif how == "delete":
            del body[spot : spot + data.draw(st.integers(1, 64))]
        else:  # a header field set to an extreme value
            value = data.draw(st.sampled_from([0, 1, 0xFF, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF]))
            body[spot : spot + 4] = value.to_bytes(4, data.draw(st.sampled_from(["big", "little"])))
    declared = data.draw(st.sampled_from(FORMATS))
    decode(bytes(body), declared)


magic = st.sampled_from([b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"II*\x00", b"MM\x00*", b""])


@fuzz(300)
@given(magic, st.binary(max_size=2000), st.sampled_from(FORMATS))
def test_random_bytes_behind_a_magic_number_are_refused_cleanly(prefix, rest, declared):
    decode(prefix + rest, declared)


@fuzz(200)
@given(
    st.integers(0, 70),
    st.integers(0, 70),
    st.integers(0, 6),
    st.sampled_from([0, 1, 7, 8, 16, 32]),
    st.integers(-3, 3),
)
def test_raw_pixels_of_any_shape_are_viewed_or_refused(width, height, channels, depth, slack):
    tally("decodes")
    size = max(width * height * channels * max(depth // 8, 1) + slack, 0)
    try:
        pixels = canonical_from_raw(bytes(size), width, height, channels, depth)
    except ApiError as exc:
        assert exc.status == 422
        return
    assert pixels.shape == (height, width, channels) and pixels.nbytes == size


@fuzz(200)
@given(
    st.sampled_from([np.uint8, np.uint16, np.int16, np.float32, ">u2", np.uint32, bool]),
    st.lists(st.integers(0, 6), min_size=0, max_size=4),
)
def test_any_decoded_array_becomes_canonical_or_is_refused(dtype, shape):
    tally("decodes")
    array = np.zeros(shape, dtype=dtype)
    try:
        pixels = to_canonical(array)
    except ApiError as exc:
        assert exc.status == 422
        return
    assert pixels.ndim == 3 and pixels.shape[2] in (3, 4) and pixels.flags.c_contiguous
    assert pixels.dtype in (np.uint8, np.dtype("<u2"))
