"""Issue 23 item 11: a new user's first ten minutes, README in hand.

Nothing listening at --endpoint stops at once (exit 8) naming the URL and `avatargen serve`,
creating nothing; with no backend the real blocker (exit 6) is said first and once, and the
no-backend line tells the README's one story about what a token alone gives.
"""

from __future__ import annotations

import json
import socket
import sqlite3
import time

import pytest
from PIL import Image

from avatargen.errors import MissingExtra
from cli_helpers import run_main


@pytest.fixture
def photo(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AVATARGEN_NO_LOCAL", "1")  # a core install: no in-process backend
    path = tmp_path / "me.jpg"
    Image.new("RGB", (64, 64), "red").save(path)
    return path


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/"  # closed again: nothing listens there


def error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("error:")]


def batches(home) -> int:
    ledger = home / "data" / "ledger.db"
    if not ledger.exists():
        return 0
    with sqlite3.connect(ledger) as db:
        return db.execute("select count(*) from batches").fetchone()[0]


def test_nothing_listening_stops_at_once_and_creates_nothing(monkeypatch, capsys, photo, avatargen_home):
    url = closed_port_url()
    began = time.monotonic()
    code, out, err = run_main(monkeypatch, capsys, "generate", str(photo), "--endpoint", url)
    took = time.monotonic() - began
    assert code == 8, err
    (line,) = error_lines(err)
    assert url in line and "avatargen serve" in line and "8000" in line
    assert "retry" not in err
    assert took < 5, took  # the pre-flight answer, not the retries of a job
    assert not (photo.parent / "avatars").exists()
    assert batches(avatargen_home) == 0
    code, out, _ = run_main(monkeypatch, capsys, "credits", "--json")
    report = json.loads(out)
    assert report["balance"] == 100 and report["reserved"] == 0 and report["requests_today"] == 0


def test_nothing_listening_from_config_names_the_key(monkeypatch, capsys, photo):
    url = closed_port_url()
    key = "endpoints.avatar-generator:controlnet-openpose-sd15"
    assert run_main(monkeypatch, capsys, "config", "set", key, url)[0] == 0
    code, _, err = run_main(monkeypatch, capsys, "generate", str(photo), "--yes")
    assert code == 8, err
    (line,) = error_lines(err)
    assert url in line and f"config {key}" in line


def test_no_backend_is_said_before_the_missing_pose_extra(monkeypatch, capsys, photo):
    def missing():
        raise MissingExtra("pose", "MediaPipe")

    monkeypatch.setattr("avatargen.poses.extract.require_mediapipe", missing)
    monkeypatch.delenv("AVATARGEN_IDENTITY_SCALE")  # identity on, as for a new user
    code, _, err = run_main(monkeypatch, capsys, "generate", str(photo))
    assert code == 6, err
    (line,) = error_lines(err)
    assert "no endpoint" in line and "avatargen[pose]" not in line


def test_no_backend_line_tells_what_a_token_alone_gives(monkeypatch, capsys, photo):
    code, _, err = run_main(monkeypatch, capsys, "generate", str(photo))
    assert code == 6, err
    (line,) = error_lines(err)
    # The README's words: serverless Hugging Face cannot take a control image; a token alone
    # runs the Inference Providers models (by name), not the ControlNet one asked for.
    assert "cannot take a control image" in line
    assert "a token alone runs Inference Providers: HF_TOKEN + --model qwen-image-edit-pose" in line
    assert "cannot run ControlNet" not in line
