"""What is uploaded for an input file, and how a fetched result becomes its output file
(`imaging.outputs`, which the sidecar also writes a job's output with: flat files keep
the input's format, depth and metadata; a Photoshop document comes back as the same
document with the result as one more layer, docs/batch.md)."""

from __future__ import annotations

from pathlib import Path

from ..cache.atomic import atomic_write
from ..imaging import outputs, psd
from ..imaging.outputs import LAYER_NAMES, Write
from ..imaging.tiff import encode_tiff
from .plan import IMAGE_TYPES

__all__ = ["LAYER_NAMES", "Write", "result_format", "upload_body", "write_output"]


def result_format(target: Path) -> str:
    """What to ask the sidecar for: JPEG outputs are re-encoded from a PNG."""
    return "tiff" if target.suffix.lower() in (".tif", ".tiff", ".psd", ".psb") else "png"


def upload_body(source: Path) -> tuple[bytes | memoryview, str]:
    """What is uploaded for `source`: the file itself, or a document's composite (as an
    uncompressed TIFF at its depth)."""
    if psd.is_psd(source):
        pixels, _ = psd.read_composite(source)
        return encode_tiff(pixels, None), "image/tiff"
    return source.read_bytes(), IMAGE_TYPES[source.suffix.lower()]


def write_output(
    target: Path,
    result: bytes,
    source: Path | None = None,
    op: str = "",
    *,
    write: Write | None = None,
) -> None:
    """`result` (the sidecar's PNG or TIFF) as `target`, atomically, in the target's
    format, carrying the metadata of `source` (the input file): its ICC profile, EXIF,
    XMP, IPTC and resolution, and grayscale when it was gray. A Photoshop document is
    `source` with the result as one more layer, named after `op`. `write` puts the
    file's chunks at `target` (`atomic_write` unless given: the cluster's workers pass
    one that writes each output once, `sidecar.cluster.claims`)."""
    outputs.write_output(target, result, source, op, write=write or atomic_write)
