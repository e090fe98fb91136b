"""Issue 23 item 12: one URL check for every URL avatargen reads (urls.py), tested once per source.

A malformed URL ('http://[::1', 'https://[zz]/x.json', port 99999) used to reach exit 70
(urllib's ValueError) or pass the check: now an option's value is exit 2 naming the option, an
environment variable's or a config key's is exit 3 naming it, and nothing is planned or paid.
"""

from __future__ import annotations

import pytest
from PIL import Image

from avatargen.urls import url_problem
from cli_helpers import run_main

BAD = [
    "http://[::1",
    "https://[zz]/x.json",
    "http://127.0.0.1:99999/",
    "http://x:abc/",
    "ftp://x/",
    "http://",
]
GOOD = ["http://127.0.0.1:8000/", "https://xyz.endpoints.huggingface.cloud", "http://[::1]:8000/h?q=1"]
SD15 = "avatar-generator:controlnet-openpose-sd15"


@pytest.mark.parametrize("url", BAD)
def test_url_problem_names_every_malformed_url(url):
    assert url_problem(url)


@pytest.mark.parametrize("url", GOOD)
def test_url_problem_passes_good_urls(url):
    assert url_problem(url) is None


@pytest.fixture
def photo(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AVATARGEN_NO_LOCAL", "1")
    path = tmp_path / "me.jpg"
    Image.new("RGB", (64, 64), "red").save(path)
    return path


def _no_batch(home) -> bool:
    ledger = home / "data" / "ledger.db"
    if not ledger.exists():
        return True
    import sqlite3

    with sqlite3.connect(ledger) as db:
        return db.execute("select count(*) from batches").fetchone()[0] == 0


def _one_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, err
    assert "unexpected" not in err and "Traceback" not in err
    return lines[0]


@pytest.mark.parametrize("url", ["http://[::1", "https://[zz]/x.json"])
def test_pose_url_option(monkeypatch, capsys, photo, url):
    args = ["generate", str(photo), "--pose", url, "--endpoint", "http://127.0.0.1:9/", "--dry-run"]
    code, _, err = run_main(monkeypatch, capsys, *args)
    assert code == 2, err
    assert "--pose" in _one_line(err)


def test_poses_show_url_argument(monkeypatch, capsys, photo):
    code, _, err = run_main(monkeypatch, capsys, "poses", "show", "http://[::1")
    assert code == 2, err
    assert "NAME_OR_FILE" in _one_line(err)


@pytest.mark.parametrize("dry", [True, False])
def test_notify_url_refused_before_anything_is_paid(monkeypatch, capsys, photo, avatargen_home, dry):
    args = ["generate", str(photo), "--endpoint", "http://127.0.0.1:9/", "--notify-url", "http://[::1"]
    code, _, err = run_main(monkeypatch, capsys, *args, *(["--dry-run"] if dry else []))
    assert code == 2, err
    assert "--notify-url" in _one_line(err)
    assert _no_batch(avatargen_home)
    assert not (photo.parent / "avatars").exists()


def test_endpoint_option_port_out_of_range(monkeypatch, capsys, photo):
    code, _, err = run_main(
        monkeypatch, capsys, "generate", str(photo), "--endpoint", "http://127.0.0.1:99999/"
    )
    assert code == 2, err
    line = _one_line(err)
    assert "--endpoint" in line and "65535" in line


@pytest.mark.parametrize("dry", [True, False])
def test_router_url_environment_refused_before_planning(monkeypatch, capsys, photo, avatargen_home, dry):
    monkeypatch.setenv("AVATARGEN_ROUTER_URL", "http://[::1")
    args = ["generate", str(photo), "--model", "qwen-image-edit-pose", "--token", "hf_abcdefghijklmnop"]
    code, _, err = run_main(monkeypatch, capsys, *args, *(["--dry-run"] if dry else ["--yes"]))
    assert code == 3, err
    assert "AVATARGEN_ROUTER_URL" in _one_line(err)
    assert _no_batch(avatargen_home)


def test_router_url_environment_refused_by_retry(monkeypatch, capsys, photo):
    monkeypatch.setenv("AVATARGEN_ROUTER_URL", "https://[zz]/")
    code, _, err = run_main(monkeypatch, capsys, "retry")
    assert code == 3, err
    assert "AVATARGEN_ROUTER_URL" in _one_line(err)


def test_hub_url_environment(monkeypatch, capsys, photo):
    monkeypatch.setenv("HF_ENDPOINT", "http://[::1")
    code, _, err = run_main(monkeypatch, capsys, "generate", str(photo), "--dry-run")
    assert code == 3, err
    assert "HF_ENDPOINT" in _one_line(err)


def test_endpoint_environment_port_out_of_range(monkeypatch, capsys, photo):
    monkeypatch.setenv("AVATARGEN_ENDPOINT", "http://127.0.0.1:99999/")
    code, _, err = run_main(monkeypatch, capsys, "generate", str(photo), "--dry-run")
    assert code == 3, err
    assert "AVATARGEN_ENDPOINT" in _one_line(err)


def test_config_file_endpoint_port_out_of_range(monkeypatch, capsys, photo, avatargen_home):
    (avatargen_home / "config.toml").write_text(f'[endpoints]\n"{SD15}" = "http://127.0.0.1:99999/"\n')
    code, _, err = run_main(monkeypatch, capsys, "generate", str(photo), "--dry-run")
    assert code == 3, err
    assert f"config endpoints.{SD15}" in _one_line(err)


@pytest.mark.parametrize("url", ["http://[::1", "http://127.0.0.1:99999/", "https://[zz]/x"])
def test_config_set_endpoint_refuses_a_malformed_url(monkeypatch, capsys, url):
    code, _, err = run_main(monkeypatch, capsys, "config", "set", f"endpoints.{SD15}", url)
    assert code == 2, err
    assert f"endpoints.{SD15}" in _one_line(err)
    code, out, _ = run_main(monkeypatch, capsys, "config", "get", f"endpoints.{SD15}")
    assert out == ""


@pytest.mark.parametrize("name", ["AVATARGEN_ENDPOINTS_API", "HF_ENDPOINT"])
def test_endpoint_commands_check_their_api_urls(monkeypatch, capsys, name):
    monkeypatch.setenv("HF_TOKEN", "hf_abcdefghijklmnopqrstuvwxyz")
    monkeypatch.setenv(name, "http://[::1")
    code, _, err = run_main(monkeypatch, capsys, "endpoint", "list")
    assert code == 3, err
    assert name in _one_line(err)
