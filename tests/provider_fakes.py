"""Fakes shared by the provider tests: a clock that only moves when slept on, a gate that waits on
that clock instead of real time, a spy gate, a small PNG, and a ready-made request."""

from __future__ import annotations

import random
import threading

from avatargen.catalog import load_catalog
from avatargen.providers.base import GenerationRequest
from avatargen.providers.gate import ModelGate
from avatargen.providers.retry import RetryPolicy
from helpers import images
from helpers.clock import FakeClock

HF_ENDPOINT = "https://abc123.us-east-1.aws.endpoints.huggingface.cloud"
TOKEN = "hf_SecretTokenValue0123456789abcdef"


class _FakeCondition:
    """Stands in for the gate's threading.Condition: a wait advances the fake clock instead."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.lock = threading.RLock()
        self.waited = 0.0

    def __enter__(self):
        self.lock.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.lock.release()

    def wait(self, timeout: float | None = None) -> bool:
        step = timeout if timeout is not None else 1.0
        self.clock.now += step
        self.waited += step
        return False

    def notify_all(self) -> None:
        pass


class SpyGate(ModelGate):
    """A real ModelGate on the fake clock, recording every call the retry policy makes."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__(clock=clock)
        self._cond = _FakeCondition(clock)  # type: ignore[assignment]
        self.calls: list[tuple] = []

    @property
    def waited(self) -> float:
        return self._cond.waited  # type: ignore[attr-defined]

    def acquire(self, deadline=None):
        self.calls.append(("acquire",))
        return super().acquire(deadline)

    def mark_loading(self, seconds):
        self.calls.append(("mark_loading", seconds))
        return super().mark_loading(seconds)

    def mark_rate_limited(self, seconds):
        self.calls.append(("mark_rate_limited", seconds))
        return super().mark_rate_limited(seconds)

    def mark_ready(self):
        self.calls.append(("mark_ready",))
        return super().mark_ready()

    def release(self):
        self.calls.append(("release",))
        return super().release()

    def names(self) -> list[str]:
        return [c[0] for c in self.calls]


def policy(clock: FakeClock, wait_timeout: float = 600.0, **kw) -> RetryPolicy:
    return RetryPolicy(
        wait_timeout=wait_timeout, sleep=clock.sleep, clock=clock, rng=random.Random(7), scale=1.0, **kw
    )


def png(size: tuple[int, int] = (8, 8), colour=(200, 10, 10)) -> bytes:
    return images.png(size, colour)


def model(name: str = "controlnet-openpose-sd15"):
    return load_catalog().lookup(name)


def request(
    m=None, *, init: bool = False, description: str = "waving with the right hand"
) -> GenerationRequest:
    m = m or model()
    width, height = m.size
    return GenerationRequest(
        model=m,
        prompt="professional portrait",
        negative_prompt="blurry",
        width=width,
        height=height,
        steps=30,
        guidance_scale=7.5,
        controlnet_conditioning_scale=0.9,
        seed=1234,
        pose_png=png((16, 16), (0, 0, 255)),
        pose_description=description,
        init_image_png=png((16, 16), (0, 255, 0)) if init else None,
        strength=0.6 if init else None,
    )
