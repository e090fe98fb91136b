"""A loopback server speaking the Inference Endpoint contract, for end-to-end tests and bench/.

It checks each request the way our handler does and answers with a small PNG whose colour
comes from the seed. Behaviour knobs: a fixed delay per image, a loading phase answered
`503 {"estimated_time"}` for `loading_for` seconds from the first request (a client slow to
start, on a loaded machine, still meets it), prompts that fail with 500, and a counter of every request. Hostile
answers: `answer` (these bytes instead of the PNG) and `huge_body` (a 200 of that many bytes,
streamed from one small buffer, with or without Content-Length; `bytes_sent` counts what the
client took before it hung up, `body_done` is set once the server stops writing).
Run it standalone with `python tests/fake_endpoint.py --port 0` (prints its URL).
"""

from __future__ import annotations

import argparse
import base64
import json
import threading
import time
from http.server import BaseHTTPRequestHandler

from helpers import images
from loopback import LoopbackServer


class FakeEndpoint(LoopbackServer):
    def __init__(
        self,
        delay: float = 0.0,
        loading_for: float = 0.0,
        estimated_time: float | None = 1.0,
        fail_prompts: tuple[str, ...] = ("FAIL",),
        image_size: int = 32,
        answer: bytes | None = None,
        huge_body: int = 0,
        chunked: bool = False,
        probes_together: int = 0,
        handler: str = "avatargen",
    ) -> None:
        # "avatargen": our handler (its header on every answer, the handshake answered);
        # "avatargen-no-faces": a bundle whose handler cannot find faces (no header, a handshake
        # without the face-crop feature);
        # "toolkit-default": the serving toolkit's default diffusers handler, which refuses our
        # requests with a 400 (the issue-23 case: /health is 200 all the same).
        self.handler = handler
        self.delay = delay
        # The first GETs are held until this many have come (up to 30 s; later ones pass at once):
        # clients that each quote before their health probe are then all past their quote
        # before any of them reserves.
        self.probes_together = probes_together
        self.probes_met = threading.Event()
        self.loading_for = loading_for
        self.loading_until: float | None = None  # set by the first request: the cold start begins then
        self.estimated_time = estimated_time
        self.fail_prompts = fail_prompts
        self.image_size = image_size
        self.answer = answer
        self.huge_body = huge_body
        self.chunked = chunked
        self.bytes_sent = 0
        self.body_done = threading.Event()
        self.requests: list[dict] = []
        self.count_lock = threading.Lock()
        self.listen(self._handler())

    def loading(self) -> bool:
        """Still loading? Timed from the first request, not from this server's start: a client
        that takes seconds to import and plan must still meet the cold start it is tested on."""
        with self.count_lock:
            if self.loading_until is None:
                self.loading_until = time.monotonic() + self.loading_for
            return time.monotonic() < self.loading_until

    @property
    def posts(self) -> int:
        """Generation requests (the handler handshake is not one)."""
        return sum(1 for r in self.requests if r["method"] == "POST" and not r.get("hello"))

    @property
    def hellos(self) -> int:
        return sum(1 for r in self.requests if r.get("hello"))

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out as two writes: without TCP_NODELAY, a 40 ms delayed-ACK stall.
            disable_nagle_algorithm = True

            def log_message(self, *args) -> None:  # keep test output clean
                pass

            def _send(self, status: int, body: bytes, content_type: str, headers: dict | None = None) -> None:
                self.send_response(status)
                if fake.handler == "avatargen":
                    self.send_header("X-Avatargen-Handler", "1")
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(body)

            def _json(self, status: int, data: dict, headers: dict | None = None) -> None:
                self._send(status, json.dumps(data).encode(), "application/json", headers)

            def do_GET(self) -> None:
                with fake.count_lock:
                    fake.requests.append({"method": "GET", "path": self.path, "time": time.monotonic()})
                    if sum(1 for r in fake.requests if r["method"] == "GET") >= fake.probes_together:
                        fake.probes_met.set()
                fake.probes_met.wait(timeout=30)  # a client that never probes: the test says so
                if fake.loading():
                    self._json(
                        503, {"error": "Model is currently loading", "estimated_time": fake.estimated_time}
                    )
                else:
                    self._send(200, b"Ok", "text/plain")

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                record = {
                    "method": "POST",
                    "path": self.path,
                    "client": self.client_address,  # (host, port): one port per connection
                    "headers": dict(self.headers),
                    "body": raw,
                    "time": time.monotonic(),
                }
                try:
                    record["hello"] = json.loads(raw) == {"inputs": {"avatargen": "handler"}}
                except ValueError:
                    record["hello"] = False
                with fake.count_lock:
                    fake.requests.append(record)
                if record["hello"] and fake.handler.startswith("avatargen"):
                    features = [] if fake.handler == "avatargen-no-faces" else ["face-crop"]
                    hello = {"handler": 1, "model": "fake", "identity_adapter": True, "features": features}
                    return self._json(200, {"avatargen": hello})
                if fake.handler == "toolkit-default":
                    # What the toolkit's diffusers image-to-image handler answers our bodies.
                    return self._json(
                        400,
                        {"error": "Image must be passed either as `inputs` or `image`, but is <class 'str'>"},
                    )
                if fake.loading():
                    body = {"error": "Model is currently loading"}
                    if fake.estimated_time is not None:
                        body["estimated_time"] = fake.estimated_time
                    return self._json(503, body)
                try:
                    inputs = json.loads(raw)["inputs"]
                    pose = base64.b64decode(inputs["image"], validate=True)
                    prompt = inputs["prompt"]
                    seed = int(inputs["seed"])
                except (ValueError, KeyError, TypeError) as exc:
                    return self._json(400, {"error": f"bad request: {exc}"})
                record["inputs"] = {k: v for k, v in inputs.items() if k not in ("image", "init_image")}
                record["pose_bytes"] = len(pose)
                record["has_init_image"] = "init_image" in inputs
                if any(marker in prompt for marker in fake.fail_prompts):
                    return self._json(500, {"error": "internal failure for this prompt"})
                if fake.delay:
                    time.sleep(fake.delay)
                if fake.huge_body:
                    return self._stream_huge_body()
                self._send(200, fake.answer or _png(seed, fake.image_size), "image/png")

            def _stream_huge_body(self) -> None:
                block = b"\x89PNG\r\n\x1a\n" + bytes(1024 * 1024 - 8)
                self.send_response(200)
                self.send_header("Content-Type", "image/png")
                if fake.chunked:
                    self.send_header("Transfer-Encoding", "chunked")
                else:
                    self.send_header("Content-Length", str(fake.huge_body))
                self.end_headers()
                try:
                    left = fake.huge_body
                    while left > 0:
                        piece = block[: min(left, len(block))]
                        if fake.chunked:
                            self.wfile.write(f"{len(piece):X}\r\n".encode() + piece + b"\r\n")
                        else:
                            self.wfile.write(piece)
                        fake.bytes_sent += len(piece)
                        left -= len(piece)
                    if fake.chunked:
                        self.wfile.write(b"0\r\n\r\n")
                except OSError:  # the client hung up: what it wanted to prove
                    self.close_connection = True
                finally:
                    fake.body_done.set()

        return Handler


def _png(seed: int, size: int) -> bytes:
    colour = (seed % 256, (seed >> 8) % 256, (seed >> 16) % 256)
    return images.png((size, size), colour)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--loading", type=float, default=0.0)
    args = parser.parse_args()
    endpoint = FakeEndpoint(delay=args.delay, loading_for=args.loading).start()
    print(endpoint.url, flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        endpoint.stop()
