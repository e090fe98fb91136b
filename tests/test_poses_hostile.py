"""Hostile pose inputs (hardening items 8 and 9): one line, exit 5, never a traceback or exit 70.

Local files and URLs on a loopback server: a decompression-bomb PNG, JSON nested 100,000 deep,
random bytes, and servers that trickle their answer (the URL deadline covers the whole download).
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import io
import os
import threading
import time

import pytest
from PIL import Image

from avatargen.errors import InputError
from avatargen.poses import sources
from cli_helpers import run_main


@functools.cache
def bomb_png() -> bytes:
    """A 400-megapixel bilevel PNG: about 50 KB on disk, 400 MB once decoded."""
    buf = io.BytesIO()
    Image.new("1", (20_000, 20_000)).save(buf, format="PNG")
    return buf.getvalue()


@functools.cache
def large_png() -> bytes:
    """70 megapixels: under Pillow's own bomb limits, over ours for pose images."""
    buf = io.BytesIO()
    Image.new("1", (10_000, 7_000)).save(buf, format="PNG")
    return buf.getvalue()


DEEP_JSON = ("[" * 100_000 + "]" * 100_000).encode()
DEEP_PEOPLE_JSON = ('{"people": ' + "[" * 100_000 + "]" * 100_000 + "}").encode()
RANDOM = bytes(range(256)) * 3 + os.urandom(200)

HOSTILE = {
    "bomb.png": bomb_png,
    "large.png": large_png,
    "deep.json": lambda: DEEP_JSON,
    "deep-people.json": lambda: DEEP_PEOPLE_JSON,
    "random.json": lambda: RANDOM,
    "random.png": lambda: RANDOM,
    "huge-int.json": lambda: b'{"people": [{"pose_keypoints_2d": [' + b"9" * 5000 + b", 1, 1]}]}",
    "huge-float.json": lambda: b'{"canvas_width": 1e300, "people": []}',
    "overflow.json": lambda: b'{"people": [{"pose_keypoints_2d": [' + b"1" + b"0" * 400 + b", 1, 1]}]}",
    "scalar-part.json": lambda: b'{"people": [{"pose_keypoints_2d": [], "face_keypoints_2d": 5}]}',
}


def check_one_line_exit_5(code: int, out: str, err: str, name: str) -> None:
    assert code == 5, err
    assert err.count("\n") == 1 and err.startswith("error: "), err
    assert name in err
    assert "Traceback" not in err and "bug in avatargen" not in err
    assert out == ""


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_pose_file_is_one_line_exit_5(monkeypatch, capsys, tmp_path, name):
    path = tmp_path / name
    path.write_bytes(HOSTILE[name]())
    code, out, err = run_main(monkeypatch, capsys, "poses", "show", str(path), "-o", str(tmp_path / "o.png"))
    check_one_line_exit_5(code, out, err, name)
    assert not (tmp_path / "o.png").exists()


def test_hostile_pose_in_generate_dry_run(monkeypatch, capsys, tmp_path):
    photo = tmp_path / "me.png"
    Image.new("RGB", (64, 64), (90, 90, 90)).save(photo)
    pose = tmp_path / "deep.json"
    pose.write_bytes(DEEP_JSON)
    code, out, err = run_main(monkeypatch, capsys, "generate", str(photo), "--pose", str(pose), "--dry-run")
    check_one_line_exit_5(code, out, err, "deep.json")


@pytest.mark.slow
def test_huge_canvas_is_drawn_at_most_8192_px(monkeypatch, capsys, tmp_path):
    path = tmp_path / "wide.json"
    body = [10_000, 2_000, 1, 10_000, 8_000, 1] + [0, 0, 0] * 16
    # Unbounded, this would be a 600 MB picture (and 100,000 px canvases, which are accepted, 15 GB).
    path.write_text(
        f'{{"canvas_width": 20000, "canvas_height": 10000, "people": [{{"pose_keypoints_2d": {body}}}]}}'
    )
    out_png = tmp_path / "o.png"
    code, _, err = run_main(monkeypatch, capsys, "poses", "show", str(path), "-o", str(out_png))
    assert code == 0, err
    with Image.open(out_png) as im:
        assert im.size == (8192, 4096)


