"""HTTP gets ready while a batch is planned (issue 15): httpx's import and its TLS context are
built on a thread started by `generate`, and the client uses that context (verification kept)."""

from __future__ import annotations

import ssl
import threading

import httpx
import pytest

from avatargen.providers import http_client, warmup


def _fresh(monkeypatch):
    monkeypatch.setattr(warmup, "_thread", None)
    monkeypatch.setattr(warmup, "_context", [])


def test_the_client_uses_the_context_built_off_the_main_thread(monkeypatch):
    _fresh(monkeypatch)
    built_on = []
    real = httpx.create_ssl_context

    def create(*args, **kwargs):
        built_on.append(threading.current_thread().name)
        return real(*args, **kwargs)

    monkeypatch.setattr(httpx, "create_ssl_context", create)
    given = {}
    monkeypatch.setattr(http_client.httpx, "Client", lambda **kwargs: given.update(kwargs))
    warmup.start()
    http_client.new_client()
    assert built_on == ["avatargen-http-warmup"]
    context = given["verify"]
    assert isinstance(context, ssl.SSLContext) and context is warmup.ssl_context()
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname  # still verifying


def test_without_a_warm_up_or_when_it_failed_the_client_builds_its_own(monkeypatch):
    given = {}
    monkeypatch.setattr(http_client.httpx, "Client", lambda **kwargs: given.update(kwargs))
    _fresh(monkeypatch)
    http_client.new_client()
    assert given["verify"] is True  # never started: httpx's default

    _fresh(monkeypatch)
    monkeypatch.setattr(httpx, "create_ssl_context", lambda *a, **k: 1 / 0)
    warmup.start()
    http_client.new_client()
    assert given["verify"] is True  # the warm-up failed: httpx's default, which says why if it fails too


@pytest.mark.slow
def test_a_run_that_stops_early_never_crashes_under_the_warm_up(tmp_path):
    """Bad input stops `generate` while the warm-up may still be importing ssl: the interpreter
    must not be torn down under it (as a daemon thread it crashed ~1 run in 10 with SIGSEGV).
    The thread is one the interpreter waits for, and a dozen early stops all exit 5."""
    import os
    import subprocess
    import sys

    warmup.start()
    assert not warmup._thread.daemon
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "a.jpg").write_bytes(b"\xff\xd8 not read: the pose file is checked first")
    env = {**os.environ, "AVATARGEN_HOME": str(tmp_path / "home")}
    args = [sys.executable, "-m", "avatargen", "generate", str(tmp_path / "photos"), "--pose",
            str(tmp_path / "missing.json"), "--endpoint", "http://127.0.0.1:9/"]  # fmt: skip
    codes = [subprocess.run(args, env=env, capture_output=True, timeout=60).returncode for _ in range(12)]
    assert codes == [5] * 12
