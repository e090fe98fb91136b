"""The real `avatargen api` process for end-to-end tests: started on a free port with a fake
endpoint behind it, its URL read from its first line, stopped or killed -9."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

SRC = str(Path(__file__).resolve().parents[1] / "src")


def write_config(home: Path, service: str) -> None:
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text(service, encoding="utf-8")


def env_for(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING", "AVATARGEN_"))}
    env.update(AVATARGEN_HOME=str(home), PYTHONPATH=SRC, NO_COLOR="1", HF_HUB_OFFLINE="1")
    return env


class ApiProcess:
    def __init__(
        self, home: Path, endpoint: str, database: str | None = None, workers: int = 2, command: str = "api"
    ):
        self.home = home
        self.endpoint = endpoint
        self.database = database
        self.workers = workers
        self.command = command
        self.proc: subprocess.Popen | None = None
        self.url = ""
        self.log = home / "api.log"

    def start(self, timeout: float = 60) -> ApiProcess:
        argv = [
            sys.executable,
            "-m",
            "avatargen",
            self.command,
            "--workers",
            str(self.workers),
            "--endpoint",
            self.endpoint,
        ]
        if self.command == "api":
            argv += ["--port", "0"]
        if self.database:
            argv += ["--database", self.database]
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=log, env=env_for(self.home))
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        line = b""
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if line or self.proc.poll() is not None:
                break
        text = line.decode()
        if self.command == "api":
            assert " on http://" in text, f"api did not start: {text!r}; log: {self.log.read_text()[-2000:]}"
            self.url = text.split(" on ", 1)[1].split()[0]
        return self

    def output(self) -> str:
        """Everything the process wrote (stdout after its first line, and its log)."""
        rest = b""
        if self.proc and self.proc.stdout and self.proc.poll() is not None:
            rest = self.proc.stdout.read() or b""
        return rest.decode(errors="replace") + self.log.read_text(errors="replace")

    def kill9(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill9()

    def __enter__(self) -> ApiProcess:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def jpeg(width=640, height=480, gps=False) -> bytes:
    import io

    from PIL import Image

    img = Image.new("RGB", (width, height), (180, 120, 90))
    out = io.BytesIO()
    if gps:
        exif = Image.Exif()
        exif[0x010F] = "CameraMaker"
        exif[0x8825] = {1: "N", 2: (52.0, 22.0, 1.0), 3: "E", 4: (4.0, 53.0, 2.0)}  # GPSInfo
        img.save(out, "JPEG", exif=exif)
    else:
        img.save(out, "JPEG")
    return out.getvalue()
