"""`avatargen endpoint bundle --tiny`: the bundle carries a tiny model saved in a portable form."""

# ruff: noqa: F811  (pytest fixtures imported from serve_fixtures are shadowed by parameters)
from __future__ import annotations

import json

import pytest

from cli_helpers import run_main
from serve_fixtures import request_body, tiny_home, tiny_models  # noqa: F401 - fixtures


@pytest.mark.slow
def test_tiny_bundle_holds_a_portable_tiny_model(cli, tmp_path, tiny_home):
    out = tmp_path / "bundle"
    result = cli("endpoint", "bundle", "controlnet-openpose-sdxl", "-o", str(out), "--tiny", "--json")
    assert result.exit_code == 0
    report = json.loads(result.stdout)
    assert report["tiny"] is True
    assert str(out / "unet" / "diffusion_pytorch_model.safetensors") in report["files"]
    assert json.loads((out / "avatargen-model.json").read_text())["tiny"] is True
    assert (out / "TINY.txt").is_file()
    readme = " ".join((out / "README.md").read_text().split())
    assert "tiny random-weight model" in readme and "every image is noise" in readme
    # Slow-tokenizer files, which transformers 4.51 and 5 both read; no tokenizer.json.
    for part in ("tokenizer", "tokenizer_2"):
        assert sorted(p.name for p in (out / part).iterdir()) == [
            "merges.txt",
            "tokenizer_config.json",
            "vocab.json",
        ]
        assert "backend" not in json.loads((out / part / "tokenizer_config.json").read_text())
    # Text-encoder weights under the key names transformers 4.51 reads.
    from safetensors import safe_open

    for part in ("text_encoder", "text_encoder_2"):
        with safe_open(out / part / "model.safetensors", "pt") as weights:
            keys = list(weights.keys())
        assert keys and all(k.startswith("text_model.") or k == "text_projection.weight" for k in keys)
    # The bundle's handler loads the model from the bundle itself.
    from avatargen.serve.handler import EndpointHandler

    image = EndpointHandler(path=str(out))(request_body(width=64, height=64))
    assert image.size == (64, 64)


@pytest.mark.slow
def test_a_real_bundle_over_a_tiny_one_needs_force_and_removes_the_tiny_model(cli, tmp_path, tiny_home):
    from avatargen.errors import AvatargenError

    out = tmp_path / "bundle"
    assert cli("endpoint", "bundle", "controlnet-openpose-sd15", "-o", str(out), "--tiny").exit_code == 0
    # Same again is harmless.
    assert cli("endpoint", "bundle", "controlnet-openpose-sd15", "-o", str(out), "--tiny").exit_code == 0
    with pytest.raises(AvatargenError) as caught:
        cli("endpoint", "bundle", "controlnet-openpose-sd15", "-o", str(out))
    assert caught.value.exit_code == 5
    assert "TINY.txt" in caught.value.one_line() and "--force" in caught.value.one_line()
    assert cli("endpoint", "bundle", "controlnet-openpose-sd15", "-o", str(out), "--force").exit_code == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "README.md",
        "avatargen-model.json",
        "handler.py",
        "requirements.txt",
    ]
    assert json.loads((out / "avatargen-model.json").read_text())["tiny"] is False


def test_tiny_without_the_serve_extra_says_which_extra(monkeypatch, capsys, tmp_path):
    import avatargen.serve.tiny as tiny

    def missing(architecture, root=None):
        raise ModuleNotFoundError("No module named 'diffusers'", name="diffusers")

    monkeypatch.setattr(tiny, "ensure_tiny", missing)
    code, _, err = run_main(
        monkeypatch,
        capsys,
        "endpoint",
        "bundle",
        "controlnet-openpose-sd15",
        "-o",
        str(tmp_path / "b"),
        "--tiny",
    )
    assert code == 11
    assert "--tiny (diffusers is missing)" in err and "avatargen[serve]" in err
    assert len(err.strip().splitlines()) == 1
