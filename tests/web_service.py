"""The real service for the web page's browser tests: `avatargen api` in a subprocess on
127.0.0.1 (a free port, SQLite in a temporary data folder), a fake Inference Endpoint behind it
(tests/fake_endpoint.py, in this process), users made with the real `avatargen users add`.

Also used by bench/web_screenshots.py. Tokens are read from the CLI's --json output and handed to
the browser; they are never printed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from fake_endpoint import FakeEndpoint

REPO = Path(__file__).resolve().parents[1]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    src = str(REPO / "src")
    env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


class WebService:
    def __init__(self, data_dir: Path, delay: float = 0.3, **endpoint_options) -> None:
        self.data_dir = data_dir
        self.endpoint = FakeEndpoint(delay=delay, **endpoint_options)
        self.proc: subprocess.Popen | None = None
        self.url = ""

    def cli(self, *args: str) -> dict:
        done = subprocess.run(
            [sys.executable, "-m", "avatargen", *args, "--data-dir", str(self.data_dir), "--json"],
            capture_output=True,
            text=True,
            timeout=120,
            env=_env(),
        )
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    def add_user(self, name: str, tier: str, credits: int) -> str:
        """A new user's token (the one time it is shown)."""
        return self.cli("users", "add", name, "--tier", tier, "--credits", str(credits))["token"]

    def admin_token(self) -> str:
        return self.cli("users", "rotate", "admin")["token"]

    def start(self) -> WebService:
        self.endpoint.start()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._stderr = open(self.data_dir.parent / f"{self.data_dir.name}-api.stderr", "w+")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "avatargen", "api", "--port", "0", "--data-dir", str(self.data_dir),
             "--endpoint", self.endpoint.url, "--workers", "2", "--json"],
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            env=_env(),
        )  # fmt: skip
        line = self.proc.stdout.readline()
        if not line:
            self._stderr.seek(0)
            raise RuntimeError(f"avatargen api did not start: {self._stderr.read()}")
        self.url = json.loads(line)["url"].rstrip("/") + "/"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + "health", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError("avatargen api never answered /health")

    def get(self, path: str, token: str) -> httpx.Response:
        return httpx.get(
            self.url + path.lstrip("/"), headers={"Authorization": f"Bearer {token}"}, timeout=30
        )

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc is not None:
            self.proc.stdout.close()
            self._stderr.close()
        self.endpoint.stop()
