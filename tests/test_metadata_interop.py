"""Our PNG metadata as other software reads it: a PNG made by the real CLI (generate -> a
loopback endpoint -> write_output), read by sd-parsers (in our venv) and by sd-prompt-reader
(in a venv of its own, see .ci/setup-sdreader.sh). Both must find the prompt, the negative
prompt, steps, sampler, CFG scale, seed, size and the model."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from fake_endpoint import FakeEndpoint
from interop import interop_python

PROMPT = "a friendly avatar, studio light"
NEGATIVE = "blurry, extra fingers"
MODEL = "controlnet-openpose-sd15"
# SD 1.5's base model loads PNDMScheduler (PLMS steps): what runs when the backend names none.
SAMPLER = "PLMS"


def generate(run_cli, tmp_path: Path, *extra: str) -> Path:
    photo = tmp_path / "me.jpg"
    Image.new("RGB", (96, 128), (180, 140, 120)).save(photo)
    with FakeEndpoint() as endpoint:
        result = run_cli(
            "generate", str(photo), "--endpoint", endpoint.url, "-o", str(tmp_path / "out"),
            "--model", MODEL, "--pose", "wave", "--prompt", PROMPT, "--negative-prompt", NEGATIVE,
            "--steps", "12", "--guidance", "6.5", "--seed", "4242", "--json", *extra,
        )  # fmt: skip
    assert result.returncode == 0, result.stderr
    (line,) = [json.loads(text) for text in result.stdout.splitlines()]
    assert line["status"] == "done"
    return Path(line["output"])


@pytest.fixture
def avatar(run_cli, tmp_path) -> Path:
    """An img2img avatar (the photo sent with --strength 0.75; img2img is opt-in)."""
    return generate(run_cli, tmp_path, "--strength", "0.75")


def sd_parsers_read(path: Path):
    from sd_parsers import ParserManager

    info = ParserManager().parse(path)
    assert info is not None, "sd-parsers recognised no generator in the PNG"
    return info


@pytest.mark.slow
def test_sd_parsers_reads_every_field(avatar):
    from sd_parsers.data import Generators

    info = sd_parsers_read(avatar)
    assert info.generator == Generators.AUTOMATIC1111
    (sampler,) = info.samplers
    assert [p.value for p in sampler.prompts] == [PROMPT]
    assert [p.value for p in sampler.negative_prompts] == [NEGATIVE]
    assert sampler.name == SAMPLER
    assert sampler.parameters == {"steps": "12", "cfg_scale": "6.5", "seed": "4242"}
    assert sampler.model is not None and sampler.model.name == MODEL
    assert info.metadata["Size"] == "512x512"
    assert info.metadata["Denoising strength"] == "0.75"
    assert info.metadata["Pose"] == "wave" and info.metadata["ControlNet"] == "openpose"


@pytest.mark.slow
def test_sd_parsers_sees_no_denoising_strength_without_the_photo(run_cli, tmp_path):
    info = sd_parsers_read(generate(run_cli, tmp_path))
    assert info.samplers[0].name == SAMPLER and "Denoising strength" not in info.metadata


READER = """
import json, sys
from sd_prompt_reader.image_data_reader import ImageDataReader

reader = ImageDataReader(sys.argv[1])
print(json.dumps({
    "status": reader.status.name, "tool": reader.tool, "positive": reader.positive,
    "negative": reader.negative, "parameter": reader.parameter,
    "width": reader.width, "height": reader.height, "setting": reader.setting,
}))
"""


@pytest.mark.slow
def test_sd_prompt_reader_reads_every_field(avatar):
    python = interop_python("AVATARGEN_SDREADER_PYTHON")
    # Its non-GUI reader: importing it loads tkinter modules but opens no window (runs headless).
    result = subprocess.run(
        [str(python), "-c", READER, str(avatar)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    read = json.loads(result.stdout)
    assert read["status"] == "READ_SUCCESS" and read["tool"] == "A1111 webUI"
    assert read["positive"] == PROMPT and read["negative"] == NEGATIVE
    assert read["parameter"] == {
        "model": MODEL,
        "sampler": SAMPLER,
        "seed": "4242",
        "cfg": "6.5",
        "steps": "12",
        "size": "512x512",
    }
    assert (read["width"], read["height"]) == ("512", "512")
    assert "Denoising strength: 0.75" in read["setting"]
