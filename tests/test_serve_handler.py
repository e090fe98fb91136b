"""The Inference Endpoint handler, in-process and as the standalone handler.py of a bundle."""

# ruff: noqa: F811  (pytest fixtures imported from serve_fixtures are shadowed by parameters)
from __future__ import annotations

import ast
import json
import subprocess
import sys

import pytest

from avatargen.serve.bundle import standalone_handler_source
from avatargen.serve.handler import EndpointHandler
from avatargen.serve.pipelines import RequestError
from avatargen.serve.tiny import TINY_VERSION
from serve_fixtures import pose_png, request_body, tiny_models  # noqa: F401 - fixture


@pytest.mark.slow
def test_handler_in_process_on_a_tiny_model(tiny_models):
    handler = EndpointHandler(path=str(tiny_models / f"sd15-controlnet-v{TINY_VERSION}"))
    image = handler(request_body(width=64, height=96))
    assert image.size == (64, 96)
    with pytest.raises(ValueError):  # the toolkit answers any exception with 400 {"error"}
        handler({"inputs": {"prompt": ""}})
    assert issubclass(RequestError, ValueError)


def test_standalone_source_imports_nothing_of_avatargen():
    tree = ast.parse(standalone_handler_source())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            imported.add((node.module or "").split(".")[0])
    assert "avatargen" not in imported
    assert imported <= {
        "base64",
        "binascii",
        "io",
        "json",
        "secrets",
        "threading",
        "time",
        "warnings",
        "dataclasses",
        "pathlib",
        "typing",
        "os",
        "PIL",
        "torch",
        "diffusers",
        # issue 23: finding the face in an `ip_adapter_photo` (imported only then; numpy comes
        # with diffusers, mediapipe with the bundle's requirements.txt for identity models)
        "contextlib",
        "importlib",
        "numpy",
        "mediapipe",
    }


@pytest.mark.slow
def test_bundle_command_writes_a_deployable_folder(cli, tmp_path):
    out = tmp_path / "bundle"
    result = cli("endpoint", "bundle", "controlnet-openpose-sdxl", "-o", str(out), "--json")
    assert result.exit_code == 0
    report = json.loads(result.stdout)
    assert report["model"] == "avatar-generator:controlnet-openpose-sdxl"
    names = sorted(p.name for p in out.iterdir())
    assert names == ["README.md", "avatargen-model.json", "handler.py", "requirements.txt"]
    facts = json.loads((out / "avatargen-model.json").read_text())
    assert facts["controlnet"] == "thibaud/controlnet-openpose-sdxl-1.0"
    assert facts["base_model"] == "stabilityai/stable-diffusion-xl-base-1.0"
    assert (facts["architecture"], facts["width"], facts["steps"]) == ("sdxl", 1024, 50)
    assert "diffusers" in (out / "requirements.txt").read_text()
    readme = (out / "README.md").read_text()
    assert "avatargen config set endpoints.avatar-generator:controlnet-openpose-sdxl" in readme
    # Same content again is fine; changed content needs --force.
    assert cli("endpoint", "bundle", "controlnet-openpose-sdxl", "-o", str(out)).exit_code == 0
    (out / "handler.py").write_text("# edited\n")
    from avatargen.errors import AvatargenError

    with pytest.raises(AvatargenError) as caught:
        cli("endpoint", "bundle", "controlnet-openpose-sdxl", "-o", str(out))
    assert caught.value.exit_code == 5 and "--force" in caught.value.one_line()
    assert cli("endpoint", "bundle", "controlnet-openpose-sdxl", "-o", str(out), "--force").exit_code == 0
    assert "EndpointHandler" in (out / "handler.py").read_text()


def test_bundle_refuses_a_model_the_handler_cannot_run(cli, tmp_path):
    from avatargen.errors import AvatargenError

    with pytest.raises(AvatargenError) as caught:
        cli("endpoint", "bundle", "sd35-controlnet-canny", "-o", str(tmp_path / "b"))
    assert caught.value.exit_code == 6


# The serving toolkit's way: load handler.py by path under the name "handler.EndpointHandler".
STANDALONE = r"""
import importlib.util, io, json, sys
sys.modules["avatargen"] = None  # the endpoint container has no avatargen: any import of it fails
bundle, weights, out = sys.argv[1:4]
spec = importlib.util.spec_from_file_location("handler.EndpointHandler", bundle + "/handler.py")
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
handler = module.EndpointHandler(path=weights)
body = json.loads(sys.stdin.read())
image = handler(body)
image.save(out)
try:
    handler({"inputs": {"prompt": "p", "image": "%%%"}})
except ValueError as exc:
    error = str(exc)
print(json.dumps({"size": image.size, "key": handler.spec.key, "error": error,
                  "avatargen_loaded": any(m.startswith("avatargen.") for m in sys.modules)}))
"""


@pytest.mark.slow
def test_bundled_handler_runs_standalone_on_the_tiny_model(cli, tmp_path, tiny_models):
    bundle = tmp_path / "bundle"
    assert cli("endpoint", "bundle", "controlnet-openpose-sd15", "-o", str(bundle)).exit_code == 0
    out = tmp_path / "out.png"
    weights = tiny_models / f"sd15-controlnet-v{TINY_VERSION}"
    done = subprocess.run(
        [sys.executable, "-c", STANDALONE, str(bundle), str(weights), str(out)],
        input=json.dumps(request_body(width=64, height=64)),
        capture_output=True,
        text=True,
        timeout=180,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["size"] == [64, 64]
    assert report["key"] == "avatar-generator:controlnet-openpose-sd15"  # facts from the bundle's json
    assert "base64" in report["error"]
    assert report["avatargen_loaded"] is False
    assert out.read_bytes().startswith(b"\x89PNG")
    assert pose_png()  # the pose helper is the one the request used