# ---------------------------------------------------------------- URLs on a loopback server


class _Handler(http.server.BaseHTTPRequestHandler):
    routes: dict = {}

    def do_GET(self):  # noqa: N802 - the http.server hook
        route = self.routes.get(self.path)
        if route is None:
            self.send_error(404)
            return
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the client gave up, as it should
            route(self)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    """A loopback HTTP server; tests register path -> handler(request) in `routes`."""
    routes: dict = {}
    handler = type("Handler", (_Handler,), {"routes": routes})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", routes
    httpd.shutdown()
    httpd.server_close()


def send_body(body: bytes, content_type: str):
    def route(req):
        req.send_response(200)
        req.send_header("Content-Type", content_type)
        req.send_header("Content-Length", str(len(body)))
        req.end_headers()
        req.wfile.write(body)

    return route


def trickle_body(step_s: float, count: int):
    """Valid headers, then one byte of body every `step_s` seconds."""

    def route(req):
        req.send_response(200)
        req.send_header("Content-Type", "application/json")
        req.send_header("Content-Length", str(count))
        req.end_headers()
        req.wfile.flush()
        for _ in range(count):
            time.sleep(step_s)
            req.wfile.write(b" ")
            req.wfile.flush()

    return route


def trickle_headers(step_s: float, count: int):
    """A status line, then header bytes one by one: the answer never gets to its body."""

    def route(req):
        req.wfile.write(b"HTTP/1.1 200 OK\r\nX-Slow: ")
        for _ in range(count):
            time.sleep(step_s)
            req.wfile.write(b"a")
            req.wfile.flush()

    return route


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "make", "kind"),
    [
        ("bomb.png", bomb_png, "image/png"),
        ("deep.json", lambda: DEEP_JSON, "application/json"),
        ("random.json", lambda: RANDOM, "application/json"),
        ("random.png", lambda: RANDOM, "image/png"),
    ],
)
def test_hostile_pose_url_is_one_line_exit_5(monkeypatch, capsys, tmp_path, server, name, make, kind):
    base, routes = server
    routes[f"/{name}"] = send_body(make(), kind)
    code, out, err = run_main(
        monkeypatch, capsys, "poses", "show", f"{base}/{name}", "-o", str(tmp_path / "o.png")
    )
    check_one_line_exit_5(code, out, err, name)


@pytest.mark.slow
@pytest.mark.parametrize("route", [trickle_body(0.1, 40), trickle_headers(0.1, 40)], ids=["body", "headers"])
def test_url_deadline_covers_the_whole_download(monkeypatch, capsys, tmp_path, server, route):
    # Each byte comes well within the per-read timeout; only a total deadline stops this.
    monkeypatch.setattr(sources, "URL_TIMEOUT_S", 0.6)
    base, routes = server
    routes["/slow.json"] = route
    start = time.monotonic()
    code, out, err = run_main(
        monkeypatch, capsys, "poses", "show", f"{base}/slow.json", "-o", str(tmp_path / "o.png")
    )
    elapsed = time.monotonic() - start
    check_one_line_exit_5(code, out, err, "slow.json")
    assert "within 0.6 s" in err
    assert elapsed < 1.5, f"held for {elapsed:.1f} s with a 0.6 s deadline"


@pytest.mark.slow
def test_url_within_the_deadline_is_read(server, monkeypatch):
    monkeypatch.setattr(sources, "URL_TIMEOUT_S", 5.0)
    base, routes = server
    points = [10, 10, 1, 10, 40, 1] + [0, 0, 0] * 16
    body = f'{{"canvas_width": 64, "canvas_height": 64, "people": [{{"pose_keypoints_2d": {points}}}]}}'
    routes["/ok.json"] = send_body(body.encode(), "application/json")
    assert sources.resolve_pose(f"{base}/ok.json").image(64, 64).getpixel((10, 10)) != (0, 0, 0)


@pytest.mark.slow
def test_url_error_from_the_download_thread_keeps_its_type(server):
    base, routes = server
    with pytest.raises(InputError, match="HTTP 404"):
        sources.resolve_pose(f"{base}/missing.json")
