"""local: the catalog model in this process, through the same pipeline module as `avatargen serve`.

The request goes through `pipelines.parse_request` exactly as the server reads it off the wire,
so the local backend and an endpoint cannot drift apart. Weights load on first use, once per
process and model: from the Hugging Face Hub (huggingface_hub's progress bars on a terminal,
cached in HF_HOME), from `model_dir`, or the tiny random-weight model (`tiny`, for tests and
trying things out). A load that fails raises ModelLoadError (which stops a batch) and is
remembered, so no later job waits for it again; an unreachable Hub is found out in a second by
resolve.hub_preflight instead of after huggingface_hub's retries. Loading and every image run on
the process's one pipeline thread (serve/runner.py), whatever batch worker asks: one OpenMP team,
not one per worker fighting over the cores.
Environment defaults, for the CLI and CI: AVATARGEN_LOCAL_MODEL_DIR, AVATARGEN_LOCAL_TINY=1.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from avatargen.errors import InputError, ModelLoadError, ProviderError, RunStopped
from avatargen.providers.base import EventSink, GenerationRequest, GenerationResult, StatusReport, WaitEvent
from avatargen.providers.local_status import MODEL_DIR_ENV, TINY_ENV
from avatargen.serve.resolve import require_serve_extra

if TYPE_CHECKING:
    from avatargen.catalog import Model
    from avatargen.providers.gate import ModelGate

# Rough seconds to load a model from the local cache, shown while the progress display waits.
_EXPECTED_LOAD_S = {"cuda": 60.0, "cpu": 120.0}
# Rough download sizes in GB: fp16 files on a GPU, full fp32 ones elsewhere (ControlNet + base).
_DOWNLOAD_GB = {("sd15", True): 3, ("sd15", False): 6, ("sdxl", True): 10, ("sdxl", False): 19}
# The identity adapter on top (h94/IP-Adapter, fp32 files either way): its ViT-H image encoder
# (~2.5 GB) plus the plus-face weights (~0.1 GB for SD 1.5, ~0.85 GB for SDXL).
_ADAPTER_GB = {"sd15": 2.6, "sdxl": 3.4}

# How long close() waits for the pipeline thread to reach the end of a step (a loading model
# cannot be interrupted: past this the process exits anyway).
_STOP_WAIT_S = 60.0

_announced: set[str] = set()  # "where it runs" is said once per process and model
_announce_lock = threading.Lock()
# One load per process and model: the loaded service, or the ModelLoadError it failed with (so a
# batch's next job, or a fallback's provider, does not try again for minutes).
_loaded: dict[tuple[str, bool, str, str], Any] = {}
_loaded_lock = threading.Lock()


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
        self._key = (model.key, self.tiny, str(self.model_dir or ""), device or "")

    # ------------------------------------------------------------ loading
    def _device(self) -> str:
        from avatargen.serve.pipelines import pick_device

        return pick_device(self.requested_device)

    def _announce(self, device: str, request: GenerationRequest | None = None, cached: bool = False) -> None:
        """Two facts, once per process and model: where the weights come from, and the device."""
        key = f"{self.model.key}|{self.tiny}|{self.model_dir}"
        with _announce_lock:
            if key in _announced:
                return
            _announced.add(key)
        if self._say is None:
            from avatargen.output import info as say
        else:
            say = self._say
        say(f"weights: {self._weights_fact(device, cached)}")
        say(f"device: {self._device_fact(device, request)}")

    def _weights_fact(self, device: str, cached: bool) -> str:
        if self.tiny:
            return (
                f"a tiny random-weight model of the {self.model.architecture} architecture, built here "
                "without downloads (its images are noise)"
            )
        if self.model_dir:
            return f"{self.model_dir} (a saved pipeline)"
        names = (
            f"{self.model.base_model.rsplit('/', 1)[-1]} + {self.model.huggingface_model.rsplit('/', 1)[-1]}"
        )
        size = _DOWNLOAD_GB.get((self.model.architecture, device.startswith("cuda")))
        adapter_gb = _ADAPTER_GB.get(self.model.architecture) if self.model.identity_adapter else None
        if self.model.identity_adapter is not None:
            names += " + IP-Adapter Plus Face"
        if cached:  # hub_preflight: every repo asked for (the identity adapter's too) is there
            return f"{names} from the Hugging Face Hub, already in the download cache (HF_HOME)"
        if size and adapter_gb:  # the identity adapter's image encoder and weights on top
            size = round(size + adapter_gb)
        about = f"~{size} GB, " if size else ""
        return f"{names} from the Hugging Face Hub ({about}cached in HF_HOME after the first run)"

    def _device_fact(self, device: str, request: GenerationRequest | None) -> str:
        width, height = (request.width, request.height) if request else self.model.size
        steps = request.steps if request and request.steps else self.model.steps
        if device == "cpu":
            if self.tiny:  # measured: 10-25 s of imports and loading before the first image
                return "CPU (tiny model: 10-30 s to start, then a second or two per image at --steps 2)"
            return (
                f"CPU — a minute or more to load the weights, then several minutes per image at "
                f"{width}x{height}, {steps} steps; a GPU takes seconds (or use --endpoint URL with "
                "`avatargen serve` on a GPU machine)"
            )
        if device.startswith("cuda"):
            import torch

            name = torch.cuda.get_device_name(device)
            return f"GPU ({name}) — up to a minute to load the weights, then seconds per image"
        return device

    def _ensure_loaded(self, on_event: EventSink | None, request: GenerationRequest | None = None) -> Any:
        if self._service is not None:
            return self._service
        with _loaded_lock:
            known = _loaded.get(self._key)
            if isinstance(known, ModelLoadError):  # failed before in this process: say so again, at once
                raise ModelLoadError(known.message, known.hint)
            if known is None:
                from avatargen.serve.runner import pipeline_runner

                # On the pipeline thread: building the tiny model and loading weights run torch
                # kernels, which would leave this worker thread an OpenMP team of its own.
                known = pipeline_runner().call(self._load, on_event, request)
                _loaded[self._key] = known
            self._service = known
            return known

    def _load(self, on_event: EventSink | None, request: GenerationRequest | None) -> Any:
        """The service for this model, loaded; a ModelLoadError is remembered, then raised."""
        from avatargen.quiet import quiet, quiet_pipelines
        from avatargen.serve.pipelines import ControlNetService, LoadError
        from avatargen.serve.resolve import failure_reason, hub_preflight, load_error, model_source
        from avatargen.serve.runner import openmp_waits_passively

        quiet()  # before torch, transformers and diffusers are imported
        openmp_waits_passively()
        try:  # first what fails fast (a folder, the Hub), before seconds of importing torch
            spec, source = model_source(self.model, model_dir=self.model_dir, tiny=self.tiny)
            cached = hub_preflight(spec, self.model) if source is None else False
        except ModelLoadError as exc:
            _loaded[self._key] = exc
            raise
        quiet(libraries=True)
        device = self._device()
        self._announce(device, request, cached)
        service = ControlNetService(spec, source=source, device=device)
        if on_event is not None:
            expected = 5.0 if self.tiny else _EXPECTED_LOAD_S.get(device, 120.0)
            on_event(WaitEvent("loading", expected, "loading the model weights", self.model.key))
        try:
            service.load()
        except ImportError as exc:
            from avatargen.errors import MissingExtra

            raise MissingExtra("serve", f"the local backend ({exc.name or 'a module'} is missing)") from None
        except Exception as exc:  # the Hub, the disk or the folder, told apart by load_error
            if not isinstance(exc, LoadError | OSError) and failure_reason(exc, self.model.key) is None:
                raise  # not a loading problem we know: a bug, with its traceback under AVATARGEN_DEBUG
            error = load_error(exc, self.model)
            _loaded[self._key] = error
            raise error from None
        quiet_pipelines(service.pipe)
        if source is None:  # Hub weights: which commits, for the PNG metadata
            from avatargen.weights import hub_revisions

            service.hub_revisions = hub_revisions(spec)
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
        from concurrent.futures import CancelledError

        from avatargen.serve.pipelines import GenerationStopped, RequestError, parse_request, png_bytes
        from avatargen.serve.runner import pipeline_runner

        if request.pose_png is None:
            raise InputError(f"no pose image for {self.model.key}", "the local backend needs a pose (--pose)")
        service = self._ensure_loaded(on_event, request)
        # Raw bytes: parse_request takes them as well as base64.
        inputs = request.wire_inputs(lambda data: data)
        try:
            params = parse_request({"inputs": inputs}, service.spec)
        except RequestError as exc:
            raise InputError(f"{self.model.key}: {exc}", "check the size, steps and pose image") from None
        if on_attempt is not None:
            on_attempt()  # the batch's "generating now" signal (and its stop check), once per image
        started = time.monotonic()
        runner = pipeline_runner()
        service.stop_check = runner.stop_requested
        try:
            image = runner.call(service.generate, params)
        except (GenerationStopped, CancelledError):  # the batch is stopping (close() below)
            raise RunStopped() from None
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
            sampler=getattr(service, "sampler", None),
            weights_revisions=getattr(service, "hub_revisions", None),
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
        """Stop any generation of this process's pipeline thread (queued images cancelled, the
        running one ended at its next step) and wait for it: the interpreter must not exit while
        torch runs there (exit 134 instead of 130 / 143). Then let go of the loaded weights (a
        failed load stays remembered for this process)."""
        service, self._service = self._service, None
        if service is None:
            return
        from avatargen.serve.runner import pipeline_runner

        runner = pipeline_runner()
        runner.interrupt()
        runner.wait_idle(_STOP_WAIT_S)
        with _loaded_lock:
            if _loaded.get(self._key) is service:
                del _loaded[self._key]
        if str(service.device).startswith("cuda"):
            import torch

            del service
            torch.cuda.empty_cache()
