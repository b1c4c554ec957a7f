"""`apply` and `batch` outputs keep the input's ICC profile (byte for byte), EXIF
(orientation 1 once the pixels are upright), XMP, IPTC, depth, alpha and grayscale."""

from __future__ import annotations

import functools
import io
import struct

import cv2
import numpy as np
import pytest
import tifffile
from helpers import GRAY_ALPHA, free_port
from PIL import Image, ImageCms, PngImagePlugin

from sidecar.cli import main
from sidecar.errors import ApiError
from sidecar.imaging import png
from sidecar.imaging.decode import decode_image, read_header
from sidecar.imaging.files import encode_output
from sidecar.imaging.pixels import DTYPES, Limits

WIDTH, HEIGHT = 192, 176  # upright; not square, so a turn shows in the size
FACE = (slice(45, 110), slice(50, 105))
BELOW_FACE = slice(130, None)  # suit and flag: no skin, so the exact bits stay
DATE = "2024:05:06 07:08:09"
XMP = (
    b'<?xpacket begin="\xef\xbb\xbf" id="W5M0MpCehiHzreSzNTczkc9d"?>'
    b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
    b'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description '
    b'xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:tiff="http://ns.adobe.com/tiff/1.0/" '
    b'tiff:Orientation="{o}"><dc:creator><rdf:Seq><rdf:li>Test Studio</rdf:li></rdf:Seq>'
    b'</dc:creator></rdf:Description></rdf:RDF></x:xmpmeta><?xpacket end="w"?>'
)
IPTC = (
    b"\x1c\x02\x00\x00\x02\x00\x04"  # record version
    + b"\x1c\x02\x05\x00\x0bPortrait 12"  # object name
    + b"\x1c\x02\x74\x00\x10(c) Test Studio."  # copyright
)


def xmp(orientation: int) -> bytes:
    return XMP.replace(b"{o}", str(orientation).encode())


@functools.cache
def profile(space: bytes = b"RGB ") -> bytes:
    """A valid ICC profile that is not plain sRGB: lcms's sRGB with its own creator
    (made once: lcms stamps it with the time)."""
    data = bytearray(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())
    data[80:84] = b"TEST"
    data[16:20] = space
    return bytes(data)


def exif(orientation: int) -> bytes:
    tags = Image.Exif()
    tags[0x0112] = orientation
    tags[0x010F] = "Test camera"
    tags[0x013B] = "Test Studio"  # Artist
    tags.get_ifd(0x8769)[0x9003] = DATE  # DateTimeOriginal
    return tags.tobytes()


def with_app13(jpeg: bytes, iptc: bytes) -> bytes:
    block = b"8BIM\x04\x04\x00\x00" + struct.pack(">L", len(iptc)) + iptc
    block += b"\x00" * (len(iptc) & 1)
    payload = b"Photoshop 3.0\x00" + block
    return jpeg[:2] + b"\xff\xed" + struct.pack(">H", len(payload) + 2) + payload + jpeg[2:]


def iptc_text(iptc: bytes) -> str:
    return f"\niptc\n{len(iptc):8d}\n{iptc.hex()}\n"


def turned(pixels: np.ndarray, orientation: int) -> np.ndarray:
    """Pixels as a camera stores them for `orientation` (Pillow turns them upright)."""
    turn = {1: 0, 3: 2, 6: 1, 8: -1}[orientation]  # np.rot90 turns counter-clockwise
    return np.ascontiguousarray(np.rot90(pixels, turn))


@pytest.fixture(scope="module")
def upright() -> np.ndarray:
    from skimage import data

    face = data.astronaut()[0:320, 96:416]
    return cv2.resize(face, (WIDTH, WIDTH), interpolation=cv2.INTER_AREA)[:HEIGHT]


