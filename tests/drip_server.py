"""A loopback server that answers a byte at a time, for ever (or until the client hangs up):
the status line and headers dribble out every `every` seconds, so no single read ever times
out. `connections` counts the requests that reached it; `hung_up` is set once a client left.
`plain(method, path)` may answer a request normally instead: JSON to send at once, or None to drip."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler

from loopback import LoopbackServer

ANSWER = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Padding: " + b"a" * 100_000


class DripServer(LoopbackServer):
    def __init__(
        self, every: float = 0.2, limit_s: float = 120.0, plain: Callable[[str, str], object] | None = None
    ) -> None:
        self.every = every
        self.plain = plain
        self.limit_s = limit_s
        self.connections = 0
        self.hung_up = threading.Event()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def _drip(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                if length:
                    self.rfile.read(length)
                answer = owner.plain(self.command, self.path) if owner.plain else None
                if answer is not None:
                    body = json.dumps(answer).encode()
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                owner.connections += 1
                began = time.monotonic()
                try:
                    for byte in ANSWER:
                        if time.monotonic() - began > owner.limit_s:
                            return
                        self.wfile.write(bytes([byte]))
                        self.wfile.flush()
                        time.sleep(owner.every)
                except OSError:
                    owner.hung_up.set()
                self.close_connection = True

            do_GET = _drip
            do_POST = _drip

        self.listen(Handler, url_suffix="")
