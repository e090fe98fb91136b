"""A JPEG photo sent as its own compressed data: when a photo is already a plain RGB JPEG at the
model's size and the right way up, decoding it and encoding it again costs the client ~2 ms and
the picture a second generation of JPEG loss, for nothing. What it carries besides the picture
stays home: the segments that hold EXIF (GPS position, camera serial), XMP, comments and the
like are cut out, as a re-encode would drop them.

Only the standard library: the segments before the scan are walked by their lengths.
"""

from __future__ import annotations

import struct

SOI, EOI, SOS = 0xD8, 0xD9, 0xDA
# Kept: what a decoder needs to read the picture. APP0 (JFIF) and APP14 (Adobe: says whether the
# channels are YCbCr) change how it is decoded; every other APPn and COM only describes it.
_DECODING = {0xC4, 0xDB, 0xDD, 0xCC} | {m for m in range(0xC0, 0xD0) if m not in (0xC4, 0xC8, 0xCC)}
_KEPT_APP = {0xE0, 0xEE}
_LENGTH = struct.Struct(">H")


def stripped_jpeg(data: bytes) -> bytes | None:
    """The JPEG with every descriptive segment removed, or None when the data is not a whole
    JPEG this walk understands (no SOI, a segment running past the end, no EOI at the end)."""
    if data[:2] != b"\xff\xd8" or data[-2:] != b"\xff\xd9":
        return None  # not a JPEG, or cut short (a truncated photo must be decoded to say so)
    parts = [data[:2]]
    pos, size = 2, len(data)
    while pos + 4 <= size:
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte before a marker
            pos += 1
            continue
        (length,) = _LENGTH.unpack_from(data, pos + 2)
        end = pos + 2 + length
        if length < 2 or end > size:
            return None
        if marker == SOS:
            parts.append(data[pos:])  # the scan(s) and everything after: the picture itself
            return b"".join(parts)
        if marker in _DECODING or marker in _KEPT_APP:
            parts.append(data[pos:end])
        elif not (0xE0 <= marker <= 0xEF or marker == 0xFE):
            return None  # a marker we do not know before the scan: let Pillow deal with it
        pos = end
    return None