@pytest.fixture
def shoot(tmp_path, upright):
    folder = tmp_path / "shoot"
    folder.mkdir()
    rgb16 = upright.astype(np.uint16) * 257 + 3
    gray = cv2.cvtColor(upright, cv2.COLOR_RGB2GRAY)
    alpha = np.linspace(10, 250, WIDTH * HEIGHT).astype(np.uint8).reshape(HEIGHT, WIDTH)

    out = io.BytesIO()  # JPEG, turned (6), every kind of metadata
    Image.fromarray(turned(upright, 6)).save(
        out, "JPEG", quality=95, icc_profile=profile(), exif=exif(6), xmp=xmp(6)
    )
    (folder / "a.jpg").write_bytes(with_app13(out.getvalue(), IPTC))

    info = PngImagePlugin.PngInfo()  # PNG, RGBA, turned (8)
    info.add_itxt("XML:com.adobe.xmp", xmp(1).decode())
    info.add_text("Raw profile type iptc", iptc_text(IPTC), zip=True)
    Image.fromarray(turned(np.dstack([upright, alpha]), 8)).save(
        folder / "b.png", icc_profile=profile(), exif=exif(8), pnginfo=info
    )

    tifffile.imwrite(  # TIFF, 16-bit RGB, turned (6) by its own tag
        folder / "c.tif",
        turned(rgb16, 6),
        photometric="rgb",
        iccprofile=profile(),
        extratags=[
            (274, "H", 1, 6, True),
            (271, "s", 0, "Test camera", True),
            (315, "s", 0, "Test Studio", True),
            (700, "B", len(xmp(1)), xmp(1), True),
            (33723, 7, len(IPTC), IPTC, True),
        ],
    )

    gray16 = Image.fromarray(turned(gray.astype(np.uint16) * 257, 3))  # PNG, 16-bit gray
    gray16.save(folder / "d.png", icc_profile=profile(b"GRAY"), exif=exif(3))

    Image.fromarray(gray).save(  # JPEG, gray, upright
        folder / "e.jpg", quality=95, icc_profile=profile(b"GRAY"), exif=exif(1), xmp=xmp(1)
    )
    tifffile.imwrite(folder / "f.tif", turned(gray, 8), extratags=[(274, "H", 1, 8, True)])
    return folder, {"rgb16": rgb16, "gray": gray, "alpha": alpha}


def run(*argv: str) -> int:
    return main([*argv, "--op", "beauty", "--port", str(free_port())])


def read(path) -> np.ndarray:
    pixels = cv2.imread(str(path), cv2.IMREAD_UNCHANGED | cv2.IMREAD_IGNORE_ORIENTATION)
    assert pixels is not None, path
    if pixels.ndim == 3:
        code = cv2.COLOR_BGRA2RGBA if pixels.shape[2] == 4 else cv2.COLOR_BGR2RGB
        pixels = cv2.cvtColor(pixels, code)
    return pixels


def assert_exif_upright(image: Image.Image) -> None:
    tags = image.getexif()
    assert tags.get(0x0112) == 1
    assert tags.get(0x010F) == "Test camera" and tags.get(0x013B) == "Test Studio"


def tiff_tags(path) -> dict:
    with tifffile.TiffFile(path) as tif:
        return {tag.code: tag.value for tag in tif.pages.first.tags}


def test_a_batch_keeps_profile_exif_xmp_iptc_depth_alpha_and_gray(shoot, tmp_path, upright):
    folder, inputs = shoot
    out = tmp_path / "out"
    assert run("batch", str(folder), str(out)) == 0
    names = ["a.jpg", "b.png", "c.tif", "d.png", "e.jpg", "f.tif"]
    assert sorted(path.name for path in out.iterdir()) == names

    with Image.open(out / "a.jpg") as image:  # JPEG, was turned
        assert (image.size, image.mode) == ((WIDTH, HEIGHT), "RGB")
        assert image.info["icc_profile"] == profile()
        assert image.info["xmp"] == xmp(1)  # its tiff:Orientation follows the pixels
        assert image.info["photoshop"][0x0404] == IPTC
        assert_exif_upright(image)
        assert image.getexif().get_ifd(0x8769)[0x9003] == DATE
    pixels = read(out / "a.jpg")
    assert np.abs(pixels[BELOW_FACE].astype(int) - upright[BELOW_FACE]).mean() < 3

    with Image.open(out / "b.png") as image:  # PNG, RGBA, was turned
        assert (image.size, image.mode) == ((WIDTH, HEIGHT), "RGBA")
        assert image.info["icc_profile"] == profile()
        assert image.info["xmp"] == xmp(1)
        raw = image.info["Raw profile type iptc"].split()
        assert bytes.fromhex("".join(raw[2:])) == IPTC and int(raw[1]) == len(IPTC)
        assert_exif_upright(image)
        assert image.getexif().get_ifd(0x8769)[0x9003] == DATE
    pixels = read(out / "b.png")
    assert np.array_equal(pixels[..., 3], inputs["alpha"])
    assert np.array_equal(pixels[BELOW_FACE, :, :3], upright[BELOW_FACE])
    assert np.any(pixels[FACE][..., :3] != upright[FACE]), "the upright face was not retouched"

    tags = tiff_tags(out / "c.tif")  # TIFF, 16-bit RGB, was turned
    assert tags[34675] == profile() and tags[700] == xmp(1) and tags[33723] == IPTC
    assert (tags[274], tags[271], tags[315]) == (1, "Test camera", "Test Studio")
    pixels = read(out / "c.tif")
    assert pixels.shape == (HEIGHT, WIDTH, 3) and pixels.dtype == np.uint16
    assert np.array_equal(pixels[BELOW_FACE], inputs["rgb16"][BELOW_FACE])

    with Image.open(out / "d.png") as image:  # PNG, 16-bit gray, was turned
        assert (image.size, image.mode) == ((WIDTH, HEIGHT), "I;16")
        assert image.info["icc_profile"] == profile(b"GRAY")
        assert_exif_upright(image)
    pixels = read(out / "d.png")
    assert pixels.shape == (HEIGHT, WIDTH) and pixels.dtype == np.uint16
    # the retouch touches a gray picture lightly all over; turned wrong it is ~80 off
    assert np.abs(pixels / 257 - inputs["gray"]).mean() < 2

    with Image.open(out / "e.jpg") as image:  # JPEG, gray
        assert (image.size, image.mode) == ((WIDTH, HEIGHT), "L")
        assert image.info["icc_profile"] == profile(b"GRAY")
        assert image.info["xmp"] == xmp(1)
        assert_exif_upright(image)

    pixels = read(out / "f.tif")  # TIFF, 8-bit gray, was turned, no metadata
    assert pixels.shape == (HEIGHT, WIDTH) and pixels.dtype == np.uint8
    assert np.abs(pixels.astype(float) - inputs["gray"]).mean() < 2
    assert tiff_tags(out / "f.tif").get(274, 1) == 1


