"""Every file in examples/ is run as a user would run it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from fake_endpoint import FakeEndpoint
from test_generate_e2e import make_photos

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.mark.slow
def test_batch_script_processes_a_folder_and_resumes(tmp_path):
    make_photos(tmp_path / "photos" / "team", 2)
    make_photos(tmp_path / "photos", 1, start=7)
    out = tmp_path / "out"
    bin_dir = Path(sys.executable).parent  # the venv's `avatargen` script
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    with FakeEndpoint() as fake:
        env["AVATARGEN_ENDPOINT"] = fake.url
        first = subprocess.run(
            ["bash", str(EXAMPLES / "batch-folder.sh"), str(tmp_path / "photos"), str(out), "--pose", "wave"],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
        assert first.returncode == 0, first.stderr
        assert first.stdout.strip().endswith("done=3 failed=0 skipped=0 exit=0")
        lines = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
        assert len(lines) == 3 and all(Path(line["output"]).is_file() for line in lines)
        again = subprocess.run(
            ["bash", str(EXAMPLES / "batch-folder.sh"), str(tmp_path / "photos"), str(out), "--pose", "wave"],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
        assert again.stdout.strip().endswith("done=0 failed=0 skipped=3 exit=0")
        assert fake.posts == 3


@pytest.mark.slow
def test_custom_pose_json_renders_and_generates(tmp_path, run_cli):
    from PIL import Image

    pose = EXAMPLES / "salute-pose.json"
    png = tmp_path / "salute.png"
    shown = run_cli("poses", "show", str(pose), "-o", str(png), "--size", "512x512")
    assert shown.returncode == 0, shown.stderr
    with Image.open(png) as img:
        assert img.size == (512, 512)
        assert img.getpixel((0, 0)) == (0, 0, 0)
        assert len(img.getcolors(maxcolors=1 << 16)) > 10  # a coloured skeleton was drawn
    make_photos(tmp_path / "photos", 1)
    with FakeEndpoint() as fake:
        result = run_cli(
            "generate",
            str(tmp_path / "photos"),
            "--pose",
            str(pose),
            "--endpoint",
            fake.url,
            "-o",
            str(tmp_path / "out"),
            "--json",
        )
    assert result.returncode == 0, result.stderr
    line = json.loads(result.stdout)
    assert line["pose"] == "salute-pose" and Path(line["output"]).is_file()


@pytest.mark.slow
def test_user_catalog_example_merges(tmp_path, run_cli):
    listed = run_cli("--catalog", str(EXAMPLES / "my-models.toml"), "models", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    models = {m["modelKey"]: m for m in json.loads(listed.stdout)}
    assert models["avatar-generator:anime-openpose-sd15"]["resolution"] == "512x768"
    ultra = models["avatar-generator:controlnet-openpose-sdxl-ultra"]
    assert ultra["fallbacks"] == ["avatar-generator:controlnet-openpose-sdxl"] and ultra["creditCost"] == 8
    # The same file works from the config folder.
    home = Path(os.environ["AVATARGEN_HOME"])
    shutil.copy(EXAMPLES / "my-models.toml", home / "models.toml")
    again = run_cli("models", "show", "anime-openpose-sd15", "--json")
    assert again.returncode == 0 and json.loads(again.stdout)["defaults"]["num_inference_steps"] == 28
