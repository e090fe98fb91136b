"""The local backend: the same pipeline module in-process, on the tiny models."""

# ruff: noqa: F811  (pytest fixtures imported from serve_fixtures are shadowed by parameters)
from __future__ import annotations

import io

import pytest
from PIL import Image

from avatargen.catalog import load_catalog
from avatargen.errors import InputError, MissingExtra, ModelLoadError, ModelUnavailable
from avatargen.providers.base import GenerationRequest
from avatargen.providers.local import LocalProvider
from avatargen.serve.tiny import TINY_VERSION
from serve_fixtures import fresh_local_backend, pose_png, tiny_home, tiny_models  # noqa: F401 - fixtures

pytestmark = pytest.mark.usefixtures("fresh_local_backend")


def _model(alias="controlnet-openpose-sd15"):
    return load_catalog().lookup(alias)


def _request(model, width=64, height=64, seed=9, pose=True, **extra):
    return GenerationRequest(
        model=model,
        prompt="a portrait",
        negative_prompt="blurry",
        width=width,
        height=height,
        steps=2,
        guidance_scale=5.0,
        controlnet_conditioning_scale=1.0,
        seed=seed,
        pose_png=pose_png(width, height) if pose else None,
        **extra,
    )


@pytest.mark.slow
def test_tiny_local_generation_says_once_where_it_runs(tiny_home):
    said: list[str] = []
    events = []
    provider = LocalProvider(_model(), tiny=True, say=said.append)
    attempts = []
    result = provider.generate(
        _request(provider.model),
        on_event=events.append,
        on_attempt=lambda: attempts.append(provider._service),
    )
    assert len(attempts) == 1 and attempts[0] is not None  # called once, after loading
    assert (result.backend, result.content_type, result.attempts) == ("local", "image/png", 1)
    assert result.model_key == "avatar-generator:controlnet-openpose-sd15"
    assert Image.open(io.BytesIO(result.image)).size == (64, 64)
    assert [e.state for e in events] == ["loading"]
    # Two facts, each on its own line: where the weights come from, and the device.
    assert said == [
        "weights: a tiny random-weight model of the sd15 architecture, built here without downloads "
        "(its images are noise)",
        "device: CPU (tiny model: 10-30 s to start, then a second or two per image at --steps 2)",
    ]
    again = provider.generate(_request(provider.model))
    assert again.image == result.image  # same seed, same image
    assert len(said) == 2  # said once
    # Loaded once per process and model: a second provider (a fallback, another batch) shares it.
    other = LocalProvider(_model(), tiny=True, say=said.append)
    other.generate(_request(other.model))
    assert other._service is provider._service and len(said) == 2
    status = provider.status()
    assert (status.backend, status.state, status.url) == ("local", "local", None)
    assert status.extra["device"] == "cpu" and status.extra["loaded"] is True
    assert "cpu (slow)" in status.detail
    provider.close()
    assert provider.status().extra["loaded"] is False


def test_real_model_on_cpu_says_where_the_weights_come_from_and_how_slow_it_is(capsys):
    provider = LocalProvider(_model(), tiny=False)
    provider._announce("cpu")
    err = capsys.readouterr().err.splitlines()
    assert err == [
        "weights: stable-diffusion-v1-5 + control_v11p_sd15_openpose + IP-Adapter Plus Face from the "
        "Hugging Face Hub (~9 GB, cached in HF_HOME after the first run)",
        "device: CPU — a minute or more to load the weights, then several minutes per image at 512x512, "
        "30 steps; a GPU takes seconds (or use --endpoint URL with `avatargen serve` on a GPU machine)",
    ]
    assert capsys.readouterr().out == ""