def test_apply_carries_metadata_across_formats(shoot, tmp_path):
    folder, _ = shoot
    tif = tmp_path / "a.tif"
    assert run("apply", str(folder / "a.jpg"), str(tif)) == 0
    tags = tiff_tags(tif)  # JPEG's EXIF becomes the TIFF's tags and Exif IFD
    assert tags[34675] == profile() and tags[700] == xmp(1) and tags[33723] == IPTC
    assert (tags[274], tags[271], tags[315]) == (1, "Test camera", "Test Studio")
    assert tags[34665]["DateTimeOriginal"] == DATE
    with Image.open(tif) as image:
        assert image.size == (WIDTH, HEIGHT)
        assert image.getexif().get_ifd(0x8769)[0x9003] == DATE

    jpg = tmp_path / "c.jpg"  # 16-bit TIFF to JPEG: 8 bit, its tags as EXIF
    assert run("apply", str(folder / "c.tif"), str(jpg)) == 0
    with Image.open(jpg) as image:
        assert (image.size, image.mode) == ((WIDTH, HEIGHT), "RGB")
        assert image.info["icc_profile"] == profile()
        assert image.info["xmp"] == xmp(1)
        assert image.info["photoshop"][0x0404] == IPTC
        assert_exif_upright(image)

    again = tmp_path / "again.tif"  # a TIFF of ours read back as an input
    assert run("apply", str(tif), str(again)) == 0
    tags = tiff_tags(again)
    assert tags[34665]["DateTimeOriginal"] == DATE and tags[34675] == profile()


def gray_alpha(depth: int, height: int = 23, width: int = 37) -> np.ndarray:
    """(H, W, 2) gray+alpha pixels over the whole range of `depth`."""
    rng = np.random.default_rng(depth)
    return rng.integers(0, 2**depth, (height, width, 2), dtype=DTYPES[depth])


def gray_alpha_file(pixels: np.ndarray, kind: str, extra: str | None) -> bytes:
    """A gray+alpha file with a GRAY profile, written by tifffile, Pillow (8-bit PNG) or
    by hand (16-bit PNG, which neither Pillow nor OpenCV writes)."""
    out = io.BytesIO()
    if kind == "tiff":
        tifffile.imwrite(
            out,
            pixels,
            photometric="minisblack",
            extrasamples=(extra,),
            iccprofile=profile(b"GRAY"),
        )
    elif pixels.dtype == np.uint8:
        Image.fromarray(pixels).save(out, "PNG", icc_profile=profile(b"GRAY"))
    else:
        chunks = png.insert_before_image(
            png.encode_gray_alpha(pixels), [png.iccp(profile(b"GRAY"))]
        )
        return b"".join(bytes(chunk) for chunk in chunks)
    return out.getvalue()


