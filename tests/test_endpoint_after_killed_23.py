"""Issue 23 item 12: after a kill -9, an `--endpoint-after scale-to-zero` that never ran is said.

The batch is killed (SIGKILL, no finish()) while its endpoint works on an image; the next
`endpoint list` and the next `generate` say the endpoint was left running and how to stop it,
until it is scaled to zero. Real processes: the CLI in subprocesses, loopback fakes of the
Inference Endpoints API and of the endpoint.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from PIL import Image

from endpoints_api_fake import EndpointsApiFake
from fake_endpoint import FakeEndpoint

MODEL = "controlnet-openpose-sd15"


def photos(folder, count: int):
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        Image.new("RGB", (64, 80), (i * 40 % 256, 90, 160)).save(folder / f"p{i}.png")
    return folder


def test_a_killed_scale_to_zero_is_reported_until_done(run_cli, tmp_path, avatargen_home):
    with FakeEndpoint(delay=60) as endpoint, EndpointsApiFake(endpoint_url=endpoint.url) as api:
        env = api.env()
        assert run_cli("endpoint", "deploy", MODEL, env=env).returncode == 0
        assert "left running" not in run_cli("endpoint", "list", env=env).stderr
        batch = subprocess.Popen(
            [sys.executable, "-m", "avatargen", "generate", str(photos(tmp_path / "in", 1)), "-m", MODEL,
             "-o", str(tmp_path / "out"), "--endpoint-after", "scale-to-zero", "--yes"],
            env={**os.environ, **env}, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 120
            while endpoint.posts == 0 and time.monotonic() < deadline:  # the image is being made
                time.sleep(0.05)
            assert endpoint.posts == 1
        finally:
            batch.send_signal(signal.SIGKILL)
            batch.wait(30)
        assert api.calls("POST", "/scale-to-zero") == []  # finish() never ran
        endpoint.delay = 0

        listed = run_cli("endpoint", "list", env=env)
        assert listed.returncode == 0, listed.stderr
        (line,) = [line for line in listed.stderr.splitlines() if "left running" in line]
        assert f"pid {batch.pid}" in line and "--endpoint-after scale-to-zero" in line
        assert "avatargen endpoint scale-to-zero" in line

        again = run_cli(
            "generate", str(photos(tmp_path / "more", 1)), "-m", MODEL, "-o", str(tmp_path / "o2"), env=env
        )
        assert again.returncode == 0, again.stderr
        assert "left running" in again.stderr

        assert run_cli("endpoint", "scale-to-zero", MODEL, env=env).returncode == 0
        assert "left running" not in run_cli("endpoint", "list", env=env).stderr


def test_a_batch_that_kept_its_promise_leaves_nothing_to_report(run_cli, tmp_path):
    with FakeEndpoint() as endpoint, EndpointsApiFake(endpoint_url=endpoint.url) as api:
        env = api.env()
        assert run_cli("endpoint", "deploy", MODEL, env=env).returncode == 0
        done = run_cli("generate", str(photos(tmp_path / "in", 1)), "-m", MODEL, "-o", str(tmp_path / "out"),
                       "--endpoint-after", "scale-to-zero", env=env)  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert len(api.calls("POST", "/scale-to-zero")) == 1
        assert "left running" not in run_cli("endpoint", "list", env=env).stderr
