"""local: the catalog model in this process, through the same pipeline module as `avatargen serve`.

The request goes through `pipelines.parse_request` exactly as the server reads it off the wire,
so the local backend and an endpoint cannot drift apart. Weights load on first use: from the
Hugging Face Hub (huggingface_hub's progress bars on stderr, cached in HF_HOME), from
`model_dir`, or the tiny random-weight model (`tiny`, for tests and trying things out).
Environment defaults, for the CLI and CI: AVATARGEN_LOCAL_MODEL_DIR, AVATARGEN_LOCAL_TINY=1.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from avatargen.errors import InputError, ProviderError
from avatargen.providers.base import EventSink, GenerationRequest, GenerationResult, StatusReport, WaitEvent
from avatargen.serve.resolve import require_serve_extra

if TYPE_CHECKING:
    from avatargen.catalog import Model
    from avatargen.providers.gate import ModelGate

MODEL_DIR_ENV = "AVATARGEN_LOCAL_MODEL_DIR"
TINY_ENV = "AVATARGEN_LOCAL_TINY"
# Rough seconds to load a model from the local cache, shown while the progress display waits.
_EXPECTED_LOAD_S = {"cuda": 60.0, "cpu": 120.0}

_announced: set[str] = set()  # "where it runs" is said once per process and model
_announce_lock = threading.Lock()


class LocalProvider:
    name = "local"

    def __init__(
        self,
        model: Model,
        model_dir: str | Path | None = None,
        tiny: bool | None = None,
        device: str | None = None,
        say: Callable[[str], None] | None = None,
    ) -> None:
        require_serve_extra("the local backend (--provider local)")
        self.model = model
        self.model_dir = model_dir or os.environ.get(MODEL_DIR_ENV, "").strip() or None
        self.tiny = tiny if tiny is not None else os.environ.get(TINY_ENV, "") not in ("", "0")
        self.requested_device = device
        self._say = say
        self._service: Any = None
        self._lock = threading.Lock()

    # ------------------------------------------------------------ loading
    def _device(self) -> str:
        from avatargen.serve.pipelines import pick_device

        return pick_device(self.requested_device)

    def _announce(self, device: str) -> None:
        key = f"{self.model.key}|{self.tiny}|{self.model_dir}"
        with _announce_lock:
            if key in _announced:
                return
            _announced.add(key)
        if self._say is None:
            from avatargen.output import info as say
        else:
            say = self._say
        if self.tiny:
            what = f"{self.model.key} as a tiny random-weight model (its images are noise)"
        elif self.model_dir:
            what = f"{self.model.key} from {self.model_dir}"
        else:
            what = (
                f"{self.model.key} ({self.model.huggingface_model} on {self.model.base_model}); the first "
                "run downloads its weights from the Hugging Face Hub (several GB, cached in HF_HOME)"
            )
        say(f"local backend: running {what} in this process on {device}")
        if device == "cpu" and not self.tiny:
            width, height = self.model.size
            say(
                f"note: on a CPU one {width}x{height}, {self.model.steps}-step image takes many minutes "
                "(a CUDA GPU takes seconds); for speed use an Inference Endpoint (avatargen endpoint bundle) "
                "or `avatargen serve` on a GPU machine"
            )

    def _ensure_loaded(self, on_event: EventSink | None) -> Any:
        if self._service is not None:
            return self._service
        with self._lock:
            if self._service is not None:
                return self._service
            from avatargen.serve.pipelines import ControlNetService, LoadError
            from avatargen.serve.resolve import load_error, model_source

            device = self._device()
            self._announce(device)
            spec, source = model_source(self.model, model_dir=self.model_dir, tiny=self.tiny)
            service = ControlNetService(spec, source=source, device=device)
            if on_event is not None:
                expected = 5.0 if self.tiny else _EXPECTED_LOAD_S.get(device, 120.0)
                on_event(WaitEvent("loading", expected, "loading the model weights", self.model.key))
            try:
                service.load()
            except LoadError as exc:
                raise load_error(exc, self.model) from None
            except ImportError as exc:
                from avatargen.errors import MissingExtra

                raise MissingExtra(
                    "serve", f"the local backend ({exc.name or 'a module'} is missing)"
                ) from None
            self._service = service
            return service

    # ------------------------------------------------------------ the protocol
    def generate(
        self,
        request: GenerationRequest,
        on_event: EventSink | None = None,
        gate: ModelGate | None = None,
        on_attempt: Callable[[], None] | None = None,
    ) -> GenerationResult:
        """One image in-process. `gate` coordinates HTTP waits: nothing to share here. `on_attempt` is
        called once, after the weights are loaded and before the image is made."""
        from avatargen.serve.pipelines import RequestError, parse_request, png_bytes

        if request.pose_png is None:
            raise InputError(f"no pose image for {self.model.key}", "the local backend needs a pose (--pose)")
        service = self._ensure_loaded(on_event)
        # Raw bytes: parse_request takes them as well as base64.
        inputs = request.wire_inputs(lambda data: data)
        try:
            params = parse_request({"inputs": inputs}, service.spec)
        except RequestError as exc:
            raise InputError(f"{self.model.key}: {exc}", "check the size, steps and pose image") from None
        if on_attempt is not None:
            on_attempt()  # the batch's "generating now" signal (and its stop check), once per image
        started = time.monotonic()
        try:
            image = service.generate(params)
        except RuntimeError as exc:  # e.g. CUDA out of memory
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ProviderError(
                f"local generation failed for {self.model.key}: {first}",
                "try a smaller size or fewer steps, or close other programs using the GPU",
            ) from None
        data = png_bytes(image)
        return GenerationResult(
            image=data,
            content_type="image/png",
            seconds=time.monotonic() - started,
            attempts=1,
            backend=self.name,
            model_key=self.model.key,
        )

    def status(self) -> StatusReport:
        device = self._service.device if self._service is not None else self._device()
        detail = f"runs in-process on {device}" + (" (slow)" if device == "cpu" else "")
        if self.tiny:
            detail += "; tiny random-weight model (noise images)"
        return StatusReport(
            backend=self.name,
            url=None,
            state="local",
            detail=detail,
            extra={
                "device": device,
                "tiny": self.tiny,
                "loaded": self._service is not None,
                "model_dir": str(self.model_dir) if self.model_dir else None,
            },
        )

    def close(self) -> None:
        service, self._service = self._service, None
        if service is not None and str(service.device).startswith("cuda"):
            import torch

            del service
            torch.cuda.empty_cache()
