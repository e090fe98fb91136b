"""Reading input photos safely and writing outputs atomically with their metadata."""

from __future__ import annotations

import errno
import hashlib
import io
import json
import math
import os
import struct
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from avatargen.errors import InputError

if TYPE_CHECKING:
    from PIL import Image

# Refuse anything over ~90 megapixels: a decompression bomb, not a photo.
MAX_PIXELS = 90_000_000

_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"\xff\xd8\xff", "jpeg"),
    (b"GIF87a", "gif"),
    (b"GIF89a", "gif"),
    (b"II*\x00", "tiff"),
    (b"MM\x00*", "tiff"),
)


_BMP_DIB_SIZES = {12, 16, 40, 52, 56, 64, 108, 124}


def sniff_image(path: Path) -> str | None:
    """The image format by content (not extension), or None."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(32)
    except OSError:
        return None
    for magic, kind in _MAGIC:
        if head.startswith(magic):
            return kind
    # 'BM' alone starts plenty of text files: also check the DIB header size of a real BMP.
    if head[:2] == b"BM" and len(head) >= 18 and int.from_bytes(head[14:18], "little") in _BMP_DIB_SIZES:
        return "bmp"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head[4:8] == b"ftyp" and head[8:12] in (b"heic", b"heix", b"avif", b"mif1"):
        return "heif"
    return None


def file_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def load_photo(path: Path, min_side: int | None = None) -> Image.Image:
    """An RGB photo the right way up: EXIF orientation applied, CMYK/palette/alpha/16-bit
    converted, decompression bombs refused. Raises InputError naming the file.
    `min_side`: the photo is only needed this large; a JPEG larger than twice that is decoded
    at a reduced scale (1/2, 1/4, 1/8 by its DCT: a 12 MP photo in a quarter of the time)."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                if img.width * img.height > MAX_PIXELS:
                    raise InputError(
                        f"{path}: image too large ({img.width}x{img.height})",
                        f"photos up to {MAX_PIXELS // 1_000_000} megapixels are accepted",
                    )
                if min_side and img.format == "JPEG":
                    scale = min_side / min(img.size)
                    if scale < 0.5:  # draft keeps each side at least the size asked for
                        img.draft(img.mode, (math.ceil(img.width * scale), math.ceil(img.height * scale)))
                img.load()
                ImageOps.exif_transpose(img, in_place=True)  # no copy of an upright photo
                return to_rgb(img)
    except InputError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise InputError(f"{path}: refused as a decompression bomb (too many pixels)") from None
    except UnidentifiedImageError:
        raise InputError(f"{path}: not an image Pillow can read") from None
    except FileNotFoundError:
        raise InputError(f"{path}: file not found") from None
    except OSError as exc:
        raise InputError(f"{path}: corrupt or truncated image ({exc})") from None
    except (ValueError, SyntaxError, EOFError, IndexError, struct.error) as exc:
        # Pillow's decoders raise these too on damaged files; still one failed job, not a crash.
        raise InputError(f"{path}: corrupt image ({exc})") from None


def to_rgb(img: Image.Image) -> Image.Image:
    from PIL import Image

    if img.mode.startswith("I;16"):
        img = img.convert("I")  # point() cannot work on I;16B (big-endian TIFF), I can
    if img.mode == "I":
        # 16/32-bit greyscale: scale down to 8 bits instead of clipping to white.
        if img.getextrema()[1] > 255:
            img = img.point(lambda v: v / 256)
        img = img.convert("L")
    if img.mode == "F":
        # Float greyscale (TIFF) usually holds 0..1: stretch it instead of rounding to black.
        if img.getextrema()[1] <= 1.0:
            img = img.point(lambda v: v * 255)
        img = img.convert("L")
    if img.mode == "P":
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA"):
        background = Image.new("RGB", img.size, (255, 255, 255))
        background.paste(img.convert("RGBA"), mask=img.convert("RGBA").getchannel("A"))
        return background
    if img.mode != "RGB":
        return img.convert("RGB")
    return img


def fit_to(img: Image.Image, width: int, height: int, fast: bool = False) -> Image.Image:
    """Centre-crop to the target aspect ratio, then resize: what the model expects as init image.
    `fast`: for a photo that goes through the VAE and is noised anyway (the JPEG init image), a
    cheaper filter than bicubic, antialiased either way: when shrinking, the box filter (each
    pixel the area average of what it covers; ~55 % less CPU than bicubic, ~30 % less than
    bilinear at 768 -> 512), when enlarging bilinear (a box would show blocks)."""
    from PIL import Image, ImageOps

    method = Image.Resampling.BICUBIC
    if fast:
        shrinking = width <= img.width and height <= img.height
        method = Image.Resampling.BOX if shrinking else Image.Resampling.BILINEAR
    return ImageOps.fit(img, (width, height), method)


