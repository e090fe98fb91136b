"""Loopback fakes of Hugging Face's router for Inference Providers, a provider CDN and the Hub API.

FakeRouter speaks, under one base URL (what AVATARGEN_ROUTER_URL points at):
- fal-ai's queue protocol as the router relays it: POST /fal-ai/{model}?_subdomain=queue answers a
  ticket {request_id, status, response_url, status_url, cancel_url, queue_position}; GET
  /fal-ai{response_url's path}/status?_subdomain=queue answers IN_QUEUE, then IN_PROGRESS, then
  COMPLETED after `polls_before_done` polls; GET /fal-ai{response_url's path}?_subdomain=queue
  answers the result {"images": [{"url", "width", "height", "content_type"}], "seed"}, the image
  URL on the FakeCDN (another port);
- replicate: POST /replicate/v1/models/{owner}/{name}/predictions with `Prefer: wait` answers a
  finished prediction {"id", "status": "succeeded", "output": URL}, or with
  `replicate_polls_before_done` a "processing" one that GET /replicate/v1/predictions/{id}
  finishes after that many polls.
`lose_jobs()` forgets every job (then their status answers 404, as a provider's expired job).
Knobs: `token` (else 401), `paid_submits` (then 402 Payment Required), `failing_submits` (the
n-th submits, from 0, end as failed jobs: status COMPLETED with an error, result 500). Every
request is recorded (method, path, query, headers, json).
FakeHub answers GET /api/models/{id}?expand[]=inferenceProviderMapping from a dict, and HEAD
/{repo}/resolve/{revision}/{file} as huggingface.co does for a gated repo (401 + X-Error-Code:
GatedRepo, the repos under `gated` prefixes) and for a missing or private one (404 + RepoNotFound).
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, urlsplit

from helpers import images
from loopback import LoopbackServer


def png(width: int = 64, height: int = 64, colour=(30, 120, 200)) -> bytes:
    return images.png((width, height), colour)


class _Server(LoopbackServer):
    """A ThreadingHTTPServer on 127.0.0.1 that records every request and calls `answer`."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # keep test output clean
                pass

            def _handle(self) -> None:
                received_at = time.monotonic()
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                record = {
                    "method": self.command,
                    "path": parts.path,
                    "query": parts.query,
                    "headers": {k.lower(): v for k, v in self.headers.items()},
                    "json": json.loads(raw) if raw else None,
                    "received_at": received_at,
                }
                with owner.lock:
                    owner.requests.append(record)
                status, headers, body = owner.answer(record)
                record["finished_at"] = time.monotonic()  # refreshed below once the answer is out
                try:
                    self.send_response(status)
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    return  # the client was killed (tests do that): nothing more to say to it
                record["finished_at"] = time.monotonic()  # when the client could first read it
                record["answer"] = body if len(body) < 4096 else None

            do_GET = _handle
            do_POST = _handle
            do_HEAD = _handle

        self.listen(Handler, url_suffix="")

    def answer(self, record: dict) -> tuple[int, dict, bytes]:
        raise NotImplementedError


def _json(status: int, data) -> tuple[int, dict, bytes]:
    return status, {"Content-Type": "application/json"}, json.dumps(data).encode()


class FakeCDN(_Server):
    """Serves /img/{id}.png (a PNG of the size asked in the query); `broken`: answer 500."""

    def __init__(self) -> None:
        super().__init__()
        self.broken = False

    def answer(self, record):
        if self.broken:
            return _json(500, {"error": "storage unavailable"})
        query = parse_qs(record["query"])
        width, height = int(query.get("w", ["64"])[0]), int(query.get("h", ["64"])[0])
        return 200, {"Content-Type": "image/png"}, png(width, height)


