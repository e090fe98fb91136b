"""Shared fixtures: every test gets a fresh AVATARGEN_HOME and no Hugging Face token."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# One torch thread per test process (and per server or CLI it starts, which inherit the
# environment): the suite shares a few cores, and torch's default of one OpenMP thread per core in
# every process oversubscribes them, so each tiny-model call waits on the others. Set before torch
# is imported (it reads the variable once, at import); a value the developer set is kept.
os.environ.setdefault("OMP_NUM_THREADS", "1")
if "torch" in sys.modules:  # imported already (a plugin): cap it now; never import it here
    sys.modules["torch"].set_num_threads(int(os.environ["OMP_NUM_THREADS"]))

_CLEARED = (
    "HF_TOKEN",
    "HUGGING_FACE_HUB_TOKEN",
    "HUGGINGFACE_API_KEY",
    "HF_TOKEN_PATH",
    "AVATARGEN_CATALOG",
    "AVATARGEN_ENDPOINT",
    "AVATARGEN_DEBUG",
)


# Fixtures that start real processes: the CLI in a subprocess, the tiny diffusers models, the
# service, a PostgreSQL server, a browser.
SLOW_FIXTURES = {"tiny_models", "run_cli", "pg_url", "service", "browser", "site"}
# Modules whose every test runs real servers (the service, PostgreSQL, Chromium).
SLOW_MODULES = ("test_service_", "test_web_")


def pytest_collection_modifyitems(config, items):
    """A test that starts a real process (SLOW_FIXTURES, SLOW_MODULES) is slow however it is
    written: the quick tier (`pytest -m "not slow"`) leaves it out; CI runs everything."""
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        if fixtures & SLOW_FIXTURES or item.module.__name__.startswith(SLOW_MODULES):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(autouse=True)
def avatargen_home(tmp_path_factory, monkeypatch) -> Path:
    """A fresh, empty user folder per test; the real home is never touched."""
    home = tmp_path_factory.mktemp("avatargen-home")
    monkeypatch.setenv("AVATARGEN_HOME", str(home))
    monkeypatch.setenv("HF_HOME", str(home / "hf-home"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    # Identity is on by default and needs a face; most tests' photos are flat colours. Tests of
    # identity itself (test_identity_client.py) take this out.
    monkeypatch.setenv("AVATARGEN_IDENTITY_SCALE", "0")
    for name in _CLEARED:
        monkeypatch.delenv(name, raising=False)
    return home


@pytest.fixture
def endpoint():
    """A FakeEndpoint (fake_endpoint.py) on 127.0.0.1, answering PNGs; stopped after the test."""
    from fake_endpoint import FakeEndpoint

    with FakeEndpoint() as fake:
        yield fake


@pytest.fixture
def cli():
    """Run the real CLI in-process (Typer's runner); returns the Result."""
    from typer.testing import CliRunner

    from avatargen.cli import app

    runner = CliRunner()

    def run(*args: str, input: str | None = None):
        return runner.invoke(app, list(args), input=input, catch_exceptions=False)

    return run


@pytest.fixture
def run_cli(tmp_path):
    """Run the real CLI in a subprocess (`python -m avatargen`), with this test's environment,
    from a temporary folder by default (so a developer's own ./.env never leaks in)."""

    def run(*args: str, input: str | None = None, timeout: float = 120, env: dict | None = None, cwd=None):
        full_env = dict(os.environ)
        if env:
            full_env.update(env)
        return subprocess.run(
            [sys.executable, "-m", "avatargen", *args],
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=full_env,
            cwd=cwd or tmp_path,
        )

    return run
