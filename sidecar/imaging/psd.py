"""Photoshop documents (.psd, .psb) as `apply` and `batch` inputs and outputs.

The retouch runs on the document's composite (the merged image Photoshop saves beside
the layers), and its result goes back as ONE new pixel layer on top of the untouched
original layers: the "one Apply = one new layer" rule for files outside Photoshop.

psd-tools reads and writes the file. Its low-level reader (`psd_tools.psd`) checks a
document from its header and image resources without reading the layers, so a file we
cannot write is refused before any work; its high-level API adds the layer at the
document's depth (`PixelLayer.fromarray`) and keeps every other record, the ICC
profile, EXIF, XMP and IPTC resources, saved channels and guides as they were. The
merged image is set to the result (the new layer is opaque and on top, so the result
is the composite), which keeps viewers that show only the merged image right without
compositing the whole layer stack again.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .files import to_gray
from .pixels import Limits, check_dimensions

# psd-tools is imported where a document is read or written (0.1 to 0.2 s to import,
# which a shoot without documents does not pay)

PSD_SUFFIXES = frozenset({".psd", ".psb"})
_MODES = {"RGB": False, "GRAYSCALE": True}  # psd-tools' ColorMode name -> gray
_CONVERT = {
    "CMYK": "CMYK",
    "LAB": "Lab",
    "INDEXED": "Indexed",
    "BITMAP": "Bitmap",
    "DUOTONE": "Duotone",
    "MULTICHANNEL": "Multichannel",
}


class PsdError(ValueError):
    """A document that cannot be retouched, with a stable code for the batch report."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Document:
    width: int
    height: int
    depth: int
    gray: bool
    large: bool  # .psb (version 2)


def is_psd(path: Path) -> bool:
    return path.suffix.lower() in PSD_SUFFIXES


def check_document(path: Path, limits: Limits | None = None) -> Document:
    """What the document is, from its header and image resources only (no layers or
    pixels are read). Raises PsdError for a document whose result could not be
    written back at its own depth and mode, or whose composite is not saved."""
    from psd_tools.constants import ColorMode, Resource
    from psd_tools.psd.color_mode_data import ColorModeData
    from psd_tools.psd.header import FileHeader
    from psd_tools.psd.image_resources import ImageResources

    with open(path, "rb") as file:  # an OSError here is the file's, not its content's
        try:
            header = FileHeader.read(file)
            ColorModeData.read(file)
            resources = ImageResources.read(file)
        except Exception as exc:  # psd-tools' errors for a damaged file are of any kind
            raise PsdError("unreadable_psd", f"not a readable Photoshop document: {exc}") from exc
    mode = ColorMode(header.color_mode).name if header.color_mode in ColorMode else None
    if mode not in _MODES:
        name = _CONVERT.get(mode or "", str(header.color_mode))
        raise PsdError(
            "unsupported_psd",
            f"a {name} document: retouching needs RGB or Grayscale "
            "(convert a copy with Image → Mode → RGB Color)",
        )
    if header.depth not in (8, 16):
        raise PsdError(
            "unsupported_psd",
            f"a {header.depth}-bit document: retouching needs 8 or 16 bits per channel "
            "(convert a copy with Image → Mode → 16 Bits/Channel)",
        )
    version_info = resources.get_data(Resource.VERSION_INFO)
    if version_info is not None and not version_info.has_composite:
        raise PsdError(
            "psd_without_composite",
            "the document was saved without its composite image: save it again "
            "with Maximize PSD and PSB File Compatibility on",
        )
    if limits is not None:
        check_dimensions(header.width, header.height, limits)
    return Document(header.width, header.height, header.depth, _MODES[mode], header.version == 2)


def read_composite(path: Path) -> tuple[np.ndarray, Document]:
    """The document's composite as canonical pixels: upright RGB, or RGBA where the
    document is transparent, at its own depth (gray is widened to RGB, as every gray
    input is)."""
    document = check_document(path)
    from psd_tools import PSDImage
    from psd_tools.api.utils import has_transparency

    psd = PSDImage.open(path, max_alloc_bytes="unlimited")  # our limits, not psd-tools'
    color = psd.numpy("color")
    if document.gray:
        color = np.repeat(color[:, :, :1], 3, axis=2)
    if has_transparency(psd):
        color = np.dstack([color, psd.numpy("shape")])
    return _to_integers(color, document.depth), document


def with_result_layer(source: Path, pixels: np.ndarray, name: str) -> bytes:
    """`source` with `pixels` (the result, canonical RGB/RGBA) added as one new pixel
    layer named `name` on top of its layers, and set as its merged image."""
    document = check_document(source)
    from psd_tools import PSDImage
    from psd_tools.api.layers import PixelLayer
    from psd_tools.api.numpy_io import encode_image_data

    psd = PSDImage.open(source, max_alloc_bytes="unlimited")
    height, width = pixels.shape[:2]
    if (width, height) != (document.width, document.height):
        raise ValueError(
            f"the result is {width}×{height}, the document {document.width}×{document.height}"
        )
    if document.gray:
        pixels = to_gray(pixels)
    values = _to_unit(pixels)
    colors = 1 if document.gray else 3
    color, alpha = values[:, :, :colors], values[:, :, colors:]
    layer = values if alpha.shape[2] else color
    if not alpha.shape[2]:
        alpha = np.ones((height, width, 1), np.float32)
    PixelLayer.fromarray(layer, psd, name=name)
    record = psd._record  # the one psd-tools keeps its records in; set the merged image
    record.image_data.set_data(encode_image_data(psd, color, alpha), record.header)
    out = io.BytesIO()
    record.write(out)
    return out.getvalue()


def _to_integers(values: np.ndarray, depth: int) -> np.ndarray:
    """psd-tools' float32 in [0, 1] back to the stored integers (exact: rint inverts
    the division)."""
    scale, dtype = (255.0, np.uint8) if depth == 8 else (65535.0, np.uint16)
    out = np.empty(values.shape, dtype)
    np.rint(values * scale, out=values)
    np.copyto(out, values, casting="unsafe")
    return out


def _to_unit(pixels: np.ndarray) -> np.ndarray:
    scale = 255.0 if pixels.dtype == np.uint8 else 65535.0
    return pixels.astype(np.float32) / np.float32(scale)
