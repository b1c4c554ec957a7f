"""A result as an output file: flat files keep the input's format, depth and metadata,
a Photoshop document is its source with the result as one more layer (docs/batch.md).

The sidecar writes a job's output with `write_result`, straight from the result's
pixels; `write_output` takes a result as the sidecar sends it (a PNG or TIFF), for a
client that fetched it (the batch without a sidecar on this machine, the cluster's
workers). Both give the same bytes for the same pixels. How the bytes reach the path
is the caller's `write` (`cache.atomic.atomic_write`, a room above this one, or the
cluster's write-once claim).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np

from . import psd
from .files import as_written, decode_result, encode_output, output_file, output_format
from .metadata import read_file_metadata
from .tiff import encode_tiff_into

# how an output's chunks reach its path: atomic_write(path, chunks, mode=...)
Write = Callable[..., None]
# how a file written into reaches its path: atomic_fill(path, fill(file), mode=...)
Fill = Callable[..., None]

# a document's new layer is named as the panel names it in Photoshop
LAYER_NAMES = {
    "beauty": "Beauty",
    "color": "Color",
    "dodge_burn": "Dodge & Burn",
    "volume": "Volume",
}
# the suffixes an output may have, and those of documents among them
OUTPUT_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".tif", ".tiff", *psd.PSD_SUFFIXES})


def layer_name(op: str) -> str:
    return LAYER_NAMES.get(op, op or "Retouch")


def write_result(
    target: Path,
    pixels: np.ndarray,
    source: Path | None = None,
    op: str = "",
    *,
    write: Write,
    fill: Fill | None = None,
) -> None:
    """Canonical result pixels as `target`, atomically, in the target's format,
    carrying the metadata of `source` (the input file): its ICC profile, EXIF, XMP, IPTC
    and resolution, and grayscale when it was gray. A Photoshop document is `source`
    with the result as one more layer, named after `op`. `write(target, chunks, mode=)`
    puts the file's chunks at `target`, atomically; given `fill(target, into, mode=)`,
    a TIFF is written by `into(file)` straight into the file instead, its pixels never
    copied into an encoded buffer (the same bytes)."""
    if psd.is_psd(target) and source is not None:
        chunks = [psd.with_result_layer(source, pixels, layer_name(op))]
    else:
        meta = read_file_metadata(source) if source is not None else None
        fmt = output_format(target.name)
        if fmt == "tiff" and fill is not None:
            written, out = as_written(pixels, meta)
            fill(target, partial(encode_tiff_into, pixels=written, meta=out), mode=0o666)
            return
        chunks = encode_output(pixels, fmt, meta)
    # the umask decides, as for any new file
    write(target, chunks, mode=0o666)


def write_output(
    target: Path,
    result,
    source: Path | None = None,
    op: str = "",
    *,
    write: Write,
) -> None:
    """`result` (the sidecar's PNG or TIFF) as `target`: as `write_result` does with its
    pixels (a PNG result for a PNG output gets the metadata without encoding again)."""
    if psd.is_psd(target) and source is not None:
        write_result(target, decode_result(result), source, op, write=write)
        return
    meta = read_file_metadata(source) if source is not None else None
    chunks = output_file(result, output_format(target.name), meta)
    write(target, chunks, mode=0o666)
