"""huggingface_hub's InferenceClient against a real `avatargen serve --tiny` on 127.0.0.1 (issue
"Everyday use", item 11): the bodies it really sends, not our idea of them.

- text_to_image(prompt, extra_body={"image": pose}) sends {"inputs": prompt, "parameters": {...}};
- image_to_image(photo, prompt=..., control_image=pose) sends {"inputs": <base64 photo>,
  "parameters": {"prompt": ..., "control_image": ..., "target_size": {...}}}; with no parameters
  at all it posts the bare file.
Each must give exactly the image our own request shape gives for the same values.
"""

# ruff: noqa: F811  (pytest fixtures imported from serve_fixtures are shadowed by parameters)
from __future__ import annotations

import base64
import io

import httpx
import pytest
from PIL import Image

from helpers.images import image_bytes
from serve_fixtures import pose_png, start_tiny_server, tiny_home, tiny_models, wait_until_ready  # noqa: F401


def _photo(color: str) -> bytes:
    return image_bytes((64, 64), color, "JPEG")


def _ours(url: str, **inputs) -> Image.Image:
    """The same values in avatargen's own shape, sent with Content-Type carrying a charset."""
    import json

    body = json.dumps({"inputs": inputs}).encode("utf-8")
    response = httpx.post(
        url, content=body, headers={"content-type": "application/json; charset=utf-8"}, timeout=120
    )
    assert response.status_code == 200, response.text
    return Image.open(io.BytesIO(response.content)).convert("RGB")


@pytest.mark.slow
def test_inference_client_text_to_image_and_image_to_image(tmp_path, tiny_home, monkeypatch):
    import huggingface_hub.constants
    from huggingface_hub import InferenceClient
    from huggingface_hub.errors import HfHubHTTPError
    from huggingface_hub.inference._generated.types import ImageToImageTargetSize

    # conftest sets HF_HUB_OFFLINE, which blocks every request InferenceClient makes; the only host
    # contacted here is the loopback server (a URL as model skips the Hub's model lookup).
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    server = start_tiny_server(tmp_path, min_load_s=3)
    try:
        client = InferenceClient(model=server.url, timeout=120)
        pose = base64.b64encode(pose_png(64, 64)).decode("ascii")
        common = {"num_inference_steps": 2, "seed": 3}

        # While the model loads the server answers 503 with estimated_time: InferenceClient raises
        # at once, it neither waits nor retries (avatargen's own client does).
        with pytest.raises(HfHubHTTPError) as caught:
            client.text_to_image("a portrait", width=64, height=64, extra_body={"image": pose}, **common)
        assert caught.value.response.status_code == 503
        assert "estimated_time" in caught.value.response.json()
        wait_until_ready(server.url)

        text = client.text_to_image("a portrait", width=64, height=64, extra_body={"image": pose}, **common)
        assert text.size == (64, 64)
        assert (
            text.tobytes()
            == _ours(server.url, prompt="a portrait", image=pose, width=64, height=64, **common).tobytes()
        )

        def edit(photo: bytes) -> Image.Image:
            return client.image_to_image(
                photo,
                prompt="a portrait",
                target_size=ImageToImageTargetSize(width=64, height=64),
                control_image=pose,
                strength=0.6,
                **common,
            )

        red = edit(_photo("red"))
        assert red.size == (64, 64)
        ours = _ours(
            server.url,
            prompt="a portrait",
            image=pose,
            init_image=base64.b64encode(_photo("red")).decode("ascii"),
            strength=0.6,
            width=64,
            height=64,
            **common,
        )
        assert red.tobytes() == ours.tobytes()  # the photo was the init image, the prompt the prompt
        assert edit(_photo("blue")).tobytes() != red.tobytes()

        # image_to_image with nothing but the photo posts the bare file: a 400 that says what to send.
        with pytest.raises(HfHubHTTPError) as caught:
            client.image_to_image(_photo("red"))
        assert caught.value.response.status_code == 400
        assert "control_image" in caught.value.response.json()["error"]
    finally:
        server.stop()
