"""Which backend and which URL: the resolution order, forced providers, the local default, the error."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest

from avatargen import settings
from avatargen.config import load as current_config
from avatargen.errors import ConfigError, ModelUnavailable, UsageError
from avatargen.providers import select
from avatargen.providers.endpoint import EndpointProvider
from avatargen.providers.inference import InferenceProvider
from avatargen.providers.select import choose_backend, make_provider, resolve_endpoint, resolve_wait_timeout
from helpers.images import save_photo
from provider_fakes import model

KEY = "avatar-generator:controlnet-openpose-sd15"
SRC = Path(__file__).resolve().parents[1] / "src"


@pytest.fixture
def no_serve_extra(monkeypatch):
    monkeypatch.setattr(select, "serve_extra_available", lambda: False)


@pytest.fixture
def fake_local(monkeypatch):
    """Stands in for avatargen.providers.local (the serve extra) so these tests load no weights."""
    module = types.ModuleType("avatargen.providers.local")

    class LocalProvider:
        name = "local"

        def __init__(self, model, model_dir=None, tiny=None):
            self.model = model
            self.model_dir = model_dir
            self.tiny = tiny

    module.LocalProvider = LocalProvider
    monkeypatch.setitem(sys.modules, "avatargen.providers.local", module)
    monkeypatch.setattr(select, "serve_extra_available", lambda: True)
    return LocalProvider


def with_catalog_endpoint(url):
    from dataclasses import replace

    return replace(model(), endpoint=url)


def test_endpoint_order_first_match_wins(monkeypatch):
    m = with_catalog_endpoint("https://catalog.example/")
    assert resolve_endpoint(m, config=current_config()) == ("https://catalog.example/", "catalog")
    settings.set_value(f"endpoints.{KEY}", "https://config.example/")
    assert resolve_endpoint(m, config=current_config()) == (
        "https://config.example/",
        f"config endpoints.{KEY}",
    )
    monkeypatch.setenv("AVATARGEN_ENDPOINT", "https://env.example/")
    assert resolve_endpoint(m, config=current_config()) == ("https://env.example/", "AVATARGEN_ENDPOINT")
    assert resolve_endpoint(m, "https://arg.example/", config=current_config()) == (
        "https://arg.example/",
        "--endpoint",
    )


def test_no_endpoint_anywhere():
    assert resolve_endpoint(model(), config=current_config()) == (None, "none")


def test_config_endpoint_of_another_model_is_not_used():
    settings.set_value("endpoints.avatar-generator:controlnet-openpose-sdxl", "https://other.example/")
    assert resolve_endpoint(model(), config=current_config()) == (None, "none")


def test_bad_endpoint_urls_name_their_source(monkeypatch):
    with pytest.raises(UsageError, match="--endpoint"):
        resolve_endpoint(model(), "ftp://x", config=current_config())
    monkeypatch.setenv("AVATARGEN_ENDPOINT", "gpu-box:8000")
    with pytest.raises(ConfigError, match="AVATARGEN_ENDPOINT"):
        resolve_endpoint(model(), config=current_config())


def test_endpoint_url_gives_the_endpoint_backend(no_serve_extra):
    provider = make_provider(model(), endpoint="https://e.example/", wait_timeout=33, config=current_config())
    assert isinstance(provider, EndpointProvider)
    assert provider.url == "https://e.example/" and provider.url_source == "--endpoint"
    assert provider.policy.wait_timeout == 33


def test_forced_hf_inference_uses_the_router(no_serve_extra):
    provider = make_provider(
        model(), provider="hf-inference", endpoint="https://ignored.example/", config=current_config()
    )
    assert isinstance(provider, InferenceProvider)
    assert (
        provider.url
        == "https://router.huggingface.co/hf-inference/models/stable-diffusion-v1-5/stable-diffusion-v1-5"
    )


def test_config_provider_forces_a_backend(no_serve_extra):
    settings.set_value("provider", "hf-inference")
    assert isinstance(make_provider(model(), config=current_config()), InferenceProvider)
    assert choose_backend(model(), config=current_config()).source == "config provider"


def test_forced_endpoint_without_url_is_the_no_endpoint_error(fake_local):
    with pytest.raises(ModelUnavailable):
        make_provider(model(), provider="hf-endpoint", config=current_config())


def test_unknown_provider_is_a_usage_error():
    with pytest.raises(UsageError, match="unknown provider 'replicate' \\(--provider\\)") as caught:
        make_provider(model(), provider="replicate", config=current_config())
    assert caught.value.hint == "use one of hf-endpoint, hf-inference, local, hf-providers"


def test_no_endpoint_with_serve_extra_runs_locally(fake_local):
    provider = make_provider(model(), config=current_config())
    assert isinstance(provider, fake_local) and provider.model.key == KEY


def test_model_dir_and_tiny_reach_the_local_backend(fake_local, tmp_path):
    provider = make_provider(
        model(), provider="local", model_dir=tmp_path, tiny=True, config=current_config()
    )
    assert provider.model_dir == tmp_path and provider.tiny is True
    # Not given: None, so LocalProvider's own defaults (AVATARGEN_LOCAL_MODEL_DIR/_TINY) still apply.
    default = make_provider(model(), config=current_config())
    assert default.model_dir is None and default.tiny is None


def test_forced_local_wins_over_an_endpoint(fake_local):
    assert isinstance(
        make_provider(model(), provider="local", endpoint="https://e.example/", config=current_config()),
        fake_local,
    )


def test_no_endpoint_without_serve_extra_explains_what_to_do(no_serve_extra):
    with pytest.raises(ModelUnavailable) as caught:
        make_provider(model(), config=current_config())
    err = caught.value
    assert "serverless HF cannot take a control image" in err.message
    assert "avatargen endpoint bundle controlnet-openpose-sd15 -o DIR" in err.hint
    # This install cannot run `avatargen serve`: name the extra instead (everyday item 4).
    assert "pip install 'avatargen[serve]'" in err.hint and "--endpoint URL" in err.hint
    assert "avatargen serve" not in err.hint
    assert err.exit_code == 6


def test_forced_endpoint_without_url_in_a_full_install_names_the_config_and_serve(fake_local):
    with pytest.raises(ModelUnavailable) as caught:
        make_provider(model(), provider="hf-endpoint", config=current_config())
    hint = caught.value.hint
    assert f"avatargen config set endpoints.{KEY} URL" in hint and "avatargen serve" in hint
    assert "pip install" not in hint


def test_serve_extra_detection_follows_diffusers(monkeypatch):
    import importlib.util

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None if name == "diffusers" else object())
    assert select.serve_extra_available() is False


def test_token_from_the_environment_reaches_the_backend(monkeypatch, no_serve_extra):
    monkeypatch.setenv("HF_TOKEN", "hf_abcdefghijklmnop")
    provider = make_provider(
        model(), endpoint="https://x.endpoints.huggingface.cloud", config=current_config()
    )
    assert provider.headers()["Authorization"] == "Bearer hf_abcdefghijklmnop"
    explicit = make_provider(
        model(),
        endpoint="https://x.endpoints.huggingface.cloud",
        token="hf_given_on_cli_1",
        config=current_config(),
    )
    assert explicit.headers()["Authorization"] == "Bearer hf_given_on_cli_1"


def test_wait_timeout_order():
    assert resolve_wait_timeout(config=current_config()) == 600.0
    settings.set_value("wait_timeout", "90")
    assert resolve_wait_timeout(config=current_config()) == 90.0
    assert resolve_wait_timeout(15, config=current_config()) == 15.0
    with pytest.raises(UsageError):
        resolve_wait_timeout(0, config=current_config())


def test_no_source_file_names_the_retired_host():
    retired = "api-inference" + ".huggingface.co"
    offenders = [str(p) for p in SRC.rglob("*") if p.is_file() and retired in p.read_text(errors="ignore")]
    assert offenders == []


# ---------------------------------------------------------------- --endpoint through the real CLI
@pytest.fixture
def photo(tmp_path):
    return save_photo(tmp_path / "me.jpg", (64, 80), (120, 90, 60))


def error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("error:")]


@pytest.mark.parametrize("value", ["http://[::1", "", "   ", "http://", "http://host:port/", "gpu-box:8000"])
@pytest.mark.parametrize("command", ["generate", "status"])
def test_bad_endpoint_option_is_a_usage_error(
    monkeypatch, capsys, photo, tmp_path, command, value, fake_local
):
    from cli_helpers import run_main

    if command == "generate":
        args = [str(photo), "--yes", "-o", str(tmp_path / "out")]
    else:
        args = ["controlnet-openpose-sd15"]
    code, out, err = run_main(monkeypatch, capsys, command, *args, "--endpoint", value)
    assert code == 2, err
    (line,) = error_lines(err)
    assert "--endpoint" in line and "Traceback" not in err
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_empty_endpoint_env_is_unset_but_a_malformed_one_is_a_config_error(monkeypatch, no_serve_extra):
    monkeypatch.setenv("AVATARGEN_ENDPOINT", "")
    assert resolve_endpoint(model(), config=current_config()) == (None, "none")
    monkeypatch.setenv("AVATARGEN_ENDPOINT", "http://[::1")
    with pytest.raises(ConfigError, match="AVATARGEN_ENDPOINT"):
        resolve_endpoint(model(), config=current_config())


def test_malformed_config_endpoint_is_a_config_error(monkeypatch, capsys):
    from cli_helpers import run_main

    # `config set` refuses it now (issue 23): a hand-edited file still can hold one.
    settings.save_config({"endpoints": {KEY: "http://[::1"}})
    code, _, err = run_main(monkeypatch, capsys, "status", "controlnet-openpose-sd15")
    assert code == 3, err
    (line,) = error_lines(err)
    assert f"config endpoints.{KEY}" in line


def test_explicit_empty_endpoint_never_switches_backend(fake_local):
    with pytest.raises(UsageError, match="--endpoint"):
        make_provider(model(), endpoint="", config=current_config())


def test_core_install_without_endpoint_names_the_extra_not_serve(monkeypatch, capsys, photo, tmp_path):
    from cli_helpers import run_main

    monkeypatch.setattr(select, "serve_extra_available", lambda: False)
    code, _, err = run_main(monkeypatch, capsys, "generate", str(photo), "--yes", "-o", str(tmp_path / "o"))
    assert code == 6, err
    (line,) = error_lines(err)
    assert "pip install 'avatargen[serve]'" in line and "--endpoint URL" in line
    assert "avatargen serve" not in line  # this install cannot run it
    assert len(line) <= 300, len(line)
