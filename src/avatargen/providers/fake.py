"""FakeBackend: an in-process backend for tests and for trying the engine without a model, as
httpx ships MockTransport. It answers each request with a small PNG drawn from the request
itself (the pose image, tinted by the seed), so a test can tell jobs apart, and it can be told
to fail: a script of outcomes, consumed one per call.

    fake = FakeBackend(script=["ok", ProviderError("boom", status_code=500), "ok"])
    run(plan, config, catalog, hooks, provider_factory=fake.factory)
"""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Iterable
from typing import Any

from avatargen.providers.base import GenerationRequest, GenerationResult, StatusReport

OK = "ok"


class FakeBackend:
    name = "fake"

    def __init__(self, script: Iterable[Any] = (), delay_s: float = 0.0, state: str = "ready") -> None:
        self._script = list(script)
        self.delay_s = delay_s
        self.state = state
        self.requests: list[GenerationRequest] = []
        self.attempts = 0
        self.closed = False
        self._lock = threading.Lock()

    def factory(self, model, **_options: Any) -> FakeBackend:
        """A provider factory (the shape of select.make_provider): every model gets this fake."""
        return self

    def generate(
        self, request: GenerationRequest, on_event=None, gate=None, on_attempt=None
    ) -> GenerationResult:
        if on_attempt is not None:
            on_attempt()
        with self._lock:
            self.attempts += 1
            self.requests.append(request)
            outcome = self._script.pop(0) if self._script else OK
        if self.delay_s:
            time.sleep(self.delay_s)
        if isinstance(outcome, BaseException):
            raise outcome
        if callable(outcome):
            outcome = outcome(request)
            if isinstance(outcome, GenerationResult):
                return outcome
        started = time.monotonic()
        image = draw(request)
        return GenerationResult(
            image=image,
            content_type="image/png",
            seconds=time.monotonic() - started,
            attempts=1,
            backend=self.name,
            model_key=request.model.key,
        )

    def status(self) -> StatusReport:
        return StatusReport(self.name, None, self.state, "in-process fake")

    def close(self) -> None:
        self.closed = True


def draw(request: GenerationRequest) -> bytes:
    """The pose image (or a grey canvas) at the request's size, tinted by its seed: different
    poses and seeds give different pixels, the same request the same ones."""
    from PIL import Image

    if request.pose_png:
        base = Image.open(io.BytesIO(request.pose_png)).convert("RGB").resize((request.width, request.height))
    else:
        base = Image.new("RGB", (request.width, request.height), (128, 128, 128))
    seed = request.seed
    tint = Image.new("RGB", base.size, (seed % 256, (seed // 256) % 256, (seed // 65536) % 256))
    out = io.BytesIO()
    Image.blend(base, tint, 0.25).save(out, format="PNG")
    return out.getvalue()
