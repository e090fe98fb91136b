"""Issue 23 item 11: `--tiny` images differ visibly by pose.

The tiny ControlNet kept diffusers' zero convolutions and a pose encoder whose biases drowned
the skeleton, so every pose gave a pixel-identical image and the tiny path could not show that
the pose reaches the model. Now two templates give clearly different images, same seed, through
the real local backend (both architectures).
"""

# ruff: noqa: F811  (pytest fixtures imported from serve_fixtures are shadowed by parameters)
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from avatargen.catalog import load_catalog
from avatargen.poses.render import render_pose
from avatargen.poses.templates import get_template
from avatargen.providers.base import GenerationRequest
from avatargen.providers.local import LocalProvider
from serve_fixtures import fresh_local_backend, tiny_home, tiny_models  # noqa: F401 - fixtures

pytestmark = pytest.mark.usefixtures("fresh_local_backend")


def skeleton(name: str, size: int) -> bytes:
    buffer = io.BytesIO()
    render_pose(get_template(name).pose, size, size).save(buffer, format="PNG")
    return buffer.getvalue()


def generate(provider, pose_png: bytes, size: int) -> np.ndarray:
    request = GenerationRequest(
        model=provider.model,
        prompt="a portrait",
        negative_prompt="",
        width=size,
        height=size,
        steps=2,
        guidance_scale=5.0,
        controlnet_conditioning_scale=1.0,
        seed=3,
        pose_png=pose_png,
    )
    result = provider.generate(request)
    return np.asarray(Image.open(io.BytesIO(result.image)).convert("RGB"), dtype=np.float64)


@pytest.mark.parametrize("alias", ["controlnet-openpose-sd15", "controlnet-openpose-sdxl"])
def test_tiny_images_differ_visibly_by_pose(tiny_home, alias):
    size = 64
    provider = LocalProvider(load_catalog().lookup(alias), tiny=True, say=lambda _m: None)
    wave, sitting = (generate(provider, skeleton(name, size), size) for name in ("wave", "sitting"))
    again = generate(provider, skeleton("wave", size), size)
    assert np.array_equal(wave, again)  # same pose, same seed: the same image
    diff = np.abs(wave - sitting)
    assert diff.mean() > 2.0, diff.mean()  # out of 255, not rounding noise (measured: 6.1, 10.8)
    assert diff.max() > 32, diff.max()  # and clearly so in places (measured: 68 sd15, 105 sdxl)
