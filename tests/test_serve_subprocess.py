"""The real thing: `avatargen serve --tiny --port 0` in a subprocess on 127.0.0.1, spoken to with httpx."""

# ruff: noqa: F811  (pytest fixtures imported from serve_fixtures are shadowed by parameters)
from __future__ import annotations

import io
import json
import signal

import httpx
import pytest
from PIL import Image

from serve_fixtures import request_body, tiny_home, tiny_models, tiny_server, wait_until_ready  # noqa: F401


@pytest.mark.slow
def test_served_over_http_503_while_loading_then_png(tiny_server):
    first = json.loads(tiny_server.first_line)
    assert first == {
        "url": tiny_server.url,
        "model": "avatar-generator:controlnet-openpose-sd15",
        "tiny": True,
    }
    assert tiny_server.url.startswith("http://127.0.0.1:")

    with httpx.Client(timeout=60) as client:
        loading = client.post(tiny_server.url, json=request_body(), headers={"Accept": "image/png"})
        assert loading.status_code == 503
        body = loading.json()
        assert "is currently loading" in body["error"] and body["estimated_time"] > 0
        assert client.get(tiny_server.url + "health").status_code == 503

        refused = client.post(tiny_server.url, json={"inputs": {"prompt": "p", "image": "%%%"}})
        assert refused.status_code == 400 and "base64" in refused.json()["error"]

        wait_until_ready(tiny_server.url)
        answer = client.post(tiny_server.url, json=request_body(width=64, height=64, seed=3))
        assert answer.status_code == 200 and answer.headers["content-type"] == "image/png"
        assert Image.open(io.BytesIO(answer.content)).size == (64, 64)
        again = client.post(tiny_server.url + "predict", json=request_body(width=64, height=64, seed=3))
        assert again.content == answer.content  # same seed, same image
        assert client.get(tiny_server.url).text == "Ok"

    # SIGTERM: uvicorn shuts down gracefully, then re-raises the signal (exit by SIGTERM, as it should).
    assert tiny_server.stop() in (0, -signal.SIGTERM)
    stderr = tiny_server.stderr()
    assert "Finished server process" in stderr
    assert "noise" in stderr and "ready:" in stderr
    assert "Traceback" not in stderr
    assert "torchvision" not in stderr and "[transformers]" not in stderr  # third-party noise (issue 23)


@pytest.mark.slow
def test_weights_that_cannot_load_stop_the_server_with_exit_6(run_cli):
    # HF_HUB_OFFLINE=1 (conftest) and an empty HF_HOME: the Hub load fails without any network.
    done = run_cli("serve", "--model", "controlnet-openpose-sd15", "--port", "0", timeout=120)
    assert done.returncode == 6
    assert done.stdout == ""  # the missing weights are found before it listens: no URL to use
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("error: cannot load avatar-generator:controlnet-openpose-sd15")
    assert "lllyasviel/control_v11p_sd15_openpose" in last
    assert "--tiny" in last and "Traceback" not in done.stderr
