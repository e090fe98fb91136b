"""The whole path on the tiny model: the real CLI -> `avatargen serve --tiny` in a subprocess on
loopback -> a real diffusers pipeline -> an output file with metadata, and the ledger charged.
Also its twin without a server: the quickstart command running the model in-process."""

# ruff: noqa: F811  (pytest fixtures imported from serve_fixtures shadow their names)
from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from avatargen.images import read_metadata
from serve_fixtures import request_body, tiny_home, tiny_models, tiny_server  # noqa: F401
from test_generate_e2e import credits, json_lines, make_photos


@pytest.mark.slow
def test_cli_through_tiny_server_to_file(tmp_path, run_cli, tiny_server):
    make_photos(tmp_path / "photos", 2)
    catalog = tmp_path / "huge.toml"
    catalog.write_text(  # a model whose size the server refuses: a bad request end to end
        '[[models]]\nkey = "avatar-generator:huge-sd15"\nname = "Huge"\nhuggingface_model = "x/y"\n'
        'base_model = "x/z"\narchitecture = "sd15"\ntier = "free"\ncredit_cost = 3\n'
        'resolution = "4096x4096"\nquality = "sd"\nprocessing_time = "?"\n'
    )
    # Sent at once: the server is still loading (503 + estimated_time), and the batch waits it out.
    assert httpx.post(tiny_server.url, json=request_body(), timeout=30).status_code == 503
    out = tmp_path / "out"
    result = run_cli(
        "generate",
        str(tmp_path / "photos"),
        "--pose",
        "wave",
        "--endpoint",
        tiny_server.url,
        "-o",
        str(out),
        "--steps",
        "2",
        "--json",
        timeout=300,
    )
    assert result.returncode == 0, result.stderr + tiny_server.stderr()
    lines = json_lines(result.stdout)
    assert [line["status"] for line in lines] == ["done", "done"]
    from PIL import Image

    for line in lines:
        with Image.open(line["output"]) as img:
            assert img.size == (512, 512)
            assert "Steps: 2" in img.text["parameters"]
            # The scheduler the server really ran (tiny models use Euler), not the model's default.
            assert "Sampler: Euler," in img.text["parameters"]
        assert read_metadata(line["output"])["job_key"] == line["job_key"]
    assert credits(run_cli)["balance"] == 100 - 6

    # A bad request is refused by the server (422), reported per job, and refunded.
    bad = run_cli(
        "--catalog",
        str(catalog),
        "generate",
        str(tmp_path / "photos"),
        "--model",
        "huge-sd15",
        "--endpoint",
        tiny_server.url,
        "-o",
        str(out),
        "--steps",
        "2",
        "--strength",
        "0",
        "--json",
        timeout=300,
    )
    assert bad.returncode == 9  # every job refused with 422: the provider's code (README rule)
    failed = json_lines(bad.stdout)
    assert {line["status"] for line in failed} == {"failed"}
    assert all("4096" in line["error"] for line in failed), failed
    assert credits(run_cli)["balance"] == 100 - 6


@pytest.mark.slow
def test_quickstart_runs_in_process_on_the_tiny_model(tmp_path, run_cli, tiny_home):
    """The README's quickstart (`avatargen generate me.jpg --pose wave,sitting`) with no endpoint:
    the serve extra is installed, so the model runs in-process; AVATARGEN_LOCAL_TINY swaps in the
    tiny weights of the same architecture, since CI cannot download the real ones. Two avatars, one
    per pose, for 6 credits, as the README says."""
    photo = make_photos(tmp_path, 1)[0]
    result = run_cli(
        "generate",
        str(photo),
        "--pose",
        "wave,sitting",
        "--steps",
        "2",
        "--json",
        env={"AVATARGEN_LOCAL_TINY": "1"},
        cwd=tmp_path,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    lines = [json.loads(text) for text in result.stdout.splitlines()]
    assert sorted(line["pose"] for line in lines) == ["sitting", "wave"]
    for line in lines:
        output = Path(line["output"])
        if not output.is_absolute():
            output = tmp_path / output
        assert output.parent == tmp_path / "avatars" and output.is_file()
    assert "cpu" in result.stderr.lower()  # says once where it runs, and that a CPU is slow
    assert credits(run_cli)["balance"] == 100 - 6
