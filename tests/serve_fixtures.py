"""Fixtures for the server half: tiny models built once, and a real `avatargen serve --tiny`.

Use them from a test module with `from serve_fixtures import tiny_models, tiny_home, start_tiny_server`
(pytest picks up imported fixtures). The tiny models are built once per test run into a shared
temporary folder (`ensure_tiny` is a no-op when they exist) and linked into each test's fresh
AVATARGEN_HOME as `data/tiny-models`, which is where `--tiny` looks.
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> Path:
    """The folder holding both tiny pipelines (sd15 and sdxl), built on first use in this run."""
    from avatargen.serve.tiny import ensure_tiny

    root = tmp_path_factory.getbasetemp() / "tiny-models"
    for architecture in ("sd15", "sdxl"):
        ensure_tiny(architecture, root)
    return root


@pytest.fixture
def tiny_home(avatargen_home, tiny_models) -> Path:
    """This test's AVATARGEN_HOME with the shared tiny models in place (no rebuild per test)."""
    from avatargen.settings import data_dir

    link = data_dir() / "tiny-models"
    link.parent.mkdir(parents=True, exist_ok=True)
    if not link.exists():
        link.symlink_to(tiny_models, target_is_directory=True)
    return avatargen_home


@dataclass
class TinyServer:
    url: str
    process: subprocess.Popen
    stderr_path: Path
    first_line: str

    def stderr(self) -> str:
        return self.stderr_path.read_text(encoding="utf-8", errors="replace")

    def stop(self, timeout: float = 15) -> int:
        return stop_server(self.process, timeout)


@pytest.fixture
def fresh_local_backend(monkeypatch):
    """A fresh process as far as the local backend knows (nothing said, loaded or failed), and
    the variables quiet() sets in os.environ restored after the test."""
    import avatargen.providers.local as local_mod
    from avatargen.quiet import ENV_NAMES

    monkeypatch.setattr(local_mod, "_announced", set())
    monkeypatch.setattr(local_mod, "_loaded", {})
    for name in ENV_NAMES:
        monkeypatch.setenv(name, "")  # records the value to restore
        monkeypatch.delenv(name)


def _read_first_line(process: subprocess.Popen, timeout: float) -> str:
    selector = selectors.DefaultSelector()
    selector.register(process.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if selector.select(timeout=0.2):
                return process.stdout.readline()
            if process.poll() is not None:
                return ""
        return ""
    finally:
        selector.close()


def start_tiny_server(
    tmp_path: Path,
    *args: str,
    min_load_s: float = 1.5,
    env: dict[str, str] | None = None,
    timeout: float = 60,
) -> TinyServer:
    """Start `avatargen serve --tiny --port 0 --json` on 127.0.0.1 and return once its URL is known.

    The server answers 503 while it loads, at least `min_load_s` seconds (so a test can count on
    seeing the loading phase). Needs the tiny models in AVATARGEN_HOME (the `tiny_home` fixture),
    or it builds them itself. Always stop it: `server.stop()` (SIGTERM, then kill).
    """
    full_env = dict(os.environ)
    full_env["AVATARGEN_SERVE_MIN_LOAD_S"] = str(min_load_s)
    full_env.update(env or {})
    stderr_path = tmp_path / f"serve-{time.monotonic_ns()}.stderr"
    with open(stderr_path, "wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "avatargen", "serve", "--tiny", "--port", "0", "--json", *args],
            stdout=subprocess.PIPE,
            stderr=stderr,
            env=full_env,
            text=True,
        )
    line = _read_first_line(process, timeout)
    if not line:
        stop_server(process)
        raise RuntimeError(
            f"avatargen serve printed no URL; stderr:\n{stderr_path.read_text(errors='replace')}"
        )
    url = json.loads(line)["url"]
    return TinyServer(url=url, process=process, stderr_path=stderr_path, first_line=line)


def stop_server(process: subprocess.Popen, timeout: float = 15) -> int:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
    if process.stdout:
        process.stdout.close()
    return process.returncode


def wait_until_ready(url: str, timeout: float = 90) -> None:
    """Poll GET /health until it says Ok (200)."""
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url.rstrip("/") + "/health", timeout=5).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{url} was not ready within {timeout}s")


@pytest.fixture
def tiny_server(tmp_path, tiny_home):
    """A running `avatargen serve --tiny` (still loading when handed over); stopped afterwards."""
    server = start_tiny_server(tmp_path)
    try:
        yield server
    finally:
        server.stop()


def pose_png(width: int = 64, height: int = 64) -> bytes:
    """A small pose-like PNG: a white stick figure on black."""
    import io

    from PIL import Image, ImageDraw

    image = Image.new("RGB", (width, height), "black")
    draw = ImageDraw.Draw(image)
    cx = width // 2
    draw.line([(cx, height // 5), (cx, height * 3 // 5)], fill=(255, 0, 0), width=2)
    draw.line([(cx - width // 4, height // 3), (cx + width // 4, height // 3)], fill=(0, 255, 0), width=2)
    draw.ellipse([cx - 4, height // 10, cx + 4, height // 10 + 8], fill=(0, 0, 255))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def request_body(width: int = 64, height: int = 64, steps: int = 2, seed: int = 7, **extra) -> dict:
    import base64

    inputs = {
        "prompt": "a portrait",
        "negative_prompt": "blurry",
        "image": base64.b64encode(pose_png(width, height)).decode("ascii"),
        "num_inference_steps": steps,
        "guidance_scale": 5.0,
        "controlnet_conditioning_scale": 1.0,
        "width": width,
        "height": height,
        "seed": seed,
    }
    inputs.update(extra)
    return {"inputs": inputs}
