"""The face that feeds the identity adapter: found offline, cropped square with a margin.

MediaPipe's face detection (the `pose` extra) ships both of its models inside the wheel
(`modules/face_detection/*.tflite`), so nothing is downloaded. The full-range model (faces up to
~5 m, fine for full-body photos) runs first; the short-range one (selfies) only when it finds
nothing. Of several faces the largest is kept. The crop, not the whole photo, is what travels to
the model: a PNG of CROP_SIZE pixels a side, the input size of IP-Adapter's CLIP image encoder.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from avatargen.errors import InputError, MissingExtra

if TYPE_CHECKING:
    from PIL import Image

CROP_SIZE = 224  # CLIP ViT-H/14's input size: the encoder would resize to it anyway
# The square's side is this many times the detector's box (which hugs eyes to chin): the
# forehead, hair and jaw line carry identity too, as in IP-Adapter's own face examples.
MARGIN = 1.8
MIN_CONFIDENCE = 0.5
# Bump when the crop changes (size, margin, detector): it is part of the job key, so a new crop
# makes new images instead of "already done".
CROP_VERSION = f"mediapipe-face/{CROP_SIZE}/{MARGIN}"

_lock = threading.Lock()  # MediaPipe graphs are not safe to share across threads
_detectors: dict[int, Any] = {}


@dataclass(frozen=True)
class FaceCrop:
    source: str  # the file it came from, for messages only (never written to metadata)
    png: bytes  # the square crop, CROP_SIZE a side
    box: tuple[int, int, int, int]  # left, top, right, bottom of the crop in the upright photo

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.png).hexdigest()


def require_detector() -> Any:
    """The mediapipe module, or MissingExtra naming the install and the way to turn identity off."""
    from avatargen.poses.extract import require_mediapipe

    try:
        mp = require_mediapipe()
        mp.solutions.face_detection  # noqa: B018 - in the legacy solutions up to 0.10.21
    except (MissingExtra, AttributeError):
        error = MissingExtra("pose", "identity (finding the face in each photo)")
        error.hint = f"{error.hint}, or turn identity off with --identity-scale 0"
        raise error from None
    return mp


def _detector(model_selection: int):
    if model_selection not in _detectors:
        mp = require_detector()
        _detectors[model_selection] = mp.solutions.face_detection.FaceDetection(
            model_selection=model_selection, min_detection_confidence=MIN_CONFIDENCE
        )
    return _detectors[model_selection]


def detect_faces(photo: Image.Image) -> list[tuple[float, float, float, float]]:
    """Face boxes (left, top, width, height) in pixels of `photo`, largest first."""
    import numpy as np

    from avatargen.poses.extract import _quiet_native_stderr

    rgb = np.ascontiguousarray(np.asarray(photo.convert("RGB")))
    width, height = photo.size
    boxes: list[tuple[float, float, float, float]] = []
    with _lock, _quiet_native_stderr():
        for model_selection in (1, 0):  # full range first, then close-up selfies
            result = _detector(model_selection).process(rgb)
            for detection in result.detections or []:
                box = detection.location_data.relative_bounding_box
                boxes.append((box.xmin * width, box.ymin * height, box.width * width, box.height * height))
            if boxes:
                break
    return sorted(boxes, key=lambda b: b[2] * b[3], reverse=True)


def square_around(
    box: tuple[float, float, float, float], width: int, height: int, margin: float = MARGIN
) -> tuple[int, int, int, int]:
    """A square of `margin` times the box's longer side around its centre, moved (not cut)
    to stay inside the photo; never larger than the photo's shorter side."""
    left, top, w, h = box
    side = min(max(w, h) * margin, width, height)
    cx, cy = left + w / 2, top + h / 2
    x0 = min(max(cx - side / 2, 0), width - side)
    y0 = min(max(cy - side / 2, 0), height - side)
    x0, y0, s = round(x0), round(y0), max(1, round(side))
    return x0, y0, min(x0 + s, width), min(y0 + s, height)


def crop_face(photo: Image.Image, source: str) -> FaceCrop:
    """The largest face of an upright RGB photo, cropped square; InputError when there is none."""
    from PIL import Image

    from avatargen.images import png_bytes

    boxes = detect_faces(photo)
    if not boxes:
        raise InputError(
            f"no face found in {source}",
            "use a photo where the face is visible, or turn identity off with --identity-scale 0",
        )
    area = square_around(boxes[0], *photo.size)
    crop = photo.crop(area).resize((CROP_SIZE, CROP_SIZE), Image.Resampling.LANCZOS)
    return FaceCrop(source, png_bytes(crop), area)


def face_crop(path: Path | str) -> FaceCrop:
    """The face crop of a photo file, read like every input (EXIF upright, RGB, size-checked)."""
    from avatargen.images import load_photo

    require_detector()  # a missing extra is said before the photo is even read
    return crop_face(load_photo(Path(path)), str(path))


class FaceCache:
    """Face crops by file content hash, made once per photo for a whole batch (every pose of a
    set, every variant, every job that takes the photo as a reference), failures included.

    Bounded: a batch runs a photo's jobs one after another (plan.plan_pose_set orders them so),
    so the last `size` photos are all it needs; 256 crops are ~25 MB."""

    def __init__(self, size: int = 256) -> None:
        from collections import OrderedDict

        self.size = size
        self._done: OrderedDict[str, FaceCrop | InputError] = OrderedDict()
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def get(self, digest: str, path: Path | str, photo: Image.Image | None = None) -> FaceCrop:
        """The crop of the photo whose content hash is `digest`; `photo` when already decoded."""
        with self._guard:
            lock = self._locks.setdefault(digest, threading.Lock())
        with lock:  # two workers on the same photo: one crops, the other waits for it
            with self._guard:
                found = self._done.get(digest)
            if found is None:
                try:
                    if photo is None:
                        found = face_crop(path)
                    else:
                        require_detector()
                        found = crop_face(photo, str(path))
                except InputError as exc:
                    found = exc
            with self._guard:
                self._done[digest] = found
                self._done.move_to_end(digest)
                while len(self._done) > self.size:
                    oldest, _ = self._done.popitem(last=False)
                    self._locks.pop(oldest, None)
        if isinstance(found, InputError):
            raise InputError(found.message, found.hint)
        return found


_shared = FaceCache()


def shared_cache() -> FaceCache:
    """The process's cache: what the CLI cropped to check --ref photos, the batch finds done."""
    return _shared
