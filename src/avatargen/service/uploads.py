"""Uploads: bodies read with a byte cap and a time limit, images sniffed by their bytes and
sized by their header before anything decodes them.

A request body is read chunk by chunk: past `max_bytes` it is refused (413) without reading
the rest; a body that trickles in (slowloris) is cut at `timeout` seconds (408). Both happen on
the connection's own task, so other users' requests never wait for it.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import time
from dataclasses import dataclass
from pathlib import Path

KINDS = {  # magic bytes -> (content type, file extension)
    b"\xff\xd8\xff": ("image/jpeg", "jpg"),
    b"\x89PNG\r\n\x1a\n": ("image/png", "png"),
}


class ApiError(Exception):
    """An answer with a stable JSON error code."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


async def read_body(receive, max_bytes: int, timeout: float, declared: int | None) -> bytes:
    """The whole body, or ApiError 413 / 408."""
    if declared is not None and declared > max_bytes:
        raise ApiError(
            413, "too_large", f"the request body is {declared} bytes; at most {max_bytes} are accepted"
        )
    chunks: list[bytes] = []
    size = 0
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise ApiError(408, "request_timeout", f"the request body did not arrive within {timeout:g} s")
        try:
            message = await asyncio.wait_for(receive(), timeout=left)
        except TimeoutError:
            raise ApiError(
                408, "request_timeout", f"the request body did not arrive within {timeout:g} s"
            ) from None
        if message["type"] == "http.disconnect":
            raise ApiError(400, "client_disconnected", "the client went away before sending the whole body")
        body = message.get("body", b"")
        size += len(body)
        if size > max_bytes:
            raise ApiError(413, "too_large", f"the request body is larger than {max_bytes} bytes")
        chunks.append(body)
        if not message.get("more_body", False):
            return b"".join(chunks)


@dataclass(frozen=True)
class CheckedImage:
    data: bytes
    content_type: str
    extension: str
    width: int
    height: int
    sha256: str


def check_image(data: bytes, field: str, max_pixels: int) -> CheckedImage:
    """A JPEG or PNG by its bytes (whatever its Content-Type or name says), whose header says
    at most `max_pixels`; only the header is read here, nothing is decoded."""
    if not data:
        raise ApiError(422, "invalid_image", f"'{field}' is empty")
    kind = next((v for magic, v in KINDS.items() if data.startswith(magic)), None)
    if kind is None:
        raise ApiError(422, "invalid_image", f"'{field}' is not a JPEG or PNG image (checked by its content)")
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as img:  # parses the header only
            width, height = img.size
    except Image.DecompressionBombError:  # Pillow's own cap (far above ours) met first
        raise ApiError(413, "too_large", f"'{field}' has more pixels than {max_pixels}") from None
    except Exception:
        raise ApiError(422, "invalid_image", f"'{field}' is not a readable {kind[1].upper()} image") from None
    if width * height > max_pixels:
        raise ApiError(
            413,
            "too_large",
            f"'{field}' is {width}x{height} pixels; at most {max_pixels} pixels are accepted",
        )
    if width < 16 or height < 16:
        raise ApiError(
            422, "invalid_image", f"'{field}' is {width}x{height}: at least 16x16 pixels are needed"
        )
    return CheckedImage(data, kind[0], kind[1], width, height, hashlib.sha256(data).hexdigest())


def store(folder: Path, name: str, data: bytes) -> Path:
    """Write atomically (a temporary name, then renamed): a crash never leaves half a photo."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    tmp = folder / f".{name}.{os.getpid()}.tmp"
    with open(tmp, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)
    return path
