"""hf-endpoint: the request on the wire, field by field; which host sees which token; the probe."""

from __future__ import annotations

import base64
import json

import httpx
import pytest

from avatargen.errors import InputError, ProviderError
from avatargen.providers.endpoint import SCALE_UP_HOLD_S, EndpointProvider
from avatargen.settings import Secret, TokenInfo
from provider_fakes import HF_ENDPOINT, TOKEN, FakeClock, model, png, policy, request

HF_TOKEN_INFO = TokenInfo(Secret(TOKEN), "HF_TOKEN")


def make(url=HF_ENDPOINT, token=HF_TOKEN_INFO, wait_timeout=600.0, clock=None):
    return EndpointProvider(model(), url, token=token, policy=policy(clock or FakeClock(), wait_timeout))


def test_request_body_and_headers_field_by_field(httpx_mock):
    image = png((32, 32))
    httpx_mock.add_response(
        url=HF_ENDPOINT, method="POST", content=image, headers={"content-type": "image/png"}
    )
    req = request()
    result = make().generate(req)
    sent = httpx_mock.get_request()
    body = json.loads(sent.content)
    assert list(body) == ["inputs"]
    inputs = body["inputs"]
    assert inputs["prompt"] == "professional portrait"
    assert inputs["negative_prompt"] == "blurry"
    assert base64.b64decode(inputs["image"]) == req.pose_png
    assert inputs["num_inference_steps"] == 30
    assert inputs["guidance_scale"] == 7.5
    assert inputs["controlnet_conditioning_scale"] == 0.9
    assert (inputs["width"], inputs["height"]) == (512, 512)
    assert inputs["seed"] == 1234
    assert "init_image" not in inputs and "strength" not in inputs
    assert sent.headers["accept"] == "image/png"
    assert sent.headers["authorization"] == f"Bearer {TOKEN}"
    assert sent.headers["x-scale-up-timeout"] == str(SCALE_UP_HOLD_S)
    assert sent.headers["content-type"] == "application/json"
    assert result.image == image and result.content_type == "image/png"
    assert result.attempts == 1 and result.backend == "hf-endpoint"
    assert result.model_key == "avatar-generator:controlnet-openpose-sd15"


def test_init_image_and_strength_are_sent_when_the_photo_guides(httpx_mock):
    httpx_mock.add_response(url=HF_ENDPOINT, method="POST", content=png())
    req = request(init=True)
    make().generate(req)
    inputs = json.loads(httpx_mock.get_request().content)["inputs"]
    assert base64.b64decode(inputs["init_image"]) == req.init_image_png
    assert inputs["strength"] == 0.6


def test_scale_up_header_never_exceeds_the_wait_timeout(httpx_mock):
    httpx_mock.add_response(url=HF_ENDPOINT, method="POST", content=png())
    make(wait_timeout=20).generate(request())
    assert httpx_mock.get_request().headers["x-scale-up-timeout"] == "20"


def test_no_token_no_authorization_header(httpx_mock):
    httpx_mock.add_response(url=HF_ENDPOINT, method="POST", content=png())
    make(token=TokenInfo(None, "none")).generate(request())
    assert "authorization" not in httpx_mock.get_request().headers


def test_hf_token_is_not_sent_to_a_foreign_host(httpx_mock):
    url = "http://gpu-box.lan:8000/"
    httpx_mock.add_response(url=url, method="POST", content=png())
    make(url=url).generate(request())
    assert "authorization" not in httpx_mock.get_request().headers


def test_hf_token_is_not_sent_over_plain_http_even_to_an_hf_host(httpx_mock):
    url = "http://abc.endpoints.huggingface.cloud/"
    httpx_mock.add_response(url=url, method="POST", content=png())
    make(url=url).generate(request())
    assert "authorization" not in httpx_mock.get_request().headers


def test_endpoint_token_goes_to_its_own_host_only(httpx_mock, monkeypatch):
    monkeypatch.setenv("AVATARGEN_ENDPOINT_TOKEN", "serve-token-123")
    url = "http://gpu-box.lan:8000/"
    httpx_mock.add_response(url=url, method="POST", content=png())
    provider = make(url=url)
    provider.generate(request())
    assert httpx_mock.get_request().headers["authorization"] == "Bearer serve-token-123"
    # The same provider never hands that token to another host, nor the HF token to this one.
    assert provider.scope.token_for("https://huggingface.co/api/whoami-v2").reveal() == TOKEN
    assert provider.scope.token_for("http://elsewhere.example/") is None


def test_redirects_are_not_followed(httpx_mock):
    httpx_mock.add_response(
        url=HF_ENDPOINT,
        method="POST",
        status_code=307,
        headers={"location": "https://evil.example/steal?x=1"},
    )
    with pytest.raises(ProviderError) as caught:
        make().generate(request())
    assert len(httpx_mock.get_requests()) == 1  # nothing was sent to evil.example
    assert "evil.example/steal" in caught.value.message and "x=1" not in caught.value.message
    assert caught.value.status_code == 307


