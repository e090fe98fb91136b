"""The quickstart's first run without weights: an offline machine, an unreachable or refusing Hub.

`avatargen generate me.jpg --pose wave` with the serve extra and no endpoint runs the model
in-process. Without its weights it must fail once, in about a second, with one line that says
why and the ways forward (--tiny, --model-dir, --endpoint), not after minutes of
huggingface_hub retries per job; and a run on the tiny model must leave stderr to avatargen.
The Hub is never contacted: HF_HUB_OFFLINE, a closed 127.0.0.1 port, or a fake Hub on 127.0.0.1
answering HEAD the way huggingface.co does.
"""

from __future__ import annotations

import errno
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from avatargen.catalog import load_catalog
from avatargen.errors import ModelLoadError
from avatargen.providers.base import GenerationRequest
from avatargen.providers.local import LocalProvider
from cli_helpers import run_main
from helpers.images import save_photo
from router_fakes import FakeHub
from serve_fixtures import fresh_local_backend, pose_png  # noqa: F401 - fixtures

WAYS = ("--tiny", "noise", "--model-dir DIR", "--endpoint URL")


pytestmark = pytest.mark.usefixtures("fresh_local_backend")


@pytest.fixture
def hub_offline(monkeypatch):
    """HF_HUB_OFFLINE=1 as huggingface_hub sees it (it reads the variable once, on import)."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)


def _request(model):
    return GenerationRequest(
        model=model,
        prompt="a portrait",
        negative_prompt="",
        width=64,
        height=64,
        steps=2,
        guidance_scale=5.0,
        controlnet_conditioning_scale=1.0,
        seed=1,
        pose_png=pose_png(64, 64),
    )


def _photo(folder: Path) -> Path:
    return save_photo(folder / "photo.png", (96, 128), (180, 120, 90))


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_offline_without_weights_fails_once_with_the_ways_forward(hub_offline, monkeypatch):
    import huggingface_hub

    from avatargen.serve import pipelines

    probes = []
    real_probe = huggingface_hub.get_hf_file_metadata
    monkeypatch.setattr(
        huggingface_hub, "get_hf_file_metadata", lambda *a, **k: probes.append(a) or real_probe(*a, **k)
    )
    monkeypatch.setattr(pipelines, "_from_hub", lambda *a, **k: pytest.fail("no download may start"))
    said: list[str] = []
    model = load_catalog().lookup("controlnet-openpose-sd15")
    provider = LocalProvider(model, say=said.append)
    started = time.monotonic()
    with pytest.raises(ModelLoadError) as caught:
        provider.generate(_request(model))
    first_s = time.monotonic() - started
    error = caught.value
    assert (error.exit_code, error.stops_batch) == (6, True)
    assert "HF_HUB_OFFLINE=1" in error.message and "not in the download cache" in error.message
    assert all(way in error.hint for way in WAYS), error.hint
    assert "\n" not in error.one_line()
    assert said == []  # no "where it runs" for a model that cannot run
    # The next job, or another provider for the same model, fails at once: no second attempt.
    started = time.monotonic()
    for again in (provider, LocalProvider(model, say=said.append)):
        with pytest.raises(ModelLoadError, match="HF_HUB_OFFLINE"):
            again.generate(_request(model))
    assert len(probes) == 1
    assert time.monotonic() - started < 0.5
    print(f"first failure {first_s:.2f}s")


@pytest.mark.slow
def test_unreachable_hub_through_the_real_cli(tmp_path, run_cli):
    """A closed port as the Hub, an empty HF_HOME: exit 6, one error line, no retry lines."""
    photo = _photo(tmp_path)
    env = {"HF_HUB_OFFLINE": "0", "HF_ENDPOINT": f"http://127.0.0.1:{_closed_port()}"}
    env["HF_HOME"] = str(tmp_path / "empty-hf-home")
    started = time.monotonic()
    result = run_cli("generate", str(photo), "--provider", "local", "--yes", env=env, timeout=300)
    wall = time.monotonic() - started
    print(f"unreachable Hub: exit {result.returncode} after {wall:.1f}s wall")
    errors = [line for line in result.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1, result.stderr
    assert "Hugging Face Hub (127.0.0.1:" in errors[0] and "not reachable (connection refused)" in errors[0]
    assert all(way in errors[0] for way in WAYS), errors[0]
    assert "Retrying" not in result.stderr and "Traceback" not in result.stderr
    assert result.returncode == 6, result.stderr


_PROBE_SCRIPT = """
import json, sys
from avatargen.catalog import load_catalog
from avatargen.errors import ModelLoadError
from avatargen.providers.local import LocalProvider
answers = []
for alias in sys.argv[1:]:
    model = load_catalog().lookup(alias)
    try:
        LocalProvider(model, say=lambda _: None)._ensure_loaded(None)
    except ModelLoadError as exc:
        answers.append({"code": exc.exit_code, "line": exc.one_line()})
