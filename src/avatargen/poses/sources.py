"""Where a generation's pose image comes from: `--pose NAME | FILE.json | FILE.png | auto | URL`.

`resolve_pose(spec)` checks the spec once, before a batch starts (an unknown template, a missing
file, an unreachable URL or a missing extra fail early), and returns a PoseSource whose
`image(width, height, photo)` gives the RGB skeleton at the model's exact size. Sources that
are the same for every photo cache their image per size; `auto` extracts from each photo.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from avatargen.errors import InputError, UsageError
from avatargen.poses.keypoints import Pose, parse_pose_text
from avatargen.poses.render import Fit, render_pose

if TYPE_CHECKING:
    from PIL import Image

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
URL_MAX_BYTES = 10 * 1024 * 1024
URL_TIMEOUT_S = 30.0
MAX_IMAGE_PIXELS = 64_000_000  # a pose image is at most a few megapixels; this is 8000x8000
MAX_CANVAS_SIDE = 8192  # as `poses show --size`


class PoseSource:
    """Base class: a named pose that can be drawn at any size."""

    name: str = ""
    description: str = ""
    per_photo: bool = False

    def image(self, width: int, height: int, photo: Image.Image | str | Path | None = None) -> Image.Image:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


class _CachedSource(PoseSource):
    """A source whose image depends only on the size: drawn once per size, copies handed out."""

    def __init__(self) -> None:
        self._cache: dict[tuple[int, int], Image.Image] = {}
        self._lock = threading.Lock()  # batch workers ask from several threads

    def image(self, width: int, height: int, photo: Any = None) -> Image.Image:
        _check_size(width, height)
        with self._lock:
            if (width, height) not in self._cache:
                self._cache[(width, height)] = self._draw(width, height)
            return self._cache[(width, height)].copy()

    def _draw(self, width: int, height: int) -> Image.Image:
        raise NotImplementedError


class KeypointSource(_CachedSource):
    """A template or an OpenPose JSON, rendered in the training style."""

    def __init__(
        self, name: str, description: str, pose: Pose, fit: Fit = "pose", framing: str | None = None
    ):
        super().__init__()
        self.name, self.description, self.pose, self.fit = name, description, pose, fit
        self.framing = framing or framing_of(pose)

    def _draw(self, width: int, height: int) -> Image.Image:
        return render_pose(self.pose, width, height, fit=self.fit)


class ImageSource(_CachedSource):
    """A ready skeleton image, letterboxed onto black at the requested size (proportions kept)."""

    def __init__(self, name: str, picture: Image.Image, description: str = "a person in the pose shown"):
        super().__init__()
        self.name, self.description, self.picture = name, description, picture.convert("RGB")

    def _draw(self, width: int, height: int) -> Image.Image:
        return letterbox(self.picture, width, height)


class AutoSource(PoseSource):
    """The pose of the person in each input photo, so the avatar keeps the photo's pose."""

    name = "auto"
    description = "a person in the same pose as in the photo"
    per_photo = True

    def image(self, width: int, height: int, photo: Any = None) -> Image.Image:
        """`photo` is a PIL image (ideally from Image.open, whose .filename names it) or a path."""
        from avatargen.poses.extract import extract_pose

        _check_size(width, height)
        if photo is None:
            raise ValueError("the auto pose needs the input photo")
        source = (
            str(photo) if isinstance(photo, str | Path) else getattr(photo, "filename", "") or "the photo"
        )
        pose = extract_pose(photo, source)
        # Keep the photo's composition: its frame, letterboxed into the model's size.
        return render_pose(pose, width, height, fit="canvas")


POSE_URL_FIX = (
    "give the full URL of a pose .json or image, e.g. https://example.com/pose.json, or a file path"
)


def resolve_pose(spec: str, option: str = "--pose") -> PoseSource:
    """The PoseSource for a `--pose` value; every problem is raised here, before any work.
    `option`: what a malformed URL's error names (`poses show` has an argument, not --pose)."""
    spec = spec.strip()
    if not spec:
        raise UsageError(
            "empty --pose", "give a template name (see `avatargen poses list`), a file, auto or a URL"
        )
    if spec.lower() == "auto":
        from avatargen.poses.extract import require_mediapipe

        require_mediapipe()
        return AutoSource()
    if spec.lower().startswith(("http://", "https://")):
        from avatargen.urls import checked_url

        return _from_url(checked_url(spec, option, "pose URL", POSE_URL_FIX, usage=True))
    suffix = Path(spec).suffix.lower()
    if suffix == ".json":
        return _from_json_bytes(_read_file(spec), spec, Path(spec).stem)
    if suffix in IMAGE_SUFFIXES:
        return _from_image_bytes(_read_file(spec), spec, Path(spec).stem)
    from avatargen.poses.templates import get_template

    t = get_template(spec)
    return KeypointSource(t.name, t.description, t.pose, fit="pose", framing=t.framing)


