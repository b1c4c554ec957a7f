"""Photoshop documents through `apply` and `batch`: the composite is retouched and comes
back as one new layer on top of the untouched original layers, with the document's
depth, mode and resources (profile, EXIF, XMP, IPTC); documents that could not be
written back are refused before any work. And a mixed shoot (JPEGs in all eight
orientations, a profiled 16-bit TIFF, a gray PNG, documents) comes out whole."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import tifffile
from helpers import free_port
from PIL import Image, ImageCms
from psd_tools import PSDImage
from psd_tools.api.layers import PixelLayer
from psd_tools.constants import Resource
from psd_tools.psd.image_resources import ImageResource, VersionInfo

from sidecar.cli import main
from sidecar.imaging import psd
from sidecar.imaging.exif import apply_orientation

SIDE = 160
FACE = (slice(38, 92), slice(42, 88))  # rows, columns of the face's skin
BELOW_FACE = slice(110, None)  # suit and flag: no skin, so the exact bits stay
XMP = (
    b'<?xpacket begin="\xef\xbb\xbf" id="W5M0MpCehiHzreSzNTczkc9d"?><x:xmpmeta '
    b'xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
    b'<rdf:Description xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:creator><rdf:Seq>'
    b"<rdf:li>Test Studio</rdf:li></rdf:Seq></dc:creator></rdf:Description></rdf:RDF>"
    b'</x:xmpmeta><?xpacket end="w"?>'
)
IPTC = b"\x1c\x02\x00\x00\x02\x00\x04\x1c\x02\x05\x00\x0bPortrait 12"


def profile(space: bytes = b"RGB ") -> bytes:
    data = bytearray(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())
    data[80:84], data[16:20] = b"TEST", space
    return bytes(data)


ICC, GRAY_ICC = profile(), profile(b"GRAY")


@pytest.fixture(scope="module")
def portrait() -> np.ndarray:
    from skimage import data

    face = data.astronaut()[0:320, 96:416]
    return cv2.resize(face, (SIDE, SIDE), interpolation=cv2.INTER_AREA)


def document(
    path, base: np.ndarray, *, gray=False, icc=ICC, large=False, transparent=False
) -> None:
    """A layered document: a full-size base layer and a small patch over the flag's
    corner (not the face), with an ICC profile, XMP and IPTC."""
    mode = ("LA" if gray else "RGBA") if transparent else ("L" if gray else "RGB")
    depth = 16 if base.dtype == np.uint16 else 8
    doc = PSDImage.new(mode, (base.shape[1], base.shape[0]), depth=depth)
    if large:
        doc._record.header.version = 2  # .psb: psd-tools makes only .psd, but writes both
    # no Background layer: Photoshop then flags the merged image's alpha as transparency
    doc._merged_alpha = transparent
    PixelLayer.fromarray(base, doc, name="Photo")
    patch = np.zeros((12, 16, (1 if gray else 3) + 1), base.dtype)
    patch[..., -1] = np.iinfo(base.dtype).max
    PixelLayer.fromarray(patch, doc, name="Patch", top=SIDE - 14, left=2)
    for key, data in (
        (Resource.ICC_PROFILE, icc),
        (Resource.XMP_METADATA, XMP),
        (Resource.IPTC_NAA, IPTC),
    ):
        doc.image_resources[key] = ImageResource(key=key, data=data)
    doc.save(path)


def channel_bytes(doc: PSDImage) -> list[list[bytes]]:
    return [[channel.data for channel in layer._channels] for layer in doc]


def run(*argv: str) -> int:
    return main([*argv, "--op", "beauty", "--port", str(free_port())])


def as_integers(values: np.ndarray, dtype) -> np.ndarray:
    return np.rint(values * np.iinfo(dtype).max).astype(dtype)


@pytest.mark.parametrize(
    ("depth", "gray", "large"), [(8, False, False), (16, False, True), (16, True, False)]
)
def test_apply_adds_one_layer_and_keeps_every_original_one(portrait, tmp_path, depth, gray, large):
    base = portrait.astype(np.uint16) * 257 if depth == 16 else portrait
    if gray:
        base = cv2.cvtColor(base, cv2.COLOR_RGB2GRAY)[:, :, None]
    suffix = ".psb" if large else ".psd"
    source, target = tmp_path / f"in{suffix}", tmp_path / f"out{suffix}"
    document(source, base, gray=gray, icc=GRAY_ICC if gray else ICC, large=large)
    original = PSDImage.open(source)

    assert run("apply", str(source), str(target)) == 0

    result = PSDImage.open(target)
    assert [layer.name for layer in result] == ["Photo", "Patch", "Beauty"]
    assert channel_bytes(result)[:2] == channel_bytes(original)  # untouched, bit for bit
    assert (result.depth, result.color_mode, result.version) == (
        original.depth,
        original.color_mode,
        2 if large else 1,
    )
    assert (result.width, result.height) == (SIDE, SIDE)
    assert result.image_resources.get_data(Resource.ICC_PROFILE) == (GRAY_ICC if gray else ICC)
    assert result.image_resources.get_data(Resource.XMP_METADATA) == XMP
    assert result.image_resources.get_data(Resource.IPTC_NAA) == IPTC

    layer = result[2]
    assert layer.bbox == (0, 0, SIDE, SIDE) and layer.opacity == 255 and layer.visible
    pixels = as_integers(layer.numpy("color"), base.dtype)
    assert pixels.shape == base.shape
    composite = original.numpy("color")  # what was retouched: the base with the patch
    expected = as_integers(composite, base.dtype)
    changed = np.any(pixels != expected, axis=2)
    assert changed[FACE].mean() > 0.3, "the face was not retouched"
    if gray:  # a gray picture is touched lightly all over (its skin colour is a guess)
        off = np.abs(pixels[BELOW_FACE].astype(int) - expected[BELOW_FACE]).mean()
        assert off < 0.01 * np.iinfo(base.dtype).max
    else:
        assert not changed[BELOW_FACE].any(), "pixels outside the skin changed"
    # the merged image is the new layer (opaque, on top), so viewers show the result
    assert np.array_equal(as_integers(result.numpy("color"), base.dtype), pixels)


def test_a_transparent_document_keeps_its_transparency(portrait, tmp_path):
    alpha = np.full((SIDE, SIDE, 1), 255, np.uint8)
    alpha[:, :20] = 0  # a transparent strip on the left
    source, target = tmp_path / "in.psd", tmp_path / "out.psd"
    document(source, np.dstack([portrait, alpha]), transparent=True)
    assert run("apply", str(source), str(target)) == 0
    layer = PSDImage.open(target)[-1]
    assert layer.name == "Beauty"
    expected = alpha.copy()
    expected[SIDE - 14 : SIDE - 2, 2:18] = 255  # the opaque patch over the strip
    assert np.array_equal(as_integers(layer.numpy("shape"), np.uint8), expected)
    assert expected[:, :20].mean() < 255 and expected.min() == 0


@pytest.mark.parametrize(
    ("make", "code"),
    [
        (lambda path: PSDImage.new("CMYK", (32, 24)).save(path), "unsupported_psd"),
        (lambda path: PSDImage.new("RGB", (32, 24), depth=32).save(path), "unsupported_psd"),
        (lambda path: path.write_bytes(b"8BPS\x00\x01 not a document"), "unreadable_psd"),
    ],
)
def test_documents_that_cannot_be_written_back_fail_before_any_work(
    portrait, tmp_path, capsys, make, code
):
    folder, out = tmp_path / "shoot", tmp_path / "out"
    folder.mkdir()
    make(folder / "bad.psd")
    document(folder / "good.psd", portrait)
    assert run("batch", str(folder), str(out)) == 1
    printed = capsys.readouterr().out
    assert code in printed and "1 done" in printed and "1 failed" in printed
    assert sorted(path.name for path in out.iterdir()) == ["good.psd"]

    assert run("apply", str(folder / "bad.psd"), str(tmp_path / "one.psd")) == 2
    assert not (tmp_path / "one.psd").exists()


def test_a_document_saved_without_its_composite_says_how_to_save_it(portrait, tmp_path, capsys):
    source = tmp_path / "in.psd"
    document(source, portrait)
    doc = PSDImage.open(source)
    info = VersionInfo(has_composite=False, writer="Adobe Photoshop", reader="Adobe Photoshop")
    doc.image_resources[Resource.VERSION_INFO] = ImageResource(key=Resource.VERSION_INFO, data=info)
    doc.save(source)
    with pytest.raises(psd.PsdError) as refused:
        psd.check_document(source)
    assert refused.value.code == "psd_without_composite"
    assert run("apply", str(source), str(tmp_path / "out.psd")) == 2
    assert "Maximize PSD and PSB File Compatibility" in capsys.readouterr().err


def test_a_document_and_a_flat_file_do_not_mix(portrait, tmp_path, capsys):
    source = tmp_path / "in.psd"
    document(source, portrait)
    assert run("apply", str(source), str(tmp_path / "out.tif")) == 2
    assert "both Photoshop documents" in capsys.readouterr().err


# -- the mixed shoot --------------------------------------------------------------------

INVERSE = {1: 1, 2: 2, 3: 3, 4: 4, 5: 5, 6: 8, 7: 7, 8: 6}


def exif(orientation: int) -> bytes:
    tags = Image.Exif()
    tags[0x0112] = orientation
    tags[0x010F] = "Test camera"
    return tags.tobytes()


def test_a_mixed_shoot_comes_back_with_its_profiles_metadata_modes_and_layers(
    portrait, tmp_path, capsys
):
    folder, out = tmp_path / "shoot", tmp_path / "out"
    folder.mkdir()
    for orientation in range(1, 9):  # as a camera stores them: turned, tagged to turn back
        stored = np.ascontiguousarray(apply_orientation(portrait, INVERSE[orientation]))
        Image.fromarray(stored).save(
            folder / f"o{orientation}.jpg", quality=95, icc_profile=ICC, exif=exif(orientation)
        )
    rgb16 = portrait.astype(np.uint16) * 257 + 3
    tifffile.imwrite(folder / "t16.tif", rgb16, photometric="rgb", iccprofile=ICC)
    gray = cv2.cvtColor(portrait, cv2.COLOR_RGB2GRAY)
    Image.fromarray(gray).save(folder / "gray.png", icc_profile=GRAY_ICC)
    document(folder / "doc.psd", rgb16)

    assert run("batch", str(folder), str(out)) == 0
    printed = capsys.readouterr().out
    # o4 (a flip) may decode to o1's very pixels: then the result cache answers it
    assert "11 images: " in printed and ", 0 skipped, 0 failed" in printed

    for orientation in range(1, 9):
        with Image.open(out / f"o{orientation}.jpg") as image:
            assert (image.size, image.mode) == ((SIDE, SIDE), "RGB")
            assert image.info["icc_profile"] == ICC
            assert image.getexif().get(0x0112) == 1 and image.getexif()[0x010F] == "Test camera"
            pixels = np.asarray(image)
        # upright: the flag and suit below the face match the upright portrait
        assert np.abs(pixels[BELOW_FACE].astype(int) - portrait[BELOW_FACE]).mean() < 4

    with tifffile.TiffFile(out / "t16.tif") as tif:
        page = tif.pages.first
        assert (page.shape, page.dtype) == ((SIDE, SIDE, 3), np.uint16)
        assert page.tags[34675].value == ICC
        assert np.array_equal(page.asarray()[BELOW_FACE], rgb16[BELOW_FACE])

    with Image.open(out / "gray.png") as image:
        assert (image.mode, image.info["icc_profile"]) == ("L", GRAY_ICC)

    doc = PSDImage.open(out / "doc.psd")
    assert [layer.name for layer in doc] == ["Photo", "Patch", "Beauty"]
    assert doc.depth == 16 and doc.image_resources.get_data(Resource.ICC_PROFILE) == ICC
    assert channel_bytes(doc)[:2] == channel_bytes(PSDImage.open(folder / "doc.psd"))


def test_the_composite_is_read_at_the_documents_depth(portrait, tmp_path):
    base = portrait.astype(np.uint16) * 257 + 5
    document(tmp_path / "in.psd", base)
    pixels, info = psd.read_composite(tmp_path / "in.psd")
    assert (info.depth, info.gray, pixels.dtype, pixels.shape) == (16, False, np.uint16, base.shape)
    expected = base.copy()
    expected[SIDE - 14 : SIDE - 2, 2:18] = 0  # the patch
    assert np.array_equal(pixels, expected)
