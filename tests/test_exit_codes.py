"""Every row of the exit-code table (docs/exit-codes.md), reached through the real CLI in a subprocess.

The batch rule: nothing done and every failure alike gives that failure's code; otherwise 1.
129, 130 and 143 (signals) are reached in test_hardening_batch.py; 70 must be unreachable.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from avatargen import errors
from fake_endpoint import FakeEndpoint
from test_generate_e2e import credits, make_photos

SIGNAL_CODES = {errors.HANGUP, errors.INTERRUPTED, errors.TERMINATED}  # test_hardening_batch.py
# The codes the tests below reach (each `expect` refuses a code not listed here).
REACHED = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 74}


class StatusServer:
    """A loopback endpoint that answers every POST with one status and a JSON error body."""

    def __init__(self, status: int) -> None:
        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                self._answer(200, b"Ok")

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self._answer(status, json.dumps({"error": f"status {status} for this test"}).encode())

            def _answer(self, code: int, body: bytes) -> None:
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def __enter__(self) -> StatusServer:
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


def closed_port_url() -> str:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}/"


def expect(result, code: int) -> None:
    assert result.returncode == code, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr
    if code:
        assert len([line for line in result.stderr.splitlines() if line.startswith("error:")]) <= 1
    assert code in REACHED, f"add {code} to REACHED"


FAST = {"AVATARGEN_RETRY_SCALE": "0.01"}


@pytest.mark.slow
@pytest.mark.parametrize(
    ("status", "code"),
    [(401, 7), (403, 7), (400, 9), (422, 9), (402, 9), (404, 6), (500, 9)],
)
def test_one_photo_whose_only_job_failed_exits_with_that_failures_code(tmp_path, run_cli, status, code):
    make_photos(tmp_path / "photos", 1)
    with StatusServer(status) as server:
        result = run_cli(
            "generate",
            str(tmp_path / "photos"),
            "--endpoint",
            server.url,
            "-o",
            str(tmp_path / "o"),
            env=FAST,
        )
    expect(result, code)
    assert credits(run_cli)["balance"] == 100  # refunded


@pytest.mark.slow
def test_an_unreachable_endpoint_is_8(tmp_path, run_cli):
    make_photos(tmp_path / "photos", 2)
    result = run_cli(
        "generate",
        str(tmp_path / "photos"),
        "--endpoint",
        closed_port_url(),
        "-o",
        str(tmp_path / "o"),
        env=FAST,
    )
    expect(result, errors.NETWORK)


@pytest.mark.slow
def test_mixed_outcomes_are_1_and_success_is_0(tmp_path, run_cli):
    make_photos(tmp_path / "photos", 1)
    (tmp_path / "photos" / "notes.jpg").write_text("not an image")
    with FakeEndpoint() as fake:
        ok = run_cli(
            "generate", str(tmp_path / "photos" / "person000.jpg"), "--endpoint", fake.url, "-o", "o1"
        )
        expect(ok, errors.OK)
        make_photos(tmp_path / "more", 1, start=7)
        mixed = run_cli(
            "generate", str(tmp_path / "more"), str(tmp_path / "photos" / "notes.jpg"), "--endpoint", fake.url,
            "-o", "o2",
        )  # fmt: skip
    expect(mixed, errors.PARTIAL)


@pytest.mark.slow
def test_usage_config_credits_input_unavailable_limit_io(tmp_path, run_cli, avatargen_home):
    photos = tmp_path / "photos"
    make_photos(photos, 2)
    with FakeEndpoint() as fake:
        base = ("generate", str(photos), "--endpoint", fake.url, "-o", str(tmp_path / "o"))
        expect(run_cli(*base, "--concurrency", "0"), errors.USAGE)
        expect(run_cli(*base, "--pose", str(tmp_path / "missing.json")), errors.INPUT)
        expect(run_cli(*base, "--model", "sd35-controlnet-canny"), errors.UNAVAILABLE)  # coming soon
        expect(run_cli(*base, "--max-credits", "1"), errors.CREDITS)
        (tmp_path / "file").write_text("x")
        expect(
            run_cli("generate", str(photos), "--endpoint", fake.url, "-o", str(tmp_path / "file" / "o")), 74
        )
        assert run_cli("config", "set", "limits.daily_requests", "1").returncode == 0
        expect(run_cli(*base, "--concurrency", "1"), errors.LIMIT)
        assert fake.posts == 1
    (avatargen_home / "config.toml").write_text("this is = = not toml")
    expect(run_cli("credits"), errors.CONFIG)


@pytest.mark.slow
def test_a_missing_extra_is_11(tmp_path, run_cli):
    # A stand-in `mediapipe` that fails to import, as on an install without the pose extra.
    blocker = tmp_path / "blocked"
    (blocker / "mediapipe").mkdir(parents=True)
    (blocker / "mediapipe" / "__init__.py").write_text("raise ImportError('not installed')\n")
    make_photos(tmp_path / "photos", 1)
    import os

    path = os.pathsep.join(filter(None, [str(blocker), os.environ.get("PYTHONPATH")]))
    result = run_cli(
        "generate", str(tmp_path / "photos"), "--pose", "auto", "--endpoint", "http://127.0.0.1:9/",
        env={"PYTHONPATH": path},
    )  # fmt: skip
    expect(result, errors.MISSING_EXTRA)
    assert "avatargen[pose]" in result.stderr


def test_every_row_of_the_readme_table_is_reached():
    """The rows reached above, plus the signals, cover the whole table (70 is for bugs only)."""
    readme = (Path(__file__).resolve().parents[1] / "docs" / "exit-codes.md").read_text()
    assert "| 74 |" in readme
    missing = set(errors.EXIT_CODES) - REACHED - SIGNAL_CODES - {errors.INTERNAL}
    assert not missing, f"exit codes no test reached: {sorted(missing)}"


@pytest.mark.slow
def test_the_budget_hint_names_a_cheaper_model_only_when_there_is_one(tmp_path, run_cli):
    make_photos(tmp_path / "photos", 2)
    base = ("generate", str(tmp_path / "photos"), "--endpoint", "http://127.0.0.1:9/", "--max-credits", "1")
    cheapest = run_cli(*base)  # the default model is already the cheapest
    expect(cheapest, errors.CREDITS)
    assert "cheaper model" not in cheapest.stderr
    dearer = run_cli(*base, "--model", "controlnet-openpose-sdxl")
    expect(dearer, errors.CREDITS)
    assert "--model controlnet-openpose-sd15" in dearer.stderr