def png_bytes(img: Image.Image) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, format="PNG")
    return buffer.getvalue()


# diffusers scheduler classes under the sampler names A1111 (and the parsers that read its
# `parameters` text) use; see diffusers' scheduler overview for the correspondence.
SAMPLER_NAMES = {
    "EulerDiscreteScheduler": "Euler",
    "EulerAncestralDiscreteScheduler": "Euler a",
    "DPMSolverMultistepScheduler": "DPM++ 2M",
    "DPMSolverSinglestepScheduler": "DPM++ SDE",
    "KDPM2DiscreteScheduler": "DPM2",
    "KDPM2AncestralDiscreteScheduler": "DPM2 a",
    "HeunDiscreteScheduler": "Heun",
    "LMSDiscreteScheduler": "LMS",
    "DDIMScheduler": "DDIM",
    "PNDMScheduler": "PLMS",  # the SD configs set skip_prk_steps: PNDM runs its PLMS steps only
    "UniPCMultistepScheduler": "UniPC",
    "LCMScheduler": "LCM",
    "FlowMatchEulerDiscreteScheduler": "Euler",
}

# What each architecture's base model loads when nothing replaces its scheduler (its Hub
# scheduler_config.json): SD 1.5 -> PNDMScheduler, SDXL base 1.0 -> EulerDiscreteScheduler,
# SD 3.5 -> FlowMatchEulerDiscreteScheduler. Used when the backend did not say which one ran.
DEFAULT_SCHEDULERS = {
    "sd15": "PNDMScheduler",
    "sdxl": "EulerDiscreteScheduler",
    "sd35": "FlowMatchEulerDiscreteScheduler",
}


def sampler_name(scheduler: str) -> str:
    """A diffusers scheduler class name as an A1111 sampler name ('EulerDiscreteScheduler' ->
    'Euler'); a name that is not a known class (already a sampler name) is kept."""
    return SAMPLER_NAMES.get(scheduler, scheduler)


def _sampler(meta: dict[str, Any]) -> str:
    if meta.get("sampler"):
        return sampler_name(str(meta["sampler"]))
    architecture = meta.get("architecture") or _architecture_of(str(meta.get("model", "")))
    return sampler_name(DEFAULT_SCHEDULERS.get(architecture or "", "unknown"))


def _architecture_of(model_key: str) -> str | None:
    # An older caller may not pass the architecture: the catalog knows it (a failure is no reason
    # to lose the image, so any catalog problem just leaves it unknown).
    from avatargen.catalog import load_catalog
    from avatargen.errors import AvatargenError

    try:
        return load_catalog().lookup(model_key).architecture
    except (AvatargenError, OSError):
        return None


def _a1111_value(value: Any) -> str:
    """A value as A1111 writes it: bare, or JSON-quoted when a comma, colon, quote or newline
    would split it (its own `quote()` rule)."""
    text = str(value)
    return json.dumps(text, ensure_ascii=False) if any(ch in text for ch in ',:"\n') else text


def sd_parameters(meta: dict[str, Any]) -> str:
    """The common Stable Diffusion ("A1111") parameters text, in A1111's own field order, so
    sd-parsers, sd-prompt-reader and the webui's PNG Info read it: prompt line(s), then
    `Negative prompt:`, then one line of `Key: value` pairs starting with `Steps:`.

    The model is written as its alias (no `:`, which readers split on). `Sampler` is the
    scheduler that ran (`meta["sampler"]`, a diffusers class or sampler name, when the backend
    reported it), else the default scheduler of the model's architecture."""
    model = str(meta["model"]).removeprefix("avatar-generator:")
    fields = [
        ("Steps", meta["steps"]),
        ("Sampler", _sampler(meta)),
        ("CFG scale", meta["guidance_scale"]),
        ("Seed", meta["seed"]),
        ("Size", f"{meta['width']}x{meta['height']}"),
        ("Model", model),
    ]
    if meta.get("strength") is not None:  # img2img: the photo was sent as the init image
        fields.append(("Denoising strength", meta["strength"]))
    if uses_controlnet(meta):  # an editing model (Qwen, FLUX Kontext) gets the pose as an image
        fields += [("ControlNet", "openpose"), ("Control scale", meta["controlnet_conditioning_scale"])]
    fields.append(("Pose", meta["pose"]))
    if meta.get("weights") not in (None, "catalog"):  # a --tiny or --model-dir image says so
        fields.append(("Weights", meta["weights"]))
    settings = ", ".join(f"{key}: {_a1111_value(value)}" for key, value in fields)
    return f"{meta['prompt']}\nNegative prompt: {meta['negative_prompt']}\n{settings}"


# The architectures whose catalog models are ControlNet OpenPose pipelines.
CONTROLNET_ARCHITECTURES = ("sd15", "sdxl")


