"""Photos prepared for sending, shared by the workers of a batch: each photo is decoded once
(however many jobs use it: `--num`, several poses, a fallback at another size), and each image
made from it (the fitted init image, a per-photo pose) is made once per size.

Memory stays bounded: only the most recently used photos are kept (jobs of one photo are next
to each other in a batch, so a few more than the number of workers is enough).
"""

from __future__ import annotations

import io
import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

# How the photo travels when it guides the look (img2img's init image), per architecture.
# SD 1.5 and SDXL (every OpenPose ControlNet in the catalog) put it through the VAE, whose 8x
# smaller latents cannot keep JPEG q95's artefacts, then noise it by `strength`: JPEG, ~6x
# smaller and ~100x faster to encode than PNG. SD 3.5's ControlNets (Canny, Depth, Blur) read
# the picture itself as the control image, where JPEG's block edges would show as edges: PNG.
# The router's editing models (Qwen-Image-Edit, FLUX Kontext) keep the input's pixels wherever
# they do not edit, artefacts included: PNG. Pose skeletons are always PNG (thin lines, flat colours).
LOSSLESS_ARCHITECTURES = frozenset({"sd35", "qwen-image", "flux"})
JPEG_QUALITY = 95
ORIENTATION_TAG = 0x0112


def needs_lossless(architecture: str) -> bool:
    return architecture in LOSSLESS_ARCHITECTURES


class _Entry:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.photo: Any = None
        self.error: BaseException | None = None
        self.made: dict[tuple, bytes] = {}
        self.as_is: set[tuple] = set()  # made entries that are the file's own JPEG data


class PhotoCache:
    def __init__(self, keep: int = 8, min_side: int = 1024, load: Callable[..., Any] | None = None) -> None:
        """`keep`: photos held at once; `min_side`: the largest side any model may ask for (a big
        JPEG is decoded at a reduced scale that still covers it)."""
        self.keep = max(1, keep)
        self.min_side = min_side
        self._load = load
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self.decoded = 0  # photos decoded (tests, benchmarks)
        self.sent_whole = 0  # photos sent as their own JPEG data (tests, benchmarks)

    def _entry(self, key: str) -> _Entry:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                entry = self._entries[key] = _Entry()
                while len(self._entries) > self.keep:
                    self._entries.popitem(last=False)  # a worker still using it keeps its reference
            else:
                self._entries.move_to_end(key)
            return entry

    def sent_as_is(self, key: str, width: int, height: int) -> bool:
        """Whether this photo's init image at this size is its own JPEG data (see init_image):
        its structure was checked, its pixels were not decoded."""
        entry = self._entry(key)
        with entry.lock:
            return ("init", width, height, False) in entry.as_is

    def photo(self, path: Path, key: str):
        """The decoded photo (RGB, upright), decoded by the first worker that asks; the others
        wait for it. A photo that cannot be read raises the same InputError for each job."""
        entry = self._entry(key)
        with entry.lock:
            return self._decoded(entry, path)

    def _decoded(self, entry: _Entry, path: Path):
        if entry.photo is None and entry.error is None:
            from avatargen import images

            with self._lock:
                self.decoded += 1
            try:
                entry.photo = (self._load or images.load_photo)(path, min_side=self.min_side)
                entry.photo.filename = str(path)  # so `--pose auto` errors can name the file
            except Exception as exc:
                entry.error = exc
        if entry.error is not None:
            raise entry.error
        return entry.photo

    def made(self, path: Path, key: str, what: tuple, make: Callable[[Any], bytes]) -> bytes:
        """An image made from the photo (`what` names it, sizes included), made once: the
        workers of one photo wait for each other rather than make it twice."""
        entry = self._entry(key)
        with entry.lock:
            cached = entry.made.get(what)
            if cached is None:
                cached = entry.made[what] = make(self._decoded(entry, path))
            return cached

    def init_image(self, path: Path, key: str, width: int, height: int, lossless: bool) -> bytes:
        """The photo fitted to width x height, as PNG when `lossless`, else JPEG: the photo's own
        JPEG data (metadata cut out) when it is one already at that size and upright."""
        from avatargen.images import fit_to, png_bytes

        if not lossless:
            entry = self._entry(key)
            with entry.lock:
                what = ("init", width, height, False)
                if what not in entry.made and entry.photo is None and entry.error is None:
                    same = sendable_as_is(path, width, height)
                    if same is not None:
                        entry.made[what] = same
                        entry.as_is.add(what)
                        with self._lock:
                            self.sent_whole += 1

        def make(photo) -> bytes:
            fitted = fit_to(photo, width, height, fast=not lossless)
            if lossless:
                return png_bytes(fitted)
            buffer = io.BytesIO()
            fitted.save(buffer, format="JPEG", quality=JPEG_QUALITY)
            return buffer.getvalue()

        return self.made(path, key, ("init", width, height, lossless), make)


def sendable_as_is(path: Path, width: int, height: int) -> bytes | None:
    """The photo's JPEG data without its metadata, when it is a baseline-or-progressive RGB
    JPEG of exactly width x height with no EXIF rotation and its file is whole (ends with EOI);
    else None (it is decoded and fitted instead). Reads the header only."""
    from PIL import Image

    from avatargen.jpegsend import stripped_jpeg

    try:
        with Image.open(path) as img:
            if img.format != "JPEG" or img.mode != "RGB" or img.size != (width, height):
                return None
            if img.getexif().get(ORIENTATION_TAG, 1) != 1:
                return None
        data = Path(path).read_bytes()
    except Exception:  # noqa: BLE001 - any doubt: the decoding path says what is wrong
        return None
    return stripped_jpeg(data)
