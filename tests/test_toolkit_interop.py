"""A `--tiny` endpoint bundle runs under the Hugging Face inference toolkit's library pins.

The toolkit pins transformers 4.51 and diffusers 0.33; we develop on transformers 5 and a newer
diffusers, which save a model differently (fast tokenizer only, new weight key names). Here the
bundle is written by the real CLI, then loaded in a venv with the toolkit's pins and no avatargen
(.ci/setup-toolkit.sh builds it) exactly as the toolkit loads a custom handler, and asked for an
image with the seed's request format.
"""

# ruff: noqa: F811  (pytest fixtures imported from serve_fixtures are shadowed by parameters)
from __future__ import annotations

import base64
import io
import json
import os
import subprocess

import pytest

from interop import interop_python
from serve_fixtures import pose_png, request_body, tiny_home, tiny_models  # noqa: F401 - fixtures

# What the toolkit does with a repository holding handler.py (huggingface_inference_toolkit/utils.py,
# check_and_register_custom_pipeline_from_directory), then what it does with a PIL image for
# `Accept: image/png` (save as PNG).
TOOLKIT = r"""
import importlib.util, io, json, sys
model_dir, body_file, out_dir = sys.argv[1:4]
report = {"avatargen_importable": importlib.util.find_spec("avatargen") is not None}
import diffusers, transformers
report["versions"] = {"transformers": transformers.__version__, "diffusers": diffusers.__version__}

spec = importlib.util.spec_from_file_location("handler.EndpointHandler", model_dir + "/handler.py")
sys.path.insert(0, model_dir)
handler = importlib.util.module_from_spec(spec)
sys.modules["handler.EndpointHandler"] = handler
spec.loader.exec_module(handler)
endpoint = handler.EndpointHandler(model_dir)

bodies = json.load(open(body_file))
for name, body in bodies.items():
    image = endpoint(body)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    open(f"{out_dir}/{name}.png", "wb").write(buffer.getvalue())
report["tiny"] = endpoint.spec.tiny
report["avatargen_loaded"] = sorted(m for m in sys.modules if m.split(".")[0] == "avatargen")
print(json.dumps(report))
"""


def _toolkit_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env["HF_HUB_OFFLINE"] = "1"  # a tiny bundle needs nothing from the Hub
    return env


def _face() -> str:
    from PIL import Image
    from skimage import data

    crop = Image.fromarray(data.astronaut()[0:220, 140:360])
    buffer = io.BytesIO()
    crop.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _pixels(png: bytes):
    import numpy as np
    from PIL import Image

    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=np.int16)


@pytest.mark.slow
@pytest.mark.parametrize("model", ["controlnet-openpose-sd15", "controlnet-openpose-sdxl"])
def test_tiny_bundle_runs_under_the_toolkit_pins(model, run_cli, tmp_path, tiny_home):
    toolkit_python = interop_python("AVATARGEN_TOOLKIT_PYTHON")
    bundle = tmp_path / "bundle"
    written = run_cli("endpoint", "bundle", model, "-o", str(bundle), "--tiny", "--json")
    assert written.returncode == 0, written.stderr[-2000:]
    assert json.loads(written.stdout)["tiny"] is True
    assert (bundle / "model_index.json").is_file() and (bundle / "handler.py").is_file()

    photo = base64.b64encode(pose_png(64, 64)).decode("ascii")
    bodies = {
        "text2img": request_body(width=64, height=64, steps=2, seed=11),
        "img2img": request_body(width=64, height=64, steps=2, seed=12, init_image=photo, strength=0.6),
        # The identity adapter (issue 12): a face, and the same face at scale 0 (= no adapter).
        "identity": request_body(width=64, height=64, steps=2, seed=11, ip_adapter_image=_face()),
        "identity_off": request_body(
            width=64, height=64, steps=2, seed=11, ip_adapter_image=_face(), ip_adapter_scale=0
        ),
    }
    body_file = tmp_path / "bodies.json"
    body_file.write_text(json.dumps(bodies))
    out = tmp_path / "toolkit-out"
    out.mkdir()
    done = subprocess.run(
        [str(toolkit_python), "-c", TOOLKIT, str(bundle), str(body_file), str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
        env=_toolkit_env(),
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["versions"]["transformers"].startswith("4.51.")
    assert report["versions"]["diffusers"].startswith("0.33.")
    assert report["avatargen_importable"] is False  # the handler is standalone
    assert report["avatargen_loaded"] == []
    assert report["tiny"] is True

    # The same requests on the current libraries, in-process: the same weights must give the same
    # image. A weight the old libraries failed to read (left at random with a mere warning) would not.
    from avatargen.serve.handler import EndpointHandler

    here = EndpointHandler(path=str(bundle))
    for name, body in bodies.items():
        theirs = _pixels((out / f"{name}.png").read_bytes())
        assert theirs.shape == (64, 64, 3)
        buffer = io.BytesIO()
        here(body).save(buffer, format="PNG")
        ours = _pixels(buffer.getvalue())
        assert abs(theirs - ours).max() <= 2, f"{name}: the toolkit's image differs from ours"
    # Under the toolkit's pins too, the adapter loads and acts: a face changes the image, scale 0 not.
    toolkit = {name: _pixels((out / f"{name}.png").read_bytes()) for name in bodies}
    assert (toolkit["identity_off"] == toolkit["text2img"]).all()
    assert abs(toolkit["identity"] - toolkit["text2img"]).mean() > 1
