"""Issue 23 (4): an endpoint that does not run avatargen's handler is recognised.

The serving toolkit's default diffusers handler answers /health 200 like ours, then refuses every
request with an opaque 400. `status` now says `foreign-handler` with what to deploy; a batch checks
it before anything is sent and counts its jobs as never-succeeding (no `retry` advice, and
`retry` does not re-send them). Our side answers the handshake: `serve` (its header, and the
POST), and the bundle's handler (a dict the toolkit returns as JSON)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from fake_endpoint import FakeEndpoint

MODEL = "controlnet-openpose-sd15"


def _photos(folder: Path, count: int) -> list[Path]:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        Image.new("RGB", (64, 64), (30 * i, 90, 160)).save(folder / f"p{i}.png")
        paths.append(folder / f"p{i}.png")
    return paths


@pytest.fixture
def toolkit_default():
    with FakeEndpoint(handler="toolkit-default") as endpoint:
        yield endpoint


def test_status_says_foreign_handler_and_what_to_deploy(run_cli, toolkit_default):
    result = run_cli("status", MODEL, "--endpoint", toolkit_default.url, "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["state"] == "foreign-handler"
    assert "does not run avatargen's handler" in report["detail"] and "HTTP 400" in report["detail"]
    assert f"avatargen endpoint deploy {MODEL}" in report["hint"] and "endpoint bundle" in report["hint"]
    text = run_cli("status", MODEL, "--endpoint", toolkit_default.url).stdout
    assert "state     foreign-handler" in text and "avatargen endpoint deploy" in text


def test_status_of_our_handler_stays_ready(run_cli):
    with FakeEndpoint(handler="avatargen-no-faces") as endpoint:  # no header: asked by the handshake
        report = json.loads(run_cli("status", MODEL, "--endpoint", endpoint.url, "--json").stdout)
        assert endpoint.hellos == 1 and endpoint.posts == 0
    assert report["state"] == "ready" and report["handler"]["ours"] is True


def test_a_batch_sends_nothing_to_a_foreign_handler_and_never_retries(run_cli, toolkit_default, tmp_path):
    _photos(tmp_path / "in", 3)
    result = run_cli(
        "generate", str(tmp_path / "in"), "--endpoint", toolkit_default.url, "--model", MODEL,
        "-o", str(tmp_path / "out"), "--yes", "--json",
    )  # fmt: skip
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    assert [line["status"] for line in lines] == ["failed"] * 3
    assert all("does not run avatargen's handler" in line["error"] for line in lines)
    assert all(f"avatargen endpoint deploy {MODEL}" in line["error"] for line in lines)
    assert toolkit_default.posts == 0  # only the handshake reached it: nothing generated, nothing billed
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "avatargen retry" not in result.stderr  # it can never succeed there
    assert "is foreign-handler" in result.stderr  # said once by the pre-flight, before any job
    credits = json.loads(run_cli("credits", "--json").stdout)
    assert credits["reserved"] == 0
    retry = run_cli("retry", "--endpoint", toolkit_default.url, "--yes", "--json")  # the last batch
    assert toolkit_default.posts == 0, retry.stderr
    assert "can never succeed" in retry.stdout + retry.stderr


def test_a_refusal_at_a_handler_first_seen_loading_is_told_foreign(tmp_path):
    """The pre-flight met a loading endpoint (no handshake then): the first 400 asks the handler."""
    from avatargen.catalog import load_catalog
    from avatargen.errors import ProviderError
    from avatargen.providers.base import GenerationRequest
    from avatargen.providers.endpoint import EndpointProvider

    model = load_catalog().by_key[f"avatar-generator:{MODEL}"]
    with FakeEndpoint(handler="toolkit-default") as endpoint:
        provider = EndpointProvider(model, endpoint.url)
        request = GenerationRequest(model, "p", "", 64, 64, 2, 7.5, 1.0, 1, pose_png=b"\x89PNG-pose")
        with pytest.raises(ProviderError) as caught:
            provider.generate(request)
        provider.close()
    assert "does not run avatargen's handler" in caught.value.message
    assert caught.value.status_code == 400  # never succeeds
    assert "avatargen endpoint deploy" in caught.value.message


def test_serve_answers_the_handshake_and_sends_its_header():
    import threading

    from avatargen.serve.pipelines import ModelSpec
    from avatargen.serve.server import ModelHost, create_app

    spec = ModelSpec(key="k", architecture="sd15", controlnet="c", base_model="b", width=64, height=64)
    gate = threading.Event()
    host = ModelHost(spec, lambda: gate.wait(10), expected_load_s=30)
    host.start()
    client = TestClient(create_app(host))
    health = client.get("/health")  # still loading: 503, but already ours
    assert health.status_code == 503 and health.headers["x-avatargen-handler"] == "1"
    hello = client.post("/", json={"inputs": {"avatargen": "handler"}})
    assert hello.status_code == 200 and hello.headers["x-avatargen-handler"] == "1"
    answer = hello.json()["avatargen"]
    assert answer["handler"] == 1 and answer["model"] == "k" and "face-crop" in answer["features"]
    gate.set()


def test_the_bundled_handler_answers_the_handshake_as_a_dict(tmp_path):
    """The standalone handler.py (what the toolkit imports) returns the hello as a dict, which the
    toolkit serialises as JSON; EndpointHandler is built without loading a pipeline here."""
    import importlib.util
    import sys

    from avatargen.serve.bundle import standalone_handler_source

    path = tmp_path / "handler.py"
    path.write_text(standalone_handler_source())
    module_spec = importlib.util.spec_from_file_location("handler_23", path)
    module = importlib.util.module_from_spec(module_spec)
    sys.modules["handler_23"] = module
    try:
        module_spec.loader.exec_module(module)
        handler = object.__new__(module.EndpointHandler)
        handler.spec = module.ModelSpec(key="k", architecture="sd15", controlnet="c", base_model="b")
        answer = handler({"inputs": {"avatargen": "handler"}})
    finally:
        sys.modules.pop("handler_23", None)
    assert answer["avatargen"]["handler"] == 1 and answer["avatargen"]["model"] == "k"
    json.dumps(answer)  # JSON all through


def test_client_mirrors_agree_with_the_server_constants():
    from avatargen.providers import handler_check
    from avatargen.serve import pipelines

    assert handler_check.HANDLER_HEADER == pipelines.HANDLER_HEADER
    assert handler_check.HELLO == {"inputs": {pipelines.HANDLER_HELLO_KEY: "handler"}}
