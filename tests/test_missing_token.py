"""No Hugging Face token for a backend that needs one: `generate` and `retry` stop before
anything happens (exit 7, one line, no batch or job in the ledger, no credit reserved, no
request sent), through the real CLI in a subprocess against loopback fakes."""

from __future__ import annotations

import json
import sqlite3
import tomllib
from pathlib import Path

import pytest

from endpoints_api_fake import USER, EndpointsApiFake
from fake_endpoint import FakeEndpoint
from helpers.images import save_photo
from loopback import LoopbackServer
from router_fakes import FakeCDN, FakeRouter

ROUTER_LINE = (
    "error: {backend} needs a Hugging Face token, and none was found — set HF_TOKEN (or run `hf auth login`); "
    "a fine-grained token needs the 'Make calls to Inference Providers' permission"
)


def photos(folder: Path) -> Path:
    save_photo(folder / "person0.jpg", (96, 128), (40, 90, 160), quality=90)
    return folder


def assert_nothing_recorded(run_cli, home: Path) -> None:
    ledger = home / "data" / "ledger.db"
    if ledger.exists():
        with sqlite3.connect(ledger) as db:
            assert db.execute("SELECT COUNT(*) FROM batches").fetchone() == (0,)
            assert db.execute("SELECT COUNT(*) FROM jobs").fetchone() == (0,)
    history = run_cli("history", "--json")
    assert history.returncode == 0 and history.stdout.strip() in ("", "[]"), history.stdout
    credits = json.loads(run_cli("credits", "--json").stdout)
    assert credits["reserved"] == 0 and credits["balance"] == 100


def refused_in_one_line(result, line: str) -> None:
    assert result.returncode == 7, result.stderr
    assert result.stderr.splitlines() == [line]
    assert result.stdout == ""


@pytest.fixture
def router(monkeypatch):
    with FakeCDN() as cdn, FakeRouter(cdn, token="hf_unused") as fake:
        monkeypatch.setenv("AVATARGEN_ROUTER_URL", fake.url)
        monkeypatch.setenv("HF_ENDPOINT", fake.url)  # nothing may reach huggingface.co
        yield fake


@pytest.mark.slow
def test_hf_providers_without_a_token_stops_before_a_batch(tmp_path, run_cli, router, avatargen_home):
    args = ["generate", str(photos(tmp_path / "in")), "-m", "qwen-image-edit-pose", "-o", str(tmp_path / "o")]
    result = run_cli(*args, "--yes")
    refused_in_one_line(result, ROUTER_LINE.format(backend="hf-providers"))
    assert router.requests == []
    assert not (tmp_path / "o").exists()
    assert_nothing_recorded(run_cli, avatargen_home)


class Sink(LoopbackServer):
    """A proxy that takes connections and answers nothing useful: counts what would have left."""

    def __init__(self) -> None:
        from http.server import BaseHTTPRequestHandler

        sink = self
        self.hits = 0

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_CONNECT(self) -> None:
                sink.hits += 1
                self.send_error(502)

        self.listen(Handler)


@pytest.mark.slow
def test_hf_inference_without_a_token_stops_before_a_batch(tmp_path, run_cli, avatargen_home):
    # The serverless router is a public host: a proxy on loopback stands between, so the code
    # before this fix (which sent the request) failed here without leaving the machine.
    with Sink() as proxy:
        env = {"HTTPS_PROXY": proxy.url, "HTTP_PROXY": proxy.url, "NO_PROXY": ""}
        result = run_cli("generate", str(photos(tmp_path / "in")), "-m", "controlnet-openpose-sd15",
                         "--provider", "hf-inference", "-o", str(tmp_path / "o"), "--yes", env=env)  # fmt: skip
    refused_in_one_line(result, ROUTER_LINE.format(backend="hf-inference"))
    assert proxy.hits == 0
    assert_nothing_recorded(run_cli, avatargen_home)


@pytest.mark.slow
def test_an_authenticated_deployed_endpoint_without_a_token_stops_before_a_batch(
    tmp_path, run_cli, avatargen_home
):
    with FakeEndpoint() as endpoint, EndpointsApiFake(endpoint_url=endpoint.url) as api:
        deployed = run_cli("endpoint", "deploy", "controlnet-openpose-sd15", env=api.env())
        assert deployed.returncode == 0, deployed.stderr
        no_token = {k: v for k, v in api.env().items() if k != "HF_TOKEN"}
        calls = len(api.requests)
        result = run_cli("generate", str(photos(tmp_path / "in")), "-m", "controlnet-openpose-sd15",
                         "-o", str(tmp_path / "o"), "--yes", env=no_token)  # fmt: skip
        ((name, _),) = [(raw["name"], raw) for raw in api.endpoints.values()]
    assert result.returncode == 7, result.stderr
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"error: endpoint {USER}/{name} (deployed by avatargen, authenticated) needs a ")
    assert "set HF_TOKEN (or run `hf auth login`)" in line
    assert endpoint.posts == 0 and len(api.requests) == calls
    assert_nothing_recorded(run_cli, avatargen_home)


@pytest.mark.slow
def test_a_public_deployed_endpoint_runs_without_a_token(tmp_path, run_cli, avatargen_home):
    with FakeEndpoint() as endpoint, EndpointsApiFake(endpoint_url=endpoint.url) as api:
        deployed = run_cli("endpoint", "deploy", "controlnet-openpose-sd15", "--security", "public",
                           env=api.env())  # fmt: skip
        assert deployed.returncode == 0, deployed.stderr
        config = tomllib.loads((avatargen_home / "config.toml").read_text())
        assert config["endpoints"]["avatar-generator:controlnet-openpose-sd15"]  # generate's URL
        no_token = {k: v for k, v in api.env().items() if k != "HF_TOKEN"}
        result = run_cli("generate", str(photos(tmp_path / "in")), "-m", "controlnet-openpose-sd15",
                         "-o", str(tmp_path / "o"), "--yes", env=no_token)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert endpoint.posts == 1


@pytest.mark.slow
def test_retry_without_a_token_stops_before_touching_the_batch(tmp_path, run_cli, router, avatargen_home):
    # A batch that ran with a token and failed; the token is gone when it is retried.
    made = run_cli("generate", str(photos(tmp_path / "in")), "-m", "qwen-image-edit-pose",
                   "-o", str(tmp_path / "o"), "--yes", env={"HF_TOKEN": "hf_wrongtoken"})  # fmt: skip
    assert made.returncode == 7, made.stderr  # the router refused the token: the job stays queued
    with sqlite3.connect(avatargen_home / "data" / "ledger.db") as db:
        before = db.execute("SELECT id, status, finished_at FROM batches").fetchall()
        jobs = db.execute("SELECT status, attempts, started_at FROM jobs").fetchall()
    sent = len(router.requests)
    result = run_cli("retry")
    refused_in_one_line(result, ROUTER_LINE.format(backend="hf-providers"))
    assert len(router.requests) == sent
    with sqlite3.connect(avatargen_home / "data" / "ledger.db") as db:
        assert db.execute("SELECT id, status, finished_at FROM batches").fetchall() == before
        assert db.execute("SELECT status, attempts, started_at FROM jobs").fetchall() == jobs
