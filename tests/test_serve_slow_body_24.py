"""Issue 24 item 10: clients that send their body slowly never hold the queue places of the
others (`avatargen serve` takes a place once the body is in), and are cut off at the body
deadline with a 408."""

# ruff: noqa: F811  (pytest fixtures imported from serve_fixtures are shadowed by parameters)
from __future__ import annotations

import socket
import time
from urllib.parse import urlsplit

import httpx

from serve_fixtures import start_tiny_server, tiny_home, tiny_models, wait_until_ready  # noqa: F401


def slow_client(url: str) -> socket.socket:
    """A POST that promises 100 kB and sends 10 bytes of it."""
    parts = urlsplit(url)
    sock = socket.create_connection((parts.hostname, parts.port), timeout=30)
    head = "POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n"
    sock.sendall(head.encode() + b'{"inputs":')
    return sock


def read_reply(sock: socket.socket) -> str:
    """The whole HTTP answer: the server may send its head and its body in separate packets."""
    data = b""
    while b"\r\n\r\n" not in data or len(data.split(b"\r\n\r\n", 1)[1]) < _length(data):
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data.decode(errors="replace")


def _length(data: bytes) -> int:
    for line in data.split(b"\r\n\r\n", 1)[0].split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value.strip())
    return 0


def test_slow_bodies_do_not_lock_the_queue_and_are_cut_at_the_deadline(tmp_path, tiny_home):
    server = start_tiny_server(
        tmp_path, "--queue", "2", min_load_s=0, env={"AVATARGEN_SERVE_BODY_TIMEOUT_S": "3"}
    )
    slow = []
    try:
        wait_until_ready(server.url)
        slow = [slow_client(server.url) for _ in range(4)]
        time.sleep(0.5)  # all four are in, their bodies pending
        answer = httpx.post(server.url.rstrip("/") + "/predict", content=b"{}", timeout=30)
        assert answer.status_code in (400, 422), answer.text  # parsed and refused, not 429 busy
        began = time.monotonic()
        for sock in slow:
            reply = read_reply(sock)
            assert reply.startswith("HTTP/1.1 408"), reply
            assert '"error"' in reply
        assert time.monotonic() - began < 10
        assert server.process.poll() is None
    finally:
        for sock in slow:
            sock.close()
        server.stop()
