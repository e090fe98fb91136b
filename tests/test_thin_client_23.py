"""Issue 23 (1): the small install makes an avatar with identity against `serve` (or an endpoint).

The client runs as the core install would: the real CLI in a subprocess with MediaPipe made
unimportable. It sends the photo as `ip_adapter_photo` and the server (`avatargen serve --tiny`,
another real process, which has the serve extra and so MediaPipe) finds and crops the face with
the client's own algorithm (serve/facecrop.py). Same photo, same seed: the image equals the one
made when the client crops the face itself.
"""

# ruff: noqa: F811  (pytest fixtures imported from serve_fixtures are shadowed by parameters)
from __future__ import annotations

import base64
import io
import json
import os
from pathlib import Path

import pytest

from avatargen.images import read_metadata
from fake_endpoint import FakeEndpoint
from serve_fixtures import start_tiny_server, tiny_home, tiny_models, wait_until_ready  # noqa: F401

MODEL = "controlnet-openpose-sd15"


def _no_mediapipe(root: Path) -> Path:
    """A folder that, first on PYTHONPATH, makes `import mediapipe` fail as on the core install."""
    (root / "mediapipe").mkdir(parents=True)
    (root / "mediapipe" / "__init__.py").write_text("raise ImportError(\"No module named 'mediapipe'\")\n")
    return root


def _astronaut(path: Path) -> Path:
    from PIL import Image
    from skimage import data

    Image.fromarray(data.astronaut()).save(path, quality=92)  # a real face
    return path


def _thin_env(tmp_path: Path) -> dict[str, str]:
    import avatargen

    src = Path(avatargen.__file__).resolve().parents[1]  # the avatargen under test
    blocker = _no_mediapipe(tmp_path / "no-mediapipe")
    return {"PYTHONPATH": os.pathsep.join([str(blocker), str(src)])}


def _generate(run_cli, photo: Path, url: str, out: Path, env: dict | None = None):
    result = run_cli(
        "generate", str(photo), "--endpoint", url, "--model", MODEL, "--pose", "wave", "-o", str(out),
        "--yes", "--json", env=env,
    )  # fmt: skip
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    return result, lines


@pytest.fixture
def identity_on(monkeypatch):
    monkeypatch.delenv("AVATARGEN_IDENTITY_SCALE", raising=False)  # the real default: identity on


def test_the_blocker_really_blocks(tmp_path):
    import subprocess
    import sys

    env = {**os.environ, **_thin_env(tmp_path)}
    probe = "from avatargen import faces; print(faces.detector_available())"
    out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_thin_client_gets_identity_from_serve(tmp_path, run_cli, tiny_home, identity_on):
    photo = _astronaut(tmp_path / "me.jpg")
    server = start_tiny_server(tmp_path, "--model", MODEL, min_load_s=0)
    try:
        wait_until_ready(server.url)
        thin, thin_lines = _generate(run_cli, photo, server.url, tmp_path / "thin", _thin_env(tmp_path))
        full, full_lines = _generate(run_cli, photo, server.url, tmp_path / "full")
    finally:
        server.stop()
    assert thin.returncode == 0, thin.stderr
    assert full.returncode == 0, full.stderr
    (thin_line,), (full_line,) = thin_lines, full_lines
    assert thin_line["status"] == full_line["status"] == "done"
    thin_png, full_png = Path(thin_line["output"]), Path(full_line["output"])
    meta = read_metadata(thin_png)
    assert meta["identity"]["faces_found_by"] == "server" and "crops" not in meta["identity"]
    assert read_metadata(full_png)["identity"]["crops"]  # the client cropped it itself
    assert thin_line["job_key"] != full_line["job_key"]  # another cropper: its own job
    from PIL import Image

    with Image.open(thin_png) as a, Image.open(full_png) as b:
        assert a.convert("RGB").tobytes() == b.convert("RGB").tobytes()  # the same crop reached the model


def test_thin_client_sends_the_photo_and_no_crop(tmp_path, run_cli, identity_on):
    photo = _astronaut(tmp_path / "me.jpg")
    with FakeEndpoint() as endpoint:
        result, lines = _generate(run_cli, photo, endpoint.url, tmp_path / "out", _thin_env(tmp_path))
        bodies = [json.loads(r["body"])["inputs"] for r in endpoint.requests if r["method"] == "POST"]
    assert result.returncode == 0, result.stderr
    assert [line["status"] for line in lines] == ["done"]
    (body,) = bodies
    assert "ip_adapter_image" not in body and body["ip_adapter_scale"] > 0
    from PIL import Image

    sent = Image.open(io.BytesIO(base64.b64decode(body["ip_adapter_photo"])))
    assert sent.format == "PNG" and sent.size == (512, 512)  # the whole photo, lossless


def test_thin_client_with_the_local_backend_still_needs_the_pose_extra(tmp_path, run_cli, identity_on):
    photo = _astronaut(tmp_path / "me.jpg")
    result = run_cli(
        "generate", str(photo), "--tiny", "--model", MODEL, "-o", str(tmp_path / "out"), "--yes",
        env=_thin_env(tmp_path),
    )  # fmt: skip
    assert result.returncode == 11, result.stderr
    assert "pip install 'avatargen[pose]'" in result.stderr and "--identity-scale 0" in result.stderr


def test_server_finds_no_face_in_a_cat(tmp_path):
    """The server's refusal of a photo without a face names the field (a 422: never succeeds)."""
    from PIL import Image
    from skimage import data

    from avatargen.catalog import load_catalog
    from avatargen.serve.pipelines import ModelSpec, RequestError, parse_request, png_bytes

    spec = ModelSpec.from_catalog(load_catalog().by_key[f"avatar-generator:{MODEL}"])
    pose = base64.b64encode(png_bytes(Image.new("RGB", (512, 512)))).decode()
    cat = base64.b64encode(png_bytes(Image.fromarray(data.chelsea()))).decode()
    body = {"inputs": {"prompt": "x", "image": pose, "ip_adapter_photo": cat, "ip_adapter_scale": 0.6}}
    with pytest.raises(RequestError) as caught:
        parse_request(body, spec)
    assert caught.value.status == 422 and "no face found in 'ip_adapter_photo'" in str(caught.value)
    astronaut = base64.b64encode(png_bytes(Image.fromarray(data.astronaut()))).decode()
    body["inputs"]["ip_adapter_photo"] = astronaut
    params = parse_request(body, spec)
    (face,) = params.ip_adapter_images
    assert face.size == (224, 224)