@pytest.mark.slow
def test_on_a_gpu_it_names_the_card_and_the_fp16_download(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA H100 80GB HBM3")
    said: list[str] = []
    LocalProvider(_model("controlnet-openpose-sdxl"), say=said.append)._announce("cuda")
    assert said == [
        "weights: stable-diffusion-xl-base-1.0 + controlnet-openpose-sdxl-1.0 + IP-Adapter Plus Face from "
        "the Hugging Face Hub (~13 GB, cached in HF_HOME after the first run)",
        "device: GPU (NVIDIA H100 80GB HBM3) — up to a minute to load the weights, then seconds per image",
    ]


def test_weights_from_a_folder_or_the_cache_are_said_so():
    said: list[str] = []
    LocalProvider(_model(), model_dir="./my-dir", say=said.append)._announce("cpu")
    LocalProvider(_model("controlnet-openpose-sdxl"), say=said.append)._announce("cpu", cached=True)
    assert said[0] == "weights: ./my-dir (a saved pipeline)"
    assert said[2] == (
        "weights: stable-diffusion-xl-base-1.0 + controlnet-openpose-sdxl-1.0 + IP-Adapter Plus Face from "
        "the Hugging Face Hub, already in the download cache (HF_HOME)"
    )


@pytest.mark.slow
def test_sdxl_img2img_locally_from_a_model_dir(tiny_models):
    folder = tiny_models / f"sdxl-controlnet-v{TINY_VERSION}"
    provider = LocalProvider(_model("controlnet-openpose-sdxl"), model_dir=folder, say=lambda _: None)
    photo = io.BytesIO()
    Image.new("RGB", (50, 40), "green").save(photo, format="PNG")
    result = provider.generate(
        _request(provider.model, width=64, height=72, init_image_png=photo.getvalue(), strength=0.5)
    )
    assert Image.open(io.BytesIO(result.image)).size == (64, 72)


def test_environment_selects_the_tiny_model(tiny_home, monkeypatch):
    monkeypatch.setenv("AVATARGEN_LOCAL_TINY", "1")
    provider = LocalProvider(_model(), say=lambda _: None)
    assert provider.tiny is True
    assert "tiny" in provider.status().detail


def test_refusals_are_user_errors(tiny_home, tmp_path):
    provider = LocalProvider(_model(), tiny=True, say=lambda _: None)
    with pytest.raises(InputError, match="pose"):
        provider.generate(_request(provider.model, pose=False))
    with pytest.raises(InputError, match="multiple of 8"):
        provider.generate(_request(provider.model, width=70))
    # Not a pipeline folder: every job would fail alike, so it is a load error (it stops a batch).
    with pytest.raises(ModelLoadError, match=r"\(--model-dir\) is not a saved diffusers pipeline"):
        LocalProvider(_model(), model_dir=tmp_path, say=lambda _: None).generate(_request(_model()))
    with pytest.raises(ModelUnavailable, match="sd35"):
        LocalProvider(_model("sd35-controlnet-canny"), tiny=True, say=lambda _: None).generate(
            _request(_model())
        )


@pytest.mark.slow
def test_a_download_that_fills_the_disk_says_so(monkeypatch):
    # The Hub answered (the pre-flight passed), then saving the weights ran out of disk.
    import errno

    from avatargen.serve import pipelines, resolve

    asked = []

    def disk_full(cls, repo_id, variant, **kwargs):
        asked.append(repo_id)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(resolve, "hub_preflight", lambda spec, model, ways=None: False)
    monkeypatch.setattr(pipelines, "_from_hub", disk_full)
    provider = LocalProvider(_model(), say=lambda _: None)
    with pytest.raises(ModelLoadError) as caught:
        provider.generate(_request(provider.model))
    assert asked == ["lllyasviel/control_v11p_sd15_openpose"]
    assert caught.value.exit_code == 6 and caught.value.stops_batch is True
    assert "out of disk space" in caught.value.message and "HF_HOME" in caught.value.message
    hint = caught.value.hint
    assert "--tiny" in hint and "noise" in hint and "--model-dir DIR" in hint and "--endpoint URL" in hint
    # Remembered: the next job fails at once, without a second download.
    with pytest.raises(ModelLoadError, match="out of disk space"):
        provider.generate(_request(provider.model))
    assert asked == ["lllyasviel/control_v11p_sd15_openpose"]


def test_missing_serve_extra(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "diffusers" else real(name, *a)
    )
    with pytest.raises(MissingExtra) as caught:
        LocalProvider(_model())
    assert caught.value.exit_code == 11 and caught.value.extra == "serve"
