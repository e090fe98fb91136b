"""Issue 23 (7): a stray old huggingface_hub (0.30, pulled in by another package) is the `hub`
extra missing (exit 11, naming the version), never a TypeError from inside it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


def _stray_hub_030(root: Path) -> Path:
    """huggingface_hub 0.30.2 as far as avatargen can tell: its metadata and the provider helper's
    0.30 signature (`get_provider_helper(provider, task)`, no `model`)."""
    pkg = root / "huggingface_hub"
    (pkg / "inference" / "_providers").mkdir(parents=True)
    (pkg / "__init__.py").write_text('__version__ = "0.30.2"\n')
    (pkg / "hf_api.py").write_text(
        "class InferenceProviderMapping:\n    def __init__(self, **kw):\n        self.__dict__.update(kw)\n"
    )
    (pkg / "inference" / "__init__.py").write_text("")
    (pkg / "inference" / "_providers" / "__init__.py").write_text(
        "def get_provider_helper(provider, task):\n    raise NotImplementedError\n"
    )
    info = root / "huggingface_hub-0.30.2.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: huggingface_hub\nVersion: 0.30.2\n")
    return root


@pytest.fixture
def stray_env(tmp_path):
    src = Path(__file__).resolve().parents[1] / "src"
    stray = _stray_hub_030(tmp_path / "stray")
    return {
        "PYTHONPATH": os.pathsep.join([str(stray), str(src)]),
        "HF_TOKEN": "hf_straytest0000000000",
        "AVATARGEN_ROUTER_URL": "http://127.0.0.1:9",
    }


def test_router_with_hub_030_says_the_extra_is_missing(run_cli, stray_env, tmp_path):
    from PIL import Image

    Image.new("RGB", (64, 64), (200, 100, 50)).save(tmp_path / "me.png")
    out = tmp_path / "avatars"
    result = run_cli(
        "generate", str(tmp_path / "me.png"), "--model", "qwen-image-edit-pose", "--yes", "-o", str(out),
        env=stray_env,
    )  # fmt: skip
    assert result.returncode == 11, result.stderr
    assert "TypeError" not in result.stderr and "Traceback" not in result.stderr
    assert "huggingface_hub 0.30.2 is installed; 1.0 or newer is needed" in result.stderr
    assert "pip install 'avatargen[hub]'" in result.stderr
    assert not any(out.rglob("*.png"))  # refused before any job ran


def test_endpoint_deploy_with_hub_030_says_the_extra_is_missing(run_cli, stray_env):
    result = run_cli("endpoint", "deploy", "controlnet-openpose-sd15", env=stray_env)
    assert result.returncode == 11, result.stderr
    assert "huggingface_hub 0.30.2 is installed" in result.stderr


def test_versions():
    from avatargen import hub_extra

    assert hub_extra._release("0.30.2") < hub_extra.MIN_VERSION
    assert hub_extra._release("1.0.0rc1") >= hub_extra.MIN_VERSION
    assert hub_extra._release("2.4.0") >= hub_extra.MIN_VERSION
    assert hub_extra.available()  # this venv's 2.x


def test_dev_extra_pins_the_hub_extra():
    import tomllib

    project = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    hub = [d for d in extras["hub"] if d.lower().startswith("huggingface_hub")]
    dev = [d.split("#")[0].strip() for d in extras["dev"] if d.lower().startswith("huggingface_hub")]
    assert hub == dev
