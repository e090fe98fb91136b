"""`avatargen serve`'s app in-process (Starlette TestClient): loading, refusals, queue, token, health."""

# ruff: noqa: F811  (pytest fixtures imported from serve_fixtures are shadowed by parameters)
from __future__ import annotations

import json
import threading

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from avatargen.serve import server as server_mod
from avatargen.serve.pipelines import ControlNetService, ModelSpec, RequestError, spec_for_folder
from avatargen.serve.server import ModelHost, create_app
from avatargen.serve.tiny import TINY_VERSION
from helpers.clock import FakeClock
from serve_fixtures import pose_png, request_body, tiny_home, tiny_models  # noqa: F401 - fixtures
from serve_hostile_bodies import b64, huge_png

SPEC = ModelSpec(
    key="tiny-key", architecture="sd15", controlnet="c", base_model="b", width=64, height=64, steps=2
)


class BlockingService:
    """A stand-in model: generate waits until released, so requests pile up on purpose."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        self.calls = 0

    def generate(self, params):
        from PIL import Image

        self.calls += 1
        self.entered.set()
        assert self.release.wait(10)
        return Image.new("RGB", (params.width, params.height), "white")


def _host(loader, clock=None, **kw) -> ModelHost:
    return ModelHost(SPEC, loader, expected_load_s=30, clock=clock or FakeClock(), **kw)


def _ready_host(service) -> ModelHost:
    host = _host(lambda: service)
    host.start().join(5)
    assert host.state == "ready"
    return host


def test_503_with_estimated_time_while_loading_then_ok():
    gate = threading.Event()
    clock = FakeClock()
    service = BlockingService()
    service.release.set()
    host = _host(lambda: (gate.wait(10), service)[1], clock=clock)
    thread = host.start()
    client = TestClient(create_app(host))
    clock.now += 12
    for response in (client.get("/health"), client.get("/"), client.post("/", json=request_body())):
        assert response.status_code == 503
        assert response.json() == {"error": "Model tiny-key is currently loading", "estimated_time": 18.0}
        assert response.headers["retry-after"] == "18"
    clock.now += 100  # past the expected load time: a short, positive guess, never 0
    assert client.get("/health").json()["estimated_time"] == 5.0
    gate.set()
    thread.join(5)
    assert client.get("/health").text == "Ok"
    response = client.post("/", json=request_body())
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    assert response.content.startswith(b"\x89PNG")
    assert client.post("/predict", json=request_body()).status_code == 200


def test_bad_requests_are_refused_even_while_loading():
    host = _host(lambda: threading.Event().wait(10))
    host.start()
    client = TestClient(create_app(host))
    response = client.post("/", json={"inputs": {"image": "x"}})
    assert response.status_code == 422 and "'prompt'" in response.json()["error"]


BAD = [
    ("not JSON", b"{nope", 400, "not valid JSON"),
    ("no inputs", {"prompt": "p"}, 400, "no 'inputs'"),
    ("bad base64", {"inputs": {"prompt": "p", "image": "***"}}, 400, "base64"),
    ("not an image", {"inputs": {"prompt": "p", "image": "aGVsbG8="}}, 400, "readable image"),
    ("no prompt", request_body(prompt=""), 422, "'prompt'"),
    ("width out of range", request_body(width=8192), 422, "'width'"),
    ("height not /8", request_body(height=70), 422, "multiple of 8"),
    ("steps out of range", request_body(num_inference_steps=500), 422, "num_inference_steps"),
    ("no image", {"inputs": {"prompt": "p"}}, 422, "'image'"),
]


@pytest.mark.parametrize(("body", "status", "words"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_each_bad_request_gets_its_status_and_an_error(body, status, words):
    service = BlockingService()
    service.release.set()
    client = TestClient(create_app(_ready_host(service)))
    if isinstance(body, bytes):
        response = client.post("/", content=body, headers={"content-type": "application/json"})
    else:
        response = client.post("/", json=body)
    assert response.status_code == status
    assert words in response.json()["error"]
    assert service.calls == 0  # nothing reached the model


def test_body_over_the_limit_is_413(monkeypatch):
    monkeypatch.setattr(server_mod, "MAX_BODY_BYTES", 200)
    client = TestClient(create_app(_ready_host(BlockingService())))
    response = client.post("/", json=request_body())
    assert response.status_code == 413 and "error" in response.json()


def test_429_with_retry_after_when_the_queue_is_full():
    service = BlockingService()
    host = _ready_host(service)
    host.seconds_per_image = 3.2
    results: list[int] = []
    with TestClient(create_app(host, queue_size=1)) as client:
        worker = threading.Thread(
            target=lambda: results.append(client.post("/", json=request_body()).status_code)
        )
        worker.start()
        assert service.entered.wait(10)  # the first request holds the only place
        busy = client.post("/", json=request_body())
        assert busy.status_code == 429
        assert busy.headers["retry-after"] == "4"  # one image ahead, 3.2 s each, rounded up
        assert "busy" in busy.json()["error"]
        service.release.set()
        worker.join(10)
        assert results == [200]
        assert client.post("/", json=request_body()).status_code == 200  # the place is free again
    assert service.calls == 2


def test_429_comes_before_the_body_is_read_or_parsed():
    service = BlockingService()
    host = _ready_host(service)
    with TestClient(create_app(host, queue_size=1)) as client:
        worker = threading.Thread(target=lambda: client.post("/", json=request_body()))
        worker.start()
        assert service.entered.wait(10)
        # Not even JSON: a full server answers 429 without looking at the body (once it had room,
        # this would be a 400).
        busy = client.post("/", content=b"{nope", headers={"content-type": "application/json"})
        assert busy.status_code == 429 and "busy" in busy.json()["error"]
        service.release.set()
        worker.join(10)
        assert client.post("/", content=b"{nope").status_code == 400


def _hostile_client():
    service = BlockingService()
    service.release.set()
    # raise_server_exceptions=False: an unhandled error shows as the 500 a real client would get.
    return TestClient(create_app(_ready_host(service)), raise_server_exceptions=False), service


HOSTILE_JSON = [
    ("NaN", b'{"inputs": {"prompt": "p", "seed": NaN}}', "NaN"),
    ("Infinity", b'{"inputs": {"prompt": "p", "guidance_scale": -Infinity}}', "Infinity"),
    ("1e309", b'{"inputs": {"prompt": "p", "seed": 1e309}}', "too large"),
    ("a 5000-digit number", b'{"inputs": {"prompt": "p", "seed": ' + b"9" * 5000 + b"}}", "not valid JSON"),
    ("deep nesting", b'{"inputs": ' + b"[" * 20_000 + b"]" * 20_000 + b"}", "JSON objects, arrays or commas"),
    ("deep but narrow", b'{"inputs": ' + b"[" * 3000 + b"]" * 3000 + b"}", "nested too deeply"),
    ("a million objects", b'{"inputs": [' + b",".join([b"{}"] * 1_000_000) + b"]}", "JSON objects"),
    ("not UTF-8", b'{"inputs": "\xff\xfe"}', "not valid JSON"),
    ("a bare PNG (image_to_image without parameters)", pose_png(), "bare image"),
]


@pytest.mark.parametrize(("body", "words"), [b[1:] for b in HOSTILE_JSON], ids=[b[0] for b in HOSTILE_JSON])
def test_hostile_json_is_a_400_json_error_never_a_500(body, words):
    client, service = _hostile_client()
    response = client.post("/", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/json"
    assert words in response.json()["error"]
    assert service.calls == 0


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
_FIELDS = st.fixed_dictionaries(
    {},
    optional={
        name: _JSON
        for name in ("prompt", "image", "control_image", "init_image", "width", "height", "seed", "strength")
    },
)


@pytest.mark.slow
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    body=st.binary(max_size=200)
    | _JSON.map(lambda v: json.dumps(v).encode())
    | st.builds(
        lambda i, p: json.dumps({"inputs": i, "parameters": p}).encode(), _JSON | _FIELDS, _JSON | _FIELDS
    )
)
def test_any_body_is_params_or_a_request_error(body):
    """Whatever arrives, read_request gives Params or a RequestError (a JSON 400/422): nothing else."""
    try:
        server_mod.read_request(body, SPEC)
    except RequestError as exc:
        assert exc.status in (400, 422) and str(exc)


@pytest.mark.slow
def test_hostile_images_and_prompts_are_refused_before_decoding():
    client, service = _hostile_client()
    bomb = b64(huge_png())  # 23 KB on the wire, 432 MB decoded
    for body, words in (
        ({"inputs": {"prompt": "p", "image": bomb}}, "12000x12000 pixels"),
        (request_body(init_image=bomb), "12000x12000 pixels"),
        (request_body(prompt="a" * 2001), "'prompt' is 2,001 characters"),
    ):
        response = client.post("/", json=body)
        assert response.status_code == 422 and words in response.json()["error"]
    assert service.calls == 0


def test_json_with_a_charset_and_chunked_bodies(monkeypatch):
    client, service = _hostile_client()
    body = json.dumps(request_body()).encode()
    ok = client.post("/", content=body, headers={"content-type": "application/json; charset=utf-8"})
    assert ok.status_code == 200 and ok.headers["content-type"] == "image/png"
    # A chunked body has no Content-Length: the limit is checked as it streams in.
    monkeypatch.setattr(server_mod, "MAX_BODY_BYTES", 200)
    chunked = client.post("/", content=iter([body[:150], body[150:]]))
    assert chunked.status_code == 413 and "error" in chunked.json()
    assert service.calls == 1


def test_bearer_token_is_required_on_generation():
    service = BlockingService()
    service.release.set()
    client = TestClient(create_app(_ready_host(service), token="s3cret-token"))
    missing = client.post("/", json=request_body())
    wrong = client.post("/", json=request_body(), headers={"Authorization": "Bearer s3cret-tokeX"})
    basic = client.post("/", json=request_body(), headers={"Authorization": "Basic s3cret-token"})
    for response in (missing, wrong, basic):
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"
        assert "s3cret" not in response.text
    right = client.post("/", json=request_body(), headers={"Authorization": "Bearer s3cret-token"})
    assert right.status_code == 200
    assert client.get("/health").status_code == 200  # health stays open for load balancers
    assert service.calls == 1


def test_a_failed_load_is_500_with_the_reason():
    def boom():
        raise OSError("no such repo")

    seen = []
    host = _host(boom, on_failed=seen.append)
    host.start().join(5)
    client = TestClient(create_app(host))
    assert host.state == "failed" and isinstance(seen[0], OSError)
    for response in (client.get("/health"), client.post("/", json=request_body())):
        assert response.status_code == 500
        assert response.json()["error"] == "Model tiny-key failed to load: no such repo"


def test_generation_failure_is_500_and_the_server_goes_on():
    class Flaky:
        calls = 0

        def generate(self, params):
            Flaky.calls += 1
            if Flaky.calls == 1:
                raise RuntimeError("CUDA out of memory\nmore")
            from PIL import Image

            return Image.new("RGB", (64, 64))

    client = TestClient(create_app(_ready_host(Flaky())))
    first = client.post("/", json=request_body())
    assert first.status_code == 500 and first.json() == {"error": "generation failed: CUDA out of memory"}
    assert client.post("/", json=request_body()).status_code == 200


@pytest.mark.slow
def test_real_tiny_pipeline_behind_the_app(tiny_models):
    folder = tiny_models / f"sdxl-controlnet-v{TINY_VERSION}"
    spec = spec_for_folder(folder)

    def load():
        service = ControlNetService(spec, source=folder)
        service.load()
        return service

    host = ModelHost(spec, load)
    host.start().join(60)
    client = TestClient(create_app(host))
    response = client.post("/", json=request_body(width=64, height=80, seed=1))
    assert response.status_code == 200
    from io import BytesIO

    from PIL import Image

    assert Image.open(BytesIO(response.content)).size == (64, 80)
    assert response.content == client.post("/", json=request_body(width=64, height=80, seed=1)).content


# ---------------------------------------------------------------- the command's refusals
# The in-process runner lets AvatargenError through; main() turns it into the exit code.
def _refusal(cli, *args):
    from avatargen.errors import AvatargenError

    with pytest.raises(AvatargenError) as caught:
        cli("serve", *args)
    return caught.value


@pytest.mark.slow
def test_serve_refuses_bad_combinations_before_listening(cli, tmp_path):
    assert _refusal(cli, "--tiny", "--model-dir", str(tmp_path), "--port", "0").exit_code == 2
    sd35 = _refusal(cli, "--model", "sd35-controlnet-canny", "--tiny", "--port", "0")
    assert sd35.exit_code == 6 and "sd35" in sd35.message
    not_a_pipeline = _refusal(cli, "--model-dir", str(tmp_path), "--port", "0")
    # exit 6 (a load error, which stops a batch), as the local backend answers the same folder
    assert not_a_pipeline.exit_code == 6 and "model_index.json" in not_a_pipeline.message


def test_missing_serve_extra_is_exit_11(cli, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "uvicorn" else real(name, *a)
    )
    error = _refusal(cli, "--tiny")
    assert error.exit_code == 11
    assert "avatargen[serve]" in error.one_line()