def uses_controlnet(meta: dict[str, Any]) -> bool:
    """False for a model known to have no ControlNet; an unknown one keeps the fields, as before."""
    architecture = meta.get("architecture") or _architecture_of(str(meta.get("model", "")))
    return architecture is None or architecture in CONTROLNET_ARCHITECTURES


_NO_HARD_LINKS = {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS, errno.EMLINK}


# Temporary outputs carry this unmistakable prefix, so the sweep after a killed run removes
# only files avatargen itself named, never a user's `.notes.99999.tmp`.
TEMP_PREFIX = ".avatargen-partial-"
TEMP_SUFFIX = ".tmp"


def temp_output_path(path: Path, pid: int | None = None) -> Path:
    return path.with_name(f"{TEMP_PREFIX}{os.getpid() if pid is None else pid}-{path.name}{TEMP_SUFFIX}")


def temp_output_pid(name: str) -> int | None:
    """The PID of the process that wrote an avatargen temporary file, or None for any other name."""
    if not (name.startswith(TEMP_PREFIX) and name.endswith(TEMP_SUFFIX)):
        return None
    pid, sep, _rest = name[len(TEMP_PREFIX) :].partition("-")
    return int(pid) if sep and pid.isdigit() else None


def answer_as_png(image: bytes) -> bytes:
    """The answer itself when it is an 8-bit RGB(A) PNG (checked in full later); any other
    image (JPEG, WebP, 16-bit or palette PNG) decoded and re-encoded as an RGB(A) PNG."""
    from avatargen.pngchunks import PngError, is_png, read_header

    if is_png(image):
        try:
            if read_header(image).plain_rgb:
                return image
        except PngError:
            return image  # with_text says what is wrong with it
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(image)) as decoded:
                if decoded.width * decoded.height > MAX_PIXELS:
                    raise Image.DecompressionBombError("too many pixels")
                decoded.load()
                # to_rgb: a 16-bit or float answer is scaled, not clipped to white by convert("RGB").
                picture = decoded.copy() if decoded.mode in ("RGB", "RGBA") else to_rgb(decoded)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise InputError("the server's answer is far too large an image (decompression bomb)") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError, struct.error) as exc:
        raise InputError(f"the server's answer is not a readable image ({exc})") from None
    return png_bytes(picture)


def write_output(
    path: Path,
    image: bytes,
    meta: dict[str, Any],
    overwrite: bool = False,
    png_chunks: list[tuple[bytes, int, int]] | None = None,
) -> Path:
    """Write the generated image as PNG with `parameters` and `avatargen` text chunks, atomically:
    a temporary file in the same folder, fsynced, then renamed. Never replaces an existing
    file unless `overwrite`. An 8-bit RGB(A) PNG answer is written as received, the chunks
    added without decoding it; anything else is converted to such a PNG first. `png_chunks`:
    the answer's chunks, when the retry policy checked them already."""
    from avatargen.pngchunks import PngError, with_text

    texts = [("parameters", sd_parameters(meta)), ("avatargen", json.dumps(meta, sort_keys=True))]
    try:
        png = answer_as_png(image)
        data = with_text(png, texts, MAX_PIXELS, png_chunks if png is image else None)
    except PngError as exc:
        raise InputError(f"the server's answer is not a readable image ({exc})") from None
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_output_path(path)
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        if overwrite:
            os.replace(tmp, path)
        else:
            try:
                os.link(tmp, path)  # fails if the name exists: no check-then-write race
            except FileExistsError:
                raise InputError(f"{path}: already exists", "pass --overwrite to replace it") from None
            except OSError as exc:
                # exFAT/FAT USB drives and some network shares have no hard links: check, then rename.
                if exc.errno not in _NO_HARD_LINKS:
                    raise
                if os.path.lexists(path):
                    raise InputError(f"{path}: already exists", "pass --overwrite to replace it") from None
                os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


# The largest output file read back for its metadata: 2048x2048 RGBA uncompressed is ~16 MB.
MAX_OUTPUT_BYTES = 64 * 1024 * 1024


def read_metadata(path: Path | str) -> dict[str, Any] | None:
    """The `avatargen` chunk of an output we wrote, or None. Read from the chunk headers, without
    decoding the image: resuming a folder of finished outputs reads each one."""
    from avatargen.pngchunks import PngError, read_text

    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_OUTPUT_BYTES + 1)
        if len(data) > MAX_OUTPUT_BYTES:
            return None  # far larger than any image we write
        raw = read_text(data, "avatargen", MAX_PIXELS)
    except (OSError, PngError):
        return None  # unreadable, damaged or not a PNG: not one of our outputs
    if not raw:
        return None
    try:
        meta = json.loads(raw)
    except json.JSONDecodeError:
        return None
    return meta if isinstance(meta, dict) else None


def output_has_key(path: str, job_key: str) -> bool:
    meta = read_metadata(path)
    return bool(meta and meta.get("job_key") == job_key)