print(json.dumps(answers))
"""


@pytest.mark.slow
def test_gated_and_missing_repos_say_log_in(tmp_path, run_cli):
    # HEAD of a file: lllyasviel's repo answers as a gated one, any other as missing or private.
    with FakeHub(gated=("/lllyasviel/",)) as hub:
        env = {
            "HF_HUB_OFFLINE": "0",
            "HF_ENDPOINT": hub.url,
            "HF_HOME": str(tmp_path / "empty-hf-home"),
        }
        result = subprocess.run(
            [sys.executable, "-c", _PROBE_SCRIPT, "controlnet-openpose-sd15", "controlnet-openpose-sdxl"],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, **env},
            cwd=tmp_path,
        )
    assert result.returncode == 0, result.stderr
    gated, missing = json.loads(result.stdout)
    assert gated["code"] == missing["code"] == 6
    assert "lllyasviel/control_v11p_sd15_openpose is gated on the Hugging Face Hub" in gated["line"]
    assert "hf auth login" in gated["line"]
    assert (
        "thibaud/controlnet-openpose-sdxl-1.0 is not on the Hugging Face Hub, or it is private"
        in missing["line"]
    )
    assert all(way in missing["line"] for way in WAYS)


@pytest.mark.parametrize(
    ("chain", "expected"),
    [
        (OSError(errno.ENOSPC, "No space left on device"), "out of disk space while saving"),
        (PermissionError(errno.EACCES, "Permission denied", "/ro/hub"), "cannot write /ro/hub"),
        ("diffusers-wrapped connect error", "is not reachable (connection refused)"),
    ],
)
def test_load_failures_in_plain_words(chain, expected):
    from avatargen.serve.pipelines import LoadError
    from avatargen.serve.resolve import load_error

    if isinstance(chain, str):
        # What diffusers raises offline: its own OSError, raised while handling huggingface_hub's
        # LocalEntryNotFoundError, itself caused by the connection error.
        import httpx2
        from huggingface_hub.errors import LocalEntryNotFoundError

        try:
            try:
                try:
                    raise httpx2.ConnectError("[Errno 111] Connection refused")
                except httpx2.ConnectError as exc:
                    raise LocalEntryNotFoundError("cannot find the requested files") from exc
            except LocalEntryNotFoundError:
                raise OSError("x does not appear to have a file named config.json.")  # noqa: B904
        except OSError as exc:
            chain = exc
    wrapped = LoadError("could not load x: ...")
    wrapped.__cause__ = chain
    error = load_error(wrapped, load_catalog().lookup("controlnet-openpose-sd15"))
    assert isinstance(error, ModelLoadError) and expected in error.message, error.message


def test_serve_without_weights_fails_before_listening(hub_offline, monkeypatch, capsys):
    code, out, err = run_main(monkeypatch, capsys, "serve", "--port", "0")
    assert code == 6 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "HF_HUB_OFFLINE=1" in lines[0], err
    assert "--tiny" in lines[0] and "--model-dir DIR" in lines[0]
    assert "--endpoint" not in lines[0]  # `avatargen serve` is the endpoint


@pytest.mark.slow
def test_a_tiny_run_leaves_stderr_to_avatargen(tmp_path, run_cli):
    """transformers' torchvision notices, huggingface_hub's UserWarnings and the tqdm bars of
    building, saving and loading the pipeline stay off a non-terminal stderr."""
    photo = _photo(tmp_path)
    started = time.monotonic()
    result = run_cli(
        "generate", str(photo), "--pose", "wave", "--steps", "2", "--provider", "local", "--yes",
        env={"AVATARGEN_LOCAL_TINY": "1"}, timeout=600,
    )  # fmt: skip
    print(f"tiny run: {time.monotonic() - started:.1f}s wall")
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    assert lines == [
        "weights: a tiny random-weight model of the sd15 architecture, built here without downloads "
        "(its images are noise)",
        "device: CPU (tiny model: 10-30 s to start, then a second or two per image at --steps 2)",
    ], result.stderr


def test_quiet_leaves_the_libraries_alone_when_debugging_or_told_otherwise(monkeypatch):
    from avatargen.quiet import ENV_NAMES, quiet

    monkeypatch.setenv("AVATARGEN_DEBUG", "1")
    quiet()
    assert not any(os.environ.get(name) for name in ENV_NAMES)
    monkeypatch.delenv("AVATARGEN_DEBUG")
    monkeypatch.setenv("TRANSFORMERS_VERBOSITY", "info")  # the user's own choice wins
    quiet()
    assert os.environ["TRANSFORMERS_VERBOSITY"] == "info" and os.environ["DIFFUSERS_VERBOSITY"] == "error"
