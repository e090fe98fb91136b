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

# The crop itself lives in serve/facecrop.py, shared with the server side (a thin client without
# MediaPipe sends the photo and the server crops it there, the same way).
from avatargen.serve.facecrop import CROP_SIZE, CROP_VERSION, MARGIN, MIN_CONFIDENCE  # noqa: E402, F401

# The job key's crop field when the server finds the face: the same algorithm, but another
# process's MediaPipe made it, so it is its own image.
SERVER_CROP_VERSION = f"{CROP_VERSION}@server"


@dataclass(frozen=True)
class FaceCrop:
    source: str  # the file it came from, for messages only (never written to metadata)
    png: bytes  # the square crop, CROP_SIZE a side
    box: tuple[int, int, int, int]  # left, top, right, bottom of the crop in the upright photo
    # True: `png` is the whole photo (shrunk), for the server to find the face in (no MediaPipe here).
    on_server: bool = False

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


def detector_available() -> bool:
    """Can this install find faces itself (the pose extra's MediaPipe)?"""
    try:
        require_detector()
    except MissingExtra:
        return False
    return True


def detect_faces(photo: Image.Image) -> list[tuple[float, float, float, float]]:
    """Face boxes (left, top, width, height) in pixels of `photo`, largest first."""
    from avatargen.poses.extract import _quiet_native_stderr
    from avatargen.serve.facecrop import detect_face_boxes

    return detect_face_boxes(photo, require_detector(), _quiet_native_stderr)


def square_around(
    box: tuple[float, float, float, float], width: int, height: int, margin: float = MARGIN
) -> tuple[int, int, int, int]:
    from avatargen.serve import facecrop

    return facecrop.square_around(box, width, height, margin)


def crop_face(photo: Image.Image, source: str) -> FaceCrop:
    """The largest face of an upright RGB photo, cropped square; InputError when there is none."""
    from avatargen.images import png_bytes

    boxes = detect_faces(photo)
    if not boxes:
        raise InputError(
            f"no face found in {source}",
            "use a photo where the face is visible, or turn identity off with --identity-scale 0",
        )
    from avatargen.serve.facecrop import crop_square

    area = square_around(boxes[0], *photo.size)
    return FaceCrop(source, png_bytes(crop_square(photo, area)), area)


# The photo a thin client sends for the server to find the face in: no larger than this a side
# (the server takes up to 2048 x 2048 for it). Lossless (PNG): the server then crops exactly the
# pixels this install would have cropped, so the image is the same either way.
SERVER_PHOTO_SIDE = 2048


def photo_for_server(photo: Image.Image, source: str) -> FaceCrop:
    """The upright photo (as decoded for the batch), shrunk to SERVER_PHOTO_SIDE, for
    `ip_adapter_photo`."""
    from PIL import Image

    from avatargen.images import png_bytes

    image = photo.convert("RGB")
    if max(image.size) > SERVER_PHOTO_SIDE:
        image = image.copy()
        image.thumbnail((SERVER_PHOTO_SIDE, SERVER_PHOTO_SIDE), Image.Resampling.LANCZOS)
    return FaceCrop(source, png_bytes(image), (0, 0, *image.size), on_server=True)


def identity_crops(crops: list[FaceCrop]) -> dict[str, object]:
    """What the metadata says of the faces sent: the hashes of the exact crops, or, when the
    server found them, that it did (its crop is not known here)."""
    if any(crop.on_server for crop in crops):
        return {"faces_found_by": "server", "crop": SERVER_CROP_VERSION}
    return {"crops": [crop.sha256 for crop in crops]}


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
        self._finds_faces: bool | None = None

    def finds_faces(self) -> bool:
        """Does this process crop faces itself? Asked once per cache (an import attempt each time
        would cost a sys.path scan per photo)."""
        if self._finds_faces is None:
            self._finds_faces = detector_available()
        return self._finds_faces

    def get(self, digest: str, path: Path | str, photo: Image.Image | None = None) -> FaceCrop:
        """The crop of the photo whose content hash is `digest`; `photo` when already decoded."""
        with self._guard:
            lock = self._locks.setdefault(digest, threading.Lock())
        with lock:  # two workers on the same photo: one crops, the other waits for it
            with self._guard:
                found = self._done.get(digest)
            if found is None:
                try:
                    if not self.finds_faces():  # a thin client: the server finds the face
                        from avatargen.images import load_photo

                        found = photo_for_server(photo or load_photo(Path(path)), str(path))
                    elif photo is None:
                        found = face_crop(path)
                    else:
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


def crop_version() -> str:
    """The job key's crop field: this install's crop, or the server's when it finds the faces."""
    return CROP_VERSION if shared_cache().finds_faces() else SERVER_CROP_VERSION
