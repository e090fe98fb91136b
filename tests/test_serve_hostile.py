"""`avatargen serve --tiny` under eight hostile requests at once (issue "Hardening", item 10): a
12000x12000 PNG as pose or photo, deep and huge JSON, NaN, a 100k-character prompt. Each gets a
4xx JSON error, and the server's memory stays near what it was after loading (no timing here:
bench/serve_hostile.py prints the figures)."""

# ruff: noqa: F811  (pytest fixtures imported from serve_fixtures are shadowed by parameters)
from __future__ import annotations

import json

import pytest

from serve_fixtures import pose_png, start_tiny_server, tiny_home, tiny_models, wait_until_ready  # noqa: F401
from serve_hostile_bodies import attack, b64, hostile_bodies

MARGIN_MB = 300  # decoding one 12000x12000 bomb alone takes 576 MB; eight took 5.3 GB before the fix


@pytest.mark.slow
def test_eight_hostile_requests_at_once_leave_memory_near_the_baseline(tmp_path, tiny_home):
    # --queue 8: every request is let in and parsed (none is turned away early with a 429).
    server = start_tiny_server(tmp_path, "--queue", "8", min_load_s=0)
    try:
        wait_until_ready(server.url)
        result = attack(server.url, server.process.pid, hostile_bodies(b64(pose_png(512, 512))))
        for name, status, content_type, text in result["answers"]:
            assert status in (400, 413, 422), (name, status, text)
            assert content_type == "application/json", (name, content_type, text)
            assert json.loads(text)["error"], name
        margin_mb = (result["peak_kb"] - result["baseline_kb"]) / 1024
        assert margin_mb < MARGIN_MB, result
        assert server.process.poll() is None  # still serving
    finally:
        server.stop()
