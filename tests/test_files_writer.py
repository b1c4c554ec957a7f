"""The output writer and metadata reader on their own: what goes into each format, and
the edge cases a batch seldom meets."""

from __future__ import annotations

import io
import struct
import zlib

import cv2
import numpy as np
import pytest
import tifffile
from PIL import Image, ImageCms

from sidecar.imaging import Limits, decode_image, read_header
from sidecar.imaging.decode import BufferReader
from sidecar.imaging.exif import orientation_of, upright_exif
from sidecar.imaging.files import encode_output, output_file
from sidecar.imaging.metadata import Metadata, read_file_metadata, read_metadata

ICC = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
IPTC = b"\x1c\x02\x00\x00\x02\x00\x04\x1c\x02\x05\x00\x04Name"
XMP = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF/></x:xmpmeta>'


def joined(chunks) -> bytes:
    return b"".join(bytes(chunk) for chunk in chunks)


def reopen(data: bytes) -> Image.Image:
    return Image.open(io.BytesIO(data))


def pixels(channels: int = 3, dtype=np.uint8) -> np.ndarray:
    rng = np.random.default_rng(3)
    top = 256 if dtype == np.uint8 else 65536
    return rng.integers(0, top, (20, 30, channels), dtype=dtype)


def meta(**fields) -> Metadata:
    return Metadata(format="png", width=30, height=20, **fields)


def chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">L", len(data)) + kind + data + struct.pack(">L", crc)


@pytest.mark.parametrize("fmt", ["jpeg", "png", "tiff"])
def test_a_profile_of_another_colour_space_is_left_out(fmt):
    cmyk = bytearray(ICC)
    cmyk[16:20] = b"CMYK"
    out = joined(encode_output(pixels(), fmt, meta(icc=bytes(cmyk))))
    assert "icc_profile" not in reopen(out).info
    out = joined(encode_output(pixels(), fmt, meta(icc=ICC)))
    assert reopen(out).info["icc_profile"] == ICC


def exif_with_thumbnail_directory() -> bytes:
    tags = Image.Exif()
    tags[0x0112] = 6
    tags[0x010F] = "Camera"
    tags.get_ifd(0x8769)[0xA002] = 30  # PixelXDimension, as stored
    tags.get_ifd(0x8769)[0xA003] = 20
    tags.get_ifd(0x8769)[0x927C] = b"maker note \x00\x01\x02"
    blob = bytearray(tags.tobytes()[6:])
    ifd1 = len(blob)  # IFD1: one entry (Compression 6, JPEG), then no next IFD
    blob += struct.pack(">HHHLHH", 1, 0x0103, 3, 1, 6, 0) + b"\x00\x00\x00\x00"
    endian = ">" if blob[:2] == b"MM" else "<"
    (first,) = struct.unpack_from(endian + "L", blob, 4)
    (count,) = struct.unpack_from(endian + "H", blob, first)
    struct.pack_into(endian + "L", blob, first + 2 + 12 * count, ifd1)
    return bytes(blob)


def test_upright_exif_changes_orientation_dimensions_and_thumbnail_only():
    blob = exif_with_thumbnail_directory()
    assert orientation_of(blob) == 6 and orientation_of(b"Exif\x00\x00" + blob) == 6
    out = upright_exif(blob, 20, 30, rotated=True)
    assert len(out) == len(blob)
    assert sum(a != b for a, b in zip(out, blob, strict=True)) <= 4  # a few bytes patched
    tags = Image.Exif()
    tags.load(b"Exif\x00\x00" + out)
    assert tags[0x0112] == 1 and tags[0x010F] == "Camera"
    assert tags.get_ifd(0x8769)[0xA002] == 20 and tags.get_ifd(0x8769)[0xA003] == 30
    assert tags.get_ifd(0x8769)[0x927C] == b"maker note \x00\x01\x02"
    assert orientation_of(out) == 1
    kept = upright_exif(blob, 30, 20, rotated=False)  # not turned: the thumbnail stays
    assert kept[-4:] == blob[-4:] and orientation_of(kept) == 1


@pytest.mark.parametrize("bad", [b"", b"Exif\x00\x00", b"II*\x00\xff\xff\xff\xff", b"nonsense"])
def test_unreadable_exif_is_orientation_1_and_left_as_is(bad):
    assert orientation_of(bad) == 1
    assert upright_exif(bad, 1, 1, rotated=True) == bad.removeprefix(b"Exif\x00\x00")