def test_missing_pose_is_an_input_error():
    from dataclasses import replace

    with pytest.raises(InputError):
        make().payload(replace(request(), pose_png=None))


# ---------------------------------------------------------------- status probe
HELLO_ANSWER = {"avatargen": {"handler": 1, "model": "x", "features": []}}  # our handler's handshake


def test_status_ready_via_health(httpx_mock):
    httpx_mock.add_response(url=f"{HF_ENDPOINT}/health", method="GET", text="Ok")
    httpx_mock.add_response(url=HF_ENDPOINT, method="POST", json=HELLO_ANSWER)
    report = make().status()
    assert report.state == "ready" and report.backend == "hf-endpoint" and report.round_trip_ms is not None
    assert report.extra["handler"]["ours"] is True
    assert all(r.headers["authorization"] == f"Bearer {TOKEN}" for r in httpx_mock.get_requests())


def test_status_falls_back_to_root_without_health(httpx_mock):
    httpx_mock.add_response(url=f"{HF_ENDPOINT}/health", method="GET", status_code=404, text="Not Found")
    httpx_mock.add_response(url=HF_ENDPOINT, method="GET", text="Ok")
    httpx_mock.add_response(url=HF_ENDPOINT, method="POST", json=HELLO_ANSWER)
    assert make().status().state == "ready"


def test_status_starting_with_estimate(httpx_mock):
    httpx_mock.add_response(
        url=f"{HF_ENDPOINT}/health", status_code=503, json={"error": "loading", "estimated_time": 42.0}
    )
    report = make().status()
    assert report.state == "starting" and report.estimated_time == 42.0 and "42" in report.detail


def test_status_starting_without_estimate(httpx_mock):
    httpx_mock.add_response(url=f"{HF_ENDPOINT}/health", status_code=503, text="Service Unavailable")
    report = make().status()
    assert report.state == "starting" and report.estimated_time is None


def test_status_unauthorized(httpx_mock):
    httpx_mock.add_response(url=f"{HF_ENDPOINT}/health", status_code=401, json={"error": "Bad token"})
    report = make(token=TokenInfo(None, "none")).status()
    assert report.state == "unauthorized" and "Bad token" in report.detail and "no token" in report.detail


def test_status_unreachable(httpx_mock):
    httpx_mock.add_exception(httpx.ConnectError("connection refused"))
    report = make().status()
    assert report.state == "unreachable" and "refused" in report.detail


def test_status_other_code_is_unknown_with_the_message(httpx_mock):
    httpx_mock.add_response(url=f"{HF_ENDPOINT}/health", status_code=500, json={"error": "handler crashed"})
    report = make().status()
    assert report.state == "unknown" and report.detail == "HTTP 500: handler crashed"


def test_close_closes_its_own_client(httpx_mock):
    httpx_mock.add_response(url=HF_ENDPOINT, method="POST", content=png())
    provider = make()
    provider.generate(request())
    client = provider.client
    provider.close()
    assert client.is_closed


# ---------------------------------------------------------------- credentials in the URL (hardening 11)
def test_url_credentials_never_reach_errors_or_wait_events(httpx_mock):
    password, query_token = "pw-hunter2-xyz", "qtok-0987654321"
    url = f"http://bob:{password}@127.0.0.1:8000/generate?api_key={query_token}"
    httpx_mock.add_response(status_code=500, json={"error": f"boom at {url}"}, is_reusable=True)
    events = []
    provider = make(url=url, token=None)
    with pytest.raises(ProviderError) as caught:
        provider.generate(request(), on_event=events.append)
    texts = [caught.value.message, caught.value.hint or "", *(e.reason for e in events)]
    assert events and all(password not in t and query_token not in t for t in texts), texts
    assert "127.0.0.1:8000/generate" in caught.value.message
    # The request itself still carries them: masking is for what is shown, not what is sent.
    assert query_token in str(httpx_mock.get_requests()[0].url)


def test_status_report_url_is_masked(httpx_mock):
    url = "https://user:pa55word-long@e.example/run?token=tok-secret-1234"
    # Credentials inside a URL are never sent (docs/backends.md): the requests go without them.
    sent = "https://e.example/run?token=tok-secret-1234"
    httpx_mock.add_response(url="https://e.example/run/health?token=tok-secret-1234", text="Ok")
    httpx_mock.add_response(url=sent, method="POST", json=HELLO_ANSWER)
    report = make(url=url, token=None).status()
    assert report.state == "ready"
    assert "pa55word-long" not in report.url and "tok-secret-1234" not in report.url
    assert "pa55word-long" not in str(report.extra) and "tok-secret-1234" not in str(report.extra)
