"""The face crop that feeds the identity adapter, made the same way wherever it is made.

The CLI crops on the client when it has MediaPipe (the `pose` extra, avatargen/faces.py); a thin
client (the core install) sends the whole photo as `ip_adapter_photo` and the server, the endpoint
handler or the in-process backend crops it here. One algorithm, so one image either way:
MediaPipe's full-range face detector (faces up to ~5 m), then the short-range one (selfies) only
when it finds nothing; the largest face; a square of MARGIN times its box, moved (not cut) to stay
inside the photo; resized to CROP_SIZE, the input size of IP-Adapter's CLIP image encoder.

This file must not import avatargen: `avatargen endpoint bundle` copies its text into the
standalone handler.py. MediaPipe is imported only when a face is looked for.
"""

# ---- bundle: body below (avatargen endpoint bundle copies everything after this line) ----
import contextlib
import importlib.util
import os
import threading
from typing import Any

CROP_SIZE = 224  # CLIP ViT-H/14's input size: the encoder would resize to it anyway
# The square's side is this many times the detector's box (which hugs eyes to chin): the
# forehead, hair and jaw line carry identity too, as in IP-Adapter's own face examples.
MARGIN = 1.8
MIN_CONFIDENCE = 0.5
# Bump when the crop changes (size, margin, detector): it is part of the job key.
CROP_VERSION = "mediapipe-face/" + str(CROP_SIZE) + "/" + str(MARGIN)

_face_lock = threading.Lock()  # MediaPipe graphs are not safe to share across threads
_face_detectors = {}  # type: dict


def face_finder_installed() -> bool:
    """Can this process find faces (MediaPipe's legacy face_detection solution importable)?"""
    if importlib.util.find_spec("mediapipe") is None:
        return False
    try:
        return load_mediapipe() is not None
    except ImportError:
        return False


def load_mediapipe() -> Any:
    """The mediapipe module with its face detection solution; ImportError when it is missing."""
    os.environ.setdefault("GLOG_minloglevel", "2")  # keep MediaPipe's C++ INFO logs off stderr
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import mediapipe as mp

    try:
        mp.solutions.face_detection  # noqa: B018 - in the legacy solutions up to 0.10.21
    except AttributeError:
        raise ImportError(
            "this mediapipe has no solutions.face_detection (0.10.21 or older needed)"
        ) from None
    return mp


def _detector(mp: Any, model_selection: int) -> Any:
    if model_selection not in _face_detectors:
        _face_detectors[model_selection] = mp.solutions.face_detection.FaceDetection(
            model_selection=model_selection, min_detection_confidence=MIN_CONFIDENCE
        )
    return _face_detectors[model_selection]


def detect_face_boxes(
    photo: Any,
    mp: Any = None,
    quiet: Any = None,  # quiet: a context manager factory, or None
) -> list[tuple[float, float, float, float]]:
    """Face boxes (left, top, width, height) in pixels of `photo` (PIL), largest first."""
    import numpy as np

    mp = mp or load_mediapipe()
    rgb = np.ascontiguousarray(np.asarray(photo.convert("RGB")))
    width, height = photo.size
    boxes = []
    with _face_lock, (quiet or contextlib.nullcontext)():
        for model_selection in (1, 0):  # full range first, then close-up selfies
            result = _detector(mp, model_selection).process(rgb)
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


def crop_square(photo: Any, area: tuple[int, int, int, int]) -> Any:
    from PIL import Image

    return photo.crop(area).resize((CROP_SIZE, CROP_SIZE), Image.Resampling.LANCZOS)


def find_face_crop(photo: Any, mp: Any = None, quiet: Any = None) -> Any:
    """(crop, area) of the largest face in an upright RGB photo, or None when it has none."""
    boxes = detect_face_boxes(photo, mp, quiet)
    if not boxes:
        return None
    area = square_around(boxes[0], *photo.size)
    return crop_square(photo, area), area
