# ruff: noqa: F811  (pytest fixtures imported from serve_fixtures are shadowed by parameters)
"""Identity end to end on the tiny models: the real CLI's face crops reach the pipeline's
IP-Adapter through `avatargen serve --tiny` and through the local backend (`--tiny`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from serve_fixtures import fresh_local_backend, start_tiny_server, tiny_home, tiny_models  # noqa: F401

# identity_default: autouse, the real identity default and a fresh crop cache here too.
from test_identity_client import astronaut, identity_default, save  # noqa: F401


def pixels(path: str) -> bytes:
    from PIL import Image

    with Image.open(path) as img:
        return img.convert("RGB").tobytes()


def run(run_cli, photo: Path, out: Path, *args: str) -> dict:
    result = run_cli(
        "generate", str(photo), "--pose", "wave", "--steps", "2", "--seed", "7", "-o", str(out), "--json", *args,
        timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    (line,) = [json.loads(x) for x in result.stdout.splitlines() if x.strip()]
    assert line["status"] == "done"
    return line


@pytest.mark.slow
def test_identity_reaches_the_local_pipeline_and_ref_changes_it(tmp_path, run_cli, tiny_home):
    photo = save(astronaut(), tmp_path / "me.jpg")
    ref = save(astronaut().transpose(0).rotate(8), tmp_path / "ref.jpg")
    with_face = run(run_cli, photo, tmp_path / "a", "--tiny")
    with_ref = run(run_cli, photo, tmp_path / "b", "--tiny", "--ref", str(ref))
    without = run(run_cli, photo, tmp_path / "c", "--tiny", "--identity-scale", "0")
    assert pixels(with_face["output"]) != pixels(without["output"])  # the adapter acted
    assert pixels(with_ref["output"]) != pixels(with_face["output"])  # so did the reference
    from avatargen.images import read_metadata

    assert read_metadata(with_ref["output"])["identity"]["scale"] == 0.6


@pytest.mark.slow
def test_identity_reaches_serve_tiny(tmp_path, run_cli, tiny_home):
    photo = save(astronaut(), tmp_path / "me.jpg")
    server = start_tiny_server(tmp_path)
    try:
        with_face = run(run_cli, photo, tmp_path / "a", "--endpoint", server.url)
        without = run(run_cli, photo, tmp_path / "c", "--endpoint", server.url, "--identity-scale", "0")
    finally:
        server.stop()
    assert pixels(with_face["output"]) != pixels(without["output"])
