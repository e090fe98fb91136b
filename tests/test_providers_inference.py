"""hf-inference: the router's text-to-image request, the pose as words, the warn-once, status."""

from __future__ import annotations

import json

import httpx
import pytest

from avatargen.errors import AuthError, ModelUnavailable
from avatargen.providers import inference
from avatargen.providers.inference import InferenceProvider
from avatargen.settings import Secret, TokenInfo
from provider_fakes import TOKEN, FakeClock, model, png, policy, request

SDXL_ROUTER = "https://router.huggingface.co/hf-inference/models/stabilityai/stable-diffusion-xl-base-1.0"
HUB = "https://huggingface.co/api/models/stabilityai/stable-diffusion-xl-base-1.0"
HUB_QUERY = "?expand%5B%5D=inference&expand%5B%5D=inferenceProviderMapping"


@pytest.fixture(autouse=True)
def fresh_warning(monkeypatch):
    monkeypatch.setattr(inference, "_warned", False)


def make(token=TokenInfo(Secret(TOKEN), "HF_TOKEN"), clock=None):
    return InferenceProvider(
        model("controlnet-openpose-sdxl"), token=token, policy=policy(clock or FakeClock())
    )


def test_router_url_uses_the_base_model():
    assert make().url == SDXL_ROUTER


def test_text_to_image_body_and_headers_field_by_field(httpx_mock):
    httpx_mock.add_response(url=SDXL_ROUTER, method="POST", content=png())
    req = request(model("controlnet-openpose-sdxl"), init=True)
    result = make().generate(req)
    sent = httpx_mock.get_request()
    body = json.loads(sent.content)
    assert body == {
        "inputs": "professional portrait, waving with the right hand",
        "parameters": {
            "negative_prompt": "blurry",
            "num_inference_steps": 30,
            "guidance_scale": 7.5,
            "width": 1024,
            "height": 1024,
            "seed": 1234,
        },
    }
    assert sent.headers["accept"] == "image/png"
    assert sent.headers["authorization"] == f"Bearer {TOKEN}"
    assert "x-scale-up-timeout" not in sent.headers
    assert result.backend == "hf-inference" and result.attempts == 1


def test_prompt_without_pose_description_is_unchanged(httpx_mock):
    httpx_mock.add_response(url=SDXL_ROUTER, method="POST", content=png())
    make().generate(request(model("controlnet-openpose-sdxl"), description=""))
    assert json.loads(httpx_mock.get_request().content)["inputs"] == "professional portrait"


def test_pose_warning_is_given_once_per_process(httpx_mock, capsys):
    httpx_mock.add_response(url=SDXL_ROUTER, method="POST", content=png(), is_reusable=True)
    provider = make()
    provider.generate(request(model("controlnet-openpose-sdxl")))
    make().generate(request(model("controlnet-openpose-sdxl")))  # a second provider too
    err = capsys.readouterr().err
    assert err.count("Pose control needs an endpoint") == 1
    assert "text-to-image only" in err


def test_router_shares_the_retry_policy(httpx_mock):
    httpx_mock.add_response(
        url=SDXL_ROUTER, method="POST", status_code=503, json={"error": "loading", "estimated_time": 5}
    )
    httpx_mock.add_response(url=SDXL_ROUTER, method="POST", content=png())
    clock = FakeClock()
    events = []
    make(clock=clock).generate(request(model("controlnet-openpose-sdxl")), on_event=events.append)
    assert [e.state for e in events] == ["loading"] and 4.5 <= clock.sleeps[0] <= 5.5


def test_router_404_says_it_does_not_serve_the_model(httpx_mock):
    httpx_mock.add_response(url=SDXL_ROUTER, method="POST", status_code=404, text="Not Found")
    with pytest.raises(ModelUnavailable) as caught:
        make().generate(request(model("controlnet-openpose-sdxl")))
    assert "hf-inference router for stabilityai/stable-diffusion-xl-base-1.0" in caught.value.message
    assert "does not serve" in caught.value.hint and "avatargen serve" in caught.value.hint


def test_router_401_names_the_permission(httpx_mock):
    httpx_mock.add_response(
        url=SDXL_ROUTER,
        method="POST",
        status_code=401,
        json={"error": "Invalid credentials in Authorization header"},
    )
    with pytest.raises(AuthError) as caught:
        make(token=TokenInfo(None, "none")).generate(request(model("controlnet-openpose-sdxl")))
    assert "Invalid credentials" in caught.value.message and "Inference Providers" in caught.value.hint
    assert "authorization" not in httpx_mock.get_request().headers


# ---------------------------------------------------------------- status from the Hub
def test_status_warm_with_providers(httpx_mock):
    httpx_mock.add_response(
        url=HUB + HUB_QUERY,
        json={
            "id": "stabilityai/stable-diffusion-xl-base-1.0",
            "inference": "warm",
            "inferenceProviderMapping": {
                "hf-inference": {"status": "live", "providerId": "x", "task": "t"},
                "fal-ai": {"status": "staging", "providerId": "y", "task": "t"},
            },
        },
    )
    report = make().status()
    assert report.state == "warm" and report.backend == "hf-inference" and report.url == SDXL_ROUTER
    assert report.extra["hub"]["providers"] == {"hf-inference": "live", "fal-ai": "staging"}
    assert "hf-inference (live)" in report.detail
    assert httpx_mock.get_request().headers["authorization"] == f"Bearer {TOKEN}"


def test_status_cold_when_no_provider(httpx_mock):
    httpx_mock.add_response(url=HUB + HUB_QUERY, json={"id": "x"})
    report = make().status()
    assert report.state == "cold" and report.detail == "no inference provider serves it"


def test_status_accepts_the_list_form_of_the_mapping(httpx_mock):
    httpx_mock.add_response(
        url=HUB + HUB_QUERY,
        json={
            "inference": "warm",
            "inferenceProviderMapping": [{"provider": "hf-inference", "status": "live"}],
        },
    )
    assert make().status().extra["hub"]["providers"] == {"hf-inference": "live"}


def test_status_unreachable(httpx_mock):
    httpx_mock.add_exception(httpx.ConnectError("Name or service not known"))
    report = make().status()
    assert report.state == "unreachable" and "Name or service not known" in report.detail


def test_status_model_missing_on_the_hub(httpx_mock):
    httpx_mock.add_response(url=HUB + HUB_QUERY, status_code=404, json={"error": "Repository not found"})
    report = make().status()
    assert report.state == "unknown" and report.extra["hub"]["state"] == "not-found"