@pytest.mark.parametrize("fmt", ["tiff", "png"])
@pytest.mark.parametrize("source", GRAY_ALPHA, ids=lambda case: "-".join(map(str, case)))
def test_gray_alpha_reads_as_rgba_and_is_written_back_as_gray_alpha(source, fmt):
    kind, depth, extra = source
    pixels = gray_alpha(depth)
    data = gray_alpha_file(pixels, kind, extra)
    header = read_header(data, kind, complete=True)
    decoded = decode_image(data, header, Limits())
    gray, alpha = pixels[..., 0], pixels[..., 1]
    np.testing.assert_array_equal(decoded, np.dstack([gray, gray, gray, alpha]))
    assert decoded.dtype == DTYPES[depth]
    assert header.metadata.gray and header.metadata.icc == profile(b"GRAY")

    written = b"".join(bytes(chunk) for chunk in encode_output(decoded, fmt, header.metadata))
    if fmt == "tiff":
        with tifffile.TiffFile(io.BytesIO(written)) as tif:
            page = tif.pages.first
            assert page.photometric == tifffile.PHOTOMETRIC.MINISBLACK
            assert page.extrasamples == (tifffile.EXTRASAMPLE.UNASSALPHA,)
            assert page.tags[34675].value == profile(b"GRAY")
            np.testing.assert_array_equal(page.asarray(), pixels)
    else:
        assert (written[24], written[25]) == (depth, 4)  # IHDR: bit depth, gray+alpha
        with Image.open(io.BytesIO(written)) as image:
            assert image.info["icc_profile"] == profile(b"GRAY")
        back = cv2.imdecode(np.frombuffer(written, np.uint8), cv2.IMREAD_UNCHANGED)
        np.testing.assert_array_equal(back[..., [0, 3]], pixels)
    again = read_header(written, fmt, complete=True)  # our output, read as an input
    assert again.metadata.gray and again.metadata.icc == profile(b"GRAY")
    np.testing.assert_array_equal(decode_image(written, again, Limits()), decoded)


def test_apply_keeps_a_16_bit_gray_alpha_tiff_gray_alpha_and_its_profile(tmp_path, upright):
    gray = cv2.cvtColor(upright, cv2.COLOR_RGB2GRAY).astype(np.uint16) * 257
    alpha = np.linspace(0, 65535, WIDTH * HEIGHT).astype(np.uint16).reshape(HEIGHT, WIDTH)
    source = tmp_path / "gray-alpha.tif"
    tifffile.imwrite(
        source,
        np.dstack([gray, alpha]),
        photometric="minisblack",
        extrasamples=("unassalpha",),
        iccprofile=profile(b"GRAY"),
    )
    assert run("apply", str(source), str(tmp_path / "out.tif")) == 0
    assert run("apply", str(source), str(tmp_path / "out.png")) == 0

    with tifffile.TiffFile(tmp_path / "out.tif") as tif:
        page = tif.pages.first
        assert page.photometric == tifffile.PHOTOMETRIC.MINISBLACK
        assert page.extrasamples == (tifffile.EXTRASAMPLE.UNASSALPHA,)
        assert page.tags[34675].value == profile(b"GRAY")
        tiff = page.asarray()
    written = (tmp_path / "out.png").read_bytes()
    assert (written[24], written[25]) == (16, 4)  # IHDR: 16 bit, gray+alpha
    with Image.open(tmp_path / "out.png") as image:
        assert image.info["icc_profile"] == profile(b"GRAY")
    png_pixels = cv2.imread(str(tmp_path / "out.png"), cv2.IMREAD_UNCHANGED)[..., [0, 3]]
    for pixels in (tiff, png_pixels):
        assert pixels.shape == (HEIGHT, WIDTH, 2) and pixels.dtype == np.uint16
        assert np.array_equal(pixels[..., 1], alpha)
        # the retouch touches a gray picture lightly all over; off by far more if lost
        assert np.abs(pixels[..., 0] / 257 - gray / 257).mean() < 2


@pytest.mark.parametrize(
    ("compression", "depth"),
    [("packbits", 8), ("lzma", 8), ("lzma", 16), ("zlib", 8), ("zlib", 16)],
)
def test_compressed_gray_alpha_tiff_keeps_its_alpha(compression, depth):
    pixels = gray_alpha(depth)
    out = io.BytesIO()
    if compression == "packbits":  # tifffile reads PackBits, but writes it with imagecodecs
        Image.fromarray(pixels, "LA").save(out, "TIFF", compression="packbits")
    else:
        tifffile.imwrite(
            out, pixels, photometric="minisblack", extrasamples=(2,), compression=compression
        )
    data = out.getvalue()
    decoded = decode_image(data, read_header(data, "tiff", complete=True), Limits())
    gray, alpha = pixels[..., 0], pixels[..., 1]
    np.testing.assert_array_equal(decoded, np.dstack([gray, gray, gray, alpha]))


def test_an_lzw_gray_alpha_tiff_is_refused_rather_than_read_without_its_alpha():
    out = io.BytesIO()  # tifffile writes LZW only with imagecodecs; Pillow writes it
    Image.fromarray(gray_alpha(8), "LA").save(out, "TIFF", compression="tiff_lzw")
    data = out.getvalue()
    with pytest.raises(ApiError) as refused:
        decode_image(data, read_header(data, "tiff", complete=True), Limits())
    assert refused.value.code == "invalid_image" and "alpha" in refused.value.message