def test_xmp_too_long_for_one_jpeg_segment_is_left_out_of_jpeg_only():
    long_xmp = XMP + b" " * 70_000
    jpeg = reopen(joined(encode_output(pixels(), "jpeg", meta(xmp=long_xmp, iptc=IPTC))))
    assert "xmp" not in jpeg.info and jpeg.info["photoshop"][0x0404] == IPTC
    assert reopen(joined(encode_output(pixels(), "png", meta(xmp=long_xmp)))).info["xmp"] == (
        long_xmp
    )
    tiff = joined(encode_output(pixels(), "tiff", meta(xmp=long_xmp)))
    with tifffile.TiffFile(io.BytesIO(tiff)) as tif:
        assert tif.pages.first.tags[700].value == long_xmp


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
@pytest.mark.parametrize("fmt", ["png", "tiff"])
def test_gray_with_alpha_is_written_as_gray_with_alpha(dtype, fmt):
    gray = pixels(2, dtype)
    rgba = np.ascontiguousarray(np.dstack([gray[..., :1]] * 3 + [gray[..., 1:]]))
    data = joined(encode_output(rgba, fmt, meta(gray=True)))
    if fmt == "png":  # IHDR: 8 or 16 bit, colour type 4 (gray and alpha)
        assert data[24:26] == bytes([dtype().itemsize * 8, 4])
    if dtype == np.uint8:
        assert reopen(data).mode == "LA"
    if fmt == "tiff":
        with tifffile.TiffFile(io.BytesIO(data)) as tif:
            assert tif.pages.first.shape == (20, 30, 2) and tif.pages.first.dtype == dtype
    if fmt == "png":  # 16-bit LA is ours to write: decoded back exactly
        decoded = decode_image(data, read_header(data, "png", complete=True), Limits())
        np.testing.assert_array_equal(decoded, rgba)


def test_gray_comes_back_exactly_from_equal_channels_and_as_luma_otherwise():
    gray = pixels(1, np.uint16)
    rgb = np.ascontiguousarray(np.dstack([gray] * 3))
    out = reopen(joined(encode_output(rgb, "png", meta(gray=True))))
    assert out.mode == "I;16"
    np.testing.assert_array_equal(np.asarray(out), gray[..., 0])
    tinted = np.zeros((2, 2, 3), np.uint8)
    tinted[..., 1] = 200  # green: luma 0.587 × 200
    out = reopen(joined(encode_output(tinted, "jpeg", meta(gray=True))))
    assert out.mode == "L" and abs(int(np.asarray(out)[0, 0]) - 117) <= 2


@pytest.mark.parametrize("fmt", ["jpeg", "png", "tiff"])
def test_resolution_is_kept_and_follows_a_turn(fmt):
    out = reopen(joined(encode_output(pixels(), fmt, meta(dpi=(300.0, 150.0)))))
    assert out.info["dpi"] == pytest.approx((300, 150), abs=0.1)
    turned = meta(dpi=(300.0, 150.0), orientation=6)
    out = reopen(joined(encode_output(pixels(), fmt, turned)))
    assert out.info["dpi"] == pytest.approx((150, 300), abs=0.1)


def test_a_png_result_of_the_same_kind_gets_its_metadata_without_encoding_again():
    ok, result = cv2.imencode(".png", pixels(4, np.uint16))
    result = result.tobytes()
    out = joined(output_file(result, "png", meta(icc=ICC, xmp=XMP, iptc=IPTC)))
    assert out.endswith(result[result.index(b"IDAT") - 4 :])  # the image data as it was
    found = read_metadata(BufferReader(out), "png")
    assert (found.icc, found.xmp, found.iptc) == (ICC, XMP, IPTC)
    assert joined(output_file(result, "png", meta(icc=ICC))) == joined(
        output_file(result, "png", meta(icc=ICC))
    )  # the same bytes every time: a rerun writes the same file


def test_png_metadata_after_the_image_data_is_read():
    base = io.BytesIO()
    Image.fromarray(pixels()).save(base, "PNG")
    data = base.getvalue()
    xmp = chunk(b"iTXt", b"XML:com.adobe.xmp\x00\x01\x00\x00\x00" + zlib.compress(XMP))
    text = f"\niptc\n{len(IPTC):8d}\n{IPTC.hex()}\n".encode()
    iptc = chunk(b"zTXt", b"Raw profile type iptc\x00\x00" + zlib.compress(text))
    end = data.rindex(b"IEND") - 4
    found = read_metadata(BufferReader(data[:end] + xmp + iptc + data[end:]), "png")
    assert (found.xmp, found.iptc) == (XMP, IPTC)


def test_iptc_in_a_tiff_photoshop_resource_block_is_read(tmp_path):
    block = b"8BIM\x04\x04\x00\x00" + struct.pack(">L", len(IPTC)) + IPTC
    block = b"8BIM\x03\xed\x00\x00" + struct.pack(">L", 2) + b"\x00\x00" + block
    path = tmp_path / "resources.tif"
    tifffile.imwrite(path, pixels(), photometric="rgb", extratags=[(34377, 7, len(block), block)])
    assert read_file_metadata(path).iptc == IPTC
    (tmp_path / "notes.png").write_bytes(b"not an image")
    assert read_file_metadata(tmp_path / "notes.png") is None


def test_no_metadata_writes_pixels_only():
    for fmt in ("jpeg", "png", "tiff"):
        out = reopen(joined(encode_output(pixels(4), fmt, None)))
        assert "icc_profile" not in out.info and "exif" not in out.info
        assert out.mode == ("RGB" if fmt == "jpeg" else "RGBA")