def framing_of(pose: Pose) -> str:
    """full-body when a knee or ankle is present, else upper-body."""
    lower = (9, 10, 12, 13)
    return "full-body" if any(p.body[i] for p in pose.people for i in lower) else "upper-body"


def _description_for(pose: Pose) -> str:
    if framing_of(pose) == "full-body":
        return "full-body shot of a person in a natural pose"
    return "upper-body portrait of a person"


def _read_file(spec: str) -> bytes:
    path = Path(spec).expanduser()
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"pose file not found: {spec}", "check the path given to --pose") from None
    except OSError as exc:
        raise InputError(f"cannot read pose file {spec}: {exc.strerror or exc}") from None


def _from_json_bytes(data: bytes, source: str, name: str) -> KeypointSource:
    pose = parse_pose_text(data, source)
    if not pose.people or not pose.all_points():
        raise InputError(f"{source}: the pose has no keypoints", "export a pose with at least one person")
    if pose.canvas_given and not any(
        0 <= x <= pose.canvas_width and 0 <= y <= pose.canvas_height for x, y in pose.all_points()
    ):
        # Drawn, it would be an empty black image: as unusable as a pose with no point at all.
        raise InputError(
            f"{source}: every keypoint lies outside its {pose.canvas_width:g}x{pose.canvas_height:g} canvas",
            "check the file's canvas_width/canvas_height against its coordinates (pixels, not 0-1)",
        )
    if not pose.canvas_given:
        # No canvas named (CMU OpenPose output): frame the figure like a template.
        return KeypointSource(name, _description_for(pose), pose, fit="pose")
    # A pose file was composed on its canvas: keep that framing rather than re-fitting the figure.
    return KeypointSource(name, _description_for(pose), _within(pose, MAX_CANVAS_SIDE), fit="canvas")


def _within(pose: Pose, side: int) -> Pose:
    """The pose on a canvas of at most `side` px per side (proportions kept): `poses show` draws
    a file at its canvas size, and a 100,000 px canvas would be a 30 GB picture."""
    scale = side / max(pose.canvas_width, pose.canvas_height)
    if scale >= 1:
        return pose
    people = [p.mapped(lambda pt: (pt[0] * scale, pt[1] * scale)) for p in pose.people]
    return Pose(pose.canvas_width * scale, pose.canvas_height * scale, people)


def _from_image_bytes(data: bytes, source: str, name: str) -> ImageSource:
    """A skeleton picture; hostile files (decompression bombs, damaged data) are InputErrors."""
    import io
    import struct
    import warnings

    from PIL import Image, UnidentifiedImageError

    hint = "give a PNG or JPEG skeleton image"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as im:
                # Checked before decoding: a few KB of PNG can claim gigapixels.
                if im.width * im.height > MAX_IMAGE_PIXELS:
                    raise InputError(
                        f"{source}: pose image too large ({im.width}x{im.height})",
                        f"pose images up to {MAX_IMAGE_PIXELS // 1_000_000} megapixels are accepted",
                    )
                im.load()
                picture = im.convert("RGB")
    except InputError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise InputError(f"{source}: refused as a decompression bomb (too many pixels)", hint) from None
    except UnidentifiedImageError:
        raise InputError(f"{source} is not a readable image (not a format Pillow knows)", hint) from None
    except (OSError, ValueError, SyntaxError, EOFError, IndexError, struct.error, MemoryError) as exc:
        # Pillow's decoders raise all of these on damaged files.
        raise InputError(f"{source} is not a readable image: {exc}", hint) from None
    return ImageSource(name, picture)


