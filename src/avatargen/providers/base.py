"""The provider protocol: what every backend (hf-endpoint, hf-inference, local) offers.

A provider generates one image for one request and reports its status. It never spends
credits or writes files: the batch engine does that around it. Waits (cold starts, rate
limits, retries) are announced through `on_event` so the progress display never looks frozen.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from avatargen.catalog import Model
    from avatargen.providers.gate import ModelGate


@dataclass(frozen=True)
class GenerationRequest:
    model: Model
    prompt: str
    negative_prompt: str
    width: int
    height: int
    steps: int
    guidance_scale: float
    controlnet_conditioning_scale: float
    seed: int
    pose_png: bytes | None = None  # the skeleton at width x height, PNG
    pose_description: str = ""  # prompt text for a backend that cannot take a pose image
    init_image_png: bytes | None = None  # the photo, when it should guide the look (JPEG or PNG)
    strength: float | None = None
    # Identity: face crops (encoded images: the photo's, then its references') for the model's
    # IP-Adapter, and its scale; nothing is sent while the scale is 0 or there is no crop.
    ip_adapter_images: tuple[bytes, ...] = ()
    # The --ref/--person reference photos themselves, for a model that edits the photo and takes
    # several images (it sees whole photos, so no face crop is needed).
    reference_images: tuple[bytes, ...] = ()
    ip_adapter_scale: float = 0.0
    # True when ip_adapter_images are whole photos for the server to find the faces in (a client
    # without MediaPipe): they go as `ip_adapter_photo` instead of `ip_adapter_image`.
    ip_adapter_find_faces: bool = False

    def wire_inputs(self, encode_image: Callable[[bytes], Any]) -> dict[str, Any]:
        """The `inputs` of the endpoint contract (the seed's format), images passed through
        `encode_image` (base64 for HTTP, raw bytes in-process). Needs a pose image."""
        assert self.pose_png is not None
        inputs: dict[str, Any] = {
            "prompt": self.prompt,
            "negative_prompt": self.negative_prompt,
            "image": encode_image(self.pose_png),
            "num_inference_steps": self.steps,
            "guidance_scale": self.guidance_scale,
            "controlnet_conditioning_scale": self.controlnet_conditioning_scale,
            "width": self.width,
            "height": self.height,
            "seed": self.seed,
        }
        if self.init_image_png is not None:
            inputs["init_image"] = encode_image(self.init_image_png)
            if self.strength is not None:
                inputs["strength"] = self.strength
        if self.ip_adapter_images and self.ip_adapter_scale > 0:
            crops = [encode_image(crop) for crop in self.ip_adapter_images]
            field = "ip_adapter_photo" if self.ip_adapter_find_faces else "ip_adapter_image"
            inputs[field] = crops[0] if len(crops) == 1 else crops
            inputs["ip_adapter_scale"] = self.ip_adapter_scale
        return inputs

    def __repr__(self) -> str:  # keep image bytes out of logs and tracebacks
        return (
            f"GenerationRequest(model={self.model.key!r}, {self.width}x{self.height}, "
            f"steps={self.steps}, seed={self.seed}, faces={len(self.ip_adapter_images)})"
        )


@dataclass(frozen=True)
class GenerationResult:
    image: bytes  # encoded image bytes as the server sent them (PNG or JPEG)
    content_type: str
    seconds: float  # wall time of the successful attempt
    attempts: int  # HTTP attempts made, retries included
    backend: str
    model_key: str
    # The scheduler the server reports having used (diffusers class name), when it says so:
    # `avatargen serve` sends it as the X-Avatargen-Sampler header; PNG metadata reads it.
    sampler: str | None = None
    # The PNG's chunks as (type, start, end), when the retry policy checked every one of them:
    # adding the metadata does not walk them again.
    png_chunks: list[tuple[bytes, int, int]] | None = None
    # The local backend's Hub weights: repo -> the commit it loaded (weights.hub_revisions).
    weights_revisions: dict[str, str] | None = None

    def __repr__(self) -> str:
        return f"GenerationResult({self.backend}, {len(self.image)} bytes, attempts={self.attempts})"


@dataclass(frozen=True)
class WaitEvent:
    """A wait the caller should show: state is 'loading', 'starting', 'rate-limited' or 'retrying'."""

    state: str
    seconds: float
    reason: str
    model_key: str = ""


@dataclass
class StatusReport:
    backend: str
    url: str | None
    state: str  # ready | starting | unauthorized | unreachable | warm | cold | unknown | local
    detail: str = ""
    estimated_time: float | None = None
    round_trip_ms: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


EventSink = Callable[[WaitEvent], None]


class Provider(Protocol):
    name: str

    def generate(
        self,
        request: GenerationRequest,
        on_event: EventSink | None = None,
        gate: ModelGate | None = None,
        on_attempt: Callable[[], None] | None = None,
    ) -> GenerationResult:
        """One image. `gate` is shared by every worker calling the same model (cold-start and
        rate-limit coordination); `on_attempt` is called before each HTTP attempt (usage counting)."""
        ...

    def status(self) -> StatusReport: ...

    def close(self) -> None: ...
