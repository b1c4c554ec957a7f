"""Pixels in and out: decoding (turned upright), canonical form, conversions to 8-bit
RGB (`convert`), blends (`blend`), and the files `apply` and `batch` write with their
input's metadata. No web framework here."""

from .decode import DecodedHeader, decode_image, read_header, sniff_format
from .pixels import Limits, canonical_from_raw, check_dimensions, to_canonical

__all__ = [
    "DecodedHeader",
    "Limits",
    "canonical_from_raw",
    "check_dimensions",
    "decode_image",
    "read_header",
    "sniff_format",
    "to_canonical",
]
