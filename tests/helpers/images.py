"""Tiny images for tests: encoded bytes, base64 text and photo files, in one place.

Flat colours by default: what most tests need is a valid image of a given size and format, made in
microseconds. Tests that need content (a face, a gradient, noise) draw it themselves."""

from __future__ import annotations

import base64
import io
from pathlib import Path


def encoded(image, fmt: str = "PNG", **options) -> bytes:
    """`image` (a PIL image) encoded as `fmt`, with Pillow's save options."""
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def image_bytes(size: tuple[int, int] = (8, 8), colour="red", fmt: str = "PNG", **options) -> bytes:
    """A flat-colour RGB image of `size`, encoded as `fmt`."""
    from PIL import Image

    return encoded(Image.new("RGB", size, colour), fmt, **options)


def png(size: tuple[int, int] = (8, 8), colour="red") -> bytes:
    return image_bytes(size, colour, "PNG")


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def save_photo(path: Path, size: tuple[int, int] = (96, 128), colour=(180, 120, 90), **options) -> Path:
    """A flat-colour photo file at `path` (its format from the suffix), parent folders made."""
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path, **options)
    return path
