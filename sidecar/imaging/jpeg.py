"""JPEG segments Pillow does not write: IPTC, in a Photoshop APP13 image resource."""

from __future__ import annotations

import struct

PHOTOSHOP = b"Photoshop 3.0\x00"
IPTC_RESOURCE = 0x0404
MAX_SEGMENT = 65533  # payload bytes of one JPEG marker segment


def resource(blocks: bytes, code: int) -> bytes | None:
    """One resource of a Photoshop image resource block (8BIM records), or None."""
    at = 0
    while blocks[at : at + 4] == b"8BIM" and at + 8 <= len(blocks):
        found = int.from_bytes(blocks[at + 4 : at + 6], "big")
        name_len = blocks[at + 6]
        at += 6 + 1 + name_len
        at += at & 1  # the Pascal name is padded to an even length
        if at + 4 > len(blocks):
            return None
        (size,) = struct.unpack_from(">L", blocks, at)
        at += 4
        if found == code:
            data = blocks[at : at + size]
            return data if len(data) == size else None
        at += size + (size & 1)
    return None


def app13(iptc: bytes) -> bytes | None:
    """An APP13 segment holding `iptc` as Photoshop's IPTC-NAA resource; None when it
    does not fit in one segment."""
    block = b"8BIM" + struct.pack(">H", IPTC_RESOURCE) + b"\x00\x00"
    block += struct.pack(">L", len(iptc)) + iptc + (b"\x00" if len(iptc) & 1 else b"")
    payload = PHOTOSHOP + block
    if len(payload) > MAX_SEGMENT:
        return None
    return b"\xff\xed" + struct.pack(">H", len(payload) + 2) + payload


def insert_after_app_segments(jpeg: bytes, segments: list[bytes]) -> bytes:
    """The JPEG with `segments` after its APPn/COM segments, before the image tables."""
    if not segments:
        return jpeg
    if jpeg[:2] != b"\xff\xd8":
        raise ValueError("not a JPEG")
    at = 2
    while at + 4 <= len(jpeg) and jpeg[at] == 0xFF:
        marker = jpeg[at + 1]
        if not (0xE0 <= marker <= 0xEF or marker == 0xFE):
            break
        at += 2 + int.from_bytes(jpeg[at + 2 : at + 4], "big")
    return jpeg[:at] + b"".join(segments) + jpeg[at:]
