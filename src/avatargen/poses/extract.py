"""Pose extraction from a photo with MediaPipe's legacy pose solution (optional extra `pose`).

Only `model_complexity=1` works offline: its models ship inside the mediapipe wheel up to
0.10.21, the other complexities download at run time. MediaPipe's 33 landmarks are mapped to
OpenPose BODY_18 (docs/openpose-facts.md); the neck is the shoulders' midpoint.
"""

from __future__ import annotations

import os
import sys
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from avatargen import environment
from avatargen.errors import InputError, MissingExtra
from avatargen.poses.keypoints import BODY_COUNT, Person, Pose

# OpenPose point i <- MediaPipe landmark MP_INDEX[i]; None marks the neck (shoulder midpoint).
MP_INDEX: tuple[int | None, ...] = (0, None, 12, 14, 16, 11, 13, 15, 24, 26, 28, 23, 25, 27, 5, 2, 8, 7)
MIN_VISIBILITY = 0.5

_lock = threading.Lock()  # one MediaPipe graph per process; it is not safe to share across threads
_detector: Any = None
_warmed = False


def require_mediapipe() -> Any:
    """The mediapipe module, or MissingExtra saying how to install it."""
    os.environ.setdefault("GLOG_minloglevel", "2")  # keep MediaPipe's C++ INFO logs off stderr
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        import mediapipe as mp

        mp.solutions.pose  # noqa: B018 - absent from releases after 0.10.21
    except (ImportError, AttributeError):
        raise MissingExtra("pose", "pose extraction") from None
    return mp


def _get_detector():
    global _detector
    mp = require_mediapipe()
    if _detector is None:
        _detector = mp.solutions.pose.Pose(
            static_image_mode=True,
            model_complexity=1,
            enable_segmentation=False,
            min_detection_confidence=0.5,
        )
    return _detector


@contextmanager
def _quiet_native_stderr():
    """Silence the C++ start-up chatter MediaPipe writes straight to fd 2 on its first run.

    Its INFO/WARNING lines (XNNPACK delegate, feedback tensors) mean nothing to a user and
    cannot be turned off through Python logging. AVATARGEN_DEBUG=1 keeps them.
    """
    if os.environ.get(environment.DEBUG, "") not in ("", "0"):
        yield
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real fd 2 (embedded interpreters, some test runners)
        yield
        return
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def open_photo(path: str | Path):
    """The photo as RGB, upright per its EXIF orientation; unreadable -> InputError naming it."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im = ImageOps.exif_transpose(im)
            return im.convert("RGB")
    except FileNotFoundError:
        raise InputError(f"photo not found: {path}", "check the path") from None
    except (UnidentifiedImageError, OSError) as exc:
        raise InputError(f"cannot read image {path}: {exc}", "use a JPEG, PNG or WebP photo") from None


def extract_pose(photo, source: str = "the photo", min_visibility: float = MIN_VISIBILITY) -> Pose:
    """The OpenPose-18 pose of the most prominent person in `photo` (a PIL image or a path).

    Coordinates are pixels of the photo; the canvas is the photo's size. No person ->
    InputError "no person found in SOURCE".
    """
    import numpy as np

    if not hasattr(photo, "convert"):
        source = str(photo)
        photo = open_photo(photo)
    rgb = np.asarray(photo.convert("RGB"))
    global _warmed
    with _lock:
        if _warmed:
            result = _get_detector().process(rgb)
        else:
            # Building the graph and its first run print absl/glog lines (W0000 ...) and TF Lite
            # INFO lines straight to fd 2, whatever GLOG_minloglevel says.
            with _quiet_native_stderr():
                result = _get_detector().process(rgb)
            _warmed = True
    if result.pose_landmarks is None:
        raise InputError(f"no person found in {source}", "use a photo where one person is clearly visible")
    width, height = photo.size
    marks = result.pose_landmarks.landmark
    pose = landmarks_to_pose(
        [(m.x, m.y, m.visibility) for m in marks], width, height, min_visibility=min_visibility
    )
    if sum(p is not None for p in pose.people[0].body) < 2:
        raise InputError(f"no person found in {source}", "use a photo where one person is clearly visible")
    return pose


def landmarks_to_pose(
    landmarks: list[tuple[float, float, float]],
    width: int,
    height: int,
    min_visibility: float = MIN_VISIBILITY,
) -> Pose:
    """Map MediaPipe's 33 normalised (x, y, visibility) landmarks to an OpenPose-18 Pose in pixels.

    A point is kept when it is visible enough and inside the photo (MediaPipe guesses
    off-frame joints, which would draw limbs the photo does not show).
    """
    body: list[tuple[float, float] | None] = [None] * BODY_COUNT
    for i, mp_index in enumerate(MP_INDEX):
        if mp_index is None:
            (x1, y1, c1), (x2, y2, c2) = landmarks[11], landmarks[12]
            x, y, c = (x1 + x2) / 2, (y1 + y2) / 2, min(c1, c2)
        else:
            x, y, c = landmarks[mp_index]
        if c >= min_visibility and 0 <= x <= 1 and 0 <= y <= 1:
            body[i] = (x * width, y * height)
    return Pose(float(width), float(height), [Person(body)])
