"""Issue 23 (2): an unreachable Hub / Endpoints API exits 8 on every supported huggingface_hub.

huggingface_hub 1.0 sends through httpx; 2.x through httpx2, whose errors are not subclasses of
httpx's. The CLI runs in a subprocess under each: this venv's (2.x) and .ci/setup-hub1.sh's (1.0).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from interop import interop_python

REPO = Path(__file__).resolve().parents[1]


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _python(which: str) -> str:
    return sys.executable if which == "newest" else str(interop_python("AVATARGEN_HUB1_PYTHON"))


def _hub_version(python: str) -> str:
    code = "import huggingface_hub; print(huggingface_hub.__version__)"
    return subprocess.run([python, "-c", code], capture_output=True, text=True, check=True).stdout.strip()


@pytest.mark.parametrize("which", ["newest", "1.0"])
@pytest.mark.parametrize(
    "args",
    [
        ("endpoint", "list", "--namespace", "me"),
        ("endpoint", "deploy", "controlnet-openpose-sd15", "--namespace", "me"),
    ],
)
def test_unreachable_api_is_a_network_error(which, args, tmp_path, avatargen_home):
    python = _python(which)
    version = _hub_version(python)
    assert version.startswith("1.0") if which == "1.0" else int(version.split(".")[0]) >= 2, version
    port = _closed_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO / "src"),
        "HF_TOKEN": "hf_unreachabletest000000",
        "HF_HUB_OFFLINE": "0",
        "HF_ENDPOINT": f"http://127.0.0.1:{port}",
        "AVATARGEN_ENDPOINTS_API": f"http://127.0.0.1:{port}/v2",
    }
    result = subprocess.run(
        [python, "-m", "avatargen", *args], capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path
    )
    assert result.returncode == 8, (version, result.returncode, result.stderr)
    assert "cannot reach the server (ConnectError)" in result.stderr
    assert "Traceback" not in result.stderr


def test_network_errors_are_told_by_what_they_are():
    import httpx

    from avatargen.deploy.hub import is_network_error, to_error
    from avatargen.errors import NetworkError, ProviderError

    assert is_network_error(httpx.ConnectError("refused"))
    assert is_network_error(httpx.ReadTimeout("slow"))
    httpx2 = pytest.importorskip("httpx2")  # what huggingface_hub 2.x depends on
    assert is_network_error(httpx2.ConnectError("refused"))
    assert is_network_error(httpx2.ConnectTimeout("slow"))
    assert is_network_error(ConnectionRefusedError(111, "refused"))
    try:  # wrapped: the cause counts
        try:
            raise httpx2.ConnectError("refused")
        except httpx2.ConnectError as inner:
            raise RuntimeError("while listing") from inner
    except RuntimeError as outer:
        assert is_network_error(outer)
    assert not is_network_error(FileNotFoundError(2, "no such file"))
    assert not is_network_error(ValueError("bad name"))
    assert isinstance(to_error(httpx2.ConnectError("x"), "list"), NetworkError)
    assert type(to_error(ValueError("x"), "list")) is ProviderError
