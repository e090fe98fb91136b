"""The local backend: the same pipeline module in-process, on the tiny models."""

# ruff: noqa: F811  (pytest fixtures imported from serve_fixtures are shadowed by parameters)
from __future__ import annotations

import io

import pytest
from PIL import Image

from avatargen.catalog import load_catalog
from avatargen.errors import InputError, MissingExtra, ModelUnavailable
from avatargen.providers import local as local_mod
from avatargen.providers.base import GenerationRequest
from avatargen.providers.local import LocalProvider
from avatargen.serve.tiny import TINY_VERSION
from serve_fixtures import pose_png, tiny_home, tiny_models  # noqa: F401 - fixtures


@pytest.fixture(autouse=True)
def fresh_announcements(monkeypatch):
    monkeypatch.setattr(local_mod, "_announced", set())


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
    assert len(said) == 1 and "in this process on cpu" in said[0] and "noise" in said[0]
    again = provider.generate(_request(provider.model))
    assert again.image == result.image  # same seed, same image
    assert len(said) == 1  # said once
    status = provider.status()
    assert (status.backend, status.state, status.url) == ("local", "local", None)
    assert status.extra["device"] == "cpu" and status.extra["loaded"] is True
    assert "cpu (slow)" in status.detail
    provider.close()
    assert provider.status().extra["loaded"] is False


def test_real_model_on_cpu_warns_how_slow_it_is(capsys):
    provider = LocalProvider(_model(), tiny=False)
    provider._announce("cpu")
    err = capsys.readouterr().err
    assert "downloads its weights from the Hugging Face Hub" in err
    assert "many minutes" in err
    assert capsys.readouterr().out == ""


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
    with pytest.raises(InputError, match="model_index.json"):
        LocalProvider(_model(), model_dir=tmp_path, say=lambda _: None).generate(_request(_model()))
    with pytest.raises(ModelUnavailable, match="sd35"):
        LocalProvider(_model("sd35-controlnet-canny"), tiny=True, say=lambda _: None).generate(
            _request(_model())
        )


def test_hub_weights_unreachable_is_model_unavailable_with_a_hint(monkeypatch):
    # The Hub path, stopped before any network: what a download failure looks like to the user.
    from avatargen.serve import pipelines

    asked = []

    def no_hub(cls, repo_id, variant, **kwargs):
        asked.append((cls.__name__, repo_id))
        raise OSError(f"We couldn't connect to 'https://huggingface.co' to load {repo_id}")

    monkeypatch.setattr(pipelines, "_from_hub", no_hub)
    provider = LocalProvider(_model(), say=lambda _: None)
    with pytest.raises(ModelUnavailable) as caught:
        provider.generate(_request(provider.model))
    assert asked == [("ControlNetModel", "lllyasviel/control_v11p_sd15_openpose")]
    assert "couldn't connect" in caught.value.message
    assert "--model-dir" in caught.value.hint and "--tiny" in caught.value.hint


def test_missing_serve_extra(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "diffusers" else real(name, *a)
    )
    with pytest.raises(MissingExtra) as caught:
        LocalProvider(_model())
    assert caught.value.exit_code == 11 and caught.value.extra == "serve"
