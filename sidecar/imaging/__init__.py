"""Pixels in and out: decoding, canonical form. numpy/OpenCV only."""

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