def _from_url(url: str) -> PoseSource:
    """Fetch a pose image or JSON once; every failure is an InputError naming the URL.

    URL_TIMEOUT_S is a deadline for the whole download, not for each read: a server that sends
    a byte every few seconds (headers included) must not hold the command for minutes. The
    download runs in a daemon thread that the command stops waiting for at the deadline.
    """
    path = urlparse(url).path
    name = Path(path).stem or "url-pose"
    hint = "check the URL, or download the file and pass its path to --pose"
    from avatargen.redact import MASK

    if MASK in url:  # a retry: the ledger keeps a pose URL with its credentials masked
        raise InputError(
            f"pose {url} was stored with its credentials masked",
            "run the generate command again with the whole --pose URL (it resumes the batch)",
        )
    deadline = time.monotonic() + URL_TIMEOUT_S
    outcome: dict[str, Any] = {}
    finished = threading.Event()

    def work() -> None:
        try:
            outcome["value"] = _download(url, deadline, hint)
        except BaseException as exc:  # handed to the waiting thread, which re-raises it
            outcome["error"] = exc
        finally:
            finished.set()

    threading.Thread(target=work, name="avatargen-pose-url", daemon=True).start()
    if not finished.wait(max(0.0, deadline - time.monotonic()) + 0.05):
        raise InputError(f"cannot fetch pose {url}: not downloaded within {URL_TIMEOUT_S:g} s", hint)
    if "error" in outcome:
        raise outcome["error"]
    data, content_type = outcome["value"]
    suffix = Path(path).suffix.lower()
    if suffix == ".json" or (suffix not in IMAGE_SUFFIXES and "json" in content_type):
        return _from_json_bytes(data, url, name)
    if suffix in IMAGE_SUFFIXES or content_type.startswith("image/"):
        return _from_image_bytes(data, url, name)
    raise InputError(f"pose {url} is neither JSON nor an image ({content_type or 'no content type'})", hint)


def _download(url: str, deadline: float, hint: str) -> tuple[bytes, str]:
    """The body (at most URL_MAX_BYTES) and its content type, read in chunks until `deadline`."""
    import httpx

    too_slow = InputError(f"cannot fetch pose {url}: not downloaded within {URL_TIMEOUT_S:g} s", hint)
    too_big = InputError(f"pose {url} is larger than {URL_MAX_BYTES // 2**20} MB", hint)
    from avatargen.providers.http_client import without_userinfo

    try:
        first = without_userinfo(url)  # URL credentials are never sent (the token rule)
    except httpx.InvalidURL as exc:
        raise InputError(f"pose {url} is not a valid URL ({exc})", hint) from None

    def same_host(request: httpx.Request) -> None:
        # A redirect is followed on the same origin only: a pose URL never takes us to another host.
        if (request.url.scheme, request.url.host, request.url.port) != (first.scheme, first.host, first.port):
            raise InputError(
                f"pose {url} redirects to another host ({request.url.host}); refused",
                "use the final URL itself with --pose, or download the file and pass its path",
            )

    try:
        with (
            httpx.Client(
                timeout=URL_TIMEOUT_S, follow_redirects=True, event_hooks={"request": [same_host]}
            ) as client,
            client.stream("GET", first) as response,
        ):
            if response.status_code >= 400:
                raise InputError(f"cannot fetch pose {url}: HTTP {response.status_code}", hint)
            declared = response.headers.get("content-length")
            if declared and declared.isdigit() and int(declared) > URL_MAX_BYTES:
                raise too_big
            chunks, total = [], 0
            for chunk in response.iter_bytes():
                if time.monotonic() > deadline:
                    raise too_slow
                total += len(chunk)
                if total > URL_MAX_BYTES:
                    raise too_big
                chunks.append(chunk)
            content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
    except httpx.TimeoutException:
        raise too_slow from None
    except httpx.HTTPError as exc:
        raise InputError(f"cannot fetch pose {url}: {type(exc).__name__}: {exc}", hint) from None
    return b"".join(chunks), content_type


def letterbox(picture: Image.Image, width: int, height: int) -> Image.Image:
    """Scale to fit inside width x height keeping proportions, centred on black."""
    from PIL import Image

    if picture.size == (width, height):
        return picture.copy()
    scale = min(width / picture.width, height / picture.height)
    w, h = max(1, round(picture.width * scale)), max(1, round(picture.height * scale))
    # NEAREST keeps the skeleton's exact colours (no blended edges the model never saw)
    resized = picture.resize((w, h), Image.Resampling.NEAREST if scale >= 1 else Image.Resampling.BOX)
    canvas = Image.new("RGB", (width, height), (0, 0, 0))
    canvas.paste(resized, ((width - w) // 2, (height - h) // 2))
    return canvas


def _check_size(width: int, height: int) -> None:
    if width < 1 or height < 1:
        raise ValueError(f"pose image size must be positive, got {width}x{height}")