class FakeRouter(_Server):
    def __init__(
        self,
        cdn: FakeCDN,
        *,
        token: str = "hf_routertesttoken123",
        polls_before_done: int = 0,
        paid_submits: int | None = None,
        failing_submits: tuple[int, ...] = (),
        replicate_polls_before_done: int = 0,
    ) -> None:
        super().__init__()
        self.cdn = cdn
        self.token = token
        self.polls_before_done = polls_before_done
        self.paid_submits = paid_submits
        self.failing_submits = failing_submits
        self.replicate_polls_before_done = replicate_polls_before_done
        self.jobs: dict[str, dict] = {}
        self._ids = itertools.count()

    def submits(self) -> list[dict]:
        return [r for r in self.requests if r["method"] == "POST"]

    def polls(self) -> list[dict]:
        return [r for r in self.requests if r["path"].endswith("/status")]

    def lose_jobs(self) -> None:
        with self.lock:
            self.jobs.clear()

    def answer(self, record):
        if record["headers"].get("authorization") != f"Bearer {self.token}":
            return _json(401, {"error": "Invalid credentials in Authorization header"})
        path = record["path"]
        if record["method"] == "POST":
            with self.lock:
                index = next(self._ids)
            if self.paid_submits is not None and index >= self.paid_submits:
                return _json(
                    402, {"error": "You have exceeded your monthly included credits for Inference Providers."}
                )
            size = (record["json"] or {}).get("image_size") or {"width": 64, "height": 64}
            job = {"index": index, "polls": 0, "size": size, "failed": index in self.failing_submits}
            if path.startswith("/fal-ai/"):
                return self._fal_submit(record, job)
            if path.startswith("/replicate/"):
                return self._replicate_submit(job)
            return _json(404, {"error": "Not Found"})
        if path.startswith("/fal-ai/"):
            return self._fal_get(path)
        if path.startswith("/replicate/v1/predictions/"):
            return self._replicate_get(path.rsplit("/", 1)[1])
        return _json(404, {"error": "Not Found"})

    def _prediction(self, pid: str, job: dict) -> dict:
        if job["polls"] < self.replicate_polls_before_done:
            return {"id": pid, "status": "processing", "output": None, "error": None}
        url = f"{self.cdn.url}/img/{pid}.png?w=64&h=64"
        return {"id": pid, "status": "succeeded", "output": url, "error": None}

    def _replicate_submit(self, job):
        pid = f"r{job['index']}"
        with self.lock:
            self.jobs[pid] = job
        return _json(201, self._prediction(pid, job))

    def _replicate_get(self, pid: str):
        job = self.jobs.get(pid)
        if job is None:
            return _json(404, {"detail": "Not found."})
        with self.lock:
            job["polls"] += 1
        return _json(200, self._prediction(pid, job))

    def _fal_submit(self, record, job):
        model = record["path"].removeprefix("/fal-ai/")
        request_id = f"req-{job['index']:04d}"
        with self.lock:
            self.jobs[request_id] = job
        base = f"https://queue.fal.run/{model}/requests/{request_id}"
        return _json(
            200,
            {
                "request_id": request_id,
                "status": "IN_QUEUE",
                "response_url": base,
                "status_url": f"{base}/status",
                "cancel_url": f"{base}/cancel",
                "queue_position": 0,
            },
        )

    def _fal_get(self, path):
        parts = path.split("/requests/", 1)
        if len(parts) != 2:
            return _json(404, {"error": "Not Found"})
        request_id, _, tail = parts[1].partition("/")
        job = self.jobs.get(request_id)
        if job is None:
            return _json(404, {"detail": "Request not found"})
        if tail == "status":
            with self.lock:
                job["polls"] += 1
                polls = job["polls"]
            if polls < self.polls_before_done:
                return _json(
                    202, {"status": "IN_QUEUE" if polls == 1 else "IN_PROGRESS", "queue_position": 0}
                )
            if job["failed"]:
                return _json(
                    200, {"status": "COMPLETED", "error": "Internal server error", "error_type": "runner"}
                )
            return _json(200, {"status": "COMPLETED"})
        if job["failed"]:
            return _json(500, {"detail": "Internal server error"})
        width, height = job["size"]["width"], job["size"]["height"]
        url = f"{self.cdn.url}/img/{request_id}.png?w={width}&h={height}"
        image = {"url": url, "width": width, "height": height, "content_type": "image/png"}
        return _json(200, {"images": [image], "seed": 1, "has_nsfw_concepts": [False]})


class FakeHub(_Server):
    """The Hub API's model info with its inference provider mapping; file lookups of gated or
    missing repos."""

    def __init__(self, mappings: dict[str, dict] | None = None, gated: tuple[str, ...] = ()) -> None:
        super().__init__()
        self.mappings = mappings or {}
        self.gated = gated

    def answer(self, record):
        if record["method"] == "HEAD":  # a file of a repo: gated, else missing (or private)
            code = "GatedRepo" if record["path"].startswith(self.gated) and self.gated else "RepoNotFound"
            headers = {"X-Error-Code": code, "X-Error-Message": "Access to this model is restricted."}
            return (401 if code == "GatedRepo" else 404), headers, b""
        model_id = record["path"].removeprefix("/api/models/")
        if model_id not in self.mappings:
            return _json(404, {"error": "Repository not found"})
        return _json(200, {"id": model_id, "inferenceProviderMapping": self.mappings[model_id]})
